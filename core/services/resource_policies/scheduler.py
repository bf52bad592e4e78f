"""The scheduler: what snapshot and instance schedules do, on time, without anyone asking.

Each round looks at every resource policy with a schedule and, for the instant ``now``:

* a snapshot schedule snapshots each disk following it whose latest slot (:func:`timing.last_slot`)
  came after the disk's last scheduled snapshot (or after it started following the policy), through
  the snapshot service (``disks.createSnapshot``, one job per disk, named as GCE names scheduled
  snapshots: ``DISK-ZONE-YYYYMMDDHHMMSS-RANDOM``), and deletes the policy's snapshots older than its
  ``maxRetentionDays`` (unless their disk is gone and the policy keeps such snapshots,
  ``KEEP_AUTO_SNAPSHOTS``);
* an instance schedule starts or stops each instance following it when its start or stop cron
  expression fired since the last round that acted on it (within ``startTime``/``expirationTime``),
  through the instances service, and reports the last and next run in ``resourceStatus``.

A policy is handled in one transaction holding its row lock, so two processes running rounds on one
database never act twice. ``now`` is a parameter: the periodic thread passes the wall clock, ``gstack
admin resource-policies run --at T`` a time of the operator's choosing (a slot missed while the
process was down, or a test running a week of schedules in seconds).
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
import string
import time
from collections.abc import Callable
from zoneinfo import ZoneInfo as TimeZone

import orjson
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from core.db import write_session
from core.errors import ComputeError
from core.ids import rfc3339
from core.links import url_of
from core.models import Resource
from core.periodic import PeriodicRounds
from core.resources import store
from core.resources.context import Call
from core.resources.queries import with_term
from core.resources.store import Body
from core.services import instances, snapshots, topology, vpc
from core.services.resource_policies import timing
from core.services.resource_policies.attach import state_of
from core.services.resource_policies.policies import COLLECTION, INSTANCE, SNAPSHOT, followers, policy_kind
from core.terms import SNAPSHOT_POLICY_ID

log = logging.getLogger("gstack.core")

SYSTEM_USER = "system"
_SUFFIX = string.ascii_lowercase + string.digits
# A round run within this of the wall clock records no instant for its snapshots: their creation is it.
_ON_TIME = 60.0
_POLICIES = select(Resource.uid).where(Resource.collection == COLLECTION).order_by(Resource.pk)


def scheduled_name(disk: str, zone: str, at: float) -> str:
    """GCE's name of a scheduled snapshot: the disk's name (shortened to fit 63 characters), its zone,
    the time in UTC and eight random characters."""
    stamp = dt.datetime.fromtimestamp(at, dt.UTC).strftime("%Y%m%d%H%M%S")
    tail = f"-{zone}-{stamp}-{''.join(secrets.choice(_SUFFIX) for _ in range(8))}"
    return disk[:63 - len(tail)].rstrip("-") + tail


def run_round(factory: sessionmaker[Session], now: float) -> list[str]:
    """Every policy's due work at ``now``; what was done, one line per action."""
    with factory() as session:
        uids = list(session.scalars(_POLICIES))
    actions: list[str] = []
    for uid in uids:
        with write_session(factory) as session:
            policy = session.scalar(select(Resource).where(Resource.uid == uid).with_for_update())
            if policy is None:
                continue
            kind = policy_kind(store.body_of(policy))
            if kind == SNAPSHOT:
                actions += _snapshot_round(session, policy, now)
            elif kind == INSTANCE:
                actions += _instance_round(session, policy, now)
    return actions


def _snapshot_round(session: Session, policy: Resource, now: float) -> list[str]:
    body = store.body_of(policy)[SNAPSHOT]
    row, state = state_of(session, policy, lock=True)
    targets: dict[str, float] = state["targets"]
    slot = timing.last_slot(body["schedule"], now)
    props = body.get("snapshotProperties", {})
    link = url_of(policy.project, policy.scope, COLLECTION, policy.name)
    taken: dict[str, float] = state.setdefault("taken", {})
    actions = _retention(session, policy, body, taken, now)
    disks = followers(session, policy, ("disks",))
    for disk in disks:
        since = targets.get(str(disk.uid), disk.created)
        if slot <= since:
            continue
        name = scheduled_name(disk.name, disk.scope.split("/", 1)[1], now)  # its zone (a regional disk's region)
        request = {"name": name, **{k: props[k] for k in ("labels", "storageLocations") if k in props}}
        scheduled = {"autoCreated": True, "sourceSnapshotSchedulePolicy": link,
                     "sourceSnapshotSchedulePolicyId": str(policy.uid),
                     **{k: props[k] for k in ("guestFlush", "chainName") if k in props}}
        call = Call(session, policy.project, SYSTEM_USER)
        try:  # every refusal comes before the first write, so the transaction stays clean
            op = snapshots.create_from_disk_in(call, disk.scope, disk.name, request, scheduled)
        except ComputeError as exc:  # not READY yet, quota: the next round tries again
            actions.append(f"{vpc.path(policy)}: no snapshot of {vpc.path(disk)}: {exc.message}")
            continue
        targets[str(disk.uid)] = now
        if abs(now - time.time()) > _ON_TIME:
            taken[str(orjson.loads(op.params)["uid"])] = now
        actions.append(f"{vpc.path(policy)}: snapshot {name} of {vpc.path(disk)}")
    following = {str(d.uid) for d in disks}
    state["targets"] = {uid: at for uid, at in targets.items() if uid in following}
    store.save(row, state)
    return actions


