"""Capacity, quotas and simulator faults, on a server of their own (they fill zones)."""

from __future__ import annotations

import time

import pytest
from googleapiclient.errors import HttpError
from sqlalchemy import text

from tests.conftest import (
    BACKENDS,
    error_of,
    project_credentials,
    running_server,
    unique,
    wait_op,
)

ZONE = "europe-west1-b"
REGION = "europe-west1"


@pytest.fixture(scope="module", params=BACKENDS)
def srv(request):
    with running_server(request.param) as server:
        yield server


def body(name: str, machine_type: str, zone: str = ZONE) -> dict:
    return {"name": name, "machineType": f"zones/{zone}/machineTypes/{machine_type}",
            "disks": [{"boot": True, "autoDelete": True,
                       "initializeParams": {"sourceImage": "projects/debian-cloud/global/images/family/debian-12"}}],
            "networkInterfaces": [{"network": "global/networks/default"}]}


def held_capacity(server) -> dict[str, tuple[int, int]]:
    """Host name -> (vCPUs, MB) held, summed from the VMs placed on it."""
    with server.engine().connect() as conn:
        rows = conn.execute(text(
            "SELECT h.name, COALESCE(SUM(r.vcpus), 0), COALESCE(SUM(r.memory_mb), 0) FROM hosts h "
            "LEFT JOIN resources r ON r.host_id = h.id GROUP BY h.name"))
        return {name: (int(c), int(m)) for name, c, m in rows}


