"""VPC Network Peering: networks.addPeering, removePeering, updatePeering and listPeeringRoutes.

Each side of a peering is made on its own network (its owner needs no role on the peer's project,
as on GCE: the peer's owner consents by adding the matching peering back). A peering is INACTIVE
until the peer network has that matching peering, then both are ACTIVE; removing one side makes
the other INACTIVE again. The peerings live in their network's body (``peerings[]``), and their
state changes only through :data:`STATES`. What an ACTIVE peering carries, and what the routers
render of it, is :mod:`core.systemvms.peering`.

Refused as GCE refuses them: a peering to the network itself, a second peering of that name or to
that network, ranges of the two networks that overlap (or that overlap ranges of either one's
other ACTIVE peers, which the other would then import too), and legacy networks. CONSENSUS update
strategy needs GCE's two-party update protocol (requestRemovePeering and the like), which gstack
does not have: it is refused with an error, never stored and ignored.
"""

from __future__ import annotations

import ipaddress
import time

from core.errors import Invalid, NotFound, Required, ResourceNotReady
from core.ids import rfc3339
from core.links import parse_ref
from core.models import Operation, Resource
from core.resources import operations, store
from core.resources.context import Call
from core.resources.states import STAY, Move, StateTable
from core.resources.store import Body
from core.services import projects, topology, vpc
from core.systemvms import peering as exchange
from core.systemvms.peering import ACTIVE, INACTIVE

# Events a peering goes through: its peer added the matching peering, or removed it.
CONNECT, DISCONNECT = "connect", "disconnect"
DETAILS = {ACTIVE: "Connected.", INACTIVE: "Waiting for peer network to connect."}
STATES = StateTable(
    "network peering", (INACTIVE, ACTIVE), (CONNECT, DISCONNECT),
    {(INACTIVE, CONNECT): Move(ACTIVE), (ACTIVE, CONNECT): STAY,
     (ACTIVE, DISCONNECT): Move(INACTIVE), (INACTIVE, DISCONNECT): STAY},
    lambda path, state, event: ResourceNotReady(f"The resource '{path}' is not ready"))  # every cell is given

STACK_TYPES = ("IPV4_ONLY", "IPV4_IPV6")
UPDATE_STRATEGIES = ("INDEPENDENT", "CONSENSUS", "UNSPECIFIED")
ROUTE_SWITCHES = {"exportCustomRoutes": False, "importCustomRoutes": False,
                  "exportSubnetRoutesWithPublicIp": True, "importSubnetRoutesWithPublicIp": False}
DIRECTIONS = ("INCOMING", "OUTGOING")


def _move(peering: Body, event: str, network_path: str) -> None:
    """Apply ``event`` to a stored peering through the state table; a new state is stamped."""
    move = STATES.move(f"{network_path}/peerings/{peering.get('name')}", peering["state"], event)
    if move.status is not None:
        peering["state"] = move.status
        peering["stateDetails"] = f"[{rfc3339(time.time())}]: {DETAILS[move.status]}"


def _lock_pair(call: Call, local: str, peer_ref: tuple[str, str]) -> tuple[Resource, Resource]:
    """Both network rows, locked in one order (project, name) so that two peerings made at once
    from either side cannot deadlock."""
    keys = sorted({(call.project, local), peer_ref})
    rows = {k: projects.find_for_update(call.session, k[0], "networks", "global", k[1]) for k in keys}
    return rows[(call.project, local)], rows[peer_ref]


def _check_vpc(net: Resource) -> None:
    if "autoCreateSubnetworks" not in store.body_of(net):
        raise Invalid("network", vpc.path(net), "Legacy networks do not support VPC Network Peering.")


def _switches(given: Body, field: str, current: Body) -> Body:
    out = {}
    for key, default in ROUTE_SWITCHES.items():
        value = given.get(key, current.get(key, default))
        if not isinstance(value, bool):
            raise Invalid(f"{field}.{key}", value, "Must be true or false.")
        out[key] = value
    stack = given.get("stackType") or current.get("stackType") or "IPV4_ONLY"
    if stack not in STACK_TYPES:
        raise Invalid(f"{field}.stackType", stack, "Must be IPV4_ONLY or IPV4_IPV6.")
    strategy = given.get("updateStrategy") or current.get("updateStrategy") or "INDEPENDENT"
    if strategy not in UPDATE_STRATEGIES:
        raise Invalid(f"{field}.updateStrategy", strategy, "Must be INDEPENDENT or CONSENSUS.")
    if strategy == "CONSENSUS":
        raise Invalid(f"{field}.updateStrategy", strategy, "The CONSENSUS update strategy is not supported: "
                      "use INDEPENDENT.")
    return {**out, "stackType": stack, "updateStrategy": "INDEPENDENT"}


