"""The host monitor's routine round judges each host by a summary of a few numbers (count and sums
of uids per state, in SQL on both sides): a host in step costs the same statements whatever its
number of VMs and none of its instances is read; a host out of step is found and reconciled."""

from __future__ import annotations

import pytest
from sqlalchemy import delete, select, update

from core.db import write_session
from core.ids import new_uid
from core.models import Host, Resource, SimDomain
from core.resources import store
from core.services.host_monitor import HostMonitor
from tests.helpers.databases import statements_sent

ZONE = "us-central1-a"


def uid_and_host(cloud, name: str) -> tuple[int, int]:
    with cloud.factory() as s:
        res = store.find(s, cloud.project, "instances", f"zones/{ZONE}", name)
        return res.uid, res.host_id if res.host_id is not None else res.last_host_id


def new_monitor(cloud) -> HostMonitor:
    """A monitor whose routine rounds may check every host: the leases an earlier test's monitor
    took (for 3 intervals) are let go first."""
    with write_session(cloud.factory) as s:
        s.execute(update(Host).values(monitor_owner=None, monitor_expiry=None))
    return HostMonitor(cloud.factory, cloud.drivers)


def vm_by_vm_forbidden(monitor: HostMonitor, cloud, monkeypatch) -> None:
    """Any look at a host VM by VM (its instances' rows or the driver's list of domains) fails the test."""
    def forbidden(*args, **kwargs):
        raise AssertionError("a summary round of hosts in step looked at them VM by VM")

    monkeypatch.setattr(monitor, "in_step", forbidden)
    monkeypatch.setattr(monitor, "reconcile", forbidden)
    monkeypatch.setattr(cloud.drivers.get("simulator"), "list_instances", forbidden)


def test_a_summary_round_of_hosts_in_step_reads_no_instance_and_costs_the_same_for_more_vms(cloud, monkeypatch):
    cloud.instance("steady-1")
    cloud.instance("steady-2")
    cloud.power("steady-2", "stop")  # TERMINATED: its shut-off domain stays on its host
    monitor = new_monitor(cloud)
    assert not [e for e in monitor.run_once(force=True) if e.instance]  # slow round: in step
    with monkeypatch.context() as patched:
        vm_by_vm_forbidden(monitor, cloud, patched)
        with statements_sent(cloud.factory.kw["bind"]) as few:
            assert monitor.run_once() == []
    reads = [s for s in few if "resources" in s and "count(" not in s.lower()]
    assert reads == [], reads  # the host's rows only in an aggregate, never one by one

    for i in range(3, 7):
        cloud.instance(f"steady-{i}")
    assert not [e for e in monitor.run_once(force=True) if e.instance]
    with monkeypatch.context() as patched:
        vm_by_vm_forbidden(monitor, cloud, patched)
        with statements_sent(cloud.factory.kw["bind"]) as more:
            assert monitor.run_once() == []
    assert len(more) == len(few)
    for i in range(1, 7):
        cloud.delete_instance(f"steady-{i}")


def test_a_summary_round_finds_a_changed_host(cloud):
    cloud.instance("changed-1")
    cloud.instance("changed-2")
    cloud.power("changed-2", "stop")
    uid1, host1 = uid_and_host(cloud, "changed-1")
    uid2, host2 = uid_and_host(cloud, "changed-2")
    monitor = new_monitor(cloud)
    monitor.run_once(force=True)

    # A running VM's domain shut off outside gstack: the summary differs, the round corrects it.
    with write_session(cloud.factory) as s:
        s.scalar(select(SimDomain).where(SimDomain.instance_uid == uid1)).state = "shutoff"
    events = monitor.run_once()
    assert [e.kind for e in events if e.instance and e.instance.endswith("/changed-1")] == ["drift"]
    assert cloud.body("changed-1")["status"] == "TERMINATED"

    # A domain gstack does not know appears: an orphan.
    stray = new_uid()
    with write_session(cloud.factory) as s:
        s.add(SimDomain(instance_uid=stray, host_id=host2, name="stray", state="running", console="",
                        console_dropped=0, boots=1))
    try:
        assert any(e.kind == "orphan" and str(stray) in e.message for e in monitor.run_once())
    finally:
        with write_session(cloud.factory) as s:
            s.execute(delete(SimDomain).where(SimDomain.instance_uid == stray))

    # A stopped VM started outside gstack on the host it ran on last: found RUNNING.
    with write_session(cloud.factory) as s:
        s.scalar(select(SimDomain).where(SimDomain.instance_uid == uid2)).state = "running"
    events = monitor.run_once()
    assert [e.kind for e in events if e.instance and e.instance.endswith("/changed-2")] == ["drift"]
    assert cloud.body("changed-2")["status"] == "RUNNING"
    for name in ("changed-1", "changed-2"):
        cloud.delete_instance(name)


def test_a_stopped_vm_without_a_domain_is_judged_vm_by_vm_once(cloud, monkeypatch):
    """A TERMINATED VM may have no domain left (it vanished while running, with automaticRestart
    false): in step, though its summary is not the one predicted. The host is judged VM by VM
    once, and later rounds know those summaries are in step."""
    cloud.instance("gone", run=True)
    cloud.power("gone", "stop")
    uid, host = uid_and_host(cloud, "gone")
    with write_session(cloud.factory) as s:
        s.execute(delete(SimDomain).where(SimDomain.instance_uid == uid))
    monitor = new_monitor(cloud)
    monitor.run_once(force=True)
    looks: list[int] = []
    vm_by_vm = monitor.in_step

    def counted(driver, ref):
        looks.append(ref.id)
        return vm_by_vm(driver, ref)

    monkeypatch.setattr(monitor, "in_step", counted)
    assert monitor.run_once() == [] and looks == [host]
    assert monitor.run_once() == [] and looks == [host]
    with cloud.factory() as s:
        assert s.scalar(select(Resource.status).where(Resource.uid == uid)) == "TERMINATED"
    cloud.delete_instance("gone")


@pytest.fixture(autouse=True)
def _no_leftovers(cloud):
    """Each test leaves the hosts in step for the next (they share the module's database)."""
    yield
    assert not [e for e in HostMonitor(cloud.factory, cloud.drivers).run_once(force=True) if e.instance]
