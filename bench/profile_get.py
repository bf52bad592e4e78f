"""In-process cost of one authenticated instances.get (Flask test client, no network): the number
to watch when changing the read path. Prints microseconds per request; ``-p`` prints a profile.

Usage: ``python3 -m bench.profile_get [-p]``."""

from __future__ import annotations

import sys

from bench.inprocess import app_client, timed_gets

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
    per = timed_gets(client, url, headers, N, sys.argv[2] if len(sys.argv) > 2 else "cumulative")
    print(f"instances.get: {per * 1e6:.0f} µs per request (in-process)")

if __name__ == "__main__":
    main()
