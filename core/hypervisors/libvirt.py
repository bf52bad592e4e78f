"""The libvirt driver: real VMs on KVM/QEMU hosts (and libvirt's ``test://`` driver in CI).

A host is a libvirt connection URI (``qemu:///system``, ``qemu+ssh://root@kvm1/system``,
``test:///default``). The driver keeps one open connection per URI per process: libvirt
connections are thread-safe, and a ``test://`` host's state lives in the connection.

What gstack keeps on a host:

* a domain ``gstack-<instance uid>`` per VM, its domain XML rendered from the machine type, the
  disks, the NICs and a serial console whose output is logged to a file (what
  ``getSerialPortOutput`` reads); the gstack ids are in ``<metadata>``;
* a volume ``gstack-disk-<disk uid>.qcow2`` per disk in the disk pool (``gstack-disks``), made
  when a VM first uses the disk: from the image (a qcow2 overlay on the image volume, or a copy
  with ``image_copy``) or empty;
* the images, as volumes of the image pool (``gstack-images``) named after the image or its
  family: ``debian-12-bookworm-v20241009.qcow2`` or ``debian-12.qcow2``.

Per-host settings are the host's ``options`` (JSON, ``gstack admin host add --option k=v``):
``pool``, ``pool_path``, ``image_pool``, ``image_pool_path``, ``image_copy``, ``networks``
(gstack network -> ``network:NAME`` or ``bridge:NAME``, key ``*`` for the rest), ``console_dir``,
``shutdown_timeout``.

Where the test driver lacks a call, the driver degrades and says so in the serial log: live
attach/detach becomes a change of the persistent definition, and a ``test://`` host (which runs
no guest) gets its console lines written by gstack itself; what is typed on its interactive
serial console (which the test driver cannot open) is answered in the log by the simulator's
guest (a getty, then a small shell). Suspend is a managed save (the
VM's memory goes to disk and the host's memory is freed); a driver without managed save pauses.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import subprocess
import tempfile
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable
from contextlib import suppress
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from core.hypervisors.base import DiskSpec, DriverError, HostRef, HostStats, HypervisorDriver, NicSpec, VmSpec
from core.hypervisors.simguest import answer
from core.models import Host, Resource

log = logging.getLogger("gstack.libvirt")

XMLNS = "https://gstack.dev/xmlns/libvirt/1"
ET.register_namespace("gstack", XMLNS)
DOMAIN_PREFIX = "gstack-"
VOLUME_PREFIX = "gstack-disk-"
MAX_CONSOLE = 1024 * 1024  # GCE keeps the last 1 MB of serial output
GIB = 1024**3

DEFAULTS = {
    "pool": "gstack-disks",
    "pool_path": "/var/lib/gstack/disks",
    "image_pool": "gstack-images",
    "image_pool_path": "/var/lib/gstack/images",
    "image_copy": False,
    "networks": {"*": "network:default"},
    "shutdown_timeout": 60.0,
}
IMAGE_SUFFIXES = (".qcow2", ".img", ".raw", "")


_MODULE = None


def _libvirt():
    """libvirt-python, imported when a libvirt host is first used (the simulator needs none)."""
    global _MODULE
    if _MODULE is None:
        try:
            import libvirt
        except ImportError as exc:  # pragma: no cover - depends on the installation
            raise DriverError("libvirt-python is not installed (pip install 'gstack[libvirt]')",
                              retry_elsewhere=False) from exc
        # Failures arrive as exceptions; libvirt's default handler would print each one to stderr too.
        libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
        _MODULE = libvirt
    return _MODULE


def domain_name(vm_uid: int) -> str:
    return f"{DOMAIN_PREFIX}{vm_uid}"


def domain_uuid(vm_uid: int) -> str:
    """The same UUID whenever the domain is (re)defined: libvirt refuses a new one for a known name."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{XMLNS}#{vm_uid}"))


def volume_name(disk_uid: int) -> str:
    return f"{VOLUME_PREFIX}{disk_uid}.qcow2"


def _uid_of(name: str, prefix: str) -> int | None:
    rest = name[len(prefix):].removesuffix(".qcow2") if name.startswith(prefix) else ""
    return int(rest) if rest.isdigit() else None


def is_test_uri(uri: str) -> bool:
    return uri.startswith("test:")


def is_remote_uri(uri: str) -> bool:
    return bool(urlsplit(uri).hostname) and urlsplit(uri).hostname not in ("localhost", "127.0.0.1", "::1")


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    el = ET.SubElement(parent, tag, {k.rstrip("_"): v for k, v in attrs.items()})
    if text is not None:
        el.text = text
    return el


