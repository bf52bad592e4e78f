"""instanceGroupManagers: zonal managed instance groups. The views pass the zone (a
:data:`~core.services.instance_group_managers.location.Where`); regional groups share the use
cases (regionInstanceGroupManagers), and the aggregated list holds both, as GCE's does."""

from flask import Response

from core.services import instance_group_managers
from gstack.api import common
from gstack.api.registry import ApiRequest, handles
from gstack.gce.render import json_response


@handles("compute.instanceGroupManagers.get")
def get(req: ApiRequest, zone: str, instanceGroupManager: str):
    return common.get(req, "instanceGroupManagers", f"zones/{req.zone(zone).name}", instanceGroupManager)


@handles("compute.instanceGroupManagers.list")
def list_groups(req: ApiRequest, zone: str):
    return common.list_scope(req, "instanceGroupManagers", f"zones/{req.zone(zone).name}",
                             "compute#instanceGroupManagerList", "InstanceGroupManager")


@handles("compute.instanceGroupManagers.aggregatedList")
def aggregated(req: ApiRequest):
    return common.aggregated_list(req, "instanceGroupManagers", ("regions", "zones"), "compute#instanceGroupManagerAggregatedList",
                                  "InstanceGroupManager")


@handles("compute.instanceGroupManagers.insert")
def insert(req: ApiRequest, zone: str):
    return instance_group_managers.insert(req.call, req.zone(zone), req.body)


@handles("compute.instanceGroupManagers.delete")
def delete(req: ApiRequest, zone: str, instanceGroupManager: str):
    return instance_group_managers.delete(req.call, req.zone(zone), instanceGroupManager)


@handles("compute.instanceGroupManagers.resize")
def resize(req: ApiRequest, zone: str, instanceGroupManager: str):
    return instance_group_managers.resize(req.call, req.zone(zone), instanceGroupManager, req.args.get("size"))


@handles("compute.instanceGroupManagers.listManagedInstances")
def list_managed_instances(req: ApiRequest, zone: str, instanceGroupManager: str) -> Response:
    """All the managed instances in one answer (the group's listManagedInstancesResults is PAGELESS)."""
    items = instance_group_managers.list_managed_instances(req.call, req.zone(zone), instanceGroupManager)
    return json_response({"managedInstances": items} if items else {})


@handles("compute.instanceGroupManagers.listErrors")
def list_errors(req: ApiRequest, zone: str, instanceGroupManager: str) -> Response:
    items = instance_group_managers.list_errors(req.call, req.zone(zone), instanceGroupManager)
    return json_response({"items": items} if items else {})


@handles("compute.instanceGroupManagers.deleteInstances")
def delete_instances(req: ApiRequest, zone: str, instanceGroupManager: str):
    return instance_group_managers.delete_instances(req.call, req.zone(zone), instanceGroupManager, req.body)


@handles("compute.instanceGroupManagers.abandonInstances")
def abandon_instances(req: ApiRequest, zone: str, instanceGroupManager: str):
    return instance_group_managers.abandon_instances(req.call, req.zone(zone), instanceGroupManager, req.body)
