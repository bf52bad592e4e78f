"""Primary storage pools, as an operator manages them (CloudStack's primary storage): list them
with what their disks hold, add one to a zone, resize one, take one out of placement.

A pool is capacity the planner places disks in (``core.planner``): a disk fits while the pool's
size times its over-provisioning factor covers what its disks hold. The seed gives each zone one
pool (``ZONE-primary``); a cloud that grows past it needs a larger pool or another one, and until
now the only way was a hand-written UPDATE.

Every pool is zone-wide: the planner places a disk in any Up pool of its zone, so a pool bound to
one cluster would be a promise nothing keeps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.models import CapacityUsage, StoragePool, Zone
from core.services.hosts import HostError

POOL_STATUSES = ("Up", "Maintenance")  # Maintenance: no new disk is placed in it; its disks stay


@dataclass(frozen=True)
class PoolRow:
    pool: StoragePool
    zone: Zone
    disks: int
    used_gb: int


def pools(session: Session) -> list[PoolRow]:
    """Every pool by zone and name, with the disks placed in it and the GB they hold (the
    planner's counters, kept by the database's triggers)."""
    usage = {holder_id: (count, size_gb) for holder_id, count, size_gb in session.execute(
        select(CapacityUsage.holder_id, CapacityUsage.count, CapacityUsage.size_gb)
        .where(CapacityUsage.holder == "pool"))}
    rows = session.execute(select(StoragePool, Zone).join(Zone, StoragePool.zone_id == Zone.id)
                           .order_by(Zone.name, StoragePool.name))
    return [PoolRow(p, z, int(usage.get(p.id, (0, 0))[0] or 0), int(usage.get(p.id, (0, 0))[1] or 0))
            for p, z in rows]


def _valid(capacity_gb: int, overprovisioning: float) -> None:
    if capacity_gb <= 0:
        raise HostError(f"a pool's capacity must be a positive number of GB, not {capacity_gb}")
    if not overprovisioning >= 1.0:  # also refuses NaN
        raise HostError(f"a pool's over-provisioning factor must be at least 1, not {overprovisioning}")


def add_pool(session: Session, zone_name: str, name: str, capacity_gb: int, overprovisioning: float = 2.0) -> StoragePool:
    """A new zone-wide pool, Up: the planner places disks in it after the zone's older pools fill."""
    _valid(capacity_gb, overprovisioning)
    zone = session.scalar(select(Zone).where(Zone.name == zone_name))
    if zone is None:
        raise HostError(f"zone {zone_name} does not exist")
    if session.scalar(select(StoragePool.id).where(StoragePool.name == name)) is not None:
        raise HostError(f"storage pool {name} already exists")
    pool = StoragePool(zone_id=zone.id, cluster_id=None, name=name, capacity_gb=capacity_gb,
                       overprovisioning=overprovisioning, status="Up")
    session.add(pool)
    session.flush()
    return pool


def _locked(session: Session, name: str) -> StoragePool:
    """The pool, its row locked on PostgreSQL (as the planner locks it to place a disk), so that no
    placement slips between reading what it holds and changing its size."""
    pool = session.scalar(select(StoragePool).where(StoragePool.name == name).with_for_update())
    if pool is None:
        raise HostError(f"storage pool {name} does not exist")
    return pool


def resize_pool(session: Session, name: str, capacity_gb: int | None = None,
                overprovisioning: float | None = None) -> StoragePool:
    """A new size or over-provisioning factor. Shrinking below what the pool's disks hold is refused:
    the planner would see negative room, and the disks are there."""
    pool = _locked(session, name)
    capacity = pool.capacity_gb if capacity_gb is None else capacity_gb
    factor = pool.overprovisioning if overprovisioning is None else overprovisioning
    _valid(capacity, factor)
    used = int(session.scalar(select(CapacityUsage.size_gb).where(
        CapacityUsage.holder == "pool", CapacityUsage.holder_id == pool.id)) or 0)
    if capacity * factor < used:
        raise HostError(f"storage pool {name} holds {used} GB of disks: with over-provisioning {factor:g} it needs "
                        f"at least {math.ceil(used / factor)} GB")
    pool.capacity_gb, pool.overprovisioning = capacity, factor
    session.flush()
    return pool


def set_pool_status(session: Session, name: str, status: str) -> StoragePool:
    """Up, or Maintenance: no new disk is placed in it (disks already there stay and keep working)."""
    if status not in POOL_STATUSES:
        raise HostError(f"a pool's status is one of {', '.join(POOL_STATUSES)}, not {status}")
    pool = _locked(session, name)
    pool.status = status
    session.flush()
    return pool
