"""An instance's network interfaces and access configs: their internal and external addresses
(IPAM, static addresses of the project) and the use cases that change access configs.

Any change here asks the network's virtual router to re-render (DHCP, DNS, NAT), in the same
transaction as the change.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from sqlalchemy import delete as sql_delete
from sqlalchemy import select
from sqlalchemy.orm import Session

from core import ipam, quotas
from core.errors import ComputeError, Invalid, Required, ResourceInUse
from core.ids import fingerprint
from core.links import path_of, url_of
from core.models import IpAllocation, Operation, Resource
from core.resources import store
from core.resources.context import Call
from core.services import addresses, projects, vpc
from core.services.instances.reads import Taken
from core.services.instances.rows import instance_path, locked, operation, save
from core.services.instances.spec import ParsedNic, check_access_config
from core.services.topology import ZoneInfo

_PTR_FIELDS = ("setPublicPtr", "publicPtrDomainName")


class AddressInUse(ResourceInUse):
    """An address asked for is held by another resource (its message names the holder)."""

    def __init__(self, message: str):
        ComputeError.__init__(self, message)


def _address_owner(session: Session, pool: str, address: str) -> str:
    """The relative path of the instance holding ``address`` in ``pool`` (for in-use messages)."""
    owner = session.scalar(select(IpAllocation.owner_uid).where(
        IpAllocation.pool == pool, IpAllocation.address == int(ipaddress.ip_address(address))))
    res = session.scalar(select(Resource).where(Resource.uid == owner)) if owner is not None else None
    return instance_path(res) if res is not None else "another resource"


def _reserve(call: Call, pool: str, address: str, uid: int, what: str, project: str | None = None) -> str:
    if not ipam.reserve(call.session, pool, address, uid, project):
        raise AddressInUse(f"The IP address '{address}' of {what} is already being used by "
                           f"'{_address_owner(call.session, pool, address)}'")
    return address


def _access_config(call: Call, zone: ZoneInfo, uid: int, instance_url: str, ac: dict[str, Any],
                   guesses: ipam.Guesses | None = None, taken: Taken | None = None) -> dict[str, Any]:
    """An access config with its external address: a static address of the region (which becomes
    IN_USE), another requested one (reserved), or an ephemeral one.

    ``guesses`` with ``taken``, an insert's first read that brought what an ephemeral address needs
    (its pool's highest address, the project's static addresses, its settings): the address is
    predicted, and its quota check and tier use that read, so the insert reads nothing else (see
    :func:`internal_address`)."""
    region = zone.region.name
    pool = ipam.external_pool(region)
    nat = ac.get("natIP")
    read = taken if guesses is not None and taken is not None and taken.settings is not None and not nat else None
    project = read.project if read is not None and read.project is not None else projects.get(call.session, call.project)
    quotas.check_region(call.session, project, region, {"IN_USE_ADDRESSES": 1},
                        *((read.counters, read.statics) if read is not None else ()))
    if nat:
        if not addresses.use_for_instance(call.session, call.project, region, nat, instance_url):
            _reserve(call, pool, nat, uid, f"region '{region}'", call.project)  # counted in IN_USE_ADDRESSES
    else:
        guess = None if read is None or guesses is None else guesses.predict(pool, ipam.EXTERNAL_RANGE, uid,
                                                                              project=call.project)
        nat = guess.text if guess is not None else ipam.allocate(call.session, pool, ipam.EXTERNAL_RANGE, uid,
                                                                 project=call.project)
    tier = ac.get("networkTier") or (read.settings["defaultNetworkTier"] if read is not None and read.settings
                                     else projects.default_network_tier(call.session, call.project))
    return {"kind": "compute#accessConfig", "type": "ONE_TO_ONE_NAT", "name": ac.get("name") or "External NAT",
            "natIP": nat, "networkTier": tier}


def nic_fingerprint(nic: dict[str, Any]) -> str:
    return fingerprint(["nic", {k: v for k, v in nic.items() if k != "fingerprint"}])


def internal_address(call: Call, uid: int, instance_url: str, subnet: Resource, requested: str | None,
                     guesses: ipam.Guesses | None = None) -> str:
    """The NIC's address in its subnetwork: the one asked for (a static address or a free one), or the next.
    ``guesses``: the next one is predicted (:meth:`core.ipam.Guesses.predict`) instead of taken when
    it can be; the caller's statement takes it."""
    pool = addresses.subnet_pool(subnet)
    subnet_path = path_of(subnet.project, subnet.scope, "subnetworks", subnet.name)
    if not requested:
        cidr = store.body_of(subnet)["ipCidrRange"]
        guess = None if guesses is None else guesses.predict(pool, cidr, uid)
        if guess is not None:
            return guess.text
        return ipam.allocate(call.session, pool, cidr, uid, space=subnet_path)
    if not addresses.use_internal_for_instance(call.session, call.project, subnet, requested, instance_url):
        _reserve(call, pool, requested, uid, f"subnetwork '{subnet_path}'")
    return requested


