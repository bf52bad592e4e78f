"""The use cases of zonal managed instance groups: insert, delete, resize, listManagedInstances and
listErrors. insert and resize change the database only and answer a DONE Operation, as GCE does
("the resize operation is marked DONE when the resize actions are scheduled"): the group then
converges, driven by the reconcile job (:mod:`.reconcile`). delete is a job: its Operation ends
when the managed instances, the group's instanceGroups resource and the group are gone.
"""

from __future__ import annotations

import re
import time

from core.errors import AlreadyExists, Invalid, Required
from core.ids import fingerprint
from core.links import parse_ref, path_of, scope_url, url_of
from core.models import Operation, Resource
from core.resources import operations, store
from core.resources.context import Call
from core.resources.store import Body
from core.services import instance_groups, projects
from core.services.instance_group_managers import reconcile, state
from core.services.instance_group_managers.state import COLLECTION
from core.services.topology import ZoneInfo

BASE_NAME = re.compile(r"^[a-z][-a-z0-9]{0,57}$")
_UPDATE_POLICY = {"type": "OPPORTUNISTIC", "minimalAction": "REPLACE", "maxSurge": {"fixed": 1, "calculated": 1},
                  "maxUnavailable": {"fixed": 1, "calculated": 1}, "replacementMethod": "SUBSTITUTE"}
_STATUS = {"isStable": False, "versionTarget": {"isReached": True},
           "stateful": {"hasStatefulConfig": False, "perInstanceConfigs": {"allEffective": True}}}


def _size(value: object, field: str) -> int:
    if value is None or value == "":
        raise Required(field)
    try:
        size = int(str(value))
    except ValueError:
        raise Invalid(field, value) from None
    if size < 0:
        raise Invalid(field, size, "Must be greater than or equal to 0")
    return size


def _template(call: Call, zone: ZoneInfo, value: object, field: str) -> tuple[str, Body]:
    """The canonical URL of the template a group names (global, or regional in the zone's region),
    and its stored body."""
    ref = parse_ref(value, project=call.project, scope="global") if isinstance(value, str) else None
    if ref is None or ref.collection != "instanceTemplates" or not (
            ref.scope == "global" or ref.scope.startswith("regions/")):
        raise Invalid(field, value, "The URL is malformed.")
    if ref.scope not in ("global", f"regions/{zone.region.name}"):
        raise Invalid(field, value, f"The regional instance template must be in region '{zone.region.name}'.")
    projects.own(call, ref)
    res = store.find(call.session, ref.project, "instanceTemplates", ref.scope, ref.name)
    return url_of(res.project, res.scope, "instanceTemplates", res.name), store.body_of(res)


def _template_field(body: Body) -> tuple[object, str]:
    if body.get("instanceTemplate"):
        return body["instanceTemplate"], "resource.instanceTemplate"
    versions = body.get("versions") or []
    if isinstance(versions, list) and len(versions) > 1:
        raise Invalid("resource.versions", versions, "Only one version is supported.")
    if versions and isinstance(versions[0], dict) and versions[0].get("instanceTemplate"):
        return versions[0]["instanceTemplate"], "resource.versions[0].instanceTemplate"
    raise Required("resource.instanceTemplate")


def insert(call: Call, zone: ZoneInfo, body: Body) -> Operation:
    """Validate, store the group and its instanceGroups resource, and queue the first reconcile."""
    if body.get("name") in (None, ""):
        raise Required("resource.name")
    name = store.validate_name(body.get("name"))
    # Left out (gcloud leaves it out when --base-instance-name is not given), the group's name
    # serves, cut to the 58 characters a base name may have.
    base = body.get("baseInstanceName") or name[:58].rstrip("-")
    if not isinstance(base, str) or not BASE_NAME.match(base):
        raise Invalid("resource.baseInstanceName", base, f"Must be a match of regex '{BASE_NAME.pattern[1:-1]}'")
    target = _size(body.get("targetSize"), "resource.targetSize")
    template_url, template = _template(call, zone, *_template_field(body))
    scope = f"zones/{zone.name}"
    if store.exists(call.session, call.project, COLLECTION, scope, name):
        raise AlreadyExists(path_of(call.project, scope, COLLECTION, name))
    nic = ((template.get("properties") or {}).get("networkInterfaces") or [{}])[0]
    instance_groups.create_managed(call, zone, name, nic.get("network"), nic.get("subnetwork"))
    fields: Body = {"description": body["description"]} if body.get("description") else {}
    fields.update({
        "zone": scope_url(call.project, scope), "instanceTemplate": template_url,
        "versions": [{"instanceTemplate": template_url}],
        "instanceGroup": url_of(call.project, scope, instance_groups.COLLECTION, name), "baseInstanceName": base,
        "fingerprint": fingerprint(["igm", name, time.time()]), "currentActions": {}, "status": dict(_STATUS),
        "targetSize": target, "updatePolicy": _UPDATE_POLICY, "listManagedInstancesResults": "PAGELESS"})
    group = store.new_resource(call.session, project=call.project, collection=COLLECTION, scope=scope, name=name,
                               kind="compute#instanceGroupManager", body=fields, region=zone.region.name)
    state.render(group, state.create(call.session, group))
    if target:
        reconcile.enqueue(call.session, group, call.user)
    return _begin(call, group, "insert")


