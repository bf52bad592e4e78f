"""The driver contract (core/hypervisors/base.py), held against every driver.

Each test drives a driver directly through :class:`HypervisorDriver` on a database of its own
(SQLite, and PostgreSQL): the simulator, the libvirt driver on libvirt's ``test:///default``
(skipped, with the reason, where libvirt-python is missing) and the netns driver on this machine
(skipped where not root or without iproute2; its VMs live in the kernel, not the database, so it
runs on SQLite only). Every call is made twice where the
contract says it is idempotent, and the host's state (``list_instances``) must be the same after
each: a job resumed after a crash repeats the call it was in.

A new driver proves itself by adding one param to the ``harness`` fixture: a function that adds a
cluster and a reachable host of it to the database and returns a :class:`Harness` (the driver,
that host, and a host the driver cannot reach, or None if it cannot be made). What drivers may do
differently is read from ``driver.capabilities``, never from the driver's name.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from core.db import write_session
from core.hypervisors.base import (
    PUSH_CONFIG,
    RECONCILE,
    SERIAL_CONSOLE,
    DiskSpec,
    DriverError,
    HostRef,
    HypervisorDriver,
    NicSpec,
    VmSpec,
)
from core.hypervisors.libvirt import LibvirtDriver
from core.hypervisors.netns import NetnsDriver
from core.hypervisors.netns.links import missing_tools
from core.hypervisors.simulator import SimulatorDriver, set_cpu_load
from core.hypervisors.summary import DomainSummary
from core.models import Host
from core.resources import store
from core.services import hosts
from core.services.seed import ensure_project
from tests.conftest import BACKENDS
from tests.helpers.databases import seeded_engine, sessions

ZONE = "us-central1-a"
PROJECT = "conformance"


@dataclass
class Harness:
    driver: HypervisorDriver
    host: HostRef
    down: HostRef | None  # a host the driver cannot reach (None: the driver cannot make one)
    factory: sessionmaker[Session]
    made: list[int] = field(default_factory=list)

    def vm(self, disks: int = 1) -> VmSpec:
        """A new VM's spec, its instance row placed on :attr:`host` (serial output is found by it)."""
        uid = uuid.uuid4().int >> 66
        name = f"vm-{uid}"
        with write_session(self.factory) as s:
            store.new_resource(s, project=PROJECT, collection="instances", scope=f"zones/{ZONE}", name=name,
                               kind="compute#instance", body={}, uid=uid, host_id=self.host.id)
        self.made.append(uid)
        return VmSpec(uid, name, name, 1, 512, tuple(self.disk(boot=i == 0) for i in range(disks)),
                      (NicSpec("nic0", "42:01:0a:00:00:02", "default", "10.0.0.2"),))

    def disk(self, boot: bool = False) -> DiskSpec:
        uid = uuid.uuid4().int >> 66
        return DiskSpec(uid, f"disk-{uid}", 1, boot, f"dev-{uid % 1000}")

    def state(self, vm_uid: int) -> str | None:
        return self.driver.list_instances(self.host).get(vm_uid)


# -- the drivers: one function each, adding its host to the database ------------------------------


def simulator(factory: sessionmaker[Session], tmp: str) -> Harness:
    driver = SimulatorDriver(factory)
    with write_session(factory) as s:
        cluster = hosts.add_cluster(s, ZONE, f"sim-{uuid.uuid4().hex[:6]}", "simulator")
        up = Host(cluster_id=cluster.id, zone_id=cluster.zone_id, name=f"sim-up-{cluster.id}", cpus=8, memory_mb=16384)
        down = Host(cluster_id=cluster.id, zone_id=cluster.zone_id, name=f"sim-down-{cluster.id}", cpus=8,
                    memory_mb=16384, status="Down")
        s.add_all([up, down])
        s.flush()
        return Harness(driver, hosts.host_ref(up), hosts.host_ref(down), factory)


