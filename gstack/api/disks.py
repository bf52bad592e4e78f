"""disks: persistent disks in a zone."""

from core.services import disk_updates, disks, snapshots
from gstack.api import common
from gstack.api.registry import ApiRequest, handles


@handles("compute.disks.get")
def get(req: ApiRequest, zone: str, disk: str):
    return common.get(req, "disks", f"zones/{req.zone(zone).name}", disk)


@handles("compute.disks.list")
def list_disks(req: ApiRequest, zone: str):
    return common.list_scope(req, "disks", f"zones/{req.zone(zone).name}", "compute#diskList", "Disk")


@handles("compute.disks.aggregatedList")
def aggregated(req: ApiRequest):
    return common.aggregated_list(req, "disks", "regions+zones", "compute#diskAggregatedList", "Disk")


@handles("compute.disks.insert")
def insert(req: ApiRequest, zone: str):
    return disks.insert(req.call, req.zone(zone), req.body, req.args.get("sourceImage"))


@handles("compute.disks.delete")
def delete(req: ApiRequest, zone: str, disk: str):
    return disks.delete(req.call, req.zone(zone), disk)


@handles("compute.disks.resize")
def resize(req: ApiRequest, zone: str, disk: str):
    return disks.resize(req.call, req.zone(zone), disk, req.body)


@handles("compute.disks.setLabels")
def set_labels(req: ApiRequest, zone: str, resource: str):
    return disks.set_disk_labels(req.call, req.zone(zone), resource, req.body)


@handles("compute.disks.createSnapshot")
def create_snapshot(req: ApiRequest, zone: str, disk: str):
    return snapshots.create_from_disk(req.call, req.zone(zone), disk, req.body)


@handles("compute.disks.update")
def update(req: ApiRequest, zone: str, disk: str):
    z = req.zone(zone)
    fields = disk_updates.mask(req.args.getlist("paths"), req.args.get("updateMask"))
    return disk_updates.update(req.call, f"zones/{z.name}", z.region.name, disk, req.body, fields)
