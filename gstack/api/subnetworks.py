"""subnetworks: regional IP ranges of networks."""

from core.services import subnetworks, vpc
from gstack.api import common
from gstack.api.registry import ApiRequest, handles


def _scope(req: ApiRequest, region: str) -> str:
    return vpc.region_scope(req.session, req.call.project, region)


@handles("compute.subnetworks.get")
def get(req: ApiRequest, region: str, subnetwork: str):
    return common.get(req, "subnetworks", _scope(req, region), subnetwork)


@handles("compute.subnetworks.list")
def list_subnetworks(req: ApiRequest, region: str):
    return common.list_scope(req, "subnetworks", _scope(req, region), "compute#subnetworkList", "Subnetwork")


@handles("compute.subnetworks.aggregatedList")
def aggregated(req: ApiRequest):
    return common.aggregated_list(req, "subnetworks", "regions", "compute#subnetworkAggregatedList", "Subnetwork")


@handles("compute.subnetworks.insert")
def insert(req: ApiRequest, region: str):
    return subnetworks.insert(req.call, region, req.body)


@handles("compute.subnetworks.delete")
def delete(req: ApiRequest, region: str, subnetwork: str):
    return subnetworks.delete(req.call, region, subnetwork)


@handles("compute.subnetworks.patch")
def patch(req: ApiRequest, region: str, subnetwork: str):
    return subnetworks.patch(req.call, region, subnetwork, req.body)


@handles("compute.subnetworks.expandIpCidrRange")
def expand_ip_cidr_range(req: ApiRequest, region: str, subnetwork: str):
    return subnetworks.expand_ip_cidr_range(req.call, region, subnetwork, req.body)


@handles("compute.subnetworks.setPrivateIpGoogleAccess")
def set_private_ip_google_access(req: ApiRequest, region: str, subnetwork: str):
    return subnetworks.set_private_ip_google_access(req.call, region, subnetwork, req.body)
