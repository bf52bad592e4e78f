"""The resource policy scheduler's round (``core.services.resource_policies.scheduler.run_round``,
every minute in each serving process) by the number of disks and instances its policies' project
holds, in process: a round should cost what the policies' followers hold, not the project.

Each size is a data directory whose ``demo-project`` holds ``SIZE`` instances with their boot disks
(made by ``instances.insert`` in the core, as :mod:`bench.metadata_source` makes them; their jobs do
not run), a snapshot schedule followed by :data:`FOLLOWERS` disks and an instance schedule followed
by :data:`FOLLOWERS` instances. A first round at a fixed instant does the due work; the rounds timed
at that same instant find nothing more to do, so they time what every quiet minute costs: reading
each policy, its state and its followers. :data:`ROUNDS` rounds alternate the sizes; the result
holds the median milliseconds per scheduler round with its spread, by size, and the ratio of the
largest size's median to the smallest's.

Usage: ``python3 -m bench.policy_rounds [SIZE ...]`` (default 1000 10000); writes
``bench/results/policy_rounds.json``.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from bench.harness import by_size, write_result
from bench.metadata_source import PROJECT, ZONE, _cloud
from core.db import write_session
from core.resources import store
from core.resources.context import Call
from core.services import disks, resource_policies, topology
from core.services.resource_policies.scheduler import run_round

ROUNDS = 5
RUNS = 20  # scheduler rounds per bench round
FOLLOWERS = 5
NOW = 1_900_000_000.0  # 2030-03-17: after the followers' creation, so the first round has work
SNAPSHOTS = {"snapshotSchedulePolicy": {"schedule": {"hourlySchedule": {"hoursInCycle": 1, "startTime": "00:00"}}}}
STOPS = {"instanceSchedulePolicy": {"vmStopSchedule": {"schedule": "0 * * * *"}, "timeZone": "UTC"}}


def _data(size: int) -> Any:
    runtime, _ = _cloud(size)
    with write_session(runtime.factory) as s:
        call, zone = Call(s, PROJECT, "bench"), topology.zone(s, PROJECT, ZONE)
        for name, kind in (("bench-snapshots", SNAPSHOTS), ("bench-stops", STOPS)):
            resource_policies.insert(call, "us-central1", {"name": name, **kind})
        for i in range(FOLLOWERS):
            disks.insert(call, zone, {"name": f"followed-{i}", "sizeGb": "10",
                                      "resourcePolicies": ["regions/us-central1/resourcePolicies/bench-snapshots"]})
            resource_policies.add(call, "instances", f"zones/{ZONE}", "us-central1", f"vm-{i:06d}",
                                  {"resourcePolicies": ["regions/us-central1/resourcePolicies/bench-stops"]})
    with write_session(runtime.factory) as s:  # READY, as their jobs would make them: a snapshot's source
        for i in range(FOLLOWERS):
            disk = store.find(s, PROJECT, "disks", f"zones/{ZONE}", f"followed-{i}")
            store.save(disk, {**store.body_of(disk), "status": "READY"})
            disk.status = "READY"
    run_round(runtime.factory, NOW)  # the due work, done once: the timed rounds find none
    return runtime


def _timed(runtime: Any) -> float:
    t0 = time.perf_counter()
    for _ in range(RUNS):
        assert run_round(runtime.factory, NOW) == []
    return (time.perf_counter() - t0) / RUNS * 1e3


def main(sizes: list[int]) -> None:
    data = {size: _data(size) for size in sizes}
    times: dict[int, list[float]] = {size: [] for size in sizes}
    for r in range(ROUNDS):
        for size in (sizes if r % 2 == 0 else sizes[::-1]):
            times[size].append(_timed(data[size]))
    write_result("policy_rounds", {"sizes": sizes, "followers": FOLLOWERS, "rounds": ROUNDS,
                                   "scheduler_rounds_per_round": RUNS, "round_ms": by_size(times)})


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [1000, 10_000])
