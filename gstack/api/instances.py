"""instances: the VM lifecycle."""

from collections.abc import Callable

from core.errors import Invalid, Required
from core.links import CANONICAL_BASE
from core.services import instances, machine_images
from gstack.api import common
from gstack.api.registry import ApiRequest, handles
from gstack.gce.render import json_response, storing


@handles("compute.instances.get")
def get(req: ApiRequest, zone: str, instance: str):
    return common.get(req, "instances", f"zones/{req.zone(zone).name}", instance)


@handles("compute.instances.list")
def list_instances(req: ApiRequest, zone: str):
    return json_response(page(req.session, req.call.project, req.zone(zone).name, req.args, storing()))


def page(session, project: str, zone: str, args, wrap: Callable[[str | bytes], object],
         base: str = CANONICAL_BASE, versions: list | None = None) -> dict:
    """A page of a zone's instances (``args``: the request's query; ``wrap``: see
    :func:`common.scope_page`): this handler's and the lighter GET path's (gstack/api/fastread.py)."""
    return common.scope_page(session, project, args, "instances", f"zones/{zone}", "compute#instanceList", "Instance",
                             wrap, base, versions)


@handles("compute.instances.aggregatedList")
def aggregated(req: ApiRequest):
    return common.aggregated_list(req, "instances", "zones", "compute#instanceAggregatedList", "Instance")


@handles("compute.instances.insert")
def insert(req: ApiRequest, zone: str):
    source_image = req.body.get("sourceMachineImage") or req.args.get("sourceMachineImage")
    if source_image:
        return machine_images.insert_instance(req.call, req.zone(zone), req.body, source_image,
                                              req.args.get("sourceInstanceTemplate"))
    return instances.insert(req.call, req.zone(zone), req.body, req.args.get("sourceInstanceTemplate"), alone=True)


@handles("compute.instances.bulkInsert")
def bulk_insert(req: ApiRequest, zone: str):
    return instances.bulk_insert(req.call, req.zone(zone), req.body)


@handles("compute.regionInstances.bulkInsert")
def regional_bulk_insert(req: ApiRequest, region: str):
    return instances.regional_bulk_insert(req.call, region, req.body)


def _lifecycle(action):
    def handler(req: ApiRequest, zone: str, instance: str):
        return action(req.call, req.zone(zone), instance)

    return handler


handles("compute.instances.delete")(_lifecycle(instances.delete))
handles("compute.instances.start")(_lifecycle(instances.start))
handles("compute.instances.stop")(_lifecycle(instances.stop))
handles("compute.instances.reset")(_lifecycle(instances.reset))
handles("compute.instances.suspend")(_lifecycle(instances.suspend))
handles("compute.instances.resume")(_lifecycle(instances.resume))


def _with_body(action):
    def handler(req: ApiRequest, zone: str, instance: str):
        return action(req.call, req.zone(zone), instance, req.body)

    return handler


handles("compute.instances.setMetadata")(_with_body(instances.set_metadata))
handles("compute.instances.setTags")(_with_body(instances.set_tags))
handles("compute.instances.setMachineType")(_with_body(instances.set_machine_type))
handles("compute.instances.attachDisk")(_with_body(instances.attach_disk))
handles("compute.instances.setScheduling")(_with_body(instances.set_scheduling))
handles("compute.instances.setServiceAccount")(_with_body(instances.set_service_account))


@handles("compute.instances.addAccessConfig")
def add_access_config(req: ApiRequest, zone: str, instance: str):
    return instances.add_access_config(req.call, req.zone(zone), instance, req.args.get("networkInterface"),
                                       req.body)


@handles("compute.instances.deleteAccessConfig")
def delete_access_config(req: ApiRequest, zone: str, instance: str):
    return instances.delete_access_config(req.call, req.zone(zone), instance, req.args.get("networkInterface"),
                                          req.args.get("accessConfig"))


@handles("compute.instances.updateNetworkInterface")
def update_network_interface(req: ApiRequest, zone: str, instance: str):
    return instances.update_network_interface(req.call, req.zone(zone), instance, req.args.get("networkInterface"),
                                              req.body)


@handles("compute.instances.setLabels")
def set_labels(req: ApiRequest, zone: str, instance: str):
    return instances.set_instance_labels(req.call, req.zone(zone), instance, req.body)


@handles("compute.instances.detachDisk")
def detach_disk(req: ApiRequest, zone: str, instance: str):
    return instances.detach_disk(req.call, req.zone(zone), instance, req.args.get("deviceName"))


@handles("compute.instances.setDeletionProtection")
def set_deletion_protection(req: ApiRequest, zone: str, resource: str):
    return instances.set_deletion_protection(req.call, req.zone(zone), resource, req.flag("deletionProtection", True))


@handles("compute.instances.setDiskAutoDelete")
def set_disk_auto_delete(req: ApiRequest, zone: str, instance: str):
    for param in ("autoDelete", "deviceName"):
        if not req.args.get(param):
            raise Required(param)
    return instances.set_disk_auto_delete(req.call, req.zone(zone), instance, req.args["deviceName"],
                                          req.flag("autoDelete", False))


@handles("compute.instances.getSerialPortOutput")
def serial_port(req: ApiRequest, zone: str, instance: str):
    port, start = (_integer(req, name, default) for name, default in (("port", 1), ("start", 0)))
    return instances.serial_port_output(req.call, req.zone(zone), instance, req.runtime.drivers, port, start)


def _integer(req: ApiRequest, name: str, default: int) -> int:
    value = req.args.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise Invalid(name, value, "Must be an integer.") from None


# -- in-place updates (core.services.instances.updates) ---------------------------------------------

handles("compute.instances.setMinCpuPlatform")(_with_body(instances.set_min_cpu_platform))
handles("compute.instances.setMachineResources")(_with_body(instances.set_machine_resources))
handles("compute.instances.updateShieldedInstanceConfig")(_with_body(instances.update_shielded_instance_config))
handles("compute.instances.setName")(_with_body(instances.set_name))


@handles("compute.instances.update")
def update(req: ApiRequest, zone: str, instance: str):
    return instances.update(req.call, req.zone(zone), instance, req.body, req.args.get("minimalAction"),
                            req.args.get("mostDisruptiveAllowedAction"))


@handles("compute.instances.getGuestAttributes")
def guest_attributes(req: ApiRequest, zone: str, instance: str):
    return instances.guest_attributes(req.call, req.zone(zone), instance, req.args.get("queryPath"),
                                      req.args.get("variableKey"))
