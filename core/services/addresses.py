"""Static addresses, regional (``addresses``) and global (``globalAddresses``).

An EXTERNAL address holds its IP in the IPAM pool its users draw from (``external:<region>``), so an
instance or a forwarding rule asking for that IP finds it there and becomes one of its ``users``;
an INTERNAL address holds its IP in its subnetwork's pool. An address is RESERVED until something
uses it, then IN_USE: an instance uses an internal one as a NIC's ``networkIP``, an external one as
an access config's ``natIP``. Reserving the ephemeral IP an instance already has promotes it to static.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import cast

from sqlalchemy import select
from sqlalchemy.exc import InvalidRequestError
from sqlalchemy.orm import Session

from core import ipam, quotas
from core.errors import AlreadyExists, ComputeError, Invalid, NotFound, Required, ResourceInUse
from core.links import parse_ref, path_of, scope_url
from core.models import IpAllocation, Operation, Resource
from core.resources import operations, store
from core.resources.context import Call
from core.resources.states import STAY, Move, StateTable
from core.resources.store import Body
from core.services import allocated_ranges, projects, vpc
from core.services.metadata import label_fingerprint, set_labels, validate_labels

# Global addresses come from the top /24 of the external range: regional pools reach it last.
GLOBAL_RANGE = str(list(ipaddress.ip_network(ipam.EXTERNAL_RANGE).subnets(new_prefix=24))[-1])
TYPES = ("EXTERNAL", "INTERNAL")
TIERS = ("PREMIUM", "STANDARD")

# An address's status follows its users: the first one makes it IN_USE, the last one leaving makes
# it RESERVED again. Who may become a user is decided by :func:`attach` (a forwarding rule may share
# an address another one uses), so no cell of the table is refused.
RESERVED, IN_USE = "RESERVED", "IN_USE"
USED, FREED = "used", "freed"
STATES = StateTable("address", (RESERVED, IN_USE), (USED, FREED),
                    {(RESERVED, USED): Move(IN_USE), (IN_USE, USED): STAY,
                     (IN_USE, FREED): Move(RESERVED), (RESERVED, FREED): STAY},
                    lambda path, status, action: ResourceInUse("address", path, ""))


class AddressTaken(ComputeError):
    """The IP asked for is held by another resource (GCE answers 409 IP_IN_USE_BY_ANOTHER_RESOURCE)."""

    status = 409
    reason = "alreadyExists"
    op_code = "RESOURCE_ALREADY_EXISTS"

    def __init__(self, ip: str):
        super().__init__(f"IP_IN_USE_BY_ANOTHER_RESOURCE - IP '{ip}' is already being used by another resource.")


def external_pool(scope: str) -> str:
    """The IPAM pool of external addresses of a scope (``regions/R`` or ``global``)."""
    return ipam.external_pool("global" if scope == "global" else scope.split("/", 1)[1])


def holder(session: Session, pool: str, ip: str) -> Resource | None:
    """The resource holding ``ip`` in ``pool`` (an address, an instance, a forwarding rule), if any."""
    owner = session.scalar(select(IpAllocation.owner_uid).where(
        IpAllocation.pool == pool, IpAllocation.address == int(ipaddress.ip_address(ip))))
    return session.scalar(select(Resource).where(Resource.uid == owner)) if owner is not None else None


def static_at(session: Session, pool: str, ip: str) -> Resource | None:
    res = holder(session, pool, ip)
    return res if res is not None and res.collection == "addresses" else None


def _still_uses(session: Session, user_url: str, ip: str) -> bool:
    """Whether a listed user still holds the address (an instance or rule deleted meanwhile does not)."""
    ref = parse_ref(user_url, project="")
    row = store.find_optional(session, ref.project, ref.collection, ref.scope, ref.name) if ref else None
    if ref is None or row is None:
        return False
    body = store.body_of(row)
    if ref.collection == "instances":
        return any(nic.get("networkIP") == ip or any(ac.get("natIP") == ip for ac in nic.get("accessConfigs", []))
                   for nic in body.get("networkInterfaces", []))
    if ref.collection == "forwardingRules":
        return body.get("IPAddress") == ip
    return True


def live_users(session: Session, addr: Resource) -> list[str]:
    body = store.body_of(addr)
    return [u for u in body.get("users", []) if _still_uses(session, u, body["address"])]


def _set_users(addr: Resource, users: list[str]) -> None:
    body = store.body_of(addr)
    body.pop("users", None)
    if users:
        body["users"] = users
    addr.status = body["status"] = STATES.event(addr.status, USED if users else FREED).status or addr.status
    store.save(addr, body)


def _lock(session: Session, addr: Resource) -> Resource:
    session.flush()
    try:
        session.refresh(addr, with_for_update=True)
    except InvalidRequestError:  # deleted meanwhile
        raise NotFound(vpc.path(addr)) from None
    return addr


def attach(session: Session, addr: Resource, user_url: str,
           shareable: Callable[[list[str]], bool] | None = None) -> None:
    """Make ``user_url`` a user of the address; 400 while another resource uses it (unless ``shareable``
    says the current users and the new one can share it, as forwarding rules on distinct ports can)."""
    _lock(session, addr)
    users = live_users(session, addr)
    if users and (shareable is None or not shareable(users)):
        raise ResourceInUse("address", vpc.path(addr), vpc.relative(users[0]))
    _set_users(addr, [*users, user_url])


def detach(session: Session, addr: Resource, user_url: str) -> None:
    _lock(session, addr)
    _set_users(addr, [u for u in live_users(session, addr) if u != user_url])


def use_for_instance(session: Session, project: str, region: str, ip: str, instance_url: str) -> bool:
    """An access config asks for ``ip``: if it is a static address of the project, the instance uses it
    (True); False when it is not one (the caller then takes it as an ephemeral address)."""
    addr = static_at(session, ipam.external_pool(region), ip)
    if addr is None or addr.project != project:
        return False
    attach(session, addr, instance_url)
    return True


def use_internal_for_instance(session: Session, project: str, subnet: Resource, ip: str, instance_url: str) -> bool:
    """A NIC asks for ``ip`` as its ``networkIP``: if it is a static internal address of the project in
    the NIC's subnetwork, the instance uses it (True); False when it is not one."""
    addr = static_at(session, subnet_pool(subnet), ip)
    if addr is None or addr.project != project:
        return False
    attach(session, addr, instance_url)
    return True


