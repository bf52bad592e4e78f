"""instances.list with 500-item pages on the server users run (``gstack serve``, request log on;
under ``BENCH_SERVER=gunicorn`` gunicorn with 2 sync workers) against the bare Flask app serving
the same page bytes on the same server, measured with wrk (bench/wrk.py) in alternating rounds:
the ratio is the median of the rounds' ratios. Goal (issue 15): ≥ 0.5×."""

from __future__ import annotations

import os
import sys
import time

import requests

from bench import wrk
from bench.harness import Gstack, write_result

ZONE = "us-central1-a"
N = 500
SECONDS = int(os.environ.get("BENCH_SECONDS", "2"))  # per round
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "7"))


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
        wrk.run(page_url, headers, seconds=1)  # warm-up
        wrk.run(bare_url, seconds=1)
        run = wrk.interleaved((page_url, headers), (bare_url, None), rounds=ROUNDS, seconds=SECONDS)
        compact = wrk.run(page_url + "&prettyPrint=false", headers, seconds=SECONDS)
        write_result(f"list_page_{backend}_{os.environ.get('BENCH_SERVER', 'serve')}", {
            "backend": backend, "server": os.environ.get("BENCH_SERVER", "serve"), "items_per_page": N,
            "page_bytes": len(page), "pages_per_second": run.pop("target_per_second"),
            "bare_flask_same_bytes": run.pop("baseline_per_second"), **run,
            "pages_per_second_prettyPrint_false": compact["per_second"], "goal_ratio": 0.5,
        })
    finally:
        g.close()


if __name__ == "__main__":
    main(*(sys.argv[1:2] or ["sqlite"]))
