"""Keeping routers in step with the database: :func:`request_sync`, and the job it queues.

Whoever changes what a router renders (instances starting, stopping or going, their tags and
access configs, firewall rules, forwarding rules, target pools, health checks) calls
:func:`request_sync` in the same transaction. The request is a PENDING system Operation
(``systemvms.syncNetwork``) on the network: calls while one is still PENDING join it, so any
number of calls in a transaction, or in many transactions before a worker gets to it, make one
job. The job renders from the database as it is when the job runs, so it sees every change
committed before it started, and a change committed after it started queues the next one.

Requests made for an instance's change name the instance (:func:`request_sync_for_instance`), and
the job renders the routers' main files (which read no instance) and the files of the instances
named, looked up by uid: a change costs the same in a network of ten instances or of 100,000. Every
instance is read (a scan) only when a router is new, when the network's context of the instances'
files changed (firewall rules, subnetworks, NATs), and every ``pushes.RECONCILE_SECONDS``.

A request made soon after the network's last sync started waits (its lease is a not-before
time): syncs of one network start at least ``SYNC_INTERVAL`` apart, and at least ``SYNC_SHARE``
times as long apart as the last one spent rendering and pushing (up to ``SYNC_MAX_SPACING``).
A sync has a fixed cost (a transaction, the main files, a push), so syncing once per change would
make a burst pay it per insert; this way a burst's changes coalesce into a few syncs, a router's
share of a worker stays bounded, and a lone change still syncs at once.

The job deploys a router in each region where the network has a starting or running instance
and none yet, destroys the routers of a network that is gone, and pushes each router the files
whose checksum changed.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import (
    BigInteger,
    ColumnElement,
    ScalarSelect,
    String,
    and_,
    bindparam,
    case,
    cast,
    exists,
    func,
    literal,
    literal_column,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session, SessionTransaction
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.util import identity_key

from core.db import attach_persistent, read_only
from core.jobs import JobContext, job
from core.jobs.handlers import LEASE_SECONDS
from core.links import parse_ref, path_of, url_of
from core.models import Operation, Resource, SystemVm, Zone
from core.prepared import Prepared, among, json_ids
from core.resources import store
from core.systemvms import guests, pushes, vms

SYNC_JOB = "systemvms.syncNetwork"
# Instances in these states make a region need its router (it serves their DHCP before they boot).
ACTIVE = ("STAGING", "RUNNING")
_REQUESTED = "gstack.systemvms.sync_requested"
SYNC_INTERVAL = 0.25  # seconds between the starts of two syncs of one network, at least
SYNC_SHARE = 10  # ... and at least this many times as long as the last one's renders took
SYNC_MAX_SPACING = 5.0  # ... but never more
# Recorded in the job's params: when it started (its first transaction) and how long it rendered.
STARTED_AT, RENDER_SECONDS = "started_at", "render_seconds"
INSTANCES = "instances"  # the instances whose change a request is (their files are rendered, no others')


def _canonical(project: str, network_url: str) -> tuple[str, str, str] | None:
    """(network's project, name, canonical URL) of any reference form."""
    ref = parse_ref(network_url, project=project, scope="global")
    if ref is None or ref.collection != "networks":
        return None
    return ref.project, ref.name, url_of(ref.project, "global", "networks", ref.name)


def _requested(session: Session, url: str) -> tuple[Operation, set[int]] | None:
    """The request this transaction made for the network already, if any, and the instances it names
    (savepoints are not trusted: they may roll back, so a nested transaction asks again)."""
    if session.in_nested_transaction():
        return None
    memo: tuple[SessionTransaction | None, dict[str, tuple[Operation, set[int]]]] | None = session.info.get(_REQUESTED)
    if memo is None or memo[0] is not session.get_transaction():
        return None
    return memo[1].get(url)


def _remember(session: Session, url: str, op: Operation) -> tuple[Operation, set[int]]:
    params = orjson.loads(op.params or "{}")
    entry = (op, set(params.get(INSTANCES, ())))
    if not session.in_nested_transaction():
        tx = session.get_transaction()
        memo: tuple[SessionTransaction | None, dict[str, tuple[Operation, set[int]]]] | None = session.info.get(_REQUESTED)
        if memo is None or memo[0] is not tx:
            memo = session.info[_REQUESTED] = (tx, {})
        memo[1][url] = entry
    return entry


def _name_instance(entry: tuple[Operation, set[int]], instance_uid: int | None) -> None:
    """Add the instance to the request: the job renders the files of the instances it names only."""
    op, uids = entry
    if instance_uid is None or instance_uid in uids:
        return
    uids.add(instance_uid)
    params = orjson.loads(op.params or "{}")
    params[INSTANCES] = sorted(uids)
    op.params = orjson.dumps(params).decode()


def _pending_of(target: Any) -> ScalarSelect[int]:
    """The newest sync request of the network ``target`` (its uid) that no worker took, row-locked."""
    return select(Operation.pk).where(
        Operation.job == SYNC_JOB, Operation.target_id == target, Operation.status == "PENDING",
        Operation.lease_owner.is_(None)).order_by(Operation.pk.desc()).limit(1).with_for_update().scalar_subquery()


# (bind names no column of operations has: an UPDATE of operations reads the network by them)
_NETWORK = (Resource.project == bindparam("net_project"), Resource.collection == "networks",
            Resource.scope == "global", Resource.name == bindparam("net_name"))


def _listing(dialect: str) -> ColumnElement[str]:
    """The params of a pending request with the instance ``instance`` added to those it names (unless
    named already), computed by the database: the JSON functions of each."""
    params, uid = Operation.params, bindparam("instance", type_=BigInteger)
    if dialect == "postgresql":
        doc = cast(params, JSONB)
        named = doc.op("->")(literal(INSTANCES))
        added = func.jsonb_set(doc, literal_column(f"'{{{INSTANCES}}}'"),
                               func.coalesce(named, cast(literal("[]"), JSONB)).op("||")(func.to_jsonb(uid)))
        return case((named.op("@>")(func.to_jsonb(uid)), params), else_=cast(added, String))
    path = f"$.{INSTANCES}"
    among = func.json_extract(params, path)
    listed = exists(select(literal(1)).select_from(func.json_each(params, path).table_valued("value"))
                    .where(literal_column("value") == uid))
    appended = func.json_set(params, path, func.json(case((among.is_(None), func.json_array(uid)),
                                                          else_=func.json_insert(among, "$[#]", uid))))
    return case((listed, params), else_=appended)


@functools.cache
def _join_statement(dialect: str, by_name: bool, naming: bool) -> Prepared:
    """Join the network's pending request, if any (it starts over at progress 0, naming the
    instance when ``naming``): one UPDATE that finds it (the network named by project and name when
    ``by_name``, else by its uid ``target``), changes it and returns it, its row locked until the
    caller's transaction ends, so no worker claims it before the caller commits (a claim made first
    turns it RUNNING: the UPDATE re-checks that and changes nothing, and a new request is queued)."""
    target = select(Resource.uid).where(*_NETWORK).scalar_subquery() if by_name else bindparam("target")
    values: dict[str, Any] = {"progress": 0}
    if naming:
        values["params"] = _listing(dialect)
    return Prepared(update(Operation).where(Operation.pk == _pending_of(target), Operation.status == "PENDING",
                                            Operation.lease_owner.is_(None))
                    .values(values).returning(Operation.pk, Operation.params))


def _joined(session: Session, url: str, instance_uid: int | None, **where: Any) -> bool:
    """:func:`_join_statement`; remembers the request joined."""
    stmt = _join_statement(session.get_bind().dialect.name, "target" not in where, instance_uid is not None)
    found = stmt.in_session(session, {**where, "instance": instance_uid} if instance_uid is not None else where)
    if not found:
        return False
    pending = found[0]
    _remember(session, url, _attached(session, pending[0], pending[1]))
    return True


def _attached(session: Session, pk: int, params: str) -> Operation:
    """The joined request as an object of the session, not read again: later requests of the
    transaction change its params (:func:`_name_instance`), written at flush. Its other columns are
    expired (read if asked for). Through the ORM, the UPDATE ... RETURNING of the whole row cost
    about four times the Core statement (~1 ms of a batch's ~20 ms)."""
    known = session.identity_map.get(identity_key(Operation, pk))
    if isinstance(known, Operation):
        set_committed_value(known, "params", params)
        return known
    op = Operation(pk=pk, params=params)
    attach_persistent(session, op)
    return op


@functools.cache
def _network_and_last_sync() -> Prepared:
    """The network's uid and the params of its last sync that started (:func:`_not_before` reads
    its timing): no row when the network is gone. Built once (its build costs CPU)."""
    return Prepared(select(Resource.uid, _last_sync_params(Resource.uid)).where(*_NETWORK))


def request_sync(session: Session, project: str, network_url: str, instance_uid: int | None = None) -> None:
    """Record, in the caller's transaction, that the network's routers must be rendered again (of
    the instances' files, ``instance_uid``'s: the instance whose change it is, if any).

    Cheap and idempotent, per network and transaction: a request joins the pending one in one
    statement (:func:`_join_statement`: the network's uid, the pending request and the change of
    its row in one UPDATE); when none is pending, one read of the network's uid and of the last
    sync's timing and one INSERT whose row holds all of the request: its instance and its
    not-before time (and, on PostgreSQL, announces it to the workers). Later requests of the same
    transaction only change the request's row (written at flush).
    """
    found = _canonical(project, network_url)
    if found is None:
        return
    net_project, name, url = found
    entry = _requested(session, url)
    if entry is not None:
        _name_instance(entry, instance_uid)
        return
    if _joined(session, url, instance_uid, net_project=net_project, net_name=name):
        return
    rows = _network_and_last_sync().in_session(session, {"net_project": net_project, "net_name": name})
    if rows:
        target, last = rows[0]
    else:  # deleted in this transaction: its routers must go
        target = session.scalar(select(SystemVm.network_uid).where(SystemVm.network_url == url).limit(1))
        if target is None or _joined(session, url, instance_uid, target=target):
            return
        last = _last_sync(session, target)
    vms.ensure_system_project(session)
    params: dict[str, Any] = {"project": net_project, "network": url, "network_uid": target}
    if instance_uid is not None:
        params[INSTANCES] = [instance_uid]
    op = vms.enqueue(session, job=SYNC_JOB, op_type="systemvms.syncNetwork", scope="global", target_id=target,
                     target_path=path_of(net_project, "global", "networks", name), params=params,
                     not_before=_not_before(last))
    _remember(session, url, op)


def _last_sync_params(target: Any) -> ScalarSelect[Any]:
    """The params of the last sync of the network ``target`` (its uid, or a column) that started."""
    return (select(Operation.params).where(Operation.job == SYNC_JOB, Operation.target_id == target,
                                           Operation.status != "PENDING")
            .order_by(Operation.pk.desc()).limit(1).scalar_subquery())


def _last_sync(session: Session, target: int) -> str | None:
    """The params of the last sync of the network ``target`` that started (None: it never synced)."""
    return session.scalar(select(_last_sync_params(target)))


def _not_before(last: str | None) -> float | None:
    """When a new sync of the network may start (see the module's docstring), from the params of
    the last one that started (None: it never synced); None: at once."""
    last_params: dict[str, Any] = orjson.loads(last) if last else {}
    started = last_params.get(STARTED_AT)
    if started is None:
        return None
    took = last_params.get(RENDER_SECONDS, 0.0)
    not_before = started + max(SYNC_INTERVAL, min(SYNC_SHARE * took, SYNC_MAX_SPACING))
    return not_before if not_before > time.time() else None


def pending_sync(session: Session, project: str, network_url: str) -> Operation | None:
    """The network's sync request that no worker has taken yet, if any."""
    found = _canonical(project, network_url)
    network = store.find_optional(session, found[0], "networks", "global", found[1]) if found else None
    if network is None:
        return None
    return session.scalar(select(Operation).where(Operation.job == SYNC_JOB, Operation.target_id == network.uid,
                                                  Operation.status == "PENDING").order_by(Operation.pk.desc()).limit(1))


def request_sync_for_instance(session: Session, instance: Resource) -> None:
    """:func:`request_sync` for each network the instance has a NIC on."""
    for nic in store.body_of(instance).get("networkInterfaces", []):
        if nic.get("network"):
            request_sync(session, instance.project, nic["network"], instance.uid)


# -- the job -------------------------------------------------------------------------------------


def _active_zones(rows: Iterable[tuple[str | None, str, str, str]], url: str) -> dict[str, str]:
    """Region -> the zone a new router goes to (the first zone, by name, with an active instance
    among ``rows``: (region, scope, body, status) of instances)."""
    zones: dict[str, str] = {}
    for region, scope, body, status in rows:
        nics = orjson.loads(body).get("networkInterfaces", []) if status in ACTIVE else ()
        if region is not None and any(n.get("network") == url for n in nics):  # (an instance always has a region)
            zone = scope.split("/", 1)[1]
            zones[region] = min(zones.get(region, zone), zone)
    return zones


# The network by name, or the instances by uid (a uid is unique across collections: which rows are
# instances is told apart after). One statement of two index seeks: with ``collection =
# 'instances'`` in its branch, SQLite (which has no statistics to go on) took the collection index
# for a list of a dozen uids, reading every instance (140 ms at 100,000 instances, once per sync).
# Their rows are read-only copies (core.db.read_only): the sync changes neither.
NETWORK_OR_INSTANCES = Prepared(select(*Resource.__table__.columns).where(or_(and_(*_NETWORK), among(Resource.uid, "uids"))))


def _network_and_instances(session: Session, project: str, name: str, url: str,
                           instances: list[int] | None) -> tuple[Resource | None, list[Resource] | None, dict[str, str]]:
    """(the network's row, the request's instances' rows: None when it names none, the zones of
    :func:`_active_zones`). The network and the instances named are point reads of one table, so
    they are one statement (:data:`NETWORK_OR_INSTANCES`); without instances named the network's
    instances are read (:func:`core.systemvms.guests.network_instances`), for their zones only."""
    if instances is None:
        network = store.find_optional(session, project, "networks", "global", name)
        on_network = guests.network_instances(session, url)
        return network, None, _active_zones(((r.region, r.scope, r.body, r.status) for r in on_network), url)
    network = None
    rows: list[Resource] = []
    for found in NETWORK_OR_INSTANCES.in_session(session, {"net_project": project, "net_name": name,
                                                           "uids": json_ids(instances)}):
        row = read_only(Resource, found)
        if row.collection == "instances":
            rows.append(row)
        elif row.collection == "networks" and (row.project, row.name) == (project, name):
            network = row
    return network, rows, _active_zones(((r.region, r.scope, r.body, r.status) for r in rows), url)


@dataclass
class Plan:
    """What a sync does: routers to start, to push and to destroy; the routers as read, locked, by
    uid; the network's row (None when it is gone) and the rows of the request's instances (None: it
    names none), read in the plan's transaction."""

    to_start: list[int]
    to_push: list[int]
    to_destroy: list[int]
    routers: dict[int, vms.Loaded]
    network: Resource | None
    instances: list[Resource] | None


def plan(session: Session, params: dict[str, Any]) -> Plan:
    """The sync's :class:`Plan`, creating the rows of new routers."""
    url, network_uid = params["network"], params["network_uid"]
    routers = vms.routers_of(session, network_uid)
    uids = [r.vm.uid for r in routers]
    ref = parse_ref(url, project=params["project"])
    network, rows, zones = (_network_and_instances(session, ref.project, ref.name, url, params.get(INSTANCES))
                            if ref is not None else (None, None, {}))
    if ref is None or network is None or network.uid != network_uid:
        return Plan([], [], uids, {}, None, None)
    have = {r.vm.region for r in routers}
    to_start = [r.vm.uid for r in routers if r.vm.state != vms.RUNNING and not vms.unfinished_job(
        session, r.vm, ("systemvms.deploy", "systemvms.restart", "systemvms.destroy"))]
    for region, zone_name in sorted(zones.items()):
        if region in have:
            continue
        zone = session.scalars(select(Zone).where(Zone.name == zone_name)).one()  # an active instance's
        vm = vms.create(session, vms.ROUTER, zone, network_uid=network_uid, network_url=url, project=ref.project)
        to_start.append(vm.uid)
        uids.append(vm.uid)
    return Plan(to_start, uids, [], {r.vm.uid: r for r in routers}, network, rows)


def _sync(ctx: JobContext) -> None:
    """Plan, start and destroy routers, push each router what changed, end the Operation.

    When no router is to start or go (a change in a network whose routers run: the common case),
    the first router's render joins the plan's transaction, and what the routers were given is
    recorded in the transaction that ends the Operation: three transactions instead of five. That
    is safe because every step is idempotent and the job is one unit of retry: a process killed
    before the last commit leaves the Operation RUNNING under a lease that lapses, and the next
    attempt renders and pushes again (a router given files that were not recorded as held is
    given them again, which changes nothing on it).
    """
    instances = ctx.params.get(INSTANCES, ())
    first: pushes.Push | None = None
    with ctx.write() as s:
        p = plan(s, ctx.params)
        to_start, to_push, to_destroy = p.to_start, p.to_push, p.to_destroy
        _record(s, ctx, STARTED_AT, time.time(), progress=10)
        started = time.perf_counter()
        joined = bool(to_push) and not to_start and not to_destroy
        if joined:  # the plan read the router's rows and the instances' in this transaction: not again
            first = pushes.prepare(s, ctx, to_push[0], instances=instances, network=p.network,
                                   loaded=p.routers.get(to_push[0]), rows=p.instances)
    for uid in to_start:
        try:
            vms.start(ctx, uid)
        except Exception as exc:  # one region without room must not keep the others' configuration stale
            ctx.warn("SYSTEM_VM_NOT_STARTED", f"router {uid}: {exc}")
    for uid in to_destroy:
        vms.destroy(ctx, uid)
    if not joined:
        started = time.perf_counter()
    sent = [first] if first is not None and pushes.send(ctx, first) else []
    for uid in to_push[1:] if joined else to_push:
        with ctx.write() as s:
            prepared = pushes.prepare(s, ctx, uid, instances=instances)
        if prepared is not None and pushes.send(ctx, prepared):
            sent.append(prepared)
    with ctx.write() as s:
        for each in sent:
            pushes.record(s, each)
        ctx.params[RENDER_SECONDS] = round(time.perf_counter() - started, 4)
        ctx.complete(s, params=ctx.params)


_RECORD = Prepared(update(Operation).where(Operation.pk == bindparam("pk")).values(
    params=bindparam("params"), lease_expiry=bindparam("expiry"),
    progress=case((Operation.progress < bindparam("progress"), bindparam("progress")), else_=Operation.progress)))


def _record(session: Session, ctx: JobContext, key: str, value: float, progress: int) -> None:
    """Record ``key`` in the job's params and its progress (never lowered; a retried attempt may be
    further on), extending its lease: one UPDATE, built once (no object of the job's session is
    its Operation)."""
    ctx.params[key] = value
    _RECORD.in_session(session, {"pk": ctx.op_pk, "params": orjson.dumps(ctx.params).decode(),
                                 "expiry": time.time() + LEASE_SECONDS, "progress": progress})


job(SYNC_JOB)(_sync)
