"""The instance jobs: what the hypervisor must do for a use case (run, batch run, power actions,
delete, disk hotplug), each ending in the status the state table gives for what it reports.

A job reads and locks its row in a short write transaction, calls the driver outside any
transaction, and records the outcome in another; the row may have changed (or gone) meanwhile.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy.orm import Session

from core import ipam, planner
from core.db import loaded
from core.errors import OperationFailure, zone_exhausted
from core.hypervisors import DiskSpec, DriverError, HypervisorDriver, VmSpec
from core.hypervisors.base import HostRef
from core.ids import rfc3339
from core.jobs import JobContext, job
from core.links import url_of
from core.models import Host, Resource, StoragePool
from core.prepared import json_ids, write_back
from core.resources import store
from core.services import addresses, disks, guest_attributes, instance_groups
from core.services.instances import states
from core.services.instances.rows import (
    BY_UIDS_LOCKED,
    HOSTS,
    attached_rows,
    driver_for,
    host_ref,
    instance_url,
    last_driver,
    load,
    sync_routers,
    vm_spec,
)
from core.services.network_endpoint_groups import forget_instance as leave_endpoint_groups

Staged = tuple[JobContext, HypervisorDriver, HostRef, VmSpec]
_STAGED_ON, _PLATFORM = "staged_on", "cpu_platform"  # scratch: the host staging chose, and its CPU platform
# The columns staging and the end of a batch change, in an instance's row and its disks'
# (core.prepared.write_back: one statement for all; a column left out would still be written, by the flush).
_STAGED, _RUNNING = ("status", "body", "host_id", "pool_id"), ("status", "body", "last_host_id")


def _stage(ctx: JobContext, s: Session, tried: set[int]) -> tuple[HypervisorDriver, HostRef, VmSpec] | None:
    """Place the VM (if it is not) and mark it STAGING, in the caller's transaction: (driver,
    host, spec) to start it with, or None when it is gone or running already."""
    res = load(s, ctx.params["uid"])
    if res is None:
        return None
    staging = states.event(res, "stage")
    if staging.is_noop:
        return None
    if res.host_id is None:
        host = planner.place_vm(s, ctx.params["zone_id"], res.vcpus, res.memory_mb, frozenset(tried),
                                prefer=res.last_host_id, min_platform=store.body_of(res).get("minCpuPlatform"))
        if host is None:
            raise zone_exhausted(res.project, res.scope.split("/", 1)[1])
        res.host_id = host.id
    disks.place_disks(s, ctx.params["zone_id"], ctx.params.get("created_disks", []), res.project,
                      res.scope.split("/", 1)[1])
    states.take(res, staging)
    sync_routers(s, res)  # the first instance on a network deploys its virtual router
    driver, ref = driver_for(s, ctx.drivers, res.host_id)
    spec = vm_spec(s, res)
    ctx.progress(40, session=s)
    return driver, ref, spec


def _unplace(ctx: JobContext, s: Session) -> None:
    """Its host failed to start the VM: it is placed again, elsewhere."""
    res = load(s, ctx.params["uid"])
    if res is not None:
        res.host_id = None


def _run_vm(ctx: JobContext) -> None:
    """Place the VM (if it is not) and start it on its host, trying other hosts when a spawn fails."""
    tried: set[int] = set(ctx.scratch.get("tried", ()))
    while True:
        with ctx.write() as s:
            staged = _stage(ctx, s, tried)
        if staged is None:
            return
        driver, ref, spec = staged
        try:
            if ctx.params.get("resume", False):
                driver.resume(ref, spec)
            else:
                driver.spawn(ref, spec)
        except DriverError as exc:
            tried.add(ref.id)
            with ctx.write() as s:
                _unplace(ctx, s)
            if not exc.retry_elsewhere:
                raise exc.as_failure() from exc
            continue
        break
    with ctx.write() as s:
        _mark_running([ctx], s)


def _run_vms(ctxs: list[JobContext]) -> None:
    """:func:`_run_vm` for a burst of new VMs: one transaction places and stages them all, each
    driver spawns its share at once, and one transaction marks them all RUNNING. A VM this cannot
    start (no room, a failed spawn) is left to :func:`_run_vm`, which retries or fails it alone."""
    with ctxs[0].write() as s:
        staged = _stage_batch([c for c in ctxs if not c.params.get("resume")], s)
    by_driver: dict[int, list[Staged]] = {}
    for item in staged:
        by_driver.setdefault(id(item[1]), []).append(item)
    started, failed = [], []
    for items in by_driver.values():
        errors = items[0][1].spawn_many([(ref, spec) for _, _, ref, spec in items])
        for (ctx, _, ref, _), error in zip(items, errors, strict=True):
            if error is None:
                started.append(ctx)
            else:
                ctx.scratch["tried"] = [ref.id]
                failed.append(ctx)
    with ctxs[0].write() as s:
        for ctx in failed:
            _unplace(ctx, s)
        _mark_running(started, s)


def _stage_batch(ctxs: list[JobContext], s: Session) -> list[Staged]:
    """:func:`_stage` for many new VMs at once, with one query per kind of row: their rows, their new
    disks, each zone's capacity (read once, see :class:`~core.planner.ZoneCapacity`), one progress
    update and one router sync request per network. A VM that is placed already, or that finds
    no room, is left out: its single run places it, or fails it with the usual error."""
    rows, created = _locked_with_disks(s, ctxs)
    new_disks = {url_of(d.project, d.scope, "disks", d.name): d for d in created}
    disk_by_uid = {d.uid: d for d in created}
    capacity: dict[int, planner.ZoneCapacity] = {}
    placing_disks = bool(created)  # the pools are read with the hosts (one read of both)
    staged: list[Staged] = []
    changed: list[Resource] = []  # the VMs staged and the disks placed with them
    for ctx in ctxs:
        res = rows.get(ctx.params["uid"])
        if res is None or not states.may(res, "stageNew") or res.host_id is not None:
            continue
        zone = capacity.get(ctx.params["zone_id"])
        if zone is None:
            zone = capacity[ctx.params["zone_id"]] = planner.ZoneCapacity(s, ctx.params["zone_id"], disks=placing_disks)
        own = [disk_by_uid[uid] for uid in ctx.params.get("created_disks", ())
               if uid in disk_by_uid and disk_by_uid[uid].pool_id is None]
        host = _place_with_disks(zone, res, own)
        if host is None:
            continue
        states.take(res, states.event(res, "stageNew"))
        _staged_on(ctx, host)
        driver: HypervisorDriver = ctx.drivers.get(zone.cluster_of(host).hypervisor)
        staged.append((ctx, driver, host_ref(host), vm_spec(s, res, new_disks)))
        changed += [res, *own]
    write_back(s, changed, _STAGED)
    JobContext.progress_all(s, [item[0] for item in staged], 40)
    for ctx, *_ in staged:  # one request per network: request_sync remembers it within the transaction
        sync_routers(s, rows[ctx.params["uid"]])
    return staged


def _locked_with_disks(s: Session, ctxs: list[JobContext]) -> tuple[dict[int, Resource], list[Resource]]:
    """The jobs' instance rows (by uid) and the disks their inserts created, in one read that locks
    them all: the staging and the end of a batch both change both (one round trip instead of two)."""
    uids = {c.params["uid"] for c in ctxs}
    found = loaded(s, Resource, BY_UIDS_LOCKED,
                   {"uids": json_ids([*uids, *(d for c in ctxs for d in c.params.get("created_disks", ()))])})
    return ({r.uid: r for r in found if r.uid in uids and r.collection == "instances"},
            [r for r in found if r.collection == "disks"])


def _place_with_disks(zone: planner.ZoneCapacity, res: Resource, new_disks: list[Resource]) -> Host | None:
    """A host for the VM and a pool for each of its new disks, or nothing at all (None)."""
    host = zone.place_vm(res.vcpus, res.memory_mb, min_platform=store.body_of(res).get("minCpuPlatform"))
    if host is None:
        return None
    pools: list[StoragePool] = []
    for d in new_disks:
        pool = zone.place_disk(d.size_gb)
        if pool is None:
            zone.unplace_vm(host, res.vcpus, res.memory_mb)
            for placed, disk in zip(pools, new_disks, strict=False):
                zone.unplace_disk(placed, disk.size_gb)
            return None
        pools.append(pool)
    res.host_id = host.id
    for pool, d in zip(pools, new_disks, strict=True):
        d.pool_id = pool.id
    return host


def _mark_running(ctxs: list[JobContext], s: Session) -> None:
    """The VMs run: RUNNING, their new disks READY, and their Operations DONE in the same
    transaction; one query for each kind of row, however many VMs. A VM's CPU platform is its
    host's, as staging read it (``scratch``); the hosts are read only for VMs staged elsewhere."""
    rows, created = _locked_with_disks(s, ctxs)
    platforms: dict[int | None, str] = {}
    for ctx in ctxs:
        res = rows.get(ctx.params["uid"])
        if res is not None and ctx.scratch.get(_STAGED_ON) == res.host_id:
            platforms[res.host_id] = ctx.scratch[_PLATFORM]
    unknown = list({r.host_id for r in rows.values()} - set(platforms))
    if unknown:
        platforms.update({h.id: h.cpu_platform for h in s.scalars(HOSTS, {"ids": unknown})})
    for d in created:
        disks.mark_ready(d)
    now = rfc3339(time.time())
    done = []
    for ctx in ctxs:
        res = rows.get(ctx.params["uid"])
        if res is None:  # deleted meanwhile: its own run ends the Operation
            continue
        states.take(res, states.event(res, "running"), lastStartTimestamp=now,
                    cpuPlatform=platforms[res.host_id])
        res.last_host_id = res.host_id
        done.append(ctx)
    write_back(s, [*rows.values(), *created], _RUNNING)
    JobContext.complete_all(s, done)