def subnet_pool(subnet: Resource) -> str:
    """The IPAM pool of a subnetwork's internal addresses."""
    return ipam.subnet_pool(subnet.uid)


def release_for_instance(session: Session, region: str, ip: str, instance_url: str) -> None:
    """An access config using ``ip`` went away: a static address goes back to RESERVED."""
    addr = static_at(session, ipam.external_pool(region), ip)
    if addr is not None:
        detach(session, addr, instance_url)


def release_instance(session: Session, instance: Resource) -> None:
    """An instance is going away: the static addresses it uses (its access configs' external ones,
    its NICs' internal ones) go back to RESERVED.

    For the instance delete job (and a failed insert that deletes the instance), in the transaction
    that deletes the row; until then the address lists a user that no longer exists, which every
    check here ignores (:func:`live_users`), but GET still shows it IN_USE.
    """
    url = vpc.url(instance)
    for nic in store.body_of(instance).get("networkInterfaces", []):
        for ac in nic.get("accessConfigs", []):
            if ac.get("natIP"):
                # An instance's row always holds its zone's region.
                release_for_instance(session, cast(str, instance.region), ac["natIP"], url)
        ref = parse_ref(nic.get("subnetwork", ""), project=instance.project)
        subnet = store.find_optional(session, ref.project, ref.collection, ref.scope, ref.name) if ref else None
        addr = static_at(session, subnet_pool(subnet), nic["networkIP"]) if subnet and nic.get("networkIP") else None
        if addr is not None:
            detach(session, addr, url)


def user_networks(session: Session, users: list[str]) -> set[str]:
    """The networks whose virtual routers serve these users of an address."""
    out: set[str] = set()
    for user in users:
        ref = parse_ref(user, project="")
        row = store.find_optional(session, ref.project, ref.collection, ref.scope, ref.name) if ref else None
        if ref is None or row is None:
            continue
        body = store.body_of(row)
        if ref.collection == "instances":
            out |= {n["network"] for n in body.get("networkInterfaces", []) if n.get("accessConfigs")}
        elif ref.collection == "forwardingRules":
            target = parse_ref(body["target"], project="")
            pool = store.find_optional(session, target.project, target.collection, target.scope, target.name) \
                if target else None
            out |= instance_networks(session, store.body_of(pool).get("instances", [])) if pool else set()
    return out


