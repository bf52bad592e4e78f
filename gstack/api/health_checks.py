"""httpHealthChecks (legacy, used by target pools) and healthChecks."""

from core.services import load_balancing, vpc
from gstack.api import common
from gstack.api.addresses import aggregated_with_global
from gstack.api.registry import ApiRequest, handles

LEGACY = load_balancing.LEGACY


@handles("compute.httpHealthChecks.get")
def get_legacy(req: ApiRequest, httpHealthCheck: str):
    return common.get(req, LEGACY, "global", httpHealthCheck)


@handles("compute.httpHealthChecks.list")
def list_legacy(req: ApiRequest):
    return common.list_scope(req, LEGACY, "global", "compute#httpHealthCheckList", "HttpHealthCheck")


@handles("compute.httpHealthChecks.insert")
def insert_legacy(req: ApiRequest):
    return load_balancing.insert_health_check(req.call, LEGACY, req.body)


@handles("compute.httpHealthChecks.delete")
def delete_legacy(req: ApiRequest, httpHealthCheck: str):
    return load_balancing.delete_health_check(req.call, LEGACY, httpHealthCheck)


@handles("compute.httpHealthChecks.patch")
def patch_legacy(req: ApiRequest, httpHealthCheck: str):
    return load_balancing.replace_health_check(req.call, LEGACY, httpHealthCheck, req.body, merge=True)


@handles("compute.httpHealthChecks.update")
def update_legacy(req: ApiRequest, httpHealthCheck: str):
    return load_balancing.replace_health_check(req.call, LEGACY, httpHealthCheck, req.body, merge=False)


@handles("compute.healthChecks.get")
def get(req: ApiRequest, healthCheck: str):
    return common.get(req, "healthChecks", "global", healthCheck)


@handles("compute.healthChecks.list")
def list_checks(req: ApiRequest):
    return common.list_scope(req, "healthChecks", "global", "compute#healthCheckList", "HealthCheck")


@handles("compute.healthChecks.aggregatedList")
def aggregated(req: ApiRequest):
    return aggregated_with_global(req, "healthChecks", "compute#healthChecksAggregatedList", "HealthCheck")


@handles("compute.healthChecks.insert")
def insert(req: ApiRequest):
    return load_balancing.insert_health_check(req.call, "healthChecks", req.body)


@handles("compute.healthChecks.delete")
def delete(req: ApiRequest, healthCheck: str):
    return load_balancing.delete_health_check(req.call, "healthChecks", healthCheck)


@handles("compute.healthChecks.patch")
def patch(req: ApiRequest, healthCheck: str):
    return load_balancing.replace_health_check(req.call, "healthChecks", healthCheck, req.body, merge=True)


@handles("compute.healthChecks.update")
def update(req: ApiRequest, healthCheck: str):
    return load_balancing.replace_health_check(req.call, "healthChecks", healthCheck, req.body, merge=False)


@handles("compute.regionHealthChecks.get")
def get_regional(req: ApiRequest, region: str, healthCheck: str):
    return common.get(req, "healthChecks", vpc.region_scope(req.session, req.call.project, region), healthCheck)


@handles("compute.regionHealthChecks.list")
def list_regional(req: ApiRequest, region: str):
    return common.list_scope(req, "healthChecks", vpc.region_scope(req.session, req.call.project, region),
                             "compute#healthCheckList", "HealthCheck")


@handles("compute.regionHealthChecks.insert")
def insert_regional(req: ApiRequest, region: str):
    return load_balancing.insert_health_check(req.call, "healthChecks", req.body,
                                              vpc.region_scope(req.session, req.call.project, region))


@handles("compute.regionHealthChecks.delete")
def delete_regional(req: ApiRequest, region: str, healthCheck: str):
    return load_balancing.delete_health_check(req.call, "healthChecks", healthCheck,
                                              vpc.region_scope(req.session, req.call.project, region))


@handles("compute.regionHealthChecks.patch")
def patch_regional(req: ApiRequest, region: str, healthCheck: str):
    return load_balancing.replace_health_check(req.call, "healthChecks", healthCheck, req.body, True,
                                               vpc.region_scope(req.session, req.call.project, region))


@handles("compute.regionHealthChecks.update")
def update_regional(req: ApiRequest, region: str, healthCheck: str):
    return load_balancing.replace_health_check(req.call, "healthChecks", healthCheck, req.body, False,
                                               vpc.region_scope(req.session, req.call.project, region))
