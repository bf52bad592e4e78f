"""networks, subnetworks, firewalls: reads of what the project has (its default VPC)."""

from gstack.api import common
from gstack.api.registry import ApiRequest, handles


@handles("compute.networks.get")
def get_network(req: ApiRequest, network: str):
    return common.get(req, "networks", "global", network)


@handles("compute.networks.list")
def list_networks(req: ApiRequest):
    return common.list_scope(req, "networks", "global", "compute#networkList", "Network")


@handles("compute.firewalls.get")
def get_firewall(req: ApiRequest, firewall: str):
    return common.get(req, "firewalls", "global", firewall)


@handles("compute.firewalls.list")
def list_firewalls(req: ApiRequest):
    return common.list_scope(req, "firewalls", "global", "compute#firewallList", "Firewall")


def _region_scope(req: ApiRequest, region: str) -> str:
    from core.services import topology

    return f"regions/{topology.region(req.session, req.call.project, region).name}"


@handles("compute.subnetworks.get")
def get_subnetwork(req: ApiRequest, region: str, subnetwork: str):
    return common.get(req, "subnetworks", _region_scope(req, region), subnetwork)


@handles("compute.subnetworks.list")
def list_subnetworks(req: ApiRequest, region: str):
    return common.list_scope(req, "subnetworks", _region_scope(req, region), "compute#subnetworkList", "Subnetwork")


@handles("compute.subnetworks.aggregatedList")
def aggregated_subnetworks(req: ApiRequest):
    return common.aggregated_list(req, "subnetworks", "regions", "compute#subnetworkAggregatedList", "Subnetwork")
