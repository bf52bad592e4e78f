"""urlMaps and regionUrlMaps: host and path rules that choose a backend service."""

from core.services import lb_common, url_maps
from gstack.api import common
from gstack.api.addresses import aggregated_with_global
from gstack.api.registry import ApiRequest, handles

C = url_maps.COLLECTION


@handles("compute.urlMaps.get", "compute.regionUrlMaps.get")
def get(req: ApiRequest, urlMap: str, region: str | None = None):
    return common.get(req, C, lb_common.scope_of(req.call, region), urlMap)


@handles("compute.urlMaps.list", "compute.regionUrlMaps.list")
def list_maps(req: ApiRequest, region: str | None = None):
    return common.list_scope(req, C, lb_common.scope_of(req.call, region), "compute#urlMapList", "UrlMap")


@handles("compute.urlMaps.aggregatedList")
def aggregated(req: ApiRequest):
    return aggregated_with_global(req, C, "compute#urlMapsAggregatedList", "UrlMap")


@handles("compute.urlMaps.insert", "compute.regionUrlMaps.insert")
def insert(req: ApiRequest, region: str | None = None):
    return url_maps.insert(req.call, region, req.body)


@handles("compute.urlMaps.delete", "compute.regionUrlMaps.delete")
def delete(req: ApiRequest, urlMap: str, region: str | None = None):
    return url_maps.delete(req.call, region, urlMap)


@handles("compute.urlMaps.patch", "compute.regionUrlMaps.patch")
def patch(req: ApiRequest, urlMap: str, region: str | None = None):
    return url_maps.replace(req.call, region, urlMap, req.body, merge=True)


@handles("compute.urlMaps.update", "compute.regionUrlMaps.update")
def update(req: ApiRequest, urlMap: str, region: str | None = None):
    return url_maps.replace(req.call, region, urlMap, req.body, merge=False)


@handles("compute.urlMaps.validate", "compute.regionUrlMaps.validate")
def validate(req: ApiRequest, urlMap: str, region: str | None = None):
    return url_maps.validate(req.call, region, req.body)
