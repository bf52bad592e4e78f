"""Networks, subnetworks and firewalls. This layer creates the default VPC of a project; their
full lifecycle (and the virtual router that serves them) builds on it."""

from __future__ import annotations

import ipaddress

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.ids import fingerprint
from core.links import scope_url, url_of
from core.models import Region
from core.services import store

AUTO_MODE_RANGE = "10.128.0.0/9"

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


def _auto_range(region: str, taken: set[str]) -> str:
    if region in AUTO_SUBNETS:
        return AUTO_SUBNETS[region]
    for net in ipaddress.ip_network(AUTO_MODE_RANGE).subnets(new_prefix=20):
        if str(net) not in taken and str(net) not in AUTO_SUBNETS.values():
            return str(net)
    raise RuntimeError("auto-mode range exhausted")


def create_default_network(session: Session, project: str) -> None:
    """The VPC a new GCE project gets: auto-mode ``default``, a /20 per region, four firewall rules."""
    if store.find_optional(session, project, "networks", "global", "default") is not None:
        return
    net = store.new_resource(session, project=project, collection="networks", scope="global", name="default",
                             kind="compute#network", body={
                                 "description": "Default network for the project", "autoCreateSubnetworks": True,
                                 "routingConfig": {"routingMode": "REGIONAL", "bgpBestPathSelectionMode": "LEGACY"},
                                 "mtu": 1460, "networkFirewallPolicyEnforcementOrder": "AFTER_CLASSIC_FIREWALL",
                                 "subnetworks": []})
    net_url = url_of(project, "global", "networks", "default")
    subnet_urls = []
    taken: set[str] = set()
    for region in session.scalars(select(Region).order_by(Region.name)):
        cidr = _auto_range(region.name, taken)
        taken.add(cidr)
        gateway = str(ipaddress.ip_network(cidr).network_address + 1)
        scope = f"regions/{region.name}"
        body = {"network": net_url, "ipCidrRange": cidr, "gatewayAddress": gateway,
                "region": scope_url(project, scope), "privateIpGoogleAccess": False, "stackType": "IPV4_ONLY",
                "purpose": "PRIVATE"}
        body["fingerprint"] = fingerprint(["subnetwork", body])
        store.new_resource(session, project=project, collection="subnetworks", scope=scope, name="default",
                           kind="compute#subnetwork", region=region.name, body=body)
        subnet_urls.append(url_of(project, scope, "subnetworks", "default"))
    body = store.body_of(net)
    body["subnetworks"] = subnet_urls
    store.save(net, body)
    for name, description, ranges, allowed in DEFAULT_FIREWALLS:
        store.new_resource(session, project=project, collection="firewalls", scope="global", name=name,
                           kind="compute#firewall", body={
                               "description": description, "network": net_url, "priority": 65534,
                               "sourceRanges": ranges, "allowed": allowed, "direction": "INGRESS",
                               "logConfig": {"enable": False}, "disabled": False})
