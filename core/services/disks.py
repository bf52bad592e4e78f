"""Persistent disks (CloudStack's volumes) on primary storage pools."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import InvalidRequestError
from sqlalchemy.orm import Session, object_session

from core import planner, quotas
from core.catalog import DEFAULT_DISK_TYPE, DISK_TYPES
from core.errors import (
    Invalid,
    NotFound,
    OperationFailure,
    Required,
    ResourceExhausted,
    ResourceInUse,
    zone_exhausted,
)
from core.ids import rfc3339
from core.jobs import JobContext, job
from core.links import parse_ref, path_of, scope_url, url_of
from core.models import Operation, Project, Resource, StoragePool
from core.resources import operations, store
from core.resources.context import Call
from core.services import images, projects, resource_policies
from core.services.metadata import label_fingerprint, set_labels, validate_labels
from core.services.storage_states import DELETE, DISKS, READY_EVENT, RESIZE, SET_LABELS, usable
from core.services.topology import ZoneInfo, get_disk_type

MIN_GB, MAX_GB = 10, 65536


def parse_size(value: object, field: str) -> int | None:
    if value is None or value == "":
        return None
    try:
        if not isinstance(value, (str, int, float)):  # an object or a list: int() would refuse it too
            raise TypeError(value)
        size = int(value)
    except (TypeError, ValueError):
        raise Invalid(field, value, "Must be an integer number of GB.") from None
    if not MIN_GB <= size <= MAX_GB:
        raise Invalid(field, value, f"Disk size must be between {MIN_GB} GB and {MAX_GB} GB.")
    return size


def disk_type_name(call: Call, zone_name: str, value: str | None, field: str) -> str:
    if not value:
        return DEFAULT_DISK_TYPE
    ref = parse_ref(value, project=call.project, scope=f"zones/{zone_name}")
    if ref is None or ref.collection != "diskTypes":
        if "/" not in value:
            get_disk_type(call.project, zone_name, value)
            return value
        raise Invalid(field, value, "The URL is malformed.")
    if ref.scope != f"zones/{zone_name}":
        raise Invalid(field, value, f"Disk type must be in zone '{zone_name}'.")
    return get_disk_type(call.project, zone_name, ref.name).name


def build(call: Call, zone: ZoneInfo, *, name: object, size_gb: object, disk_type: str | None, source_image: str | None,
          source_snapshot: str | None, labels: object, description: str = "", field: str = "resource") -> dict[str, Any]:
    """Validate a new disk and return its columns and body (shared by disks.insert and instances.insert)."""
    if field == "resource" and name in (None, ""):
        raise Required("resource.name")
    name = store.validate_name(name, f"{field}.name" if field == "resource" else f"{field}.diskName")
    dtype = disk_type_name(call, zone.name, disk_type, f"{field}.{'type' if field == 'resource' else 'diskType'}")
    size = parse_size(size_gb, f"{field}.{'sizeGb' if field == 'resource' else 'diskSizeGb'}")
    body: store.Body = {"description": description}
    source_size = None
    source = None
    if source_image and source_snapshot:
        raise Invalid(f"{field}.sourceSnapshot", source_snapshot,
                      "Only one of 'sourceImage' and 'sourceSnapshot' may be given.")
    if source_image:
        img = images.resolve(call.session, source_image, call.project, f"{field}.sourceImage")
        source = usable(img, path_of(img.project, "global", "images", img.name))
        body.update(sourceImage=url_of(img.project, "global", "images", img.name), sourceImageId=str(img.uid))
    elif source_snapshot:
        source = images.find_source(call.session, source_snapshot, call.project, f"{field}.sourceSnapshot",
                                    "snapshots")
        body.update(sourceSnapshot=images.snap_url(source), sourceSnapshotId=str(source.uid))
    if source is not None:
        inherited = store.body_of(source)
        body.update({key: inherited[key] for key in images.INHERITED if key in inherited})
        source_size = source.size_gb
    if size is None:
        size = source_size or DISK_TYPES[dtype].default_size_gb
    if source_size and size < source_size:
        raise Invalid(f"{field}.{'sizeGb' if field == 'resource' else 'diskSizeGb'}", size,
                      f"Requested disk size cannot be smaller than the {'image' if source_image else 'snapshot'} "
                      f"size ({source_size} GB)")
    labels = validate_labels(labels, f"{field}.labels")
    body.update({
        "sizeGb": str(size), "zone": scope_url(call.project, f"zones/{zone.name}"),
        "type": url_of(call.project, f"zones/{zone.name}", "diskTypes", dtype),
        "labels": labels, "labelFingerprint": label_fingerprint(labels),
        "physicalBlockSizeBytes": "4096", "architecture": body.get("architecture", "X86_64"),
    })
    return {"name": name, "size_gb": size, "subtype": dtype, "body": body, "source_size": source_size}


def create_row(call: Call, zone: ZoneInfo, spec: dict[str, Any], status: str = "CREATING") -> Resource:
    """The disk's row, inserted."""
    return store.new_resource(call.session, **_row_fields(call, zone, spec, status, spec["body"]))


