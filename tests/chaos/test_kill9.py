"""kill -9 of ``gstack serve`` and of ``gstack worker`` in the middle of a burst of inserts, on
PostgreSQL and on SQLite (the worker then shares the database file). Clients do what Google's clients do with a write that got no answer: send it again
with the same ``requestId`` until one is answered. Afterwards nothing is duplicated, lost, hung or
miscounted: one instance per name, every Operation DONE without error, quota usage equal to what
exists, and the hosts' capacity held by exactly the instances that run."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from sqlalchemy import text

from tests.chaos.conftest import scaled
from tests.conftest import PROJECT, Server, make_server, pg_available

pytestmark = pytest.mark.chaos

ZONE = "us-central1-a"
REGION = "us-central1"
IMAGE = "projects/debian-cloud/global/images/family/debian-12"
CLIENTS = 8
BURST = scaled(24, 220)
RETRY_FOR = 90.0  # seconds a client keeps retrying one call: a restart plus a lapsed lease, with room
SETTLE_FOR = 60.0  # seconds the system Operations queued by the last inserts get to end


class Workers:
    """The ``gstack worker`` processes of a server that runs no jobs itself."""

    def __init__(self, server: Server):
        self.server, self.procs = server, []  # type: ignore[var-annotated]

    def start(self) -> None:
        log = open(os.path.join(self.server.data_dir, f"worker-{len(self.procs)}.log"), "ab")  # noqa: SIM115
        self.procs.append(subprocess.Popen(
            [sys.executable, "-m", "gstack.cli", "worker", "--threads", "4", "--data-dir", self.server.data_dir],
            env=self.server.env(), stdout=log, stderr=subprocess.STDOUT))

    def kill_last(self) -> None:
        """kill -9, and reap it: a zombie's pid still looks alive to the next worker's lease check."""
        self.procs[-1].kill()
        self.procs[-1].wait(10)

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(10)


@pytest.fixture(params=["postgresql", "sqlite"])
def split(request) -> Iterator[tuple[Server, Workers]]:
    """A server whose API process runs no jobs, and its workers; hypervisor calls take 0.3 s, so a
    kill lands while jobs are in flight."""
    if request.param == "postgresql" and not pg_available():
        pytest.fail("PostgreSQL is not reachable (.ci/run starts it)")
    server, cleanup = make_server(request.param, GSTACK_RUN_JOBS="0", GSTACK_SIM_LATENCY='{"spawn": 0.3}')
    server.start()
    workers = Workers(server)
    try:
        if BURST > 64:  # the long run outgrows the seeded quotas and hosts
            for metric in ("CPUS", "INSTANCES", "DISKS_TOTAL_GB"):
                server.admin("project", "set-quota", "--project", PROJECT, "--region", REGION, "--metric", metric,
                             "--limit", "100000")
            server.admin("project", "set-quota", "--project", PROJECT, "--metric", "CPUS_ALL_REGIONS",
                         "--limit", "100000")
        workers.start()
        yield server, workers
    finally:
        workers.stop()
        cleanup()


class RetryingClient:
    """Sends each call until the server answers it, the way google-api-core retries a write: a
    refused connection, a reset or a 5xx/429 is retried with the same ``requestId``. Any other
    non-200 answer is recorded as a failure."""

    def __init__(self, server: Server, token: str, failures: list[str]):
        self.api = f"{server.api}projects/{PROJECT}/"
        self.headers = {"Authorization": f"Bearer {token}"}
        self.failures = failures
        self.unanswered = 0  # sends that got no answer or a 5xx: the kill was felt

    def call(self, method: str, path: str, body: dict | None = None, params: dict | None = None) -> dict:
        deadline = time.monotonic() + RETRY_FOR
        while time.monotonic() < deadline:
            try:
                resp = requests.request(method, self.api + path, json=body, params=params, headers=self.headers,
                                        timeout=30)
            except requests.RequestException:
                self.unanswered += 1
                time.sleep(0.3)
                continue
            if resp.status_code == 200:
                return resp.json()
            if resp.status_code not in (429, 500, 502, 503, 504):
                self.failures.append(f"{method} {path}: {resp.status_code} {resp.text[:300]}")
                return {}
            self.unanswered += 1
            time.sleep(0.3)
        self.failures.append(f"{method} {path}: no answer in {RETRY_FOR} s")
        return {}

    def insert_and_wait(self, name: str, seen: dict[str, set[str]], lock: threading.Lock) -> None:
        request_id = str(uuid.uuid4())
        body = {"name": name, "machineType": f"zones/{ZONE}/machineTypes/f1-micro",
                "disks": [{"boot": True, "autoDelete": True, "initializeParams": {"sourceImage": IMAGE}}]}
        op = self.call("POST", f"zones/{ZONE}/instances", body, {"requestId": request_id})
        # A second send of the same call (as a client whose answer was lost would): the same Operation.
        again = self.call("POST", f"zones/{ZONE}/instances", body, {"requestId": request_id})
        with lock:
            seen.setdefault(name, set()).update(o["name"] for o in (op, again) if o)
        while op and op.get("status") != "DONE":
            op = self.call("POST", f"zones/{ZONE}/operations/{op['name']}/wait")
        if op and "error" in op:
            self.failures.append(f"insert {name}: {op['error']}")


def test_kill9_of_serve_and_worker_during_a_burst(split):
    server, workers = split
    failures: list[str] = []
    seen: dict[str, set[str]] = {}
    lock = threading.Lock()
    client = RetryingClient(server, server.token(), failures)
    names = [f"burst-{i:03d}" for i in range(BURST)]

    def chaos() -> None:
        """Kill the API process a third into the burst and a worker two thirds in; start each again."""
        for fraction, victim in ((1 / 3, "serve"), (2 / 3, "worker")):
            while len(seen) < BURST * fraction:
                time.sleep(0.05)
            if victim == "serve":
                server.kill()
                server.start()
            else:
                workers.kill_last()
                workers.start()

    killer = threading.Thread(target=chaos)
    killer.start()
    with ThreadPoolExecutor(CLIENTS) as pool:
        list(pool.map(lambda name: client.insert_and_wait(name, seen, lock), names))
    killer.join()

    assert not failures, f"{len(failures)} failures, the first: " + "\n".join(failures[:5])
    assert client.unanswered > 0  # clients were mid-call when serve died, and retried
    assert all(len(ops) == 1 for ops in seen.values()), {n: o for n, o in seen.items() if len(o) != 1}
    audit(server, client, names)


def audit(server: Server, client: RetryingClient, names: list[str]) -> None:
    listed = client.call("GET", f"zones/{ZONE}/instances", params={"maxResults": "500"}).get("items", [])
    assert sorted(i["name"] for i in listed) == names
    assert {i["status"] for i in listed} == {"RUNNING"}
    quotas = {q["metric"]: q["usage"] for q in client.call("GET", f"regions/{REGION}")["quotas"]}
    engine = server.engine()
    try:
        with engine.connect() as conn:
            def scalar(sql: str) -> float:
                return conn.execute(text(sql), {"p": PROJECT}).scalar() or 0

            # Every Operation ends. The routers' syncs that the last inserts queued may still be
            # running when the inserts are done (they are system Operations of their own, and a
            # loaded machine runs them late): they are given time to end, not a pass.
            deadline = time.monotonic() + SETTLE_FOR
            while scalar("SELECT COUNT(*) FROM operations WHERE status != 'DONE'") and time.monotonic() < deadline:
                conn.rollback()  # a fresh snapshot for the next look
                time.sleep(0.5)
            unfinished = conn.execute(text("SELECT name, operation_type, status, attempts, lease_owner "
                                           "FROM operations WHERE status != 'DONE'")).all()
            assert not unfinished, unfinished
            assert scalar("SELECT COUNT(*) FROM operations WHERE error IS NOT NULL") == 0
            assert scalar("SELECT COUNT(*) FROM (SELECT name FROM resources WHERE collection = 'instances' "
                          "GROUP BY project, scope, name HAVING COUNT(*) > 1) AS d") == 0
            # Quota usage is what exists: the instances, their vCPUs and their boot disks.
            assert quotas["INSTANCES"] == scalar(
                "SELECT COUNT(*) FROM resources WHERE project = :p AND collection = 'instances'") == len(names)
            assert quotas["CPUS"] == scalar(
                "SELECT SUM(vcpus) FROM resources WHERE project = :p AND collection = 'instances'") == len(names)
            assert quotas["DISKS_TOTAL_GB"] == scalar(
                "SELECT SUM(size_gb) FROM resources WHERE project = :p AND collection = 'disks'")
            # Host capacity is held by exactly the running instances, each with a running domain there.
            held = scalar("SELECT SUM(vcpus) FROM resources WHERE host_id IS NOT NULL AND collection = 'instances'")
            assert held == scalar("SELECT SUM(vcpus) FROM resources WHERE collection = 'instances' "
                                  "AND status = 'RUNNING'") == len(names)
            assert scalar("SELECT COUNT(*) FROM sim_domains d JOIN resources r ON r.uid = d.instance_uid "
                          "WHERE d.state = 'running' AND d.host_id = r.host_id AND r.collection = 'instances'") == len(names)
            assert scalar("SELECT COUNT(*) FROM resources WHERE collection = 'disks' "
                          "AND (status != 'READY' OR pool_id IS NULL)") == 0
    finally:
        engine.dispose()
