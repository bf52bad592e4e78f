"""resourcePolicies: regional schedules and placement policies, and the disks and instances that
follow them (disks/instances add/removeResourcePolicies live here, beside the policies)."""

from core.services import resource_policies, vpc
from gstack.api import common
from gstack.api.registry import ApiRequest, handles


@handles("compute.resourcePolicies.get")
def get(req: ApiRequest, region: str, resourcePolicy: str):
    return common.get(req, "resourcePolicies", vpc.region_scope(req.session, req.call.project, region), resourcePolicy)


@handles("compute.resourcePolicies.list")
def list_policies(req: ApiRequest, region: str):
    return common.list_scope(req, "resourcePolicies", vpc.region_scope(req.session, req.call.project, region),
                             "compute#resourcePolicyList", "ResourcePolicy")


@handles("compute.resourcePolicies.aggregatedList")
def aggregated(req: ApiRequest):
    return common.aggregated_list(req, "resourcePolicies", "regions", "compute#resourcePolicyAggregatedList",
                                  "ResourcePolicy")


@handles("compute.resourcePolicies.insert")
def insert(req: ApiRequest, region: str):
    return resource_policies.insert(req.call, region, req.body)


@handles("compute.resourcePolicies.patch")
def patch(req: ApiRequest, region: str, resourcePolicy: str):
    return resource_policies.patch(req.call, region, resourcePolicy, req.body)


@handles("compute.resourcePolicies.delete")
def delete(req: ApiRequest, region: str, resourcePolicy: str):
    return resource_policies.delete(req.call, region, resourcePolicy)


@handles("compute.disks.addResourcePolicies")
def disk_add(req: ApiRequest, zone: str, disk: str):
    z = req.zone(zone)
    return resource_policies.add(req.call, "disks", f"zones/{z.name}", z.region.name, disk, req.body)


@handles("compute.disks.removeResourcePolicies")
def disk_remove(req: ApiRequest, zone: str, disk: str):
    return resource_policies.remove(req.call, "disks", f"zones/{req.zone(zone).name}", disk, req.body)


@handles("compute.instances.addResourcePolicies")
def instance_add(req: ApiRequest, zone: str, instance: str):
    z = req.zone(zone)
    return resource_policies.add(req.call, "instances", f"zones/{z.name}", z.region.name, instance, req.body)


@handles("compute.instances.removeResourcePolicies")
def instance_remove(req: ApiRequest, zone: str, instance: str):
    return resource_policies.remove(req.call, "instances", f"zones/{req.zone(zone).name}", instance, req.body)
