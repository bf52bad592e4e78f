"""Unmanaged instance groups (zonal ``instanceGroups``): a named set of instances of one zone and one
network, with named ports a load balancer's backend service will address.

The group is a stored resource like any other (its ``size`` kept in the body GET returns); its
members are rows of ``instance_group_members`` (GCE's InstanceGroup has no member list: one reads
it with ``listInstances``). Every change is synchronous, so its Operation is born DONE.

Where GCE's behaviour is not documented, gstack chose (see docs/architecture.rst):

* an instance may be in several unmanaged groups (GCE allows it; gstack's backend services do not
  refuse an instance in two of their groups either);
* an instance's network is that of its first interface, the one load balancers use; the group
  takes the network and subnetwork of its first instance when it was created without them;
* removeInstances ignores instances that are not members (the instance itself must exist);
* deleting a group leaves its instances alone; deleting an instance removes it from its groups
  (:func:`forget_instance`, called by the instance's delete job).
"""

from __future__ import annotations

import time

from sqlalchemy import bindparam, func, select
from sqlalchemy import delete as delete_rows
from sqlalchemy.orm import Session

from core import quotas
from core.errors import AlreadyExists, ComputeError, Invalid, Required, ResourceInUse
from core.ids import fingerprint
from core.links import path_of, scope_url, url_of
from core.models import InstanceGroupMember, Operation, Resource
from core.resources import operations, store
from core.resources.context import Call
from core.resources.store import Body
from core.services import projects, vpc
from core.services.metadata import check_fingerprint
from core.services.topology import ZoneInfo

COLLECTION = "instanceGroups"
MANAGER = "instanceGroupManagers"  # a managed group's instanceGroups resource has its name
INSTANCE_STATES = ("ALL", "RUNNING")


class MemberAlreadyExists(ComputeError):
    """GCE's answer to adding an instance that is in the group already."""

    reason = "memberAlreadyExists"
    op_code = "MEMBER_ALREADY_EXISTS"

    def __init__(self, instance: str, group: str):
        super().__init__(f"Resource '{instance}' is already a member of '{group}'.")


def _named_ports(value: object, field: str) -> list[Body]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise Invalid(field, value, "Must be a list of named ports.")
    out: list[Body] = []
    for i, item in enumerate(value):
        here = f"{field}[{i}]"
        if not isinstance(item, dict):
            raise Invalid(here, item, "Must be an object.")
        if item.get("name") in (None, ""):
            raise Required(f"{here}.name")
        name = store.validate_name(item["name"], f"{here}.name")
        port = item.get("port")
        if port is None:
            raise Required(f"{here}.port")
        if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
            raise Invalid(f"{here}.port", port, "Must be between 1 and 65535.")
        out.append({"name": name, "port": port})
    return out


def _set_ports(body: Body, ports: list[Body]) -> None:
    """The named ports and their fingerprint, which changes whenever they do."""
    body.pop("namedPorts", None)
    if ports:
        body["namedPorts"] = ports
    body["fingerprint"] = fingerprint(["namedPorts", ports])


def _subnetwork(call: Call, zone: ZoneInfo, value: object, network_url: str | None) -> Resource:
    region_scope = f"regions/{zone.region.name}"
    ref = vpc.reference(call, value, "resource.subnetwork", "subnetworks", region_scope)
    if ref.scope != region_scope:
        raise Invalid("resource.subnetwork", value, f"The subnetwork must be in region '{zone.region.name}', "
                                                    "the region of the instance group's zone.")
    subnet = store.find(call.session, ref.project, "subnetworks", ref.scope, ref.name)
    if network_url is not None and store.body_of(subnet)["network"] != network_url:
        raise Invalid("resource.subnetwork", value, "The subnetwork must belong to the instance group's network.")
    return subnet


