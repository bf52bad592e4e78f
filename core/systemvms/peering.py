"""VPC Network Peering in the data plane: which routes two peered networks exchange, and where the
virtual router sends the peer's ranges.

A peering is stored in its network's body (``peerings[]``, as GCE returns it) and is ACTIVE when the
peer network has the matching peering back (:mod:`core.services.peering` keeps that state). Over an
ACTIVE peering, as on GCE: every subnetwork route is exchanged (gstack's subnetworks all use private
or special-use ranges, which the ``*SubnetRoutesWithPublicIp`` switches do not govern); custom static
routes go over when the exporter's peering says ``exportCustomRoutes`` and are taken in when the
importer's says ``importCustomRoutes`` (and no local subnetwork covers them). Routes with network tags
and routes to the default Internet gateway are never exchanged. The exchange is what
``networks.listPeeringRoutes`` reports and what each router renders: an on-link route to every
imported range out of its public side, where the peer's routers answer ARP for the ranges they
serve (``proxy_arp``; the routers' public sides share a segment, and none has an address of its
own yet), and the ranges in the firewall's ``peer_ranges`` set, so peered traffic keeps its internal
addresses and is not dropped as Internet egress of instances without an external address.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from sqlalchemy.orm import Session

from core.links import parse_ref
from core.resources import store
from core.resources.store import Body

ACTIVE, INACTIVE = "ACTIVE", "INACTIVE"
SUBNET_ROUTE, STATIC_ROUTE = "SUBNET_PEERING_ROUTE", "STATIC_PEERING_ROUTE"
DEFAULT_GATEWAY = "/global/gateways/default-internet-gateway"


@dataclass(frozen=True)
class Exchanged:
    """One route a peering carries: its range, type and priority, the region of a subnetwork's
    range (None: a static route, global), and whether the receiving side took it in."""

    dest_range: str
    type: str
    priority: int
    region: str | None
    imported: bool

    def to_json(self) -> Body:
        return {"destRange": self.dest_range, "type": self.type, "priority": self.priority,
                "imported": self.imported}


def network_body(session: Session, url: str) -> Body | None:
    ref = parse_ref(url, project="", scope="global")
    if ref is None or ref.collection != "networks":
        return None
    row = store.find_optional(session, ref.project, "networks", "global", ref.name)
    return store.body_of(row) if row is not None else None


def subnet_ranges(session: Session, network_url: str) -> list[tuple[str, str, str]]:
    """(range, region, subnetwork selfLink) of every primary and secondary range of the network."""
    ref = parse_ref(network_url, project="", scope="global")
    if ref is None:
        return []
    out = []
    for row, body in store.on_network(session, "subnetworks", network_url, project=ref.project):
        region = row.scope.split("/", 1)[-1]
        for block in [body.get("ipCidrRange"), *(r.get("ipCidrRange") for r in body.get("secondaryIpRanges") or [])]:
            if isinstance(block, str):
                out.append((block, region, str(body.get("selfLink", ""))))
    return out


def custom_routes(session: Session, network_url: str) -> list[tuple[str, int]]:
    """(destRange, priority) of the network's static routes a peering may export: no network tags,
    no default Internet gateway next hop (GCE never exchanges those)."""
    ref = parse_ref(network_url, project="", scope="global")
    if ref is None:
        return []
    out = []
    for row, body in store.on_network(session, "routes", network_url, project=ref.project):
        if row.subtype in ("default", "subnet") or body.get("tags"):
            continue
        if str(body.get("nextHopGateway", "")).endswith(DEFAULT_GATEWAY):
            continue
        out.append((str(body["destRange"]), int(body.get("priority", 1000))))
    return out


def matching(peer_body: Body | None, local_url: str) -> Body | None:
    """The peer network's peering that points back at ``local_url``, if it has one."""
    return next((p for p in (peer_body or {}).get("peerings", []) if p.get("network") == local_url), None)


def _covered(dest: str, ranges: list[tuple[str, str, str]]) -> bool:
    net = ipaddress.ip_network(dest, strict=False)
    return any(net.overlaps(ipaddress.ip_network(r, strict=False)) for r, _, _ in ranges)


def exchanged(session: Session, exporter_url: str, export: Body, importer_url: str, accept: Body) -> list[Exchanged]:
    """What ``exporter_url`` sends over its peering ``export`` to ``importer_url``, whose matching
    peering is ``accept``; nothing unless the peering is ACTIVE."""
    if export.get("state") != ACTIVE or accept.get("state") != ACTIVE:
        return []
    out = [Exchanged(block, SUBNET_ROUTE, 0, region, True) for block, region, _ in subnet_ranges(session, exporter_url)]
    if export.get("exportCustomRoutes"):
        local = subnet_ranges(session, importer_url)
        for dest, priority in custom_routes(session, exporter_url):
            out.append(Exchanged(dest, STATIC_ROUTE, priority, None,
                                 bool(accept.get("importCustomRoutes")) and not _covered(dest, local)))
    return out


def incoming(session: Session, network_url: str, peering: Body) -> list[Exchanged]:
    """The routes the peer network of ``peering`` sends to ``network_url``."""
    peer_url = str(peering.get("network", ""))
    back = matching(network_body(session, peer_url), network_url)
    return exchanged(session, peer_url, back, network_url, peering) if back else []


def outgoing(session: Session, network_url: str, peering: Body) -> list[Exchanged]:
    """The routes ``network_url`` sends over ``peering``."""
    peer_url = str(peering.get("network", ""))
    back = matching(network_body(session, peer_url), network_url)
    return exchanged(session, network_url, peering, peer_url, back) if back else []


def imported(session: Session, network_url: str, body: Body | None = None) -> list[tuple[str, str]]:
    """(range, peering name) of every route the network takes in over its ACTIVE peerings: what
    its routers send to the peers, and let through without NAT. ``body``: the network's, when the
    caller has it (it is not read again)."""
    if body is None:
        body = network_body(session, network_url) or {}
    return [(r.dest_range, str(p.get("name", ""))) for p in body.get("peerings", [])
            for r in incoming(session, network_url, p) if r.imported]


def active_peers(session: Session, network_url: str) -> list[str]:
    """The networks ``network_url`` is ACTIVE-peered with: they import its ranges and routes."""
    body = network_body(session, network_url) or {}
    return [str(p["network"]) for p in body.get("peerings", []) if p.get("state") == ACTIVE and p.get("network")]


def conflicting(session: Session, network_url: str, block: str) -> str | None:
    """The name of the ACTIVE peering that imports a range overlapping ``block`` (GCE refuses a new
    range of a peered network where it would clash with what the network imports)."""
    net = ipaddress.ip_network(block, strict=False)
    return next((name for dest, name in imported(session, network_url)
                 if net.overlaps(ipaddress.ip_network(dest, strict=False))), None)
