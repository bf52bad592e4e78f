"""Kill the server in the middle of running jobs; after a restart every operation ends and
nothing is left half-made."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import text

from tests.conftest import BACKENDS, PROJECT, running_server, wait_op

ZONE = "us-central1-a"


@pytest.fixture(params=BACKENDS)
def slow_server(request):
    with running_server(request.param, GSTACK_SIM_LATENCY='{"spawn": 1.5, "power_off": 1.5}') as server:
        yield server


def body(name: str) -> dict:
    return {"name": name, "machineType": f"zones/{ZONE}/machineTypes/e2-small",
            "disks": [{"boot": True, "autoDelete": True,
                       "initializeParams": {"sourceImage": "projects/debian-cloud/global/images/family/debian-12"}}]}


def test_restart_mid_jobs_finishes_every_operation(slow_server):
    srv = slow_server
    gce = srv.gce()
    wait_op(gce, gce.instances().insert(project=PROJECT, zone=ZONE, body=body("before-crash")).execute())
    wait_op(gce, gce.instances().stop(project=PROJECT, zone=ZONE, instance="before-crash").execute())
    ops = [gce.instances().insert(project=PROJECT, zone=ZONE, body=body(f"inflight-{i}")).execute() for i in range(6)]
    ops.append(gce.instances().start(project=PROJECT, zone=ZONE, instance="before-crash").execute())
    time.sleep(0.7)  # four workers are inside a 1.5 s spawn, the rest wait
    with srv.engine().connect() as conn:
        running = conn.execute(text("SELECT COUNT(*) FROM operations WHERE status = 'RUNNING'")).scalar()
    assert running >= 1
    srv.kill()
    srv.start()
    gce = srv.gce()
    finished = [wait_op(gce, op) for op in ops]
    assert all(op["status"] == "DONE" and "error" not in op for op in finished)
    for i in range(6):
        assert gce.instances().get(project=PROJECT, zone=ZONE, instance=f"inflight-{i}").execute()["status"] == "RUNNING"
    assert gce.instances().get(project=PROJECT, zone=ZONE, instance="before-crash").execute()["status"] == "RUNNING"
    with srv.engine().connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM operations WHERE status != 'DONE'")).scalar() == 0
        assert conn.execute(text("SELECT COUNT(*) FROM resources WHERE collection = 'instances' AND "
                                 "status = 'RUNNING' AND host_id IS NULL")).scalar() == 0
        assert conn.execute(text("SELECT COUNT(*) FROM resources WHERE collection = 'disks' AND "
                                 "(status != 'READY' OR pool_id IS NULL)")).scalar() == 0
        # Capacity adds up: what hosts hold is exactly the running VMs, each with a running domain.
        held = conn.execute(text("SELECT COALESCE(SUM(vcpus), 0) FROM resources WHERE host_id IS NOT NULL "
                                 "AND collection = 'instances'")).scalar()
        running = conn.execute(text("SELECT COALESCE(SUM(vcpus), 0) FROM resources WHERE collection = 'instances' "
                                    "AND status = 'RUNNING'")).scalar()
        assert held == running == 7 * 2
        domains = conn.execute(text("SELECT COUNT(*) FROM sim_domains d JOIN resources r ON r.uid = d.instance_uid "
                                    "WHERE d.state = 'running' AND d.host_id = r.host_id "
                                    "AND r.collection = 'instances'")).scalar()
        assert domains == 7