def _request(body: Body) -> tuple[Body, str]:
    """The peering asked for, from ``networkPeering`` or the legacy top-level fields, and the prefix
    of its fields in error messages."""
    given = body.get("networkPeering")
    if given is not None:
        if not isinstance(given, dict):
            raise Invalid("networkPeering", given, "Must be an object.")
        if given.get("exchangeSubnetRoutes") is False or given.get("autoCreateRoutes") is False:
            raise Invalid("networkPeering.exchangeSubnetRoutes", False, "Subnetwork routes are always exchanged.")
        return given, "networkPeering"
    if body.get("autoCreateRoutes") is False:
        raise Invalid("autoCreateRoutes", False, "Subnetwork routes are always exchanged.")
    return {"name": body.get("name"), "network": body.get("peerNetwork")}, ""


Ranges = list[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str, str]]  # (block, as written, owner)


def _ranges(call: Call, url: str) -> Ranges:
    return [(ipaddress.ip_network(r, strict=False), r, link)
            for r, _, link in exchange.subnet_ranges(call.session, url)]


def _first_overlap(mine: Ranges, theirs: Ranges) -> tuple[str, str, str] | None:
    """(their range, my range, my resource) of the first overlap."""
    for net, text, link in mine:
        for other, other_text, _ in theirs:
            if net.overlaps(other):
                return other_text, text, link
    return None


def _check_overlaps(call: Call, local: Resource, peer: Resource) -> None:
    """GCE's checks: no range of the peer overlaps one of the local network, and neither side's
    ranges overlap those of the other's ACTIVE peers (which it would import through the other)."""
    local_url, peer_url = vpc.network_url(local), vpc.network_url(peer)
    mine, theirs = _ranges(call, local_url), _ranges(call, peer_url)
    found = _first_overlap(mine, theirs)
    if found:
        raise Invalid("networkPeering.network", peer_url, message=(
            f"An IP range in the peer network ({found[0]}) overlaps with an IP range in the local network "
            f"({found[1]}) allocated by resource ({vpc.relative(found[2])})."))
    for side, others, label in ((store.body_of(local), theirs, "peer"), (store.body_of(peer), mine, "local")):
        for p in side.get("peerings", []):
            if p.get("state") != ACTIVE or p.get("network") in (local_url, peer_url):
                continue
            found = _first_overlap(others, _ranges(call, p["network"]))
            if found:
                owner = "local" if label == "peer" else "peer"
                raise Invalid("networkPeering.network", peer_url, message=(
                    f"An IP range in the {label} network ({found[1]}) overlaps with an IP range ({found[0]}) in an "
                    f"active peer ({vpc.relative(p['network'])}) of the {owner} network."))


def _peer_ref(call: Call, value: object, field: str) -> tuple[str, str]:
    if value in (None, ""):
        raise Required(f"{field}.network" if field else "peerNetwork")
    ref = parse_ref(value, project=call.project, scope="global") if isinstance(value, str) else None
    if ref is None or ref.collection != "networks" or ref.scope != "global":
        raise Invalid(f"{field}.network" if field else "peerNetwork", value, "The URL is malformed.")
    return ref.project, ref.name


def _operation(call: Call, net: Resource, op_type: str) -> Operation:
    return operations.begin(call, scope="global", op_type=op_type, target_path=vpc.path(net), target_id=net.uid)


def _notify(call: Call, *nets: Resource) -> None:
    for net in nets:
        vpc.notify_router(call.session, net.project, vpc.network_url(net))