def insert(call: Call, zone: ZoneInfo, body: Body) -> Operation:
    if body.get("name") in (None, ""):
        raise Required("resource.name")
    name = store.validate_name(body.get("name"))
    project = projects.get(call.session, call.project, lock=True)
    scope = f"zones/{zone.name}"
    fields: Body = {}
    if body.get("description"):
        fields["description"] = body["description"]
    _set_ports(fields, _named_ports(body.get("namedPorts"), "resource.namedPorts"))
    network_url = vpc.network_url(vpc.network(call, body["network"], lock=True)) if body.get("network") else None
    if body.get("subnetwork"):
        subnet = _subnetwork(call, zone, body["subnetwork"], network_url)
        network_url = store.body_of(subnet)["network"]
        fields["subnetwork"] = vpc.url(subnet)
    if network_url:
        fields["network"] = network_url
    fields = {k: fields[k] for k in ("description", "namedPorts", "network", "subnetwork", "fingerprint") if k in fields}
    fields.update(zone=scope_url(call.project, scope), size=0)
    if store.exists(call.session, call.project, COLLECTION, scope, name):
        raise AlreadyExists(path_of(call.project, scope, COLLECTION, name))
    quotas.check_region_count(call.session, project, zone.region.name, "INSTANCE_GROUPS")
    res = store.new_resource(call.session, project=call.project, collection=COLLECTION, scope=scope, name=name,
                             kind="compute#instanceGroup", body=fields, region=zone.region.name)
    return operations.begin(call, scope=scope, op_type="compute.instanceGroups.insert", target_path=vpc.path(res),
                            target_id=res.uid)


def _begin(call: Call, group: Resource, method: str) -> Operation:
    kind = "regionInstanceGroups" if group.scope.startswith("regions/") else "instanceGroups"
    return operations.begin(call, scope=group.scope, op_type=f"compute.{kind}.{method}",
                            target_path=vpc.path(group), target_id=group.uid)


def delete(call: Call, zone: ZoneInfo, name: str) -> Operation:
    """Delete the group; its instances stay. A group a backend service uses is refused."""
    scope = f"zones/{zone.name}"
    group = projects.find_for_update(call.session, call.project, COLLECTION, scope, name)
    _refuse_if_managed(call, group)  # the managed group's own goes with the managed group
    services = vpc.mentioning(call.session, call.project, vpc.url(group), ["backendServices"])
    if services:
        raise ResourceInUse("instance_group", vpc.path(group), vpc.path(services[0]))
    op = _begin(call, group, "delete")
    call.session.execute(delete_rows(InstanceGroupMember).where(InstanceGroupMember.group_uid == group.uid))
    call.session.delete(group)
    return op


def _references(body: Body) -> list[tuple[str, object]]:
    """(field, value) of each ``instances[i].instance`` of an add/removeInstances body."""
    items = body.get("instances")
    if items is None:
        return []
    if not isinstance(items, list):
        raise Invalid("instances", items, "Must be a list of instance references.")
    out = []
    for i, item in enumerate(items):
        field = f"instances[{i}].instance"
        value = item.get("instance") if isinstance(item, dict) else None
        if value in (None, ""):
            raise Required(field)
        out.append((field, value))
    return out


def _instances(call: Call, scope: str, body: Body) -> list[tuple[str, object, Resource]]:
    """(field, value, instance) of each instance a body names, in the group's zone, row-locked in name
    order (the order an instance's delete job cannot cross: it locks its instance, then the groups)."""
    refs = []
    for field, value in _references(body):
        ref = vpc.reference(call, value, field, "instances", scope)
        if ref.scope != scope:
            raise Invalid(field, value, f"The instance must be in zone '{scope.split('/')[1]}', the zone of the "
                                        "instance group.")
        refs.append((field, value, ref))
    refs.sort(key=lambda r: r[2].name)
    return [(f, v, store.find(call.session, r.project, "instances", r.scope, r.name, lock=True)) for f, v, r in refs]


_MEMBERS = select(InstanceGroupMember.instance_uid).where(InstanceGroupMember.group_uid == bindparam("group"))


def _member_uids(session: Session, group: Resource) -> set[int]:
    return set(session.scalars(_MEMBERS, {"group": group.uid}))


_SIZE = select(func.count()).select_from(InstanceGroupMember).where(InstanceGroupMember.group_uid == bindparam("group"))
_IS_MEMBER = select(InstanceGroupMember.id).where(InstanceGroupMember.instance_uid == bindparam("instance"),
                                                  InstanceGroupMember.group_uid == bindparam("group"))


def _size(session: Session, group: Resource) -> int:
    """How many members the group has: counted by the database, not fetched (a managed group adds
    its members one at a time, and fetching every member at each made growing a group quadratic)."""
    return int(session.scalar(_SIZE, {"group": group.uid}) or 0)


