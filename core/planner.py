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

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, Subquery, and_, bindparam, func, literal_column, select, union_all
from sqlalchemy.orm import Session

from core.catalog import platforms
from core.db import parts_of, read_only
from core.models import CapacityUsage, Cluster, Host, StoragePool
from core.prepared import Prepared

# Holders nothing is placed on have no row, or one counting none: they are left out, as a sum over
# no resources left them out.
_HOST_USAGE = select(CapacityUsage.holder_id, CapacityUsage.vcpus, CapacityUsage.memory_mb).where(
    CapacityUsage.holder == "host", CapacityUsage.holder_id.in_(bindparam("ids", expanding=True)),
    CapacityUsage.count > 0)
_POOL_USAGE = select(CapacityUsage.holder_id, CapacityUsage.size_gb).where(
    CapacityUsage.holder == "pool", CapacityUsage.holder_id.in_(bindparam("ids", expanding=True)),
    CapacityUsage.count > 0)
_HOST_UP = and_(Host.zone_id == bindparam("zone_id"), Host.status == "Up")
_POOL_UP = and_(StoragePool.zone_id == bindparam("zone_id"), StoragePool.status == "Up")


def _kinds(hosts: bool, pools: bool) -> list[str]:
    return ["host"] * hosts + ["pool"] * pools


def _holders(kinds: list[str]) -> Subquery:
    parts: list[Select[Any]] = [select(literal_column(f"'{kind}'").label("holder")) for kind in kinds]
    return union_all(*parts).subquery("kind") if len(parts) > 1 else parts[0].subquery("kind")


# The tables whose columns a row of _read starts with, in order (see _entities).
_ENTITIES = [*Host.__table__.columns, *Cluster.__table__.columns, *StoragePool.__table__.columns]


def _read(hosts: bool, pools: bool) -> Select[Any]:
    """The zone's Up hosts (with their clusters) and/or its Up pools in one statement, each in a row
    of its own (the other kind's columns NULL) with its counter outer-joined (None: nothing was
    ever placed on it): hosts first, each kind by id. A row per requested kind (``kind``) drives
    the outer joins, so a zone without hosts still gets its pools read, and the other way round."""
    kind = _holders(_kinds(hosts, pools))
    on_pool = and_(kind.c.holder == literal_column("'pool'"), _POOL_UP) if pools else literal_column("1 = 0")
    on_host = and_(kind.c.holder == literal_column("'host'"), _HOST_UP) if hosts else literal_column("1 = 0")
    return (select(*_ENTITIES, CapacityUsage.vcpus, CapacityUsage.memory_mb, CapacityUsage.size_gb)
            .select_from(kind)
            .outerjoin(Host, on_host).outerjoin(Cluster, Cluster.id == Host.cluster_id)
            .outerjoin(StoragePool, on_pool)
            .outerjoin(CapacityUsage, and_(CapacityUsage.holder == kind.c.holder,
                                           CapacityUsage.holder_id == func.coalesce(Host.id, StoragePool.id),
                                           CapacityUsage.count > 0))
            .order_by(kind.c.holder, Host.id, StoragePool.id))


def _lock(hosts: bool, pools: bool) -> Select[str, int]:
    """PostgreSQL: lock the zone's Up hosts, then its Up pools, each by id (the order every placing
    transaction takes them in), in one statement (a UNION ALL runs its parts one after the other,
    and a query that locks rows is never run in parallel); (kind, id) of each locked.

    ``FOR NO KEY UPDATE``: placing transactions take turns, as do the host's and pool's own changes
    (any UPDATE of their rows), but rows that merely refer to a host or pool go on: the foreign key
    check of a VM's domain, of a running VM's ``last_host_id``, takes ``FOR KEY SHARE``, which ``FOR
    UPDATE`` refused: a burst's next batch waited ~3 ms on each such check. Such rows hold no
    capacity; the one writer besides placement that gives a host a VM (the host monitor, finding
    one running there) takes the host's lock first (:func:`hold_host`)."""
    parts: list[Select[str, int]] = []
    for kind, model, up in (("host", Host, _HOST_UP), ("pool", StoragePool, _POOL_UP)):
        if kind in _kinds(hosts, pools):
            locked = select(model.id).where(up).order_by(model.id).with_for_update(key_share=True).subquery(kind)
            parts.append(select(literal_column(f"'{kind}'").label("holder"), locked.c.id))
    return union_all(*parts) if len(parts) > 1 else parts[0]  # type: ignore[return-value]


# Prepared (core.prepared): through the ORM, making Host, Cluster and StoragePool objects of its rows
# cost a lone VM's staging ~0.3 ms, twice its statement.
_READ = {(h, p): Prepared(_read(h, p)) for h, p in ((True, False), (False, True), (True, True))}


