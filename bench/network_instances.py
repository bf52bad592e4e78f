"""A network's instances as a router's full render and a sync that names no instance read them (a
firewall rule's change, a subnetwork's, a router's start), by the number of instances *other*
networks hold, in process: reading one network's instances should cost what that network holds.

Each size is a data directory whose ``demo-project`` default network holds ``SIZE`` instances (on a
/16 subnetwork of its own) and another project's default network :data:`SMALL` instances, made by
``instances.insert`` in the core (their jobs do not run). ``core.systemvms.guests.network_instances``
of the small network, in its region (a full render's) and in all (a sync's), is timed in
:data:`ROUNDS` rounds that alternate the sizes; the result holds the median milliseconds per read
with its spread, by size, and the ratio of the largest size's median to the smallest's.

Usage: ``python3 -m bench.network_instances [SIZE ...]`` (default 1000 10000); writes
``bench/results/network_instances.json``.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import orjson
from sqlalchemy import update

from bench.harness import by_size, write_result
from bench.metadata_source import UNLIMITED, _cloud
from core.db import write_session
from core.models import Project
from core.resources.context import Call
from core.services import instances, seed, topology
from core.systemvms.guests import network_instances

ROUNDS = 5
READS = 50  # per round
SMALL = 50
OTHER = "small-net-project"
NETWORK = f"https://www.googleapis.com/compute/v1/projects/{OTHER}/global/networks/default"


def _data(size: int) -> Any:
    runtime, _ = _cloud(size)
    with write_session(runtime.factory) as s:
        seed.ensure_project(s, OTHER)
        s.execute(update(Project).where(Project.name == OTHER).values(quota_limits=orjson.dumps(UNLIMITED).decode()))
    with write_session(runtime.factory) as s:
        zone = topology.zone(s, OTHER, "us-central1-a")
        for i in range(SMALL):
            instances.insert(Call(s, OTHER, "bench"), zone, {
                "name": f"small-{i:03d}", "machineType": "zones/us-central1-a/machineTypes/e2-micro",
                "disks": [{"boot": True, "autoDelete": True, "initializeParams": {
                    "sourceImage": "projects/debian-cloud/global/images/family/debian-12"}}],
                "networkInterfaces": [{"network": "global/networks/default"}]})
    return runtime


def _timed(runtime: Any, region: str | None) -> float:
    t0 = time.perf_counter()
    for _ in range(READS):
        with runtime.factory() as session:
            assert len(network_instances(session, NETWORK, region)) == SMALL
    return (time.perf_counter() - t0) / READS * 1e3


def main(sizes: list[int]) -> None:
    data = {size: _data(size) for size in sizes}
    reads = {"in its region (a full render)": "us-central1", "in every region (a sync)": None}
    times: dict[str, dict[int, list[float]]] = {label: {size: [] for size in sizes} for label in reads}
    for r in range(ROUNDS):
        for size in (sizes if r % 2 == 0 else sizes[::-1]):
            for label, region in reads.items():
                times[label][size].append(_timed(data[size], region))
    result = {label: by_size(per_size, digits=3) for label, per_size in times.items()}
    write_result("network_instances", {"sizes": sizes, "small_network_instances": SMALL, "rounds": ROUNDS,
                                       "reads_per_round": READS, "reads": result})


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [1000, 10_000])
