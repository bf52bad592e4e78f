"""Hosts: adding and removing them, maintenance, and the monitor that notices when one fails.

The monitor (CloudStack's host agent pings plus its HA worker) asks each host's driver for its
statistics every ``interval`` seconds. A host that fails ``failures_to_down`` checks in a row is
marked Down, and each VM that was RUNNING there follows its ``scheduling.automaticRestart``: it is
restarted on another host (a system Operation ``compute.instances.hostError`` running the
``instances.run`` job) or it becomes TERMINATED. A Down host that answers again is Up.

On a host that answers, the monitor reconciles what the host really runs with what gstack
believes: a VM that vanished or changed state outside gstack is reported and its instance status
corrected (reality wins), a stale copy of a VM that lives elsewhere now is removed, and volumes
of deleted disks are collected. Each correction is a system Operation (user ``system``) on the
instance, so the user sees it in the instance's operations as on GCE.

Several processes may run a monitor on one database: each host is checked by one of them at a
time (a lease on the host row). Every change re-reads the instance under a row lock and is
skipped when a job on the instance is unfinished or was started since the host was read, so a
monitor never races the jobs or another monitor.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import CursorResult, func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from core.catalog import platforms
from core.db import write_session
from core.hypervisors.base import DriverError, HostRef, HypervisorDriver
from core.hypervisors.registry import DriverRegistry
from core.ids import rfc3339
from core.jobs.engine import UNFINISHED, local_owner_id
from core.models import Cluster, Host, Operation, Pod, Resource, Zone
from core.periodic import PeriodicRounds
from core.planner import host_usage
from core.resources import operations, store
from core.resources.context import Call
from core.services import accelerator_types
from core.services.instances import states as instance_states

log = logging.getLogger("gstack.hosts")

FAILURES_TO_DOWN = 3
FULL_EVERY = 10  # host monitor rounds: a full reconcile of every host at least this often (5 min at 30 s)
HOST_STATUSES = ("Up", "Down", "Maintenance")


class HostError(Exception):
    """An operator's request that cannot be done (unknown zone, host still in use...)."""


# -- topology ------------------------------------------------------------------------------------


def host_ref(host: Host) -> HostRef:
    return HostRef(host.id, host.name, host.uri)


def _zone(session: Session, name: str) -> Zone:
    zone = session.scalar(select(Zone).where(Zone.name == name))
    if zone is None:
        raise HostError(f"zone {name} does not exist")
    return zone


def add_cluster(session: Session, zone_name: str, name: str, hypervisor: str, *, pod: str | None = None,
                cpu_overprovisioning: float = 4.0, memory_overprovisioning: float = 1.0) -> Cluster:
    """A cluster of one hypervisor in a pod of the zone (its first pod unless named)."""
    zone = _zone(session, zone_name)
    q = select(Pod).where(Pod.zone_id == zone.id)
    found = session.scalar((q.where(Pod.name == pod) if pod else q).order_by(Pod.id))
    if found is None:
        raise HostError(f"pod {pod} does not exist in {zone_name}" if pod else f"zone {zone_name} has no pod")
    if session.scalar(select(Cluster).where(Cluster.zone_id == zone.id, Cluster.name == name)) is not None:
        raise HostError(f"cluster {name} already exists in {zone_name}")
    cluster = Cluster(pod_id=found.id, zone_id=zone.id, name=name, hypervisor=hypervisor,
                      cpu_overprovisioning=cpu_overprovisioning, memory_overprovisioning=memory_overprovisioning)
    session.add(cluster)
    session.flush()
    return cluster


