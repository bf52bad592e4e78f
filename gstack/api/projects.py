"""projects.get, projects.setCommonInstanceMetadata."""

from core.services import projects
from gstack.api.registry import ApiRequest, handles


@handles("compute.projects.get")
def get(req: ApiRequest):
    return projects.to_json(req.session, projects.get(req.session, req.call.project))


@handles("compute.projects.setCommonInstanceMetadata")
def set_common_instance_metadata(req: ApiRequest):
    return projects.set_common_instance_metadata(req.call, req.body)
