"""Which instance asks the metadata server, by the number of instances in the cloud, in process:
every request a guest sends through its virtual router's metadata proxy starts with this lookup
(``core.services.instance_metadata.instance_at``: the router's network and the source address it
saw), so it should cost the same however many instances the cloud holds.

Each size is a data directory whose ``default`` network holds ``SIZE`` instances, made by
``instances.insert`` in the core (their jobs do not run: the lookup reads the rows and the
addresses an insert writes), on a /16 subnetwork of its own. Lookups of :data:`LOOKUPS` instances
spread over the range are timed in :data:`ROUNDS` rounds that alternate the sizes; the result holds
the median microseconds per lookup with its spread (min and max of the rounds), by size, and the
ratio of the largest size's median to the smallest's.

Usage: ``python3 -m bench.metadata_source [SIZE ...]`` (default 1000 10000); writes
``bench/results/metadata_source.json``.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import orjson
from sqlalchemy import update

from bench.harness import by_size, write_result
from bench.inprocess import app_client
from core.db import write_session
from core.models import Project
from core.resources import store
from core.resources.context import Call
from core.services import instances, subnetworks, topology
from core.services.instance_metadata import instance_at

ROUNDS = 5
LOOKUPS = 200  # per round
PROJECT, ZONE = "demo-project", "us-central1-a"
NETWORK = f"https://www.googleapis.com/compute/v1/projects/{PROJECT}/global/networks/default"
UNLIMITED = {"regions": {"*": {"CPUS": 1e9, "INSTANCES": 1e9, "DISKS_TOTAL_GB": 1e9}},
             "global": {"CPUS_ALL_REGIONS": 1e9}}
CHUNK = 500  # instances per transaction


def _cloud(size: int) -> tuple[Any, list[str]]:
    """The runtime of a data directory with ``size`` instances on the default network, and the
    addresses of :data:`LOOKUPS` of them, spread over the range."""
    runtime, _, _ = app_client()
    with write_session(runtime.factory) as s:
        s.execute(update(Project).where(Project.name == PROJECT).values(quota_limits=orjson.dumps(UNLIMITED).decode()))
        subnetworks.create_row(s, PROJECT, "us-central1", "bench", NETWORK, "10.64.0.0/16")
    for start in range(0, size, CHUNK):
        with write_session(runtime.factory) as s:
            zone = topology.zone(s, PROJECT, ZONE)
            for i in range(start, min(size, start + CHUNK)):
                instances.insert(Call(s, PROJECT, "bench"), zone, {
                    "name": f"vm-{i:06d}", "machineType": f"zones/{ZONE}/machineTypes/e2-micro",
                    "disks": [{"boot": True, "autoDelete": True, "initializeParams": {
                        "sourceImage": "projects/debian-cloud/global/images/family/debian-12"}}],
                    "networkInterfaces": [{"subnetwork": "regions/us-central1/subnetworks/bench"}]})
    picked = []
    with write_session(runtime.factory) as s:
        for i in range(0, size, max(1, size // LOOKUPS)):
            body = store.body_of(store.find(s, PROJECT, "instances", f"zones/{ZONE}", f"vm-{i:06d}"))
            picked.append(body["networkInterfaces"][0]["networkIP"])
    return runtime, picked[:LOOKUPS]


def _timed(runtime: Any, ips: list[str]) -> float:
    """Microseconds per lookup of ``ips``, each in a transaction of its own as a request's."""
    t0 = time.perf_counter()
    for ip in ips:
        with runtime.factory() as session:
            assert instance_at(session, NETWORK, ip) is not None, ip
    return (time.perf_counter() - t0) / len(ips) * 1e6


def main(sizes: list[int]) -> None:
    clouds = {size: _cloud(size) for size in sizes}
    times: dict[int, list[float]] = {size: [] for size in sizes}
    for r in range(ROUNDS):
        for size in (sizes if r % 2 == 0 else sizes[::-1]):
            times[size].append(_timed(*clouds[size]))
    write_result("metadata_source", {"sizes": sizes, "rounds": ROUNDS, "lookups_per_round": LOOKUPS,
                                     "instance_at": by_size(times, unit="us", digits=1)})


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [1000, 10_000])
