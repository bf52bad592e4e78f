"""``instances.setName`` by the number of instances in the cloud, in process: a rename should cost
what links to the instance, not what the cloud holds.

Each size is a data directory whose ``demo-project`` holds ``SIZE`` instances with their boot disks
(:func:`bench.metadata_source._cloud`: made by ``instances.insert`` in the core, their jobs not run).
The first instance is made TERMINATED as its stop job would leave it, and each timed rename
(:func:`core.services.instances.updates.set_name`, in a write transaction of its own as a request's)
moves it between two names, so every rename rewrites the same links: its boot disk's ``users``.
:data:`ROUNDS` rounds alternate the sizes; the result holds the median milliseconds per rename with
its spread, by size, and the ratio of the largest size's median to the smallest's. It imports the
service from wherever ``PYTHONPATH`` finds ``core``, so the same command measures an older tree.

Usage: ``python3 -m bench.rename_links [SIZE ...]`` (default 1000 10000); writes
``bench/results/rename_links.json``.
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
from core.services import topology
from core.services.instances.updates import set_name

ROUNDS = 5
RENAMES = 10  # per round
NAMES = ("vm-000000", "vm-renamed")


def _data(size: int) -> Any:
    runtime, _ = _cloud(size)
    with write_session(runtime.factory) as s:
        inst = store.find(s, PROJECT, "instances", f"zones/{ZONE}", NAMES[0])
        store.save(inst, {**store.body_of(inst), "status": "TERMINATED"})
        inst.status = "TERMINATED"
    return runtime


def _timed(runtime: Any, start: int) -> float:
    t0 = time.perf_counter()
    for i in range(start, start + RENAMES):
        old, new = NAMES[i % 2], NAMES[(i + 1) % 2]
        with write_session(runtime.factory) as s:
            set_name(Call(s, PROJECT, "bench"), topology.zone(s, PROJECT, ZONE), old, {"name": new, "currentName": old})
    return (time.perf_counter() - t0) / RENAMES * 1e3


def main(sizes: list[int]) -> None:
    data = {size: _data(size) for size in sizes}
    times: dict[int, list[float]] = {size: [] for size in sizes}
    for r in range(ROUNDS):
        for size in (sizes if r % 2 == 0 else sizes[::-1]):
            times[size].append(_timed(data[size], r * RENAMES))
    write_result("rename_links", {"sizes": sizes, "rounds": ROUNDS, "renames_per_round": RENAMES,
                                  "set_name_ms": by_size(times)})


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [1000, 10_000])
