"""What every system VM shares: its template, its rows, its placement and start, its jobs' targets.

A system VM is two rows: a ``resources`` row in the hidden project :data:`SYSTEM_PROJECT`
(collection ``systemvms``) that holds its capacity on a host exactly as an instance does, so
the planner and ``gstack admin host list`` count it unchanged, and a :class:`SystemVm` row with
what only system VMs have. No GCE API lists that project's ``systemvms`` collection, and its
Operations live in that project too, so users never see them.

Jobs on a router target its network (``network_uid``): syncs, deploys, restarts and destroys of
one network's routers then run one after the other (the engine's per-target queue). Jobs on a
console proxy or storage VM target the VM itself.
"""

from __future__ import annotations

import ipaddress
import time
import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Engine, bindparam, delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core import identity, ipam, planner
from core.db import attached, parts_of
from core.errors import OperationFailure, ResourceNotReady
from core.hypervisors.base import DiskSpec, DriverError, HostRef, HypervisorDriver, NicSpec, VmSpec
from core.hypervisors.registry import DriverRegistry
from core.jobs import JobContext
from core.jobs.engine import UNFINISHED
from core.links import CANONICAL_BASE, path_of
from core.models import Cluster, Host, Operation, Project, Resource, SystemVm, Zone
from core.models.systemvm import RouterGuest, RouterSyncState
from core.prepared import Prepared
from core.resources import operations, store
from core.resources.context import Call
from core.resources.states import STAY, Move, StateTable

SYSTEM_PROJECT = "gstack-system"
COLLECTION = "systemvms"
ROUTER, CONSOLE_PROXY, SECONDARY_STORAGE = "router", "console_proxy", "secondary_storage"
KINDS = (ROUTER, CONSOLE_PROXY, SECONDARY_STORAGE)
_PREFIX = {ROUTER: "r", CONSOLE_PROXY: "v", SECONDARY_STORAGE: "s"}  # CloudStack's r-N-VM, v-N-VM, s-N-VM


@dataclass(frozen=True)
class Template:
    """The system VM template of one architecture. The 32-bit one needs half the memory, but its
    kernel's low memory caps the connection tracking table near 2.5 million entries."""

    arch: str
    vcpus: int
    memory_mb: int
    conntrack_max: int
    disk_gb: int = 2

    @property
    def image(self) -> str:
        return f"{CANONICAL_BASE}projects/{SYSTEM_PROJECT}/global/images/systemvm-{self.arch}"


TEMPLATES = {
    "x86_64": Template("x86_64", 1, 512, 4_194_304),
    "i386": Template("i386", 1, 256, 2_500_000),
}

# -- states (CloudStack's VM states, as far as system VMs go through them) ---------------------------

STARTING, RUNNING, ERROR = "Starting", "Running", "Error"
# Events a system VM's jobs report, and what its watchdog asks of it.
START = "start"  # placed (or about to be) and being started; a failed spawn reports it too
RUNS = "running"  # its hypervisor started it
FAILED = "failed"  # no host could take it, or its job gave up: it holds nothing
REDEPLOY = "redeploy"  # its host failed: start it again elsewhere
REBOOT = "reboot"  # a restart reboots it where it runs

STATES = StateTable(
    "system VM", (STARTING, RUNNING, ERROR), (START, RUNS, FAILED, REDEPLOY, REBOOT),
    # A system VM has no user to refuse: its jobs and the watchdog move it from any state (a
    # deploy queued for a VM that has started since, a restart of one in Error), and each move
    # records its reason and time again even when the state stays the same.
    {**{(state, event): Move(target) for state in (STARTING, RUNNING, ERROR)
        for event, target in ((START, STARTING), (RUNS, RUNNING), (FAILED, ERROR), (REDEPLOY, STARTING))},
     (RUNNING, REBOOT): STAY},  # only a running VM reboots in place; others start again elsewhere
    lambda path, state, event: ResourceNotReady(f"The resource '{path}' is not ready"))

# Public interface of every system VM; a router's guest subnets follow as eth1, eth2 ...
PUBLIC_IFACE = "eth0"


