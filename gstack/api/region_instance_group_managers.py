"""regionInstanceGroupManagers: regional managed instance groups, the same use cases as the zonal
ones (core.services.instance_group_managers) at a ``regions/R`` location, stored in collection
``instanceGroupManagers`` under that scope (their selfLinks say so, as GCE's do)."""

from flask import Response

from core.services import instance_group_managers
from core.services.instance_group_managers.location import Location, regional
from gstack.api import common
from gstack.api.registry import ApiRequest, handles
from gstack.gce.render import json_response

_COLLECTION = "instanceGroupManagers"


def _at(req: ApiRequest, region: str) -> Location:
    return regional(req.session, req.call.project, region)


@handles("compute.regionInstanceGroupManagers.get")
def get(req: ApiRequest, region: str, instanceGroupManager: str):
    return common.get(req, _COLLECTION, _at(req, region).scope, instanceGroupManager)


@handles("compute.regionInstanceGroupManagers.list")
def list_groups(req: ApiRequest, region: str):
    return common.list_scope(req, _COLLECTION, _at(req, region).scope, "compute#regionInstanceGroupManagerList",
                             "InstanceGroupManager")


@handles("compute.regionInstanceGroupManagers.insert")
def insert(req: ApiRequest, region: str):
    return instance_group_managers.insert(req.call, _at(req, region), req.body)


@handles("compute.regionInstanceGroupManagers.delete")
def delete(req: ApiRequest, region: str, instanceGroupManager: str):
    return instance_group_managers.delete(req.call, _at(req, region), instanceGroupManager)


@handles("compute.regionInstanceGroupManagers.resize")
def resize(req: ApiRequest, region: str, instanceGroupManager: str):
    return instance_group_managers.resize(req.call, _at(req, region), instanceGroupManager, req.args.get("size"))


@handles("compute.regionInstanceGroupManagers.listManagedInstances")
def list_managed_instances(req: ApiRequest, region: str, instanceGroupManager: str) -> Response:
    """All the managed instances in one answer (the group's listManagedInstancesResults is PAGELESS)."""
    items = instance_group_managers.list_managed_instances(req.call, _at(req, region), instanceGroupManager)
    return json_response({"managedInstances": items} if items else {})


@handles("compute.regionInstanceGroupManagers.listErrors")
def list_errors(req: ApiRequest, region: str, instanceGroupManager: str) -> Response:
    items = instance_group_managers.list_errors(req.call, _at(req, region), instanceGroupManager)
    return json_response({"items": items} if items else {})


@handles("compute.regionInstanceGroupManagers.deleteInstances")
def delete_instances(req: ApiRequest, region: str, instanceGroupManager: str):
    return instance_group_managers.delete_instances(req.call, _at(req, region), instanceGroupManager, req.body)


@handles("compute.regionInstanceGroupManagers.abandonInstances")
def abandon_instances(req: ApiRequest, region: str, instanceGroupManager: str):
    return instance_group_managers.abandon_instances(req.call, _at(req, region), instanceGroupManager, req.body)
