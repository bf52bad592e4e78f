"""1,000 sequential instances.insert until all are RUNNING (zero-latency simulator), then list all.

Baseline, measured in the same run: moto (the AWS emulator) serving 1,000 EC2 RunInstances
in-process through boto3. Goal: gstack ≤ 5 s for the inserts, ≤ 150 ms to list 1,000.

Usage: ``python3 -m bench.insert_1000 [sqlite|postgresql] [embedded|split] [job threads]``; split
runs the jobs in a ``gstack worker`` process beside the API.
"""

from __future__ import annotations

import sys
import time

import requests

from bench.harness import Gstack, write_result

N = 1000
ZONE = "us-central1-a"


def moto_baseline(n: int) -> float:
    import boto3
    from moto import mock_aws

    with mock_aws():
        ec2 = boto3.client("ec2", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
        image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
        t0 = time.perf_counter()
        for _ in range(n):
            ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, InstanceType="t3.micro")
        return time.perf_counter() - t0


def main(backend: str = "sqlite", layout: str = "embedded", workers: str = "4") -> None:
    g = Gstack(backend)
    try:
        for metric in ("CPUS", "INSTANCES", "DISKS_TOTAL_GB"):
            g.admin("project", "set-quota", "--project", "demo-project", "--region", "us-central1", "--metric", metric,
                    "--limit", "1000000")
        g.admin("project", "set-quota", "--project", "demo-project", "--metric", "CPUS_ALL_REGIONS",
                "--limit", "1000000")
        for h in range(12):  # the seeded zone holds 256 e2-micro; give it room for 1,000
            g.admin("host", "add", "--zone", ZONE, "--name", f"bench-host-{h:02d}", "--cpus", "64", "--memory-mb", "262144")
        token = g.token()
        if layout == "split":  # the API process runs no jobs; a worker process does
            g.serve(GSTACK_RUN_JOBS="0")
            g.worker(threads=int(workers))
        else:
            g.serve(GSTACK_WORKERS=workers)
        s = requests.Session()
        s.headers["Authorization"] = f"Bearer {token}"
        url = f"{g.base}/compute/v1/projects/demo-project/zones/{ZONE}/instances"
        body = {"machineType": f"zones/{ZONE}/machineTypes/e2-micro",
                "disks": [{"boot": True, "autoDelete": True,
                           "initializeParams": {"sourceImage": "projects/debian-cloud/global/images/family/debian-12"}}]}
        t0 = time.perf_counter()
        for i in range(N):
            r = s.post(url, json={**body, "name": f"vm-{i:04d}"}, params={"prettyPrint": "false"})
            r.raise_for_status()
        t_requests = time.perf_counter() - t0
        while True:
            r = s.get(url, params={"filter": "status != RUNNING", "maxResults": 500, "fields": "items(name)"})
            if not r.json().get("items"):
                break
            time.sleep(0.05)
        t_running = time.perf_counter() - t0
        t1 = time.perf_counter()
        names = []
        token_ = None
        while True:
            params = {"maxResults": 500, **({"pageToken": token_} if token_ else {})}
            page = s.get(url, params=params).json()
            names += [i["name"] for i in page.get("items", [])]
            token_ = page.get("nextPageToken")
            if not token_:
                break
        t_list = time.perf_counter() - t1
        assert len(names) == N, len(names)
        baseline = moto_baseline(N)
        write_result(f"insert_1000_{backend}_{layout}_{workers}", {
            "backend": backend, "layout": layout, "job_threads": int(workers), "instances": N, "inserts_seconds": round(t_requests, 3),
            "all_running_seconds": round(t_running, 3), "list_all_ms": round(t_list * 1000, 1),
            "moto_run_instances_seconds": round(baseline, 3), "ratio_moto_over_gstack": round(baseline / t_running, 2),
            "goals": {"all_running_seconds": 5.0, "list_all_ms": 150},
        })
    finally:
        g.close()


if __name__ == "__main__":
    main(*sys.argv[1:4])