def _entities(row: Sequence[Any]) -> tuple[Host | None, Cluster | None, StoragePool | None, Any, Any, Any]:
    """A row of :func:`_read` as (host, cluster, pool, its counters): read-only objects
    (:func:`core.db.read_only`) placements take ids and sizes from, never changed."""
    (host, cluster, pool), counters = parts_of(row, Host, Cluster, StoragePool)
    return (read_only(Host, host) if host is not None else None,
            read_only(Cluster, cluster) if cluster is not None else None,
            read_only(StoragePool, pool) if pool is not None else None, *counters)


_LOCK = {(h, p): _lock(h, p) for h, p in ((True, False), (False, True), (True, True))}
_HOLD_HOST = select(Host.id).where(Host.id == bindparam("id")).with_for_update(key_share=True)


def hold_host(session: Session, host_id: int) -> None:
    """PostgreSQL: take the host's placement lock (see :func:`_lock`) before giving it a VM that no
    placement gave it (one found running there): a placement under way ends first, and the next
    reads the host's counters with this VM in them. SQLite's writers take turns already."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(_HOLD_HOST, {"id": host_id})


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
    same as placing them one at a time.

    ``disks``: the transaction places disks as well as VMs, so the pools are read (and locked) with
    the hosts: one read of both instead of one each.

    On PostgreSQL the rows are locked by one statement and read, with their counters, by the next:
    a statement sees the database as it was when it began, so a read that waited for a lock inside
    it would see the counters as they were before the lock's holder placed its VMs and committed.
    The hosts are locked before the pools, as every placing transaction locks them; the capacity
    triggers' per-zone lock (:mod:`core.usage`) comes after both, when a placement is written. On
    SQLite, whose writers take turns, the one read is all.
    """

    def __init__(self, session: Session, zone_id: int, disks: bool = False):
        self.session = session
        self.zone_id = zone_id
        self.disks = disks
        self._hosts: list[tuple[Host, Cluster]] | None = None
        self._host_free: dict[int, list[float]] = {}
        self._pools: list[StoragePool] | None = None
        self._pool_free: dict[int, float] = {}

    def _load(self, hosts: bool, pools: bool) -> None:
        """Read (and lock, on PostgreSQL) the zone's Up hosts and/or pools and what they hold."""
        params = {"zone_id": self.zone_id}
        locked: set[tuple[str, int]] | None = None
        if self.session.get_bind().dialect.name == "postgresql":
            locked = {(kind, rid) for kind, rid in self.session.execute(_LOCK[hosts, pools], params)}
        if hosts:
            self._hosts = []
        if pools:
            self._pools = []
        rows = map(_entities, _READ[hosts, pools].in_session(self.session, params))
        for host, cluster, pool, vcpus, memory, size in rows:
            # On PostgreSQL, a host or pool that came Up after the lock is not one this transaction holds.
            if host is not None and (locked is None or ("host", host.id) in locked):
                assert self._hosts is not None and cluster is not None
                self._hosts.append((host, cluster))
                self._host_free[host.id] = [host.cpus * cluster.cpu_overprovisioning - (vcpus or 0),
                                            host.memory_mb * cluster.memory_overprovisioning - (memory or 0)]
            elif pool is not None and (locked is None or ("pool", pool.id) in locked):
                assert self._pools is not None
                self._pools.append(pool)
                self._pool_free[pool.id] = pool.capacity_gb * pool.overprovisioning - (size or 0)

    def hosts(self) -> list[tuple[Host, Cluster]]:
        if self._hosts is None:
            self._load(True, self.disks and self._pools is None)
        assert self._hosts is not None
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
            self._load(False, True)
        assert self._pools is not None
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
    cpus = memory = 0.0
    rows = map(_entities, _READ[True, False].in_session(session, {"zone_id": zone_id}))
    for host, cluster, _, used_cpus, used_memory, _ in rows:
        if host is not None and cluster is not None:
            cpus += max(0.0, host.cpus * cluster.cpu_overprovisioning - (used_cpus or 0))
            memory += max(0.0, host.memory_mb * cluster.memory_overprovisioning - (used_memory or 0))
    return cpus, memory


def place_vm(session: Session, zone_id: int, vcpus: int, memory_mb: int,
             exclude: frozenset[int] = frozenset(), prefer: int | None = None,
             min_platform: str | None = None) -> Host | None:
    """One VM's host (see :meth:`ZoneCapacity.place_vm`)."""
    return ZoneCapacity(session, zone_id).place_vm(vcpus, memory_mb, exclude, prefer, min_platform)


def place_disk(session: Session, zone_id: int, size_gb: int) -> StoragePool | None:
    """One disk's pool (see :meth:`ZoneCapacity.place_disk`)."""
    return ZoneCapacity(session, zone_id).place_disk(size_gb)
