"""Host management through ``gstack admin`` against a real ``gstack serve``: clusters, hosts read
from libvirt, maintenance, removal, and a monitor round (``host check``) recovering the VMs of a
Down simulator host and correcting drift."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from tests.conftest import PROJECT, make_server, wait_op

ZONE = "europe-west1-b"
HOSTS = [f"sim-{ZONE}-0{i}" for i in range(1, 5)]
pytestmark = pytest.mark.xdist_group("host-admin")


@pytest.fixture(scope="module")
def srv():
    server, cleanup = make_server("sqlite")
    server.start()
    yield server
    cleanup()


def body(name: str, **extra) -> dict:
    return {"name": name, "machineType": f"zones/{ZONE}/machineTypes/e2-micro",
            "disks": [{"boot": True, "autoDelete": True, "initializeParams": {
                "sourceImage": "projects/debian-cloud/global/images/family/debian-12"}}],
            "networkInterfaces": [{"network": "global/networks/default"}], **extra}


def host_of(srv, name: str) -> str | None:
    with srv.engine().connect() as conn:
        return conn.execute(text("SELECT h.name FROM resources r JOIN hosts h ON h.id = r.host_id "
                                 "WHERE r.name = :n AND r.project = :p"), {"n": name, "p": PROJECT}).scalar()


def get(gce, name: str) -> dict:
    return gce.instances().get(project=PROJECT, zone=ZONE, instance=name).execute()


def test_clusters_and_libvirt_hosts_read_their_size(srv):
    libvirt = pytest.importorskip("libvirt")
    srv.admin("cluster", "add", "--zone", ZONE, "--name", "lv", "--hypervisor", "libvirt")
    assert "lv " in srv.admin("cluster", "list").stdout
    refused = srv.admin("cluster", "add", "--zone", ZONE, "--name", "lv", check=False)
    assert refused.returncode == 1 and "already exists" in refused.stderr
    out = srv.admin("host", "add", "--zone", ZONE, "--cluster", "lv", "--uri", "test:///default").stdout
    _model, memory_mb, cpus, *_ = libvirt.open("test:///default").getInfo()
    assert f"{cpus} CPUs, {memory_mb} MB" in out
    listing = srv.admin("host", "list").stdout
    line = next(x for x in listing.splitlines() if "test:///default" in x)
    assert line.split()[0] == libvirt.open("test:///default").getHostname() and "libvirt" in line
    bad = srv.admin("host", "add", "--zone", ZONE, "--cluster", "lv", "--name", "nowhere",
                    "--uri", "test:///no/such/file.xml", check=False)
    assert bad.returncode == 1 and "cannot add" in bad.stderr
    assert "nowhere" not in srv.admin("host", "list").stdout
    srv.admin("host", "remove", line.split()[0])  # a test:// host's state would live in the server alone


def test_maintenance_down_host_recovery_and_drift(srv):
    gce = srv.gce()
    wait_op(gce, gce.instances().insert(project=PROJECT, zone=ZONE, body=body("keep")).execute())
    wait_op(gce, gce.instances().insert(project=PROJECT, zone=ZONE, body=body(
        "nostart", scheduling={"automaticRestart": False})).execute())
    first = host_of(srv, "keep")
    assert host_of(srv, "nostart") == first  # first fit

    out = srv.admin("host", "maintenance", first, "on").stdout
    # The network's virtual router may share the host: it is listed too, but only users' VMs are counted here.
    assert f"{first}: Maintenance;" in out and "instances/keep RUNNING onHostMaintenance=MIGRATE" in out
    assert "instances/nostart RUNNING" in out
    wait_op(gce, gce.instances().insert(project=PROJECT, zone=ZONE, body=body("elsewhere")).execute())
    assert host_of(srv, "elsewhere") != first
    refused = srv.admin("host", "remove", first, check=False)
    assert refused.returncode == 1 and "still has" in refused.stderr
    srv.admin("host", "maintenance", first, "off")

    srv.admin("host", "set-status", first, "Down")
    try:
        out = srv.admin("host", "check").stdout
        assert f"{first}: restarted" in out and f"{first}: terminated" in out
        op = next(o for o in gce.zoneOperations().list(project=PROJECT, zone=ZONE).execute()["items"]
                  if o["operationType"] == "compute.instances.hostError" and o["targetLink"].endswith("/keep"))
        assert op["user"] == "system"
        assert "error" not in wait_op(gce, op)
        assert get(gce, "keep")["status"] == "RUNNING" and host_of(srv, "keep") not in (first, None)
        assert get(gce, "nostart")["status"] == "TERMINATED" and host_of(srv, "nostart") is None
    finally:
        srv.admin("host", "set-status", first, "Up")

    # the simulator's domain of "elsewhere" powers off behind gstack's back
    uid = get(gce, "elsewhere")["id"]
    with srv.engine().begin() as conn:
        conn.execute(text("UPDATE sim_domains SET state = 'shutoff' WHERE instance_uid = :u"), {"u": int(uid)})
    out = srv.admin("host", "check").stdout
    assert "drift" in out and "instances/elsewhere" in out
    assert get(gce, "elsewhere")["status"] == "TERMINATED"
    assert srv.admin("host", "check").stdout.strip().endswith("0 event(s)")

    for name in ("keep", "nostart", "elsewhere"):
        wait_op(gce, gce.instances().delete(project=PROJECT, zone=ZONE, instance=name).execute())
    srv.admin("host", "add", "--zone", ZONE, "--name", "spare", "--cpus", "4")
    srv.admin("host", "remove", "spare")
    assert "spare" not in srv.admin("host", "list").stdout