def instance_networks(session: Session, instance_urls: list[str]) -> set[str]:
    out: set[str] = set()
    for url in instance_urls:
        ref = parse_ref(url, project="")
        row = store.find_optional(session, ref.project, "instances", ref.scope, ref.name) if ref else None
        if row is not None:
            out |= {n["network"] for n in store.body_of(row).get("networkInterfaces", [])}
    return out


def _notify(session: Session, addr: Resource) -> None:
    body = store.body_of(addr)
    networks = user_networks(session, body.get("users", []))
    if body.get("subnetwork"):
        ref = parse_ref(body["subnetwork"], project="")
        subnet = store.find_optional(session, ref.project, "subnetworks", ref.scope, ref.name) if ref else None
        if subnet is not None:
            networks.add(store.body_of(subnet)["network"])
    for network in sorted(networks):
        vpc.notify_router(session, addr.project, network)


# -- use cases ---------------------------------------------------------------------------------------


def _external_ip(call: Call, addr: Resource, scope: str, requested: object) -> str:
    """Take the requested external IP (promoting an ephemeral one in use) or the next free one."""
    pool = external_pool(scope)
    if requested in (None, ""):
        cidr = GLOBAL_RANGE if scope == "global" else ipam.EXTERNAL_RANGE
        return ipam.allocate(call.session, pool, cidr, addr.uid)
    ip = vpc.external_address(requested, "resource.address")
    if not _take_or_promote(call, addr, pool, ip, ("instances", "forwardingRules")):
        raise AddressTaken(ip)
    return ip


def _take_or_promote(call: Call, addr: Resource, pool: str, ip: str, users: tuple[str, ...]) -> bool:
    """Reserve ``ip`` for the address. An IP that a resource of the project (of the ``users``
    collections) holds as its ephemeral address is promoted: it stays where it is, the address now
    owns it, and that resource is its user. False when something else holds it."""
    if ipam.reserve(call.session, pool, ip, addr.uid):
        return True
    current = holder(call.session, pool, ip)
    if current is None or current.project != call.project or current.collection not in users:
        return False
    call.session.execute(IpAllocation.__table__.update().where(
        IpAllocation.pool == pool, IpAllocation.address == int(ipaddress.ip_address(ip))).values(
            owner_uid=addr.uid, project=None))  # now a static address's: counted as one (IN_USE), not as ephemeral
    _set_users(addr, [vpc.url(current)])
    return True


def _internal_ip(call: Call, addr: Resource, scope: str, body: Body) -> tuple[str, Resource]:
    if scope == "global":
        raise Invalid("resource.addressType", "INTERNAL", "Global INTERNAL addresses are not supported.")
    ref = vpc.reference(call, body.get("subnetwork"), "resource.subnetwork", "subnetworks", scope)
    if ref.scope != scope:
        raise Invalid("resource.subnetwork", body.get("subnetwork"), f"The subnetwork must be in region "
                                                                     f"'{scope.split('/', 1)[1]}'.")
    # locked: the subnetwork cannot be deleted while one of its addresses is being reserved
    subnet = projects.find_for_update(call.session, ref.project, "subnetworks", ref.scope, ref.name)
    block = store.body_of(subnet)["ipCidrRange"]
    pool = subnet_pool(subnet)
    if body.get("address") in (None, ""):
        return ipam.allocate(call.session, pool, block, addr.uid), subnet
    ip = vpc.host_address(body["address"], block, "resource.address")
    if not _take_or_promote(call, addr, pool, ip, ("instances",)):
        raise AddressTaken(ip)
    return ip, subnet


def _subnet_ranges(call: Call, body: Body) -> list[ipaddress.IPv4Network]:
    net = vpc.network(call, body.get("network"))
    return [ipaddress.IPv4Network(r) for sub in vpc.referring(call.session, call.project, "network",
                                                              vpc.network_url(net), ["subnetworks"])
            for r in [store.body_of(sub)["ipCidrRange"],
                      *(x["ipCidrRange"] for x in store.body_of(sub).get("secondaryIpRanges", []))]]


