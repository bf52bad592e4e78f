"""routes: the routing table of a project's networks."""

from core.services import routes
from gstack.api import common
from gstack.api.registry import ApiRequest, handles


@handles("compute.routes.get")
def get(req: ApiRequest, route: str):
    return common.get(req, "routes", "global", route)


@handles("compute.routes.list")
def list_routes(req: ApiRequest):
    return common.list_scope(req, "routes", "global", "compute#routeList", "Route")


@handles("compute.routes.insert")
def insert(req: ApiRequest):
    return routes.insert(req.call, req.body)


@handles("compute.routes.delete")
def delete(req: ApiRequest, route: str):
    return routes.delete(req.call, route)
