"""Host management through ``gstack admin`` against a real ``gstack serve``: clusters, hosts read
from libvirt, maintenance, removal, and a monitor round (``host check``) recovering the VMs of a
Down simulator host and correcting drift."""

from __future__ import annotations

import pytest
from googleapiclient.errors import HttpError
from sqlalchemy import text

from tests.conftest import PROJECT, make_server, wait_op

ZONE = "europe-west1-b"
HOSTS = [f"sim-{ZONE}-0{i}" for i in range(1, 5)]
pytestmark = pytest.mark.xdist_group("host-admin")


@pytest.fixture(scope="module")
def srv():
    # The server's own host monitor is off: `gstack admin host check` is the round under test, and a
    # round of the server's between the test marking a host Down and that command (a loaded machine
    # starts the command in seconds) would recover the VMs first and leave the command nothing to do.
    server, cleanup = make_server("sqlite", GSTACK_HOST_CHECK_INTERVAL="0")
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


def pools(srv) -> dict[str, dict]:
    """``gstack admin pool list``, by pool name and column."""
    out = srv.admin("pool", "list").stdout.splitlines()
    assert out[0].split() == ["ZONE", "NAME", "STATUS", "CAPACITY_GB", "OP", "DISKS", "USED_GB"]
    rows = {}
    for line in out[1:]:
        zone, name, status, capacity, factor, disks, used = line.split()
        rows[name] = {"zone": zone, "status": status, "capacity_gb": int(capacity), "op": float(factor),
                      "disks": int(disks), "used_gb": int(used)}
    return rows


def disk_body(name: str, size_gb: int) -> dict:
    b = body(name)
    b["disks"][0]["initializeParams"]["diskSizeGb"] = str(size_gb)
    return b


def test_storage_pools_are_listed_resized_added_and_taken_out_of_placement(srv):
    gce = srv.gce()
    primary = f"{ZONE}-primary"
    before = pools(srv)[primary]
    assert before["zone"] == ZONE and before["status"] == "Up" and before["op"] == 2.0
    wait_op(gce, gce.instances().insert(project=PROJECT, zone=ZONE, body=disk_body("pooled", 30)).execute())
    held = pools(srv)[primary]
    assert (held["disks"], held["used_gb"]) == (before["disks"] + 1, before["used_gb"] + 30)

    # Never below what the disks hold; bad input changes nothing (checked by the next listing).
    fits = (held["used_gb"] + 1) // 2  # at over-provisioning 2, the smallest size holding the disks
    for args, why in ((["resize", primary, "--capacity-gb", str(fits - 1)], f"holds {held['used_gb']} GB"),
                      (["resize", primary, "--overprovisioning", "0.5"], "at least 1"),
                      (["add", "--zone", ZONE, "--name", primary, "--capacity-gb", "10"], "already exists")):
        refused = srv.admin("pool", *args, check=False)
        assert refused.returncode == 1 and why in refused.stderr, (args, refused.stderr)

    # Sized to what it holds: the next disk finds no room, and nothing of its instance is left.
    srv.admin("pool", "resize", primary, "--capacity-gb", str(fits))
    done = wait_op(gce, gce.instances().insert(project=PROJECT, zone=ZONE, body=disk_body("no-room", 10)).execute())
    assert done["error"]["errors"][0]["code"] == "ZONE_RESOURCE_POOL_EXHAUSTED", done

    # Another pool takes the disks the full one cannot; in Maintenance it takes none.
    srv.admin("pool", "add", "--zone", ZONE, "--name", "extra", "--capacity-gb", "100", "--overprovisioning", "1")
    srv.admin("pool", "set-status", "extra", "Maintenance")
    done = wait_op(gce, gce.instances().insert(project=PROJECT, zone=ZONE, body=disk_body("no-room-2", 10)).execute())
    assert done["error"]["errors"][0]["code"] == "ZONE_RESOURCE_POOL_EXHAUSTED", done
    srv.admin("pool", "set-status", "extra", "Up")
    done = wait_op(gce, gce.instances().insert(project=PROJECT, zone=ZONE, body=disk_body("in-extra", 40)).execute())
    assert "error" not in done, done
    now = pools(srv)
    assert now[primary] == {**held, "capacity_gb": fits}
    assert now["extra"] == {"zone": ZONE, "status": "Up", "capacity_gb": 100, "op": 1.0, "disks": 1, "used_gb": 40}
    for name in ("no-room", "no-room-2"):
        with pytest.raises(HttpError) as missing:
            get(gce, name)
        assert missing.value.status_code == 404

    srv.admin("pool", "resize", primary, "--capacity-gb", str(before["capacity_gb"]))
    for name in ("pooled", "in-extra"):
        wait_op(gce, gce.instances().delete(project=PROJECT, zone=ZONE, instance=name).execute())
    after = pools(srv)
    assert after[primary] == before and after["extra"]["disks"] == 0