def insert(call: Call, scope: str, body: Body) -> Operation:
    """addresses.insert (``scope`` ``regions/R``) and globalAddresses.insert (``global``)."""
    if body.get("name") in (None, ""):
        raise Required("resource.name")
    name = store.validate_name(body.get("name"))
    kind = body.get("addressType") or "EXTERNAL"
    if kind not in TYPES:
        raise Invalid("resource.addressType", kind, "Must be EXTERNAL or INTERNAL.")
    if body.get("ipVersion", "IPV4") not in ("IPV4", "UNSPECIFIED_VERSION"):
        raise Invalid("resource.ipVersion", body.get("ipVersion"), "Only IPV4 addresses are supported.")
    tier = body.get("networkTier") or (
        "PREMIUM" if scope == "global" else projects.default_network_tier(call.session, call.project))
    if tier not in TIERS or (scope == "global" and tier != "PREMIUM"):
        raise Invalid("resource.networkTier", tier, "Must be PREMIUM" + (" or STANDARD." if scope != "global" else "."))
    if kind == "EXTERNAL" and body.get("subnetwork"):
        raise Invalid("resource.subnetwork", body["subnetwork"], "Only INTERNAL addresses are in a subnetwork.")
    peering = body.get("purpose") == allocated_ranges.PURPOSE
    if peering and scope != "global":
        raise Invalid("resource.purpose", body["purpose"], "Only global addresses may have purpose VPC_PEERING.")
    if not peering and (body.get("purpose") not in (None, "", "GCE_ENDPOINT") or
                        (kind == "EXTERNAL" and body.get("purpose"))):
        raise Invalid("resource.purpose", body.get("purpose"), "Only GCE_ENDPOINT (for INTERNAL addresses) and "
                                                               "VPC_PEERING (for global ones) are supported.")
    labels = validate_labels(body.get("labels"))
    project = projects.get(call.session, call.project, lock=True)
    if store.find_optional(call.session, call.project, "addresses", scope, name):
        raise AlreadyExists(path_of(call.project, scope, "addresses", name))
    region = None if scope == "global" else scope.split("/", 1)[1]
    if kind == "EXTERNAL" and region:
        quotas.check_region(call.session, project, region, {"STATIC_ADDRESSES": 1})
    fields: Body = {"description": body["description"]} if body.get("description") else {}
    fields.update({"address": "", "addressType": kind, "networkTier": tier, "ipVersion": "IPV4"})
    if region:
        fields["region"] = scope_url(call.project, scope)
    fields.update(labels=labels, labelFingerprint=label_fingerprint(labels))
    addr = store.new_resource(call.session, project=call.project, collection="addresses", scope=scope, name=name,
                              kind="compute#address", status=RESERVED, region=region, subtype=kind, body=fields)
    if peering:
        extra = allocated_ranges.reserve(call, body, _subnet_ranges(call, body))
        ip = extra.pop("address")
    elif kind == "EXTERNAL":
        ip = _external_ip(call, addr, scope, body.get("address"))
        extra = {}
    else:
        ip, subnet = _internal_ip(call, addr, scope, body)
        extra = {"purpose": "GCE_ENDPOINT", "subnetwork": vpc.url(subnet)}
    stored = store.body_of(addr)
    stored.update(address=ip, **extra)
    store.save(addr, stored)
    _notify(call.session, addr)
    return operations.begin(call, scope=scope, op_type="insert", target_path=vpc.path(addr), target_id=addr.uid)


def delete(call: Call, scope: str, name: str) -> Operation:
    addr = projects.find_for_update(call.session, call.project, "addresses", scope, name)
    users = live_users(call.session, addr)
    if users:
        raise ResourceInUse("address", vpc.path(addr), vpc.relative(users[0]))
    op = operations.begin(call, scope=scope, op_type="delete", target_path=vpc.path(addr), target_id=addr.uid)
    _notify(call.session, addr)
    ipam.release_owner(call.session, addr.uid)
    call.session.delete(addr)
    return op


def set_address_labels(call: Call, scope: str, name: str, body: Body) -> Operation:
    addr = projects.find_for_update(call.session, call.project, "addresses", scope, name)
    stored = store.body_of(addr)
    set_labels(stored, body)
    store.save(addr, stored)
    return operations.begin(call, scope=scope, op_type="setLabels", target_path=vpc.path(addr), target_id=addr.uid)
