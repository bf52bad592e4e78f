"""The use cases of managed instance groups, zonal and regional (:mod:`.location`): insert, delete, resize, listManagedInstances and
listErrors. insert and resize change the database only and answer a DONE Operation, as GCE does
("the resize operation is marked DONE when the resize actions are scheduled"): the group then
converges, driven by the reconcile job (:mod:`.reconcile`). delete is a job: its Operation ends
when the managed instances, the group's instanceGroups resource and the group are gone.
"""

from __future__ import annotations

import re
import time

from core.errors import AlreadyExists, Invalid, Required, ResourceInUse
from core.ids import fingerprint
from core.links import parse_ref, path_of, scope_url, url_of
from core.models import Operation, Resource
from core.resources import operations, store
from core.resources.context import Call
from core.resources.store import Body
from core.services import instance_groups, projects, vpc
from core.services.instance_group_managers import autoscaling, distribution, location, reconcile, spec, state
from core.services.instance_group_managers.location import Where
from core.services.instance_group_managers.state import COLLECTION

BASE_NAME = re.compile(r"^[a-z][-a-z0-9]{0,57}$")
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


def _versions(call: Call, region: str, body: Body) -> list[Body]:
    """The group's versions: ``versions`` when given, else the one ``instanceTemplate``."""
    if body.get("versions"):
        return spec.versions(call, region, body["versions"])
    if not body.get("instanceTemplate"):
        raise Required("resource.instanceTemplate")
    url, _ = spec.template(call, region, body["instanceTemplate"], "resource.instanceTemplate")
    return [{"instanceTemplate": url}]


def main_template(versions: list[Body]) -> str:
    """The group's ``instanceTemplate``: that of the version without a targetSize."""
    return str(next(v for v in versions if "targetSize" not in v)["instanceTemplate"])


def insert(call: Call, where: Where, body: Body) -> Operation:
    """Validate, store the group and its instanceGroups resource, and queue the first reconcile."""
    loc = location.of(where)
    if body.get("name") in (None, ""):
        raise Required("resource.name")
    name = store.validate_name(body.get("name"))
    # Left out (gcloud leaves it out when --base-instance-name is not given), the group's name
    # serves, cut to the 58 characters a base name may have.
    base = body.get("baseInstanceName") or name[:58].rstrip("-")
    if not isinstance(base, str) or not BASE_NAME.match(base):
        raise Invalid("resource.baseInstanceName", base, f"Must be a match of regex '{BASE_NAME.pattern[1:-1]}'")
    target = _size(body.get("targetSize"), "resource.targetSize")
    versions = _versions(call, loc.region, body)
    template_url = main_template(versions)
    _, template = spec.template(call, loc.region, template_url, "resource.instanceTemplate")
    regional = distribution.fields(call.project, loc, body)  # with a regional group's policy defaults
    policy = spec.update_policy(body.get("updatePolicy") or {}, regional.pop("updatePolicy", None), target)
    healing = spec.auto_healing(call, loc.region, body.get("autoHealingPolicies") or [])
    scope = loc.scope
    if store.exists(call.session, call.project, COLLECTION, scope, name):
        raise AlreadyExists(path_of(call.project, scope, COLLECTION, name))
    nic = ((template.get("properties") or {}).get("networkInterfaces") or [{}])[0]
    instance_groups.create_managed(call, scope, loc.region, name, nic.get("network"), nic.get("subnetwork"))
    fields: Body = {"description": body["description"]} if body.get("description") else {}
    fields.update({
        "region" if loc.regional else "zone": scope_url(call.project, scope), "instanceTemplate": template_url,
        "versions": spec.render_versions(versions, target),
        "instanceGroup": url_of(call.project, scope, instance_groups.COLLECTION, name), "baseInstanceName": base,
        "fingerprint": fingerprint(["igm", name, time.time()]), "currentActions": {}, "status": dict(_STATUS),
        "targetSize": target, "updatePolicy": spec.render_policy(policy, target), "listManagedInstancesResults": "PAGELESS"})
    if healing:
        fields["autoHealingPolicies"] = healing
    fields.update(regional)
    group = store.new_resource(call.session, project=call.project, collection=COLLECTION, scope=scope, name=name,
                               kind="compute#instanceGroupManager", body=fields, region=loc.region)
    state.render(group, state.create(call.session, group))
    if target:
        reconcile.enqueue(call.session, group, call.user)
    return _begin(call, group, "insert")


def refresh_calculated(body: Body) -> None:
    """The ``calculated`` values of a body whose targetSize changed."""
    body["updatePolicy"] = spec.render_policy({**spec.DEFAULT_POLICY, **body["updatePolicy"]}, body["targetSize"])
    body["versions"] = spec.render_versions(body["versions"], body["targetSize"])


def _begin(call: Call, group: Resource, method: str, job: str | None = None) -> Operation:
    return operations.begin(call, scope=group.scope, op_type=f"compute.{location.api_collection(group.scope)}.{method}",
                            target_path=path_of(group.project, group.scope, COLLECTION, group.name),
                            target_id=group.uid, job=job, params={"uid": group.uid, "user": call.user} if job else None)


def _locked(call: Call, where: Where, name: str) -> Resource:
    return projects.find_for_update(call.session, call.project, COLLECTION, location.of(where).scope, name)


