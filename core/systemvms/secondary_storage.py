"""The secondary storage VM of a zone (CloudStack's SSVM): it owns images and snapshots.

Images and snapshots live on the zone's secondary storage; its storage VM copies them there,
checksums them and accounts for the space (``secondary_objects``). The ``images.insert`` and
``disks.createSnapshot`` jobs call :func:`copy_image` / :func:`copy_snapshot` in their final
transaction and record the size they return (``archiveSizeBytes``, ``storageBytes``); deleting an
image or snapshot calls :func:`remove`. A machine image is one object holding the copies of its
instance's disks (:func:`copy_machine_image`).

With the simulator a copy is a record: its size follows from the source (what the disk's written
blocks would take) and its checksum from the source's identity, and a copy of a stored object
(an image of an image or of a snapshot) has that object's checksum, as real bytes would. A driver
that moves real bytes runs the copy on the storage VM's host before that transaction and passes
what it measured; the accounting is the same.

The storage VM must run: while it is down (its host failed, the watchdog redeploys it) a copy
raises :class:`SecondaryStorageUnavailable`, which the job engine retries with backoff. A zone
without one gets it deployed on first use.
"""

from __future__ import annotations

import hashlib
import time

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from core.errors import OperationFailure
from core.links import parse_ref
from core.models import Resource, SecondaryObject, SystemVm, Zone
from core.resources import store
from core.systemvms import jobs, vms

GIB = 1024**3
# Each zone's secondary storage (CloudStack: the NFS share of its SSVM).
CAPACITY_BYTES = 16 * 1024 * GIB


class SecondaryStorageUnavailable(Exception):
    """The zone's storage VM is not running right now; the job is retried later."""


def storage_vm(session: Session, zone: Zone) -> SystemVm:
    """The zone's storage VM if it can copy now (deployed when the zone has none)."""
    vm = jobs.ensure_zone_vm(session, vms.SECONDARY_STORAGE, zone)
    host = vms.host_of(session, vm)
    if vm.state == vms.ERROR or (host is not None and host.status != "Up"):
        raise SecondaryStorageUnavailable(f"The secondary storage VM {vm.name} of zone {zone.name} is not running.")
    return vm


def usage(session: Session, zone: Zone) -> tuple[int, int]:
    """(bytes used, capacity) of the zone's secondary storage."""
    used = session.scalar(select(func.coalesce(func.sum(SecondaryObject.size_bytes), 0))
                          .where(SecondaryObject.zone_id == zone.id))
    return int(used or 0), CAPACITY_BYTES


def stored(session: Session, owner_uid: int) -> SecondaryObject | None:
    """Where an image or snapshot is stored (the first zone holding it)."""
    return session.scalar(select(SecondaryObject).where(SecondaryObject.owner_uid == owner_uid)
                          .order_by(SecondaryObject.id).limit(1))


def home_zone(session: Session, source: Resource | str) -> Zone:
    """The zone a copy of ``source`` goes to: a disk's own zone, where a stored source is, else the
    first zone by name (images and snapshots are global; their bytes live in one zone)."""
    if isinstance(source, Resource):
        if source.scope.startswith("zones/"):
            return session.scalars(select(Zone).where(Zone.name == source.scope.split("/", 1)[1])).one()
        obj = stored(session, source.uid)
        if obj is not None:
            return session.get_one(Zone, obj.zone_id)
        disk = store.body_of(source).get("sourceDisk")
        ref = parse_ref(disk, project=source.project) if disk else None
        if ref is not None and ref.scope.startswith("zones/"):
            zone = session.scalar(select(Zone).where(Zone.name == ref.scope.split("/", 1)[1]))
            if zone is not None:
                return zone
    zone = session.scalar(select(Zone).where(Zone.status == "UP").order_by(Zone.name).limit(1))
    if zone is None:  # every zone is down: try again once one is back
        raise SecondaryStorageUnavailable("No zone is up to hold the copy.")
    return zone


