"""projects: get, setCommonInstanceMetadata, setDefaultNetworkTier, setUsageExportBucket, moveInstance."""

from core.services import projects
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
