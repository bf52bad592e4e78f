"""The reconciler: a durable job (``instanceGroupManagers.reconcile``) that drives a group's managed
instances towards its ``targetSize``, and the delete job.

Each run is a few short transactions and ends by queueing the next run (deferred) while the group is
not stable, so no worker waits on the instances' own jobs. Every step is idempotent and survives a
kill: a new instance's name is recorded in the group's state (:mod:`.state`) in one transaction
before it is created, and it is created (instances.insert from the group's template), made a member
of the group's instanceGroups resource and marked issued in another; a resumed run finds what it
made by name. One reconcile job at most is unfinished per group (jobs on one target run in order,
and whoever queues one first looks for an unfinished one under the group's row lock).

A quota refusal or a failed creation (no room in the zone) is no crash: the member stays CREATING
with its error in ``lastAttempt`` and in ``listErrors``, the group unstable, and the creation is
retried with back-off, as GCE keeps retrying.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.errors import ComputeError, NotFound, OperationFailure
from core.jobs import JobContext, job
from core.jobs.engine import UNFINISHED
from core.links import path_of
from core.models import Operation, Resource
from core.resources import operations, store
from core.resources.context import Call
from core.services import instance_groups, instances, topology
from core.services.instance_group_managers import autoheal, distribution, observed, rollout, state
from core.services.instance_group_managers.state import CREATING, DELETING, NONE, RECREATING, Member, State
from core.systemvms.vms import SYSTEM_PROJECT

RECONCILE, DELETE = "instanceGroupManagers.reconcile", "instanceGroupManagers.delete"
IN_FLIGHT_DELAY = 0.3  # seconds between runs while instances are being created or deleted
DELETE_TIMEOUT = 600.0  # seconds the delete job waits for the instances' own delete jobs
RETRY_DELAYS = (2.0, 5.0, 10.0, 30.0)  # back-off of a failed creation, by attempt
CREATE_BATCH = 25  # members created per transaction


def enqueue(session: Session, group: Resource, user: str, delay: float = 0.0, own_pk: int | None = None) -> None:
    """Queue a reconcile of ``group`` (whose row the caller holds locked) unless one is unfinished:
    a system Operation (not in the user's list), on the group as its target."""
    found = session.scalar(select(Operation.pk).where(
        Operation.target_id == group.uid, Operation.job == RECONCILE, Operation.status.in_(UNFINISHED),
        Operation.pk != (own_pk or -1)).limit(1))
    if found is not None:
        return
    op = operations.begin(Call(session, SYSTEM_PROJECT, "system"), scope=group.scope,
                          op_type="compute.instanceGroupManagers.reconcile",
                          target_path=f"projects/{group.project}/{group.scope}/instanceGroupManagers/{group.name}",
                          target_id=group.uid, job=RECONCILE, params={"uid": group.uid, "user": user})
    if delay:
        op.lease_expiry = time.time() + delay


def _group(session: Session, uid: int) -> Resource | None:
    return session.scalar(select(Resource).where(Resource.uid == uid).with_for_update())


def _live(session: Session, uid: int) -> tuple[Resource, State] | None:
    """The group, locked, with its state; None when it is gone or being deleted (a run and its
    creations then have nothing to do)."""
    group = _group(session, uid)
    if group is None:
        return None
    st = state.load(session, group)
    return None if st.deleting else (group, st)


def _instance(session: Session, group: Resource, m: Member) -> Resource | None:
    return _instance_in(session, group.project, m.scope, m.name)


def _instance_in(session: Session, project: str, scope: str, name: str) -> Resource | None:
    return store.find_optional(session, project, "instances", scope, name)


def _observe(group: Resource, st: State, m: Member, now: float, seen: observed.Seen,
             ops: dict[str, tuple[bool, Any]]) -> None:
    """What became of a member since the last run (``ops``: how its Operation ended)."""
    exists = seen.exists(m)
    if m.action == DELETING:
        if not exists:
            st.members.remove(m)
        return
    if m.op is not None:
        finished, error = ops.get(m.op, (True, None))
        if not finished:
            return
        if error is None and exists:
            m.action, m.op, m.error = NONE, None, None
            return
        m.op = None
        _retry_later(group, st, m, error or {"code": "RESOURCE_NOT_FOUND", "message": "The instance was deleted."},
                     now, no_room=not exists)
    elif m.action == NONE and not exists:  # deleted behind the group's back: made again, same name
        m.action = CREATING
    elif m.action == CREATING and exists:
        # Not ours (ours is created in the transaction that records its Operation): someone took the
        # name before the group could; the member takes another.
        m.name = state.new_name(store.body_of(group)["baseInstanceName"], {x.name for x in st.members})


def _plan(session: Session, group: Resource, st: State, user: str) -> tuple[list[str], list[str]]:
    """Observe, heal, update (:mod:`.autoheal`, :mod:`.rollout`), then name the instances to create
    and pick those to delete; (create, delete)."""
    now = time.time()
    body = store.body_of(group)
    seen = observed.Seen(session, group.project, st.members, rollout.checked(body))
    ops = observed.operations(session, group.project, (m.op for m in st.members if m.op is not None))
    for m in list(st.members):
        _observe(group, st, m, now, seen, ops)
    autoheal.step(session, group, st, now)
    rollout.step(session, group, st, user, seen)
    target = body["targetSize"]
    active = [m for m in st.members if m.action != DELETING and not m.retiring]
    for m in distribution.drifted(body, active):  # made again below, in the emptiest zones
        m.action, m.error = DELETING, None
        active.remove(m)
    taken = {m.name for m in st.members}
    while len(active) < target and rollout.room(body, st):
        template, version = rollout.next_version(body, st)
        new = Member(state.new_name(body["baseInstanceName"], taken), CREATING, template,
                     zone=distribution.place(body, st, now), version=version)
        if _instance(session, group, new) is None:
            taken.add(new.name)
            active.append(new)
            st.members.append(new)
    for m in distribution.surplus(active, len(active) - target):
        m.action, m.error = DELETING, None
        if m.op is None and _instance(session, group, m) is None:
            st.members.remove(m)
    create = [m.name for m in st.members if m.action == CREATING and m.op is None and m.retry_at <= now]
    delete = [m.name for m in st.members if m.action in (DELETING, RECREATING) and not m.issued]
    return create, delete


def _create(ctx: JobContext, uid: int, names: list[str]) -> None:
    """Create recorded members, up to :data:`CREATE_BATCH` in one transaction: each instance, its
    membership and the record of its Operation commit together; a refusal (quota, a bad template,
    no room) undoes that member's savepoint alone and is recorded as its error.

    One transaction per member loaded and saved the group's whole state each time (and SQLite's
    terms trigger parsed the saved state twice): growing a group of N cost N times a state of N."""
    user = ctx.params.get("user", "")
    with ctx.write() as s:
        live = _live(s, uid)
        if live is None:
            return
        group, st = live
        ig = store.find_optional(s, group.project, instance_groups.COLLECTION, group.scope, group.name)
        errors = False
        for name in names:
            m = st.member(name)
            if m is None or m.action != CREATING or m.op is not None:
                continue
            try:
                with s.begin_nested():
                    zone = topology.zone(s, group.project, m.zone)
                    op = instances.insert(Call(s, group.project, user), zone, {"name": name}, source_template=m.template)
                    if ig is not None:
                        instance_groups.add_member(s, ig, store.find(s, group.project, "instances", m.scope, name))
            except ComputeError as exc:
                _retry_later(group, st, m, {"code": exc.op_code, "message": exc.message}, time.time(), no_room=True)
                errors = True
                continue
            m.op = op.name
        st.save()
        if errors:
            state.render(group, st)


def _retry_later(group: Resource, st: State, m: Member, error: dict[str, Any], now: float, *, no_room: bool) -> None:
    """Record why ``m``'s creation failed (its refusal, or its Operation's error) and when to try
    again, backing off by its attempts so far; a zone without room (``no_room``: its instance was
    not made) is avoided for a while (:func:`distribution.after_no_room`)."""
    tries = sum(1 for e in st.errors if e["instanceActionDetails"]["instance"].endswith("/" + m.name))
    st.record_error(m, error, now)
    m.retry_at = now + RETRY_DELAYS[min(tries, len(RETRY_DELAYS) - 1)]
    if no_room and error.get("code") == distribution.NO_ROOM:
        distribution.after_no_room(store.body_of(group), st, m, now)


def _delete(ctx: JobContext, uid: int, name: str) -> None:
    with ctx.write() as s:
        group = _group(s, uid)
        if group is None:
            return
        st = state.load(s, group)
        m = st.member(name)
        if m is None or m.issued:
            return
        _delete_instance(s, group, ctx.params.get("user", ""), m)
        m.issued = True
        st.save()


def _delete_instance(s: Session, group: Resource, user: str, m: Member) -> None:
    zone = topology.zone(s, group.project, m.zone)
    try:
        instances.delete(Call(s, group.project, user), zone, m.name)
    except NotFound:
        return


@job(RECONCILE)
def reconcile(ctx: JobContext) -> None:
    uid = ctx.params["uid"]
    with ctx.write() as s:
        live = _live(s, uid)
        if live is None:
            return
        group, st = live
        create, delete = _plan(s, group, st, ctx.params.get("user", ""))
        st.save()
        state.render(group, st)
    for i in range(0, len(create), CREATE_BATCH):
        _create(ctx, uid, create[i:i + CREATE_BATCH])
    for name in delete:
        _delete(ctx, uid, name)
    with ctx.write() as s:
        after = _group(s, uid)
        if after is None:
            return
        st = state.load(s, after)
        state.render(after, st)
        if not st.deleting and not state.stable(after):
            retry = [m.retry_at for m in st.members if m.action == CREATING and m.op is None]
            busy = any(m.op is not None or m.action == DELETING for m in st.members) or not retry
            delay = IN_FLIGHT_DELAY if busy else max(IN_FLIGHT_DELAY, min(retry) - time.time())
            enqueue(s, after, ctx.params.get("user", ""), delay, own_pk=ctx.op_pk)
        ctx.complete(s)


def _wait_until_gone(ctx: JobContext, project: str, names: list[tuple[str, str]]) -> None:
    """Wait (woken by the job engine, not by polling) for the instances' own delete jobs (``names``:
    (scope, name) of each). A name still there with no delete in flight means its delete failed:
    the group stays, to be deleted again. The engine's heartbeat keeps this job's lease while it waits."""
    paths = [path_of(project, scope, "instances", n) for scope, n in names]
    deadline = time.monotonic() + DELETE_TIMEOUT
    while True:
        with ctx.engine.factory() as s:
            # Deletes in flight first, then the rows: a delete that ends between the two reads is
            # seen as gone, never as a failure.
            # Unfinished as an IN of the statuses: a seek on (project, status), where ``!= 'DONE'``
            # walked every Operation the project ever had.
            pending = list(s.scalars(select(Operation.pk).where(
                Operation.project == project, Operation.target_link.in_(paths), Operation.status.in_(UNFINISHED))))
            if all(_instance_in(s, project, scope, n) is None for scope, n in names):
                return
        if not pending or time.monotonic() > deadline:
            raise OperationFailure("INTERNAL_ERROR", "The managed instances could not all be deleted.", 500)
        for pk in pending:
            ctx.engine.wait(pk, max(0.0, deadline - time.monotonic()))


@job(DELETE)
def delete_group(ctx: JobContext) -> None:
    """Delete the managed instances, wait for them to be gone, then drop the group, its state and
    its instanceGroups resource. Safe to resume: a delete issued already is not issued again."""
    uid = ctx.params["uid"]
    with ctx.write() as s:
        group = _group(s, uid)
        if group is None:
            return
        st = state.load(s, group)
        for m in st.members:
            if not m.issued:
                _delete_instance(s, group, ctx.params.get("user", ""), m)
                m.issued, m.action = True, DELETING
        st.save()
        state.render(group, st)
        names = [(m.scope, m.name) for m in st.members]
        project, scope = group.project, group.scope
    _wait_until_gone(ctx, project, names)
    with ctx.write() as s:
        group = _group(s, uid)
        if group is None:
            return
        ig = store.find_optional(s, project, instance_groups.COLLECTION, scope, group.name)
        if ig is not None:
            instance_groups.drop(s, ig)
        state.drop(s, state.load(s, group))
        s.delete(group)
        ctx.complete(s)

