"""Routes: the ones the system creates (a default route to the Internet with each network, a route
to each subnetwork's range) and the static routes users add.

System routes are told apart by the ``subtype`` column: ``default`` for the Internet route created
with the network, ``subnet`` for subnetwork routes, which live and die with their subnetwork.
"""

from __future__ import annotations

import ipaddress
import secrets

from sqlalchemy.orm import Session

from core import quotas
from core.errors import AlreadyExists, Invalid, ResourceInUse
from core.links import path_of, url_of
from core.models import Operation, Resource
from core.resources import operations, store
from core.resources.context import Call
from core.resources.store import Body
from core.services import projects, vpc
from core.services.metadata import validate_tags

DEFAULT_GATEWAY = "default-internet-gateway"
_UNSUPPORTED_HOPS = ("nextHopVpnTunnel", "nextHopIlb", "nextHopNetwork", "nextHopPeering", "nextHopHub",
                     "nextHopInterconnectAttachment")


def _system_route(session: Session, project: str, subtype: str, body: Body) -> Resource:
    return store.new_resource(session, project=project, collection="routes", scope="global",
                              name=f"default-route-{secrets.token_hex(8)}", kind="compute#route", subtype=subtype,
                              body=body)


def create_default_route(session: Session, project: str, net_url: str) -> Resource:
    return _system_route(session, project, "default", {
        "description": "Default route to the Internet.", "network": net_url, "destRange": "0.0.0.0/0",
        "priority": 1000, "nextHopGateway": url_of(project, "global", "gateways", DEFAULT_GATEWAY),
        "routeType": "STATIC"})


def create_subnet_route(session: Session, project: str, net_url: str, block: str) -> Resource:
    return _system_route(session, project, "subnet", {
        "description": f"Default local route to the subnetwork {block}.", "network": net_url,
        "destRange": block, "priority": 0, "nextHopNetwork": net_url, "routeType": "SUBNET"})


def subnet_route(session: Session, project: str, net_url: str, block: str) -> Resource | None:
    for route in vpc.referring(session, project, "destRange", block, ["routes"]):
        body = store.body_of(route)
        if route.subtype == "subnet" and body.get("network") == net_url:
            return route
    return None


def move_subnet_route(session: Session, project: str, net_url: str, old: str, new: str) -> None:
    """A subnetwork's range grew: its route follows."""
    route = subnet_route(session, project, net_url, old)
    if route is not None:
        body = store.body_of(route)
        body.update(destRange=new, description=f"Default local route to the subnetwork {new}.")
        store.save(route, body)


def system_routes(session: Session, project: str, net_url: str) -> list[Resource]:
    return [r for r in vpc.referring(session, project, "network", net_url, ["routes"])
            if r.subtype in ("default", "subnet")]


# -- use cases ---------------------------------------------------------------------------------------


def _next_hop(call: Call, body: Body, net: Resource, subnets: list[Body]) -> Body:
    given = [k for k in ("nextHopGateway", "nextHopInstance", "nextHopIp", *_UNSUPPORTED_HOPS) if body.get(k)]
    if len(given) != 1:
        raise Invalid("resource", "", message="Invalid value for field 'resource': ''. Exactly one of "
                      "nextHopGateway, nextHopInstance or nextHopIp must be specified.")
    hop = given[0]
    field = f"resource.{hop}"
    value = body[hop]
    if hop in _UNSUPPORTED_HOPS:
        raise Invalid(field, value, "Only nextHopGateway, nextHopInstance and nextHopIp are supported.")
    if hop == "nextHopGateway":
        ref = vpc.reference(call, value, field, "gateways", "global")
        if ref.scope != "global" or ref.name != DEFAULT_GATEWAY:
            raise Invalid(field, value, f"The only gateway is 'global/gateways/{DEFAULT_GATEWAY}'.")
        return {hop: ref.url}
    if hop == "nextHopInstance":
        ref = vpc.reference(call, value, field, "instances")
        if not ref.scope.startswith("zones/"):
            raise Invalid(field, value, "The URL is malformed.")
        inst = store.body_of(store.find(call.session, ref.project, "instances", ref.scope, ref.name))
        if not any(n.get("network") == vpc.network_url(net) for n in inst.get("networkInterfaces", [])):
            raise Invalid(field, value, f"The instance has no network interface in network '{net.name}'.")
        return {hop: ref.url}
    try:
        ip = ipaddress.IPv4Address(value) if isinstance(value, str) else None
    except ValueError:
        ip = None
    if ip is None or not any(ip in ipaddress.IPv4Network(s["ipCidrRange"]) for s in subnets):
        raise Invalid(field, value, f"The next hop must be an IPv4 address in a subnetwork of network '{net.name}'.")
    return {hop: str(ip)}


def insert(call: Call, body: Body) -> Operation:
    name = store.validate_name(body.get("name"))
    project = projects.get(call.session, call.project, lock=True)
    net = vpc.network(call, body.get("network"), lock=True)
    net_url = vpc.network_url(net)
    dest_value = body.get("destRange")
    try:
        dest = ipaddress.IPv4Network(dest_value) if isinstance(dest_value, str) and "/" in dest_value else None
    except ValueError:
        dest = None
    if dest is None:
        raise Invalid("resource.destRange", dest_value, "Must be an IPv4 CIDR range with its host bits set to zero.")
    subnets = [store.body_of(s) for s in vpc.referring(call.session, call.project, "network", net_url, ["subnetworks"])]
    for s in subnets:
        if dest.subnet_of(ipaddress.IPv4Network(s["ipCidrRange"])):
            raise Invalid("resource.destRange", dest_value, f"The destination range is covered by the subnetwork route "
                                                            f"of '{vpc.relative(s['selfLink'])}' ({s['ipCidrRange']}).")
    if store.find_optional(call.session, call.project, "routes", "global", name):
        raise AlreadyExists(path_of(call.project, "global", "routes", name))
    hop = _next_hop(call, body, net, subnets)
    tags = validate_tags(body.get("tags"), "resource.tags")
    quotas.check_global(call.session, project, "ROUTES")
    route = store.new_resource(call.session, project=call.project, collection="routes", scope="global", name=name,
                               kind="compute#route", body={
                                   **({"description": body["description"]} if body.get("description") else {}),
                                   "network": net_url, "destRange": str(dest),
                                   "priority": vpc.integer(body.get("priority"), "resource.priority", 0, 65535, 1000),
                                   **hop, **({"tags": tags} if tags else {}), "routeType": "STATIC"})
    vpc.notify_router(call.session, call.project, net_url, peers=True)
    return operations.begin(call, scope="global", op_type="insert", target_path=vpc.path(route), target_id=route.uid)


def delete(call: Call, name: str) -> Operation:
    route = projects.find_for_update(call.session, call.project, "routes", "global", name)
    body = store.body_of(route)
    if route.subtype == "subnet":
        for subnet in vpc.referring(call.session, call.project, "ipCidrRange", body["destRange"], ["subnetworks"]):
            if store.body_of(subnet).get("network") == body["network"]:
                raise ResourceInUse("route", vpc.path(route), vpc.path(subnet))
    op = operations.begin(call, scope="global", op_type="delete", target_path=vpc.path(route), target_id=route.uid)
    call.session.delete(route)
    vpc.notify_router(call.session, call.project, body["network"], peers=True)
    return op