def add_host(factory: sessionmaker[Session], drivers: DriverRegistry, zone_name: str, cluster_name: str | None,
             name: str | None, uri: str, *, cpus: int | None = None, memory_mb: int | None = None,
             options: dict[str, Any] | None = None, cpu_platform: str | None = None) -> Host:
    """Add a host; its CPUs and memory are read from the host itself unless given. ``cpu_platform``:
    the GCE platform name of its processors (e.g. ``Intel Ice Lake``; default: the column's), what
    instances placed on it report and their minimum CPU platform is matched against.

    The row is written first (with no capacity, so nothing is placed on it yet) because the driver
    reads the host's options from it; a host that cannot be reached is removed again.
    """
    if cpu_platform is not None and cpu_platform not in platforms.KNOWN:
        raise HostError(f"unknown CPU platform {cpu_platform}; known: {', '.join(sorted(platforms.KNOWN))}")
    try:
        accelerator_types.declared(json.dumps(options) if options else None)
    except accelerator_types.UnknownAccelerator as exc:
        raise HostError(str(exc)) from None
    with write_session(factory) as session:
        zone = _zone(session, zone_name)
        q = select(Cluster).where(Cluster.zone_id == zone.id)
        cluster = session.scalar((q.where(Cluster.name == cluster_name) if cluster_name else q).order_by(Cluster.id))
        if cluster is None:
            raise HostError(f"cluster {cluster_name} does not exist in {zone_name}")
        if cluster.hypervisor not in drivers:
            raise HostError(f"no driver for hypervisor {cluster.hypervisor}")
        driver = drivers.get(cluster.hypervisor)
        probe_name = name or f"new-host-{time.time_ns()}"
        if session.scalar(select(Host).where(Host.name == probe_name)) is not None:
            raise HostError(f"host {probe_name} already exists")
        host = Host(cluster_id=cluster.id, zone_id=zone.id, name=probe_name, uri=uri, cpus=0, memory_mb=0,
                    status="Up", options=json.dumps(options) if options else None)
        if cpu_platform is not None:
            host.cpu_platform = cpu_platform
        session.add(host)
        session.flush()
        host_id = host.id
    try:
        stats = driver.host_stats(HostRef(host_id, probe_name, uri))
    except DriverError as exc:
        with write_session(factory) as session:
            session.delete(session.get(Host, host_id))
        raise HostError(f"cannot add {uri}: {exc}") from exc
    with write_session(factory) as session:
        found = session.get(Host, host_id)
        if found is None:  # removed by an operator meanwhile
            raise HostError(f"host {probe_name} was removed while it was being added")
        host = found
        final = name or stats.hostname or uri
        taken = session.scalar(select(Host).where(Host.name == final, Host.id != host_id)) is not None
        if taken:
            session.delete(host)
        else:
            host.name = final
            host.cpus = cpus if cpus is not None else stats.cpus
            host.memory_mb = memory_mb if memory_mb is not None else stats.memory_mb
            host.last_seen, host.failures = time.time(), 0
    if taken:
        raise HostError(f"host {final} already exists; give another --name")
    return host


def find_host(session: Session, name: str) -> Host:
    host = session.scalar(select(Host).where(Host.name == name))
    if host is None:
        raise HostError(f"host {name} does not exist")
    return host


def set_host_status(session: Session, name: str, status: str) -> None:
    """Mark a host Up, Down (a simulator host then stops answering) or in Maintenance, as is: no VM moves."""
    find_host(session, name).status = status


def fail_next_spawns(session: Session, name: str, count: int) -> None:
    """Simulator fault injection: the host's next ``count`` spawns fail."""
    find_host(session, name).fail_next_spawns = count


def cluster_of(session: Session, host: Host) -> Cluster:
    cluster = session.get(Cluster, host.cluster_id)
    assert cluster is not None  # a foreign key
    return cluster


def find_cluster(session: Session, zone_name: str, name: str | None) -> Cluster | None:
    """The zone's cluster called ``name``, else (no name) its first; None when there is none."""
    zone = session.scalar(select(Zone).where(Zone.name == zone_name))
    q = select(Cluster).where(Cluster.zone_id == (zone.id if zone else -1))
    return session.scalar((q.where(Cluster.name == name) if name else q).order_by(Cluster.id))


@dataclass(frozen=True)
class ClusterRow:
    cluster: Cluster
    zone: Zone
    hosts: int


def clusters(session: Session) -> list[ClusterRow]:
    """Every cluster by zone and name, with its number of hosts."""
    counted = session.execute(select(Host.cluster_id, func.count(Host.id)).group_by(Host.cluster_id)).tuples()
    counts = {cluster_id: n for cluster_id, n in counted}  # dict() would take the Result for a mapping
    rows = session.execute(select(Cluster, Zone).join(Zone, Cluster.zone_id == Zone.id).order_by(Zone.name, Cluster.name))
    return [ClusterRow(c, z, counts.get(c.id, 0)) for c, z in rows.tuples()]