def libvirt_test_default(factory: sessionmaker[Session], tmp: str) -> Harness:
    pytest.importorskip("libvirt", reason="libvirt-python is not installed (pip install 'gstack[libvirt]')")
    driver = LibvirtDriver(factory, tmp)
    registry = {"libvirt": driver}
    with write_session(factory) as s:
        cluster = hosts.add_cluster(s, ZONE, f"lv-{uuid.uuid4().hex[:6]}", "libvirt")
    host = hosts.add_host(factory, registry, ZONE, cluster.name, f"lv-{cluster.id}", "test:///default",
                          options={"console_dir": os.path.join(tmp, "console"), "shutdown_timeout": 1})
    down = HostRef(host.id, "lv-nowhere", f"test://{tmp}/no-such-node.xml")
    return Harness(driver, hosts.host_ref(host), down, factory)


def netns_local(factory: sessionmaker[Session], tmp: str) -> Harness:
    why = missing_tools()
    if why:
        pytest.skip(why)
    if factory.kw["bind"].dialect.name != "sqlite":
        pytest.skip("the netns driver keeps its VMs in the kernel: one database backend proves it")
    driver = NetnsDriver(factory, tmp)
    with write_session(factory) as s:
        cluster = hosts.add_cluster(s, ZONE, f"ns-{uuid.uuid4().hex[:6]}", "netns")
    host = hosts.add_host(factory, {"netns": driver}, ZONE, cluster.name, f"ns-{cluster.id}", "netns://local",
                          options={"shutdown_timeout": 2, "boot_timeout": 10})
    return Harness(driver, hosts.host_ref(host), HostRef(host.id, "ns-elsewhere", "netns://elsewhere"), factory)


DRIVERS: dict[str, Callable[[sessionmaker[Session], str], Harness]] = {
    "simulator": simulator,
    "libvirt": libvirt_test_default,
    "netns": netns_local,
}


@pytest.fixture(scope="module", params=BACKENDS)
def database(request: pytest.FixtureRequest) -> Iterator[sessionmaker[Session]]:
    with seeded_engine(request.param, "gstack-conf-") as engine:
        factory = sessions(engine)
        with write_session(factory) as s:
            ensure_project(s, PROJECT)
        yield factory


@pytest.fixture(scope="module", params=list(DRIVERS))
def harness(request: pytest.FixtureRequest, database: sessionmaker[Session]) -> Iterator[Harness]:
    tmp = tempfile.mkdtemp(prefix="gstack-conf-")
    try:
        made = DRIVERS[request.param](database, tmp)
    except BaseException:  # a skip too
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    yield made
    made.driver.release_host(made.host)
    shutil.rmtree(tmp, ignore_errors=True)


pytestmark = pytest.mark.xdist_group("libvirt")  # test:///default lives in one process


@pytest.fixture(autouse=True)
def cleanup(harness: Harness) -> Iterator[None]:
    """Each test's VMs go when it ends (test:///default's storage pool is small and shared)."""
    yield
    for uid in harness.made:
        harness.driver.destroy(harness.host, uid)
    harness.made.clear()


def twice(h: Harness, vm_uid: int, call: Callable[[], object]) -> str | None:
    """Make ``call`` twice (a resumed job repeats it): the VM's state after each must agree."""
    call()
    first = h.state(vm_uid)
    call()
    assert h.state(vm_uid) == first
    return first


def refused(call: Callable[[], object], retry_elsewhere: bool) -> DriverError:
    with pytest.raises(DriverError) as caught:
        call()
    assert caught.value.retry_elsewhere is retry_elsewhere, caught.value
    return caught.value


# -- the host ----------------------------------------------------------------------------------------