def policy_snapshots(session: Session, policy: Resource) -> list[Resource]:
    """The snapshots the policy's rounds took (``sourceSnapshotSchedulePolicyId``), by their terms
    (:mod:`core.terms`): a retention that tested every snapshot body of the project each minute cost
    more the more snapshots the project kept, of any policy or none."""
    pks = with_term(policy.project, "snapshots", "global", SNAPSHOT_POLICY_ID, str(policy.uid))
    return list(session.scalars(select(Resource).where(Resource.pk.in_(pks)).order_by(Resource.pk)))


def _retention(session: Session, policy: Resource, body: Body, taken: dict[str, float], now: float) -> list[str]:
    """Delete the policy's snapshots older than its retention. A snapshot's age counts from its
    creation, or from the instant the round that took it ran as when that was not the wall clock
    (``taken``, kept in the policy's state), so rounds run ``--at`` a later time age them as the
    wall clock would. ``taken`` keeps only the policy's snapshots that still exist: the state is
    written every round, and a map of every snapshot ever taken made each round cost more."""
    retention = body.get("retentionPolicy")
    if not retention:
        return []
    kept = policy_snapshots(session, policy)
    for uid in taken.keys() - {str(snap.uid) for snap in kept}:
        del taken[uid]
    keep_orphans = retention.get("onSourceDiskDelete", "KEEP_AUTO_SNAPSHOTS") == "KEEP_AUTO_SNAPSHOTS"
    oldest = now - int(retention["maxRetentionDays"]) * timing.DAY
    actions: list[str] = []
    for snap in kept:
        if taken.get(str(snap.uid), snap.created) >= oldest:
            continue
        source_id = store.body_of(snap).get("sourceDiskId")
        if keep_orphans and session.scalar(select(Resource.uid).where(Resource.uid == int(source_id or 0))) is None:
            continue
        try:
            snapshots.delete(Call(session, policy.project, SYSTEM_USER), snap.name)
        except ComputeError as exc:
            actions.append(f"{vpc.path(policy)}: snapshot {snap.name} kept: {exc.message}")
            continue
        taken.pop(str(snap.uid), None)
        actions.append(f"{vpc.path(policy)}: snapshot {snap.name} deleted (older than "
                       f"{retention['maxRetentionDays']} days)")
    return actions


def _instance_round(session: Session, policy: Resource, now: float) -> list[str]:
    full = store.body_of(policy)
    body = full[INSTANCE]
    tz = TimeZone(body.get("timeZone", "UTC"))
    begins = timing.parse_rfc3339(body["startTime"]) if body.get("startTime") else float("-inf")
    ends = timing.parse_rfc3339(body["expirationTime"]) if body.get("expirationTime") else float("inf")
    crons = {action: timing.parse_cron(body[key]["schedule"])
             for action, key in (("start", "vmStartSchedule"), ("stop", "vmStopSchedule")) if key in body}
    row, state = state_of(session, policy, lock=True)
    targets: dict[str, float] = state["targets"]
    actions: list[str] = []
    vms = followers(session, policy, ("instances",))
    fired = {action: timing.previous_fire(cron, tz, min(now, ends)) for action, cron in crons.items()}
    for vm in vms:
        since = max(targets.get(str(vm.uid), vm.created), begins)
        due = [(at, action) for action, at in fired.items() if at is not None and since < at <= now]
        if due:
            _at, action = max(due)
            zone = topology.zone(session, vm.project, vm.scope.split("/", 1)[1])
            call = Call(session, vm.project, SYSTEM_USER)
            try:  # a refusal (the state table's) comes before any write
                (instances.start if action == "start" else instances.stop)(call, zone, vm.name)
            except ComputeError as exc:
                actions.append(f"{vpc.path(policy)}: {action} of {vpc.path(vm)} refused: {exc.message}")
            else:
                actions.append(f"{vpc.path(policy)}: {action} {vpc.path(vm)}")
        targets[str(vm.uid)] = max(targets.get(str(vm.uid), now), now)  # a round run --at a later time stays seen
    following = {str(v.uid) for v in vms}
    state["targets"] = {uid: at for uid, at in targets.items() if uid in following}
    store.save(row, state)
    _report(policy, full, fired, crons, tz, now, ends, bool(actions))
    return actions


def _report(policy: Resource, full: Body, fired: dict[str, float | None], crons: dict[str, timing.Cron],
            tz: TimeZone, now: float, ends: float, ran: bool) -> None:
    """resourceStatus.instanceSchedulePolicy: the last run that acted, the next planned one."""
    status = dict(full.get("resourceStatus", {}).get(INSTANCE, {}))
    if ran:
        last = max(at for at in fired.values() if at is not None)
        status["lastRunStartTime"] = rfc3339(last)
    upcoming = [at for cron in crons.values() if (at := timing.next_fire(cron, tz, now)) is not None and at <= ends]
    if upcoming:
        status["nextRunStartTime"] = rfc3339(min(upcoming))
    else:
        status.pop("nextRunStartTime", None)
    if status != full.get("resourceStatus", {}).get(INSTANCE, {}):
        full["resourceStatus"] = {INSTANCE: status}
        store.save(policy, full)


class PolicyScheduler(PeriodicRounds):
    """The periodic thread of a serving process: one :func:`run_round` at the wall clock per interval."""

    thread_name = "resource-policies"

    def __init__(self, factory: sessionmaker[Session], interval: float = 60.0,
                 kick: Callable[[], None] | None = None) -> None:
        super().__init__(interval)
        self.factory = factory
        self.kick = kick

    def run_once(self) -> list[str]:
        actions = run_round(self.factory, time.time())
        for line in actions:
            log.info("%s", line)
        if actions and self.kick is not None:
            self.kick()
        return actions


def start_policy_scheduler(factory: sessionmaker[Session], interval: float = 60.0,
                           kick: Callable[[], None] | None = None) -> PolicyScheduler:
    return PolicyScheduler(factory, interval, kick).start()
