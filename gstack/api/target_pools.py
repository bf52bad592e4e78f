"""targetPools: the instances behind a regional network load balancer, and their health."""

from core.services import load_balancing, vpc
from gstack.api import common
from gstack.api.registry import ApiRequest, handles


@handles("compute.targetPools.get")
def get(req: ApiRequest, region: str, targetPool: str):
    return common.get(req, "targetPools", vpc.region_scope(req.session, req.call.project, region), targetPool)


@handles("compute.targetPools.list")
def list_pools(req: ApiRequest, region: str):
    return common.list_scope(req, "targetPools", vpc.region_scope(req.session, req.call.project, region),
                             "compute#targetPoolList", "TargetPool")


@handles("compute.targetPools.aggregatedList")
def aggregated(req: ApiRequest):
    return common.aggregated_list(req, "targetPools", "regions", "compute#targetPoolAggregatedList", "TargetPool")


@handles("compute.targetPools.insert")
def insert(req: ApiRequest, region: str):
    return load_balancing.insert_target_pool(req.call, region, req.body)


@handles("compute.targetPools.delete")
def delete(req: ApiRequest, region: str, targetPool: str):
    return load_balancing.delete_target_pool(req.call, region, targetPool)


@handles("compute.targetPools.addInstance")
def add_instance(req: ApiRequest, region: str, targetPool: str):
    return load_balancing.change_instances(req.call, region, targetPool, req.body, add=True)


@handles("compute.targetPools.removeInstance")
def remove_instance(req: ApiRequest, region: str, targetPool: str):
    return load_balancing.change_instances(req.call, region, targetPool, req.body, add=False)


@handles("compute.targetPools.addHealthCheck")
def add_health_check(req: ApiRequest, region: str, targetPool: str):
    return load_balancing.change_health_checks(req.call, region, targetPool, req.body, add=True)


@handles("compute.targetPools.removeHealthCheck")
def remove_health_check(req: ApiRequest, region: str, targetPool: str):
    return load_balancing.change_health_checks(req.call, region, targetPool, req.body, add=False)


@handles("compute.targetPools.getHealth")
def get_health(req: ApiRequest, region: str, targetPool: str):
    return load_balancing.get_health(req.call, region, targetPool, req.body)
