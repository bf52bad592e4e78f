"""regionDisks: disks replicated in two zones of a region (stored as disks of scope ``regions/R``)."""

from core.services import disk_updates, disks, region_disks, resource_policies, snapshots, vpc
from gstack.api import common
from gstack.api.registry import ApiRequest, handles


def _scope(req: ApiRequest, region: str) -> str:
    return vpc.region_scope(req.session, req.call.project, region)


@handles("compute.regionDisks.get")
def get(req: ApiRequest, region: str, disk: str):
    return common.get(req, "disks", _scope(req, region), disk)


@handles("compute.regionDisks.list")
def list_disks(req: ApiRequest, region: str):
    return common.list_scope(req, "disks", _scope(req, region), "compute#diskList", "Disk")


@handles("compute.regionDisks.insert")
def insert(req: ApiRequest, region: str):
    return region_disks.insert(req.call, region, req.body, req.args.get("sourceImage"))


@handles("compute.regionDisks.delete")
def delete(req: ApiRequest, region: str, disk: str):
    return disks.delete_in(req.call, _scope(req, region), disk)


@handles("compute.regionDisks.resize")
def resize(req: ApiRequest, region: str, disk: str):
    scope = _scope(req, region)
    return disks.resize_in(req.call, scope, scope.split("/", 1)[1], disk, req.body)


@handles("compute.regionDisks.setLabels")
def set_labels(req: ApiRequest, region: str, resource: str):
    return disks.set_labels_in(req.call, _scope(req, region), resource, req.body)


@handles("compute.regionDisks.createSnapshot")
def create_snapshot(req: ApiRequest, region: str, disk: str):
    return snapshots.create_from_disk_in(req.call, _scope(req, region), disk, req.body)


@handles("compute.regionDisks.addResourcePolicies")
def add_policies(req: ApiRequest, region: str, disk: str):
    scope = _scope(req, region)
    return resource_policies.add(req.call, "disks", scope, scope.split("/", 1)[1], disk, req.body)


@handles("compute.regionDisks.removeResourcePolicies")
def remove_policies(req: ApiRequest, region: str, disk: str):
    return resource_policies.remove(req.call, "disks", _scope(req, region), disk, req.body)


@handles("compute.regionDisks.update")
def update(req: ApiRequest, region: str, disk: str):
    scope = _scope(req, region)
    fields = disk_updates.mask(req.args.getlist("paths"), req.args.get("updateMask"))
    return disk_updates.update(req.call, scope, scope.split("/", 1)[1], disk, req.body, fields)
