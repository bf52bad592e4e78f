"""machineImages: an instance kept whole (its properties and its disks' contents), global."""

from core.services import machine_images
from gstack.api import common
from gstack.api.registry import ApiRequest, handles


@handles("compute.machineImages.get")
def get(req: ApiRequest, machineImage: str):
    return common.get(req, machine_images.COLLECTION, "global", machineImage)


@handles("compute.machineImages.list")
def list_machine_images(req: ApiRequest):
    return common.list_scope(req, machine_images.COLLECTION, "global", "compute#machineImageList", "MachineImage")


@handles("compute.machineImages.insert")
def insert(req: ApiRequest):
    return machine_images.insert(req.call, req.body, req.args.get("sourceInstance"))


@handles("compute.machineImages.delete")
def delete(req: ApiRequest, machineImage: str):
    return machine_images.delete(req.call, machineImage)


@handles("compute.machineImages.setLabels")
def set_labels(req: ApiRequest, resource: str):
    return machine_images.set_machine_image_labels(req.call, resource, req.body)