def template_for(zone: Zone) -> Template:
    try:
        return TEMPLATES[zone.systemvm_arch or "x86_64"]
    except KeyError:
        raise OperationFailure("INVALID_FIELD_VALUE", f"Zone {zone.name}: unknown system VM architecture "
                                                      f"'{zone.systemvm_arch}' (x86_64 or i386).") from None


# Databases (by engine) where the hidden project was seen committed: projects are never deleted, so
# a process looks for it once per database, not in every transaction that queues a system job.
_SYSTEM_PROJECT_SEEN: weakref.WeakSet[Engine] = weakref.WeakSet()
_CREATED_HERE = "gstack.systemvms.created_system_project"


def ensure_system_project(session: Session) -> None:
    """Reserve the hidden project's name, so no user project can take it."""
    engine = session.get_bind().engine
    if engine in _SYSTEM_PROJECT_SEEN:
        return
    if session.scalar(select(Project.id).where(Project.name == SYSTEM_PROJECT)) is not None:
        if not session.info.get(_CREATED_HERE):  # a row this transaction made may yet roll back
            _SYSTEM_PROJECT_SEEN.add(engine)
        return
    try:
        with session.begin_nested():  # a concurrent transaction may create it first (PostgreSQL)
            identity.create_project(session, SYSTEM_PROJECT)
        session.info[_CREATED_HERE] = True
    except IntegrityError:
        pass


def role_key(kind: str, *, zone: str | None = None, network_uid: int | None = None, region: str | None = None) -> str:
    return f"{kind}:{network_uid}:{region}" if kind == ROUTER else f"{kind}:{zone}"


def vm_name(kind: str, *, zone: str | None = None, network_uid: int | None = None, region: str | None = None) -> str:
    if kind == ROUTER:
        return f"r-{network_uid:x}-{region}"[:63]
    return f"{_PREFIX[kind]}-{zone}"[:63]


def create(session: Session, kind: str, zone: Zone, *, network_uid: int | None = None, network_url: str | None = None,
           project: str | None = None) -> SystemVm:
    """The rows of a new system VM, not yet placed (state Starting). The caller enqueues its start."""
    ensure_system_project(session)
    tpl = template_for(zone)
    region = zone.region.name
    name = vm_name(kind, zone=zone.name, network_uid=network_uid, region=region)
    now = time.time()
    res = store.new_resource(session, project=SYSTEM_PROJECT, collection=COLLECTION, scope=f"zones/{zone.name}",
                             name=name, kind=f"gstack#{kind}", status=STARTING, region=region,
                             subtype=f"systemvm-{tpl.arch}", vcpus=tpl.vcpus, memory_mb=tpl.memory_mb,
                             body={"role": kind, "network": network_url, "template": tpl.image})
    uid = res.uid  # the two rows share one uid, the hypervisor domain's too
    vm = SystemVm(uid=uid, name=name, kind=kind, zone_id=zone.id, region=region, network_uid=network_uid,
                  network_url=network_url, project=project, arch=tpl.arch, state=STARTING,
                  conntrack_max=tpl.conntrack_max if kind == ROUTER else None,
                  role_key=role_key(kind, zone=zone.name, network_uid=network_uid, region=region),
                  config_version=0, config_checksums="{}", pushed_version=0, pushed_checksums="{}",
                  created=now, updated=now)
    session.add(vm)
    session.flush()
    return vm


# -- reading ------------------------------------------------------------------------------------


def resource_of(session: Session, vm: SystemVm) -> Resource | None:
    return session.scalar(select(Resource).where(Resource.uid == vm.uid))


_LOAD = (select(SystemVm, Resource).join(Resource, Resource.uid == SystemVm.uid)
         .where(SystemVm.uid == bindparam("uid")).with_for_update())


def load(session: Session, uid: int) -> tuple[SystemVm, Resource] | tuple[None, None]:
    """The system VM and its capacity row, locked until the transaction ends: one statement (the
    two rows share the uid, and are made and dropped together)."""
    row = session.execute(_LOAD, {"uid": uid}).first()
    return (row[0], row[1]) if row is not None else (None, None)