def attached_row(call: Call, zone: ZoneInfo, spec: dict[str, Any], instance_url: str) -> Resource:
    """The row of a new disk born attached to the instance (a boot or new data disk), not inserted
    yet: it goes in with the instance's (:func:`~core.resources.store.new_resources`)."""
    body = {**spec["body"], "users": [instance_url], "lastAttachTimestamp": rfc3339(time.time())}
    return store.resource_row(**_row_fields(call, zone, spec, "CREATING", body))


def _row_fields(call: Call, zone: ZoneInfo, spec: dict[str, Any], status: str, body: store.Body) -> dict[str, Any]:
    return {"project": call.project, "collection": "disks", "scope": f"zones/{zone.name}", "name": spec["name"],
            "kind": "compute#disk", "body": body, "status": status, "region": zone.region.name,
            "size_gb": spec["size_gb"], "subtype": spec["subtype"]}


def quota_demand(specs: list[dict[str, Any]]) -> dict[str, float]:
    demand: dict[str, float] = {}
    for spec in specs:
        metric = DISK_TYPES[spec["subtype"]].quota_metric
        demand[metric] = demand.get(metric, 0) + spec["size_gb"]
    return demand


def insert(call: Call, zone: ZoneInfo, body: store.Body, source_image_param: str | None = None) -> Operation:
    spec = build(call, zone, name=body.get("name"), size_gb=body.get("sizeGb"), disk_type=body.get("type"),
                 source_image=body.get("sourceImage") or source_image_param, source_snapshot=body.get("sourceSnapshot"),
                 labels=body.get("labels"), description=body.get("description", ""))
    policies = resource_policies.links_for_new(call, zone.region.name, body.get("resourcePolicies"),
                                               "resource.resourcePolicies", "disks")
    if policies:
        spec["body"]["resourcePolicies"] = policies
    project = projects.get(call.session, call.project, lock=True)  # usage cannot change under the check
    quotas.check_region(call.session, project, zone.region.name, quota_demand([spec]))
    res = create_row(call, zone, spec)
    quotas.recheck_region(call.session, project, zone.region.name, quota_demand([spec]))  # an instance's at once
    return operations.begin(call, scope=f"zones/{zone.name}", op_type="insert",
                            target_path=path_of(call.project, res.scope, "disks", res.name), target_id=res.uid,
                            job="disks.insert", params={"uids": [res.uid], "zone_id": zone.id})


def place_disks(session: Session, zone_id: int, uids: list[int], project: str, zone_name: str) -> None:
    """Give every listed disk without a pool a pool with room; ZONE_RESOURCE_POOL_EXHAUSTED otherwise."""
    capacity = planner.ZoneCapacity(session, zone_id)
    # By uid alone: with ``pool_id IS NULL`` beside a list of uids, SQLite walks the pool index over
    # every resource without a pool (see core.systemvms.sync).
    for res in session.scalars(select(Resource).where(Resource.uid.in_(uids))):
        if res.pool_id is not None:
            continue
        pool = capacity.place_disk(res.size_gb)
        if pool is None:
            raise zone_exhausted(project, zone_name)
        res.pool_id = pool.id


def _insert(ctx: JobContext) -> None:
    uids = ctx.params["uids"]
    with ctx.write() as s:
        first = s.scalar(select(Resource).where(Resource.uid.in_(uids)))
        if first is None:
            return
        place_disks(s, ctx.params["zone_id"], uids, first.project, first.scope.split("/")[1])
        for res in s.scalars(select(Resource).where(Resource.uid.in_(uids))):
            mark_ready(res)


def mark_ready(res: Resource) -> None:
    """The disk's job made it: CREATING becomes READY (a READY one stays as it is)."""
    move = DISKS.event(res.status, READY_EVENT)
    if move.status is not None:
        store.set_status(res, move.status)


def _drop_created(ctx: JobContext, _failure: OperationFailure) -> None:
    with ctx.write() as s:
        for res in s.scalars(select(Resource).where(Resource.uid.in_(ctx.params["uids"]))):
            s.delete(res)


job("disks.insert", on_fail=_drop_created)(_insert)


def delete(call: Call, zone: ZoneInfo, name: str) -> Operation:
    return delete_in(call, f"zones/{zone.name}", name)


