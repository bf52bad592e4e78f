"""The netns driver: each VM a network namespace on this machine with our guest agent in it.

A VM's files live in ``STATE/vms/<uid>/``: ``vm.json`` (the host it belongs to, its links and
disks), ``guest.json`` (what the agent boots from), ``serial.log`` (its serial port 1, kept to its
last bytes by :mod:`core.hypervisors.netns.serial`), the agent's pid, sshd's keys and config. Its
power state is read from the kernel each time: ``running`` when the agent runs in its namespace,
``paused`` when its processes are stopped (SIGSTOP keeps their memory: the ``suspend``
capability), ``shutoff`` when only the definition is left.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from core.hypervisors.base import (
    PUSH_CONFIG,
    SERIAL_CONSOLE,
    SUSPEND,
    DiskSpec,
    DriverError,
    HostRef,
    HostStats,
    HypervisorDriver,
    VmSpec,
)
from core.hypervisors.netns import dataplane, links, serial
from core.hypervisors.netns.agent import CONSOLE_FIFO
from core.links import parse_ref
from core.models import Host, Project, Resource
from core.resources import store

LOCAL_URIS = ("netns://local", "netns:///")
AGENT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "agent.py")
CONSOLE_ECHO_WAIT = 1.0
GCE_METADATA = "http://169.254.169.254"  # routed by the guest's virtual router to its metadata proxy
ROLE = "gstack-systemvm-role"  # a system VM's metadata: its role and (a router's) network
DEFAULTS: dict[str, Any] = {"metadata_url": None, "boot_timeout": 15.0, "shutdown_timeout": 30.0}


class NetnsDriver(HypervisorDriver):
    name = "netns"
    capabilities = frozenset({SUSPEND, PUSH_CONFIG, SERIAL_CONSOLE})

    def __init__(self, factory: sessionmaker[Session], state_dir: str | None = None):
        self.factory = factory
        self.state_dir = state_dir or os.path.join(tempfile.gettempdir(), "gstack-netns")

    # -- where things are --------------------------------------------------------------------------

    def _dir(self, vm_uid: int) -> str:
        return os.path.join(self.state_dir, "vms", str(vm_uid))

    def _meta(self, vm_uid: int) -> dict[str, Any] | None:
        try:
            with open(os.path.join(self._dir(vm_uid), "vm.json")) as f:
                meta: dict[str, Any] = json.load(f)
                return meta
        except (OSError, ValueError):
            return None

    def _write(self, vm_uid: int, name: str, data: dict[str, Any]) -> None:
        path = os.path.join(self._dir(vm_uid), name)
        with open(path + ".tmp", "w") as f:
            json.dump(data, f)
        os.replace(path + ".tmp", path)

    @contextmanager
    def _links_lock(self) -> Iterator[None]:
        """Held while links are made or removed: another process's teardown must not delete a bridge
        between this one's making it and plugging a VM into it."""
        os.makedirs(self.state_dir, exist_ok=True)
        with open(os.path.join(self.state_dir, "links.lock"), "w") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            yield

    def _vm_uids(self) -> list[int]:
        folder = os.path.join(self.state_dir, "vms")
        return [int(n) for n in os.listdir(folder) if n.isdigit()] if os.path.isdir(folder) else []

    def bridge_of(self, host: HostRef, network: str) -> str:
        """The bridge of ``network`` (its URL) on ``host``: where a virtual router of that network
        plugs in beside the VMs."""
        return links.bridge(self._scope(host), network)

    def has_vm(self, vm_uid: int) -> bool:
        """Whether the VM is one of this driver's (another driver that lends it routers asks)."""
        return self._meta(vm_uid) is not None

    def guest_bridges(self, host: HostRef, vm: VmSpec) -> list[str | None]:
        """The bridge each NIC of ``vm`` plugs into when another driver runs it beside this
        machine's routers (a libvirt domain's ``<interface type='bridge'>``), made now so the domain
        can start; None for a NIC on no network of gstack's."""
        self._check(host)
        out: list[str | None] = []
        with self._links_lock():
            for net in self._guest_networks(vm):
                if "/networks/" not in net["network"]:
                    out.append(None)
                    continue
                bridge = self.bridge_of(host, net["network"])
                self._record_bridge(host, bridge)
                links.ensure_bridge(bridge)
                out.append(bridge)
        return out

    @property
    def metadata_socket(self) -> str:
        """Where gstack's metadata server listens for the routers' metadata proxies."""
        return os.path.join(self.state_dir, "metadata.sock")

    def _scope(self, host: HostRef) -> str:
        return f"{self.state_dir}#{host.id}"

    def options(self, host: HostRef) -> dict[str, Any]:
        with self.factory() as session:
            raw = session.scalar(select(Host.options).where(Host.id == host.id))
        return {**DEFAULTS, **(json.loads(raw) if raw else {})}

    def _check(self, host: HostRef) -> None:
        """The host is this machine and this machine can run namespaces, else the host is unreachable."""
        if host.uri not in LOCAL_URIS:
            raise DriverError(f"host {host.name}: the netns driver runs VMs on this machine only "
                              f"(netns://local), not {host.uri}")
        why = links.missing_tools()
        if why:
            raise DriverError(f"host {host.name}: {why}")

    def _agent_pid(self, vm_uid: int) -> int | None:
        """The agent's pid when it runs in the VM's namespace."""
        try:
            with open(os.path.join(self._dir(vm_uid), "agent.pid")) as f:
                pid = int(f.read())
        except (OSError, ValueError):
            return None
        return pid if pid in links.pids(links.namespace(vm_uid)) else None

    def _state(self, vm_uid: int) -> str:
        if self._agent_pid(vm_uid) is None:
            return "shutoff"
        return "paused" if os.path.exists(os.path.join(self._dir(vm_uid), "paused")) else "running"

    def _note(self, vm_uid: int, text: str) -> None:
        """A line on the VM's serial port from the 'firmware' (the driver), as a VM's BIOS prints."""
        serial.note(self._dir(vm_uid), text)

    # -- the host ----------------------------------------------------------------------------------

    def host_stats(self, host: HostRef) -> HostStats:
        self._check(host)
        meminfo: dict[str, int] = {}
        with open("/proc/meminfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                meminfo[key] = int(value.split()[0])
        running = sum(1 for state in self.list_instances(host).values() if state == "running")
        return HostStats(os.cpu_count() or 1, meminfo["MemTotal"] // 1024, meminfo.get("MemAvailable", 0) // 1024,
                         running, hostname=socket.gethostname())

    def list_instances(self, host: HostRef) -> dict[int, str]:
        """Also keeps each VM's serial log to its last megabyte or two (:func:`serial.trim`): the
        host monitor asks for this list every round, whether or not anyone reads the logs."""
        self._check(host)
        found = {}
        for uid in self._vm_uids():
            meta = self._meta(uid)
            if meta is not None and meta["host_id"] == host.id:
                found[uid] = self._state(uid)
                serial.trim(self._dir(uid))
        return found

    def cpu_times(self, host: HostRef, vm_uids: list[int]) -> dict[int, float]:
        """The user and system time of the processes now in the VM's namespace (those that ended are
        not counted: a reading may go back, which callers take as a new start)."""
        self._check(host)
        ticks = os.sysconf("SC_CLK_TCK")
        times = {}
        for uid in vm_uids:
            meta = self._meta(uid)
            if meta is None or meta["host_id"] != host.id or self._state(uid) != "running":
                continue
            total = 0
            for pid in links.pids(links.namespace(uid)):
                try:
                    with open(f"/proc/{pid}/stat") as f:
                        fields = f.read().rsplit(")", 1)[1].split()
                    total += int(fields[11]) + int(fields[12])  # utime, stime
                except (OSError, IndexError, ValueError):
                    continue
            times[uid] = total / ticks
        return times

    # -- starting ------------------------------------------------------------------------------------

    def spawn(self, host: HostRef, vm: VmSpec) -> None:
        self._check(host)
        meta = self._meta(vm.uid)
        state = self._state(vm.uid) if meta is not None else None
        if meta is not None and meta["host_id"] == host.id and state == "running":
            return
        if meta is not None and meta["host_id"] == host.id and state == "paused":
            self._continue(vm.uid)
            return
        new = meta is None
        try:
            self._define(host, vm, meta)
            self._boot(host, vm.uid)
        except DriverError as exc:
            tail = self.serial_output(vm.uid, -2000)[0].strip().splitlines()[-5:]
            self._teardown(vm.uid, self._meta(vm.uid), keep_files=not new)
            raise DriverError(f"{exc}; its serial port said: {' | '.join(tail)}") from exc

    def resume(self, host: HostRef, vm: VmSpec) -> None:
        """A paused VM runs on; one this machine does not have is started as :meth:`spawn` would."""
        self.spawn(host, vm)

    def _define(self, host: HostRef, vm: VmSpec, old: dict[str, Any] | None) -> None:
        """(Re)make the namespace and its links to follow ``vm``, and the files the agent boots from."""
        if old is not None:
            self._teardown(vm.uid, old, keep_files=True)
        os.makedirs(self._dir(vm.uid), exist_ok=True)
        ns = links.namespace(vm.uid)
        nics, guest_nics = [], []
        networks = self._networks(vm)
        with self._links_lock():
            links.ensure_namespace(ns)
            for i, (nic, net) in enumerate(zip(vm.nics, networks, strict=True)):
                bridge = self.bridge_of(host, net["network"])
                self._record_bridge(host, bridge)
                links.ensure_bridge(bridge)
                if net["network"] == dataplane.PUBLIC:
                    self._record_internet(host)
                    dataplane.ensure_internet(self._scope(host), bridge)
                veth = links.veth(vm.uid, i)
                links.plug(ns, veth, f"eth{i}", nic.mac, bridge)
                nics.append({"veth": veth, "bridge": bridge, "network": net["network"]})
                guest_nics.append({"name": f"eth{i}", "mac": nic.mac, "ip": net["ip"], "prefix": net["prefix"],
                                   "gateway": net["gateway"], "dhcp": net.get("dhcp", False)})
        boots = (old or {}).get("boots", 0)
        router = dict(vm.metadata).get(ROLE) == "router"
        self._write(vm.uid, "vm.json", {"host_id": host.id, "name": vm.name, "nics": nics, "boots": boots,
                                        "disks": [d.uid for d in vm.disks],
                                        "network": dict(vm.metadata).get("gstack-network") if router else None})
        instance, project = self._metadata(vm)
        self._write(vm.uid, "guest.json", {"name": vm.name, "hostname": vm.hostname, "nics": guest_nics,
                                           "metadata": instance, "project_metadata": project,
                                           "metadata_url": None if router else
                                           self.options(host)["metadata_url"] or GCE_METADATA})

    def _networks(self, vm: VmSpec) -> list[dict[str, Any]]:
        """Each NIC's network (its URL, which names the bridge), address, prefix length and gateway.

        A guest's address comes by DHCP from its virtual router (``ip``: IPAM's, should the lease be
        late); a router's are static: its transit address on the public bridge, its subnets'
        gateways on its network's."""
        if dict(vm.metadata).get(ROLE) == "router":
            return self._router_networks(vm)
        # A NIC on a network of gstack's (its URL) is served by that network's router; a bare name
        # (a VM that is no instance, as the conformance suite's) keeps the address it was given.
        return [{**net, "ip": nic.ip, "dhcp": "/networks/" in net["network"]}
                for nic, net in zip(vm.nics, self._guest_networks(vm), strict=True)]

    def _router_networks(self, vm: VmSpec) -> list[dict[str, Any]]:
        network = dict(vm.metadata).get("gstack-network", "")
        out = []
        with self.factory() as session:
            for nic in vm.nics:
                if nic.network == dataplane.PUBLIC:
                    out.append({"network": dataplane.PUBLIC, "ip": dataplane.transit_address(vm.uid),
                                "prefix": dataplane.TRANSIT.prefixlen, "gateway": dataplane.INTERNET_ADDRESS})
                    continue
                prefix = 24
                for sub in session.scalars(select(Resource).where(Resource.collection == "subnetworks",
                                                                  Resource.name == nic.network)):
                    body = store.body_of(sub)
                    if body.get("network") == network and body.get("gatewayAddress", nic.ip) == nic.ip:
                        prefix = int(body["ipCidrRange"].split("/")[1])
                out.append({"network": network, "ip": nic.ip, "prefix": prefix, "gateway": None})
        return out

    def _guest_networks(self, vm: VmSpec) -> list[dict[str, Any]]:
        """Each NIC's network, prefix length and gateway, from its subnetwork where the instance row
        says (a NIC of a VM without one: a /24, no gateway)."""
        with self.factory() as session:
            res = session.scalar(select(Resource).where(Resource.uid == vm.uid))
            body = store.body_of(res) if res is not None else {}
            ifaces = {i.get("name"): i for i in body.get("networkInterfaces", [])}
            out = []
            for nic in vm.nics:
                iface = ifaces.get(nic.name, {})
                net = {"network": iface.get("network", nic.network), "prefix": 24, "gateway": None}
                ref = parse_ref(iface["subnetwork"], project=res.project) if res and iface.get("subnetwork") else None
                sub = store.find_optional(session, ref.project, "subnetworks", ref.scope, ref.name) if ref else None
                if sub is not None:
                    sub_body = store.body_of(sub)
                    net["prefix"] = int(sub_body["ipCidrRange"].split("/")[1])
                    net["gateway"] = sub_body.get("gatewayAddress")
                out.append(net)
            return out

    def _metadata(self, vm: VmSpec) -> tuple[dict[str, str], dict[str, str]]:
        """The instance's metadata and its project's common metadata (ssh-keys may be in either)."""
        with self.factory() as session:
            project_name = session.scalar(select(Resource.project).where(Resource.uid == vm.uid))
            raw = session.scalar(select(Project.common_metadata).where(Project.name == project_name))
        items = json.loads(raw) if raw else []
        return dict(vm.metadata), {i["key"]: i["value"] for i in items}

    def _record_bridge(self, host: HostRef, bridge: str) -> None:
        """Remember which host a bridge serves, so removing the host (or stopping gstack) finds it."""
        folder = os.path.join(self.state_dir, "bridges")
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, bridge), "w") as f:
            f.write(str(host.id))

    def _record_internet(self, host: HostRef) -> None:
        folder = os.path.join(self.state_dir, "internet")
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, str(host.id)), "w") as f:
            f.write(self._scope(host))

    def _remove_internets(self, host_id: int | None) -> None:
        """The simulated internet of ``host_id`` (None: of every host), before its public bridge goes."""
        folder = os.path.join(self.state_dir, "internet")
        with self._links_lock():
            for name in os.listdir(folder) if os.path.isdir(folder) else []:
                if host_id is None or name == str(host_id):
                    with open(os.path.join(folder, name)) as f:
                        dataplane.remove_internet(f.read().strip())
                    os.remove(os.path.join(folder, name))

    def _boot(self, host: HostRef, vm_uid: int) -> None:
        """Start the agent in the namespace and wait until it says the guest is up."""
        folder = self._dir(vm_uid)
        ready = os.path.join(folder, "ready")
        if os.path.exists(ready):
            os.remove(ready)
        meta = self._meta(vm_uid) or {}
        meta["boots"] = meta.get("boots", 0) + 1
        self._write(vm_uid, "vm.json", meta)
        env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
        with open(os.path.join(folder, "serial.log"), "ab") as serial:
            serial.write(f"gstack netns firmware: booting {links.namespace(vm_uid)} (boot {meta['boots']})\r\n".encode())
            serial.flush()
            agent = subprocess.Popen(
                ["ip", "netns", "exec", links.namespace(vm_uid), "unshare", "--uts", sys.executable, AGENT,
                 os.path.join(folder, "guest.json")],
                stdin=subprocess.DEVNULL, stdout=serial, stderr=subprocess.STDOUT, cwd=folder, env=env,
                start_new_session=True)
        with open(os.path.join(folder, "agent.pid"), "w") as f:
            f.write(str(agent.pid))
        threading.Thread(target=agent.wait, daemon=True).start()  # reaps it should it end while we run
        deadline = time.monotonic() + float(self.options(host)["boot_timeout"])
        while not os.path.exists(ready):
            if agent.poll() is not None or time.monotonic() > deadline:
                raise DriverError(f"VM {vm_uid} did not boot on host {host.name}")
            time.sleep(0.02)

    # -- power ---------------------------------------------------------------------------------------

    def _continue(self, vm_uid: int) -> None:
        links.signal_all(links.namespace(vm_uid), signal.SIGCONT)
        path = os.path.join(self._dir(vm_uid), "paused")
        if os.path.exists(path):
            os.remove(path)
            self._note(vm_uid, "[   61.000000] PM: suspend exit")

    def _kill(self, vm_uid: int) -> None:
        """Every process of the VM gone (as the power going off)."""
        ns = links.namespace(vm_uid)
        for _ in range(250):
            if not links.pids(ns):
                break
            links.signal_all(ns, signal.SIGKILL)
            time.sleep(0.02)
        for name in ("paused", "ready"):
            path = os.path.join(self._dir(vm_uid), name)
            if os.path.exists(path):
                os.remove(path)

    def power_off(self, host: HostRef, vm_uid: int) -> None:
        """A clean shutdown: SIGTERM to the agent (which runs ``shutdown-script``), then the rest killed."""
        self._check(host)
        meta = self._meta(vm_uid)
        if meta is None or meta["host_id"] != host.id:
            return
        pid = self._agent_pid(vm_uid)
        if pid is None:
            return
        self._continue(vm_uid)
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + float(self.options(host)["shutdown_timeout"])
        while self._agent_pid(vm_uid) is not None and time.monotonic() < deadline:
            time.sleep(0.02)
        self._kill(vm_uid)

    def reboot(self, host: HostRef, vm_uid: int) -> None:
        """A hard reset: every process killed (no shutdown-script, as GCE's reset), the agent booted again."""
        self._check(host)
        meta = self._meta(vm_uid)
        if meta is None or meta["host_id"] != host.id or self._state(vm_uid) == "shutoff":
            raise DriverError(f"VM {vm_uid} is not running on host {host.name}", retry_elsewhere=False)
        self._kill(vm_uid)
        self._note(vm_uid, "[   50.000000] reboot: Restarting system")
        self._boot(host, vm_uid)

    def suspend(self, host: HostRef, vm_uid: int) -> None:
        self._check(host)
        meta = self._meta(vm_uid)
        if meta is None or meta["host_id"] != host.id or self._state(vm_uid) != "running":
            return
        self._note(vm_uid, "[   60.000000] PM: suspend entry (s2idle)")
        with open(os.path.join(self._dir(vm_uid), "paused"), "w"):
            pass
        links.signal_all(links.namespace(vm_uid), signal.SIGSTOP)

    # -- removal -------------------------------------------------------------------------------------

    def _teardown(self, vm_uid: int, meta: dict[str, Any] | None, keep_files: bool) -> None:
        """The VM's processes, namespace and veths gone, and its bridges when no VM is left on them;
        its files too unless ``keep_files`` (a redefinition keeps its serial log and host keys)."""
        nics = (meta or {}).get("nics", [])
        with self._links_lock():
            links.remove_namespace(links.namespace(vm_uid), [n["veth"] for n in nics])
            for bridge in {n["bridge"] for n in nics}:
                if links.remove_bridge_if_unused(bridge):
                    record = os.path.join(self.state_dir, "bridges", bridge)
                    if os.path.exists(record):
                        os.remove(record)
        if not keep_files:
            shutil.rmtree(self._dir(vm_uid), ignore_errors=True)

    def destroy(self, host: HostRef | None, vm_uid: int) -> None:
        if host is not None:
            self._check(host)
        self._teardown(vm_uid, self._meta(vm_uid), keep_files=False)

    def release_host(self, host: HostRef) -> None:
        """Every VM of the host destroyed and its bridges deleted: nothing of the host is left."""
        for uid in self._vm_uids():
            meta = self._meta(uid)
            if meta is not None and meta["host_id"] == host.id:
                self._teardown(uid, meta, keep_files=False)
        self._remove_internets(host.id)
        self._remove_bridges(host.id)

    def shutdown(self) -> None:
        """``gstack serve`` stops: netns VMs do not outlive it, every VM and bridge is removed."""
        if not os.path.isdir(self.state_dir) or links.missing_tools():
            return
        for uid in self._vm_uids():
            self._teardown(uid, self._meta(uid), keep_files=False)
        self._remove_internets(None)
        self._remove_bridges(None)

    def _remove_bridges(self, host_id: int | None) -> None:
        """The recorded bridges of ``host_id`` (None: of every host) that no VM uses any more."""
        folder = os.path.join(self.state_dir, "bridges")
        with self._links_lock():
            for bridge in os.listdir(folder) if os.path.isdir(folder) else []:
                with open(os.path.join(folder, bridge)) as f:
                    owner = f.read().strip()
                if (host_id is None or owner == str(host_id)) and links.remove_bridge_if_unused(bridge):
                    os.remove(os.path.join(folder, bridge))

    # -- system VMs --------------------------------------------------------------------------------------

    def push_config(self, host: HostRef, vm_uid: int, files: Mapping[str, str | None]) -> None:
        """The files written into the VM's /etc (its overlay) and, in a virtual router, loaded by the
        daemons in its namespace (another VM has nothing that reads them)."""
        self._check(host)
        meta = self._meta(vm_uid)
        if meta is None or meta["host_id"] != host.id or self._state(vm_uid) != "running":
            raise DriverError(f"VM {vm_uid} is not running on host {host.name}", retry_elsewhere=False)
        pid = self._agent_pid(vm_uid)
        if pid is None:
            raise DriverError(f"VM {vm_uid} is not running on host {host.name}", retry_elsewhere=False)
        dataplane.write_files(pid, files)
        if meta.get("network"):
            dataplane.apply(pid, self._dir(vm_uid), meta["network"], self.metadata_socket, sorted(files))

    # -- disks: a namespace has no block devices; the disk set is recorded for the guest's view ------

    def attach_volume(self, host: HostRef, vm_uid: int, disk: DiskSpec) -> None:
        self._check(host)
        meta = self._meta(vm_uid)
        if meta is None or meta["host_id"] != host.id:
            raise DriverError(f"VM {vm_uid} is not on host {host.name}", retry_elsewhere=False)
        if disk.uid not in meta["disks"]:
            meta["disks"].append(disk.uid)
            self._write(vm_uid, "vm.json", meta)
            self._note(vm_uid, f"[  120.000000] sd 0:0:1:0: Attached SCSI disk {disk.device_name}")

    def detach_volume(self, host: HostRef, vm_uid: int, disk: DiskSpec) -> None:
        self._check(host)
        meta = self._meta(vm_uid)
        if meta is not None and meta["host_id"] == host.id and disk.uid in meta["disks"]:
            meta["disks"].remove(disk.uid)
            self._write(vm_uid, "vm.json", meta)

    # -- the serial port -------------------------------------------------------------------------------

    def serial_output(self, vm_uid: int, start: int) -> tuple[str, int, int]:
        return serial.read(self._dir(vm_uid), start)

    def serial_write(self, host: HostRef, vm_uid: int, data: str) -> None:
        """Typed on the guest's console: into the FIFO its agent's getty reads (the answer shows on
        the serial log, which the console proxy polls)."""
        self._check(host)
        meta = self._meta(vm_uid)
        if meta is None or meta["host_id"] != host.id or self._state(vm_uid) != "running":
            raise DriverError(f"VM {vm_uid} is not running on host {host.name}", retry_elsewhere=False)
        try:
            fd = os.open(os.path.join(self._dir(vm_uid), CONSOLE_FIFO), os.O_WRONLY | os.O_NONBLOCK)
        except OSError as exc:  # no FIFO yet, or no reader (ENXIO): the getty is not up
            raise DriverError(f"VM {vm_uid} has no console yet: {exc}", retry_elsewhere=False) from exc
        before = self.serial_output(vm_uid, -1)[2]
        try:
            os.write(fd, data.encode())
        except BlockingIOError as exc:
            raise DriverError(f"VM {vm_uid}'s console is not reading", retry_elsewhere=False) from exc
        finally:
            os.close(fd)
        # as a tty's echo: the getty's answer (if any) is on the log when this returns, up to a second later
        deadline = time.monotonic() + CONSOLE_ECHO_WAIT
        while self.serial_output(vm_uid, -1)[2] == before and time.monotonic() < deadline:
            time.sleep(0.01)
