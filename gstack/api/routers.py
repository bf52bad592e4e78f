"""routers: Cloud Routers, their BGP settings and Cloud NAT gateways (regional)."""

from core.services import routers, vpc
from gstack.api import common
from gstack.api.registry import ApiRequest, handles


def _scope(req: ApiRequest, region: str) -> str:
    return vpc.region_scope(req.session, req.call.project, region)


@handles("compute.routers.get")
def get(req: ApiRequest, region: str, router: str):
    return common.get(req, "routers", _scope(req, region), router)


@handles("compute.routers.list")
def list_routers(req: ApiRequest, region: str):
    return common.list_scope(req, "routers", _scope(req, region), "compute#routerList", "Router")


@handles("compute.routers.aggregatedList")
def aggregated(req: ApiRequest):
    return common.aggregated_list(req, "routers", "regions", "compute#routerAggregatedList", "Router")


@handles("compute.routers.insert")
def insert(req: ApiRequest, region: str):
    return routers.insert(req.call, region, req.body)


@handles("compute.routers.patch")
def patch(req: ApiRequest, region: str, router: str):
    return routers.replace(req.call, region, router, req.body, merge=True)


@handles("compute.routers.update")
def update(req: ApiRequest, region: str, router: str):
    return routers.replace(req.call, region, router, req.body, merge=False)


@handles("compute.routers.delete")
def delete(req: ApiRequest, region: str, router: str):
    return routers.delete(req.call, region, router)


@handles("compute.routers.getRouterStatus")
def get_router_status(req: ApiRequest, region: str, router: str):
    return routers.status(req.call, region, router)