def add(call: Call, network: str, body: Body) -> Operation:
    given, field = _request(body)
    name_field, net_field = (f"{field}.name", f"{field}.network") if field else ("name", "peerNetwork")
    if given.get("name") in (None, ""):
        raise Required(name_field)
    name = store.validate_name(given.get("name"), name_field)
    peer_key = _peer_ref(call, given.get("network"), field)
    found = store.find(call.session, call.project, "networks", "global", network)  # 404 before anything else
    network = found.name  # the path may give the id
    if peer_key == (call.project, network):
        raise Invalid(net_field, given.get("network"), "A network cannot be peered with itself.")
    switches = _switches(given, field or "networkPeering", {})
    local, peer = _lock_pair(call, network, peer_key)  # a missing peer network: 404
    _check_vpc(local)
    _check_vpc(peer)
    local_body, peer_body = store.body_of(local), store.body_of(peer)
    local_url, peer_url, path = vpc.network_url(local), vpc.network_url(peer), vpc.path(local)
    for p in local_body.get("peerings", []):
        if p.get("name") == name:
            raise Invalid(name_field, name, f"There is already a peering named '{name}' on network '{path}'.")
        if p.get("network") == peer_url:
            raise Invalid(net_field, given.get("network"),
                          f"There is already a peering '{p['name']}' from network '{path}' to '{vpc.path(peer)}'.")
    _check_overlaps(call, local, peer)
    new = {"name": name, "network": peer_url, "state": INACTIVE,
           "stateDetails": f"[{rfc3339(time.time())}]: {DETAILS[INACTIVE]}",
           "autoCreateRoutes": True, "exchangeSubnetRoutes": True, **switches}
    back = exchange.matching(peer_body, local_url)
    if back is not None:
        _move(new, CONNECT, path)
        _move(back, CONNECT, vpc.path(peer))
        new["peerMtu"], back["peerMtu"] = int(peer_body.get("mtu", 1460)), int(local_body.get("mtu", 1460))
        store.save(peer, peer_body)
    local_body["peerings"] = [*local_body.get("peerings", []), new]
    store.save(local, local_body)
    _notify(call, local, peer)
    return _operation(call, local, "addPeering")


def _find(body: Body, name: object, field: str, path: str) -> Body:
    if name in (None, ""):
        raise Required(field)
    found: Body | None = next((p for p in body.get("peerings", []) if p.get("name") == name), None)
    if found is None:
        raise Invalid(field, name, f"There is no peering named '{name}' on network '{path}'.")
    return found


def remove(call: Call, network: str, body: Body) -> Operation:
    net = store.find(call.session, call.project, "networks", "global", network)
    current = _find(store.body_of(net), body.get("name"), "name", vpc.path(net))
    ref = parse_ref(current["network"], project=call.project, scope="global")
    peer_key = (ref.project, ref.name) if ref else (call.project, network)
    try:
        local, peer = _lock_pair(call, network, peer_key)
    except NotFound:  # the peer network is gone: only this side is left
        local, peer = projects.find_for_update(call.session, call.project, "networks", "global", network), None
    local_body = store.body_of(local)
    kept = [p for p in local_body.get("peerings", []) if p.get("name") != body.get("name")]
    if kept:
        local_body["peerings"] = kept
    else:
        local_body.pop("peerings", None)
    store.save(local, local_body)
    if peer is not None and peer is not local:
        peer_body = store.body_of(peer)
        back = exchange.matching(peer_body, vpc.network_url(local))
        if back is not None:
            _move(back, DISCONNECT, vpc.path(peer))
            back.pop("peerMtu", None)
            store.save(peer, peer_body)
        _notify(call, peer)
    _notify(call, local)
    return _operation(call, local, "removePeering")


def update(call: Call, network: str, body: Body) -> Operation:
    given = body.get("networkPeering")
    if not isinstance(given, dict):
        raise Required("networkPeering")
    net = projects.find_for_update(call.session, call.project, "networks", "global", network)
    net_body = store.body_of(net)
    current = _find(net_body, given.get("name"), "networkPeering.name", vpc.path(net))
    if given.get("network") not in (None, "") and _peer_ref(
            call, given["network"], "networkPeering") != _peer_ref(call, current["network"], "networkPeering"):
        raise Invalid("networkPeering.network", given["network"], "The peer network of a peering cannot be changed.")
    current.update(_switches(given, "networkPeering", current))
    store.save(net, net_body)
    _notify(call, net)
    if exchange.network_body(call.session, current["network"]) is not None:  # it imports what we export
        vpc.notify_router(call.session, call.project, current["network"])
    return _operation(call, net, "updatePeering")


def list_routes(call: Call, network: str, peering_name: str | None, direction: str | None,
                region: str | None) -> Body:
    net = store.find(call.session, call.project, "networks", "global", network)
    peering = _find(store.body_of(net), peering_name, "peeringName", vpc.path(net))
    if region in (None, ""):
        raise Required("region")
    region_name = topology.region(call.session, call.project, str(region)).name
    direction = direction or "INCOMING"
    if direction not in DIRECTIONS:
        raise Invalid("direction", direction, "Must be INCOMING or OUTGOING.")
    url = vpc.network_url(net)
    routes = (exchange.incoming if direction == "INCOMING" else exchange.outgoing)(call.session, url, peering)
    items = [r.to_json() for r in routes if r.region in (None, region_name)]
    return {"kind": "compute#exchangedPeeringRoutesList", "id": str(net.uid),
            "selfLink": f"{url}/listPeeringRoutes", **({"items": items} if items else {})}


def peerings_of(net: Resource) -> list[Body]:
    """The network's peerings: while it has any, it cannot be deleted."""
    return list(store.body_of(net).get("peerings", []))
