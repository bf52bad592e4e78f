"""In-process cost of one authenticated 500-item instances.list page (Flask test client, no
network), the read path's number to watch next to :mod:`bench.profile_get`. Prints milliseconds
per page asked again unchanged (served from the page cache, gstack/gce/listing_cache.py) and per
page asked after a write of one of its rows (made again); ``-p`` profiles the first.

Usage: ``python3 -m bench.profile_list [-p]``."""

from __future__ import annotations

import time

from sqlalchemy import text

from bench.inprocess import app_client, timed_gets
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
    per = timed_gets(client, url, headers, PAGES, "tottime", 25)
    print(f"instances.list, {N} items, {len(page.data)} bytes: {per * 1e3:.2f} ms per page unchanged (in-process)")
    made = 0.0
    for _ in range(PAGES):
        with runtime.factory.kw["bind"].begin() as conn:  # a write of one row: the page is made again
            conn.execute(text("UPDATE resources SET body = body WHERE name = 'vm-0000'"))
        started = time.perf_counter()
        assert client.get(url, headers=headers).status_code == 200
        made += time.perf_counter() - started
    print(f"{made / PAGES * 1e3:.2f} ms per page after a write of one of its rows (in-process)")

if __name__ == "__main__":
    main()