def build_nics(call: Call, zone: ZoneInfo, uid: int, instance_url: str, parsed: list[ParsedNic],
               guesses: ipam.Guesses | None = None, taken: Taken | None = None) -> list[dict[str, Any]]:
    """The new instance's ``networkInterfaces``, with their addresses taken for ``uid``; the next
    address of a lone NIC's subnetwork predicted instead when the caller gives ``guesses`` (see
    :func:`internal_address`), and its ephemeral external address when ``taken``, the insert's
    first read, brought what it needs (see :func:`_access_config`). One NIC only: a guess takes no
    pool lock, and an instance's addresses in several pools are taken in one order
    (:func:`core.ipam.lock_pools`)."""
    if len(parsed) != 1:
        guesses = None
    nics = []
    for i, p in enumerate(parsed):
        nic = {
            "kind": "compute#networkInterface", "name": f"nic{i}", "network": p.network_url,
            "subnetwork": url_of(p.subnet.project, p.subnet.scope, "subnetworks", p.subnet.name),
            "networkIP": internal_address(call, uid, instance_url, p.subnet, p.request.get("networkIP"), guesses),
            "stackType": p.request.get("stackType", "IPV4_ONLY"),
        }
        configs = [_access_config(call, zone, uid, instance_url, ac, guesses, taken)
                   for ac in p.request.get("accessConfigs") or []]
        if configs:
            nic["accessConfigs"] = configs
        nic["fingerprint"] = nic_fingerprint(nic)
        nics.append(nic)
    return nics


def nic_named(inst: dict[str, Any], nic_name: str | None) -> dict[str, Any]:
    if not nic_name:
        raise Required("networkInterface")
    nic: dict[str, Any] | None = next((n for n in inst.get("networkInterfaces", []) if n.get("name") == nic_name), None)
    if nic is None:
        raise Invalid("networkInterface", nic_name, "The instance has no network interface of that name.")
    return nic


def _changed(call: Call, res: Resource, inst: dict[str, Any], nic: dict[str, Any], op_type: str) -> Operation:
    """Save a changed NIC and tell its network's router."""
    nic["fingerprint"] = nic_fingerprint(nic)
    save(res, inst)
    vpc.notify_router(call.session, call.project, nic["network"])
    return operation(call, res, op_type)


def add_access_config(call: Call, zone: ZoneInfo, name: str, nic_name: str | None, body: dict[str, Any]) -> Operation:
    res = locked(call, zone, name)
    inst = store.body_of(res)
    nic = nic_named(inst, nic_name)
    check_access_config(body, "resource")
    if nic.get("accessConfigs"):
        raise Invalid("networkInterface", nic_name, "At most one access config currently supported.")
    nic["accessConfigs"] = [_access_config(call, zone, res.uid, vpc.url(res), body)]
    op = _changed(call, res, inst, nic, "addAccessConfig")
    quotas.recheck_region(call.session, projects.get(call.session, call.project), zone.region.name,
                          ["IN_USE_ADDRESSES"])  # another's address at once
    return op


def delete_access_config(call: Call, zone: ZoneInfo, name: str, nic_name: str | None,
                         config: str | None) -> Operation:
    res = locked(call, zone, name)
    if not config:
        raise Required("accessConfig")
    inst = store.body_of(res)
    nic = nic_named(inst, nic_name)
    ac = next((a for a in nic.get("accessConfigs", []) if a.get("name") == config), None)
    if ac is None:
        raise Invalid("accessConfig", config, f"Network interface '{nic['name']}' has no access config of that name.")
    remaining = [a for a in nic["accessConfigs"] if a is not ac]
    if remaining:
        nic["accessConfigs"] = remaining
    else:
        nic.pop("accessConfigs")
    if ac.get("natIP"):
        call.session.execute(sql_delete(IpAllocation).where(
            IpAllocation.pool == ipam.external_pool(zone.region.name), IpAllocation.owner_uid == res.uid,
            IpAllocation.address == int(ipaddress.ip_address(ac["natIP"]))))
    nic["fingerprint"] = nic_fingerprint(nic)
    save(res, inst)
    if ac.get("natIP"):  # after the save: the static address checks that the instance no longer holds it
        addresses.release_for_instance(call.session, zone.region.name, ac["natIP"], vpc.url(res))
    vpc.notify_router(call.session, call.project, nic["network"])
    return operation(call, res, "deleteAccessConfig")


def update_access_config(call: Call, zone: ZoneInfo, name: str, nic_name: str | None,
                         body: dict[str, Any]) -> Operation:
    """Change the public DNS (PTR) settings or the name of the interface's access config; its type,
    tier and address stay (to change the address, delete the access config and add another)."""
    res = locked(call, zone, name)
    inst = store.body_of(res)
    nic = nic_named(inst, nic_name)
    check_access_config(body, "resource")
    configs = nic.get("accessConfigs") or []
    if not configs:
        raise Invalid("networkInterface", nic_name, f"Network interface '{nic['name']}' has no access config.")
    ac = configs[0]
    for key in ("natIP", "type", "networkTier"):
        if body.get(key) not in (None, "", ac.get(key)):
            raise Invalid(f"resource.{key}", body[key], "Only the name and the public PTR settings of an access "
                          "config can be updated; delete it and add another to change this.")
    if body.get("publicPtrDomainName") and not body.get("setPublicPtr", ac.get("setPublicPtr")):
        raise Invalid("resource.publicPtrDomainName", body["publicPtrDomainName"],
                      "A public PTR domain name needs setPublicPtr.")
    if body.get("name"):
        ac["name"] = body["name"]
    for key in _PTR_FIELDS:
        if key in body:
            ac[key] = body[key]
    if not ac.get("setPublicPtr"):
        ac.pop("publicPtrDomainName", None)
    return _changed(call, res, inst, nic, "updateAccessConfig")
