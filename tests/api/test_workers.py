"""Several processes on one database: an API process that runs no jobs, and separate workers."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import BACKENDS, PROJECT, make_server, pg_available, wait_op


@pytest.fixture(params=BACKENDS)
def api_only(request):
    if request.param == "postgresql" and not pg_available():
        pytest.fail("PostgreSQL is not reachable")
    server, cleanup = make_server(request.param, GSTACK_RUN_JOBS="0")
    server.start()
    workers = []

    def start_worker():
        log = open(os.path.join(server.data_dir, f"worker-{len(workers)}.log"), "ab")  # noqa: SIM115
        workers.append(subprocess.Popen([sys.executable, "-m", "gstack.cli", "worker", "--threads", "2",
                                         "--data-dir", server.data_dir], env=server.env(), stdout=log,
                                        stderr=subprocess.STDOUT))

    server.start_worker = start_worker
    yield server
    for w in workers:
        w.terminate()
        w.wait(10)
    cleanup()


def test_separate_worker_processes_run_the_jobs(api_only):
    gce = api_only.gce()
    body = {"machineType": "zones/us-central1-a/machineTypes/e2-micro",
            "disks": [{"boot": True, "autoDelete": True,
                       "initializeParams": {"sourceImage": "projects/debian-cloud/global/images/family/debian-12"}}]}
    ops = [gce.instances().insert(project=PROJECT, zone="us-central1-a", body={**body, "name": f"w-{i}"}).execute()
           for i in range(6)]
    # Nobody runs jobs yet: the operations wait, PENDING.
    op = gce.zoneOperations().get(project=PROJECT, zone="us-central1-a", operation=ops[0]["name"]).execute()
    assert op["status"] == "PENDING"
    api_only.start_worker()
    api_only.start_worker()
    done = [wait_op(gce, op) for op in ops]
    assert all("error" not in op for op in done)
    statuses = {i["name"]: i["status"] for i in gce.instances().list(project=PROJECT, zone="us-central1-a").execute()["items"]}
    assert statuses == {f"w-{i}": "RUNNING" for i in range(6)}
