"""Snapshots: global copies of zonal disks (the secondary storage VM's business)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from core import quotas
from core.errors import Invalid, OperationFailure, Required
from core.jobs import JobContext, job
from core.links import path_of, url_of
from core.models import Operation, Project, Resource
from core.resources import operations, store
from core.resources.context import Call
from core.services import images, projects, vpc
from core.services.metadata import label_fingerprint, set_labels, validate_labels
from core.services.storage_states import (
    CREATE_SNAPSHOT,
    DISKS,
    READY_EVENT,
    SET_LABELS,
    SNAPSHOT_JOB,
    SNAPSHOTS,
)
from core.services.topology import ZoneInfo
from core.systemvms import secondary_storage


def create_from_disk(call: Call, zone: ZoneInfo, disk_name: str, body: dict[str, Any],
                     scheduled: store.Body | None = None) -> Operation:
    """disks.createSnapshot: GCE's Operation is zonal and its targetLink is the source disk.

    ``scheduled``: the output fields of a snapshot a snapshot schedule makes (``autoCreated``, its
    policy's link and id), added to the snapshot's body."""
    return create_from_disk_in(call, f"zones/{zone.name}", disk_name, body, scheduled)


def create_from_disk_in(call: Call, scope: str, disk_name: str, body: dict[str, Any],
                        scheduled: store.Body | None = None) -> Operation:
    """disks.createSnapshot and regionDisks.createSnapshot (``scope``: the disk's zone or region)."""
    project = projects.get(call.session, call.project, lock=True)  # usage cannot change under the check
    disk = store.find(call.session, call.project, "disks", scope, disk_name)
    snap, job_name = _new_snapshot(call, project, disk, body, scheduled)
    return operations.begin(call, scope=disk.scope, op_type="createSnapshot",
                            target_path=path_of(call.project, disk.scope, "disks", disk.name), target_id=disk.uid,
                            job=job_name, params={"uid": snap.uid})


def insert(call: Call, body: dict[str, Any]) -> Operation:
    """snapshots.insert (what ``gcloud compute snapshots create --source-disk`` sends): the same
    copy as disks.createSnapshot, but a global Operation whose targetLink is the snapshot."""
    project = projects.get(call.session, call.project, lock=True)
    if body.get("name") in (None, ""):
        raise Required("resource.name")
    if body.get("sourceDisk") in (None, ""):
        raise Invalid("resource.sourceDisk", None, "Only snapshots of a disk (sourceDisk) are supported.")
    ref = vpc.reference(call, body["sourceDisk"], "resource.sourceDisk", "disks")
    if not ref.scope.startswith(("zones/", "regions/")):
        raise Invalid("resource.sourceDisk", body["sourceDisk"], "The URL is malformed.")
    disk = store.find(call.session, ref.project, "disks", ref.scope, ref.name)
    snap, job_name = _new_snapshot(call, project, disk, body)
    return operations.begin(call, scope="global", op_type="insert",
                            target_path=path_of(call.project, "global", "snapshots", snap.name), target_id=snap.uid,
                            job=job_name, params={"uid": snap.uid})


def _new_snapshot(call: Call, project: Project, disk: Resource, body: dict[str, Any],
                  scheduled: store.Body | None = None) -> tuple[Resource, str | None]:
    """The CREATING snapshot row of ``disk`` and the job that copies it."""
    if body.get("name") in (None, ""):
        raise Required("resource.name")
    name = store.validate_name(body.get("name"))
    labels = validate_labels(body.get("labels"))
    if body.get("snapshotType", "STANDARD") not in ("STANDARD", "ARCHIVE"):
        raise Invalid("resource.snapshotType", body.get("snapshotType"), "Must be STANDARD or ARCHIVE.")
    move = DISKS.move(path_of(call.project, disk.scope, "disks", disk.name), disk.status, CREATE_SNAPSHOT)
    quotas.check_global(call.session, project, "SNAPSHOTS")
    source = store.body_of(disk)
    snap = store.new_resource(
        call.session, project=call.project, collection="snapshots", scope="global", name=name,
        kind="compute#snapshot", status="CREATING", size_gb=disk.size_gb,
        body={
            "description": body.get("description", ""), "sourceDisk": url_of(call.project, disk.scope, "disks", disk.name),
            "sourceDiskId": str(disk.uid), "diskSizeGb": str(disk.size_gb), "storageBytes": "0",
            "storageBytesStatus": "UPDATING", "labels": labels, "labelFingerprint": label_fingerprint(labels),
            "storageLocations": body.get("storageLocations") or ["us"], "snapshotType": body.get("snapshotType", "STANDARD"),
            "architecture": source.get("architecture", "X86_64"),
            **{key: source[key] for key in ("licenses", "guestOsFeatures") if key in source},
            **(scheduled or {}),
        },
    )
    return snap, move.job


def _create(ctx: JobContext) -> None:
    """Copy the disk's written blocks into the secondary storage VM of the disk's zone."""
    with ctx.write() as s:
        snap = s.scalar(select(Resource).where(Resource.uid == ctx.params["uid"]))
        if snap is None:
            return
        disk = s.scalar(select(Resource).where(Resource.uid == int(store.body_of(snap)["sourceDiskId"])))
        if disk is None:
            raise OperationFailure("RESOURCE_NOT_FOUND", "The source disk was deleted before it was copied.", 404)
        zone = secondary_storage.home_zone(s, disk)
        _checksum, stored = secondary_storage.copy_snapshot(s, zone, disk, owner_uid=snap.uid)
        move = SNAPSHOTS.event(snap.status, READY_EVENT)
        if move.status is not None:
            store.set_status(snap, move.status, storageBytes=str(stored), storageBytesStatus="UP_TO_DATE",
                             creationSizeBytes=str(stored), downloadBytes=str(stored))


def _drop(ctx: JobContext, _failure: OperationFailure) -> None:
    with ctx.write() as s:
        snap = s.scalar(select(Resource).where(Resource.uid == ctx.params["uid"]))
        if snap is not None:
            s.delete(snap)


job(SNAPSHOT_JOB, on_fail=_drop)(_create)


def delete(call: Call, name: str) -> Operation:
    return images.delete_stored(call, "snapshots", name)


def set_snapshot_labels(call: Call, name: str, body: dict[str, Any]) -> Operation:
    res = projects.find_for_update(call.session, call.project, "snapshots", "global", name)
    SNAPSHOTS.move(path_of(call.project, "global", "snapshots", res.name), res.status, SET_LABELS)
    snap = store.body_of(res)
    set_labels(snap, body)
    store.save(res, snap)
    return operations.begin(call, scope="global", op_type="setLabels",
                            target_path=path_of(call.project, "global", "snapshots", res.name), target_id=res.uid)
