"""regionAutoscalers: autoscalers of regional managed instance groups, over the zonal ones' service
(their aggregatedList is autoscalers.aggregatedList)."""

from core.services import autoscalers, vpc
from gstack.api import common
from gstack.api.registry import ApiRequest, handles


def _scope(req: ApiRequest, region: str) -> str:
    return vpc.region_scope(req.session, req.call.project, region)


@handles("compute.regionAutoscalers.get")
def get(req: ApiRequest, region: str, autoscaler: str):
    return common.get(req, "autoscalers", _scope(req, region), autoscaler)


@handles("compute.regionAutoscalers.list")
def list_autoscalers(req: ApiRequest, region: str):
    return common.list_scope(req, "autoscalers", _scope(req, region), "compute#regionAutoscalerList", "Autoscaler")


@handles("compute.regionAutoscalers.insert")
def insert(req: ApiRequest, region: str):
    return autoscalers.insert(req.call, _scope(req, region), req.body)


@handles("compute.regionAutoscalers.patch")
def patch(req: ApiRequest, region: str):
    return autoscalers.patch(req.call, _scope(req, region), req.args.get("autoscaler"), req.body)


@handles("compute.regionAutoscalers.update")
def update(req: ApiRequest, region: str):
    return autoscalers.update(req.call, _scope(req, region), req.args.get("autoscaler"), req.body)


@handles("compute.regionAutoscalers.delete")
def delete(req: ApiRequest, region: str, autoscaler: str):
    return autoscalers.delete(req.call, _scope(req, region), autoscaler)