def _check_network(group_body: Body, field: str, value: object, inst: Resource) -> None:
    nics = store.body_of(inst).get("networkInterfaces") or [{}]
    network, subnet = nics[0].get("network"), nics[0].get("subnetwork")
    if "network" not in group_body:
        group_body["network"] = network
        if subnet:
            group_body["subnetwork"] = subnet
        return
    if network != group_body["network"] or ("subnetwork" in group_body and subnet != group_body["subnetwork"]):
        wanted = group_body.get("subnetwork") or group_body["network"]
        raise Invalid(field, value, f"Instance '{vpc.path(inst)}' is not in "
                                    f"'{vpc.relative(wanted)}', the network of the instance group.")


def _refuse_if_managed(call: Call, group: Resource) -> None:
    """A managed group's instanceGroups resource is its manager's to change: its membership and its
    life follow the manager, so direct changes are refused naming the manager that uses it."""
    if store.exists(call.session, call.project, MANAGER, group.scope, group.name):
        raise ResourceInUse("instance_group", vpc.path(group), path_of(call.project, group.scope, MANAGER, group.name))


def add_instances(call: Call, zone: ZoneInfo, name: str, body: Body) -> Operation:
    scope = f"zones/{zone.name}"
    group = store.find(call.session, call.project, COLLECTION, scope, name)
    instances = _instances(call, scope, body)
    group = projects.find_for_update(call.session, call.project, COLLECTION, scope, name)
    _refuse_if_managed(call, group)
    members = _member_uids(call.session, group)
    current = store.body_of(group)
    for field, value, inst in instances:
        if inst.uid in members:
            raise MemberAlreadyExists(vpc.path(inst), vpc.path(group))
        _check_network(current, field, value, inst)
        members.add(inst.uid)
    now = time.time()
    call.session.add_all([InstanceGroupMember(group_uid=group.uid, instance_uid=i.uid, added=now) for _, _, i in instances])
    _save(group, current, len(members), call.session)
    return _begin(call, group, "addInstances")


def _save(group: Resource, body: Body, size: int, session: Session | None = None) -> None:
    """The body with its size, fields in GCE's order (network and subnetwork may be new); with the
    ``session``, the routers of a group a backend service uses render its new members or ports."""
    if session is not None and body.get("network") and vpc.mentioning(session, group.project, vpc.url(group),
                                                                       ["backendServices"]):
        vpc.notify_router(session, group.project, body["network"])
    body["size"] = size
    order = ("kind", "id", "creationTimestamp", "name", "description", "namedPorts", "network", "subnetwork",
             "fingerprint", "zone", "size", "region", "selfLink")
    store.save(group, {k: body[k] for k in order if k in body})


def remove_instances(call: Call, zone: ZoneInfo, name: str, body: Body) -> Operation:
    scope = f"zones/{zone.name}"
    group = store.find(call.session, call.project, COLLECTION, scope, name)
    instances = _instances(call, scope, body)
    group = projects.find_for_update(call.session, call.project, COLLECTION, scope, name)
    _refuse_if_managed(call, group)
    leaving = {i.uid for _, _, i in instances}
    call.session.execute(delete_rows(InstanceGroupMember).where(InstanceGroupMember.group_uid == group.uid,
                                                           InstanceGroupMember.instance_uid.in_(leaving)))
    _save(group, store.body_of(group), _size(call.session, group), call.session)
    return _begin(call, group, "removeInstances")


def set_named_ports(call: Call, scope: str, name: str, body: Body) -> Operation:
    """Replace the named ports of the group ``name`` in ``scope`` (``zones/Z``, or ``regions/R``: a
    regional managed group's); a given ``fingerprint`` must be the current one (optimistic
    locking: the field is optional, as GCE documents)."""
    group = projects.find_for_update(call.session, call.project, COLLECTION, scope, name)
    current = store.body_of(group)
    if body.get("fingerprint") is not None:
        check_fingerprint(body["fingerprint"], current["fingerprint"])
    _set_ports(current, _named_ports(body.get("namedPorts"), "namedPorts"))
    _save(group, current, current["size"], call.session)
    return _begin(call, group, "setNamedPorts")


_LISTED = (select(Resource.name, Resource.scope, Resource.project, Resource.status)
           .join(InstanceGroupMember, InstanceGroupMember.instance_uid == Resource.uid)
           .where(InstanceGroupMember.group_uid == bindparam("group")).order_by(Resource.name))