def _staged_on(ctx: JobContext, host: Host) -> None:
    """Remember the host the VM was staged on, and its CPU platform, for :func:`_mark_running`."""
    ctx.scratch[_STAGED_ON], ctx.scratch[_PLATFORM] = host.id, host.cpu_platform


def _run_failed(ctx: JobContext, failure: OperationFailure) -> None:
    """Undo a failed insert completely; a failed start leaves the instance TERMINATED (a failed
    resume SUSPENDED), holding nothing."""
    with ctx.write() as s:
        res = load(s, ctx.params["uid"])
        if res is None:
            return
        found = last_driver(s, ctx.drivers, res)
    if found is not None and ctx.params.get("delete_on_fail"):
        found[0].destroy(found[1], ctx.params["uid"])
    with ctx.write() as s:
        res = load(s, ctx.params["uid"])
        if res is None:
            return
        if ctx.params.get("delete_on_fail"):
            _undo_insert(ctx, s, res)
        else:
            res.host_id = None
            states.take(res, states.event(res, "resumeFailed" if ctx.params.get("resume") else "startFailed"))


def _undo_insert(ctx: JobContext, s: Session, res: Resource) -> None:
    """The instance never ran: its new disks go, the disks it was given are left as they were."""
    url = instance_url(res)
    for d in attached_rows(s, res):
        if d.uid in ctx.params.get("created_disks", []):
            s.delete(d)
        elif url in store.body_of(d).get("users", []):
            disks.remove_user(d, url)
    _forget(s, res)


