"""Pushing a router's configuration: render what changed (:mod:`core.systemvms.router`), hand the
files to its host, record what it holds.

A push is three steps (:func:`prepare`, :func:`send`, :func:`record`): the first and the last are
write transactions, the middle one talks to the hypervisor outside any. :func:`push` runs them in
transactions of their own; the network sync (:mod:`core.systemvms.sync`) joins the first to the
transaction that plans it and the last to the one that ends its Operation.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Collection
from dataclasses import dataclass

import orjson
from sqlalchemy import bindparam, null, select, update
from sqlalchemy.orm import Session

from core.hypervisors.base import DriverError, HostRef, HypervisorDriver
from core.jobs import JobContext
from core.models import Resource, SystemVm
from core.models.systemvm import RouterSyncState
from core.prepared import Prepared, write_back
from core.systemvms import guests, vms
from core.systemvms.router import RouterView, context, digest, render_view, view

RECONCILE_SECONDS = 600.0  # a router's instance files are all rendered again at least this often
RENDERS_KEPT_BYTES = 16 * 1024 * 1024  # routers' last renders kept (see _render), views and files


class _Renders:
    """Routers' last renders, by router uid: (its view, serialized; its files; their digests), the
    newest last, at most ``limit`` bytes of views and files in all (a router with many rules has
    files of a few hundred KB: a count of routers alone would not bound the memory)."""

    def __init__(self, limit: int):
        self.limit, self.size = limit, 0
        self.items: OrderedDict[int, tuple[bytes, dict[str, str], dict[str, str], int]] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, uid: int, key: bytes) -> tuple[dict[str, str], dict[str, str]] | None:
        with self.lock:
            hit = self.items.get(uid)
            if hit is None or hit[0] != key:
                return None
            self.items.move_to_end(uid)
            return hit[1], hit[2]

    def put(self, uid: int, key: bytes, files: dict[str, str], desired: dict[str, str]) -> None:
        size = len(key) + sum(len(text) for text in files.values())
        with self.lock:
            old = self.items.pop(uid, None)
            if old is not None:
                self.size -= old[3]
            if size > self.limit:
                return
            self.items[uid] = (key, files, desired, size)
            self.size += size
            while self.size > self.limit:
                _, dropped = self.items.popitem(last=False)
                self.size -= dropped[3]


_RENDERS = _Renders(RENDERS_KEPT_BYTES)
# What a render changes of the router's row (written by core.prepared.write_back, not the flush).
_RENDERED = ("config_version", "config_checksums", "pushed_version")
# What the router holds and where it runs, its two rows locked (vms.load's lock); what a push gave it.
_HELD = Prepared(select(SystemVm.pushed_checksums, Resource.host_id).join(Resource, Resource.uid == SystemVm.uid)
                 .where(SystemVm.uid == bindparam("uid")).with_for_update())
_RECORD = Prepared(update(SystemVm).where(SystemVm.uid == bindparam("uid")).values(
    pushed_checksums=bindparam("checksums"), pushed_version=bindparam("version"), pushed_at=bindparam("at"),
    last_error=null()))


def _guest_changes(s: Session, vm: SystemVm, v: RouterView, instances: Collection[int] | None,
                   full: bool, rows: list[Resource] | None,
                   loaded: vms.Loaded | None) -> tuple[dict[str, str | None], list[int], list[int]]:
    """The instances' files to push: of ``instances`` only, unless the router is new (``full``), its
    network's context changed, or its last full pass is ``RECONCILE_SECONDS`` old (then of all).
    ``loaded``: the router as the caller read it, its sync state with it."""
    gctx = context(v)
    state = loaded.state if loaded is not None else s.get(RouterSyncState, vm.uid)
    now = time.time()
    if full or instances is None or state is None or state.context != gctx.digest() or now - state.full_at > RECONCILE_SECONDS:
        if state is None:
            state = RouterSyncState(vm_uid=vm.uid, context="", full_at=0.0)
            s.add(state)
        state.context, state.full_at = gctx.digest(), now
        instances = rows = None
    files, touched, removed = guests.changes(s, vm.uid, gctx, v.network_url, v.region, instances, force=full,
                                             rows=rows)
    v.domains = guests.domains(s, vm.uid)
    return files, touched, removed


def _plain(value: object) -> object:
    if isinstance(value, frozenset):
        return sorted(value)
    raise TypeError(f"a router's view holds a {type(value).__name__}")


def _render(uid: int, v: RouterView) -> tuple[dict[str, str], dict[str, str]]:
    """The router's main files (:func:`render_view`) and their digests. The last render of each
    router is kept, with its view, and given again while the view is the same: a change of an
    instance (most syncs) leaves the view as it was, and rendering the five files again cost the
    sync ~0.4 ms. Kept for the routers rendered last, ``RENDERS_KEPT_BYTES`` in all."""
    key = orjson.dumps(v, default=_plain)
    hit = _RENDERS.get(uid, key)
    if hit is not None:
        return hit
    files = render_view(v)
    desired = {path: digest(content) for path, content in files.items()}
    _RENDERS.put(uid, key, files, desired)
    return files, desired


@dataclass(frozen=True)
class Push:
    """What a render decided to push to a router: the files that changed, to the VM on its host."""

    uid: int
    full: bool
    version: int
    host_id: int
    driver: HypervisorDriver
    ref: HostRef
    changed: dict[str, str | None]  # None: a file removed (a removed instance's, a main file no longer rendered)
    desired: dict[str, str]
    touched: list[int]
    removed: list[int]  # instances whose files it removes (guests.forget once it did)


def push(ctx: JobContext, uid: int, *, full: bool = False, instances: Collection[int] | None = None) -> list[str]:
    """Render the router's files and push those that changed (all of them with ``full``: a new VM).

    The main files are rendered whole (they read no instance); of the instances' files only those of
    ``instances`` (the ones that changed) are rendered, unless this is a full pass (see
    :func:`_guest_changes`); None asks for a full pass. Records the rendered version (bumped when a
    checksum changes) and, once the driver took the files, what the router holds. A router that does
    not run is left to its deploy, which pushes everything; a failed push is recorded and retried by
    the next sync (in full) or the watchdog.

    """
    with ctx.write() as s:
        prepared = prepare(s, ctx, uid, full=full, instances=instances)
    if prepared is None or not send(ctx, prepared):
        return []
    with ctx.write() as s:
        return record(s, prepared)


def prepare(s: Session, ctx: JobContext, uid: int, *, full: bool = False, instances: Collection[int] | None = None,
            network: Resource | None = None, loaded: vms.Loaded | None = None,
            rows: list[Resource] | None = None) -> Push | None:
    """:func:`push`'s render, in the caller's write transaction: what to push, or None when nothing
    is to be pushed (the router does not run, or holds every file already). What the caller read
    in this transaction is not read again: ``network``, the network's row; ``loaded``, the router's
    (:func:`vms.routers_of`: locked, with its host and sync state); ``rows``, those of ``instances``
    (every one of them that is an instance)."""
    vm, res = (loaded.vm, loaded.res) if loaded is not None else vms.load(s, uid)
    host = loaded.host if loaded is not None else None
    if vm is None or vm.kind != vms.ROUTER:
        return None
    v = view(s, vm, domains=False, network=network)  # _guest_changes reads them once it recorded the instances
    guest_files, touched, removed = _guest_changes(s, vm, v, instances, full, rows, loaded)
    files, desired = _render(vm.uid, v)
    if desired != vms.checksums(vm.config_checksums) or guest_files:
        vm.config_version += 1
        vm.config_checksums = vms.dump(desired)
    if res is None or vm.state != vms.RUNNING or res.host_id is None:  # res: never None with a vm
        write_back(s, [vm], _RENDERED)
        return None
    held = {} if full else vms.checksums(vm.pushed_checksums)
    changed: dict[str, str | None] = {path: content for path, content in files.items()
                                       if held.get(path) != desired[path]}
    # A main file no longer rendered (a certificate no proxy names now, its private key with it)
    # leaves the router; the record of the push forgets it (record keeps only desired paths).
    changed.update(dict.fromkeys(path for path in held if path not in desired))
    changed.update(guest_files)
    if not changed:  # it holds every file already
        vm.pushed_version = vm.config_version
        write_back(s, [vm], _RENDERED)
        return None
    write_back(s, [vm], _RENDERED)
    if host is not None and host[1].id == res.host_id:
        driver, ref = ctx.drivers.get(host[0]), host[1]
    else:
        driver, ref = vms.driver_for(ctx.drivers, s, res.host_id)
    return Push(uid, full, vm.config_version, res.host_id, driver, ref, changed, desired, touched, removed)


def send(ctx: JobContext, p: Push) -> bool:
    """Hand the files to the router's host, outside any transaction; a failure is recorded on the
    router (its instances' files marked stale) and warned about, and answers False."""
    try:
        p.driver.push_config(p.ref, p.uid, p.changed)
    except DriverError as exc:
        with ctx.write() as s:
            vm, _ = vms.load(s, p.uid)
            if vm is not None:
                vm.last_error = f"configuration push failed: {exc}"[:400]
                guests.mark_stale(s, vm.uid, p.touched)
        ctx.warn("SYSTEM_VM_PUSH_FAILED", f"{p.ref.name}: {exc}")
        return False
    return True


def record(s: Session, p: Push) -> list[str]:
    """Record, in the caller's write transaction, that the router holds what :func:`send` pushed
    (unless it moved meanwhile): the paths pushed. Two statements of its own, the router's rows
    locked as :func:`vms.load` locks them, and no ORM object (an object of the router the session
    holds is expired)."""
    found = _HELD.in_session(s, {"uid": p.uid})
    if not found or found[0][1] != p.host_id:
        return []
    held = {} if p.full else vms.checksums(found[0][0])
    held.update({path: p.desired[path] for path in p.changed if path in p.desired})
    _RECORD.in_session(s, {"uid": p.uid, "checksums": vms.dump({path: c for path, c in held.items() if path in p.desired}),
                           "version": p.version, "at": time.time()})
    guests.forget(s, p.uid, p.removed)
    for obj in list(s.identity_map.values()):
        if isinstance(obj, SystemVm) and obj.uid == p.uid:
            s.expire(obj)
    return sorted(p.changed)
