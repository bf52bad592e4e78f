"""What operators' probes and Prometheus read: ``/healthz``, ``/readyz`` and ``/metrics``.

- ``/healthz``: the process answers HTTP (liveness). Nothing else is checked, so a database outage
  does not get every API process restarted.
- ``/readyz``: the database answers and this process's job engine threads run (its listener, and
  its workers when it runs jobs); 503 otherwise, with which check failed.
- ``/metrics``: Prometheus text. Per process, counted as requests are served: requests by method
  and status, their latency, and rate-limit refusals. From the database at each scrape (the same
  from every process): job queue depth and oldest wait by job kind, operations by status, host
  capacity used and free, system VMs by kind and state.

Under gunicorn, set ``PROMETHEUS_MULTIPROC_DIR`` to an empty directory that the workers share:
the per-process counters are then kept in files there and every worker's scrape sums all of
them (prometheus_client's multiprocess mode). The three paths need no credential and show no
secret; restrict them at the proxy if their numbers are private.

prometheus_client is the ``metrics`` extra (``pip install 'gstack[metrics]'``); without it the
probes still answer and ``/metrics`` says what to install.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import orjson
from flask import Flask, Response, g, request

from core.services import health
from gstack.gce.errors import error_response
from gstack.gce.render import JSON_TYPE

prometheus: ModuleType | None
try:
    import prometheus_client as prometheus
    from prometheus_client import multiprocess
    from prometheus_client.core import GaugeMetricFamily
except ImportError:  # the metrics extra is not installed
    prometheus = None

if prometheus is not None:
    prometheus.disable_created_metrics()  # no *_created series: noise for counters that start with the process
    REQUESTS = prometheus.Counter("gstack_http_requests", "HTTP requests served, by method and status.",
                                  ["method", "status"], registry=None)
    LATENCY = prometheus.Histogram("gstack_http_request_duration_seconds", "Time to serve an HTTP request.",
                                   ["method"], registry=None,
                                   buckets=(.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120))
    REFUSALS = prometheus.Counter("gstack_ratelimit_refusals",
                                  "Requests refused by a limit, by kind (429: a failure limit; 403: a full queue).",
                                  ["kind"], registry=None)


def count_refusal(kind: str) -> None:
    if prometheus is not None:
        REFUSALS.labels(kind).inc()


class DatabaseCollector:
    """The gauges read from the database at each scrape (core.services.health)."""

    def __init__(self, factory: Any):
        self.factory = factory

    def collect(self) -> Iterator[Any]:
        session = self.factory()
        try:
            snap = health.snapshot(session)
        finally:
            session.close()
        queued = GaugeMetricFamily("gstack_jobs_queued", "Jobs waiting for a worker, by job kind.", labels=["kind"])
        oldest = GaugeMetricFamily("gstack_jobs_oldest_queued_seconds",
                                   "How long the oldest waiting job of each kind has waited.", labels=["kind"])
        running = GaugeMetricFamily("gstack_jobs_running", "Jobs running, by job kind.", labels=["kind"])
        for kind, count in sorted(snap.queued.items()):
            queued.add_metric([kind], count)
            oldest.add_metric([kind], snap.oldest_queued[kind])
        for kind, count in sorted(snap.running.items()):
            running.add_metric([kind], count)
        operations = GaugeMetricFamily("gstack_operations", "Operations, by status.", labels=["status"])
        for status in ("PENDING", "RUNNING", "DONE"):
            operations.add_metric([status], snap.operations.get(status, 0))
        labels = ["host", "zone", "status"]
        cpus = GaugeMetricFamily("gstack_host_cpus", "Host vCPUs.", labels=labels)
        cpus_used = GaugeMetricFamily("gstack_host_cpus_used", "Host vCPUs held by VMs.", labels=labels)
        cpus_free = GaugeMetricFamily("gstack_host_cpus_free", "Host vCPUs the planner can still place "
                                      "(vCPUs times the cluster's over-provisioning factor, less what VMs hold).",
                                      labels=labels)
        memory = GaugeMetricFamily("gstack_host_memory_bytes", "Host memory.", labels=labels)
        memory_used = GaugeMetricFamily("gstack_host_memory_used_bytes", "Host memory held by VMs.", labels=labels)
        memory_free = GaugeMetricFamily("gstack_host_memory_free_bytes",
                                        "Host memory the planner can still place (times the over-provisioning factor).",
                                        labels=labels)
        for h in snap.hosts:
            key = [h.name, h.zone, h.status]
            cpus.add_metric(key, h.cpus)
            cpus_used.add_metric(key, h.cpus_used)
            cpus_free.add_metric(key, max(0.0, h.cpus_allocatable - h.cpus_used))
            memory.add_metric(key, h.memory_mb * 2**20)
            memory_used.add_metric(key, h.memory_used_mb * 2**20)
            memory_free.add_metric(key, max(0.0, h.memory_allocatable_mb - h.memory_used_mb) * 2**20)
        system_vms = GaugeMetricFamily("gstack_system_vms", "System VMs, by kind and state.", labels=["kind", "state"])
        for (kind, state), count in sorted(snap.system_vms.items()):
            system_vms.add_metric([kind, state], count)
        yield from (queued, oldest, running, operations, cpus, cpus_used, cpus_free, memory, memory_used,
                    memory_free, system_vms)


def _registry(factory: Any) -> Any:
    """A registry for one scrape: every process's counters (multiprocess mode) or this one's, and the
    database's gauges."""
    assert prometheus is not None
    registry = prometheus.CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)
    else:
        for metric in (REQUESTS, LATENCY, REFUSALS):
            registry.register(metric)
    registry.register(DatabaseCollector(factory))
    return registry


def _json(body: dict, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status=status, content_type=JSON_TYPE, headers={"Cache-Control": "no-store"})


def count(method: str, status: int, seconds: float) -> None:
    """One request served, in the request counters (a no-op without prometheus_client)."""
    if prometheus is not None:
        method = method if method in ("GET", "POST", "PUT", "PATCH", "DELETE") else "OTHER"
        REQUESTS.labels(method, str(status)).inc()
        LATENCY.labels(method).observe(seconds)


def install(app: Flask, runtime: Any) -> None:
    """The probe routes, and the request counters around every request."""

    @app.before_request
    def _started() -> None:
        g.metrics_started = time.perf_counter()

    @app.after_request
    def _count(resp: Response) -> Response:
        count(request.method, resp.status_code, time.perf_counter() - g.get("metrics_started", time.perf_counter()))
        return resp

    @app.get("/healthz")
    def healthz() -> Response:
        return _json({"status": "ok"})

    @app.get("/readyz")
    def readyz() -> Response:
        session = runtime.factory()
        try:
            checks = {"database": health.database_reachable(session), "jobEngine": runtime.engine.alive()}
        finally:
            session.close()
        ready = all(checks.values())
        return _json({"status": "ok" if ready else "unavailable", "checks": checks}, 200 if ready else 503)

    @app.get("/metrics")
    def metrics() -> Response:
        if prometheus is None:
            return error_response(501, "notImplemented", "Metrics need prometheus_client: "
                                                         "pip install 'gstack[metrics]'.")
        body = prometheus.generate_latest(_registry(runtime.factory))
        return Response(body, content_type=prometheus.CONTENT_TYPE_LATEST, headers={"Cache-Control": "no-store"})