@dataclass(frozen=True)
class Loaded:
    """A router as :func:`routers_of` read it: its rows, locked, its sync state (None: it has none
    yet) and its host as its driver knows it (None while it is not placed)."""

    vm: SystemVm
    res: Resource
    state: RouterSyncState | None
    host: tuple[str, HostRef] | None  # (hypervisor, host)


_ROUTERS = Prepared(
    select(*SystemVm.__table__.columns, *Resource.__table__.columns, *RouterSyncState.__table__.columns,
           Host.id, Host.name, Host.uri, Cluster.hypervisor)
    .join(Resource, Resource.uid == SystemVm.uid)
    .outerjoin(RouterSyncState, RouterSyncState.vm_uid == SystemVm.uid)
    .outerjoin(Host, Host.id == Resource.host_id).outerjoin(Cluster, Cluster.id == Host.cluster_id)
    .where(SystemVm.network_uid == bindparam("network_uid"), SystemVm.kind == ROUTER)
    .order_by(SystemVm.name).with_for_update(of=[SystemVm, Resource]))


def routers_of(session: Session, network_uid: int) -> list[Loaded]:
    """The network's routers, by name, each with what a push of its configuration reads besides
    the network's rows: its two rows (locked, as :func:`load` locks them), its sync state and its
    host. One statement instead of one per router and four more for the first one's push, made
    persistent objects by :func:`core.db.attached` (the ORM's query cost a lone sync ~0.2 ms more)."""
    found = []
    for row in _ROUTERS.in_session(session, {"network_uid": network_uid}):
        (vm, res, state), (host_id, name, uri, hypervisor) = parts_of(row, SystemVm, Resource, RouterSyncState)
        assert vm is not None and res is not None  # (inner joins)
        found.append(Loaded(attached(session, SystemVm, vm), attached(session, Resource, res),
                            attached(session, RouterSyncState, state) if state is not None else None,
                            (hypervisor, HostRef(host_id, name, uri)) if host_id is not None else None))
    return found


def find_by_name(session: Session, name: str) -> SystemVm | None:
    return session.scalar(select(SystemVm).where(SystemVm.name == name))


def zone_vm(session: Session, kind: str, zone: Zone) -> SystemVm | None:
    return session.scalar(select(SystemVm).where(SystemVm.role_key == role_key(kind, zone=zone.name)))


def host_of(session: Session, vm: SystemVm) -> Host | None:
    res = resource_of(session, vm)
    return session.get(Host, res.host_id) if res is not None and res.host_id is not None else None


def checksums(raw: str | None) -> dict[str, str]:
    found: dict[str, str] = orjson.loads(raw or "{}")
    return found


def dump(value: dict[str, str]) -> str:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def report(vm: SystemVm, res: Resource, event: str, error: str | None = None) -> None:
    """Move the VM (both its rows) as :data:`STATES` says ``event`` does, recording why
    (``error``) and when."""
    state = STATES.event(vm.state, event).status
    if state is None:
        return
    vm.state = state
    vm.last_error = error[:400] if error else None
    vm.updated = time.time()
    store.set_status(res, state)


def reboots_in_place(vm: SystemVm) -> bool:
    """Whether a restart may reboot the VM where it runs (else it is started again)."""
    return STATES.cell(vm.state, REBOOT) is not None


_HOST_AND_HYPERVISOR = (select(Host.id, Host.name, Host.uri, Cluster.hypervisor)
                        .join(Cluster, Cluster.id == Host.cluster_id).where(Host.id == bindparam("host_id")))


def driver_for(drivers: DriverRegistry, session: Session, host_id: int) -> tuple[HypervisorDriver, HostRef]:
    """The driver of the host's cluster and the host as the driver knows it: one read of both."""
    host = session.execute(_HOST_AND_HYPERVISOR, {"host_id": host_id}).one()  # the VM's row holds it by a foreign key
    return drivers.get(host.hypervisor), HostRef(host.id, host.name, host.uri)


def _zone(session: Session, zone_id: int) -> Zone:
    zone = session.get(Zone, zone_id)
    assert zone is not None  # a foreign key
    return zone


