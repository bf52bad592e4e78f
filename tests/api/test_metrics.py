"""Operators' probes: /healthz, /readyz and Prometheus /metrics, scraped while the API works."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import psycopg
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import PG_ADMIN_DSN, PROJECT, ZONE, free_port, running_server, unique, wait_op


def scrape(server) -> dict[tuple[str, tuple], float]:
    """Every sample of /metrics: (name, sorted labels) -> value."""
    r = requests.get(server.base + "/metrics", timeout=30)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/plain; version="), r.text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(r.text) for s in family.samples}


def samples(metrics: dict, name: str) -> dict[tuple, float]:
    return {labels: value for (n, labels), value in metrics.items() if n == name}


def test_health_and_readiness(server):
    r = requests.get(server.base + "/healthz")
    assert r.status_code == 200 and r.json() == {"status": "ok"}
    r = requests.get(server.base + "/readyz")
    assert r.status_code == 200 and r.json() == {"status": "ok", "checks": {"database": True, "jobEngine": True}}


def test_metrics_while_the_api_works(server, gce):
    before = scrape(server)
    stop = threading.Event()
    errors: list[int] = []

    token = server.token()
    served = [0]

    def traffic() -> None:  # a client listing zones meanwhile (valid: failures would count against 127.0.0.1)
        while not stop.is_set():
            r = requests.get(f"{server.api}projects/{PROJECT}/zones", headers={"Authorization": "Bearer " + token})
            if r.status_code != 200:
                errors.append(r.status_code)
            served[0] += 1

    thread = threading.Thread(target=traffic)
    thread.start()
    try:
        op = gce.disks().insert(project=PROJECT, zone=ZONE, body={"name": unique("metrics"), "sizeGb": "10"}).execute()
        scrapes = [scrape(server) for _ in range(3)]
        assert wait_op(gce, op)["status"] == "DONE"
    finally:
        stop.set()
        thread.join()
    assert errors == []
    after = scrape(server)
    key = ("gstack_http_requests_total", (("method", "GET"), ("status", "200")))
    assert after[key] >= before.get(key, 0) + served[0]
    assert after[("gstack_http_requests_total", (("method", "POST"), ("status", "200")))] >= 1
    assert after[("gstack_http_request_duration_seconds_count", (("method", "GET"),))] >= after[key]
    assert any(n == "gstack_http_request_duration_seconds_bucket" for n, _ in after)
    assert samples(after, "gstack_operations")[(("status", "DONE"),)] >= 1
    assert set(samples(after, "gstack_operations")) == {(("status", s),) for s in ("PENDING", "RUNNING", "DONE")}
    cpus, free = samples(after, "gstack_host_cpus"), samples(after, "gstack_host_cpus_free")
    used = samples(after, "gstack_host_cpus_used")
    # free is what the planner can still place: vCPUs × the cluster's over-provisioning factor (≥ 1
    # here) less what VMs hold, so a busy host's free plus used covers at least its vCPUs
    assert cpus and set(cpus) == set(free) == set(used)
    assert all(free[h] >= 0 and free[h] + used[h] >= cpus[h] for h in cpus)
    assert all(v > 0 for v in samples(after, "gstack_host_memory_bytes").values())
    for metrics in scrapes:  # the queue gauges are there whenever a job waits
        queued = samples(metrics, "gstack_jobs_queued")
        assert set(queued) == {labels for labels in samples(metrics, "gstack_jobs_oldest_queued_seconds")}
    text = requests.get(server.base + "/metrics").text
    # declared even while they have no sample (rate-limit refusals: tests/auth/test_ratelimit.py)
    for family in ("gstack_system_vms", "gstack_jobs_queued", "gstack_jobs_oldest_queued_seconds", "gstack_jobs_running"):
        assert f"# TYPE {family} " in text


def test_metrics_sum_every_gunicorn_worker(tmp_path):
    """Under gunicorn with PROMETHEUS_MULTIPROC_DIR, each worker keeps its counters in files there and
    any worker's scrape sums them all: the count is every request, whichever worker served it, even
    one that has since exited (gunicorn replaces a worker after 30 requests here)."""
    data_dir, metrics_dir = tmp_path / "data", tmp_path / "metrics"
    metrics_dir.mkdir()
    env = {**os.environ, "GSTACK_DATA_DIR": str(data_dir), "GSTACK_RUN_JOBS": "0",
           "GSTACK_DATABASE_URL": f"sqlite:///{data_dir}/gstack.sqlite3", "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
    subprocess.run([sys.executable, "-m", "gstack.cli", "admin", "project", "list", "--data-dir", str(data_dir)],
                   env=env, check=True, capture_output=True, timeout=120)  # the schema, before two workers race
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with open(tmp_path / "gunicorn.log", "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "-w", "2", "-b", f"127.0.0.1:{port}", "--max-requests", "30",
                                 "--control-socket", str(tmp_path / "gunicorn.ctl"), "gstack.wsgi:app"],
                                env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 120
        while True:
            try:
                if requests.get(base + "/readyz", timeout=10).status_code == 200:
                    break
            except (requests.ConnectionError, requests.Timeout):  # the workers are still starting
                pass
            assert time.time() < deadline and proc.poll() is None, (tmp_path / "gunicorn.log").read_text()
            time.sleep(0.3)
        with ThreadPoolExecutor(4) as pool:
            codes = list(pool.map(lambda _: requests.get(base + "/healthz", timeout=30).status_code, range(100)))
        assert codes == [200] * 100
        pids = {name.rsplit("_", 1)[1].split(".")[0] for name in os.listdir(metrics_dir) if name.startswith("counter_")}
        assert len(pids) >= 4, os.listdir(metrics_dir)  # 100 requests, 30 per worker: each counted in its own file
        for _ in range(4):  # whichever worker answers the scrape
            r = requests.get(base + "/metrics", timeout=30)
            assert r.status_code == 200
            total = sum(s.value for family in text_string_to_metric_families(r.text) for s in family.samples
                        if s.name == "gstack_http_requests_total" and s.labels == {"method": "GET", "status": "200"})
            assert total >= 101  # the probes, the readiness polls and earlier scrapes
    finally:
        proc.terminate()
        proc.wait(30)


def test_not_ready_while_the_database_is_away():
    """/readyz says 503 while PostgreSQL refuses the server's connections, and 200 again after; /healthz
    stays 200 (the process is alive: restarting it would not bring the database back)."""
    with running_server("postgresql") as srv:
        name = srv.database_url.rsplit("/", 1)[1]
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as admin:
            admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
            try:
                r = requests.get(srv.base + "/readyz", timeout=30)
                assert r.status_code == 503, r.text
                assert r.json() == {"status": "unavailable", "checks": {"database": False, "jobEngine": True}}
                assert requests.get(srv.base + "/healthz", timeout=30).status_code == 200
            finally:
                admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        r = requests.get(srv.base + "/readyz", timeout=30)
        assert r.status_code == 200, r.text