def _record(session: Session, zone: Zone, kind: str, owner_uid: int, source: str, size: int,
            checksum: str) -> tuple[str, int]:
    existing = session.scalar(select(SecondaryObject).where(SecondaryObject.zone_id == zone.id,
                                                            SecondaryObject.owner_uid == owner_uid))
    if existing is not None:  # a job run again after a crash: the copy is there
        return existing.checksum, existing.size_bytes
    vm = storage_vm(session, zone)
    used, capacity = usage(session, zone)
    if used + size > capacity:
        raise OperationFailure("ZONE_RESOURCE_POOL_EXHAUSTED",
                               f"The secondary storage of zone '{zone.name}' has {capacity - used} bytes left; "
                               f"the copy needs {size}.", 503)
    session.add(SecondaryObject(zone_id=zone.id, kind=kind, owner_uid=owner_uid, source=source[:400], size_bytes=size,
                                checksum=checksum, copied_by=vm.name, created=time.time()))
    session.flush()
    return checksum, size


def _sha(*parts: object) -> str:
    return hashlib.sha256(":".join(str(p) for p in parts).encode()).hexdigest()


def copy_image(session: Session, zone: Zone, source: Resource | str, *, owner_uid: int) -> tuple[str, int]:
    """Copy an image's source (a disk, snapshot or image row, or a raw tarball URL) into the zone's
    secondary storage as the image ``owner_uid``: (sha256 checksum, bytes). Idempotent."""
    if isinstance(source, str):
        return _record(session, zone, "image", owner_uid, source, 10 * GIB // 3, _sha("raw", source))
    label = f"{source.project}/{source.collection}/{source.name}"
    obj = stored(session, source.uid)
    if obj is not None:  # an image of an image, or of a snapshot: the same bytes
        return _record(session, zone, "image", owner_uid, label, obj.size_bytes, obj.checksum)
    size = max(source.size_gb, 1) * GIB // 3
    return _record(session, zone, "image", owner_uid, label, size, _sha(source.collection, source.uid, size))


def copy_snapshot(session: Session, zone: Zone, disk: Resource, *, owner_uid: int) -> tuple[str, int]:
    """Copy a disk's written blocks into the zone's secondary storage as snapshot ``owner_uid``."""
    size = max(disk.size_gb, 1) * GIB // 4
    return _record(session, zone, "snapshot", owner_uid, f"{disk.project}/disks/{disk.name}", size,
                   _sha("snapshot", disk.uid, owner_uid, size))


def copy_machine_image(session: Session, zone: Zone, disks: list[Resource], *,
                       owner_uid: int) -> tuple[str, list[int]]:
    """Copy the written blocks of an instance's disks into the zone's secondary storage as machine
    image ``owner_uid`` (one stored object holding every disk, in order): (sha256 checksum, each
    disk's bytes). Idempotent: a job run again finds the copy and the sizes it recorded."""
    sizes = [max(d.size_gb, 1) * GIB // 4 for d in disks]
    label = ",".join(f"{d.project}/disks/{d.name}" for d in disks)
    checksum = _sha("machineImage", owner_uid, *(f"{d.uid}:{size}" for d, size in zip(disks, sizes, strict=True)))
    stored_checksum, total = _record(session, zone, "machineImage", owner_uid, label, sum(sizes), checksum)
    if total != sum(sizes):  # recorded by an earlier run whose disks have grown since: keep its sizes
        sizes = [total * size // max(sum(sizes), 1) for size in sizes]
    return stored_checksum, sizes


def remove(session: Session, owner_uid: int) -> int:
    """Delete an image's or snapshot's copies; the bytes freed."""
    freed = session.scalar(select(func.coalesce(func.sum(SecondaryObject.size_bytes), 0))
                           .where(SecondaryObject.owner_uid == owner_uid))
    session.execute(delete(SecondaryObject).where(SecondaryObject.owner_uid == owner_uid))
    return int(freed or 0)
