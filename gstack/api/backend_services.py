"""backendServices and regionBackendServices: the instance groups behind an HTTP(S) load balancer."""

from core.services import backend_services, lb_common
from gstack.api import common
from gstack.api.addresses import aggregated_with_global
from gstack.api.registry import ApiRequest, handles

C = backend_services.COLLECTION


@handles("compute.backendServices.get", "compute.regionBackendServices.get")
def get(req: ApiRequest, backendService: str, region: str | None = None):
    return common.get(req, C, lb_common.scope_of(req.call, region), backendService)


@handles("compute.backendServices.list", "compute.regionBackendServices.list")
def list_services(req: ApiRequest, region: str | None = None):
    return common.list_scope(req, C, lb_common.scope_of(req.call, region), "compute#backendServiceList",
                             "BackendService")


@handles("compute.backendServices.aggregatedList")
def aggregated(req: ApiRequest):
    return aggregated_with_global(req, C, "compute#backendServiceAggregatedList", "BackendService")


@handles("compute.backendServices.insert", "compute.regionBackendServices.insert")
def insert(req: ApiRequest, region: str | None = None):
    return backend_services.insert(req.call, region, req.body)


@handles("compute.backendServices.delete", "compute.regionBackendServices.delete")
def delete(req: ApiRequest, backendService: str, region: str | None = None):
    return backend_services.delete(req.call, region, backendService)


@handles("compute.backendServices.patch", "compute.regionBackendServices.patch")
def patch(req: ApiRequest, backendService: str, region: str | None = None):
    return backend_services.replace(req.call, region, backendService, req.body, merge=True)


@handles("compute.backendServices.update", "compute.regionBackendServices.update")
def update(req: ApiRequest, backendService: str, region: str | None = None):
    return backend_services.replace(req.call, region, backendService, req.body, merge=False)


@handles("compute.backendServices.getHealth", "compute.regionBackendServices.getHealth")
def get_health(req: ApiRequest, backendService: str, region: str | None = None):
    return backend_services.group_health(req.call, region, backendService, req.body)
