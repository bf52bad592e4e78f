"""Instance templates, global (``instanceTemplates``) and regional (``regionInstanceTemplates``).

A template is an instance's body kept for later: its ``properties`` are checked by the same parser
as ``instances.insert`` (:mod:`core.services.instances.spec`, under ``resource.properties``), but a
template has no zone, so machine types, disk types and existing disks are names, resolved in the
zone of each instance made from it. Both kinds are rows of the ``instanceTemplates`` collection, in
scope ``global`` or ``regions/<region>``. Templates cannot change: insert and delete only, both
touching the database alone (their Operations are born DONE).
"""

from __future__ import annotations

from core import quotas
from core.errors import AlreadyExists, Invalid, Required, ResourceInUse
from core.links import parse_ref, path_of, scope_url, url_of
from core.models import Operation, Resource
from core.resources import operations, store
from core.resources.context import Call
from core.resources.store import Body
from core.services import projects, vpc
from core.services.instances import spec

COLLECTION = "instanceTemplates"
# The collections whose rows may use a template (the managed instance groups, once they exist).
USERS = ("instanceGroupManagers", "regionInstanceGroupManagers")
# Fields of InstanceProperties stored as given: instances.insert reads or ignores them.
_PASSED = ("shieldedInstanceConfig", "minCpuPlatform", "guestAccelerators", "reservationAffinity",
           "resourcePolicies", "advancedMachineFeatures", "confidentialInstanceConfig")


def scope_of(region: str | None) -> str:
    return "global" if region is None else f"regions/{region}"


def insert(call: Call, region: str | None, body: Body) -> Operation:
    """Validate the template's properties as an instance's, then store it (``region`` None: global)."""
    if body.get("name") in (None, ""):
        raise Required("resource.name")
    name = store.validate_name(body.get("name"))
    scope = scope_of(region)
    if store.exists(call.session, call.project, COLLECTION, scope, name):
        raise AlreadyExists(path_of(call.project, scope, COLLECTION, name))
    if body.get("sourceInstance"):
        raise Invalid("resource.sourceInstance", body["sourceInstance"],
                      "Instance templates made from an instance are not supported.")
    props = body.get("properties")
    if not isinstance(props, dict):
        raise Required("resource.properties")
    project = projects.get(call.session, call.project, lock=True)  # usage cannot change under the check
    if region is None:
        quotas.check_global(call.session, project, "INSTANCE_TEMPLATES")
    else:
        quotas.check_region_count(call.session, project, region, "INSTANCE_TEMPLATES")
    stored: Body = {"description": body.get("description") or "",
                    "properties": properties(call, spec.Where.template(region), name, props)}
    if region is not None:
        stored["region"] = scope_url(call.project, scope)
    res = store.new_resource(call.session, project=call.project, collection=COLLECTION, scope=scope, name=name,
                             kind="compute#instanceTemplate", body=stored, region=region)
    return operations.begin(call, scope=scope, op_type="insert", target_path=_path(res), target_id=res.uid)


def properties(call: Call, where: spec.Where, name: str, props: Body) -> Body:
    """The properties as the template keeps them, each field checked by the instance's rules."""
    machine_type = spec.template_machine_type(props.get("machineType"), where.field("machineType"))
    _, attached = spec.attached_disks(call, where, name, props.get("disks"))
    nics = spec.template_interfaces(call, where, props.get("networkInterfaces"))
    fields = spec.fields(projects.get(call.session, call.project), props, where)
    out: Body = {}
    if props.get("description"):
        out["description"] = props["description"]
    if fields["tags"].get("items"):
        out["tags"] = fields["tags"]
    out.update({"machineType": machine_type.name, "canIpForward": bool(props.get("canIpForward", False)),
                "networkInterfaces": nics, "disks": [_disk(call.project, i, a) for i, a in enumerate(attached)],
                "metadata": fields["metadata"], "serviceAccounts": fields["serviceAccounts"],
                "scheduling": fields["scheduling"]})
    if fields["labels"]:
        out["labels"] = fields["labels"]
    out.update({key: props[key] for key in _PASSED if props.get(key) is not None})
    out["keyRevocationActionType"] = props.get("keyRevocationActionType") or "NONE"
    return out


def _disk(project: str, index: int, a: spec.Attached) -> Body:
    """An attached disk of the template: as asked, with GCE's defaults written out."""
    d = a.request
    out: Body = {"kind": "compute#attachedDisk", "type": "PERSISTENT", "mode": d.get("mode", "READ_WRITE"),
                 "boot": index == 0, "autoDelete": bool(d.get("autoDelete", False)), "index": index}
    for key in ("deviceName", "interface", "source", "initializeParams"):
        if d.get(key):
            out[key] = d[key]
    init = dict(out.get("initializeParams") or {})
    if init.get("diskSizeGb") is not None:
        init["diskSizeGb"] = str(init["diskSizeGb"])
    for key in ("sourceImage", "sourceSnapshot"):  # checked already: links made canonical, families kept
        ref = parse_ref(init[key], project=project, scope="global") if init.get(key) else None
        if ref is not None:
            init[key] = url_of(ref.project, ref.scope, ref.collection, ref.name)
    if init:
        out["initializeParams"] = init
    return out


def delete(call: Call, region: str | None, name: str) -> Operation:
    """Refused while a managed instance group uses the template, with GCE's resourceInUse error."""
    scope = scope_of(region)
    res = store.find(call.session, call.project, COLLECTION, scope, name, lock=True)
    users = users_of(call, res)
    if users:
        raise ResourceInUse("instance_template", _path(res), users[0])
    op = operations.begin(call, scope=scope, op_type="delete", target_path=_path(res), target_id=res.uid)
    call.session.delete(res)
    return op


def users_of(call: Call, res: Resource) -> list[str]:
    """The paths of the resources using the template: the managed instance groups whose
    ``instanceTemplate`` (or a version's) links it. Groups come in a later step; this query finds
    them as soon as their rows exist."""
    url = url_of(res.project, res.scope, COLLECTION, res.name)
    return [path_of(r.project, r.scope, r.collection, r.name)
            for r in vpc.referring(call.session, call.project, "instanceTemplate", url, USERS)]


def _path(res: Resource) -> str:
    return path_of(res.project, res.scope, COLLECTION, res.name)