def resize(call: Call, where: Where, name: str, size: object) -> Operation:
    """Set ``targetSize``; the reconcile job adds or removes instances after the Operation is DONE."""
    target = _size(size, "size")
    group = _locked(call, where, name)
    st = state.load(call.session, group)
    body = store.body_of(group)
    body["targetSize"] = target
    refresh_calculated(body)
    store.save(group, body)
    state.render(group, st)
    if not st.deleting:
        reconcile.enqueue(call.session, group, call.user)
    return _begin(call, group, "resize")


def delete(call: Call, where: Where, name: str) -> Operation:
    """The group stops converging at once; the delete job removes its instances, then the group.
    Refused while a backend service uses the group's instanceGroups resource, as GCE refuses it."""
    group = _locked(call, where, name)
    autoscaling.refuse_if_autoscaled(call.session, group)
    ig_url = store.body_of(group)["instanceGroup"]
    services = vpc.mentioning(call.session, call.project, ig_url, ["backendServices"])
    if services:
        raise ResourceInUse("instance_group", vpc.relative(ig_url), vpc.path(services[0]))
    st = state.load(call.session, group)
    st.deleting = True
    st.save()
    state.render(group, st)
    return _begin(call, group, "delete", job=reconcile.DELETE)


def list_managed_instances(call: Call, where: Where, name: str) -> list[Body]:
    """The managed instances as ManagedInstance items, in name order: those not created yet (or whose
    creation failed) without ``id`` and ``instanceStatus``, a failed one with its ``lastAttempt``."""
    group = store.find(call.session, call.project, COLLECTION, location.of(where).scope, name)
    out = []
    for m in sorted(state.load_readonly(call.session, group).members, key=lambda m: m.name):
        item: Body = {"instance": url_of(call.project, m.scope, "instances", m.name)}
        inst = store.find_optional(call.session, call.project, "instances", m.scope, m.name)
        if inst is not None:
            item.update(id=str(inst.uid), instanceStatus=inst.status)
        version = {"instanceTemplate": m.template, **({"name": m.version} if m.version else {})}
        item.update(name=m.name, currentAction=m.action, version=version)
        if m.error and m.action == "CREATING":
            item["lastAttempt"] = {"errors": {"errors": [m.error]}}
        out.append(item)
    return out


def list_errors(call: Call, where: Where, name: str) -> list[Body]:
    """listErrors: the errors of the group's actions on its instances, newest first."""
    group = store.find(call.session, call.project, COLLECTION, location.of(where).scope, name)
    return state.load_readonly(call.session, group).errors


def _named_members(call: Call, group: Resource, st: state.State, body: Body) -> list[state.Member]:
    """The members a deleteInstances or abandonInstances body names (``instances``: URLs or
    paths of instances in the group's zones, each a managed instance of the group)."""
    items = body.get("instances")
    if not isinstance(items, list) or not items:
        raise Required("instances")
    out: list[state.Member] = []
    for i, value in enumerate(items):
        field = f"instances[{i}]"
        ref = parse_ref(value, project=call.project, scope=group.scope) if isinstance(value, str) else None
        if ref is None or ref.collection != "instances":
            raise Invalid(field, value, "The URL is malformed.")
        m = st.member(ref.name) if ref.project == group.project else None
        m = m if m is not None and ref.scope == m.scope else None
        if m is None or m.action == state.DELETING or m in out:
            raise Invalid(field, value, f"The instance is not managed by "
                                        f"'{path_of(group.project, group.scope, COLLECTION, group.name)}'.")
        out.append(m)
    return out


def _shrink(group: Resource, st: state.State, by: int) -> None:
    body = store.body_of(group)
    body["targetSize"] = max(0, body["targetSize"] - by)
    refresh_calculated(body)
    store.save(group, body)
    st.save()
    state.render(group, st)


def delete_instances(call: Call, where: Where, name: str, body: Body) -> Operation:
    """Delete the named managed instances and lower ``targetSize`` by as many; the reconcile job
    deletes them after the Operation is DONE (as with resize)."""
    group = _locked(call, where, name)
    st = state.load(call.session, group)
    named = _named_members(call, group, st, body)
    for m in named:
        m.action, m.error = state.DELETING, None
    _shrink(group, st, len(named))
    reconcile.enqueue(call.session, group, call.user)
    return _begin(call, group, "deleteInstances")


def abandon_instances(call: Call, where: Where, name: str, body: Body) -> Operation:
    """The named instances leave the group (and its instanceGroups resource) but keep running;
    ``targetSize`` is lowered by as many. Synchronous."""
    group = _locked(call, where, name)
    st = state.load(call.session, group)
    leaving = _named_members(call, group, st, body)
    ig = store.find_optional(call.session, call.project, instance_groups.COLLECTION, group.scope, group.name)
    for m in leaving:
        st.members.remove(m)
        inst = store.find_optional(call.session, call.project, "instances", m.scope, m.name)
        if inst is not None and ig is not None:
            instance_groups.remove_member(call.session, ig, inst)
    _shrink(group, st, len(leaving))
    reconcile.enqueue(call.session, group, call.user)
    return _begin(call, group, "abandonInstances")


# What the other use cases of the package (:mod:`.updates`) share with these.
locked, begin, size, named_members = _locked, _begin, _size, _named_members
