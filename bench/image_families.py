"""An image family's lookup by the number of images its project holds in other families, in
process: ``images.getFromFamily`` and an ``instances.insert`` whose boot disk names a public
family (``projects/debian-cloud/global/images/family/debian-12``, what gcloud sends by default)
should cost what the family costs, not what the project's other families hold.

Each size is a data directory whose ``debian-cloud`` holds its seeded images and ``SIZE`` images
more, each in a family of its own (``bench-N``), all newer than the seeded ones: the newest first,
a walk of the project's images meets every one of them before ``debian-12``'s. With
``--same-family`` the ``SIZE`` images are older images of ``debian-12`` itself instead (a family
that keeps its history: a build a day adds one), which every lookup must tell from the newest. Each read is timed
through the Flask test client (the whole request: auth, the reads, the insert's rows; the inserts'
jobs do not run), in :data:`ROUNDS` rounds that alternate the sizes; the result holds each read's
median milliseconds per request with its spread (min and max of the rounds), by size, and the ratio
of the largest size's median to the smallest's.

Usage: ``python3 -m bench.image_families [--same-family] [SIZE ...]`` (default 0 1000); writes
``bench/results/image_families.json``.
"""

from __future__ import annotations

import itertools
import sys
import time
from typing import Any

import orjson
from sqlalchemy import update

from bench.harness import by_size, write_result
from bench.inprocess import app_client
from core.db import write_session
from core.models import Project
from core.services import images

ROUNDS = 5
PER_ROUND = 20  # requests of each read per round
ZONE = "us-central1-a"
FAMILY = "projects/debian-cloud/global/images/family/debian-12"
UNLIMITED = {"regions": {"*": {"CPUS": 1e9, "INSTANCES": 1e9, "DISKS_TOTAL_GB": 1e9}},
             "global": {"CPUS_ALL_REGIONS": 1e9}}
BODY = {"machineType": f"zones/{ZONE}/machineTypes/e2-micro",
        "disks": [{"boot": True, "autoDelete": True, "initializeParams": {"sourceImage": FAMILY}}]}


def _server(size: int, same_family: bool) -> tuple[Any, dict[str, str]]:
    """A test client and its headers, over a ``debian-cloud`` with ``size`` images more, each in a
    family of its own, newer than the seeded ones (``same_family``: in ``debian-12``, older than
    its seeded ones); demo-project's quotas unlimited."""
    runtime, client, headers = app_client()
    with write_session(runtime.factory) as s:
        s.execute(update(Project).where(Project.name == "demo-project")
                  .values(quota_limits=orjson.dumps(UNLIMITED).decode()))
        for i in range(size):
            if same_family:
                images.seed_public_image(s, "debian-cloud", f"bench-image-{i}", "debian-12", 10, 1.5e9 + i,
                                         "an older image of the family")
            else:
                images.seed_public_image(s, "debian-cloud", f"bench-image-{i}", f"bench-{i}", 10, 1.8e9 + i,
                                         "an image of another family")
    return client, headers


def _get(client: Any, headers: dict[str, str], _: int) -> None:
    r = client.get(f"/compute/v1/{FAMILY}", headers=headers)
    assert r.status_code == 200 and r.get_json()["name"] == "debian-12-bookworm-v20241009", r.get_data(as_text=True)


def _insert(client: Any, headers: dict[str, str], n: int) -> None:
    r = client.post(f"/compute/v1/projects/demo-project/zones/{ZONE}/instances", headers=headers,
                    json={**BODY, "name": f"vm-{n}"})
    assert r.status_code == 200, r.get_data(as_text=True)


READS = [("images.getFromFamily", _get), ("instances.insert from a family", _insert)]


def main(sizes: list[int], same_family: bool) -> None:
    servers = {size: _server(size, same_family) for size in sizes}
    serial = itertools.count()
    times: dict[str, dict[int, list[float]]] = {label: {size: [] for size in sizes} for label, _ in READS}
    for r in range(ROUNDS):
        for size in (sizes if r % 2 == 0 else sizes[::-1]):
            client, headers = servers[size]
            for label, read in READS:
                t0 = time.perf_counter()
                for _ in range(PER_ROUND):
                    read(client, headers, next(serial))
                times[label][size].append((time.perf_counter() - t0) / PER_ROUND * 1e3)
    result = {label: by_size(per_size, digits=2) for label, per_size in times.items()}
    write_result("image_families", {"sizes": sizes, "images_added": "to debian-12" if same_family else
                                     "to other families", "rounds": ROUNDS, "requests_per_round": PER_ROUND,
                                     "reads": result})


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:] if a != "--same-family"] or [0, 1000], "--same-family" in sys.argv)
