"""Networks (VPCs): auto mode (a /20 subnetwork per region from 10.128.0.0/9) or custom mode, each
with a default route to the Internet; the default VPC of a new project; refusing to delete a
network while anything uses it."""

from __future__ import annotations

import ipaddress

from sqlalchemy import select
from sqlalchemy.orm import Session

from core import quotas
from core.errors import AlreadyExists, Invalid, Required, ResourceInUse
from core.links import path_of, url_of
from core.models import Operation, Region, Resource
from core.resources import operations, store
from core.resources.context import Call
from core.resources.store import Body
from core.services import firewalls, peering, projects, routes, subnetworks, vpc
from core.systemvms import guests

AUTO_MODE_RANGE = str(subnetworks.AUTO_MODE_RANGE)

# GCE's auto-mode subnet ranges of the regions we seed; other regions get the next free /20.
AUTO_SUBNETS = {
    "us-central1": "10.128.0.0/20",
    "europe-west1": "10.132.0.0/20",
    "us-west1": "10.138.0.0/20",
    "asia-east1": "10.140.0.0/20",
    "us-east1": "10.142.0.0/20",
}

DEFAULT_FIREWALLS = [
    ("default-allow-internal", "Allow internal traffic on the default network", [AUTO_MODE_RANGE],
     [{"IPProtocol": "tcp", "ports": ["0-65535"]}, {"IPProtocol": "udp", "ports": ["0-65535"]}, {"IPProtocol": "icmp"}]),
    ("default-allow-ssh", "Allow SSH from anywhere", ["0.0.0.0/0"], [{"IPProtocol": "tcp", "ports": ["22"]}]),
    ("default-allow-rdp", "Allow RDP from anywhere", ["0.0.0.0/0"], [{"IPProtocol": "tcp", "ports": ["3389"]}]),
    ("default-allow-icmp", "Allow ICMP from anywhere", ["0.0.0.0/0"], [{"IPProtocol": "icmp"}]),
]

MTU_MIN, MTU_MAX, MTU_DEFAULT = 1300, 8896, 1460
ROUTING_MODES = ("REGIONAL", "GLOBAL")
ENFORCEMENT_ORDERS = ("AFTER_CLASSIC_FIREWALL", "BEFORE_CLASSIC_FIREWALL")
# What patch may change; any other writable field given must equal the current value.
PATCHABLE = frozenset({"description", "routingConfig", "mtu", "networkFirewallPolicyEnforcementOrder"})
# Collections whose resources keep a network from being deleted, in the order they are reported.
USERS = ("firewalls", "subnetworks", "routes", "instances", "addresses", "forwardingRules", "networkEndpointGroups")
# The users found by the text of their bodies; an instance is found through its subnetwork's
# addresses (guests.instance_on), which does not cost more the more instances the project holds.
_NAMING = tuple(c for c in USERS if c != "instances")


def _auto_range(region: str, taken: set[str]) -> str:
    if region in AUTO_SUBNETS:
        return AUTO_SUBNETS[region]
    for net in ipaddress.ip_network(AUTO_MODE_RANGE).subnets(new_prefix=20):
        if str(net) not in taken and str(net) not in AUTO_SUBNETS.values():
            return str(net)
    raise RuntimeError("auto-mode range exhausted")


def _settings(body: Body, current: Body | None = None) -> Body:
    """The writable settings of a network, validated, defaults filled in."""
    current = current or {}
    routing = body.get("routingConfig", current.get("routingConfig")) or {}
    if not isinstance(routing, dict):
        raise Invalid("resource.routingConfig", routing, "Must be an object.")
    mode = routing.get("routingMode", "REGIONAL")
    if mode not in ROUTING_MODES:
        raise Invalid("resource.routingConfig.routingMode", mode, "Must be REGIONAL or GLOBAL.")
    mtu = vpc.integer(body.get("mtu", current.get("mtu")), "resource.mtu", MTU_MIN, MTU_MAX, MTU_DEFAULT)
    order = body.get("networkFirewallPolicyEnforcementOrder",
                     current.get("networkFirewallPolicyEnforcementOrder", "AFTER_CLASSIC_FIREWALL"))
    if order not in ENFORCEMENT_ORDERS:
        raise Invalid("resource.networkFirewallPolicyEnforcementOrder", order,
                      "Must be AFTER_CLASSIC_FIREWALL or BEFORE_CLASSIC_FIREWALL.")
    out = {"routingConfig": {"bgpBestPathSelectionMode": "LEGACY", **routing, "routingMode": mode}, "mtu": mtu,
           "networkFirewallPolicyEnforcementOrder": order}
    description = body.get("description", current.get("description"))
    if description:
        out["description"] = description
    return out


def _create(session: Session, project: str, name: str, auto: bool, settings: Body) -> Resource:
    """The network row, its default route and, in auto mode, a subnetwork (and route) per region."""
    net = store.new_resource(session, project=project, collection="networks", scope="global", name=name,
                             kind="compute#network", body={"autoCreateSubnetworks": auto, **settings})
    body = store.body_of(net)
    body["selfLinkWithId"] = url_of(project, "global", "networks", str(net.uid))
    store.save(net, body)
    net_url = vpc.network_url(net)
    routes.create_default_route(session, project, net_url)
    if auto:
        taken: set[str] = set()
        for region in session.scalars(select(Region).order_by(Region.name)):
            block = _auto_range(region.name, taken)
            taken.add(block)
            subnetworks.create_row(session, project, region.name, name, net_url, block)
    return net


