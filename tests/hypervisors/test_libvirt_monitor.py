"""The host monitor on libvirt hosts: drift made outside gstack is corrected, a failed host's VMs
are restarted on another host (automaticRestart) or TERMINATED, stale and orphan domains go."""

from __future__ import annotations

import os

import pytest
from sqlalchemy import update

from core.db import write_session
from core.hypervisors.libvirt import domain_name
from core.models import Host
from core.services.host_monitor import HostMonitor
from core.systemvms.watchdog import Watchdog
from tests.conftest import PROJECT, wait_op
from tests.helpers.libvirt import ZONE, body, host_of, run, state
from tests.hypervisors.conftest import CLUSTER, NODE_XML

pytestmark = pytest.mark.xdist_group("libvirt")


@pytest.fixture(scope="module", autouse=True)
def no_serving_monitor(cloud):
    """Stop the serving process's own monitor thread: these tests run the monitor's rounds by hand
    (``force``: no lease) and judge the events of each round, and a round of the thread (every 30 s
    after the server starts, which under load falls inside these tests) checks the same hosts and
    takes their events: recovering a Down host's VMs before the test's round does (the test sees
    only "down"), or checking the failed host with the URI it read before the test broke it (the
    failure count goes back to 0, the test sees "unreachable" again). Stopping waits for a round
    in progress to end."""
    cloud.runtime.host_monitor.stop(timeout=120)


def monitor(cloud) -> HostMonitor:
    rt = cloud.runtime
    return HostMonitor(rt.factory, rt.drivers, failures_to_down=2, kick=rt.engine.kick)


def operations_of(gce, name: str) -> list[dict]:
    ops = gce.zoneOperations().list(project=PROJECT, zone=ZONE).execute().get("items", [])
    return [o for o in ops if o["targetLink"].endswith(f"/instances/{name}")]


def status(gce, name: str) -> str:
    return gce.instances().get(project=PROJECT, zone=ZONE, instance=name).execute()["status"]


def test_drift_outside_gstack_is_corrected(cloud):
    gce = cloud.gce()
    run(gce, gce.instances().insert(project=PROJECT, zone=ZONE, body=body("drift1", "e2-micro")))
    run(gce, gce.instances().insert(project=PROJECT, zone=ZONE, body=body("drift2", "e2-micro")))
    uid1 = int(gce.instances().get(project=PROJECT, zone=ZONE, instance="drift1").execute()["id"])
    uid2 = int(gce.instances().get(project=PROJECT, zone=ZONE, instance="drift2").execute()["id"])
    conn = cloud.driver.connection(cloud.uri)
    conn.lookupByName(domain_name(uid1)).destroy()  # the guest powered itself off
    dom2 = conn.lookupByName(domain_name(uid2))  # someone removed the VM behind gstack's back
    dom2.destroy()
    dom2.undefine()
    orphan = conn.defineXML(f"<domain type='test'><name>{domain_name(4242)}</name><memory>1024</memory>"
                            "<os><type>hvm</type></os></domain>")
    assert orphan.name() == domain_name(4242)

    events = monitor(cloud).run_once(force=True)
    kinds = {(e.kind, (e.instance or "").rsplit("/", 1)[-1]) for e in events}
    assert ("drift", "drift1") in kinds and ("restarted", "drift2") in kinds and ("orphan", "") in kinds

    assert status(gce, "drift1") == "TERMINATED"
    assert [o["operationType"] for o in operations_of(gce, "drift1")][-1] == "compute.instances.guestTerminate"
    restart = [o for o in operations_of(gce, "drift2") if o["operationType"] == "compute.instances.hostError"]
    assert restart and restart[0]["user"] == "system"
    wait_op(gce, restart[0])
    assert status(gce, "drift2") == "RUNNING" and state(cloud, uid2) == "running"
    assert domain_name(4242) not in [d.name() for d in conn.listAllDomains()]

    assert monitor(cloud).run_once(force=True) == []  # nothing left to correct
    for name in ("drift1", "drift2"):
        run(gce, gce.instances().delete(project=PROJECT, zone=ZONE, instance=name))


def test_failed_host_vms_restart_elsewhere_or_terminate(cloud):
    gce = cloud.gce()
    node2 = os.path.join(cloud.data_dir, "node2.xml")
    with open(node2, "w") as f:
        f.write(NODE_XML)
    cloud.admin("host", "add", "--zone", ZONE, "--cluster", CLUSTER, "--name", "kvm1-host2", "--uri", f"test://{node2}",
                "--option", "console_dir=" + os.path.join(cloud.data_dir, "console"))
    cloud.admin("host", "maintenance", "kvm1-host2", "on")  # both VMs land on host1
    run(gce, gce.instances().insert(project=PROJECT, zone=ZONE, body=body("ha1", "e2-micro")))
    run(gce, gce.instances().insert(project=PROJECT, zone=ZONE, body=body(
        "ha2", "e2-micro", scheduling={"automaticRestart": False})))
    cloud.admin("host", "maintenance", "kvm1-host2", "off")
    host1 = host_of(cloud)
    good_uri = host1.uri
    with write_session(cloud.runtime.factory) as session:  # host1 stops answering
        session.execute(update(Host).where(Host.id == host1.id).values(uri="test:///no/such/node.xml"))
    mon = monitor(cloud)
    first = mon.run_once(force=True)
    assert [e.kind for e in first] == ["unreachable"]
    events = mon.run_once(force=True)
    assert {(e.kind, (e.instance or "").rsplit("/", 1)[-1]) for e in events} == {
        ("down", ""), ("restarted", "ha1"), ("terminated", "ha2")}
    assert status(gce, "ha2") == "TERMINATED"
    op = next(o for o in operations_of(gce, "ha1") if o["operationType"] == "compute.instances.hostError")
    assert "error" not in wait_op(gce, op)
    assert status(gce, "ha1") == "RUNNING"
    out = cloud.admin("host", "list").stdout
    assert "kvm1-host1" in out and "Down" in out.split("kvm1-host1", 1)[1].splitlines()[0]

    # host1 answers again: Up, and its stale copy of ha1 (now on host2) is removed
    with write_session(cloud.runtime.factory) as session:
        session.execute(update(Host).where(Host.id == host1.id).values(uri=good_uri))
    events = mon.run_once(force=True)
    assert ("up", "kvm1-host1") in {(e.kind, e.host) for e in events}
    assert ("stale", "ha1") in {(e.kind, (e.instance or "").rsplit("/", 1)[-1]) for e in events}
    uid1 = int(gce.instances().get(project=PROJECT, zone=ZONE, instance="ha1").execute()["id"])
    assert state(cloud, uid1) is None  # not on host1 any more
    for name in ("ha1", "ha2"):
        run(gce, gce.instances().delete(project=PROJECT, zone=ZONE, instance=name))
    # While host1 was Down the watchdog may have moved the network's router to host2: move it off.
    cloud.admin("host", "maintenance", "kvm1-host2", "on")
    Watchdog(cloud.runtime.factory, cloud.runtime.drivers).run_once()
    cloud.runtime.engine.run_until_idle()
    cloud.admin("host", "remove", "kvm1-host2")
