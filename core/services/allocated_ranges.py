"""Allocated ranges: global INTERNAL addresses with purpose ``VPC_PEERING``, the blocks a network sets
aside for private services access (a producer's network peers with it and takes its addresses from
them). Such an address is a range (``address`` + ``prefixLength``) in a ``network``, not one IP: it
holds no IPAM address, and what it means is that no subnetwork of the network, and no other
allocated range of it, may overlap it (:func:`check_free`, also called by subnetworks.insert).
"""

from __future__ import annotations

import ipaddress

from sqlalchemy.orm import Session

from core.errors import Invalid, Required
from core.resources import store
from core.resources.context import Call
from core.resources.store import Body
from core.services import vpc

PURPOSE = "VPC_PEERING"
# Private services access wants a /24 or larger; the largest block GCE allocates is a /8.
LARGEST_PREFIX, SMALLEST_PREFIX = 8, 24


def of_network(session: Session, project: str, net_url: str, except_name: str | None = None
               ) -> list[tuple[str, ipaddress.IPv4Network]]:
    """(name, block) of the network's allocated ranges."""
    out = []
    for addr in vpc.referring(session, project, "network", net_url, ["addresses"]):
        body = store.body_of(addr)
        if body.get("purpose") == PURPOSE and addr.name != except_name:
            out.append((addr.name, ipaddress.IPv4Network(f"{body['address']}/{body['prefixLength']}")))
    return out


def check_free(session: Session, project: str, net_url: str, field: str, block: ipaddress.IPv4Network) -> None:
    """Refuse ``block`` where it overlaps an allocated range of the network."""
    for name, taken in of_network(session, project, net_url):
        if block.overlaps(taken):
            raise Invalid(field, str(block), f"Invalid IPCidrRange: {block} conflicts with allocated range "
                                             f"'{name}' ({taken}) of the network.")


def reserve(call: Call, body: Body, taken_by_subnets: list[ipaddress.IPv4Network]) -> Body:
    """The stored fields of a new allocated range: the block asked for (``address`` given) or the
    lowest free one of the private ranges with ``prefixLength``; ``taken_by_subnets`` are the
    network's subnetwork ranges. The caller holds the network's row lock, so two reservations
    cannot both take one block."""
    if body.get("addressType") != "INTERNAL":
        raise Invalid("resource.addressType", body.get("addressType"),
                      "Addresses with purpose VPC_PEERING must be of type INTERNAL.")
    if body.get("subnetwork"):
        raise Invalid("resource.subnetwork", body["subnetwork"], "Addresses with purpose VPC_PEERING name a "
                                                                 "network, not a subnetwork.")
    prefix = body.get("prefixLength")
    if prefix in (None, ""):
        raise Required("resource.prefixLength")
    if not isinstance(prefix, int) or not LARGEST_PREFIX <= prefix <= SMALLEST_PREFIX:
        raise Invalid("resource.prefixLength", prefix, f"The prefix length must be between /{LARGEST_PREFIX} "
                                                       f"and /{SMALLEST_PREFIX}.")
    net = vpc.network(call, body.get("network"), lock=True)
    net_url = vpc.network_url(net)
    taken = [b for _, b in of_network(call.session, call.project, net_url)] + taken_by_subnets
    if body.get("address") not in (None, ""):
        block = vpc.cidr(f"{body['address']}/{prefix}", "resource.address")
        check_free(call.session, call.project, net_url, "resource.address", block)
        if any(block.overlaps(t) for t in taken_by_subnets):
            raise Invalid("resource.address", body["address"], f"Invalid IPCidrRange: {block} conflicts with a "
                                                               "subnetwork of the network.")
    else:
        block = _first_free(prefix, taken)
    return {"address": str(block.network_address), "prefixLength": prefix, "network": net_url, "purpose": PURPOSE}


def _first_free(prefix: int, taken: list[ipaddress.IPv4Network]) -> ipaddress.IPv4Network:
    for space in vpc.PRIVATE_RANGES:
        if space.prefixlen > prefix:
            continue
        for block in space.subnets(new_prefix=prefix):
            if not block.overlaps(vpc.EXTERNAL) and not any(block.overlaps(t) for t in taken):
                return block
    raise Invalid("resource.prefixLength", prefix, "No free range of that size is left in the network.")