@dataclass(frozen=True)
class HostRow:
    host: Host
    cluster: Cluster
    zone: Zone
    cpus_used: int
    memory_used_mb: int


def hosts(session: Session) -> list[HostRow]:
    """Every host by zone and name, with the CPUs and memory its VMs hold."""
    rows = list(session.execute(select(Host, Cluster, Zone).join(Cluster, Host.cluster_id == Cluster.id)
                                .join(Zone, Host.zone_id == Zone.id).order_by(Zone.name, Host.name)).tuples())
    usage = host_usage(session, [h.id for h, _, _ in rows])
    return [HostRow(h, c, z, *usage.get(h.id, (0, 0))) for h, c, z in rows]


def placed_vms(session: Session, host_id: int) -> list[Resource]:
    """The VMs that hold capacity on the host (PROVISIONING once placed through SUSPENDING)."""
    return list(session.scalars(select(Resource).where(Resource.host_id == host_id).order_by(Resource.name)))


def set_maintenance(session: Session, name: str, on: bool) -> list[Resource]:
    """Maintenance: the planner places nothing more on the host; the VMs on it keep running (no
    live migration yet) and are returned so the operator can stop or move them."""
    host = find_host(session, name)
    if on:
        host.status = "Maintenance"
    elif host.status == "Maintenance":
        host.status = "Up"
    return placed_vms(session, host.id)


def remove_host(session: Session, name: str) -> None:
    """Remove a host no VM is placed on; stopped VMs that last ran there forget it."""
    host = find_host(session, name)
    vms = placed_vms(session, host.id)
    if vms:
        raise HostError(f"host {name} still has {len(vms)} VM(s): " + ", ".join(
            f"{v.project}/{v.name}" for v in vms[:10]) + "; stop or delete them first")
    session.execute(update(Resource).where(Resource.last_host_id == host.id).values(last_host_id=None))
    session.delete(host)


# -- the monitor ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HostEvent:
    host: str
    kind: str  # down | up | restarted | terminated | drift | stale | orphan | garbage | unreachable
    message: str
    instance: str | None = None


@dataclass(frozen=True)
class _Seen:
    """An instance as it was before the host was asked, to detect changes made meanwhile."""

    uid: int
    status: str
    host_id: int | None
    last_host_id: int | None


