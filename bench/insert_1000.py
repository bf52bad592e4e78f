"""1,000 sequential instances.insert until all are RUNNING (zero-latency simulator), then list all.

Baseline, measured in the same run: moto (the AWS emulator) serving 1,000 EC2 RunInstances
in-process through boto3. Goal: gstack ≤ 5 s for the inserts, ≤ 150 ms to list 1,000.

``compare``: PostgreSQL against SQLite (goal 6 of issue 15: PostgreSQL's time to RUNNING within
1.5× SQLite's in the same run). Rounds alternate the backends, each on a fresh data directory /
database, so both see the same load of this shared machine; the JSON holds every round, the
medians, the spread (min, max) and the PG/SQLite ratio of each pair of rounds, and the load average
before each round. The server is ``gstack serve`` as users run it (its defaults, request log on;
``BENCH_SERVER=gunicorn`` for the operator's guide's gunicorn). ``BENCH_BODY=gcloud``: each insert's
body is the one ``gcloud compute instances create`` sends by default (:data:`GCLOUD_BODY`: an
external address, the default service account) instead of the bare minimum.

Usage: ``python3 -m bench.insert_1000 [sqlite|postgresql] [embedded|split] [job threads]``; split
runs the jobs in a ``gstack worker`` process beside the API.
``python3 -m bench.insert_1000 compare [rounds] [instances]`` (default 3 rounds of 1,000).
"""

from __future__ import annotations

import os
import statistics
import sys
import time

import requests

from bench.harness import Gstack, gcloud_body, write_result

N = 1000
ZONE = "us-central1-a"
BODY = {"machineType": f"zones/{ZONE}/machineTypes/e2-micro",
        "disks": [{"boot": True, "autoDelete": True,
                   "initializeParams": {"sourceImage": "projects/debian-cloud/global/images/family/debian-12"}}]}
GCLOUD_BODY = gcloud_body(BODY, {"network": "global/networks/default"})  # gcloud's default body


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


def prepare(g: Gstack) -> str:
    """Quotas and hosts for ``N`` e2-micro in the zone; a token of demo-project's owner."""
    for metric in ("CPUS", "INSTANCES", "DISKS_TOTAL_GB", "IN_USE_ADDRESSES"):
        g.admin("project", "set-quota", "--project", "demo-project", "--region", "us-central1", "--metric", metric,
                "--limit", "1000000")
    g.admin("project", "set-quota", "--project", "demo-project", "--metric", "CPUS_ALL_REGIONS",
            "--limit", "1000000")
    for h in range(12):  # the seeded zone holds 256 e2-micro; give it room for 1,000
        g.admin("host", "add", "--zone", ZONE, "--name", f"bench-host-{h:02d}", "--cpus", "64", "--memory-mb", "262144")
    return g.token()


def insert_all(base: str, token: str, n: int) -> dict[str, float]:
    """``n`` sequential inserts, then until none is not RUNNING, then a paged list of all."""
    s = requests.Session()
    s.headers["Authorization"] = f"Bearer {token}"
    url = f"{base}/compute/v1/projects/demo-project/zones/{ZONE}/instances"
    body = GCLOUD_BODY if os.environ.get("BENCH_BODY") == "gcloud" else BODY
    t0 = time.perf_counter()
    for i in range(n):
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
    assert len(names) == n, len(names)
    return {"inserts_seconds": round(t_requests, 3), "all_running_seconds": round(t_running, 3),
            "list_all_ms": round(t_list * 1000, 1)}


def main(backend: str = "sqlite", layout: str = "embedded", workers: str = "4") -> None:
    g = Gstack(backend)
    try:
        token = prepare(g)
        if layout == "split":  # the API process runs no jobs; a worker process does
            g.serve(GSTACK_RUN_JOBS="0")
            g.worker(threads=int(workers))
        else:
            g.serve(GSTACK_WORKERS=workers)
        timings = insert_all(g.base, token, N)
        baseline = moto_baseline(N)
        write_result(f"insert_1000_{backend}_{layout}_{workers}", {
            "backend": backend, "layout": layout, "job_threads": int(workers), "instances": N, **timings,
            "moto_run_instances_seconds": round(baseline, 3),
            "ratio_moto_over_gstack": round(baseline / timings["all_running_seconds"], 2),
            "goals": {"all_running_seconds": 5.0, "list_all_ms": 150},
        })
    finally:
        g.close()


def spread(values: list[float]) -> dict[str, float]:
    return {"median": round(statistics.median(values), 3), "min": round(min(values), 3), "max": round(max(values), 3)}


def compare(rounds: str = "3", instances: str = str(N)) -> None:
    """PostgreSQL / SQLite, rounds alternating (see the module's docstring)."""
    n = int(instances)
    runs: list[dict[str, object]] = []
    for r in range(int(rounds)):
        order = ("sqlite", "postgresql") if r % 2 == 0 else ("postgresql", "sqlite")
        for backend in order:
            load = os.getloadavg()[0]
            g = Gstack(backend)
            try:
                token = prepare(g)
                base = g.server()
                runs.append({"round": r, "backend": backend, "load_average_1m": round(load, 2),
                             **insert_all(base, token, n)})
            finally:
                g.close()
            print(runs[-1], flush=True)
    by = {b: [x for x in runs if x["backend"] == b] for b in ("sqlite", "postgresql")}
    ratios = [pg["all_running_seconds"] / lite["all_running_seconds"]
              for pg, lite in zip(by["postgresql"], by["sqlite"], strict=True)]
    write_result("insert_1000_compare", {
        "instances": n, "rounds": int(rounds), "server": os.environ.get("BENCH_SERVER", "serve"),
        "body": os.environ.get("BENCH_BODY", "minimal"),
        "all_running_seconds": {b: spread([x["all_running_seconds"] for x in xs])
                                for b, xs in by.items()},
        "inserts_seconds": {b: spread([x["inserts_seconds"] for x in xs]) for b, xs in by.items()},
        "ratio_postgresql_over_sqlite": spread(ratios),
        "load_average_1m": spread([x["load_average_1m"] for x in runs]),
        "goal": {"ratio_postgresql_over_sqlite": 1.5},
        "runs": runs,
    })


if __name__ == "__main__":
    if sys.argv[1:2] == ["compare"]:
        compare(*sys.argv[2:4])
    else:
        main(*sys.argv[1:4])
