"""Keeping routers in step with the database: :func:`request_sync`, and the job it queues.

Whoever changes what a router renders (instances starting, stopping or going, their tags and
access configs, firewall rules, forwarding rules, target pools, health checks) calls
:func:`request_sync` in the same transaction. The request is a PENDING system Operation
(``systemvms.syncNetwork``) on the network: calls while one is still PENDING join it, so any
number of calls in a transaction, or in many transactions before a worker gets to it, make one
job. The job renders from the database as it is when the job runs, so it sees every change
committed before it started, and a change committed after it started queues the next one.

A request made soon after the network's last sync started waits (its lease is a not-before
time): syncs of one network start at least ``SYNC_INTERVAL`` apart, and at least ``SYNC_SHARE``
times as long apart as the last one spent rendering and pushing (up to ``SYNC_MAX_SPACING``).
Each render reads every instance of the network, so syncing once per change would make a burst
of N inserts cost O(N²), and a fixed spacing would still let a large network's renders take a
worker over; this way a burst costs a few renders, a router's share of a worker stays bounded,
and a lone change still syncs at once.

The job deploys a router in each region where the network has a starting or running instance
and none yet, destroys the routers of a network that is gone, and pushes each router the files
whose checksum changed.
"""

from __future__ import annotations

import time
from functools import lru_cache
from typing import Any, cast

import orjson
from sqlalchemy import CursorResult, bindparam, select, update
from sqlalchemy.orm import Session, SessionTransaction

from core.jobs import JobContext, job
from core.links import parse_ref, path_of, url_of
from core.models import Operation, Resource, SystemVm, Zone
from core.resources import store
from core.systemvms import router, vms

SYNC_JOB = "systemvms.syncNetwork"
# Instances in these states make a region need its router (it serves their DHCP before they boot).
ACTIVE = ("STAGING", "RUNNING")
_REQUESTED = "gstack.systemvms.sync_requested"
SYNC_INTERVAL = 0.25  # seconds between the starts of two syncs of one network, at least
SYNC_SHARE = 10  # ... and at least this many times as long as the last one's renders took
SYNC_MAX_SPACING = 5.0  # ... but never more
# Recorded in the job's params: when it started (its first transaction) and how long it rendered.
STARTED_AT, RENDER_SECONDS = "started_at", "render_seconds"


def _canonical(project: str, network_url: str) -> tuple[str, str, str] | None:
    """(network's project, name, canonical URL) of any reference form."""
    ref = parse_ref(network_url, project=project, scope="global")
    if ref is None or ref.collection != "networks":
        return None
    return ref.project, ref.name, url_of(ref.project, "global", "networks", ref.name)


def _already_requested(session: Session, url: str) -> bool:
    """Whether this transaction asked already (savepoints are not trusted: they may roll back)."""
    if session.in_nested_transaction():
        return False
    tx = session.get_transaction()
    memo: tuple[SessionTransaction | None, set[str]] | None = session.info.get(_REQUESTED)
    if memo is None or memo[0] is not tx:
        memo = session.info[_REQUESTED] = (tx, set())
    if url in memo[1]:
        return True
    memo[1].add(url)
    return False


_TOUCH_PENDING = update(Operation).where(
    Operation.job == SYNC_JOB, Operation.target_id == bindparam("target"), Operation.status == "PENDING",
    Operation.lease_owner.is_(None)).values(progress=0)


def request_sync(session: Session, project: str, network_url: str) -> None:
    """Record, in the caller's transaction, that the network's routers must be rendered again.

    Cheap and idempotent: one UPDATE (and one INSERT when no request is pending) per network per
    transaction. A PENDING request is touched rather than duplicated; the touch takes its row lock
    on PostgreSQL, so a worker cannot claim it before this transaction commits (a claim made first
    turns it RUNNING, and then a new request is queued).
    """
    found = _canonical(project, network_url)
    if found is None:
        return
    net_project, name, url = found
    if _already_requested(session, url):
        return
    network = store.find_optional(session, net_project, "networks", "global", name)
    if network is not None:
        target = network.uid
    else:  # deleted in this transaction: its routers must go
        target = session.scalar(select(SystemVm.network_uid).where(SystemVm.network_url == url).limit(1))
        if target is None:
            return
    touched = cast(CursorResult[Any], session.execute(_TOUCH_PENDING, {"target": target})).rowcount  # an UPDATE's
    if touched:
        return
    vms.ensure_system_project(session)
    op = vms.enqueue(session, job=SYNC_JOB, op_type="systemvms.syncNetwork", scope="global", target_id=target,
                     target_path=path_of(net_project, "global", "networks", name),
                     params={"project": net_project, "network": url, "network_uid": target})
    last = session.scalar(select(Operation.params).where(
        Operation.job == SYNC_JOB, Operation.target_id == target, Operation.pk != op.pk,
        Operation.status != "PENDING").order_by(Operation.pk.desc()).limit(1))
    last_params = orjson.loads(last) if last else {}
    started = last_params.get(STARTED_AT)
    if started is not None:
        took = last_params.get(RENDER_SECONDS, 0.0)
        not_before = started + max(SYNC_INTERVAL, min(SYNC_SHARE * took, SYNC_MAX_SPACING))
        if not_before > op.insert_time:
            op.lease_expiry = not_before  # see the module's docstring


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
            request_sync(session, instance.project, nic["network"])


