"""networks: VPC networks (global)."""

from core.services import networks, peering
from gstack.api import common
from gstack.api.registry import ApiRequest, handles


@handles("compute.networks.get")
def get(req: ApiRequest, network: str):
    return common.get(req, "networks", "global", network)


@handles("compute.networks.list")
def list_networks(req: ApiRequest):
    return common.list_scope(req, "networks", "global", "compute#networkList", "Network")


@handles("compute.networks.insert")
def insert(req: ApiRequest):
    return networks.insert(req.call, req.body)


@handles("compute.networks.delete")
def delete(req: ApiRequest, network: str):
    return networks.delete(req.call, network)


@handles("compute.networks.patch")
def patch(req: ApiRequest, network: str):
    return networks.patch(req.call, network, req.body)


@handles("compute.networks.switchToCustomMode")
def switch_to_custom_mode(req: ApiRequest, network: str):
    return networks.switch_to_custom_mode(req.call, network)


@handles("compute.networks.getEffectiveFirewalls")
def effective_firewalls(req: ApiRequest, network: str):
    return networks.effective_firewalls(req.call, network)


@handles("compute.networks.addPeering")
def add_peering(req: ApiRequest, network: str):
    return peering.add(req.call, network, req.body)


@handles("compute.networks.removePeering")
def remove_peering(req: ApiRequest, network: str):
    return peering.remove(req.call, network, req.body)


@handles("compute.networks.updatePeering")
def update_peering(req: ApiRequest, network: str):
    return peering.update(req.call, network, req.body)


@handles("compute.networks.listPeeringRoutes")
def list_peering_routes(req: ApiRequest, network: str):
    return peering.list_routes(req.call, network, req.args.get("peeringName"), req.args.get("direction"),
                               req.args.get("region"))
