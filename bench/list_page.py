"""instances.list with 500-item pages under gunicorn (sync, 2 workers). Goal: ≥ 300 pages/s on
SQLite. Baseline in the same run: the bare Flask endpoint serving the same page bytes."""

from __future__ import annotations

import os
import sys
import time

import requests

from bench.harness import Gstack, write_result
from bench.load import interleaved, measure

ZONE = "us-central1-a"
N = 500
SECONDS = float(os.environ.get("BENCH_SECONDS", "5"))


def main(backend: str = "sqlite") -> None:
    g = Gstack(backend)
    try:
        for metric in ("CPUS", "INSTANCES", "DISKS_TOTAL_GB"):
            g.admin("project", "set-quota", "--project", "demo-project", "--region", "us-central1", "--metric",
                    metric, "--limit", "1000000")
        g.admin("project", "set-quota", "--project", "demo-project", "--metric", "CPUS_ALL_REGIONS",
                "--limit", "1000000")
        for h in range(4):
            g.admin("host", "add", "--zone", ZONE, "--name", f"bench-host-{h:02d}", "--cpus", "64",
                    "--memory-mb", "262144")
        token = g.token()
        base = g.server(GSTACK_WORKERS="2")
        headers = {"Authorization": f"Bearer {token}"}
        url = f"{base}/compute/v1/projects/demo-project/zones/{ZONE}/instances"
        s = requests.Session()
        s.headers.update(headers)
        body = {"machineType": f"zones/{ZONE}/machineTypes/e2-micro",
                "disks": [{"boot": True, "autoDelete": True,
                           "initializeParams": {"sourceImage": "projects/debian-cloud/global/images/family/debian-12"}}]}
        for i in range(N):
            s.post(url, json={**body, "name": f"vm-{i:04d}"}).raise_for_status()
        while s.get(url, params={"filter": "status != RUNNING", "maxResults": 1}).json().get("items"):
            time.sleep(0.2)
        page_url = url + "?maxResults=500"
        page = s.get(page_url).content
        body_file = os.path.join(g.data_dir, "page.json")
        with open(body_file, "wb") as f:
            f.write(page)
        bare_base = g.bare(body_file)
        bare_url = f"{bare_base}/compute/v1/projects/demo-project/zones/{ZONE}/instances/x"
        measure(page_url, headers, seconds=1)
        run = interleaved((page_url, headers), (bare_url, None), seconds=2 * SECONDS)
        compact = measure(page_url + "&prettyPrint=false", headers, seconds=SECONDS)
        write_result(f"list_page_{backend}", {
            "backend": backend, "server": os.environ.get("BENCH_SERVER", "serve"), "clients": 4, "items_per_page": N,
            "page_bytes": len(page), "pages_per_second": run["target_per_second"],
            "pages_per_second_prettyPrint_false": compact["per_second"],
            "bare_flask_same_bytes": run["baseline_per_second"], "rounds": run["rounds"],
            "ratio": run["ratio"], "goal_pages_per_second": 300,
        })
    finally:
        g.close()


if __name__ == "__main__":
    main(*(sys.argv[1:2] or ["sqlite"]))
