"""Placement by capacity (CloudStack's FirstFitPlanner).

Free capacity is never stored: it is each host's (or pool's) size times its over-provisioning
factor minus what the resources placed on it hold. Placing and releasing are therefore plain
column updates on the resource, made in the same transaction as the state change they belong
to, and a crash cannot leak capacity. What a host or pool holds is read from its counter
(``capacity_usage``), which database triggers keep in that same transaction (:mod:`core.usage`):
one row per host, however many VMs it runs. On PostgreSQL the zone's hosts are locked while
choosing.
"""

from __future__ import annotations

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from core.catalog import platforms
from core.models import CapacityUsage, Cluster, Host, StoragePool

# Holders nothing is placed on have no row, or one counting none: they are left out, as a sum over
# no resources left them out.
_HOST_USAGE = select(CapacityUsage.holder_id, CapacityUsage.vcpus, CapacityUsage.memory_mb).where(
    CapacityUsage.holder == "host", CapacityUsage.holder_id.in_(bindparam("ids", expanding=True)),
    CapacityUsage.count > 0)
_POOL_USAGE = select(CapacityUsage.holder_id, CapacityUsage.size_gb).where(
    CapacityUsage.holder == "pool", CapacityUsage.holder_id.in_(bindparam("ids", expanding=True)),
    CapacityUsage.count > 0)
_UP_HOSTS = (select(Host, Cluster).join(Cluster, Host.cluster_id == Cluster.id)
             .where(Host.zone_id == bindparam("zone_id"), Host.status == "Up").order_by(Host.id))
_UP_POOLS = (select(StoragePool).where(StoragePool.zone_id == bindparam("zone_id"), StoragePool.status == "Up")
             .order_by(StoragePool.id))


def host_usage(session: Session, host_ids: list[int]) -> dict[int, tuple[int, int]]:
    rows = session.execute(_HOST_USAGE, {"ids": list(host_ids)})
    return {hid: (int(c or 0), int(m or 0)) for hid, c, m in rows if hid is not None}  # IN: never None


def pool_usage(session: Session, pool_ids: list[int]) -> dict[int, int]:
    rows = session.execute(_POOL_USAGE, {"ids": list(pool_ids)})
    return {pid: int(s or 0) for pid, s in rows if pid is not None}  # IN: never None


class ZoneCapacity:
    """A zone's Up hosts and pools with their free room, read once (and locked, on PostgreSQL) for
    as many placements as the transaction makes: each placement is subtracted as it is made, so a
    burst of VMs is placed from one read of the usage instead of one per VM. The choice is the
    same as placing them one at a time."""

    def __init__(self, session: Session, zone_id: int):
        self.session = session
        self.zone_id = zone_id
        self._hosts: list[tuple[Host, Cluster]] | None = None
        self._host_free: dict[int, list[float]] = {}
        self._pools: list[StoragePool] | None = None
        self._pool_free: dict[int, float] = {}

    @property
    def _postgres(self) -> bool:
        return self.session.get_bind().dialect.name == "postgresql"

    def hosts(self) -> list[tuple[Host, Cluster]]:
        if self._hosts is None:
            q = _UP_HOSTS.with_for_update(of=Host) if self._postgres else _UP_HOSTS
            self._hosts = [(h, c) for h, c in self.session.execute(q, {"zone_id": self.zone_id})]
            usage = host_usage(self.session, [h.id for h, _ in self._hosts]) if self._hosts else {}
            for h, c in self._hosts:
                cpu, mem = usage.get(h.id, (0, 0))
                self._host_free[h.id] = [h.cpus * c.cpu_overprovisioning - cpu, h.memory_mb * c.memory_overprovisioning - mem]
        return self._hosts

    def cluster_of(self, host: Host) -> Cluster:
        return next(c for h, c in self.hosts() if h.id == host.id)

    def place_vm(self, vcpus: int, memory_mb: int, exclude: frozenset[int] = frozenset(),
                 prefer: int | None = None, min_platform: str | None = None) -> Host | None:
        """First host, not excluded, with room for the VM after over-provisioning; its room is taken.

        ``prefer`` is the host a VM last ran on: it is tried first (its disks and domain are there),
        and the VM stays on that host's kind of hypervisor: a libvirt VM never lands on a simulator.
        ``min_platform``: the VM's minimum CPU platform; only hosts at or above it are candidates.
        """
        candidates = [(h, c) for h, c in self.hosts()
                      if h.id not in exclude and platforms.satisfies(h.cpu_platform, min_platform)]
        if prefer is not None:
            previous = self.session.get(Host, prefer)
            if previous is not None:
                kind = previous.cluster.hypervisor
                candidates = sorted((hc for hc in candidates if hc[1].hypervisor == kind),
                                    key=lambda hc: hc[0].id != prefer)
        for host, _ in candidates:
            free = self._host_free[host.id]
            if free[0] >= vcpus and free[1] >= memory_mb:
                free[0] -= vcpus
                free[1] -= memory_mb
                return host
        return None

    def unplace_vm(self, host: Host, vcpus: int, memory_mb: int) -> None:
        """Give back what :meth:`place_vm` took (the VM could not be placed after all)."""
        free = self._host_free[host.id]
        free[0] += vcpus
        free[1] += memory_mb

    def place_disk(self, size_gb: int) -> StoragePool | None:
        """First pool with room for the disk after over-provisioning; its room is taken."""
        if self._pools is None:
            q = _UP_POOLS.with_for_update() if self._postgres else _UP_POOLS
            self._pools = list(self.session.scalars(q, {"zone_id": self.zone_id}))
            usage = pool_usage(self.session, [p.id for p in self._pools]) if self._pools else {}
            self._pool_free = {p.id: p.capacity_gb * p.overprovisioning - usage.get(p.id, 0) for p in self._pools}
        for pool in self._pools:
            if self._pool_free[pool.id] >= size_gb:
                self._pool_free[pool.id] -= size_gb
                return pool
        return None

    def unplace_disk(self, pool: StoragePool, size_gb: int) -> None:
        self._pool_free[pool.id] += size_gb


def zone_room(session: Session, zone_id: int) -> tuple[float, float]:
    """The free vCPUs and memory (MB) of a zone's Up hosts after over-provisioning, read without
    locking them: for choosing among zones, not for placing (a placement locks and reads again)."""
    hosts = [(h, c) for h, c in session.execute(_UP_HOSTS, {"zone_id": zone_id})]
    usage = host_usage(session, [h.id for h, _ in hosts]) if hosts else {}
    cpus = sum(max(0.0, h.cpus * c.cpu_overprovisioning - usage.get(h.id, (0, 0))[0]) for h, c in hosts)
    memory = sum(max(0.0, h.memory_mb * c.memory_overprovisioning - usage.get(h.id, (0, 0))[1]) for h, c in hosts)
    return cpus, memory


def place_vm(session: Session, zone_id: int, vcpus: int, memory_mb: int,
             exclude: frozenset[int] = frozenset(), prefer: int | None = None,
             min_platform: str | None = None) -> Host | None:
    """One VM's host (see :meth:`ZoneCapacity.place_vm`)."""
    return ZoneCapacity(session, zone_id).place_vm(vcpus, memory_mb, exclude, prefer, min_platform)


def place_disk(session: Session, zone_id: int, size_gb: int) -> StoragePool | None:
    """One disk's pool (see :meth:`ZoneCapacity.place_disk`)."""
    return ZoneCapacity(session, zone_id).place_disk(size_gb)
