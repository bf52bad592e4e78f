"""In-process cost of one authenticated instances.get (Flask test client, no network): the number
to watch when changing the read path. Prints microseconds per request; ``-p`` prints a profile.

Usage: ``python3 -m bench.profile_get [-p]``."""

from __future__ import annotations

import cProfile
import pstats
import sys
import time

from bench.inprocess import app_client

N = 2000


def main() -> None:
    runtime, client, headers = app_client()
    body = {"name": "vm1", "machineType": "zones/us-central1-a/machineTypes/e2-micro",
            "disks": [{"boot": True, "autoDelete": True,
                       "initializeParams": {"sourceImage": "projects/debian-cloud/global/images/family/debian-12"}}]}
    client.post("/compute/v1/projects/demo-project/zones/us-central1-a/instances", json=body, headers=headers)
    runtime.engine.run_until_idle()
    url = "/compute/v1/projects/demo-project/zones/us-central1-a/instances/vm1"
    for _ in range(200):
        client.get(url, headers=headers)
    profiler = cProfile.Profile()
    if "-p" in sys.argv:
        profiler.enable()
    t0 = time.perf_counter()
    for _ in range(N):
        assert client.get(url, headers=headers).status_code == 200
    elapsed = time.perf_counter() - t0
    profiler.disable()
    print(f"instances.get: {elapsed / N * 1e6:.0f} µs per request (in-process)")
    if "-p" in sys.argv:
        pstats.Stats(profiler).sort_stats(sys.argv[2] if len(sys.argv) > 2 else "cumulative").print_stats(40)


if __name__ == "__main__":
    main()
