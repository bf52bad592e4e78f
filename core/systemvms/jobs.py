"""Deploying, restarting and destroying system VMs: the requests (one transaction each) and their jobs."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.errors import AlreadyExists, OperationFailure
from core.hypervisors.base import DriverError
from core.jobs import JobContext, job
from core.models import Host, Operation, Resource, SystemVm, Zone
from core.systemvms import pushes, vms

DEPLOY, RESTART, DESTROY = "systemvms.deploy", "systemvms.restart", "systemvms.destroy"
LIFECYCLE = (DEPLOY, RESTART, DESTROY)




# -- requests -------------------------------------------------------------------------------------


def ensure_zone_vm(session: Session, kind: str, zone: Zone) -> SystemVm:
    """The zone's console proxy or storage VM; created, with its deploy queued, when it has none."""
    vm = vms.zone_vm(session, kind, zone)
    if vm is not None:
        return vm
    try:
        with session.begin_nested():  # another process may be making it right now (PostgreSQL)
            vm = vms.create(session, kind, zone)
            vms.enqueue_on(session, vm, DEPLOY, "systemvms.deploy", f"First {kind.replace('_', ' ')} of {zone.name}.")
    except (AlreadyExists, IntegrityError):
        vm = vms.zone_vm(session, kind, zone)
        assert vm is not None, "the transaction that won the race made it"
    return vm


def redeploy(session: Session, vm: SystemVm, res: Resource, reason: str) -> Operation | None:
    """Start the VM again on another host (its own failed): its capacity there is released now, and
    a router gets its whole configuration again. None when a lifecycle job is queued already."""
    if vms.unfinished_job(session, vm, LIFECYCLE) is not None:
        return None
    res.host_id = None
    vms.report(vm, res, vms.REDEPLOY, reason)
    vm.pushed_checksums = "{}"
    return vms.enqueue_on(session, vm, DEPLOY, "systemvms.redeploy", reason)


def restart(session: Session, vm: SystemVm) -> Operation:
    """Reboot the VM where it runs (elsewhere if its host is down) and push its configuration again."""
    return vms.enqueue_on(session, vm, RESTART, "systemvms.restart", f"Restart of {vm.name} requested.")


def destroy(session: Session, vm: SystemVm) -> Operation:
    """Destroy the VM. A router a network still needs is deployed again by the network's next sync,
    a zone's proxy or storage VM by the watchdog: destroying one is how to rebuild it."""
    return vms.enqueue_on(session, vm, DESTROY, "systemvms.destroy", f"Destroy of {vm.name} requested.")


# -- jobs ------------------------------------------------------------------------------------------


def _deploy(ctx: JobContext) -> None:
    uid = ctx.params["uid"]
    if vms.start(ctx, uid):
        pushes.push(ctx, uid, full=True)
    with ctx.write() as s:
        ctx.complete(s)


def _failed(ctx: JobContext, failure: OperationFailure) -> None:
    """A VM that could not start holds nothing and stays in Error; the watchdog tries again later."""
    with ctx.write() as s:
        vm, res = vms.load(s, ctx.params["uid"])
        if vm is not None and res is not None:
            res.host_id = None
            vms.report(vm, res, vms.FAILED, failure.message)


def _restart(ctx: JobContext) -> None:
    uid = ctx.params["uid"]
    with ctx.write() as s:
        vm, res = vms.load(s, uid)
        if vm is None or res is None:
            return
        host = s.get(Host, res.host_id) if res.host_id is not None else None
        target = None
        if host is not None and host.status == "Up" and vms.reboots_in_place(vm):
            target = vms.driver_for(ctx.drivers, s, host.id)
    rebooted = False
    if target is not None:
        driver, ref = target
        try:
            driver.reboot(ref, uid)
            rebooted = True
        except DriverError as exc:
            ctx.warn("SYSTEM_VM_REBOOT_FAILED", f"{ref.name}: {exc}; starting it on another host")
    if not rebooted:
        with ctx.write() as s:
            vm, res = vms.load(s, uid)
            if vm is None or res is None:
                return
            res.host_id = None
            vms.report(vm, res, vms.START)
        if not vms.start(ctx, uid):
            return
    pushes.push(ctx, uid, full=True)
    with ctx.write() as s:
        ctx.complete(s)


def _destroy(ctx: JobContext) -> None:
    vms.destroy(ctx, ctx.params["uid"])
    with ctx.write() as s:
        ctx.complete(s)


job(DEPLOY, on_fail=_failed)(_deploy)
job(RESTART, on_fail=_failed)(_restart)
job(DESTROY)(_destroy)
