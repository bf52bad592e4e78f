"""Subnetworks: regional IPv4 ranges of a network. No two ranges of one network overlap, whatever
their regions; each subnetwork has a route to its range, and the network lists its subnetworks."""

from __future__ import annotations

import ipaddress

from sqlalchemy.orm import Session

from core import quotas
from core.errors import AlreadyExists, Invalid, Required, ResourceInUse
from core.ids import fingerprint
from core.links import path_of, scope_url, url_of
from core.models import Operation, Resource
from core.resources import operations, store
from core.resources.context import Call
from core.resources.store import Body
from core.services import allocated_ranges, projects, routes, vpc
from core.services.metadata import check_fingerprint
from core.systemvms import guests, peering

AUTO_MODE_RANGE = ipaddress.IPv4Network("10.128.0.0/9")
AUTO_MODE_LARGEST_PREFIX = 16
# Fields patch may change; any other writable field given must equal the current value.
PATCHABLE = frozenset({"description", "privateIpGoogleAccess", "secondaryIpRanges", "logConfig", "enableFlowLogs",
                       "privateIpv6GoogleAccess"})


def save(res: Resource, body: Body) -> None:
    """Store a changed subnetwork with a new ``fingerprint`` (it changes on every modification)."""
    body["fingerprint"] = fingerprint(["subnetwork", {k: v for k, v in body.items() if k != "fingerprint"}])
    store.save(res, body)


def is_auto(net: Resource, subnet: Resource) -> bool:
    """An auto-mode network's own subnetwork (named after it, one per region)."""
    return bool(store.body_of(net).get("autoCreateSubnetworks")) and subnet.name == net.name


def of_network(session: Session, net: Resource) -> list[Resource]:
    return vpc.referring(session, net.project, "network", vpc.network_url(net), ["subnetworks"])


def create_row(session: Session, project: str, region: str, name: str, net_url: str, block: str,
               fields: Body | None = None) -> Resource:
    """A subnetwork, its route, and its link in the network's ``subnetworks``."""
    net_row = store.find(session, project, "networks", "global", net_url.rsplit("/", 1)[1])
    scope = f"regions/{region}"
    body = {"network": net_url, "ipCidrRange": block,
            "gatewayAddress": str(ipaddress.IPv4Network(block).network_address + 1),
            "region": scope_url(project, scope), "privateIpGoogleAccess": False, "stackType": "IPV4_ONLY",
            "purpose": "PRIVATE", **(fields or {})}
    res = store.new_resource(session, project=project, collection="subnetworks", scope=scope, name=name,
                             kind="compute#subnetwork", region=region, body=body)
    save(res, store.body_of(res))
    routes.create_subnet_route(session, project, net_url, block)
    net = store.body_of(net_row)
    net["subnetworks"] = [*net.get("subnetworks", []), url_of(project, scope, "subnetworks", name)]
    store.save(net_row, net)
    return res


def _secondary_ranges(value: object) -> list[Body]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise Invalid("resource.secondaryIpRanges", value, "Must be a list.")
    out: list[Body] = []
    for i, item in enumerate(value):
        field = f"resource.secondaryIpRanges[{i}]"
        if not isinstance(item, dict):
            raise Invalid(field, item, "Must be an object.")
        name = store.validate_name(item.get("rangeName"), f"{field}.rangeName")
        if any(r["rangeName"] == name for r in out):
            raise Invalid(f"{field}.rangeName", name, "Secondary range names must be unique in a subnetwork.")
        out.append({"rangeName": name, "ipCidrRange": str(vpc.cidr(item.get("ipCidrRange"), f"{field}.ipCidrRange"))})
    return out


def _ranges_of(body: Body) -> list[ipaddress.IPv4Network]:
    return [ipaddress.IPv4Network(body["ipCidrRange"]),
            *(ipaddress.IPv4Network(r["ipCidrRange"]) for r in body.get("secondaryIpRanges", []))]


def check_overlap(session: Session, net: Resource, new: list[tuple[str, ipaddress.IPv4Network]],
                  except_uid: int | None = None) -> None:
    """Refuse a range that overlaps another range of the network (any region), or one of ``new``."""
    for i, (field, block) in enumerate(new):
        for other_field, other in new[:i]:
            if block.overlaps(other):
                raise Invalid(field, str(block), f"Invalid IPCidrRange: {block} conflicts with {other} "
                                                 f"('{other_field}').")
        allocated_ranges.check_free(session, net.project, vpc.network_url(net), field, block)
        clash = peering.conflicting(session, vpc.network_url(net), str(block))
        if clash:
            raise Invalid(field, str(block), f"Invalid IPCidrRange: {block} conflicts with peer network in active "
                                             f"peering '{clash}'.")
        for sub in of_network(session, net):
            if sub.uid == except_uid:
                continue
            body = store.body_of(sub)
            if any(block.overlaps(r) for r in _ranges_of(body)):
                raise Invalid(field, str(block), f"Invalid IPCidrRange: {block} conflicts with existing subnetwork "
                                                 f"'{sub.name}' in region '{sub.region}'.")


