"""targetHttpProxies and targetHttpsProxies, global and regional: what an HTTP(S) forwarding rule
points at."""

from core.services import lb_common, target_proxies
from gstack.api import common
from gstack.api.addresses import aggregated_with_global
from gstack.api.registry import ApiRequest, handles

HTTP, HTTPS = target_proxies.HTTP, target_proxies.HTTPS


@handles("compute.targetHttpProxies.get", "compute.regionTargetHttpProxies.get")
def get_http(req: ApiRequest, targetHttpProxy: str, region: str | None = None):
    return common.get(req, HTTP, lb_common.scope_of(req.call, region), targetHttpProxy)


@handles("compute.targetHttpsProxies.get", "compute.regionTargetHttpsProxies.get")
def get_https(req: ApiRequest, targetHttpsProxy: str, region: str | None = None):
    return common.get(req, HTTPS, lb_common.scope_of(req.call, region), targetHttpsProxy)


@handles("compute.targetHttpProxies.list", "compute.regionTargetHttpProxies.list")
def list_http(req: ApiRequest, region: str | None = None):
    return common.list_scope(req, HTTP, lb_common.scope_of(req.call, region), "compute#targetHttpProxyList",
                             "TargetHttpProxy")


@handles("compute.targetHttpsProxies.list", "compute.regionTargetHttpsProxies.list")
def list_https(req: ApiRequest, region: str | None = None):
    return common.list_scope(req, HTTPS, lb_common.scope_of(req.call, region), "compute#targetHttpsProxyList",
                             "TargetHttpsProxy")


@handles("compute.targetHttpProxies.aggregatedList")
def aggregated_http(req: ApiRequest):
    return aggregated_with_global(req, HTTP, "compute#targetHttpProxyAggregatedList", "TargetHttpProxy")


@handles("compute.targetHttpsProxies.aggregatedList")
def aggregated_https(req: ApiRequest):
    return aggregated_with_global(req, HTTPS, "compute#targetHttpsProxyAggregatedList", "TargetHttpsProxy")


@handles("compute.targetHttpProxies.insert", "compute.regionTargetHttpProxies.insert")
def insert_http(req: ApiRequest, region: str | None = None):
    return target_proxies.insert(req.call, HTTP, region, req.body)


@handles("compute.targetHttpsProxies.insert", "compute.regionTargetHttpsProxies.insert")
def insert_https(req: ApiRequest, region: str | None = None):
    return target_proxies.insert(req.call, HTTPS, region, req.body)


@handles("compute.targetHttpProxies.delete", "compute.regionTargetHttpProxies.delete")
def delete_http(req: ApiRequest, targetHttpProxy: str, region: str | None = None):
    return target_proxies.delete(req.call, HTTP, region, targetHttpProxy)


@handles("compute.targetHttpsProxies.delete", "compute.regionTargetHttpsProxies.delete")
def delete_https(req: ApiRequest, targetHttpsProxy: str, region: str | None = None):
    return target_proxies.delete(req.call, HTTPS, region, targetHttpsProxy)


@handles("compute.targetHttpProxies.setUrlMap", "compute.regionTargetHttpProxies.setUrlMap")
def set_url_map_http(req: ApiRequest, targetHttpProxy: str, region: str | None = None):
    return target_proxies.set_url_map(req.call, HTTP, region, targetHttpProxy, req.body)


@handles("compute.targetHttpsProxies.setUrlMap", "compute.regionTargetHttpsProxies.setUrlMap")
def set_url_map_https(req: ApiRequest, targetHttpsProxy: str, region: str | None = None):
    return target_proxies.set_url_map(req.call, HTTPS, region, targetHttpsProxy, req.body)


@handles("compute.targetHttpProxies.patch")
def patch_http(req: ApiRequest, targetHttpProxy: str):
    return target_proxies.patch(req.call, HTTP, None, targetHttpProxy, req.body)


@handles("compute.targetHttpsProxies.patch", "compute.regionTargetHttpsProxies.patch")
def patch_https(req: ApiRequest, targetHttpsProxy: str, region: str | None = None):
    return target_proxies.patch(req.call, HTTPS, region, targetHttpsProxy, req.body)


@handles("compute.targetHttpsProxies.setSslCertificates", "compute.regionTargetHttpsProxies.setSslCertificates")
def set_certificates(req: ApiRequest, targetHttpsProxy: str, region: str | None = None):
    return target_proxies.set_certificates(req.call, region, targetHttpsProxy, req.body)


@handles("compute.targetHttpsProxies.setSslPolicy")
def set_policy(req: ApiRequest, targetHttpsProxy: str):
    return target_proxies.set_policy(req.call, targetHttpsProxy, req.body)