def test_host_stats_count_running_vms(harness: Harness) -> None:
    h = harness
    before = h.driver.host_stats(h.host)
    assert before.cpus > 0 and before.memory_mb > 0 and before == h.driver.host_stats(h.host)
    vm = h.vm()
    h.driver.spawn(h.host, vm)
    assert h.driver.host_stats(h.host).running_vms == before.running_vms + 1
    h.driver.destroy(h.host, vm.uid)
    assert h.driver.host_stats(h.host).running_vms == before.running_vms
    assert isinstance(h.driver.shares_state(h.host), bool)


def test_a_host_that_is_down_refuses_with_retry_elsewhere(harness: Harness) -> None:
    h = harness
    if h.down is None:
        pytest.skip(f"the {h.driver.name} harness cannot make a host that is down")
    vm = h.vm()
    # list_instances and destroy may answer anyway: the simulator keeps its VMs in the database
    for call in (lambda: h.driver.host_stats(h.down), lambda: h.driver.spawn(h.down, vm), lambda: h.driver.resume(h.down, vm),
                 lambda: h.driver.power_off(h.down, vm.uid), lambda: h.driver.reboot(h.down, vm.uid),
                 lambda: h.driver.suspend(h.down, vm.uid)):
        refused(call, retry_elsewhere=True)
    errors = h.driver.spawn_many([(h.down, vm)])
    assert len(errors) == 1 and errors[0] is not None and errors[0].retry_elsewhere


def test_cpu_times_count_up_for_running_vms_only(harness: Harness) -> None:
    h = harness
    running, stopped, absent = h.vm(), h.vm(), h.vm()
    h.driver.spawn(h.host, running)
    h.driver.spawn(h.host, stopped)
    h.driver.power_off(h.host, stopped.uid)
    first = h.driver.cpu_times(h.host, [running.uid, stopped.uid, absent.uid])
    assert list(first) == [running.uid] and first[running.uid] >= 0.0
    again = h.driver.cpu_times(h.host, [running.uid])
    assert again[running.uid] >= first[running.uid]  # a cumulative counter
    assert h.driver.cpu_times(h.host, []) == {}
    if h.down is not None:
        refused(lambda: h.driver.cpu_times(h.down, [running.uid]), retry_elsewhere=True)


def test_simulated_cpu_time_follows_the_load_knob(harness: Harness) -> None:
    h = harness
    if not isinstance(h.driver, SimulatorDriver):
        pytest.skip("the load knob is the simulator's")
    vm = h.vm()
    h.driver.spawn(h.host, vm)
    assert h.driver.cpu_times(h.host, [vm.uid]) == {vm.uid: 0.0}  # idle until told otherwise
    with write_session(h.factory) as s:
        set_cpu_load(s, vm.uid, 2.0)
    start = h.driver.cpu_times(h.host, [vm.uid])[vm.uid]
    time.sleep(0.2)
    busy = h.driver.cpu_times(h.host, [vm.uid])[vm.uid]
    assert busy - start >= 2.0 * 0.2 * 0.9  # two vCPUs busy for 0.2 s
    with write_session(h.factory) as s:
        set_cpu_load(s, vm.uid, 0.0)
    idle = h.driver.cpu_times(h.host, [vm.uid])[vm.uid]
    time.sleep(0.1)
    assert h.driver.cpu_times(h.host, [vm.uid])[vm.uid] == idle >= busy  # kept, no longer growing


# -- starting and stopping ---------------------------------------------------------------------------


def test_spawn_runs_the_vm_and_again_leaves_it_running(harness: Harness) -> None:
    h = harness
    vm = h.vm(disks=2)
    assert twice(h, vm.uid, lambda: h.driver.spawn(h.host, vm)) == "running"
    assert sum(1 for uid in h.driver.list_instances(h.host) if uid == vm.uid) == 1


def test_spawn_many_reports_each_error_in_its_place(harness: Harness) -> None:
    h = harness
    a, b = h.vm(), h.vm()
    batch = [(h.host, a), (h.host, b)] + ([(h.down, h.vm())] if h.down is not None else [])
    for _ in range(2):  # repeated, the same outcome
        errors = h.driver.spawn_many(batch)
        assert errors[:2] == [None, None]
        if h.down is not None:
            assert isinstance(errors[2], DriverError) and errors[2].retry_elsewhere
        assert h.state(a.uid) == h.state(b.uid) == "running"


