"""sslPolicies and regionSslPolicies: TLS versions and cipher suites of target HTTPS proxies."""

from core.services import lb_common, ssl_policies
from gstack.api import common
from gstack.api.addresses import aggregated_with_global
from gstack.api.registry import ApiRequest, handles

C = ssl_policies.COLLECTION


@handles("compute.sslPolicies.get", "compute.regionSslPolicies.get")
def get(req: ApiRequest, sslPolicy: str, region: str | None = None):
    return common.get(req, C, lb_common.scope_of(req.call, region), sslPolicy)


@handles("compute.sslPolicies.list", "compute.regionSslPolicies.list")
def list_policies(req: ApiRequest, region: str | None = None):
    return common.list_scope(req, C, lb_common.scope_of(req.call, region), "compute#sslPoliciesList", "SslPolicy")


@handles("compute.sslPolicies.aggregatedList")
def aggregated(req: ApiRequest):
    return aggregated_with_global(req, C, "compute#sslPoliciesAggregatedList", "SslPolicy")


@handles("compute.sslPolicies.insert", "compute.regionSslPolicies.insert")
def insert(req: ApiRequest, region: str | None = None):
    return ssl_policies.insert(req.call, region, req.body)


@handles("compute.sslPolicies.delete", "compute.regionSslPolicies.delete")
def delete(req: ApiRequest, sslPolicy: str, region: str | None = None):
    return ssl_policies.delete(req.call, region, sslPolicy)


@handles("compute.sslPolicies.patch", "compute.regionSslPolicies.patch")
def patch(req: ApiRequest, sslPolicy: str, region: str | None = None):
    return ssl_policies.patch(req.call, region, sslPolicy, req.body)


@handles("compute.sslPolicies.listAvailableFeatures", "compute.regionSslPolicies.listAvailableFeatures")
def available_features(req: ApiRequest, region: str | None = None):
    lb_common.scope_of(req.call, region)
    return ssl_policies.available_features()
