"""The host monitor: it notices when a host fails, and reconciles what hosts run with what gstack believes.

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

Reconciling VM by VM costs a row per instance of the cloud, so only the slow round (every
``FULL_EVERY`` rounds) does it for every host. A routine round compares a summary of each host
(:mod:`core.hypervisors.summary`): one aggregate statement over the host's rows in the database
and the driver's digest of its domains, a few numbers each; only a host whose summaries differ is
looked at VM by VM, and reconciled when it is out of step.

Several processes may run a monitor on one database: each host is checked by one of them at a
time (a lease on the host row). Every change re-reads the instance under a row lock and is
skipped when a job on the instance is unfinished or was started since the host was read, so a
monitor never races the jobs or another monitor.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import CursorResult, and_, bindparam, case, func, literal, or_, select, union_all, update
from sqlalchemy.orm import Session, sessionmaker

from core import planner
from core.db import write_session
from core.hypervisors.base import DriverError, HostRef, HypervisorDriver
from core.hypervisors.registry import DriverRegistry
from core.hypervisors.summary import Digest, DomainSummary, as_digest, sql_digest
from core.ids import rfc3339
from core.jobs.engine import UNFINISHED, local_owner_id
from core.models import Cluster, Host, Operation, Resource
from core.periodic import PeriodicRounds
from core.resources import operations, store
from core.resources.context import Call
from core.services.hosts import find_zone
from core.services.instances import states as instance_states

log = logging.getLogger("gstack.hosts")

FAILURES_TO_DOWN = 3
FULL_EVERY = 10  # host monitor rounds: a full reconcile of every host at least this often (5 min at 30 s)

# What the monitor reads of an instance to judge it (no body: a full round reads every instance a
# host holds). _ON_HOST: the instances a host runs, and the stopped ones it ran last, as two index
# seeks; one WHERE with an OR of the two columns walked every instance of the cloud for each host.
_HOST: Any = bindparam("host")
_SEEN_COLUMNS = (Resource.uid, Resource.status, Resource.host_id, Resource.last_host_id, Resource.project,
                 Resource.scope, Resource.name)
_PLACED = and_(Resource.host_id == _HOST, Resource.collection == "instances")
_LAST_HERE = and_(Resource.last_host_id == _HOST, Resource.collection == "instances",
                  or_(Resource.host_id.is_(None), Resource.host_id != _HOST))
_ON_HOST = union_all(select(*_SEEN_COLUMNS).where(_PLACED), select(*_SEEN_COLUMNS).where(_LAST_HERE))


def _classed(cls: Any) -> Any:
    """A select of the uid, ``cls`` and (for ``any``) the uid again, to group by."""
    return select(Resource.uid, cls.label("cls"), case((cls == "any", Resource.uid)).label("apart"))


# The summary of a host in the database (HostMonitor.summary_in_step): its rows, each in the class
# that says which domain the host must have of it to be in step, digested per class in one
# statement. running: a RUNNING VM placed here (a running domain); paused: a SUSPENDED VM that ran
# here last (a paused one); shutoff: a TERMINATED one (none running: a shut-off domain is what
# stop leaves); absent: a VM that runs elsewhere now (no domain). any: a VM starting or stopping,
# and the host's system VMs (the watchdog's to judge): whatever domain it has is in step, so each
# is a group of its own, its uid set aside from the driver's digests.
_RUNNING, _SUSPENDED, _TERMINATED = instance_states.RUNNING, instance_states.SUSPENDED, instance_states.TERMINATED
_CLASSES = union_all(
    _classed(case((Resource.status == _RUNNING, literal("running")), else_=literal("any"))).where(_PLACED),
    _classed(case((Resource.host_id.is_not(None), literal("absent")),
                  (Resource.status == _SUSPENDED, literal("paused")),
                  (Resource.status == _TERMINATED, literal("shutoff")), else_=literal("any"))).where(_LAST_HERE),
    _classed(literal("any")).where(Resource.host_id == _HOST, Resource.collection == "systemvms")).subquery()
_SUMMARY = select(_CLASSES.c.cls, _CLASSES.c.apart, *sql_digest(_CLASSES.c.uid)).group_by(
    _CLASSES.c.cls, _CLASSES.c.apart)


@dataclass(frozen=True)
class HostSummary:
    """A host's rows in the database in a few numbers: the digest of each class's uids (running,
    paused, shutoff, absent; see _SUMMARY) and the uids whose domain may be in any state."""

    classes: dict[str, Digest]
    aside: frozenset[int]

    def key(self) -> tuple[object, ...]:
        return tuple(sorted(self.classes.items())), tuple(sorted(self.aside))


def host_summary(session: Session, host_id: int) -> HostSummary:
    classes: dict[str, Digest] = {}
    aside = []
    for cls, apart, *digest in session.execute(_SUMMARY, {"host": host_id}):
        if apart is not None:
            aside.append(apart)
        else:
            classes[cls] = as_digest(*digest)
    return HostSummary(classes, frozenset(aside))


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
        self._in_step_at: dict[int, tuple[object, ...]] = {}  # host id -> summaries judged in step VM by VM

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
        elif stats is not None and reconcile and (self._slow_round or not self.summary_in_step(driver, ref)):
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
        zone = find_zone(session, res.scope.split("/", 1)[1])
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

    def summary_in_step(self, driver: HypervisorDriver, ref: HostRef) -> bool:
        """Whether the host runs what the database says, from the two summaries (a few numbers per
        host, whatever its number of VMs): in step when the driver's domains in each state are
        the database's rows of that class (running, paused, shutoff), the VMs set aside apart.

        That test is sound but stricter than :meth:`in_step`: a TERMINATED VM whose domain is gone
        (or paused) is in step too. So when the summaries differ the host is judged VM by VM, and
        summaries it found in step are remembered for the host: a host that stays so costs the
        summaries alone in later rounds. (They are remembered only when the summaries read after
        the VM-by-VM look are the same, so that what was judged is what they describe.)"""
        try:
            before = self._summaries(driver, ref)
        except DriverError:
            return False
        db, domains = before
        if dict(domains.states) == {cls: d for cls, d in db.classes.items() if cls != "absent"}:
            return True
        key = (db.key(), domains.key())
        if self._in_step_at.get(ref.id) == key:
            return True
        if not self.in_step(driver, ref):
            return False
        try:
            after = self._summaries(driver, ref)
        except DriverError:
            return True
        if (after[0].key(), after[1].key()) == key:
            self._in_step_at[ref.id] = key
        return True

    def _summaries(self, driver: HypervisorDriver, ref: HostRef) -> tuple[HostSummary, DomainSummary]:
        with self.factory() as session:
            db = host_summary(session, ref.id)
        return db, driver.domain_summary(ref, db.aside)

    def in_step(self, driver: HypervisorDriver, ref: HostRef) -> bool:
        """Whether the host runs what the database says, judged VM by VM: the uid and status columns
        of the host's instances and system VMs (no body, no ORM object) against the driver's list.
        What is not in step (a drifted VM, an orphan, a stale copy) gets the full :meth:`reconcile`;
        an answer it cannot give (the driver fails) too."""
        with self.factory() as session:
            rows = session.execute(_ON_HOST, {"host": ref.id}).all()
            known = set(session.scalars(select(Resource.uid).where(Resource.collection == "systemvms",
                                                                   Resource.host_id == ref.id)))
        try:
            actual = driver.list_instances(ref)
        except DriverError:
            return False
        for uid, status, host_id, last_host_id, *_ in rows:
            known.add(uid)
            here = host_id == ref.id or (host_id is None and last_host_id == ref.id)
            if (actual.get(uid) is not None) if not here else _drift(status, host_id == ref.id, actual.get(uid)):
                return False
        return known.issuperset(actual)

    def reconcile(self, driver: HypervisorDriver, ref: HostRef) -> list[HostEvent]:
        with self.factory() as session:
            since_pk = session.scalar(select(func.max(Operation.pk))) or 0
            rows: dict[int, Any] = {r.uid: r for r in session.execute(_ON_HOST, {"host": ref.id})}
        try:
            actual = driver.list_instances(ref)
            missing = [uid for uid in actual if uid not in rows]
            system: dict[int, int | None] = {}
            if missing:  # an empty IN walks every instance on SQLite (it is not known empty up front)
                with self.factory() as session:
                    # By uid alone, told apart after: with the collection in the WHERE, SQLite walks
                    # the collection's index for more than a few uids (see core.systemvms.sync).
                    # System VMs (routers, console proxies, storage VMs) are the watchdog's to judge.
                    for r in session.execute(select(*_SEEN_COLUMNS, Resource.collection).where(
                            Resource.uid.in_(missing))):
                        if r.collection == "instances":
                            rows[r.uid] = r
                        elif r.collection == "systemvms":
                            system[r.uid] = r.host_id
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
                if res.host_id != ref.id:
                    planner.hold_host(session, ref.id)
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


def _path(res: Any) -> str:
    """An instance's path, from its row or the columns the monitor read (project, scope, name)."""
    return f"projects/{res.project}/{res.scope}/instances/{res.name}"


def start_host_monitor(factory: sessionmaker[Session], drivers: DriverRegistry, interval: float = 30.0,
                       kick: Callable[[], None] | None = None) -> HostMonitor:
    """Start the monitor thread of a serving process (``gstack serve``, ``gstack worker``)."""
    return HostMonitor(factory, drivers, interval=interval, kick=kick).start()
