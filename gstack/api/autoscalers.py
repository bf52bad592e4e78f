"""autoscalers: zonal autoscalers of managed instance groups (regionAutoscalers in
:mod:`gstack.api.region_autoscalers`, over the same service)."""

from flask import Response

from core.resources.narrowing import filtered_rows
from core.services import autoscalers
from gstack.api import common
from gstack.api.registry import ApiRequest, handles
from gstack.gce.listing import aggregate, paginate, parse_params
from gstack.gce.narrowing import narrowing_of
from gstack.gce.render import json_response, storing


def _scope(req: ApiRequest, zone: str) -> str:
    return f"zones/{req.zone(zone).name}"


@handles("compute.autoscalers.get")
def get(req: ApiRequest, zone: str, autoscaler: str):
    return common.get(req, "autoscalers", _scope(req, zone), autoscaler)


@handles("compute.autoscalers.list")
def list_autoscalers(req: ApiRequest, zone: str):
    return common.list_scope(req, "autoscalers", _scope(req, zone), "compute#autoscalerList", "Autoscaler")


@handles("compute.autoscalers.aggregatedList")
def aggregated(req: ApiRequest) -> Response:
    """Zonal and regional autoscalers, each under its scope, as GCE aggregates them."""
    params = parse_params(req.args, "Autoscaler")
    project = req.call.project
    scopes = [*common.scopes_of(req, "regions"), *common.scopes_of(req, "zones")]
    page, token = paginate(
        lambda after, limit: filtered_rows(req.session, project, "autoscalers", scopes, params.order, after, limit,
                                           narrowing_of(req.args.get("filter"), "Autoscaler")),
        params)
    out = common.list_envelope("compute#autoscalerAggregatedList", f"projects/{project}/aggregated/autoscalers", [],
                               token)
    out["items"] = aggregate(page, scopes, "autoscalers", storing())
    out["unreachables"] = []
    return json_response(common.reorder(out))


@handles("compute.autoscalers.insert")
def insert(req: ApiRequest, zone: str):
    return autoscalers.insert(req.call, _scope(req, zone), req.body)


@handles("compute.autoscalers.patch")
def patch(req: ApiRequest, zone: str):
    return autoscalers.patch(req.call, _scope(req, zone), req.args.get("autoscaler"), req.body)


@handles("compute.autoscalers.update")
def update(req: ApiRequest, zone: str):
    return autoscalers.update(req.call, _scope(req, zone), req.args.get("autoscaler"), req.body)


@handles("compute.autoscalers.delete")
def delete(req: ApiRequest, zone: str, autoscaler: str):
    return autoscalers.delete(req.call, _scope(req, zone), autoscaler)