def create_default_network(session: Session, project: str) -> None:
    """The VPC a new GCE project gets: auto-mode ``default``, a /20 per region, four firewall rules."""
    if store.find_optional(session, project, "networks", "global", "default") is not None:
        return
    net = _create(session, project, "default", True, _settings({"description": "Default network for the project"}))
    for name, description, ranges, allowed in DEFAULT_FIREWALLS:
        store.new_resource(session, project=project, collection="firewalls", scope="global", name=name,
                           kind="compute#firewall", body={
                               "description": description, "network": vpc.network_url(net), "priority": 65534,
                               "sourceRanges": ranges, "allowed": allowed, "direction": "INGRESS",
                               "logConfig": {"enable": False}, "disabled": False})


def insert(call: Call, body: Body) -> Operation:
    if body.get("name") in (None, ""):
        raise Required("resource.name")
    name = store.validate_name(body.get("name"))
    if body.get("IPv4Range") or body.get("gatewayIPv4"):
        field = "IPv4Range" if body.get("IPv4Range") else "gatewayIPv4"
        raise Invalid(f"resource.{field}", body[field], "Legacy networks are not supported: create a VPC network "
                      "(set autoCreateSubnetworks to true or false).")
    auto = body.get("autoCreateSubnetworks")
    if not isinstance(auto, bool):
        raise Invalid("resource.autoCreateSubnetworks", "", "Legacy networks are not supported: set "
                      "autoCreateSubnetworks to true (auto mode) or false (custom mode).")
    settings = _settings(body)
    project = projects.get(call.session, call.project, lock=True)
    if store.find_optional(call.session, call.project, "networks", "global", name):
        raise AlreadyExists(path_of(call.project, "global", "networks", name))
    quotas.check_global(call.session, project, "NETWORKS")
    if auto:
        regions = len(list(call.session.scalars(select(Region.id))))
        quotas.check_global(call.session, project, "SUBNETWORKS", regions)
    net = _create(call.session, call.project, name, auto, settings)
    return operations.begin(call, scope="global", op_type="insert", target_path=vpc.path(net), target_id=net.uid)


def _own(net: Resource, user: Resource) -> bool:
    """Resources that go with the network: its system routes, an auto-mode network's subnetworks."""
    if user.collection == "routes":
        return user.subtype in ("default", "subnet")
    return user.collection == "subnetworks" and subnetworks.is_auto(net, user)


def delete(call: Call, name: str) -> Operation:
    net = projects.find_for_update(call.session, call.project, "networks", "global", name)
    net_url = vpc.network_url(net)
    peerings = peering.peerings_of(net)
    if peerings:  # GCE: the network's peerings are removed first
        raise ResourceInUse("network", vpc.path(net), f"{vpc.path(net)}/peerings/{peerings[0]['name']}")
    found = vpc.referring(call.session, call.project, "network", net_url, _NAMING)
    users = sorted((u for u in found if not _own(net, u)), key=lambda u: USERS.index(u.collection))
    if not users or USERS.index(users[0].collection) > USERS.index("instances"):
        # any project's instance on one of the network's subnetworks (a Shared VPC service project's too)
        instance = guests.instance_on(call.session, [u for u in found if u.collection == "subnetworks"])
        users[:0] = [instance] if instance is not None else []
    if users:
        raise ResourceInUse("network", vpc.path(net), vpc.path(users[0]))
    own_subnets = [u for u in found if u.collection == "subnetworks"]
    subnet_users = [u for s in own_subnets for u in vpc.referring(
        call.session, call.project, "subnetwork", vpc.url(s), ["addresses", "forwardingRules"])]
    if subnet_users:
        raise ResourceInUse("network", vpc.path(net), vpc.path(subnet_users[0]))
    op = operations.begin(call, scope="global", op_type="delete", target_path=vpc.path(net), target_id=net.uid)
    for subnet in own_subnets:
        subnetworks.remove(call.session, net, subnet)
    for route in routes.system_routes(call.session, call.project, net_url):
        call.session.delete(route)
    call.session.delete(net)
    vpc.notify_router(call.session, call.project, net_url)  # a network that is gone loses its routers
    return op


def patch(call: Call, name: str, body: Body) -> Operation:
    """JSON merge patch of the network's settings (description, routingConfig, mtu ...)."""
    net = projects.find_for_update(call.session, call.project, "networks", "global", name)
    current = store.body_of(net)
    for key, value in body.items():
        if key in vpc.OUTPUT_ONLY or key in PATCHABLE or key == "subnetworks":
            continue
        if value != current.get(key):
            raise Invalid(f"resource.{key}", value, "This field cannot be changed by patch"
                          + (" (use switchToCustomMode)." if key == "autoCreateSubnetworks" else "."))
    merged = vpc.merge_patch({k: current[k] for k in PATCHABLE if k in current},
                             {k: v for k, v in body.items() if k in PATCHABLE})
    current.pop("description", None)
    current.update(_settings(merged))
    store.save(net, current)
    vpc.notify_router(call.session, call.project, vpc.network_url(net))  # the MTU is a DHCP option
    return operations.begin(call, scope="global", op_type="patch", target_path=vpc.path(net), target_id=net.uid)


def switch_to_custom_mode(call: Call, name: str) -> Operation:
    net = projects.find_for_update(call.session, call.project, "networks", "global", name)
    body = store.body_of(net)
    if not body.get("autoCreateSubnetworks"):
        raise Invalid("network", net.name, message=(
            f"Invalid resource usage: 'Network '{net.name}' is already a custom mode network.'."))
    body["autoCreateSubnetworks"] = False
    store.save(net, body)
    return operations.begin(call, scope="global", op_type="switchToCustomMode", target_path=vpc.path(net),
                            target_id=net.uid)


def effective_firewalls(call: Call, name: str) -> Body:
    net = store.find(call.session, call.project, "networks", "global", name)
    return {"firewalls": firewalls.of_network(call.session, call.project, vpc.network_url(net))}
