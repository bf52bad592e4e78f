"""Placement by capacity (CloudStack's FirstFitPlanner).

Free capacity is never stored: it is each host's (or pool's) size times its over-provisioning
factor minus what the resources placed on it hold. Placing and releasing are therefore plain
column updates on the resource, made in the same transaction as the state change they belong
to, and a crash cannot leak capacity. On PostgreSQL the zone's hosts are locked while choosing.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.models import Cluster, Host, Resource, StoragePool


def host_usage(session: Session, host_ids: list[int]) -> dict[int, tuple[int, int]]:
    rows = session.execute(
        select(Resource.host_id, func.sum(Resource.vcpus), func.sum(Resource.memory_mb))
        .where(Resource.host_id.in_(host_ids))
        .group_by(Resource.host_id)
    )
    return {hid: (int(c or 0), int(m or 0)) for hid, c, m in rows}


def pool_usage(session: Session, pool_ids: list[int]) -> dict[int, int]:
    rows = session.execute(
        select(Resource.pool_id, func.sum(Resource.size_gb)).where(Resource.pool_id.in_(pool_ids))
        .group_by(Resource.pool_id)
    )
    return {pid: int(s or 0) for pid, s in rows}


def place_vm(session: Session, zone_id: int, vcpus: int, memory_mb: int,
             exclude: frozenset[int] = frozenset(), prefer: int | None = None) -> Host | None:
    """First host of the zone, Up and not excluded, with room for the VM after over-provisioning.

    ``prefer`` is the host a VM last ran on: it is tried first (its disks and domain are there),
    and the VM stays on that host's kind of hypervisor: a libvirt VM never lands on a simulator.
    """
    q = (select(Host, Cluster).join(Cluster, Host.cluster_id == Cluster.id)
         .where(Host.zone_id == zone_id, Host.status == "Up").order_by(Host.id))
    if session.bind.dialect.name == "postgresql":
        q = q.with_for_update(of=Host)
    candidates = [(h, c) for h, c in session.execute(q) if h.id not in exclude]
    if prefer is not None:
        previous = session.get(Host, prefer)
        if previous is not None:
            kind = session.get(Cluster, previous.cluster_id).hypervisor
            candidates = sorted((hc for hc in candidates if hc[1].hypervisor == kind),
                                key=lambda hc: hc[0].id != prefer)
    if not candidates:
        return None
    usage = host_usage(session, [h.id for h, _ in candidates])
    for host, cluster in candidates:
        used_cpu, used_mem = usage.get(host.id, (0, 0))
        if (host.cpus * cluster.cpu_overprovisioning - used_cpu >= vcpus
                and host.memory_mb * cluster.memory_overprovisioning - used_mem >= memory_mb):
            return host
    return None


def place_disk(session: Session, zone_id: int, size_gb: int) -> StoragePool | None:
    q = select(StoragePool).where(StoragePool.zone_id == zone_id, StoragePool.status == "Up").order_by(StoragePool.id)
    if session.bind.dialect.name == "postgresql":
        q = q.with_for_update()
    pools = list(session.scalars(q))
    if not pools:
        return None
    usage = pool_usage(session, [p.id for p in pools])
    for pool in pools:
        if pool.capacity_gb * pool.overprovisioning - usage.get(pool.id, 0) >= size_gb:
            return pool
    return None
