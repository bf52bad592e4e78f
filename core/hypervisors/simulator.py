"""The simulator: a first-class hypervisor (Nova's fake driver) and the embedded default.

Domains live in the ``sim_domains`` table so API processes and workers agree on them. Each
action sleeps its configured latency (zero by default). Faults are injected through the host
row: ``status='Down'`` makes the host refuse everything, ``fail_next_spawns=N`` fails spawns. A VM's
CPU load is a knob (:func:`set_cpu_load`, ``gstack admin simulator set-cpu``) that its CPU time
(:meth:`SimulatorDriver.cpu_times`) follows, so tests can drive the autoscaler.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping

import orjson
from sqlalchemy import bindparam, delete, select, text
from sqlalchemy.orm import Session, sessionmaker

from core.db import attached, write_session
from core.hypervisors.base import (
    LIVE_ATTACH,
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
from core.hypervisors.simguest import answer
from core.hypervisors.summary import DomainSummary, as_digest, sql_digest
from core.models import Host, SimConsoleChunk, SimCpuLoad, SimDomain, SimVmFile
from core.prepared import Prepared, write_back

MAX_CONSOLE = 1024 * 1024  # GCE keeps the last 1 MB of serial output
CONSOLE_CHUNK = 16 * 1024  # bytes of the newest output held in the domain's row (see _append)


# A boot's serial output up to its number: the same for every VM (the one-statement spawn adds it
# to a domain's console in SQL, with the number the domain's boot count gives).
_BOOT_HEAD = "SeaBIOS (version 1.16.3-debian-1.16.3-2)\r\nBooting from Hard Disk 0... (boot "


def boot_log(vm: VmSpec, boot: int) -> str:
    return _BOOT_HEAD + str(boot) + _after_boot_number(vm)


def _after_boot_number(vm: VmSpec) -> str:
    lines = [
        ")",
        "[    0.000000] Linux version 6.1.0-28-cloud-amd64 (debian-kernel@lists.debian.org)",
        "[    0.000000] Command line: BOOT_IMAGE=/boot/vmlinuz root=/dev/sda1 console=ttyS0,38400n8",
        f"[    0.012000] smpboot: Allowing {vm.vcpus} CPUs, 0 hotplug CPUs",
        f"[    0.013000] Memory: {vm.memory_mb * 1024}K available",
    ]
    for i, d in enumerate(vm.disks):
        lines.append(f"[    1.{200 + i}000] sd 0:0:{i}:0: [sd{chr(97 + i)}] {d.size_gb * 2097152} 512-byte logical blocks")
    for n in vm.nics:
        lines.append(f"[    2.100000] virtio_net virtio1 {n.name}: MAC {n.mac}")
    lines += [
        "[    3.500000] systemd[1]: Started google-guest-agent.service - Google Compute Engine Guest Agent.",
        f"[    4.000000] google_metadata_script_runner: Starting startup scripts on {vm.name}.",
        f"Debian GNU/Linux 12 {vm.name} ttyS0",
        "",
        f"{vm.name} login: ",
    ]
    return "\r\n".join(lines) + "\r\n"


_CONSOLE = ("console", "console_dropped")  # what an append changes of a domain's row


def _append(session: Session, dom: SimDomain, text: str) -> None:
    """Append serial output. The domain's ``console`` holds the newest output, under CONSOLE_CHUNK
    bytes: an append rewrites that short text, not the whole console (rewritten whole, a router's
    1 MB console cost each configuration push ~1.4 ms of CPU and 1 MB written). Once it reaches
    CONSOLE_CHUNK it becomes a chunk of its own, and the oldest chunks are dropped (counted in
    ``console_dropped``) as long as the chunks left hold MAX_CONSOLE bytes: the last 1 MB is always
    there for :meth:`SimulatorDriver.serial_output`, which returns exactly that.

    Appends to one console take turns: every caller reads the domain's row ``FOR UPDATE`` (on
    PostgreSQL; SQLite's writers take turns already). Two transactions appending at once each wrote
    the column from what it had read: a line lost, and a chunk rolled over by one came back in the
    other's column."""
    data = (dom.console or "") + text
    size = len(data.encode())
    if size < CONSOLE_CHUNK:
        dom.console = data
        write_back(session, [dom], _CONSOLE)  # (its own UPDATE: the flush's cost a push ~0.2 ms more)
        return
    if size > MAX_CONSOLE:  # one append of more than the whole console keeps its end
        dom.console_dropped = (dom.console_dropped or 0) + size - MAX_CONSOLE
        data = data.encode()[-MAX_CONSOLE:].decode(errors="replace")
        size = len(data.encode())
    held = session.execute(select(SimConsoleChunk.seq, SimConsoleChunk.size).where(
        SimConsoleChunk.instance_uid == dom.instance_uid).order_by(SimConsoleChunk.seq)).all()
    session.add(SimConsoleChunk(instance_uid=dom.instance_uid, seq=held[-1].seq + 1 if held else 0, data=data, size=size))
    dom.console = ""
    total, dropped = size + sum(chunk.size for chunk in held), []
    for chunk in held:
        if total - chunk.size < MAX_CONSOLE:
            break
        total -= chunk.size
        dropped.append(chunk)
    if dropped:
        session.execute(delete(SimConsoleChunk).where(SimConsoleChunk.instance_uid == dom.instance_uid,
                                                      SimConsoleChunk.seq <= dropped[-1].seq))
        dom.console_dropped = (dom.console_dropped or 0) + sum(chunk.size for chunk in dropped)
    write_back(session, [dom], _CONSOLE)


