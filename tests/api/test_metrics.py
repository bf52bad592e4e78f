"""Operators' probes: /healthz, /readyz and Prometheus /metrics, scraped while the API works."""

from __future__ import annotations

import threading

import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import PROJECT, ZONE, unique, wait_op


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
    assert cpus and set(cpus) == set(free) and all(0 <= free[h] <= cpus[h] for h in cpus)
    assert all(v > 0 for v in samples(after, "gstack_host_memory_bytes").values())
    for metrics in scrapes:  # the queue gauges are there whenever a job waits
        queued = samples(metrics, "gstack_jobs_queued")
        assert set(queued) == {labels for labels in samples(metrics, "gstack_jobs_oldest_queued_seconds")}
    text = requests.get(server.base + "/metrics").text
    # declared even while they have no sample (rate-limit refusals: tests/auth/test_ratelimit.py)
    for family in ("gstack_system_vms", "gstack_jobs_queued", "gstack_jobs_oldest_queued_seconds", "gstack_jobs_running"):
        assert f"# TYPE {family} " in text