def test_power_off_then_spawn_starts_it_again(harness: Harness) -> None:
    h = harness
    vm = h.vm()
    h.driver.spawn(h.host, vm)
    assert twice(h, vm.uid, lambda: h.driver.power_off(h.host, vm.uid)) == "shutoff"
    assert twice(h, vm.uid, lambda: h.driver.spawn(h.host, vm)) == "running"


def test_reboot_keeps_a_running_vm_running(harness: Harness) -> None:
    h = harness
    vm = h.vm()
    h.driver.spawn(h.host, vm)
    assert twice(h, vm.uid, lambda: h.driver.reboot(h.host, vm.uid)) == "running"
    h.driver.power_off(h.host, vm.uid)
    refused(lambda: h.driver.reboot(h.host, vm.uid), retry_elsewhere=False)
    assert h.state(vm.uid) == "shutoff"


def test_suspend_and_resume(harness: Harness) -> None:
    h = harness
    vm = h.vm()
    h.driver.spawn(h.host, vm)
    assert twice(h, vm.uid, lambda: h.driver.suspend(h.host, vm.uid)) == "paused"
    assert twice(h, vm.uid, lambda: h.driver.resume(h.host, vm)) == "running"
    h.driver.power_off(h.host, vm.uid)
    assert twice(h, vm.uid, lambda: h.driver.suspend(h.host, vm.uid)) == "shutoff"  # only a running VM


def test_resume_of_a_vm_the_host_lacks_starts_it(harness: Harness) -> None:
    h = harness
    vm = h.vm()
    assert twice(h, vm.uid, lambda: h.driver.resume(h.host, vm)) == "running"


def test_destroy_removes_the_vm_and_again_is_a_no_op(harness: Harness) -> None:
    h = harness
    vm, other = h.vm(), h.vm()
    h.driver.spawn(h.host, vm)
    h.driver.spawn(h.host, other)
    assert twice(h, vm.uid, lambda: h.driver.destroy(h.host, vm.uid)) is None
    assert twice(h, other.uid, lambda: h.driver.destroy(None, other.uid)) is None  # the host it was placed on
    assert h.driver.serial_output(vm.uid, 0)[0] == ""


# -- disks -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("power", ["running", "shutoff"])
def test_attach_and_detach_keep_the_power_state(harness: Harness, power: str) -> None:
    h = harness
    vm, disk = h.vm(), h.disk()
    h.driver.spawn(h.host, vm)
    if power == "shutoff":
        h.driver.power_off(h.host, vm.uid)
    assert twice(h, vm.uid, lambda: h.driver.attach_volume(h.host, vm.uid, disk)) == power
    assert twice(h, vm.uid, lambda: h.driver.detach_volume(h.host, vm.uid, disk)) == power


# -- the serial console ------------------------------------------------------------------------------


def test_serial_output_reads_from_where_asked(harness: Harness) -> None:
    h = harness
    vm = h.vm()
    h.driver.spawn(h.host, vm)
    contents, start, end = h.driver.serial_output(vm.uid, 0)
    assert contents and start == 0 and end == len(contents.encode())
    assert h.driver.serial_output(vm.uid, 0) == (contents, start, end)  # reading changes nothing
    assert h.driver.serial_output(vm.uid, end) == ("", end, end)
    assert h.driver.serial_output(vm.uid, end + 100) == ("", end, end)  # clamped
    tail = contents.encode()[-10:].decode(errors="replace")
    assert h.driver.serial_output(vm.uid, -10) == (tail, end - 10, end)


