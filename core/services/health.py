"""What an operator's probes and metrics read from the database: is it reachable, how deep is the
job queue, how many operations are in each status, how full are the hosts, which state are the
system VMs in. One read-only snapshot per scrape, a handful of grouped queries on indexed columns:
every API process answers the same numbers, since they are the database's, not the process's.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from core.models import Cluster, Host, Operation, Resource, SystemVm, Zone


@dataclass(frozen=True)
class HostCapacity:
    name: str
    zone: str
    status: str
    cpus: int
    cpus_used: int
    memory_mb: int
    memory_used_mb: int
    # what the planner may place: the size times the cluster's over-provisioning factor (vCPUs 4× by
    # default), so a busy host holds more vCPUs than it has and still has room
    cpus_allocatable: float = 0.0
    memory_allocatable_mb: float = 0.0


@dataclass
class Snapshot:
    queued: dict[str, int] = field(default_factory=dict)  # job kind -> jobs PENDING
    oldest_queued: dict[str, float] = field(default_factory=dict)  # job kind -> seconds the oldest has waited
    running: dict[str, int] = field(default_factory=dict)  # job kind -> jobs RUNNING
    operations: dict[str, int] = field(default_factory=dict)  # status -> operations
    hosts: list[HostCapacity] = field(default_factory=list)
    system_vms: dict[tuple[str, str], int] = field(default_factory=dict)  # (kind, state) -> system VMs


def database_reachable(session: Session) -> bool:
    """One round trip; False (not an exception) when the database does not answer."""
    try:
        session.execute(text("SELECT 1"))
        return True
    except Exception:  # noqa: BLE001 - any failure means "not ready"; the caller reports it
        session.rollback()
        return False


def snapshot(session: Session, now: float | None = None) -> Snapshot:
    now = time.time() if now is None else now
    out = Snapshot()
    for status, count in session.execute(select(Operation.status, func.count()).group_by(Operation.status)):
        out.operations[status] = count
    busy = select(Operation.job, Operation.status, func.count(), func.min(Operation.insert_time)).where(
        Operation.status.in_(("PENDING", "RUNNING"))).group_by(Operation.job, Operation.status)
    for kind, status, count, oldest in session.execute(busy):
        if status == "PENDING":
            out.queued[kind] = count
            out.oldest_queued[kind] = max(0.0, now - (oldest or now))
        else:
            out.running[kind] = count
    used = (select(Resource.host_id, func.coalesce(func.sum(Resource.vcpus), 0).label("cpus"),
                   func.coalesce(func.sum(Resource.memory_mb), 0).label("memory"))
            .where(Resource.host_id.is_not(None)).group_by(Resource.host_id).subquery())
    hosts = (select(Host.name, Zone.name, Host.status, Host.cpus, Host.memory_mb, used.c.cpus, used.c.memory,
                    Cluster.cpu_overprovisioning, Cluster.memory_overprovisioning)
             .join(Zone, Zone.id == Host.zone_id).join(Cluster, Cluster.id == Host.cluster_id)
             .outerjoin(used, used.c.host_id == Host.id).order_by(Host.name))
    for name, zone, status, cpus, memory, cpus_used, memory_used, cpu_factor, memory_factor in session.execute(hosts):
        out.hosts.append(HostCapacity(name, zone, status, cpus, int(cpus_used or 0), memory, int(memory_used or 0),
                                      cpus * cpu_factor, memory * memory_factor))
    for kind, state, count in session.execute(
            select(SystemVm.kind, SystemVm.state, func.count()).group_by(SystemVm.kind, SystemVm.state)):
        out.system_vms[(kind, state)] = count
    return out