def _check_auto_mode_range(net: Resource, block: ipaddress.IPv4Network, field: str) -> None:
    if store.body_of(net).get("autoCreateSubnetworks") and block.overlaps(AUTO_MODE_RANGE):
        raise Invalid(field, str(block), f"Extended subnetworks in auto subnet mode networks cannot overlap with "
                                         f"{AUTO_MODE_RANGE}.")


def _optional_fields(body: Body) -> Body:
    out: Body = {}
    if body.get("description"):
        out["description"] = body["description"]
    if body.get("privateIpGoogleAccess") is not None:
        out["privateIpGoogleAccess"] = bool(body["privateIpGoogleAccess"])
    for key in ("logConfig", "enableFlowLogs", "privateIpv6GoogleAccess"):
        if body.get(key) is not None:
            out[key] = body[key]
    return out


# What a subnetwork is for. VMs live in the first two; a proxy-only subnetwork gives Envoy-based load
# balancers their source addresses and a Private Service Connect one a producer's NAT addresses, so
# neither takes VMs (:func:`check_for_instances`).
VM_PURPOSES = ("PRIVATE", "PRIVATE_RFC_1918")
PROXY_PURPOSES = ("REGIONAL_MANAGED_PROXY", "GLOBAL_MANAGED_PROXY", "INTERNAL_HTTPS_LOAD_BALANCER")
PURPOSES = (*VM_PURPOSES, "PRIVATE_SERVICE_CONNECT", *PROXY_PURPOSES)
ROLES = ("ACTIVE", "BACKUP")


def _purpose(body: Body) -> Body:
    """``purpose``, and for a proxy-only subnetwork its ``role`` (required) and ``state``."""
    purpose = body.get("purpose") or "PRIVATE"
    if purpose not in PURPOSES:
        raise Invalid("resource.purpose", purpose, f"Must be one of {', '.join(PURPOSES)}.")
    role = body.get("role")
    if purpose not in PROXY_PURPOSES:
        if role:
            raise Invalid("resource.role", role, "The role can only be set on subnetworks with purpose "
                                                 "REGIONAL_MANAGED_PROXY or GLOBAL_MANAGED_PROXY.")
        return {"purpose": purpose}
    if not role:
        raise Required("resource.role")
    if role not in ROLES:
        raise Invalid("resource.role", role, "Must be ACTIVE or BACKUP.")
    if body.get("privateIpGoogleAccess"):
        raise Invalid("resource.privateIpGoogleAccess", True, f"Subnetworks with purpose {purpose} cannot enable "
                                                              "Private Google Access.")
    return {"purpose": purpose, "role": role, "state": "READY"}


def _one_active(call: Call, scope: str, net: Resource, purpose: str, except_uid: int | None) -> None:
    """A network has one ACTIVE proxy-only subnetwork per region and purpose."""
    for sub in of_network(call.session, net):
        body = store.body_of(sub)
        if (sub.scope, body.get("purpose"), body.get("role")) == (scope, purpose, "ACTIVE") and sub.uid != except_uid:
            raise Invalid("resource.role", "ACTIVE", f"An ACTIVE subnetwork with purpose {purpose} already exists "
                                                     f"in region '{scope.split('/', 1)[1]}' of this network: "
                                                     f"'{sub.name}'.")


def check_for_instances(subnet: Resource, field: str, value: object) -> None:
    """Refuse a subnetwork that is not for VMs as an instance's."""
    purpose = store.body_of(subnet).get("purpose", "PRIVATE")
    if purpose not in VM_PURPOSES:
        raise Invalid(field, value, f"Subnetworks with purpose {purpose} cannot be used by VM instances.")