def test_serial_write_is_answered_in_the_output(harness: Harness) -> None:
    h = harness
    vm = h.vm()
    if SERIAL_CONSOLE not in h.driver.capabilities:
        refused(lambda: h.driver.serial_write(h.host, vm.uid, "\r"), retry_elsewhere=False)
        return
    h.driver.spawn(h.host, vm)
    _, _, end = h.driver.serial_output(vm.uid, 0)
    h.driver.serial_write(h.host, vm.uid, "\r")
    assert "login:" in h.driver.serial_output(vm.uid, end)[0]
    h.driver.power_off(h.host, vm.uid)
    refused(lambda: h.driver.serial_write(h.host, vm.uid, "\r"), retry_elsewhere=False)


# -- system VMs and the host monitor's hooks ---------------------------------------------------------


def test_push_config_where_the_driver_has_it(harness: Harness) -> None:
    h = harness
    vm = h.vm()
    h.driver.spawn(h.host, vm)
    files = {"/etc/gstack/a.conf": "a = 1\n"}
    if PUSH_CONFIG not in h.driver.capabilities:
        refused(lambda: h.driver.push_config(h.host, vm.uid, files), retry_elsewhere=False)
        return
    assert twice(h, vm.uid, lambda: h.driver.push_config(h.host, vm.uid, files)) == "running"
    # None removes a file: one held, one never pushed (nothing to remove), twice
    gone = {"/etc/gstack/a.conf": None, "/etc/gstack/never.conf": None}
    assert twice(h, vm.uid, lambda: h.driver.push_config(h.host, vm.uid, gone)) == "running"
    h.driver.power_off(h.host, vm.uid)
    refused(lambda: h.driver.push_config(h.host, vm.uid, files), retry_elsewhere=False)


def test_forget_and_collect_garbage(harness: Harness) -> None:
    h = harness
    vm = h.vm()
    h.driver.spawn(h.host, vm)
    if RECONCILE in h.driver.capabilities:
        assert twice(h, vm.uid, lambda: h.driver.forget(h.host, vm.uid)) is None
    else:
        assert twice(h, vm.uid, lambda: h.driver.forget(h.host, vm.uid)) == "running"
    h.driver.collect_garbage(h.host)
    assert h.driver.collect_garbage(h.host) == []  # nothing left the second time


def test_domain_summary_is_the_digest_of_the_list(harness: Harness) -> None:
    """The host monitor compares a driver's summary with the database's: whatever way a driver
    computes it (the simulator in SQL), it is the digest of what list_instances says."""
    h = harness
    vms = [h.vm(), h.vm(), h.vm()]
    for vm in vms:
        h.driver.spawn(h.host, vm)
    h.driver.power_off(h.host, vms[1].uid)
    listed = h.driver.list_instances(h.host)
    for aside in (frozenset(), frozenset({vms[0].uid, 12345})):
        summary = h.driver.domain_summary(h.host, aside)
        assert summary == DomainSummary.of(listed, aside)
        assert summary.aside == {uid: listed[uid] for uid in aside if uid in listed}
    assert summary.states.get("shutoff", (0,))[0] >= 1


# -- VMs the host does not have ----------------------------------------------------------------------


def test_a_vm_the_host_lacks(harness: Harness) -> None:
    h = harness
    vm = h.vm()
    missing, disk = vm.uid, h.disk()
    for call in (lambda: h.driver.power_off(h.host, missing), lambda: h.driver.suspend(h.host, missing),
                 lambda: h.driver.destroy(h.host, missing), lambda: h.driver.detach_volume(h.host, missing, disk)):
        assert twice(h, missing, call) is None
    refused(lambda: h.driver.reboot(h.host, missing), retry_elsewhere=False)
    refused(lambda: h.driver.attach_volume(h.host, missing, disk), retry_elsewhere=False)
    assert h.driver.serial_output(missing, 0) == ("", 0, 0)
    assert missing not in h.driver.list_instances(h.host)
    with h.factory() as s:  # the host rows are left as they were
        assert s.scalar(select(Host.status).where(Host.id == h.host.id)) == "Up"
