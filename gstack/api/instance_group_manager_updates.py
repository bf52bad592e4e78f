"""instanceGroupManagers: the methods that change what the members should be (patch,
setInstanceTemplate, createInstances, recreateInstances, applyUpdatesToInstances). Beside
:mod:`gstack.api.instance_group_managers` to keep each module small; one service behind both."""

from core.services.instance_group_managers import updates
from gstack.api.registry import ApiRequest, handles


@handles("compute.instanceGroupManagers.patch")
def patch(req: ApiRequest, zone: str, instanceGroupManager: str):
    return updates.patch(req.call, req.zone(zone), instanceGroupManager, req.body)


@handles("compute.instanceGroupManagers.setInstanceTemplate")
def set_instance_template(req: ApiRequest, zone: str, instanceGroupManager: str):
    return updates.set_instance_template(req.call, req.zone(zone), instanceGroupManager, req.body)


@handles("compute.instanceGroupManagers.createInstances")
def create_instances(req: ApiRequest, zone: str, instanceGroupManager: str):
    return updates.create_instances(req.call, req.zone(zone), instanceGroupManager, req.body)


@handles("compute.instanceGroupManagers.recreateInstances")
def recreate_instances(req: ApiRequest, zone: str, instanceGroupManager: str):
    return updates.recreate_instances(req.call, req.zone(zone), instanceGroupManager, req.body)


@handles("compute.instanceGroupManagers.applyUpdatesToInstances")
def apply_updates(req: ApiRequest, zone: str, instanceGroupManager: str):
    return updates.apply_updates(req.call, req.zone(zone), instanceGroupManager, req.body)
