"""instances.updateNetworkInterface: a PATCH of one network interface, as GCE permits it.

What may change, and when (GCE's "modifying alias IP ranges" and "migrating a VM between
networks"): ``aliasIpRanges`` at any time; ``network``, ``subnetwork`` and ``networkIP`` only on a
stopped instance (a state table cell, :data:`.states.TABLE`); ``stackType`` only to what the
subnetwork offers (IPV4_ONLY). Access configs have their own methods (add/delete/updateAccessConfig):
a body repeating them unchanged is accepted, changing them is refused. The body's ``fingerprint``
must be the interface's current one (412 otherwise). Everything is checked before anything
changes; the network's virtual router is told, as for every NIC change.

Alias ranges are addresses the instance holds: each address of a range is taken in IPAM (the
subnetwork's pool, or its secondary range's), so no other NIC or alias gets it, and it is freed
with the instance's other addresses.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from sqlalchemy import delete as sql_delete

from core import ipam
from core.errors import Invalid
from core.links import parse_ref, url_of
from core.models import IpAllocation, Operation, Resource
from core.resources import store
from core.resources.context import Call
from core.services import addresses, vpc
from core.services.instances import spec, states
from core.services.instances.network import AddressInUse, internal_address, nic_fingerprint, nic_named
from core.services.instances.rows import locked, operation, save
from core.services.metadata import INVALID_FINGERPRINT, check_fingerprint
from core.services.topology import ZoneInfo

# The largest alias range taken address by address (a /24: 256 IPAM rows).
_MAX_ALIAS_ADDRESSES = 256
# NetworkInterface fields the method reads; any other must repeat the interface's value.
_UPDATABLE = frozenset({"network", "subnetwork", "networkIP", "aliasIpRanges", "stackType", "accessConfigs",
                        "fingerprint", "kind", "name"})
_STACK_TYPES = ("IPV4_ONLY", "IPV4_IPV6", "IPV6_ONLY")


def update_network_interface(call: Call, zone: ZoneInfo, name: str, nic_name: str | None,
                             body: dict[str, Any]) -> Operation:
    res = locked(call, zone, name)
    inst = store.body_of(res)
    nic = nic_named(inst, nic_name)
    check_fingerprint(body.get("fingerprint"), nic.get("fingerprint", ""), INVALID_FINGERPRINT)
    for key, value in body.items():
        if key not in _UPDATABLE and value != nic.get(key):
            raise Invalid(f"resource.{key}", value, f"The field '{key}' of a network interface cannot be updated.")
    _same_access_configs(nic, body.get("accessConfigs"))
    subnet = _subnet_of(call, nic)
    moved = _moved(call, zone, res, inst, nic, body)
    if moved is not None:
        subnet = moved.subnet
    stack = body.get("stackType", nic.get("stackType", "IPV4_ONLY"))
    if stack not in _STACK_TYPES:
        raise Invalid("resource.stackType", stack, f"Must be one of {', '.join(_STACK_TYPES)}.")
    if stack != "IPV4_ONLY":
        raise Invalid("resource.stackType", stack, f"The subnetwork '{vpc.url(subnet)}' has no IPv6 range: "
                      "its stack type is IPV4_ONLY.")
    aliases = _aliases(subnet, body["aliasIpRanges"]) if "aliasIpRanges" in body else None
    # Checked: now change.
    old_network = nic["network"]
    if moved is not None:
        _move(call, zone, res, nic, moved)
    if aliases is not None:
        _take_aliases(call, res, subnet, nic, aliases)
    nic["stackType"] = stack
    nic["fingerprint"] = nic_fingerprint(nic)
    save(res, inst)
    for network in {old_network, nic["network"]}:
        vpc.notify_router(call.session, call.project, network)
    return operation(call, res, "updateNetworkInterface")


def _same_access_configs(nic: dict[str, Any], given: object) -> None:
    if given is None:
        return
    current = [(ac.get("name"), ac.get("natIP"), ac.get("type", "ONE_TO_ONE_NAT")) for ac in nic.get("accessConfigs", [])]
    asked = [(ac.get("name"), ac.get("natIP"), ac.get("type", "ONE_TO_ONE_NAT")) if isinstance(ac, dict) else ac
             for ac in given] if isinstance(given, list) else given
    if asked != current:
        raise Invalid("resource.accessConfigs", "", message="Invalid value for field 'resource.accessConfigs': ''. "
                      "Access configs cannot be changed by updateNetworkInterface; use addAccessConfig, "
                      "deleteAccessConfig or updateAccessConfig.")


def _subnet_of(call: Call, nic: dict[str, Any]) -> Resource:
    ref = parse_ref(nic["subnetwork"], project=call.project)
    assert ref is not None  # stored links are canonical
    return store.find(call.session, ref.project, "subnetworks", ref.scope, ref.name)


def _moved(call: Call, zone: ZoneInfo, res: Resource, inst: dict[str, Any], nic: dict[str, Any],
           body: dict[str, Any]) -> spec.ParsedNic | None:
    """The interface's new network, subnetwork and address when the body changes them (the instance
    must be stopped); None when it keeps them."""
    asked = {key: body[key] for key in ("network", "subnetwork", "networkIP") if body.get(key)}
    if not asked:
        return None
    request = {"network": asked.get("network", nic["network"]),
               "subnetwork": asked.get("subnetwork", nic["subnetwork"] if "network" not in asked else None)}
    if request["subnetwork"] is None:
        request.pop("subnetwork")
    if asked.get("networkIP"):
        request["networkIP"] = asked["networkIP"]
    parsed = spec.network_interfaces(call, zone, [request])[0]
    same_place = parsed.network_url == nic["network"] and vpc.url(parsed.subnet) == nic["subnetwork"]
    if same_place and asked.get("networkIP") in (None, nic.get("networkIP")):
        return None
    field, value = next(iter(asked.items()))
    states.move(res, "setNetwork", field=f"resource.{field}", value=value)
    if any(n is not nic and n["network"] == parsed.network_url for n in inst.get("networkInterfaces", [])):
        raise Invalid("resource.network", parsed.network_url, "Networks must be distinct for NICs attached to a VM.")
    return parsed


def _move(call: Call, zone: ZoneInfo, res: Resource, nic: dict[str, Any], moved: spec.ParsedNic) -> None:
    """Give the stopped instance's interface its new subnetwork and address; the old address (and
    alias ranges, which belong to the old subnetwork) are freed."""
    old_ip = nic["networkIP"]
    old_subnet = _subnet_of(call, nic)
    _release_aliases(call, res, old_subnet, nic)
    call.session.execute(sql_delete(IpAllocation).where(
        IpAllocation.pool == addresses.subnet_pool(old_subnet), IpAllocation.owner_uid == res.uid,
        IpAllocation.address == int(ipaddress.ip_address(old_ip))))
    addresses.release_for_instance(call.session, zone.region.name, old_ip, vpc.url(res))
    nic["network"] = moved.network_url
    nic["subnetwork"] = url_of(moved.subnet.project, moved.subnet.scope, "subnetworks", moved.subnet.name)
    nic["networkIP"] = internal_address(call, res.uid, vpc.url(res), moved.subnet, moved.request.get("networkIP"))
    nic.pop("aliasIpRanges", None)


def _aliases(subnet: Resource, value: object) -> list[dict[str, Any]]:
    """The alias ranges asked for, each in the subnetwork's primary range or the secondary range it
    names, none overlapping another."""
    if not isinstance(value, list):
        raise Invalid("resource.aliasIpRanges", value, "Must be a list.")
    sub = store.body_of(subnet)
    secondary = {r["rangeName"]: ipaddress.IPv4Network(r["ipCidrRange"]) for r in sub.get("secondaryIpRanges", [])}
    out: list[dict[str, Any]] = []
    seen: list[ipaddress.IPv4Network] = []
    for i, alias in enumerate(value):
        field = f"resource.aliasIpRanges[{i}]"
        if not isinstance(alias, dict) or not alias.get("ipCidrRange"):
            raise Invalid(f"{field}.ipCidrRange", None, "An alias IP range needs its ipCidrRange.")
        range_name = alias.get("subnetworkRangeName")
        if range_name and range_name not in secondary:
            raise Invalid(f"{field}.subnetworkRangeName", range_name,
                          f"The subnetwork has no secondary range named '{range_name}'.")
        within = secondary[range_name] if range_name else ipaddress.IPv4Network(sub["ipCidrRange"])
        net = _range(alias["ipCidrRange"], f"{field}.ipCidrRange")
        if not net.subnet_of(within):
            raise Invalid(f"{field}.ipCidrRange", alias["ipCidrRange"],
                          f"The alias IP range must be within {'the secondary range ' + range_name if range_name else 'the primary range'} "
                          f"{within} of the subnetwork.")
        if net.num_addresses > _MAX_ALIAS_ADDRESSES:
            raise Invalid(f"{field}.ipCidrRange", alias["ipCidrRange"],
                          f"An alias IP range may hold at most {_MAX_ALIAS_ADDRESSES} addresses.")
        if any(net.overlaps(other) for other in seen):
            raise Invalid(f"{field}.ipCidrRange", alias["ipCidrRange"], "Alias IP ranges must not overlap.")
        seen.append(net)
        out.append({"ipCidrRange": str(net), **({"subnetworkRangeName": range_name} if range_name else {})})
    return out


def _range(value: object, field: str) -> ipaddress.IPv4Network:
    """An explicit range (``10.0.0.0/28``) or address (``10.0.0.5``: a /32); the netmask-only form
    (``/28``, "any free range of this size") is not supported."""
    try:
        if not isinstance(value, str) or value.startswith("/"):
            raise ValueError(value)
        return ipaddress.IPv4Network(value, strict=True)
    except ValueError:
        raise Invalid(field, value, "Must be an IPv4 range in CIDR notation, or one IPv4 address.") from None


def _alias_pool(subnet: Resource, alias: dict[str, Any]) -> str:
    name = alias.get("subnetworkRangeName")
    return f"{addresses.subnet_pool(subnet)}:{name}" if name else addresses.subnet_pool(subnet)


def _release_aliases(call: Call, res: Resource, subnet: Resource, nic: dict[str, Any]) -> None:
    for alias in nic.get("aliasIpRanges", []):
        net = ipaddress.IPv4Network(alias["ipCidrRange"])
        call.session.execute(sql_delete(IpAllocation).where(
            IpAllocation.pool == _alias_pool(subnet, alias), IpAllocation.owner_uid == res.uid,
            IpAllocation.address.between(int(net.network_address), int(net.broadcast_address))))


def _take_aliases(call: Call, res: Resource, subnet: Resource, nic: dict[str, Any],
                  aliases: list[dict[str, Any]]) -> None:
    """Free the interface's alias addresses, then take the new ranges' (409-style refusal, and the
    transaction rolled back, when another resource holds one)."""
    _release_aliases(call, res, subnet, nic)
    for i, alias in enumerate(aliases):
        for address in ipaddress.IPv4Network(alias["ipCidrRange"]):
            if address == ipaddress.IPv4Address(nic["networkIP"]) or not ipam.reserve(
                    call.session, _alias_pool(subnet, alias), str(address), res.uid):
                raise AddressInUse(f"Invalid value for field 'resource.aliasIpRanges[{i}].ipCidrRange': "
                                   f"'{alias['ipCidrRange']}'. The IP address '{address}' of the range is already "
                                   "in use.")
    if aliases:
        nic["aliasIpRanges"] = aliases
    else:
        nic.pop("aliasIpRanges", None)
