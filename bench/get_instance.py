"""instances.get with auth under gunicorn (sync, 2 workers) vs. a bare Flask endpoint returning
the same JSON under the same gunicorn, measured in one run, in alternating rounds (the ratio is
their median). Goal: ≥ 0.7× on SQLite, ≥ 0.4× on PostgreSQL."""

from __future__ import annotations

import os
import sys
import time

import requests

from bench.harness import Gstack, write_result
from bench.load import interleaved, measure

ZONE = "us-central1-a"
SECONDS = float(os.environ.get("BENCH_SECONDS", "5"))


def main(backend: str = "sqlite") -> None:
    g = Gstack(backend)
    try:
        token = g.token()
        base = g.server(GSTACK_WORKERS="1")
        headers = {"Authorization": f"Bearer {token}"}
        url = f"{base}/compute/v1/projects/demo-project/zones/{ZONE}/instances"
        body = {"name": "bench-vm", "machineType": f"zones/{ZONE}/machineTypes/e2-small",
                "disks": [{"boot": True, "autoDelete": True,
                           "initializeParams": {"sourceImage": "projects/debian-cloud/global/images/family/debian-12"}}]}
        op = requests.post(url, json=body, headers=headers).json()
        for _ in range(100):
            if requests.get(url + "/bench-vm", headers=headers).json()["status"] == "RUNNING":
                break
            time.sleep(0.1)
        instance_url = url + "/bench-vm"
        same_json = requests.get(instance_url, headers=headers).content
        body_file = os.path.join(g.data_dir, "body.json")
        with open(body_file, "wb") as f:
            f.write(same_json)
        bare_base = g.bare(body_file)
        bare_url = f"{bare_base}/compute/v1/projects/demo-project/zones/{ZONE}/instances/bench-vm"
        assert requests.get(bare_url).content == same_json
        measure(instance_url, headers, seconds=1)  # warm-up
        run = interleaved((instance_url, headers), (bare_url, None), seconds=2 * SECONDS)
        write_result(f"get_instance_{backend}", {
            "backend": backend, "server": os.environ.get("BENCH_SERVER", "serve"), "clients": 4, "seconds": 2 * SECONDS,
            "operation": op.get("name"), "gstack_get_per_second": run["target_per_second"],
            "bare_flask_per_second": run["baseline_per_second"], "rounds": run["rounds"],
            "ratio": run["ratio"], "goal_ratio": 0.7 if backend == "sqlite" else 0.4,
        })
    finally:
        g.close()


if __name__ == "__main__":
    main(*(sys.argv[1:2] or ["sqlite"]))