def _chunks(session: Session, vm_uid: int) -> list[str]:
    """The texts of a domain's console chunks, oldest first."""
    return list(session.scalars(select(SimConsoleChunk.data).where(SimConsoleChunk.instance_uid == vm_uid)
                                .order_by(SimConsoleChunk.seq)))


def _recent(session: Session, dom: SimDomain, chars: int) -> str:
    """The last ``chars`` characters of the domain's serial output (or all of it, when shorter).
    Only the newest chunks that can hold them are read: a chunk holds at least CONSOLE_CHUNK bytes,
    so at least a quarter as many characters."""
    recent = dom.console or ""
    if len(recent) < chars:
        newest = session.scalars(select(SimConsoleChunk.data).where(SimConsoleChunk.instance_uid == dom.instance_uid)
                                 .order_by(SimConsoleChunk.seq.desc()).limit(1 + 4 * chars // CONSOLE_CHUNK))
        recent = "".join(reversed(list(newest))) + recent
    return recent[-chars:]


# A pushed file, written or written again (its count of writes goes up): one statement run for
# all the files of a push (executemany), the same text on both databases.
_WRITE_FILE = Prepared(text(
    "INSERT INTO sim_vm_files (vm_uid, host_id, path, content, checksum, writes, written) "
    "VALUES (:vm_uid, :host_id, :path, :content, :checksum, 1, :written) "
    "ON CONFLICT (vm_uid, path) DO UPDATE SET host_id = excluded.host_id, content = excluded.content, "
    "checksum = excluded.checksum, writes = sim_vm_files.writes + 1, written = excluded.written"))
_REMOVE_FILE = Prepared(text("DELETE FROM sim_vm_files WHERE vm_uid = :vm_uid AND path = :path"))
# The host's status and the VM's domain (None when it has none), in one read; the domain locked
# (an append to its console follows, see _append), when there is one: an outer join's nullable side
# cannot be locked, so no row sends the caller to the unlocked read to tell which is missing.
_HOST_AND_DOMAIN = (select(Host.status, SimDomain).select_from(Host)
                    .outerjoin(SimDomain, SimDomain.instance_uid == bindparam("vm_uid"))
                    .where(Host.id == bindparam("host_id")))
# (Its rows are made objects by core.db.attached: the ORM's query cost each push ~0.1 ms more.)
_HOST_AND_DOMAIN_LOCKED = Prepared(select(Host.status, *SimDomain.__table__.columns).select_from(Host)
                                   .join(SimDomain, SimDomain.instance_uid == bindparam("vm_uid"))
                                   .where(Host.id == bindparam("host_id")).with_for_update(of=SimDomain))


# A spawn in one statement, for each VM (JSON: [uid, host id, name, first boot's console]) whose
# host is not Down and has no failure to inject: a VM without a domain gets one, running, booted
# once; one whose domain is stopped, paused or on another host runs here, booted once more, its
# boot's output appended. Left out, for the transaction of :meth:`SimulatorDriver._spawn_one`: a
# VM running here already, one whose console column would reach CONSOLE_CHUNK (with room for the
# boot's number: _append makes it a chunk), and every VM of a host that is Down, missing or
# failing spawns. The statements differ only in how they read the JSON and count a text's bytes
# (the console's limit is in bytes).
_SPAWN = """INSERT INTO sim_domains AS d (instance_uid, host_id, name, state, console, console_dropped, boots)
SELECT {uid}, hosts.id, {name}, 'running', {console}, 0, 1
FROM {vms} JOIN hosts ON hosts.id = {host}
WHERE hosts.status <> 'Down' AND hosts.fail_next_spawns <= 0
ON CONFLICT (instance_uid) DO UPDATE SET host_id = excluded.host_id, state = 'running', boots = d.boots + 1,
    console = d.console || :head || CAST(d.boots + 1 AS VARCHAR) || substr(excluded.console, CAST(:tail_from AS INTEGER))
WHERE NOT (d.state = 'running' AND d.host_id = excluded.host_id)
    AND {held} + {added} + 20 < CAST(:max AS INTEGER)
RETURNING instance_uid"""
_SPAWN_POSTGRESQL = Prepared(text(_SPAWN.format(
    vms="json_array_elements(CAST(:vms AS JSON)) AS v (e)", uid="CAST(v.e ->> 0 AS BIGINT)",
    host="CAST(v.e ->> 1 AS INTEGER)", name="v.e ->> 2", console="v.e ->> 3",
    held="octet_length(d.console)", added="octet_length(excluded.console)")))
_SPAWN_SQLITE = text(_SPAWN.format(
    vms="json_each(:vms) AS v", uid="json_extract(v.value, '$[0]')", host="json_extract(v.value, '$[1]')",
    name="json_extract(v.value, '$[2]')", console="json_extract(v.value, '$[3]')",
    held="length(CAST(d.console AS BLOB))", added="length(CAST(excluded.console AS BLOB))"))


def _listed(paths: list[str], shown: int = 3) -> str:
    """The first paths, and how many more: a console line of bounded length."""
    more = len(paths) - shown
    return ", ".join(paths[:shown]) + (f" and {more} more files" if more > 0 else "")


def _cpu_seconds(load: SimCpuLoad | None, now: float) -> float:
    return 0.0 if load is None else load.used + load.busy * max(0.0, now - load.since)


def set_cpu_load(session: Session, vm_uid: int, busy_vcpus: float) -> None:
    """From now on the VM keeps ``busy_vcpus`` of its vCPUs busy (its utilisation times its vCPUs);
    what it used so far is kept, so its CPU time never goes back."""
    now = time.time()
    load = session.get(SimCpuLoad, vm_uid)
    if load is None:
        session.add(SimCpuLoad(vm_uid=vm_uid, busy=busy_vcpus, since=now, used=0.0))
        return
    load.used, load.since, load.busy = _cpu_seconds(load, now), now, busy_vcpus


class SimulatorDriver(HypervisorDriver):
    name = "simulator"
    capabilities = frozenset({SUSPEND, LIVE_ATTACH, SERIAL_CONSOLE, PUSH_CONFIG})

    def __init__(self, factory: sessionmaker[Session], latency: dict[str, float] | float = 0.0):
        self.factory = factory
        self.latency = latency

    def _delay(self, action: str) -> None:
        seconds = self.latency if isinstance(self.latency, (int, float)) else self.latency.get(action, 0.0)
        if seconds:
            time.sleep(seconds)

    def _check_up(self, session: Session, host: HostRef) -> Host:
        row = session.get(Host, host.id)
        if row is None or row.status == "Down":
            raise DriverError(f"host {host.name} is not reachable")
        return row

    def host_stats(self, host: HostRef) -> HostStats:
        with self.factory() as session:
            row = session.get(Host, host.id)
            if row is None or row.status == "Down":
                raise DriverError(f"host {host.name} is not reachable")
            running = session.query(SimDomain).filter_by(host_id=host.id, state="running").count()
            return HostStats(row.cpus, row.memory_mb, row.memory_mb, running)

    def spawn(self, host: HostRef, vm: VmSpec) -> None:
        error = self.spawn_many([(host, vm)])[0]
        if error is not None:
            raise error

    def spawn_many(self, vms: list[tuple[HostRef, VmSpec]]) -> list[DriverError | None]:
        """The spawns in one statement (``_SPAWN``): on PostgreSQL its own transaction, one round
        trip for the batch; on SQLite in a write transaction, in gstack's queue of writers. A VM the
        statement leaves out is spawned by :meth:`_spawn_one`, in one transaction for all such VMs
        (a failed one changes only its host's fault counter), in the batch's order.

        The VMs boot side by side, as on real hosts: the batch takes one spawn's latency, not one
        per VM (a batch of 100 behind 0.2 s each would hold every job queued behind it for 20 s)."""
        if not vms:
            return []
        self._delay("spawn")
        tried: dict[int, int] = {}  # position in the batch by uid: a uid's first entry only
        payload = []
        for i, (host, vm) in enumerate(vms):
            console = boot_log(vm, 1)
            if vm.uid not in tried and len(console.encode()) < CONSOLE_CHUNK:
                tried[vm.uid] = i
                payload.append([vm.uid, host.id, vm.name, console])
        params = {"vms": orjson.dumps(payload).decode(), "head": _BOOT_HEAD, "tail_from": len(_BOOT_HEAD) + 2,
                  "max": CONSOLE_CHUNK}
        engine = self.factory.kw["bind"]
        if engine.dialect.name == "postgresql":
            rows = _SPAWN_POSTGRESQL.all(engine, params)
        else:
            with write_session(self.factory) as session:
                rows = session.connection().execute(_SPAWN_SQLITE, params).all()
        started = {tried[uid] for uid, in rows}
        errors: list[DriverError | None] = [None] * len(vms)
        rest = [i for i in range(len(vms)) if i not in started]
        if rest:
            with write_session(self.factory) as session:
                domains = {d.instance_uid: d for d in session.scalars(
                    select(SimDomain).where(SimDomain.instance_uid.in_({vms[i][1].uid for i in rest})).with_for_update())}
                hosts: dict[int, Host] = {}
                for i in rest:
                    try:
                        self._spawn_one(session, *vms[i], domains, hosts)
                    except DriverError as exc:
                        errors[i] = exc
        return errors

    def _spawn_one(self, session: Session, host: HostRef, vm: VmSpec, domains: dict[int, SimDomain],
                   hosts: dict[int, Host]) -> None:
        row = hosts.get(host.id)
        if row is None:  # each host of the batch is checked once
            row = hosts[host.id] = self._check_up(session, host)
        dom = domains.get(vm.uid)
        if dom is not None and dom.state == "running" and dom.host_id == host.id:
            return
        if row.fail_next_spawns > 0:
            row.fail_next_spawns -= 1
            raise DriverError(f"simulated spawn failure on host {host.name}")
        if dom is None:
            dom = domains[vm.uid] = SimDomain(instance_uid=vm.uid, host_id=host.id, name=vm.name, state="running",
                                              console="", console_dropped=0, boots=0)
            session.add(dom)
        dom.host_id = host.id
        dom.state = "running"
        dom.boots += 1
        _append(session, dom, boot_log(vm, dom.boots))

    def _set_state(self, host: HostRef, vm_uid: int, state: str | None, action: str, note: str,
                   only: tuple[str, ...] = ("running", "shutoff", "paused")) -> str | None:
        """Move the VM to ``state`` (None: keep it) when it is in one of the states ``only``, with a
        line of serial output; the VM's state afterwards, None when the simulator has no such VM."""
        self._delay(action)
        with write_session(self.factory) as session:
            self._check_up(session, host)
            dom = session.scalar(select(SimDomain).where(SimDomain.instance_uid == vm_uid).with_for_update())
            if dom is None or dom.state not in only:
                return dom.state if dom is not None else None
            dom.state = state or dom.state
            _append(session, dom, note)
            return dom.state

    def power_off(self, host: HostRef, vm_uid: int) -> None:
        self._set_state(host, vm_uid, "shutoff", "power_off",
                        "[  OK  ] Reached target poweroff.target - System Power Off.\r\n[   99.000000] reboot: Power down\r\n")

    def reboot(self, host: HostRef, vm_uid: int) -> None:
        state = self._set_state(host, vm_uid, "running", "reboot", "[   50.000000] reboot: Restarting system\r\n"
                                "SeaBIOS (version 1.16.3-debian-1.16.3-2)\r\n", only=("running", "paused"))
        if state != "running":
            raise DriverError(f"VM {vm_uid} is not running on host {host.name}", retry_elsewhere=False)

    def suspend(self, host: HostRef, vm_uid: int) -> None:
        self._set_state(host, vm_uid, "paused", "suspend", "[   60.000000] PM: suspend entry (s2idle)\r\n",
                        only=("running",))

    def resume(self, host: HostRef, vm: VmSpec) -> None:
        """A VM the simulator no longer has is started afresh, as on a host without its saved state."""
        self._delay("resume")
        with write_session(self.factory) as session:
            self._check_up(session, host)
            dom = session.scalar(select(SimDomain).where(SimDomain.instance_uid == vm.uid).with_for_update())
            if dom is not None:
                dom.state, dom.host_id = "running", host.id
                _append(session, dom, "[   61.000000] PM: suspend exit\r\n")
        if dom is None:
            self.spawn(host, vm)

    def destroy(self, host: HostRef | None, vm_uid: int) -> None:
        self._delay("destroy")
        with write_session(self.factory) as session:
            session.execute(delete(SimDomain).where(SimDomain.instance_uid == vm_uid))
            session.execute(delete(SimConsoleChunk).where(SimConsoleChunk.instance_uid == vm_uid))
            session.execute(delete(SimVmFile).where(SimVmFile.vm_uid == vm_uid))
            session.execute(delete(SimCpuLoad).where(SimCpuLoad.vm_uid == vm_uid))

    def attach_volume(self, host: HostRef, vm_uid: int, disk: DiskSpec) -> None:
        note = f"[  120.000000] sd 0:0:1:0: Attached SCSI disk {disk.device_name}\r\n"
        if self._set_state(host, vm_uid, None, "attach", note) is None:
            raise DriverError(f"VM {vm_uid} is not on host {host.name}", retry_elsewhere=False)

    def detach_volume(self, host: HostRef, vm_uid: int, disk: DiskSpec) -> None:
        self._set_state(host, vm_uid, None, "detach", f"[  130.000000] sd 0:0:1:0: [{disk.device_name}] Synchronizing SCSI cache\r\n")

    def serial_output(self, vm_uid: int, start: int) -> tuple[str, int, int]:
        with self.factory() as session:
            dom = session.scalar(select(SimDomain).where(SimDomain.instance_uid == vm_uid))
            if dom is None:
                data, dropped = b"", 0
            else:
                data = "".join([*_chunks(session, vm_uid), dom.console]).encode()
                dropped = dom.console_dropped
        if len(data) > MAX_CONSOLE:  # the chunks hold a little more than the last 1 MB
            dropped += len(data) - MAX_CONSOLE
            data = data[-MAX_CONSOLE:]
        end = dropped + len(data)
        if start < 0:
            start = end + start
        start = min(max(start, dropped), end)
        return data[start - dropped:].decode(errors="replace"), start, end

    def list_instances(self, host: HostRef) -> dict[int, str]:
        with self.factory() as session:
            rows = session.execute(select(SimDomain.instance_uid, SimDomain.state).where(SimDomain.host_id == host.id))
            return {uid: state for uid, state in rows}

    def domain_summary(self, host: HostRef, aside: frozenset[int]) -> DomainSummary:
        """The digests in SQL (one aggregate over the host's domains, by its index on host_id):
        listing the domains cost the monitor a row per VM each round."""
        where = [SimDomain.host_id == host.id]
        with self.factory() as session:
            if aside:
                where.append(SimDomain.instance_uid.not_in(aside))
                # By uid alone, the host told apart after: beside ``host_id =``, SQLite walks the
                # host's domains for a list of uids (see core.systemvms.sync).
                apart = {uid: state for uid, state, on in session.execute(
                    select(SimDomain.instance_uid, SimDomain.state, SimDomain.host_id)
                    .where(SimDomain.instance_uid.in_(aside))) if on == host.id}
            else:
                apart = {}
            states = {state: as_digest(*d) for state, *d in session.execute(
                select(SimDomain.state, *sql_digest(SimDomain.instance_uid)).where(*where).group_by(SimDomain.state))}
        return DomainSummary(states, apart)

    def cpu_times(self, host: HostRef, vm_uids: list[int]) -> dict[int, float]:
        """The CPU time the load knob implies: ``busy`` vCPUs for every second since it was set, on
        top of what was used before (an idle VM uses none)."""
        now = time.time()
        with self.factory() as session:
            self._check_up(session, host)
            # By uid alone (see domain_summary): a host's domains are many, the VMs asked about few.
            running = [uid for uid, on, state in session.execute(
                select(SimDomain.instance_uid, SimDomain.host_id, SimDomain.state).where(
                    SimDomain.instance_uid.in_(vm_uids))) if on == host.id and state == "running"]
            loads = {r.vm_uid: r for r in session.scalars(select(SimCpuLoad).where(SimCpuLoad.vm_uid.in_(running)))}
        return {uid: _cpu_seconds(loads.get(uid), now) for uid in running}

    # -- system VMs: configuration files and the interactive serial console

    def _running_domain(self, session: Session, host: HostRef, vm_uid: int) -> SimDomain:
        """The VM's domain, locked, running on ``host``, which is up: one read of the host and the
        domain (a second one when either is missing, to say which)."""
        params = {"host_id": host.id, "vm_uid": vm_uid}
        locked = _HOST_AND_DOMAIN_LOCKED.in_session(session, params)
        status: str | None
        dom: SimDomain | None
        if locked:
            status, dom = locked[0][0], attached(session, SimDomain, locked[0][1:])
        else:
            found = session.execute(_HOST_AND_DOMAIN, params).first()
            status, dom = (found.status, found.SimDomain) if found is not None else (None, None)
        if status is None or status == "Down":
            raise DriverError(f"host {host.name} is not reachable")
        if dom is None or dom.state != "running" or dom.host_id != host.id:
            raise DriverError(f"VM {vm_uid} is not running on host {host.name}", retry_elsewhere=False)
        return dom

    def push_config(self, host: HostRef, vm_uid: int, files: Mapping[str, str | None]) -> None:
        """The files are kept in ``sim_vm_files`` (a redeployed VM gets them all again).

        A router's sync pushes a few files per instance changed, all of them in one upsert run for
        every file (a file held already is written over, its count of writes goes up): as ORM
        objects, read first by path, they cost the sync more than its renders. The serial console
        gets one line per push, not one per file."""
        self._delay("push_config")
        with write_session(self.factory) as session:
            dom = self._running_domain(session, host, vm_uid)
            now = time.time()
            written = [{"vm_uid": vm_uid, "host_id": host.id, "path": path, "content": content,
                        "checksum": hashlib.sha256(content.encode()).hexdigest(), "written": now}
                       for path, content in files.items() if content is not None]
            _WRITE_FILE.many_in_session(session, written)
            _REMOVE_FILE.many_in_session(session, [{"vm_uid": vm_uid, "path": path}
                                                   for path, content in files.items() if content is None])
            _append(session, dom, f"[  OK  ] Reloaded configuration {_listed(sorted(files))}.\r\n")

    def serial_write(self, host: HostRef, vm_uid: int, data: str) -> None:
        """The simulated guest answers as a getty and a small shell would (core.hypervisors.simguest)."""
        with write_session(self.factory) as session:
            dom = self._running_domain(session, host, vm_uid)
            _append(session, dom, answer(_recent(session, dom, 4096), dom.name, data))