def system_jobs_done(server, timeout: float = 30.0) -> None:
    """Wait until the core's own jobs (system VM deploys and syncs) have all finished."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with server.engine().connect() as conn:
            if not conn.execute(text("SELECT COUNT(*) FROM operations WHERE project = 'gstack-system' "
                                     "AND status != 'DONE'")).scalar():
                return
        time.sleep(0.2)
    raise AssertionError("system VM jobs did not finish")


def test_quota_refuses_synchronously_and_creates_nothing(srv):
    project = unique("quota")
    gce = srv.gce(project_credentials(srv, project))
    srv.admin("project", "set-quota", "--project", project, "--region", REGION, "--metric", "CPUS", "--limit", "4")
    wait_op(gce, gce.instances().insert(project=project, zone=ZONE, body=body("ok-1", "e2-standard-4")).execute())
    with pytest.raises(HttpError) as exc:
        gce.instances().insert(project=project, zone=ZONE, body=body("too-many", "e2-micro")).execute()
    err = error_of(exc.value)
    assert exc.value.resp.status == 403
    assert err["errors"][0]["reason"] == "quotaExceeded"
    assert err["message"] == f"Quota 'CPUS' exceeded.  Limit: 4.0 in region {REGION}."
    names = [i["name"] for i in gce.instances().list(project=project, zone=ZONE).execute().get("items", [])]
    assert names == ["ok-1"]
    disks = [d["name"] for d in gce.disks().list(project=project, zone=ZONE).execute().get("items", [])]
    assert disks == ["ok-1"]
    region = gce.regions().get(project=project, region=REGION).execute()
    cpus = next(q for q in region["quotas"] if q["metric"] == "CPUS")
    assert cpus == {"metric": "CPUS", "limit": 4.0, "usage": 4.0}
    # A stopped instance holds no CPU quota: starting another now fits, restarting the first does not.
    wait_op(gce, gce.instances().stop(project=project, zone=ZONE, instance="ok-1").execute())
    wait_op(gce, gce.instances().insert(project=project, zone=ZONE, body=body("ok-2", "e2-standard-4")).execute())
    with pytest.raises(HttpError) as exc:
        gce.instances().start(project=project, zone=ZONE, instance="ok-1").execute()
    assert error_of(exc.value)["errors"][0]["reason"] == "quotaExceeded"
    assert gce.instances().get(project=project, zone=ZONE, instance="ok-1").execute()["status"] == "TERMINATED"


def test_capacity_exhaustion_fails_the_operation_and_leaks_nothing(srv):
    project = unique("cap")
    gce = srv.gce(project_credentials(srv, project))
    for metric, limit in (("CPUS", "1000"), ("INSTANCES", "1000")):
        srv.admin("project", "set-quota", "--project", project, "--region", REGION, "--metric", metric,
                  "--limit", limit)
    srv.admin("project", "set-quota", "--project", project, "--metric", "CPUS_ALL_REGIONS", "--limit", "1000")
    # The project's first instance deploys its network's virtual router (a system VM that takes
    # capacity too): let that happen before counting idle hosts.
    wait_op(gce, gce.instances().insert(project=project, zone=ZONE, body=body("warm", "e2-micro")).execute())
    system_jobs_done(srv)
    before = held_capacity(srv)
    zone_hosts = [h for h in before if h.startswith(f"sim-{ZONE}-")]
    idle = [h for h in zone_hosts if before[h] == (0, 0)]
    assert len(idle) >= 2
    # custom-32-131072 takes a whole simulated host's memory: one more than the idle hosts fails.
    ops = [gce.instances().insert(project=project, zone=ZONE, body=body(f"big-{i}", "custom-32-131072")).execute()
           for i in range(len(idle) + 1)]
    done = [wait_op(gce, op) for op in ops]
    failed = [op for op in done if "error" in op]
    assert len(failed) == 1
    op = failed[0]
    assert op["status"] == "DONE"
    assert op["error"]["errors"][0]["code"] == "ZONE_RESOURCE_POOL_EXHAUSTED"
    assert op["error"]["errors"][0]["message"].startswith(f"The zone 'projects/{project}/zones/{ZONE}' does not")
    assert op["httpErrorStatusCode"] == 503
    assert op["httpErrorMessage"] == "SERVICE UNAVAILABLE"
    failed_name = op["targetLink"].rsplit("/", 1)[1]
    with pytest.raises(HttpError) as exc:
        gce.instances().get(project=project, zone=ZONE, instance=failed_name).execute()
    assert exc.value.resp.status == 404
    with pytest.raises(HttpError):
        gce.disks().get(project=project, zone=ZONE, disk=failed_name).execute()
    after = held_capacity(srv)
    assert sum(after[h][0] - before[h][0] for h in zone_hosts) == len(idle) * 32
    assert all(after[h][1] - before[h][1] == 131072 for h in idle)
    # Deleting gives every host its capacity back.
    for op in done:
        if "error" not in op:
            name = op["targetLink"].rsplit("/", 1)[1]
            wait_op(gce, gce.instances().delete(project=project, zone=ZONE, instance=name).execute())
    assert held_capacity(srv) == before


def test_failed_spawn_is_retried_on_another_host(srv):
    project = unique("fault")
    gce = srv.gce(project_credentials(srv, project))
    zone, first = "us-central1-b", "sim-us-central1-b-01"
    srv.admin("host", "fail-spawns", first, "1")
    op = wait_op(gce, gce.instances().insert(project=project, zone=zone, body=body("retry", "e2-micro", zone)).execute())
    assert "error" not in op
    inst = gce.instances().get(project=project, zone=zone, instance="retry").execute()
    assert inst["status"] == "RUNNING"
    with srv.engine().connect() as conn:
        host = conn.execute(text("SELECT h.name FROM resources r JOIN hosts h ON h.id = r.host_id "
                                 "WHERE r.name = 'retry' AND r.project = :p"), {"p": project}).scalar()
    assert host != first


def test_host_down_is_never_chosen_and_all_down_exhausts(srv):
    project = unique("down")
    gce = srv.gce(project_credentials(srv, project))
    zone = "us-central1-c"
    hosts = [f"sim-{zone}-0{i}" for i in range(1, 5)]
    for h in hosts[:3]:
        srv.admin("host", "set-status", h, "Down")
    try:
        wait_op(gce, gce.instances().insert(project=project, zone=zone, body=body("lone", "e2-micro", zone)).execute())
        with srv.engine().connect() as conn:
            host = conn.execute(text("SELECT h.name FROM resources r JOIN hosts h ON h.id = r.host_id "
                                     "WHERE r.name = 'lone' AND r.project = :p"), {"p": project}).scalar()
        assert host == hosts[3]
        srv.admin("host", "set-status", hosts[3], "Down")
        op = wait_op(gce, gce.instances().insert(project=project, zone=zone,
                                                 body=body("nowhere", "e2-micro", zone)).execute())
        assert op["error"]["errors"][0]["code"] == "ZONE_RESOURCE_POOL_EXHAUSTED"
    finally:
        for h in hosts:
            srv.admin("host", "set-status", h, "Up")
