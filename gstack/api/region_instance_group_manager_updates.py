"""regionInstanceGroupManagers: patch, setInstanceTemplate, createInstances, recreateInstances and
applyUpdatesToInstances, the zonal ones' use cases at a ``regions/R`` location."""

from core.services.instance_group_managers import updates
from core.services.instance_group_managers.location import Location, regional
from gstack.api.registry import ApiRequest, handles


def _at(req: ApiRequest, region: str) -> Location:
    return regional(req.session, req.call.project, region)


@handles("compute.regionInstanceGroupManagers.patch")
def patch(req: ApiRequest, region: str, instanceGroupManager: str):
    return updates.patch(req.call, _at(req, region), instanceGroupManager, req.body)


@handles("compute.regionInstanceGroupManagers.setInstanceTemplate")
def set_instance_template(req: ApiRequest, region: str, instanceGroupManager: str):
    return updates.set_instance_template(req.call, _at(req, region), instanceGroupManager, req.body)


@handles("compute.regionInstanceGroupManagers.createInstances")
def create_instances(req: ApiRequest, region: str, instanceGroupManager: str):
    return updates.create_instances(req.call, _at(req, region), instanceGroupManager, req.body)


@handles("compute.regionInstanceGroupManagers.recreateInstances")
def recreate_instances(req: ApiRequest, region: str, instanceGroupManager: str):
    return updates.recreate_instances(req.call, _at(req, region), instanceGroupManager, req.body)


@handles("compute.regionInstanceGroupManagers.applyUpdatesToInstances")
def apply_updates(req: ApiRequest, region: str, instanceGroupManager: str):
    return updates.apply_updates(req.call, _at(req, region), instanceGroupManager, req.body)