# -- the job -------------------------------------------------------------------------------------


def _active_zones(session: Session, url: str) -> dict[str, str]:
    """Region -> the zone a new router goes to (the first zone, by name, with an active instance)."""
    zones: dict[str, str] = {}
    rows = session.execute(select(Resource.region, Resource.scope, Resource.body).where(
        Resource.collection == "instances", Resource.status.in_(ACTIVE), Resource.body.contains(url)))
    for region, scope, body in rows:
        if region is not None and url in _networks_of(body):  # (an instance always has a region)
            zone = scope.split("/", 1)[1]
            zones[region] = min(zones.get(region, zone), zone)
    return zones


@lru_cache(maxsize=1 << 16)
def _networks_of(body_json: str) -> frozenset[str]:
    """The networks an instance (its stored body) has NICs on; cached, as every sync asks it of
    every active instance of the network."""
    return frozenset(n.get("network") for n in orjson.loads(body_json).get("networkInterfaces", []))


def plan(session: Session, params: dict[str, Any]) -> tuple[list[int], list[int], list[int]]:
    """(routers to start, routers to push, routers to destroy), creating the rows of new routers."""
    url, network_uid = params["network"], params["network_uid"]
    routers = list(session.scalars(select(SystemVm).where(SystemVm.network_uid == network_uid,
                                                          SystemVm.kind == vms.ROUTER).order_by(SystemVm.name)))
    ref = parse_ref(url, project=params["project"])
    network = store.find_optional(session, ref.project, "networks", "global", ref.name) if ref else None
    if ref is None or network is None or network.uid != network_uid:
        return [], [], [r.uid for r in routers]
    have = {r.region for r in routers}
    to_start = [r.uid for r in routers if r.state != vms.RUNNING and not vms.unfinished_job(
        session, r, ("systemvms.deploy", "systemvms.restart", "systemvms.destroy"))]
    for region, zone_name in sorted(_active_zones(session, url).items()):
        if region in have:
            continue
        zone = session.scalars(select(Zone).where(Zone.name == zone_name)).one()  # an active instance's
        vm = vms.create(session, vms.ROUTER, zone, network_uid=network_uid, network_url=url, project=ref.project)
        to_start.append(vm.uid)
        routers.append(vm)
    return to_start, [r.uid for r in routers], []


def _sync(ctx: JobContext) -> None:
    with ctx.write() as s:
        to_start, to_push, to_destroy = plan(s, ctx.params)
        ctx.progress(10, session=s)
        _record(s, ctx, STARTED_AT, time.time())
    for uid in to_start:
        try:
            vms.start(ctx, uid)
        except Exception as exc:  # one region without room must not keep the others' configuration stale
            ctx.warn("SYSTEM_VM_NOT_STARTED", f"router {uid}: {exc}")
    for uid in to_destroy:
        vms.destroy(ctx, uid)
    started = time.perf_counter()
    for uid in to_push:
        router.push(ctx, uid)
    with ctx.write() as s:
        _record(s, ctx, RENDER_SECONDS, round(time.perf_counter() - started, 4))
        ctx.complete(s)


def _record(session: Session, ctx: JobContext, key: str, value: float) -> None:
    ctx.params[key] = value
    session.execute(update(Operation).where(Operation.pk == ctx.op_pk)
                    .values(params=orjson.dumps(ctx.params).decode()))


job(SYNC_JOB)(_sync)