def list_instances(call: Call, scope: str, name: str, body: Body) -> list[Body]:
    """listInstances of the group ``name`` in ``scope`` (``zones/Z`` or ``regions/R``): the members
    (``instanceState`` ALL, the default, or only the RUNNING ones) as InstanceWithNamedPorts, in
    name order."""
    state = body.get("instanceState") or "ALL"
    if state not in INSTANCE_STATES:
        raise Invalid("instanceState", state, "Must be ALL or RUNNING.")
    group = store.find(call.session, call.project, COLLECTION, scope, name)
    ports = store.body_of(group).get("namedPorts")
    out = []
    for inst_name, scope, project, status in call.session.execute(_LISTED, {"group": group.uid}):
        if state == "RUNNING" and status != "RUNNING":
            continue
        item: Body = {"instance": url_of(project, scope, "instances", inst_name), "status": status}
        if ports:
            item["namedPorts"] = ports
        out.append(item)
    return out


def forget_instance(session: Session, instance: Resource) -> None:
    """An instance being deleted leaves its groups (as in GCE): their sizes shrink in the caller's
    transaction, which holds the instance's row lock (then the groups', the order add/remove take)."""
    uids = list(session.scalars(select(InstanceGroupMember.group_uid)
                                .where(InstanceGroupMember.instance_uid == instance.uid)))
    if not uids:
        return
    session.execute(delete_rows(InstanceGroupMember).where(InstanceGroupMember.instance_uid == instance.uid))
    for group in session.scalars(select(Resource).where(Resource.uid.in_(uids)).order_by(Resource.uid)
                                 .with_for_update()):
        _save(group, store.body_of(group), _size(session, group))



# -- the instanceGroups resource of a managed group ---------------------------------------------------

MANAGED_DESCRIPTION = ("This instance group is controlled by Instance Group Manager '{}'. To modify instances "
                       "in this group, use the Instance Group Manager API: "
                       "https://cloud.google.com/compute/docs/reference/latest/instanceGroupManagers")


def create_managed(call: Call, scope: str, region: str, name: str, network: str | None,
                   subnetwork: str | None) -> Resource:
    """The instanceGroups resource a managed group ``name`` lists its instances in, in the group's
    scope (``zones/Z``, or ``regions/R`` for a regional group): GCE makes one of the same name, with
    this description. AlreadyExists when an unmanaged group has the name. The group's
    INSTANCE_GROUP_MANAGERS (or REGIONAL_INSTANCE_GROUP_MANAGERS) quota is checked here, with the
    INSTANCE_GROUPS one its instanceGroups resource takes, before either row is written."""
    if store.exists(call.session, call.project, COLLECTION, scope, name):
        raise AlreadyExists(path_of(call.project, scope, COLLECTION, name))
    project = projects.get(call.session, call.project, lock=True)
    managers = "REGIONAL_INSTANCE_GROUP_MANAGERS" if scope.startswith("regions/") else "INSTANCE_GROUP_MANAGERS"
    quotas.check_region_count(call.session, project, region, managers)
    quotas.check_region_count(call.session, project, region, "INSTANCE_GROUPS")
    fields: Body = {"description": MANAGED_DESCRIPTION.format(name)}
    if network:
        fields["network"] = network
    if subnetwork:
        fields["subnetwork"] = subnetwork
    _set_ports(fields, [])
    fields["region" if scope.startswith("regions/") else "zone"] = scope_url(call.project, scope)
    fields["size"] = 0
    return store.new_resource(call.session, project=call.project, collection=COLLECTION, scope=scope, name=name,
                              kind="compute#instanceGroup", body=fields, region=region)


def add_member(session: Session, group: Resource, instance: Resource) -> None:
    """A managed instance joins its group's instanceGroups resource (a repeat is a no-op)."""
    if session.scalar(_IS_MEMBER, {"group": group.uid, "instance": instance.uid}) is not None:
        return
    session.add(InstanceGroupMember(group_uid=group.uid, instance_uid=instance.uid, added=time.time()))
    session.flush()
    _save(group, store.body_of(group), _size(session, group))


def drop(session: Session, group: Resource) -> None:
    """The managed group is gone: its instanceGroups resource and memberships go too."""
    session.execute(delete_rows(InstanceGroupMember).where(InstanceGroupMember.group_uid == group.uid))
    session.delete(group)


def remove_member(session: Session, group: Resource, instance: Resource) -> None:
    """An instance abandoned by its managed group leaves the group's instanceGroups resource."""
    session.execute(delete_rows(InstanceGroupMember).where(InstanceGroupMember.group_uid == group.uid,
                                                           InstanceGroupMember.instance_uid == instance.uid))
    _save(group, store.body_of(group), _size(session, group))