class HostMonitor(PeriodicRounds):
    """Checks every host, one round per ``interval``; see the module docstring. ``local`` says this
    process owns the state of hosts whose driver state is process-local (libvirt ``test://``): the
    serving process does, a one-shot ``gstack admin host check`` does not and leaves them alone."""

    thread_name = "host-monitor"

    def __init__(self, factory: sessionmaker[Session], drivers: DriverRegistry, *, interval: float = 30.0,
                 failures_to_down: int = FAILURES_TO_DOWN, local: bool = True,
                 kick: Callable[[], None] | None = None):
        super().__init__(interval)
        self.factory = factory
        self.drivers = drivers
        self.failures_to_down = failures_to_down
        self.local = local
        self.kick = kick
        self.owner = local_owner_id()
        self._rounds = 0
        self._slow_round = True  # check_host called alone (``gstack admin host check``) reconciles in full

    def run_once(self, *, force: bool = False, reconcile: bool = True) -> list[HostEvent]:
        """One round over every host this monitor holds (``force``: every host, no lease). Every
        ``FULL_EVERY`` rounds (and with ``force``) each host is reconciled in full (instances
        re-read, garbage collected); in between only hosts whose summary is out of step are."""
        self._rounds += 1
        self._slow_round = force or self._rounds % FULL_EVERY == 1
        with self.factory() as session:
            hosts = [(h.id, h.name, h.uri, c.hypervisor) for h, c in session.execute(
                select(Host, Cluster).join(Cluster, Host.cluster_id == Cluster.id).order_by(Host.id))]
        events: list[HostEvent] = []
        for host_id, name, uri, hypervisor in hosts:
            if hypervisor not in self.drivers:
                continue
            driver = self.drivers.get(hypervisor)
            ref = HostRef(host_id, name, uri)
            if not self.local and not driver.shares_state(ref):
                continue
            if not force and not self._claim(host_id):
                continue
            events += self.check_host(driver, ref, reconcile=reconcile)
        for e in events:
            log.warning("host %s: %s%s", e.host, e.message, f" ({e.instance})" if e.instance else "")
        return events

    def _claim(self, host_id: int) -> bool:
        now = time.time()
        with write_session(self.factory) as session:
            claimed = cast(CursorResult[Any], session.execute(update(Host).where(  # an UPDATE's result has a count
                Host.id == host_id,
                or_(Host.monitor_owner.is_(None), Host.monitor_owner == self.owner, Host.monitor_expiry < now))
                .values(monitor_owner=self.owner, monitor_expiry=now + 3 * self.interval)))
            return claimed.rowcount == 1

    def check_host(self, driver: HypervisorDriver, ref: HostRef, *, reconcile: bool = True) -> list[HostEvent]:
        events: list[HostEvent] = []
        try:
            stats, error = driver.host_stats(ref), None
        except DriverError as exc:
            stats, error = None, str(exc)
        with write_session(self.factory) as session:
            host = session.get(Host, ref.id)
            if host is None:
                return []
            if stats is not None:
                host.failures, host.last_seen, host.last_error = 0, time.time(), None
                if (stats.cpus, stats.memory_mb) != (host.cpus, host.memory_mb) and stats.cpus:
                    host.cpus, host.memory_mb = stats.cpus, stats.memory_mb
                if host.status == "Down":
                    host.status = "Up"
                    events.append(HostEvent(ref.name, "up", "answers again: Up"))
            else:
                host.failures = min((host.failures or 0) + 1, 1_000_000)
                host.last_error = (error or "")[:255]
                if host.status != "Down" and host.failures >= self.failures_to_down:
                    host.status = "Down"
                    events.append(HostEvent(ref.name, "down", f"failed {host.failures} checks: Down ({error})"))
                elif host.status != "Down":
                    events.append(HostEvent(ref.name, "unreachable", error or "unreachable"))
            status = host.status
        if status == "Down":
            events += self.recover_vms(ref)
        elif stats is not None and reconcile and (self._slow_round or not self.in_step(driver, ref)):
            events += self.reconcile(driver, ref)
        return events

    # -- HA: the VMs of a Down host --------------------------------------------------------------

    def recover_vms(self, ref: HostRef) -> list[HostEvent]:
        """Each VM RUNNING on the Down host is restarted elsewhere or TERMINATED, as it asks."""
        with self.factory() as session:
            uids = list(session.scalars(select(Resource.uid).where(
                Resource.host_id == ref.id, Resource.collection == "instances", Resource.status == instance_states.RUNNING)))
        events = []
        for uid in uids:
            event = self._correct(ref, uid, None, lambda res: (instance_states.RUNNING, ref.id),
                                 self._host_error(ref))
            if event is not None:
                events.append(event)
        return events

    def _host_error(self, ref: HostRef) -> Callable[[Session, Resource], HostEvent]:
        def act(session: Session, res: Resource) -> HostEvent:
            restart = (store.body_of(res).get("scheduling") or {}).get("automaticRestart", True)
            if restart:
                self._restart(session, res, "compute.instances.hostError",
                              f"Host {ref.name} failed; the instance is restarted on another host.")
                return HostEvent(ref.name, "restarted", "host failed: restarting elsewhere", _path(res))
            self._stop_here(res, "lost", lastStopTimestamp=rfc3339(time.time()))
            self._record(session, res, "compute.instances.hostError",
                         f"Host {ref.name} failed; the instance was terminated (automaticRestart is false).")
            return HostEvent(ref.name, "terminated", "host failed: TERMINATED (automaticRestart is false)",
                             _path(res))

        return act

    def _restart(self, session: Session, res: Resource, op_type: str, message: str) -> None:
        zone = _zone(session, res.scope.split("/", 1)[1])
        move = instance_states.event(res, "restartElsewhere")
        res.host_id = None
        instance_states.take(res, move)
        op = operations.begin(Call(session, res.project, "system"), scope=res.scope, op_type=op_type,
                              target_path=_path(res), target_id=res.uid, job=move.job,
                              params={"uid": res.uid, "zone_id": zone.id})
        op.status_message = message
        if self.kick is not None:
            session.info.setdefault("after_commit", []).append(self.kick)

    @staticmethod
    def _stop_here(res: Resource, event: str, **fields: object) -> None:
        """The VM no longer runs on its host: it holds no capacity there, and takes the status the
        instance table gives the host monitor's ``event``."""
        res.host_id = None
        instance_states.take(res, instance_states.event(res, event), **fields)

    @staticmethod
    def _record(session: Session, res: Resource, op_type: str, message: str) -> None:
        op = operations.begin(Call(session, res.project, "system"), scope=res.scope, op_type=op_type,
                              target_path=_path(res), target_id=res.uid)
        op.status_message = message

    def _correct(self, ref: HostRef, uid: int, seen: _Seen | None, expect: Callable[[Resource], tuple[str, int | None]],
                 act: Callable[[Session, Resource], HostEvent | None], since_pk: int | None = None) -> HostEvent | None:
        """Run ``act`` on the instance under its row lock, if it is as ``expect`` says and no job on it
        is unfinished or was started since ``since_pk``."""
        kicks: list[Callable[[], None]] = []
        with write_session(self.factory) as session:
            res = session.scalar(select(Resource).where(Resource.uid == uid).with_for_update())
            if res is None or (res.status, res.host_id) != expect(res):
                return None
            if seen is not None and (res.status, res.host_id, res.last_host_id) != (
                    seen.status, seen.host_id, seen.last_host_id):
                return None
            busy = select(Operation.pk).where(Operation.target_id == uid, or_(
                Operation.status.in_(UNFINISHED), Operation.pk > (since_pk if since_pk is not None else 2**62)))
            if session.scalar(busy.limit(1)) is not None:
                return None
            event = act(session, res)
            kicks = session.info.pop("after_commit", [])
        for kick in kicks:
            kick()
        return event

    # -- reconciliation ------------------------------------------------------------------------

    def in_step(self, driver: HypervisorDriver, ref: HostRef) -> bool:
        """Whether the host runs what the database says, judged from a light summary: the uid and
        status columns of the host's instances and system VMs (no body, no ORM object) against the
        driver's list. What is not in step (a drifted VM, an orphan, a stale copy) gets the full
        :meth:`reconcile`; an answer it cannot give (the driver fails) too."""
        with self.factory() as session:
            rows = session.execute(select(Resource.uid, Resource.status, Resource.host_id, Resource.last_host_id).where(
                Resource.collection == "instances", or_(Resource.host_id == ref.id, Resource.last_host_id == ref.id))).all()
            known = set(session.scalars(select(Resource.uid).where(Resource.collection == "systemvms",
                                                                   Resource.host_id == ref.id)))
        try:
            actual = driver.list_instances(ref)
        except DriverError:
            return False
        for uid, status, host_id, last_host_id in rows:
            known.add(uid)
            here = host_id == ref.id or (host_id is None and last_host_id == ref.id)
            if (actual.get(uid) is not None) if not here else _drift(status, host_id == ref.id, actual.get(uid)):
                return False
        return known.issuperset(actual)

    def reconcile(self, driver: HypervisorDriver, ref: HostRef) -> list[HostEvent]:
        with self.factory() as session:
            since_pk = session.scalar(select(func.max(Operation.pk))) or 0
            rows = {r.uid: r for r in session.scalars(select(Resource).where(
                Resource.collection == "instances",
                or_(Resource.host_id == ref.id, Resource.last_host_id == ref.id)))}
        try:
            actual = driver.list_instances(ref)
            with self.factory() as session:
                missing = [uid for uid in actual if uid not in rows]
                for r in session.scalars(select(Resource).where(Resource.uid.in_(missing),
                                                                Resource.collection == "instances")):
                    rows[r.uid] = r
                # System VMs (routers, console proxies, storage VMs) are the watchdog's to judge.
                system = dict(session.execute(select(Resource.uid, Resource.host_id).where(
                    Resource.uid.in_(missing), Resource.collection == "systemvms")).all())
        except DriverError as exc:
            return [HostEvent(ref.name, "unreachable", str(exc))]
        events: list[HostEvent] = []
        for uid in set(actual) - set(rows):
            if system.get(uid) == ref.id:
                continue
            driver.forget(ref, uid)
            events.append(HostEvent(ref.name, "orphan", f"removed domain of deleted instance {uid}"))
        for uid, res in rows.items():
            seen = _Seen(uid, res.status, res.host_id, res.last_host_id)
            event = self._reconcile_one(driver, ref, seen, actual.get(uid), since_pk, _path(res))
            if event is not None:
                events.append(event)
        try:
            for name in driver.collect_garbage(ref):
                events.append(HostEvent(ref.name, "garbage", f"deleted volume {name} of a deleted disk"))
        except DriverError as exc:
            events.append(HostEvent(ref.name, "unreachable", str(exc)))
        return events

    def _reconcile_one(self, driver: HypervisorDriver, ref: HostRef, seen: _Seen, state: str | None, since_pk: int,
                       path: str) -> HostEvent | None:
        here = seen.host_id == ref.id or (seen.host_id is None and seen.last_host_id == ref.id)
        same = lambda res: (seen.status, seen.host_id)  # noqa: E731
        if not here:
            if state is None:
                return None

            def stale(_session: Session, _res: Resource) -> HostEvent:
                return HostEvent(ref.name, "stale", "removed a stale copy: the instance lives on another host", path)

            event = self._correct(ref, seen.uid, seen, same, stale, since_pk)
            if event is not None:
                driver.forget(ref, seen.uid)
            return event
        action = _drift(seen.status, seen.host_id == ref.id, state)
        if action is None:
            return None
        return self._correct(ref, seen.uid, seen, same, self._apply_drift(ref, action, state), since_pk)

    def _apply_drift(self, ref: HostRef, action: str, state: str | None) -> Callable[[Session, Resource], HostEvent]:
        def act(session: Session, res: Resource) -> HostEvent:
            now = rfc3339(time.time())
            what = f"the VM is {state or 'gone'} on host {ref.name}, changed outside gstack"
            if action == "lost":
                if (store.body_of(res).get("scheduling") or {}).get("automaticRestart", True):
                    self._restart(session, res, "compute.instances.hostError", f"{what}; restarting it.")
                    return HostEvent(ref.name, "restarted", f"{what}: restarting", _path(res))
                self._stop_here(res, "lost", lastStopTimestamp=now)
                self._record(session, res, "compute.instances.hostError", f"{what}; TERMINATED.")
            elif action in ("shutOff", "foundStopped"):
                self._stop_here(res, action, lastStopTimestamp=now)
                self._record(session, res, "compute.instances.guestTerminate", f"{what}; TERMINATED.")
            elif action == "paused":
                self._stop_here(res, action, lastSuspendedTimestamp=now)
                self._record(session, res, "suspend", f"{what}; SUSPENDED.")
            else:  # foundRunning
                res.host_id = ref.id
                res.last_host_id = ref.id
                instance_states.take(res, instance_states.event(res, action), lastStartTimestamp=now)
                self._record(session, res, "start", f"{what}; RUNNING.")
            return HostEvent(ref.name, "drift", f"{what}: instance {res.status}", _path(res))

        return act


def _drift(status: str, placed_here: bool, state: str | None) -> str | None:
    """The host monitor's event for an instance in ``status`` whose domain the host shows in
    ``state`` (None: no domain), or None when the instance table has nothing to change."""
    if placed_here:
        event = {None: "lost", "shutoff": "shutOff", "paused": "paused"}.get(state)
    else:
        event = {"running": "foundRunning", None: "foundStopped", "shutoff": "foundStopped"}.get(state)
    return event if event is not None and instance_states.TABLE.cell(status, event) is not None else None


def _path(res: Resource) -> str:
    return f"projects/{res.project}/{res.scope}/instances/{res.name}"


def start_host_monitor(factory: sessionmaker[Session], drivers: DriverRegistry, interval: float = 30.0,
                       kick: Callable[[], None] | None = None) -> HostMonitor:
    """Start the monitor thread of a serving process (``gstack serve``, ``gstack worker``)."""
    return HostMonitor(factory, drivers, interval=interval, kick=kick).start()