# -- jobs' targets and Operations -------------------------------------------------------------------


def target_of(session: Session, vm: SystemVm) -> tuple[int, str]:
    """(target_id, target path) of jobs on the VM: a router's network, else the VM itself."""
    if vm.kind == ROUTER and vm.network_uid is not None:
        return vm.network_uid, (vm.network_url or "").removeprefix(CANONICAL_BASE)
    return vm.uid, path_of(SYSTEM_PROJECT, f"zones/{_zone(session, vm.zone_id).name}", COLLECTION, vm.name)


def enqueue(session: Session, *, job: str, op_type: str, scope: str, target_id: int, target_path: str,
            params: dict[str, Any], message: str | None = None, not_before: float | None = None) -> Operation:
    """A system Operation (project gstack-system, user ``system``) running ``job``, not claimed
    before ``not_before`` (its INSERT announces it to the workers, see :mod:`core.jobs.admission`)."""
    op = operations.begin(Call(session, SYSTEM_PROJECT, "system"), scope=scope, op_type=op_type,
                          target_path=target_path, target_id=target_id, job=job, params=params,
                          not_before=not_before)
    if message:
        op.status_message = message[:400]
    return op


def enqueue_on(session: Session, vm: SystemVm, job: str, op_type: str, message: str | None = None,
               **params: Any) -> Operation:
    target_id, target_path = target_of(session, vm)
    scope = f"regions/{vm.region}" if vm.kind == ROUTER else f"zones/{_zone(session, vm.zone_id).name}"
    return enqueue(session, job=job, op_type=op_type, scope=scope, target_id=target_id, target_path=target_path,
                   params={"uid": vm.uid, **params}, message=message)


def unfinished_job(session: Session, vm: SystemVm, jobs: tuple[str, ...]) -> Operation | None:
    """An unfinished job of ``jobs`` on this VM (the watchdog must not queue a second one)."""
    target_id, _ = target_of(session, vm)
    for op in session.scalars(select(Operation).where(Operation.target_id == target_id,
                                                      Operation.status.in_(UNFINISHED), Operation.job.in_(jobs))):
        if orjson.loads(op.params).get("uid") in (None, vm.uid):
            return op
    return None


# -- starting --------------------------------------------------------------------------------------


def guest_subnets(session: Session, vm: SystemVm) -> list[Resource]:
    """The subnetworks of a router's network in its region, by name."""
    if vm.kind != ROUTER or not vm.network_url:
        return []
    rows = session.scalars(select(Resource).where(
        Resource.collection == "subnetworks", Resource.scope == f"regions/{vm.region}",
        Resource.body.contains(vm.network_url)).order_by(Resource.name))
    return guest_subnets_among(vm, rows)


def guest_subnets_among(vm: SystemVm, rows: Iterable[Resource]) -> list[Resource]:
    """Of ``rows`` (subnetworks of the router's region, in their order), those of
    :func:`guest_subnets`: for a caller that read them along with other rows."""
    if vm.kind != ROUTER or not vm.network_url:
        return []
    return [row for row, _ in store.of_network(rows, vm.network_url)]


def gateway_of(subnet: store.Body) -> str:
    return subnet.get("gatewayAddress") or str(ipaddress.ip_network(subnet["ipCidrRange"]).network_address + 1)


def vm_spec(session: Session, vm: SystemVm, res: Resource) -> VmSpec:
    tpl = TEMPLATES[vm.arch]
    # The public side gets its address from the zone's public network (none is modelled yet: masquerade
    # needs none, and an address from the users' external pool would disturb their allocation order).
    public_mac = "42:02:" + ":".join(f"{b:02x}" for b in (vm.uid & 0xFFFFFFFF).to_bytes(4, "big"))
    nics = [NicSpec(PUBLIC_IFACE, public_mac, "public", vm.public_ip)]
    for i, sub in enumerate(guest_subnets(session, vm), start=1):
        gw = gateway_of(store.body_of(sub))
        nics.append(NicSpec(f"eth{i}", ipam.mac_for(gw), sub.name, gw))
    root = DiskSpec(vm.uid, f"{vm.name}-root", tpl.disk_gb, True, "root", tpl.image)
    meta = {"gstack-systemvm-role": vm.kind, "gstack-systemvm-arch": vm.arch}
    if vm.network_url:
        meta["gstack-network"] = vm.network_url
    return VmSpec(vm.uid, vm.name, vm.name, res.vcpus, res.memory_mb, (root,), tuple(nics), meta)


