"""The libvirt driver's class: connections, and each call of the driver contract as libvirt calls
(the domain XML, the volumes and the serial console are in the modules beside this one)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from contextlib import suppress
from typing import TYPE_CHECKING, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from core.hypervisors.base import (
    LIVE_ATTACH,
    PUSH_CONFIG,
    RECONCILE,
    SERIAL_CONSOLE,
    SUSPEND,
    DiskSpec,
    DriverError,
    HostRef,
    HostStats,
    HypervisorDriver,
    VmSpec,
)
from core.hypervisors.libvirt import console, domainxml, storage
from core.hypervisors.libvirt.common import (
    DEFAULTS,
    DOMAIN_PREFIX,
    GIB,
    Conn,
    Domain,
    Options,
    domain_name,
    is_remote_uri,
    is_test_uri,
    lookup,
    lv,
    running,
    uid_of,
)
from core.models import Host, Resource

if TYPE_CHECKING:
    from core.hypervisors.netns import NetnsDriver

T = TypeVar("T")
ROLE = "gstack-systemvm-role"  # a system VM's metadata: its role (the netns driver reads the same key)


class LibvirtDriver(HypervisorDriver):
    name = "libvirt"
    capabilities = frozenset({SUSPEND, LIVE_ATTACH, SERIAL_CONSOLE, RECONCILE, PUSH_CONFIG})

    def __init__(self, factory: sessionmaker[Session], state_dir: str | None = None,
                 opener: Callable[[str], Conn] | None = None, routers: NetnsDriver | None = None):
        self.factory = factory
        # where the virtual routers of a host with ``dataplane=netns`` run: network namespaces on
        # this machine, beside the host, whose bridges the host's domains plug into
        self.routers = routers
        self.state_dir = state_dir or os.path.join(tempfile.gettempdir(), "gstack-libvirt")
        self._opener = opener
        self._connections: dict[str, Conn] = {}
        self._lock = threading.Lock()
        self._console_lock = threading.Lock()
        self._guests: dict[str, domainxml.Guest] = {}

    # -- connections ---------------------------------------------------------------------------

    def connection(self, uri: str) -> Conn:
        """The process's open connection to ``uri``, opened (again) when missing or dead."""
        libvirt = lv()
        with self._lock:
            conn = self._connections.get(uri)
            if conn is not None:
                try:
                    if conn.isAlive():
                        return conn
                except libvirt.libvirtError:
                    pass
                with suppress(libvirt.libvirtError):
                    conn.close()
            try:
                conn = self._opener(uri) if self._opener else libvirt.open(uri)
            except libvirt.libvirtError as exc:
                raise DriverError(f"cannot connect to {uri}: {exc.get_error_message()}") from exc
            self._connections[uri] = conn
            return conn

    def close(self) -> None:
        libvirt = lv()
        with self._lock:
            for conn in self._connections.values():
                with suppress(libvirt.libvirtError):
                    conn.close()
            self._connections.clear()

    def _call(self, host: HostRef, what: str, fn: Callable[[Conn], T], retry_elsewhere: bool = True) -> T:
        """Run ``fn(conn)``; a libvirt failure becomes a DriverError naming the host."""
        libvirt = lv()
        conn = self.connection(host.uri)
        try:
            return fn(conn)
        except libvirt.libvirtError as exc:
            if exc.get_error_domain() in (libvirt.VIR_FROM_RPC, libvirt.VIR_FROM_REMOTE):
                with self._lock:  # the connection broke: the next call reconnects
                    self._connections.pop(host.uri, None)
            raise DriverError(f"{what} on host {host.name}: {exc.get_error_message()}", retry_elsewhere) from exc

    # -- settings from the database --------------------------------------------------------------

    def options(self, host: HostRef) -> Options:
        with self.factory() as session:
            raw = session.scalar(select(Host.options).where(Host.id == host.id))
        opts = dict(DEFAULTS)
        if raw:
            opts.update(json.loads(raw))
        return opts

    def _dataplane(self, host: HostRef, opts: Options | None = None) -> bool:
        """Whether the host's routers run as netns routers beside it (``dataplane=netns``): only a
        host on this machine can have them, for the router's namespace must reach the domains' bridge."""
        mode = (opts if opts is not None else self.options(host)).get("dataplane") or "libvirt"
        if mode == "libvirt":
            return False
        if mode != "netns":
            raise DriverError(f"host {host.name}: dataplane must be 'libvirt' or 'netns', not '{mode}'",
                              retry_elsewhere=False)
        if self.routers is None or is_remote_uri(host.uri):
            raise DriverError(f"host {host.name}: dataplane=netns needs the host on the machine gstack runs on",
                              retry_elsewhere=False)
        return True

    @staticmethod
    def _beside(host: HostRef) -> HostRef:
        """The host as the netns driver sees it (this machine, the host's row and settings)."""
        return HostRef(host.id, host.name, "netns://local")

    def _router(self, vm_uid: int) -> NetnsDriver | None:
        """The netns driver when the VM is a router it runs beside a host of ours."""
        return self.routers if self.routers is not None and self.routers.has_vm(vm_uid) else None

    def _bridged(self, host: HostRef, vm: VmSpec, opts: Options) -> Options:
        """The settings with each NIC on a gstack network mapped to that network's bridge (where its
        router serves DHCP with IPAM's addresses), unless the host maps the network itself."""
        assert self.routers is not None  # _dataplane said so
        given = dict(opts.get("networks") or {})
        bridges = self.routers.guest_bridges(self._beside(host), vm)
        mapped = {nic.network: f"bridge:{b}" for nic, b in zip(vm.nics, bridges, strict=True) if b}
        return {**opts, "networks": {**given, **{k: v for k, v in mapped.items() if k not in given}}}

    def _instance(self, vm_uid: int) -> Resource | None:
        with self.factory() as session:
            return session.scalar(select(Resource).where(Resource.uid == vm_uid, Resource.collection == "instances"))

    def _host_of(self, vm_uid: int) -> HostRef | None:
        """The host the VM is placed on, or was last: where its domain and serial log are."""
        res = self._instance(vm_uid)
        host_id = res.host_id or res.last_host_id if res is not None else None
        if not host_id:
            return None
        with self.factory() as session:
            row = session.get(Host, host_id)
            return HostRef(row.id, row.name, row.uri) if row is not None else None

    def console_path(self, host: HostRef, vm_uid: int, opts: Options | None = None) -> str:
        return console.log_path(self.state_dir, host, opts if opts is not None else self.options(host), vm_uid)

    def _note(self, host: HostRef, vm_uid: int, text: str, opts: Options | None = None) -> None:
        console.note(host, self.console_path(host, vm_uid, opts), text)

    # -- host ------------------------------------------------------------------------------------

    def host_stats(self, host: HostRef) -> HostStats:
        def stats(conn: Conn) -> HostStats:
            _model, memory_mb, cpus, *_ = conn.getInfo()
            free_mb = conn.getFreeMemory() // (1024 * 1024)
            running = sum(1 for d in conn.listAllDomains(lv().VIR_CONNECT_LIST_DOMAINS_ACTIVE)
                          if d.name().startswith(DOMAIN_PREFIX))
            storage_gb = free_gb = 0
            with suppress(lv().libvirtError):
                pool = conn.storagePoolLookupByName(self.options(host)["pool"])
                _state, capacity, _allocation, available = pool.info()
                storage_gb, free_gb = capacity // GIB, available // GIB
            return HostStats(cpus, memory_mb, free_mb, running, storage_gb, free_gb, conn.getHostname())

        return self._call(host, "reading host statistics", stats)

    def shares_state(self, host: HostRef) -> bool:
        return not is_test_uri(host.uri)

    # -- starting ----------------------------------------------------------------------------------

    def spawn(self, host: HostRef, vm: VmSpec) -> None:
        if dict(vm.metadata).get(ROLE) == "router" and self._dataplane(host):
            assert self.routers is not None
            self.routers.spawn(self._beside(host), vm)
            return
        self._start(host, vm, resume=False)

    def resume(self, host: HostRef, vm: VmSpec) -> None:
        if dict(vm.metadata).get(ROLE) == "router" and self._dataplane(host):
            assert self.routers is not None
            self.routers.resume(self._beside(host), vm)
            return
        self._start(host, vm, resume=True)

    def _guest(self, conn: Conn, uri: str) -> domainxml.Guest:
        if uri not in self._guests:
            self._guests[uri] = domainxml.best_guest(conn.getCapabilities(), uri)
        return self._guests[uri]

    def domain_xml(self, conn: Conn, host: HostRef, vm: VmSpec, opts: Options) -> str:
        return domainxml.render(self._guest(conn, host.uri), vm, self._instance(vm.uid), opts,
                                self.console_path(host, vm.uid, opts))

    def _start(self, host: HostRef, vm: VmSpec, resume: bool) -> None:
        """Define (or redefine, to follow machine type and disk changes) and start the domain.

        A domain already running is left alone; a paused one is resumed. Starting a managed-saved
        domain restores it, which is what resume wants; a plain start discards the saved state.
        """
        libvirt = lv()
        opts = self.options(host)
        if self._dataplane(host, opts):
            opts = self._bridged(host, vm, opts)

        def note(text: str) -> None:
            self._note(host, vm.uid, text, opts)

        if not is_remote_uri(host.uri):  # libvirt writes the serial log but makes no directory for it
            os.makedirs(os.path.dirname(self.console_path(host, vm.uid, opts)), exist_ok=True)

        def start(conn: Conn) -> None:
            dom: Domain = lookup(conn, vm.uid)
            if dom is not None:
                if dom.state()[0] in (libvirt.VIR_DOMAIN_PAUSED, libvirt.VIR_DOMAIN_PMSUSPENDED):
                    dom.resume()
                    note(f"gstack: {domain_name(vm.uid)} resumed")
                    return
                if dom.isActive():
                    return
            for disk in vm.disks:
                storage.ensure_volume(self.factory, conn, host, opts, disk, note)
            saved = dom is not None and dom.hasManagedSaveImage(0)
            if saved and not resume:
                dom.managedSaveRemove(0)
                saved = False
            fresh = dom is None
            if not saved:  # a saved domain keeps the definition it was saved with
                dom = conn.defineXML(self.domain_xml(conn, host, vm, opts))
            try:
                dom.create()
            except libvirt.libvirtError:
                if fresh:  # the job tries another host: leave nothing behind here
                    with suppress(libvirt.libvirtError):
                        dom.undefine()
                raise
            if saved:
                note(f"gstack: {domain_name(vm.uid)} restored from its saved state on {host.name}")
            else:
                note(f"gstack: {domain_name(vm.uid)} ({vm.name}) started on {host.name}: {vm.vcpus} vCPUs, "
                     f"{vm.memory_mb} MiB, {len(vm.disks)} disk(s), {len(vm.nics)} NIC(s)")
                note("gstack: libvirt's test driver runs no guest operating system")

        self._call(host, "starting " + domain_name(vm.uid), start)

    # -- power -------------------------------------------------------------------------------------

    def power_off(self, host: HostRef, vm_uid: int) -> None:
        """ACPI shutdown, then destroy after ``shutdown_timeout`` seconds; a saved state is discarded."""
        if router := self._router(vm_uid):
            router.power_off(self._beside(host), vm_uid)
            return
        libvirt = lv()
        opts = self.options(host)

        def stop(conn: Conn) -> None:
            dom = lookup(conn, vm_uid)
            if dom is None:
                return
            if dom.hasManagedSaveImage(0):
                dom.managedSaveRemove(0)
            if not dom.isActive():
                return
            if dom.state()[0] == libvirt.VIR_DOMAIN_RUNNING:
                with suppress(libvirt.libvirtError):
                    dom.shutdown()
                deadline = time.monotonic() + float(opts["shutdown_timeout"])
                while dom.isActive() and time.monotonic() < deadline:
                    time.sleep(0.5)
            if dom.isActive():
                dom.destroy()
            self._note(host, vm_uid, f"gstack: {domain_name(vm_uid)} powered off", opts)

        self._call(host, "stopping " + domain_name(vm_uid), stop)

    def reboot(self, host: HostRef, vm_uid: int) -> None:
        """A hard reset (GCE's ``reset``); where reset is unsupported, destroy and start."""
        if router := self._router(vm_uid):
            router.reboot(self._beside(host), vm_uid)
            return
        libvirt = lv()

        def reset(conn: Conn) -> None:
            dom = running(conn, vm_uid, host.name)
            try:
                dom.reset(0)
            except libvirt.libvirtError as exc:
                if exc.get_error_code() != libvirt.VIR_ERR_NO_SUPPORT:
                    raise
                dom.destroy()
                dom.create()
            self._note(host, vm_uid, f"gstack: {domain_name(vm_uid)} reset")

        self._call(host, "resetting " + domain_name(vm_uid), reset)

    def suspend(self, host: HostRef, vm_uid: int) -> None:
        """Managed save: memory to disk, the domain shut off; pause where managed save is missing."""
        if router := self._router(vm_uid):
            router.suspend(self._beside(host), vm_uid)
            return
        libvirt = lv()

        def save(conn: Conn) -> None:
            dom = lookup(conn, vm_uid)
            if dom is None or not dom.isActive():
                return
            try:
                dom.managedSave(0)
                how = "saved to disk (managed save)"
            except libvirt.libvirtError as exc:
                if exc.get_error_code() != libvirt.VIR_ERR_NO_SUPPORT:
                    raise
                dom.suspend()
                how = "paused in memory (this host has no managed save)"
            self._note(host, vm_uid, f"gstack: {domain_name(vm_uid)} suspended: {how}")

        self._call(host, "suspending " + domain_name(vm_uid), save)

    # -- removing --------------------------------------------------------------------------------

    def destroy(self, host: HostRef | None, vm_uid: int) -> None:
        """Destroy and undefine the domain, delete its serial log and the volumes of its disks that
        do not outlive it (autoDelete ones no other VM uses, and those already deleted)."""
        if router := self._router(vm_uid):
            router.destroy(self._beside(host) if host is not None else None, vm_uid)
            return
        res = self._instance(vm_uid)
        host = host or self._host_of(vm_uid)
        if host is None:
            return
        opts = self.options(host)
        doomed = storage.disks_going_with(self.factory, res)

        def remove(conn: Conn) -> None:
            dom = lookup(conn, vm_uid)
            volumes: list[str] = []
            if dom is not None:
                volumes = [v for s in domainxml.defined_xml(dom).findall("devices/disk/source")
                           if (v := s.get("volume"))]
                self._undefine(dom)
            storage.delete_volumes(self.factory, conn, opts, volumes, doomed)

        self._call(host, "destroying " + domain_name(vm_uid), remove)
        if not is_remote_uri(host.uri):
            with suppress(FileNotFoundError):
                os.remove(self.console_path(host, vm_uid, opts))
        shutil.rmtree(self._config_dir(vm_uid), ignore_errors=True)

    def _undefine(self, dom: Domain) -> None:
        libvirt = lv()
        if dom.isActive():
            dom.destroy()
        try:
            dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() not in (libvirt.VIR_ERR_NO_SUPPORT, libvirt.VIR_ERR_INVALID_ARG):
                raise
            if dom.hasManagedSaveImage(0):
                dom.managedSaveRemove(0)
            dom.undefine()

    def forget(self, host: HostRef, vm_uid: int) -> None:
        if router := self._router(vm_uid):
            router.destroy(self._beside(host), vm_uid)
            return

        def remove(conn: Conn) -> None:
            dom = lookup(conn, vm_uid)
            if dom is not None:
                self._undefine(dom)

        self._call(host, "removing the stale " + domain_name(vm_uid), remove)

    def collect_garbage(self, host: HostRef) -> list[str]:
        opts = self.options(host)
        return self._call(host, "collecting unused volumes", lambda conn: storage.sweep(self.factory, conn, opts))

    # -- disks on a VM ---------------------------------------------------------------------------

    def attach_volume(self, host: HostRef, vm_uid: int, disk: DiskSpec) -> None:
        opts = self.options(host)

        def attach(conn: Conn) -> None:
            dom = lookup(conn, vm_uid)
            if dom is None:
                raise DriverError(f"{domain_name(vm_uid)} is not on host {host.name}", retry_elsewhere=False)
            defined = domainxml.defined_xml(dom)
            if domainxml.disk_of(defined, disk.uid) is not None:
                return
            storage.ensure_volume(self.factory, conn, host, opts, disk,
                                  lambda text: self._note(host, vm_uid, text, opts))
            dev = domainxml.free_target(defined)
            domainxml.change_device(dom, defined, domainxml.disk_element(opts, disk, dev), attach=True)
            self._note(host, vm_uid, f"gstack: disk {disk.name} attached as {dev} ({disk.device_name})", opts)

        self._call(host, f"attaching disk {disk.name} to {domain_name(vm_uid)}", attach, retry_elsewhere=False)

    def detach_volume(self, host: HostRef, vm_uid: int, disk: DiskSpec) -> None:
        def detach(conn: Conn) -> None:
            dom = lookup(conn, vm_uid)
            if dom is None:
                return
            defined = domainxml.defined_xml(dom)
            element = domainxml.disk_of(defined, disk.uid)
            if element is None:
                return
            domainxml.change_device(dom, defined, element, attach=False)
            self._note(host, vm_uid, f"gstack: disk {disk.name} detached ({disk.device_name})")

        self._call(host, f"detaching disk {disk.name} from {domain_name(vm_uid)}", detach, retry_elsewhere=False)

    # -- the serial console ----------------------------------------------------------------------

    def serial_output(self, vm_uid: int, start: int) -> tuple[str, int, int]:
        if router := self._router(vm_uid):
            return router.serial_output(vm_uid, start)
        host = self._host_of(vm_uid)
        if host is None:
            return "", 0, 0
        size, data = console.read_tail(host, self.console_path(host, vm_uid))
        return console.window(size, data, start)

    def serial_write(self, host: HostRef, vm_uid: int, data: str) -> None:
        """Type ``data`` on serial port 1 (the console proxy's interactive console); what the guest
        answers arrives in the serial log that :meth:`serial_output` reads."""
        if router := self._router(vm_uid):
            router.serial_write(self._beside(host), vm_uid, data)
            return

        def write(conn: Conn) -> None:
            dom = running(conn, vm_uid, host.name)
            if not is_test_uri(host.uri):
                console.type_on(conn, dom, data)
                return
            # no guest (and no virDomainOpenConsole) to type on: the simulated guest answers
            res = self._instance(vm_uid)
            name = res.name if res is not None else domain_name(vm_uid)
            console.answer_as_guest(host, self.console_path(host, vm_uid), name, data, self._console_lock)

        self._call(host, "writing to the serial console of " + domain_name(vm_uid), write, retry_elsewhere=False)

    # -- what the host really has -------------------------------------------------------------

    def list_instances(self, host: HostRef) -> dict[int, str]:
        """uid -> running | shutoff | paused. A managed-saved domain counts as paused (suspended)."""
        libvirt = lv()

        def states(conn: Conn) -> dict[int, str]:
            out = {}
            for dom in conn.listAllDomains(0):
                uid = uid_of(dom.name(), DOMAIN_PREFIX)
                if uid is None:
                    continue
                state = dom.state()[0]
                if state in (libvirt.VIR_DOMAIN_PAUSED, libvirt.VIR_DOMAIN_PMSUSPENDED):
                    out[uid] = "paused"
                elif state in (libvirt.VIR_DOMAIN_RUNNING, libvirt.VIR_DOMAIN_BLOCKED, libvirt.VIR_DOMAIN_SHUTDOWN):
                    out[uid] = "running"
                else:
                    out[uid] = "paused" if dom.hasManagedSaveImage(0) else "shutoff"
            return out

        found = self._call(host, "listing domains", states)
        if self._dataplane(host):  # the host's routers, beside it
            assert self.routers is not None
            found.update(self.routers.list_instances(self._beside(host)))
        return found

    def cpu_times(self, host: HostRef, vm_uids: list[int]) -> dict[int, float]:
        """``virDomainGetCPUStats`` (the total ``cpu_time``, nanoseconds) of each running domain; a
        hypervisor without it (libvirt's test driver) answers ``virDomainGetInfo``'s cpuTime."""
        libvirt = lv()
        wanted = set(vm_uids)

        def read(conn: Conn) -> dict[int, float]:
            out: dict[int, float] = {}
            for dom in conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE):
                uid = uid_of(dom.name(), DOMAIN_PREFIX)
                if uid is None or uid not in wanted:
                    continue
                try:
                    nanos = dom.getCPUStats(True)[0]["cpu_time"]
                except (libvirt.libvirtError, IndexError, KeyError):
                    nanos = dom.info()[4]
                out[uid] = nanos / 1e9
            return out

        times = self._call(host, "reading CPU statistics", read)
        if self._dataplane(host):
            assert self.routers is not None
            times.update(self.routers.cpu_times(self._beside(host), [u for u in vm_uids if u not in times]))
        return times

    # -- system VMs ------------------------------------------------------------------------------

    def push_config(self, host: HostRef, vm_uid: int, files: Mapping[str, str | None]) -> None:
        """A router beside the host (``dataplane=netns``) gets the files as the netns driver's routers
        do: written into its /etc and loaded by its dnsmasq, nftables and HAProxy. A domain of a
        ``test://`` host (which runs no guest) keeps them in the driver's state directory, as a
        config drive would; a domain on a real host would need a guest agent in the router image,
        which is not built (put its routers beside it with ``dataplane=netns``)."""
        if router := self._router(vm_uid):
            router.push_config(self._beside(host), vm_uid, files)
            return

        def write(conn: Conn) -> None:
            running(conn, vm_uid, host.name)  # files go only to a running router
            if not is_test_uri(host.uri):
                raise DriverError(f"host {host.name}: files reach a system VM of a libvirt host only when it "
                                  "runs beside the host (dataplane=netns)", retry_elsewhere=False)
            for path, content in files.items():
                target = os.path.normpath(os.path.join(self._config_dir(vm_uid), path.lstrip("/")))
                if not target.startswith(self._config_dir(vm_uid) + os.sep):
                    raise DriverError(f"bad configuration path {path}", retry_elsewhere=False)
                if content is None:
                    with suppress(FileNotFoundError):
                        os.remove(target)
                    continue
                os.makedirs(os.path.dirname(target), exist_ok=True)
                with open(target, "w", encoding="utf-8") as f:
                    f.write(content)

        self._call(host, "pushing configuration to " + domain_name(vm_uid), write, retry_elsewhere=False)

    def _config_dir(self, vm_uid: int) -> str:
        return os.path.join(self.state_dir, "config", domain_name(vm_uid))

    def release_host(self, host: HostRef) -> None:
        """The host's routers beside it go with it (its domains stay: they outlive gstack). Not
        judged by the host's options: its row is gone by now; the netns driver knows its VMs' host."""
        if self.routers is not None and not is_remote_uri(host.uri):
            self.routers.release_host(self._beside(host))

    def domain_xml_of(self, host: HostRef, vm_uid: int, inactive: bool = False) -> str | None:
        """The domain XML libvirt stores for the VM (``gstack admin host domains --xml``, tests)."""

        def read(conn: Conn) -> str | None:
            dom = lookup(conn, vm_uid)
            return str(dom.XMLDesc(lv().VIR_DOMAIN_XML_INACTIVE if inactive else 0)) if dom is not None else None

        return self._call(host, "reading " + domain_name(vm_uid), read)

