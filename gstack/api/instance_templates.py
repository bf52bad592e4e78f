"""instanceTemplates and regionInstanceTemplates: instance bodies kept for later."""

from flask import Response

from core.resources.narrowing import filtered_rows
from core.services import instance_templates, vpc
from gstack.api import common
from gstack.api.registry import ApiRequest, handles
from gstack.gce.listing import aggregate, paginate, parse_params
from gstack.gce.narrowing import narrowing_of
from gstack.gce.render import json_response, storing

_COLLECTION = instance_templates.COLLECTION


@handles("compute.instanceTemplates.get")
def get(req: ApiRequest, instanceTemplate: str):
    return common.get(req, _COLLECTION, "global", instanceTemplate)


@handles("compute.instanceTemplates.list")
def list_templates(req: ApiRequest):
    return common.list_scope(req, _COLLECTION, "global", "compute#instanceTemplateList", "InstanceTemplate")


@handles("compute.instanceTemplates.insert")
def insert(req: ApiRequest):
    return instance_templates.insert(req.call, None, req.body)


@handles("compute.instanceTemplates.delete")
def delete(req: ApiRequest, instanceTemplate: str):
    return instance_templates.delete(req.call, None, instanceTemplate)


@handles("compute.instanceTemplates.aggregatedList")
def aggregated(req: ApiRequest) -> Response:
    """The global templates under ``global``, then each region's (InstanceTemplateAggregatedList has
    no ``unreachables``)."""
    params = parse_params(req.args, "InstanceTemplate")
    project = req.call.project
    scopes = ["global", *common.scopes_of(req, "regions")]
    page, token = paginate(
        lambda after, limit: filtered_rows(req.session, project, _COLLECTION, scopes, params.order, after, limit,
                                           narrowing_of(req.args.get("filter"), "InstanceTemplate")),
        params)
    out = common.list_envelope("compute#instanceTemplateAggregatedList", f"projects/{project}/aggregated/{_COLLECTION}",
                               [], token)
    out["items"] = aggregate(page, scopes, _COLLECTION, storing())
    return json_response(common.reorder(out))


def _region(req: ApiRequest, region: str) -> str:
    return vpc.region_scope(req.session, req.call.project, region).split("/", 1)[1]


@handles("compute.regionInstanceTemplates.get")
def region_get(req: ApiRequest, region: str, instanceTemplate: str):
    return common.get(req, _COLLECTION, f"regions/{_region(req, region)}", instanceTemplate)


@handles("compute.regionInstanceTemplates.list")
def region_list(req: ApiRequest, region: str):
    return common.list_scope(req, _COLLECTION, f"regions/{_region(req, region)}", "compute#instanceTemplateList",
                             "InstanceTemplate")


@handles("compute.regionInstanceTemplates.insert")
def region_insert(req: ApiRequest, region: str):
    return instance_templates.insert(req.call, _region(req, region), req.body)


@handles("compute.regionInstanceTemplates.delete")
def region_delete(req: ApiRequest, region: str, instanceTemplate: str):
    return instance_templates.delete(req.call, _region(req, region), instanceTemplate)
