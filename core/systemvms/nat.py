"""Cloud NAT in the virtual router: which instances a network's NAT gateways translate, and the
nftables rules that do it.

An instance NIC without an external address leaves the network only through a NAT of a Cloud Router
in its region whose source ranges cover its subnetwork (all of the region's, or those listed): its
packets are SNATed to the NAT's addresses (several are spread by a hash of the source, so one VM
keeps one address). Without such a NAT it has no way out, as on GCE: the forward chain drops what it
sends to the public side. Rendered by :mod:`core.systemvms.router`; read from the routers' rows and
their private state (the addresses AUTO_ONLY NATs were given).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import ColumnElement, and_, bindparam
from sqlalchemy.orm import Session

from core.links import parse_ref
from core.models import Resource
from core.resources import store

ROUTER_STATE = "routerStates"  # what core.services.routers keeps: {"auto": {NAT: [addresses]}}


@dataclass(frozen=True)
class Gateway:
    """One NAT: its router and name, its addresses, and the subnetwork names it covers (None: all
    of the region's)."""

    router: str
    name: str
    addresses: tuple[str, ...]
    subnets: frozenset[str] | None


# Which rows gateways reads: the Cloud Routers in the region whose body names the network (the body
# decides: see store.on_network); its parameters are routers_on's.
ROUTERS_ON: ColumnElement[bool] = and_(Resource.collection == "routers", Resource.region == bindparam("nat_region"),
                                       Resource.body.like(bindparam("nat_pattern"), escape="/"))


def routers_on(network_url: str, region: str) -> dict[str, str]:
    """The parameters of :data:`ROUTERS_ON` for the network's routers in ``region``: the body's
    ``"network":"URL"`` anywhere, the URL's LIKE wildcards escaped (as ``contains(..., autoescape=True)``)."""
    text = f'"network":"{network_url}"'.replace("/", "//").replace("%", "/%").replace("_", "/_")
    return {"nat_region": region, "nat_pattern": f"%{text}%"}


def gateways(session: Session, network_url: str, region: str, rows: Iterable[Resource] | None = None) -> list[Gateway]:
    """The NATs of the region's Cloud Routers on the network, by router name. ``rows``: the rows of
    :func:`routers_on`, by name, when the caller read them along with others (not read again)."""
    out = []
    found = (store.on_network(session, "routers", network_url, region=region) if rows is None else
             store.of_network(rows, network_url))
    for row, body in found:
        state = store.find_optional(session, row.project, ROUTER_STATE, row.scope, row.name)
        auto = store.body_of(state).get("auto", {}) if state is not None else {}
        for nat in body.get("nats", []):
            if nat["natIpAllocateOption"] == "AUTO_ONLY":
                ips = list(auto.get(nat["name"], []))
            else:
                ips = [ip for ip in (_address_of(session, link) for link in nat.get("natIps", [])) if ip]
            subnets = (frozenset(s["name"].rsplit("/", 1)[-1] for s in nat.get("subnetworks", []))
                       if nat["sourceSubnetworkIpRangesToNat"] == "LIST_OF_SUBNETWORKS" else None)
            if ips:
                out.append(Gateway(row.name, nat["name"], tuple(ips), subnets))
    return out


def _address_of(session: Session, link: str) -> str | None:
    ref = parse_ref(link, project="")
    row = store.find_optional(session, ref.project, "addresses", ref.scope, ref.name) if ref else None
    return str(store.body_of(row)["address"]) if row is not None else None


def rule(set_name: str, gw: Gateway, public_iface: str) -> str:
    """The snat rule of a NAT: the addresses it translates are in ``set_name`` (the instances' files
    put each address without an external one in the set of the first NAT covering its subnetwork)."""
    if len(gw.addresses) == 1:
        to = gw.addresses[0]
    else:
        to = (f"jhash ip saddr mod {len(gw.addresses)} map {{ "
              + ", ".join(f"{i} : {a}" for i, a in enumerate(gw.addresses)) + " }")
    return f'oifname "{public_iface}" ip saddr @{set_name} snat to {to} comment "Cloud NAT {gw.router}/{gw.name}"'
