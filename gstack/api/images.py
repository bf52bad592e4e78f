"""images: global per project; public image projects are readable by everyone."""

from core.services import images
from gstack.api import common
from gstack.api.registry import ApiRequest, handles
from gstack.gce.render import json_response, stored


@handles("compute.images.get")
def get(req: ApiRequest, image: str):
    return common.get(req, "images", "global", image)


@handles("compute.images.getFromFamily")
def get_from_family(req: ApiRequest, family: str):
    return json_response(stored(images.from_family(req.session, req.call.project, family).body))


@handles("compute.images.list")
def list_images(req: ApiRequest):
    return common.list_scope(req, "images", "global", "compute#imageList", "Image")


@handles("compute.images.insert")
def insert(req: ApiRequest):
    return images.insert(req.call, req.body)


@handles("compute.images.delete")
def delete(req: ApiRequest, image: str):
    return images.delete(req.call, image)


@handles("compute.images.deprecate")
def deprecate(req: ApiRequest, image: str):
    return images.deprecate(req.call, image, req.body)


@handles("compute.images.setLabels")
def set_labels(req: ApiRequest, resource: str):
    return images.set_image_labels(req.call, resource, req.body)


@handles("compute.images.patch")
def patch(req: ApiRequest, image: str):
    return images.patch(req.call, image, req.body)
