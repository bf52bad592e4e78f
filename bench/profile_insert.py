"""In-process cost of instances.insert (Flask test client, no network) and of its job: the numbers
to watch when changing the write path. Prints milliseconds per insert request and per job run to
RUNNING; ``-p`` prints a profile of both.

Usage: ``python3 -m bench.profile_insert [-p]``."""

from __future__ import annotations

import cProfile
import pstats
import sys
import time
from collections.abc import Callable
from typing import Any

import orjson
from sqlalchemy import update

from bench.inprocess import app_client
from core.db import write_session
from core.models import Project
from gstack.interpreter import settle

N = 200  # the seeded zone holds 256 e2-micro
UNLIMITED = {"regions": {"*": {"CPUS": 1e6, "INSTANCES": 1e6, "DISKS_TOTAL_GB": 1e6}},
             "global": {"CPUS_ALL_REGIONS": 1e6}}
WARM_UP = 20
URL = "/compute/v1/projects/demo-project/zones/us-central1-a/instances"
BODY = {"machineType": "zones/us-central1-a/machineTypes/e2-micro",
        "disks": [{"boot": True, "autoDelete": True,
                   "initializeParams": {"sourceImage": "projects/debian-cloud/global/images/family/debian-12"}}]}


def inserting() -> tuple[Any, Any, dict[str, str], Callable[[int], None]]:
    """:func:`bench.inprocess.app_client` (runtime, test client, headers) with demo-project's quotas
    unlimited, and a function inserting the instance ``vm-NNNN`` that fails unless it is taken."""
    runtime, client, headers = app_client()
    with write_session(runtime.factory) as s:
        s.execute(update(Project).where(Project.name == "demo-project")
                  .values(quota_limits=orjson.dumps(UNLIMITED).decode()))

    def insert(i: int) -> None:
        r = client.post(URL, json={**BODY, "name": f"vm-{i:04d}"}, headers=headers, query_string={"prettyPrint": "false"})
        assert r.status_code == 200, r.get_data(as_text=True)

    return runtime, client, headers, insert


def main() -> None:
    runtime, client, headers, insert = inserting()
    for i in range(WARM_UP):
        insert(i)
    runtime.engine.run_until_idle()
    settle()  # as gstack serve does once started: start-up's objects out of the collector's walks
    profiler = cProfile.Profile()
    profiling = "-p" in sys.argv
    if profiling:
        profiler.enable()
    t0 = time.perf_counter()
    for i in range(WARM_UP, WARM_UP + N):
        insert(i)
    t_insert = time.perf_counter() - t0
    t0 = time.perf_counter()
    runtime.engine.run_until_idle(timeout=600)
    t_jobs = time.perf_counter() - t0
    profiler.disable()
    running = client.get(URL, headers=headers, query_string={"filter": "status = RUNNING", "fields": "items(name)"})
    assert len(running.get_json().get("items", [])) == WARM_UP + N
    print(f"instances.insert: {t_insert / N * 1e3:.2f} ms per request, {t_jobs / N * 1e3:.2f} ms per job "
          "(in-process)")
    if profiling:
        stats = pstats.Stats(profiler).sort_stats(sys.argv[2] if len(sys.argv) > 2 else "cumulative")
        if len(sys.argv) > 3:
            stats.print_callees(sys.argv[3])
        else:
            stats.print_stats(50)


if __name__ == "__main__":
    main()