def _begin(call: Call, group: Resource, method: str, job: str | None = None) -> Operation:
    return operations.begin(call, scope=group.scope, op_type=f"compute.instanceGroupManagers.{method}",
                            target_path=path_of(group.project, group.scope, COLLECTION, group.name),
                            target_id=group.uid, job=job, params={"uid": group.uid, "user": call.user} if job else None)


def _locked(call: Call, zone: ZoneInfo, name: str) -> Resource:
    return projects.find_for_update(call.session, call.project, COLLECTION, f"zones/{zone.name}", name)


def resize(call: Call, zone: ZoneInfo, name: str, size: object) -> Operation:
    """Set ``targetSize``; the reconcile job adds or removes instances after the Operation is DONE."""
    target = _size(size, "size")
    group = _locked(call, zone, name)
    st = state.load(call.session, group)
    body = store.body_of(group)
    body["targetSize"] = target
    store.save(group, body)
    state.render(group, st)
    if not st.deleting:
        reconcile.enqueue(call.session, group, call.user)
    return _begin(call, group, "resize")


def delete(call: Call, zone: ZoneInfo, name: str) -> Operation:
    """The group stops converging at once; the delete job removes its instances, then the group."""
    group = _locked(call, zone, name)
    st = state.load(call.session, group)
    st.deleting = True
    st.save()
    state.render(group, st)
    return _begin(call, group, "delete", job=reconcile.DELETE)


def list_managed_instances(call: Call, zone: ZoneInfo, name: str) -> list[Body]:
    """The managed instances as ManagedInstance items, in name order: those not created yet (or whose
    creation failed) without ``id`` and ``instanceStatus``, a failed one with its ``lastAttempt``."""
    scope = f"zones/{zone.name}"
    group = store.find(call.session, call.project, COLLECTION, scope, name)
    out = []
    for m in sorted(state.load_readonly(call.session, group).members, key=lambda m: m.name):
        item: Body = {"instance": url_of(call.project, scope, "instances", m.name)}
        inst = store.find_optional(call.session, call.project, "instances", scope, m.name)
        if inst is not None:
            item.update(id=str(inst.uid), instanceStatus=inst.status)
        item.update(name=m.name, currentAction=m.action, version={"instanceTemplate": m.template})
        if m.error and m.action == "CREATING":
            item["lastAttempt"] = {"errors": {"errors": [m.error]}}
        out.append(item)
    return out


def list_errors(call: Call, zone: ZoneInfo, name: str) -> list[Body]:
    """listErrors: the errors of the group's actions on its instances, newest first."""
    group = store.find(call.session, call.project, COLLECTION, f"zones/{zone.name}", name)
    return state.load_readonly(call.session, group).errors


def _named_members(call: Call, group: Resource, st: state.State, body: Body) -> list[state.Member]:
    """The members a deleteInstances or abandonInstances body names (``instances``: URLs or
    paths of instances in the group's zone, each a managed instance of the group)."""
    items = body.get("instances")
    if not isinstance(items, list) or not items:
        raise Required("instances")
    out: list[state.Member] = []
    for i, value in enumerate(items):
        field = f"instances[{i}]"
        ref = parse_ref(value, project=call.project, scope=group.scope) if isinstance(value, str) else None
        if ref is None or ref.collection != "instances":
            raise Invalid(field, value, "The URL is malformed.")
        m = st.member(ref.name) if (ref.project, ref.scope) == (group.project, group.scope) else None
        if m is None or m.action == state.DELETING or m in out:
            raise Invalid(field, value, f"The instance is not managed by "
                                        f"'{path_of(group.project, group.scope, COLLECTION, group.name)}'.")
        out.append(m)
    return out


def _shrink(group: Resource, st: state.State, by: int) -> None:
    body = store.body_of(group)
    body["targetSize"] = max(0, body["targetSize"] - by)
    store.save(group, body)
    st.save()
    state.render(group, st)


def delete_instances(call: Call, zone: ZoneInfo, name: str, body: Body) -> Operation:
    """Delete the named managed instances and lower ``targetSize`` by as many; the reconcile job
    deletes them after the Operation is DONE (as with resize)."""
    group = _locked(call, zone, name)
    st = state.load(call.session, group)
    named = _named_members(call, group, st, body)
    for m in named:
        m.action, m.error = state.DELETING, None
    _shrink(group, st, len(named))
    reconcile.enqueue(call.session, group, call.user)
    return _begin(call, group, "deleteInstances")


def abandon_instances(call: Call, zone: ZoneInfo, name: str, body: Body) -> Operation:
    """The named instances leave the group (and its instanceGroups resource) but keep running;
    ``targetSize`` is lowered by as many. Synchronous."""
    group = _locked(call, zone, name)
    st = state.load(call.session, group)
    leaving = _named_members(call, group, st, body)
    ig = store.find_optional(call.session, call.project, instance_groups.COLLECTION, group.scope, group.name)
    for m in leaving:
        st.members.remove(m)
        inst = store.find_optional(call.session, call.project, "instances", group.scope, m.name)
        if inst is not None and ig is not None:
            instance_groups.remove_member(call.session, ig, inst)
    _shrink(group, st, len(leaving))
    reconcile.enqueue(call.session, group, call.user)
    return _begin(call, group, "abandonInstances")