def _device_letter(n: int) -> str:
    """0 -> a, 25 -> z, 26 -> aa: the suffix of sdX names."""
    out = ""
    n += 1
    while n:
        n, r = divmod(n - 1, 26)
        out = chr(97 + r) + out
    return out


class LibvirtDriver(HypervisorDriver):
    name = "libvirt"
    capabilities = frozenset({"suspend", "live-attach", "serial-console", "reconcile"})

    def __init__(self, factory: sessionmaker, state_dir: str | None = None,
                 opener: Callable[[str], object] | None = None):
        self.factory = factory
        self.state_dir = state_dir or os.path.join(tempfile.gettempdir(), "gstack-libvirt")
        self._opener = opener
        self._connections: dict[str, object] = {}
        self._lock = threading.Lock()
        self._console_lock = threading.Lock()
        self._guests: dict[str, tuple[str, str, str]] = {}

    # -- connections ---------------------------------------------------------------------------

    def connection(self, uri: str):
        """The process's open connection to ``uri``, opened (again) when missing or dead."""
        lv = _libvirt()
        with self._lock:
            conn = self._connections.get(uri)
            if conn is not None:
                try:
                    if conn.isAlive():
                        return conn
                except lv.libvirtError:
                    pass
                with suppress(lv.libvirtError):
                    conn.close()
            try:
                conn = self._opener(uri) if self._opener else lv.open(uri)
            except lv.libvirtError as exc:
                raise DriverError(f"cannot connect to {uri}: {exc.get_error_message()}") from exc
            self._connections[uri] = conn
            return conn

    def close(self) -> None:
        lv = _libvirt()
        with self._lock:
            for conn in self._connections.values():
                with suppress(lv.libvirtError):
                    conn.close()
            self._connections.clear()

    def _call(self, host: HostRef, what: str, fn: Callable, retry_elsewhere: bool = True):
        """Run ``fn(conn)``; a libvirt failure becomes a DriverError naming the host."""
        lv = _libvirt()
        conn = self.connection(host.uri)
        try:
            return fn(conn)
        except lv.libvirtError as exc:
            if exc.get_error_domain() in (lv.VIR_FROM_RPC, lv.VIR_FROM_REMOTE):
                with self._lock:  # the connection broke: the next call reconnects
                    self._connections.pop(host.uri, None)
            raise DriverError(f"{what} on host {host.name}: {exc.get_error_message()}", retry_elsewhere) from exc

    # -- settings from the database --------------------------------------------------------------

    def options(self, host: HostRef) -> dict:
        with self.factory() as session:
            raw = session.scalar(select(Host.options).where(Host.id == host.id))
        opts = dict(DEFAULTS)
        if raw:
            opts.update(json.loads(raw))
        return opts

    def _instance(self, vm_uid: int) -> Resource | None:
        with self.factory() as session:
            return session.scalar(select(Resource).where(Resource.uid == vm_uid, Resource.collection == "instances"))

    def console_path(self, host: HostRef, vm_uid: int, opts: dict | None = None) -> str:
        opts = opts if opts is not None else self.options(host)
        directory = opts.get("console_dir")
        if not directory:
            if is_test_uri(host.uri):
                directory = os.path.join(self.state_dir, "console")
            elif urlsplit(host.uri).path == "/session":
                directory = os.path.join(os.path.expanduser("~"), ".cache", "libvirt", "qemu", "log")
            else:
                directory = "/var/log/libvirt/qemu"
        return os.path.join(directory, f"{domain_name(vm_uid)}-serial.log")

    # -- host ------------------------------------------------------------------------------------

    def host_stats(self, host: HostRef) -> HostStats:
        def stats(conn) -> HostStats:
            _model, memory_mb, cpus, *_ = conn.getInfo()
            free_mb = conn.getFreeMemory() // (1024 * 1024)
            running = sum(1 for d in conn.listAllDomains(_libvirt().VIR_CONNECT_LIST_DOMAINS_ACTIVE)
                          if d.name().startswith(DOMAIN_PREFIX))
            storage = free = 0
            with suppress(_libvirt().libvirtError):
                pool = conn.storagePoolLookupByName(self.options(host)["pool"])
                _state, capacity, _allocation, available = pool.info()
                storage, free = capacity // GIB, available // GIB
            return HostStats(cpus, memory_mb, free_mb, running, storage, free, conn.getHostname())

        return self._call(host, "reading host statistics", stats)

    def shares_state(self, host: HostRef) -> bool:
        return not is_test_uri(host.uri)

    # -- storage ---------------------------------------------------------------------------------

    def _pool(self, conn, name: str, path: str):
        """The storage pool ``name``, defined as a directory pool at ``path`` and started if need be."""
        lv = _libvirt()
        try:
            pool = conn.storagePoolLookupByName(name)
        except lv.libvirtError:
            xml = ET.Element("pool", type="dir")
            _sub(xml, "name", name)
            _sub(_sub(xml, "target"), "path", path)
            pool = conn.storagePoolDefineXML(ET.tostring(xml, encoding="unicode"), 0)
            pool.build(0)
            with suppress(lv.libvirtError):
                pool.setAutostart(1)
        if not pool.isActive():
            pool.create(0)
        return pool

    def _image_volume(self, conn, opts: dict, image_url: str):
        """The image pool's volume for ``image_url``: named after the image, else after its family."""
        lv = _libvirt()
        image = image_url.rstrip("/").rsplit("/", 1)[-1]
        names = [image]
        with self.factory() as session:
            parts = image_url.split("/projects/", 1)[-1].split("/")
            row = session.scalar(select(Resource).where(Resource.collection == "images", Resource.project == parts[0],
                                                        Resource.name == image))
            if row is not None and json.loads(row.body).get("family"):
                names.append(json.loads(row.body)["family"])
        pool = self._pool(conn, opts["image_pool"], opts["image_pool_path"])
        for attempt in range(2):
            for name in names:
                for suffix in IMAGE_SUFFIXES:
                    with suppress(lv.libvirtError):
                        return pool.storageVolLookupByName(name + suffix)
            if attempt == 0:
                pool.refresh(0)  # the operator may have dropped the file in since the pool was read
        return None

    def _ensure_volume(self, conn, host: HostRef, opts: dict, disk: DiskSpec, note: Callable[[str], None]):
        """The disk's volume, made on first use: from its image when it has one, else empty."""
        lv = _libvirt()
        pool = self._pool(conn, opts["pool"], opts["pool_path"])
        name = volume_name(disk.uid)
        try:
            vol = pool.storageVolLookupByName(name)
        except lv.libvirtError:
            pool.refresh(0)  # another host sharing the pool may have made it
            try:
                vol = pool.storageVolLookupByName(name)
            except lv.libvirtError:
                vol = None
        if vol is not None:
            if vol.info()[1] < disk.size_gb * GIB:  # the disk was resized while the VM was stopped
                vol.resize(disk.size_gb * GIB, 0)
            return vol
        source = disk.source_image or self._disk_image(disk.uid)
        image = self._image_volume(conn, opts, source) if source else None
        if source and image is None:
            if not is_test_uri(host.uri):
                raise DriverError(
                    f"image {source.rsplit('/', 1)[-1]} is not in storage pool {opts['image_pool']} on host "
                    f"{host.name}: add it there as <image name>.qcow2 or <image family>.qcow2",
                    retry_elsewhere=False)
            note(f"gstack: image {source.rsplit('/', 1)[-1]} is not on this test host; disk {disk.name} is empty")
        xml = ET.Element("volume")
        _sub(xml, "name", name)
        _sub(xml, "capacity", str(disk.size_gb), unit="G")
        _sub(_sub(xml, "target"), "format", type="qcow2")
        if image is None:
            return pool.createXML(ET.tostring(xml, encoding="unicode"), 0)
        image_format = ET.fromstring(image.XMLDesc(0)).find("target/format")
        fmt = image_format.get("type") if image_format is not None else "raw"
        if opts.get("image_copy"):
            vol = pool.createXMLFrom(ET.tostring(xml, encoding="unicode"), image, 0)
            if vol.info()[1] < disk.size_gb * GIB:
                vol.resize(disk.size_gb * GIB, 0)
            return vol
        backing = _sub(xml, "backingStore")
        _sub(backing, "path", image.path())
        _sub(backing, "format", type=fmt)
        return pool.createXML(ET.tostring(xml, encoding="unicode"), 0)

    def _disk_image(self, disk_uid: int) -> str | None:
        with self.factory() as session:
            row = session.scalar(select(Resource).where(Resource.uid == disk_uid, Resource.collection == "disks"))
        return json.loads(row.body).get("sourceImage") if row is not None else None

    # -- domain XML ------------------------------------------------------------------------------

    def _guest(self, conn, uri: str) -> tuple[str, str, str]:
        """(domain type, arch, emulator) the host offers: kvm before qemu; the test driver's own."""
        if uri in self._guests:
            return self._guests[uri]
        caps = ET.fromstring(conn.getCapabilities())
        host_arch = caps.findtext("host/cpu/arch") or "x86_64"
        best: tuple[int, str, str, str] | None = None
        for guest in caps.findall("guest"):
            if guest.findtext("os_type") != "hvm":
                continue
            arch = guest.find("arch")
            for dom in arch.findall("domain"):
                kind = dom.get("type")
                rank = {"kvm": 0, "qemu": 1, "test": 2}.get(kind, 3) * 2 + (arch.get("name") != host_arch)
                if best is None or rank < best[0]:
                    emulator = dom.findtext("emulator") or arch.findtext("emulator") or ""
                    best = (rank, kind, arch.get("name"), emulator)
        if best is None:
            raise DriverError(f"{uri} offers no hvm guests")
        self._guests[uri] = best[1:]
        return self._guests[uri]

    def _network_source(self, opts: dict, nic: NicSpec) -> tuple[str, str]:
        """('network' | 'bridge', name) the NIC plugs into, from the host's ``networks`` map; ('user', '')
        is QEMU's user-mode network (``qemu:///session`` hosts have no other)."""
        mapping = opts.get("networks") or {}
        target = mapping.get(nic.network) or mapping.get("*") or "network:default"
        kind, _, name = target.partition(":")
        if not (kind in ("network", "bridge") and name or kind == "user" and not name):
            raise DriverError(f"bad network mapping '{target}' for network {nic.network}", retry_elsewhere=False)
        return kind, name

    def domain_xml(self, conn, host: HostRef, vm: VmSpec, opts: dict) -> str:
        kind, arch, emulator = self._guest(conn, host.uri)
        res = self._instance(vm.uid)
        dom = ET.Element("domain", type=kind)
        _sub(dom, "name", domain_name(vm.uid))
        _sub(dom, "uuid", domain_uuid(vm.uid))
        _sub(dom, "title", vm.name)
        if res is not None:
            _sub(dom, "description", f"gstack instance projects/{res.project}/{res.scope}/instances/{res.name}")
        meta = ET.SubElement(_sub(dom, "metadata"), f"{{{XMLNS}}}instance")
        for key, value in (("uid", str(vm.uid)), ("name", vm.name), ("hostname", vm.hostname),
                           ("project", res.project if res else ""), ("zone", res.scope.split("/")[-1] if res else "")):
            ET.SubElement(meta, f"{{{XMLNS}}}{key}").text = value
        _sub(dom, "memory", str(vm.memory_mb), unit="MiB")
        _sub(dom, "vcpu", str(vm.vcpus), placement="static")
        os_el = _sub(dom, "os")
        _sub(os_el, "type", "hvm", arch=arch)
        features = _sub(dom, "features")
        _sub(features, "acpi")  # stop is an ACPI power button press first
        _sub(features, "apic")
        if kind == "kvm":
            _sub(dom, "cpu", mode="host-passthrough")
        _sub(dom, "clock", offset="utc")
        _sub(dom, "on_poweroff", "destroy")
        _sub(dom, "on_reboot", "restart")
        _sub(dom, "on_crash", "destroy")
        devices = _sub(dom, "devices")
        if emulator and kind != "test":
            _sub(devices, "emulator", emulator)
        _sub(devices, "controller", type="scsi", index="0", model="virtio-scsi")
        for i, disk in enumerate(vm.disks):
            devices.append(self._disk_element(opts, disk, f"sd{_device_letter(i)}"))
        for nic in vm.nics:
            kind_, name = self._network_source(opts, nic)
            iface = _sub(devices, "interface", type=kind_)
            _sub(iface, "mac", address=nic.mac)
            if name:
                _sub(iface, "source", **{kind_: name})
            _sub(iface, "model", type="virtio")
        serial = _sub(devices, "serial", type="pty")
        _sub(serial, "log", file=self.console_path(host, vm.uid, opts), append="on")
        _sub(serial, "target", port="0")
        console = _sub(devices, "console", type="pty")
        _sub(console, "target", type="serial", port="0")
        rng = _sub(devices, "rng", model="virtio")
        _sub(rng, "backend", "/dev/urandom", model="random")
        _sub(devices, "memballoon", model="virtio")
        ET.indent(dom)
        return ET.tostring(dom, encoding="unicode")

    def _disk_element(self, opts: dict, disk: DiskSpec, target: str) -> ET.Element:
        el = ET.Element("disk", type="volume", device="disk")
        _sub(el, "driver", name="qemu", type="qcow2", discard="unmap")
        _sub(el, "source", pool=opts["pool"], volume=volume_name(disk.uid))
        _sub(el, "target", dev=target, bus="scsi")
        if disk.device_name:  # the guest finds it as /dev/disk/by-id/scsi-0QEMU_QEMU_HARDDISK_<name>
            _sub(el, "serial", disk.device_name[:36])
        if disk.boot:
            _sub(el, "boot", order="1")
        return el

    # -- the serial console ----------------------------------------------------------------------

    def _note(self, host: HostRef, vm_uid: int, text: str, opts: dict | None = None) -> None:
        """A ``test://`` host runs no guest: gstack writes the console lines of what happened."""
        if not is_test_uri(host.uri):
            return
        path = self.console_path(host, vm_uid, opts)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "a", encoding="utf-8") as f:
            f.write(text.rstrip("\n") + "\r\n")

    def serial_output(self, vm_uid: int, start: int) -> tuple[str, int, int]:
        res = self._instance(vm_uid)
        host_id = res and (res.host_id or res.last_host_id)
        if not host_id:
            return "", 0, 0
        with self.factory() as session:
            row = session.get(Host, host_id)
            host = HostRef(row.id, row.name, row.uri) if row is not None else None
        if host is None:
            return "", 0, 0
        path = self.console_path(host, vm_uid)
        size, data = self._read_tail(host, path)
        oldest = size - len(data)
        if start < 0:
            start = size + start
        start = min(max(start, oldest), size)
        return data[start - oldest:].decode(errors="replace"), start, size

    def serial_write(self, host: HostRef, vm_uid: int, data: str) -> None:
        """Type ``data`` on serial port 1 (the console proxy's interactive console); what the guest
        answers arrives in the serial log that :meth:`serial_output` reads."""
        lv = _libvirt()

        def write(conn) -> None:
            dom = self._lookup(conn, vm_uid)
            if dom is None or not dom.isActive():
                raise DriverError(f"{domain_name(vm_uid)} is not running on host {host.name}", retry_elsewhere=False)
            if is_test_uri(host.uri):  # no guest (and no virDomainOpenConsole) to type on
                self._answer_as_guest(host, vm_uid, data)
                return
            stream = conn.newStream(0)
            dom.openConsole(None, stream, lv.VIR_DOMAIN_CONSOLE_FORCE)
            payload, sent = data.encode(), 0
            try:
                while sent < len(payload):
                    sent += stream.send(payload[sent:])
                stream.finish()
            except lv.libvirtError:
                with suppress(lv.libvirtError):
                    stream.abort()
                raise

        self._call(host, "writing to the serial console of " + domain_name(vm_uid), write, retry_elsewhere=False)

    def _answer_as_guest(self, host: HostRef, vm_uid: int, data: str) -> None:
        """A ``test://`` host runs no guest: the simulated guest's answer (a getty, then a small
        shell: core.hypervisors.simguest) to what was typed goes to the serial log, as on the simulator."""
        res = self._instance(vm_uid)
        name = res.name if res is not None else domain_name(vm_uid)
        path = self.console_path(host, vm_uid)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with self._console_lock:  # one typist at a time: each answer follows what the log shows
            _size, tail = self._read_tail(host, path)
            reply = answer(tail[-4096:].decode(errors="replace"), name, data)
            if reply:
                with open(path, "a", encoding="utf-8", newline="") as f:
                    f.write(reply)

    def _read_tail(self, host: HostRef, path: str) -> tuple[int, bytes]:
        """(file size, its last MAX_CONSOLE bytes): locally, or over ssh for a remote host."""
        if not is_remote_uri(host.uri):
            try:
                with open(path, "rb") as f:
                    size = f.seek(0, os.SEEK_END)
                    f.seek(max(0, size - MAX_CONSOLE))
                    return size, f.read()
            except FileNotFoundError:
                return 0, b""
        parts = urlsplit(host.uri)
        target = f"{parts.username}@{parts.hostname}" if parts.username else parts.hostname
        port = ["-p", str(parts.port)] if parts.port else []
        quoted = shlex.quote(path)
        script = f"if [ -f {quoted} ]; then wc -c < {quoted}; tail -c {MAX_CONSOLE} {quoted}; else echo 0; fi"
        try:
            out = subprocess.run(["ssh", "-o", "BatchMode=yes", *port, target, script], capture_output=True,
                                 timeout=20, check=True).stdout
        except (OSError, subprocess.SubprocessError) as exc:
            raise DriverError(f"cannot read the serial log of host {host.name}: {exc}") from exc
        first, _, rest = out.partition(b"\n")
        return int(first.strip() or 0), rest

    # -- domains ---------------------------------------------------------------------------------

    def _lookup(self, conn, vm_uid: int):
        lv = _libvirt()
        try:
            return conn.lookupByName(domain_name(vm_uid))
        except lv.libvirtError as exc:
            if exc.get_error_code() == lv.VIR_ERR_NO_DOMAIN:
                return None
            raise

    def spawn(self, host: HostRef, vm: VmSpec) -> None:
        self._start(host, vm, resume=False)

    def power_on(self, host: HostRef, vm: VmSpec) -> None:
        self._start(host, vm, resume=False)

    def resume(self, host: HostRef, vm: VmSpec) -> None:
        self._start(host, vm, resume=True)

    def _start(self, host: HostRef, vm: VmSpec, resume: bool) -> None:
        """Define (or redefine, to follow machine type and disk changes) and start the domain.

        A domain already running is left alone; a paused one is resumed. Starting a managed-saved
        domain restores it, which is what resume wants; a plain start discards the saved state.
        """
        lv = _libvirt()
        opts = self.options(host)

        def note(text: str) -> None:
            self._note(host, vm.uid, text, opts)

        if not is_remote_uri(host.uri):  # libvirt writes the serial log but makes no directory for it
            os.makedirs(os.path.dirname(self.console_path(host, vm.uid, opts)), exist_ok=True)

        def start(conn) -> None:
            dom = self._lookup(conn, vm.uid)
            if dom is not None:
                state = dom.state()[0]
                if state in (lv.VIR_DOMAIN_PAUSED, lv.VIR_DOMAIN_PMSUSPENDED):
                    dom.resume()
                    note(f"gstack: {domain_name(vm.uid)} resumed")
                    return
                if dom.isActive():
                    return
            for disk in vm.disks:
                self._ensure_volume(conn, host, opts, disk, note)
            saved = dom is not None and dom.hasManagedSaveImage(0)
            if saved and not resume:
                dom.managedSaveRemove(0)
                saved = False
            fresh = dom is None
            if not saved:  # a saved domain keeps the definition it was saved with
                dom = conn.defineXML(self.domain_xml(conn, host, vm, opts))
            try:
                dom.create()
            except lv.libvirtError:
                if fresh:  # the job tries another host: leave nothing behind here
                    with suppress(lv.libvirtError):
                        dom.undefine()
                raise
            if saved:
                note(f"gstack: {domain_name(vm.uid)} restored from its saved state on {host.name}")
            else:
                note(f"gstack: {domain_name(vm.uid)} ({vm.name}) started on {host.name}: {vm.vcpus} vCPUs, "
                     f"{vm.memory_mb} MiB, {len(vm.disks)} disk(s), {len(vm.nics)} NIC(s)")
                note("gstack: libvirt's test driver runs no guest operating system")

        self._call(host, "starting " + domain_name(vm.uid), start)

    def power_off(self, host: HostRef, vm_uid: int) -> None:
        """ACPI shutdown, then destroy after ``shutdown_timeout`` seconds; a saved state is discarded."""
        lv = _libvirt()
        opts = self.options(host)

        def stop(conn) -> None:
            dom = self._lookup(conn, vm_uid)
            if dom is None:
                return
            if dom.hasManagedSaveImage(0):
                dom.managedSaveRemove(0)
            if not dom.isActive():
                return
            if dom.state()[0] == lv.VIR_DOMAIN_RUNNING:
                with suppress(lv.libvirtError):
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
        lv = _libvirt()

        def reset(conn) -> None:
            dom = self._lookup(conn, vm_uid)
            if dom is None or not dom.isActive():
                raise DriverError(f"{domain_name(vm_uid)} is not running on host {host.name}", retry_elsewhere=False)
            try:
                dom.reset(0)
            except lv.libvirtError as exc:
                if exc.get_error_code() != lv.VIR_ERR_NO_SUPPORT:
                    raise
                dom.destroy()
                dom.create()
            self._note(host, vm_uid, f"gstack: {domain_name(vm_uid)} reset")

        self._call(host, "resetting " + domain_name(vm_uid), reset)

    def suspend(self, host: HostRef, vm_uid: int) -> None:
        """Managed save: memory to disk, the domain shut off; pause where managed save is missing."""
        lv = _libvirt()

        def save(conn) -> None:
            dom = self._lookup(conn, vm_uid)
            if dom is None or not dom.isActive():
                return
            try:
                dom.managedSave(0)
                how = "saved to disk (managed save)"
            except lv.libvirtError as exc:
                if exc.get_error_code() != lv.VIR_ERR_NO_SUPPORT:
                    raise
                dom.suspend()
                how = "paused in memory (this host has no managed save)"
            self._note(host, vm_uid, f"gstack: {domain_name(vm_uid)} suspended: {how}")

        self._call(host, "suspending " + domain_name(vm_uid), save)

    def destroy(self, host: HostRef | None, vm_uid: int) -> None:
        """Destroy and undefine the domain, delete its serial log and the volumes of its disks that
        do not outlive it (autoDelete ones no other VM uses, and those already deleted)."""
        lv = _libvirt()
        res = self._instance(vm_uid)
        if host is None:
            host_id = res and (res.host_id or res.last_host_id)
            if not host_id:
                return
            with self.factory() as session:
                row = session.get(Host, host_id)
            if row is None:
                return
            host = HostRef(row.id, row.name, row.uri)
        opts = self.options(host)
        doomed = self._disks_going_with(res)

        def remove(conn) -> None:
            dom = self._lookup(conn, vm_uid)
            volumes: list[str] = []
            if dom is not None:
                volumes = [s.get("volume") for s in ET.fromstring(dom.XMLDesc(lv.VIR_DOMAIN_XML_INACTIVE))
                           .findall("devices/disk/source") if s.get("volume")]
                self._undefine(dom)
            try:
                pool = conn.storagePoolLookupByName(opts["pool"])
            except lv.libvirtError:
                return
            for name in set(volumes) | {volume_name(uid) for uid in doomed}:
                uid = _uid_of(name, VOLUME_PREFIX)
                if uid is not None and (uid in doomed or not self._disk_exists(uid)):
                    with suppress(lv.libvirtError):
                        pool.storageVolLookupByName(name).delete(0)

        self._call(host, "destroying " + domain_name(vm_uid), remove)
        if not is_remote_uri(host.uri):
            with suppress(FileNotFoundError):
                os.remove(self.console_path(host, vm_uid, opts))

    def _undefine(self, dom) -> None:
        lv = _libvirt()
        if dom.isActive():
            dom.destroy()
        try:
            dom.undefineFlags(lv.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | lv.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA)
        except lv.libvirtError as exc:
            if exc.get_error_code() not in (lv.VIR_ERR_NO_SUPPORT, lv.VIR_ERR_INVALID_ARG):
                raise
            if dom.hasManagedSaveImage(0):
                dom.managedSaveRemove(0)
            dom.undefine()

    def _disks_going_with(self, res: Resource | None) -> set[int]:
        """Disk uids that go with the instance: autoDelete and used by it alone."""
        if res is None:
            return set()
        body = json.loads(res.body)
        url = body.get("selfLink", "")
        doomed = set()
        with self.factory() as session:
            for d in body.get("disks", []):
                if not d.get("autoDelete"):
                    continue
                src = d["source"].split("/projects/", 1)[-1].split("/")
                row = session.scalar(select(Resource).where(
                    Resource.project == src[0], Resource.collection == "disks",
                    Resource.scope == "/".join(src[1:3]), Resource.name == src[-1]))
                if row is not None and set(json.loads(row.body).get("users", [])) <= {url}:
                    doomed.add(row.uid)
        return doomed

    def _disk_exists(self, disk_uid: int) -> bool:
        with self.factory() as session:
            return session.scalar(select(Resource.pk).where(Resource.uid == disk_uid,
                                                           Resource.collection == "disks")) is not None

    def forget(self, host: HostRef, vm_uid: int) -> None:
        def remove(conn) -> None:
            dom = self._lookup(conn, vm_uid)
            if dom is not None:
                self._undefine(dom)

        self._call(host, "removing the stale " + domain_name(vm_uid), remove)

    def collect_garbage(self, host: HostRef) -> list[str]:
        """Delete the pool's gstack volumes whose disks no longer exist. Volumes are listed before
        the database is read: a volume is made only for a disk already committed."""
        lv = _libvirt()
        opts = self.options(host)

        def sweep(conn) -> list[str]:
            try:
                pool = conn.storagePoolLookupByName(opts["pool"])
            except lv.libvirtError:
                return []
            pool.refresh(0)
            found = {uid: name for name in pool.listVolumes() if (uid := _uid_of(name, VOLUME_PREFIX)) is not None}
            if not found:
                return []
            with self.factory() as session:
                # A system VM's root volume is named after the system VM (it has no disk row).
                live = set(session.scalars(select(Resource.uid).where(
                    Resource.collection.in_(("disks", "systemvms")), Resource.uid.in_(list(found)))))
            gone = []
            for uid, name in sorted(found.items()):
                if uid not in live:
                    with suppress(lv.libvirtError):
                        pool.storageVolLookupByName(name).delete(0)
                        gone.append(name)
            return gone

        return self._call(host, "collecting unused volumes", sweep)

    # -- disks on a VM ---------------------------------------------------------------------------

    def attach_volume(self, host: HostRef, vm_uid: int, disk: DiskSpec) -> None:
        lv = _libvirt()
        opts = self.options(host)

        def attach(conn) -> None:
            dom = self._lookup(conn, vm_uid)
            if dom is None:
                raise DriverError(f"{domain_name(vm_uid)} is not on host {host.name}", retry_elsewhere=False)
            defined = ET.fromstring(dom.XMLDesc(lv.VIR_DOMAIN_XML_INACTIVE))
            if any(s.get("volume") == volume_name(disk.uid) for s in defined.findall("devices/disk/source")):
                return
            self._ensure_volume(conn, host, opts, disk, lambda text: self._note(host, vm_uid, text, opts))
            used = {t.get("dev") for t in defined.findall("devices/disk/target")}
            dev = next(f"sd{_device_letter(i)}" for i in range(len(used) + 1) if f"sd{_device_letter(i)}" not in used)
            element = self._disk_element(opts, disk, dev)
            self._change_device(dom, defined, element, attach=True)
            self._note(host, vm_uid, f"gstack: disk {disk.name} attached as {dev} ({disk.device_name})", opts)

        self._call(host, f"attaching disk {disk.name} to {domain_name(vm_uid)}", attach, retry_elsewhere=False)

    def detach_volume(self, host: HostRef, vm_uid: int, disk: DiskSpec) -> None:
        lv = _libvirt()

        def detach(conn) -> None:
            dom = self._lookup(conn, vm_uid)
            if dom is None:
                return
            defined = ET.fromstring(dom.XMLDesc(lv.VIR_DOMAIN_XML_INACTIVE))
            element = next((d for d in defined.findall("devices/disk")
                            if d.find("source") is not None and d.find("source").get("volume") == volume_name(disk.uid)),
                           None)
            if element is None:
                return
            self._change_device(dom, defined, element, attach=False)
            self._note(host, vm_uid, f"gstack: disk {disk.name} detached ({disk.device_name})")

        self._call(host, f"detaching disk {disk.name} from {domain_name(vm_uid)}", detach, retry_elsewhere=False)

    def _change_device(self, dom, defined: ET.Element, element: ET.Element, attach: bool) -> None:
        """Hot-plug (live and persistent); a driver without hot-plug gets the persistent change only,
        which the VM sees at its next start."""
        lv = _libvirt()
        xml = ET.tostring(element, encoding="unicode")
        flags = lv.VIR_DOMAIN_AFFECT_CONFIG | (lv.VIR_DOMAIN_AFFECT_LIVE if dom.isActive() else 0)
        try:
            if attach:
                dom.attachDeviceFlags(xml, flags)
            else:
                dom.detachDeviceFlags(xml, flags)
            return
        except lv.libvirtError as exc:
            if exc.get_error_code() != lv.VIR_ERR_NO_SUPPORT:
                raise
        devices = defined.find("devices")
        if attach:
            devices.append(element)
        else:
            devices.remove(element)
        dom.connect().defineXML(ET.tostring(defined, encoding="unicode"))

    # -- what the host really has -------------------------------------------------------------

    def list_instances(self, host: HostRef) -> dict[int, str]:
        """uid -> running | shutoff | paused. A managed-saved domain counts as paused (suspended)."""
        lv = _libvirt()

        def states(conn) -> dict[int, str]:
            out = {}
            for dom in conn.listAllDomains(0):
                uid = _uid_of(dom.name(), DOMAIN_PREFIX)
                if uid is None:
                    continue
                state = dom.state()[0]
                if state in (lv.VIR_DOMAIN_PAUSED, lv.VIR_DOMAIN_PMSUSPENDED):
                    out[uid] = "paused"
                elif state in (lv.VIR_DOMAIN_RUNNING, lv.VIR_DOMAIN_BLOCKED, lv.VIR_DOMAIN_SHUTDOWN):
                    out[uid] = "running"
                else:
                    out[uid] = "paused" if dom.hasManagedSaveImage(0) else "shutoff"
            return out

        return self._call(host, "listing domains", states)

    def domain_xml_of(self, host: HostRef, vm_uid: int, inactive: bool = False) -> str | None:
        """The domain XML libvirt stores for the VM (``gstack admin host domains --xml``, tests)."""
        lv = _libvirt()

        def read(conn) -> str | None:
            dom = self._lookup(conn, vm_uid)
            return dom.XMLDesc(lv.VIR_DOMAIN_XML_INACTIVE if inactive else 0) if dom is not None else None

        return self._call(host, "reading " + domain_name(vm_uid), read)