def insert(call: Call, region: str, body: Body) -> Operation:
    if body.get("name") in (None, ""):
        raise Required("resource.name")
    name = store.validate_name(body.get("name"))
    scope = vpc.region_scope(call.session, call.project, region)
    project = projects.get(call.session, call.project, lock=True)
    net = vpc.network(call, body.get("network"), lock=True)  # subnetworks of one network are added one at a time
    block = vpc.cidr(body.get("ipCidrRange"), "resource.ipCidrRange")
    if body.get("stackType", "IPV4_ONLY") != "IPV4_ONLY":
        raise Invalid("resource.stackType", body.get("stackType"), "Only IPV4_ONLY subnetworks are supported.")
    purpose_fields = _purpose(body)
    if store.find_optional(call.session, call.project, "subnetworks", scope, name):
        raise AlreadyExists(path_of(call.project, scope, "subnetworks", name))
    _check_auto_mode_range(net, block, "resource.ipCidrRange")
    secondary = _secondary_ranges(body.get("secondaryIpRanges"))
    check_overlap(call.session, net, [("resource.ipCidrRange", block)] + [
        (f"resource.secondaryIpRanges[{i}].ipCidrRange", ipaddress.IPv4Network(r["ipCidrRange"]))
        for i, r in enumerate(secondary)])
    quotas.check_global(call.session, project, "SUBNETWORKS")
    fields = {**_optional_fields(body), **purpose_fields}
    if purpose_fields.get("role") == "ACTIVE":
        _one_active(call, scope, net, purpose_fields["purpose"], None)
    if secondary:
        fields["secondaryIpRanges"] = secondary
    res = create_row(call.session, call.project, scope.split("/", 1)[1], name, vpc.network_url(net), str(block),
                     fields)
    vpc.notify_router(call.session, call.project, vpc.network_url(net), peers=True)
    return operations.begin(call, scope=scope, op_type="insert", target_path=vpc.path(res), target_id=res.uid)


def _locked(call: Call, region: str, name: str) -> tuple[Resource, Resource]:
    """(network, subnetwork), both row-locked, the network first (the order insert takes them in)."""
    scope = vpc.region_scope(call.session, call.project, region)
    subnet = store.find(call.session, call.project, "subnetworks", scope, name)
    net = vpc.network(call, store.body_of(subnet)["network"], lock=True)
    return net, projects.find_for_update(call.session, call.project, "subnetworks", scope, subnet.name)


def delete(call: Call, region: str, name: str) -> Operation:
    net, subnet = _locked(call, region, name)
    if is_auto(net, subnet):
        raise Invalid("subnetwork", subnet.name, message=(
            f"Invalid resource usage: 'Cannot delete auto subnetwork '{subnet.name}' from an auto subnet mode "
            f"network; switch network '{net.name}' to custom mode first.'."))
    subnet_url = vpc.url(subnet)
    users = vpc.referring(call.session, call.project, "subnetwork", subnet_url,
                          ["addresses", "forwardingRules", "networkEndpointGroups"])
    instance = guests.instance_on(call.session, [subnet])  # any project's (a Shared VPC service project's too)
    users = sorted([*users, *([instance] if instance is not None else [])], key=lambda u: u.collection)
    if users:
        raise ResourceInUse("subnetwork", vpc.path(subnet), vpc.path(users[0]))
    op = operations.begin(call, scope=subnet.scope, op_type="delete", target_path=vpc.path(subnet),
                          target_id=subnet.uid)
    remove(call.session, net, subnet)
    vpc.notify_router(call.session, call.project, vpc.network_url(net), peers=True)
    return op


def remove(session: Session, net: Resource, subnet: Resource) -> None:
    """Delete a subnetwork with its route, and unlink it from its network."""
    body = store.body_of(subnet)
    route = routes.subnet_route(session, subnet.project, vpc.network_url(net), body["ipCidrRange"])
    if route is not None:
        session.delete(route)
    net_body = store.body_of(net)
    remaining = [u for u in net_body.pop("subnetworks", []) if u != vpc.url(subnet)]
    if remaining:
        net_body["subnetworks"] = remaining
    store.save(net, net_body)
    session.delete(subnet)


def _same(key: str, given: object, current: object) -> bool:
    if key in ("network", "region") and isinstance(given, str) and isinstance(current, str):
        return given.rstrip("/").rsplit("/", 1)[-1] == current.rsplit("/", 1)[-1]
    return given == current


