"""instances.get with auth on the server users run (``gstack serve``, request log on; under
``BENCH_SERVER=gunicorn`` gunicorn with 2 sync workers) against the bare Flask app returning the
same bytes on the same server, measured with wrk (bench/wrk.py) in alternating rounds: the ratio
is the median of the rounds' ratios. Goal (issue 15): ≥ 0.8×."""

from __future__ import annotations

import os
import sys
import time

import requests

from bench import wrk
from bench.harness import Gstack, write_result

ZONE = "us-central1-a"
SECONDS = int(os.environ.get("BENCH_SECONDS", "2"))  # per round
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "7"))


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
        wrk.run(instance_url, headers, seconds=1)  # warm-up
        wrk.run(bare_url, seconds=1)
        run = wrk.interleaved((instance_url, headers), (bare_url, None), rounds=ROUNDS, seconds=SECONDS)
        write_result(f"get_instance_{backend}_{os.environ.get('BENCH_SERVER', 'serve')}", {
            "backend": backend, "server": os.environ.get("BENCH_SERVER", "serve"), "operation": op.get("name"),
            "body_bytes": len(same_json), "gstack_get_per_second": run.pop("target_per_second"),
            "bare_flask_per_second": run.pop("baseline_per_second"), **run, "goal_ratio": 0.8,
        })
    finally:
        g.close()


if __name__ == "__main__":
    main(*(sys.argv[1:2] or ["sqlite"]))