def delete_in(call: Call, scope: str, name: str) -> Operation:
    """Delete a disk of ``scope`` (``zones/Z``, or ``regions/R`` for a regional disk)."""
    res = projects.find_for_update(call.session, call.project, "disks", scope, name)
    DISKS.move(path_of(call.project, res.scope, "disks", res.name), res.status, DELETE)
    disk = store.body_of(res)
    if disk.get("users"):
        raise ResourceInUse("disk", path_of(call.project, res.scope, "disks", res.name),
                            disk["users"][0].split("/compute/v1/", 1)[-1])
    op = operations.begin(call, scope=res.scope, op_type="delete", target_path=path_of(call.project, res.scope, "disks", res.name),
                          target_id=res.uid)
    call.session.delete(res)
    return op


def resize(call: Call, zone: ZoneInfo, name: str, body: store.Body) -> Operation:
    return resize_in(call, f"zones/{zone.name}", zone.region.name, name, body)


def resize_in(call: Call, scope: str, region: str, name: str, body: store.Body) -> Operation:
    project = projects.get(call.session, call.project, lock=True)  # the project's row first, then the disk's
    res = projects.find_for_update(call.session, call.project, "disks", scope, name)
    DISKS.move(path_of(call.project, res.scope, "disks", res.name), res.status, RESIZE)
    grow_to(call, project, res, region, body.get("sizeGb"), "sizeGb")
    return operations.begin(call, scope=res.scope, op_type="resize", target_path=path_of(call.project, res.scope, "disks", res.name),
                            target_id=res.uid)


def grow_to(call: Call, project: Project, res: Resource, region: str, value: object, field: str) -> None:
    """Make the disk ``value`` GB (larger only; the region's quota and the storage pool have room).
    The caller holds the project's row lock (the quota's)."""
    size = parse_size(value, field)
    if size is None:
        raise Required(field)
    if size <= res.size_gb:
        raise Invalid(field, size, message=(
            f"Invalid value for field '{field}': '{size}'. New disk size '{size} GB' must be larger than "
            f"existing size '{res.size_gb} GB'."))
    grow = size - res.size_gb
    metric = DISK_TYPES.get(res.subtype, DISK_TYPES[DEFAULT_DISK_TYPE]).quota_metric
    quotas.check_region(call.session, project, region, {metric: grow})
    if res.pool_id is not None:
        pool = call.session.get(StoragePool, res.pool_id)
        if pool is not None and pool.capacity_gb * pool.overprovisioning - planner.pool_usage(call.session, [pool.id]).get(pool.id, 0) < grow:
            raise ResourceExhausted(f"The storage pool of disk '{res.name}' has no room to grow it by {grow} GB.")
    disk = store.body_of(res)
    disk["sizeGb"] = str(size)
    res.size_gb = size
    store.save(res, disk)
    quotas.recheck_region(call.session, project, region, [metric])  # an instance's insert at once


def set_disk_labels(call: Call, zone: ZoneInfo, name: str, body: store.Body) -> Operation:
    return set_labels_in(call, f"zones/{zone.name}", name, body)


def set_labels_in(call: Call, scope: str, name: str, body: store.Body) -> Operation:
    res = projects.find_for_update(call.session, call.project, "disks", scope, name)
    DISKS.move(path_of(call.project, res.scope, "disks", res.name), res.status, SET_LABELS)
    disk = store.body_of(res)
    set_labels(disk, body)
    store.save(res, disk)
    return operations.begin(call, scope=res.scope, op_type="setLabels", target_path=path_of(call.project, res.scope, "disks", res.name),
                            target_id=res.uid)


def _relock(res: Resource) -> bool:
    """Re-read a disk under a row lock before changing ``users``: a concurrent delete or attach
    either finished first (and is seen here) or waits for this transaction. False: it is gone."""
    session = object_session(res)
    if session is None:
        return True
    session.flush()
    try:
        session.refresh(res, with_for_update=True)
    except InvalidRequestError:  # deleted by a transaction that committed meanwhile
        return False
    return True


def add_user(res: Resource, instance_url: str) -> None:
    if not _relock(res):
        raise NotFound(path_of(res.project, res.scope, "disks", res.name))
    disk = store.body_of(res)
    disk["users"] = [*disk.get("users", []), instance_url]
    disk["lastAttachTimestamp"] = rfc3339(time.time())
    store.save(res, disk)


def remove_user(res: Resource, instance_url: str) -> None:
    if not _relock(res):
        return
    disk = store.body_of(res)
    users = [u for u in disk.get("users", []) if u != instance_url]
    if users:
        disk["users"] = users
    else:
        disk.pop("users", None)
    disk["lastDetachTimestamp"] = rfc3339(time.time())
    store.save(res, disk)
