"""snapshots: global copies of disks."""

from core.services import snapshots
from gstack.api import common
from gstack.api.registry import ApiRequest, handles


@handles("compute.snapshots.get")
def get(req: ApiRequest, snapshot: str):
    return common.get(req, "snapshots", "global", snapshot)


@handles("compute.snapshots.list")
def list_snapshots(req: ApiRequest):
    return common.list_scope(req, "snapshots", "global", "compute#snapshotList", "Snapshot")


@handles("compute.snapshots.delete")
def delete(req: ApiRequest, snapshot: str):
    return snapshots.delete(req.call, snapshot)


@handles("compute.snapshots.setLabels")
def set_labels(req: ApiRequest, resource: str):
    return snapshots.set_snapshot_labels(req.call, resource, req.body)


@handles("compute.snapshots.insert")
def insert(req: ApiRequest):
    return snapshots.insert(req.call, req.body)
