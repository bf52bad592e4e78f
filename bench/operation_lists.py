"""Reads of a zone's Operations by the length of the history kept (a day of it by default:
``GSTACK_OPERATION_RETENTION``), in process: each read should cost what its page costs, not what
the zone's history holds.

Each size is a data directory whose zone holds ``SIZE`` finished Operations (written straight into
the table, as a day of calls leaves them) and the same few unfinished ones (:data:`RUNNING` running,
:data:`PENDING` pending: jobs do not run here, so they stay so). Every read of :data:`READS` is
timed through the Flask test client (``zoneOperations.list``, the whole request: auth, the query,
the filter's test of each row, the JSON), in :data:`ROUNDS` rounds that alternate the sizes; the
result holds each read's median milliseconds per request with its spread (min and max of the
rounds), by size, and the ratio of the largest size's median to the smallest's.

Usage: ``python3 -m bench.operation_lists [SIZE ...]`` (default 1000 100000); writes
``bench/results/operation_lists.json``.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from sqlalchemy import insert

from bench.harness import by_size, write_result
from bench.inprocess import app_client
from core.models import Operation

ROUNDS = 5
PER_ROUND = 20  # requests of each read per round
RUNNING, PENDING = 30, 10
ZONE = "us-central1-a"
URL = f"/compute/v1/projects/demo-project/zones/{ZONE}/operations"
# (label, query): every read answers the same page at every size; only the history around it grows.
NEWEST = {"orderBy": "creationTimestamp desc"}
READS = [("first page", {"maxResults": "50"}),
         ("first page, newest first", {"maxResults": "50", **NEWEST}),
         ("status = RUNNING", {"filter": "status = RUNNING"}),
         ("status = RUNNING, newest first", {"filter": "status = RUNNING", **NEWEST}),
         ("status != DONE", {"filter": "status != DONE"}),
         ("status = DONE, first page", {"filter": "status = DONE", "maxResults": "50"}),
         ("name = one", {"filter": "name = operation-bench-500"})]


def _rows(first: int, count: int, status: str, inserted: float) -> list[dict[str, Any]]:
    return [{"uid": 10**12 + first + i, "name": f"operation-bench-{first + i}", "project": "demo-project",
             "scope": f"zones/{ZONE}", "operation_type": "insert", "target_link": "projects/demo-project/x",
             "status": status, "progress": 100 if status == "DONE" else 0, "user": "bench",
             "insert_time": inserted + (first + i) * 1e-3, "end_time": None if status != "DONE" else inserted + 1,
             "job": "bench-none", "params": "{}", "attempts": 0} for i in range(count)]


def _server(size: int) -> tuple[Any, dict[str, str]]:
    """A test client and its headers, over a zone of ``size`` finished Operations and the few
    unfinished ones, the newest of all."""
    runtime, client, headers = app_client()
    with runtime.factory.kw["bind"].begin() as conn:
        for start in range(0, size, 10_000):
            conn.execute(insert(Operation), _rows(start, min(10_000, size - start), "DONE", 1.7e9))
        conn.execute(insert(Operation), _rows(size, RUNNING, "RUNNING", 1.8e9))
        conn.execute(insert(Operation), _rows(size + RUNNING, PENDING, "PENDING", 1.8e9))
    return client, headers


def _timed(client: Any, headers: dict[str, str], query: dict[str, str]) -> float:
    """Milliseconds per request of ``query``, over :data:`PER_ROUND` requests."""
    t0 = time.perf_counter()
    for _ in range(PER_ROUND):
        r = client.get(URL, headers=headers, query_string=query)
        assert r.status_code == 200, r.get_data(as_text=True)
    return (time.perf_counter() - t0) / PER_ROUND * 1e3


def main(sizes: list[int]) -> None:
    servers = {size: _server(size) for size in sizes}
    for size, (client, headers) in servers.items():  # the same answers at every size
        counts = [len(client.get(URL, headers=headers, query_string=q).get_json().get("items", [])) for _, q in READS]
        assert counts == [50, 50, RUNNING, RUNNING, RUNNING + PENDING, 50, 1], (size, counts)
    times: dict[str, dict[int, list[float]]] = {label: {size: [] for size in sizes} for label, _ in READS}
    for r in range(ROUNDS):
        for size in (sizes if r % 2 == 0 else sizes[::-1]):
            client, headers = servers[size]
            for label, query in READS:
                times[label][size].append(_timed(client, headers, query))
    result = {label: by_size(per_size, digits=2) for label, per_size in times.items()}
    write_result("operation_lists", {"sizes": sizes, "rounds": ROUNDS, "requests_per_round": PER_ROUND,
                                     "unfinished": {"RUNNING": RUNNING, "PENDING": PENDING}, "reads": result})


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [1000, 100_000])