def _forget(s: Session, res: Resource) -> None:
    """Remove the instance row with the addresses it holds and what its guest wrote, and re-render
    its networks' routers."""
    ipam.release_owner(s, res.uid)
    guest_attributes.forget_instance(s, res.uid)
    addresses.release_instance(s, res)
    sync_routers(s, res)
    instance_groups.forget_instance(s, res)
    leave_endpoint_groups(s, res)
    s.delete(res)


# A lone insert starts at once; the inserts of a burst that arrive while a batch of them runs gather
# behind it and start together in the next batch.
job(states.RUN, on_fail=_run_failed, batch=_run_vms, coalesce=True)(_run_vm)


def _power_job(action: str, reported: str, release: bool, stamp: str | None) -> Callable[[JobContext], None]:
    """A job asking the VM's hypervisor for one power action, then recording the status the table
    gives for ``reported`` (nothing to do when the VM has that status already).

    Powering off a VM whose host is down succeeds: the VM is not running anywhere.
    """

    def run(ctx: JobContext) -> None:
        with ctx.write() as s:
            res = load(s, ctx.params["uid"])
            if res is None:
                return
            outcome = states.event(res, reported)
            if outcome.is_noop:
                return
            found = last_driver(s, ctx.drivers, res)
        if found is not None:
            try:
                getattr(found[0], action)(found[1], ctx.params["uid"])
            except DriverError as exc:
                if action != "power_off":
                    raise exc.as_failure() from exc
        with ctx.write() as s:
            res = load(s, ctx.params["uid"])
            if res is None:
                return
            fields = {stamp: rfc3339(time.time())} if stamp else {}
            if release:
                res.host_id = None
            states.take(res, outcome, **fields)
            ctx.complete(s)

    return run


job(states.STOP)(_power_job("power_off", "stopped", True, "lastStopTimestamp"))
job(states.SUSPEND)(_power_job("suspend", "suspended", True, "lastSuspendedTimestamp"))
job(states.RESET)(_power_job("reboot", "rebooted", False, None))


def _delete_vm(ctx: JobContext) -> None:
    with ctx.write() as s:
        res = load(s, ctx.params["uid"])
        if res is None:
            return
        found = last_driver(s, ctx.drivers, res)
    if found is not None:
        found[0].destroy(found[1], ctx.params["uid"])
    with ctx.write() as s:
        res = load(s, ctx.params["uid"])
        if res is None:
            return
        _release_disks(s, res)
        _forget(s, res)
        ctx.complete(s)


def _release_disks(s: Session, res: Resource) -> None:
    """The deleted instance's autoDelete disks go with it; the others are kept, detached (an autoDelete
    disk still attached elsewhere, READ_ONLY, is kept as well)."""
    url = instance_url(res)
    auto = {d["source"] for d in store.body_of(res).get("disks", []) if d.get("autoDelete")}
    for d in attached_rows(s, res):
        users = store.body_of(d).get("users", [])
        if url not in users:
            continue
        if url_of(d.project, d.scope, "disks", d.name) in auto and users == [url]:
            s.delete(d)
        else:
            disks.remove_user(d, url)


job(states.DELETE)(_delete_vm)


def _disk_hotplug(ctx: JobContext) -> None:
    with ctx.write() as s:
        res = load(s, ctx.params["uid"])
        disk = load(s, ctx.params["disk_uid"])
        if res is None or disk is None or res.host_id is None:
            return
        driver, ref = driver_for(s, ctx.drivers, res.host_id)
        spec = DiskSpec(disk.uid, disk.name, disk.size_gb, False, ctx.params["device_name"])
    if ctx.params["attach"]:
        driver.attach_volume(ref, res.uid, spec)
    else:
        driver.detach_volume(ref, res.uid, spec)


job(states.HOTPLUG)(_disk_hotplug)