def _candidate_zones(session: Session, vm: SystemVm) -> list[int]:
    """Where the VM may run: its zone first; a router may move to another zone of its region."""
    zones = [vm.zone_id]
    if vm.kind == ROUTER:
        zones += [z.id for z in _zone(session, vm.zone_id).region.zones if z.status == "UP" and z.id != vm.zone_id]
    return zones


def _place(session: Session, vm: SystemVm, res: Resource, tried: set[int]) -> Host | None:
    for zone_id in _candidate_zones(session, vm):
        # A VM placed before stays on its kind of hypervisor (its template's disk is there).
        host = planner.place_vm(session, zone_id, res.vcpus, res.memory_mb, frozenset(tried), prefer=res.last_host_id)
        if host is not None:
            if zone_id != vm.zone_id:
                vm.zone_id, res.scope = zone_id, f"zones/{_zone(session, zone_id).name}"
            return host
    return None


def start(ctx: JobContext, uid: int) -> bool:
    """Place the VM if it is not placed and start it, trying other hosts when a spawn fails.

    True when it runs; False when it is gone. No capacity left: the VM is left in Error, not
    placed, and OperationFailure is raised (the watchdog tries again later).
    """
    tried: set[int] = set()
    while True:
        with ctx.write() as s:
            vm, res = load(s, uid)
            if vm is None or res is None:
                return False
            if res.host_id is None:
                host = _place(s, vm, res, tried)
                if host is not None:
                    res.host_id = host.id
            if res.host_id is None:
                report(vm, res, FAILED, "no host has capacity for it")
                failure = OperationFailure("ZONE_RESOURCE_POOL_EXHAUSTED",
                                           f"No host of region {vm.region} can take system VM {vm.name}.", 503)
            else:
                failure = None
                report(vm, res, START)
                driver, ref = driver_for(ctx.drivers, s, res.host_id)
                spec = vm_spec(s, vm, res)
        if failure is not None:
            raise failure
        try:
            driver.spawn(ref, spec)
        except DriverError as exc:
            tried.add(ref.id)
            with ctx.write() as s:
                vm, res = load(s, uid)
                if vm is not None and res is not None:
                    res.host_id = None
                    report(vm, res, START, str(exc))
            if not exc.retry_elsewhere:
                raise exc.as_failure() from exc
            continue
        with ctx.write() as s:
            vm, res = load(s, uid)
            if vm is None or res is None:
                return False
            res.last_host_id = res.host_id
            report(vm, res, RUNS)
        return True


def release(session: Session, vm: SystemVm, res: Resource | None) -> None:
    """Forget the VM: its capacity, its addresses and its rows (a router's record of its instance files too)."""
    ipam.release_owner(session, vm.uid)
    if res is not None:
        session.delete(res)
    session.execute(delete(RouterGuest).where(RouterGuest.vm_uid == vm.uid))
    session.execute(delete(RouterSyncState).where(RouterSyncState.vm_uid == vm.uid))
    session.delete(vm)


def destroy(ctx: JobContext, uid: int) -> None:
    """Destroy a system VM on its host, then release what it holds. A host that is down keeps a
    stale copy, which the host monitor removes when the host answers again."""
    with ctx.write() as s:
        vm, res = load(s, uid)
        if vm is None or res is None:
            return
        host_id = res.host_id or res.last_host_id
        target = driver_for(ctx.drivers, s, host_id) if host_id else None
    if target is not None:
        driver, ref = target
        try:
            driver.destroy(ref, uid)
        except DriverError as exc:
            ctx.warn("SYSTEM_VM_HOST_UNREACHABLE", f"{ref.name}: {exc}")
    with ctx.write() as s:
        vm, res = load(s, uid)
        if vm is not None:
            release(s, vm, res)
