"""In-process cost of one authenticated 500-item instances.list page (Flask test client, no
network), the read path's number to watch next to :mod:`bench.profile_get`. Prints milliseconds
per page; ``-p`` prints a profile.

Usage: ``python3 -m bench.profile_list [-p]``."""

from __future__ import annotations

import cProfile
import pstats
import sys
import time

from bench.inprocess import app_client
from core.db import write_session
from core.services.admin import set_quota
from core.services.hosts import add_host

N = 500
PAGES = 100


def main() -> None:
    runtime, client, headers = app_client()
    url = "/compute/v1/projects/demo-project/zones/us-central1-a/instances"
    with write_session(runtime.factory) as s:
        for metric in ("CPUS", "INSTANCES", "DISKS_TOTAL_GB"):
            set_quota(s, "demo-project", metric, 1_000_000, "us-central1")
        set_quota(s, "demo-project", "CPUS_ALL_REGIONS", 1_000_000, None)
    for h in range(4):
        add_host(runtime.factory, runtime.drivers, "us-central1-a", None, f"bench-host-{h:02d}", "simulator://",
                 cpus=64, memory_mb=262144)
    for i in range(N):
        body = {"name": f"vm-{i:04d}", "machineType": "zones/us-central1-a/machineTypes/e2-micro",
                "disks": [{"boot": True, "autoDelete": True,
                           "initializeParams": {"sourceImage": "projects/debian-cloud/global/images/family/debian-12"}}]}
        r = client.post(url, json=body, headers=headers)
        assert r.status_code == 200, r.data
    runtime.engine.run_until_idle()
    page = client.get(url, headers=headers)
    assert len(page.json["items"]) == N, len(page.json.get("items", []))
    for _ in range(10):
        client.get(url, headers=headers)
    profiler = cProfile.Profile()
    if "-p" in sys.argv:
        profiler.enable()
    t0 = time.perf_counter()
    for _ in range(PAGES):
        assert client.get(url, headers=headers).status_code == 200
    elapsed = time.perf_counter() - t0
    profiler.disable()
    print(f"instances.list, {N} items, {len(page.data)} bytes: {elapsed / PAGES * 1e3:.2f} ms per page (in-process)")
    if "-p" in sys.argv:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    main()
