"""projects: get, setCommonInstanceMetadata, setDefaultNetworkTier, setUsageExportBucket, moveInstance."""

from core.services import projects, shared_vpc
from gstack.api.registry import ApiRequest, handles


@handles("compute.projects.get")
def get(req: ApiRequest):
    return projects.to_json(req.session, projects.get(req.session, req.call.project))


@handles("compute.projects.setCommonInstanceMetadata")
def set_common_instance_metadata(req: ApiRequest):
    return projects.set_common_instance_metadata(req.call, req.body)


@handles("compute.projects.setDefaultNetworkTier")
def set_default_network_tier(req: ApiRequest):
    return projects.set_default_network_tier(req.call, req.body)


@handles("compute.projects.setUsageExportBucket")
def set_usage_export_bucket(req: ApiRequest):
    return projects.set_usage_export_bucket(req.call, req.body)


@handles("compute.projects.moveInstance")
def move_instance(req: ApiRequest):
    return projects.move_instance(req.call, req.body)


# -- Shared VPC (XPN) ------------------------------------------------------------------------------


@handles("compute.projects.enableXpnHost")
def enable_xpn_host(req: ApiRequest):
    return shared_vpc.enable_host(req.call)


@handles("compute.projects.disableXpnHost")
def disable_xpn_host(req: ApiRequest):
    return shared_vpc.disable_host(req.call)


@handles("compute.projects.enableXpnResource")
def enable_xpn_resource(req: ApiRequest):
    return shared_vpc.enable_resource(req.call, req.body)


@handles("compute.projects.disableXpnResource")
def disable_xpn_resource(req: ApiRequest):
    return shared_vpc.disable_resource(req.call, req.body)


@handles("compute.projects.getXpnHost")
def get_xpn_host(req: ApiRequest):
    return shared_vpc.get_host(req.call)


@handles("compute.projects.getXpnResources")
def get_xpn_resources(req: ApiRequest):
    return shared_vpc.get_resources(req.call)


@handles("compute.projects.listXpnHosts")
def list_xpn_hosts(req: ApiRequest):
    return shared_vpc.list_hosts(req.call)