def patch(call: Call, region: str, name: str, body: Body) -> Operation:
    net, subnet = _locked(call, region, name)
    current = store.body_of(subnet)
    check_fingerprint(body.get("fingerprint"), current["fingerprint"])
    changed = dict(current)
    if body.get("role") not in (None, current.get("role")):
        _promote(call, net, subnet, body["role"])
        changed["role"] = body["role"]
    for key, value in body.items():
        if key in vpc.OUTPUT_ONLY or key in ("gatewayAddress", "role", "state"):
            continue
        if key in PATCHABLE:
            if value is None:
                changed.pop(key, None)
            else:
                changed[key] = value
        elif not _same(key, value, current.get(key)):
            raise Invalid(f"resource.{key}", value, "This field cannot be changed by patch"
                          + (" (use expandIpCidrRange)." if key == "ipCidrRange" else "."))
    if "secondaryIpRanges" in body:
        secondary = _secondary_ranges(body["secondaryIpRanges"])
        check_overlap(call.session, net, [("resource.ipCidrRange", ipaddress.IPv4Network(current["ipCidrRange"]))] + [
            (f"resource.secondaryIpRanges[{i}].ipCidrRange", ipaddress.IPv4Network(r["ipCidrRange"]))
            for i, r in enumerate(secondary)], except_uid=subnet.uid)
        if secondary:
            changed["secondaryIpRanges"] = secondary
        else:
            changed.pop("secondaryIpRanges", None)
    if "privateIpGoogleAccess" in changed:
        changed["privateIpGoogleAccess"] = bool(changed["privateIpGoogleAccess"])
    save(subnet, changed)
    vpc.notify_router(call.session, call.project, vpc.network_url(net), peers=True)
    return operations.begin(call, scope=subnet.scope, op_type="patch", target_path=vpc.path(subnet),
                            target_id=subnet.uid)


def _promote(call: Call, net: Resource, subnet: Resource, role: object) -> None:
    """A proxy-only subnetwork's role changed by patch: promoting the BACKUP one makes the ACTIVE one
    of its region and purpose the BACKUP, as GCE swaps them."""
    purpose = store.body_of(subnet).get("purpose")
    if purpose not in PROXY_PURPOSES:
        raise Invalid("resource.role", role, "The role can only be set on subnetworks with purpose "
                                             "REGIONAL_MANAGED_PROXY or GLOBAL_MANAGED_PROXY.")
    if role not in ROLES:
        raise Invalid("resource.role", role, "Must be ACTIVE or BACKUP.")
    if role != "ACTIVE":
        return
    for other in of_network(call.session, net):
        body = store.body_of(other)
        if (other.scope, body.get("purpose"), body.get("role")) == (subnet.scope, purpose, "ACTIVE"):
            save(other, {**body, "role": "BACKUP"})  # the network's lock, held, orders its subnetworks' writes


def expand_ip_cidr_range(call: Call, region: str, name: str, body: Body) -> Operation:
    """Grow the primary range to a shorter prefix that contains it; never shrink or move it."""
    net, subnet = _locked(call, region, name)
    current = store.body_of(subnet)
    old = ipaddress.IPv4Network(current["ipCidrRange"])
    value = body.get("ipCidrRange")
    new = vpc.cidr(value, "ipCidrRange")
    if not (new.prefixlen < old.prefixlen and old.subnet_of(new)):
        raise Invalid("ipCidrRange", value, f"The new range must contain the current range {old} and be larger "
                                            "than it: a subnetwork's range can only be expanded.")
    if is_auto(net, subnet) and (not new.subnet_of(AUTO_MODE_RANGE) or new.prefixlen < AUTO_MODE_LARGEST_PREFIX):
        raise Invalid("ipCidrRange", value, f"Auto-mode subnetworks can be expanded within {AUTO_MODE_RANGE} up to "
                                            f"/{AUTO_MODE_LARGEST_PREFIX}; switch the network to custom mode first.")
    check_overlap(call.session, net, [("ipCidrRange", new)], except_uid=subnet.uid)
    secondary = [ipaddress.IPv4Network(r["ipCidrRange"]) for r in current.get("secondaryIpRanges", [])]
    if any(new.overlaps(r) for r in secondary):
        raise Invalid("ipCidrRange", value, "Invalid IPCidrRange: the expanded range conflicts with a secondary "
                                            "range of the subnetwork.")
    current.update(ipCidrRange=str(new), gatewayAddress=str(new.network_address + 1))
    save(subnet, current)
    routes.move_subnet_route(call.session, call.project, vpc.network_url(net), str(old), str(new))
    vpc.notify_router(call.session, call.project, vpc.network_url(net), peers=True)
    return operations.begin(call, scope=subnet.scope, op_type="expandIpCidrRange", target_path=vpc.path(subnet),
                            target_id=subnet.uid)


def set_private_ip_google_access(call: Call, region: str, name: str, body: Body) -> Operation:
    net, subnet = _locked(call, region, name)
    value = body.get("privateIpGoogleAccess")
    if not isinstance(value, bool):
        raise Required("privateIpGoogleAccess")
    current = store.body_of(subnet)
    current["privateIpGoogleAccess"] = value
    save(subnet, current)
    vpc.notify_router(call.session, call.project, vpc.network_url(net), peers=True)
    return operations.begin(call, scope=subnet.scope, op_type="setPrivateIpGoogleAccess",
                            target_path=vpc.path(subnet), target_id=subnet.uid)
