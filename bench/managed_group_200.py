"""A managed instance group of 200 reaches stable, beside the same 200 instances made by single
``instances.insert`` calls from the same template, in one run.

Both sides start from the same instance template on the same server (``gstack serve`` defaults,
request log on), alternate in rounds, and are torn down between rounds, so the machine's noise falls
on both alike. The group side is timed from ``instanceGroupManagers.insert`` to ``status.isStable``
with 200 RUNNING instances; the single-insert side from the first insert to 200 RUNNING.

Usage: ``python3 -m bench.managed_group_200 [sqlite|postgresql] [rounds]``.
"""

from __future__ import annotations

import statistics
import sys
import time

import requests

from bench.harness import Gstack, write_result

N = 200
ZONE = "us-central1-a"
API = "/compute/v1/projects/demo-project"


def _wait_op(s: requests.Session, base: str, op: dict) -> None:
    url = f"{base}{API}/{'zones/' + ZONE if 'zone' in op else 'global'}/operations/{op['name']}/wait"
    while op["status"] != "DONE":
        op = s.post(url).json()
    assert "error" not in op, op


def _running(s: requests.Session, base: str, prefix: str) -> int:
    items = s.get(f"{base}{API}/zones/{ZONE}/instances", params={
        "filter": f"(name eq '{prefix}-.*') (status eq RUNNING)", "maxResults": 500, "fields": "items(name)"}).json()
    return len(items.get("items", []))


def _gone(s: requests.Session, base: str, prefix: str) -> None:
    while s.get(f"{base}{API}/zones/{ZONE}/instances", params={
            "filter": f"name eq '{prefix}-.*'", "fields": "items(name)"}).json().get("items"):
        time.sleep(0.2)


def group_round(s: requests.Session, base: str, template: str, i: int) -> float:
    name = f"mig{i}"
    t0 = time.perf_counter()
    op = s.post(f"{base}{API}/zones/{ZONE}/instanceGroupManagers", json={
        "name": name, "baseInstanceName": name, "instanceTemplate": template, "targetSize": N}).json()
    _wait_op(s, base, op)
    url = f"{base}{API}/zones/{ZONE}/instanceGroupManagers/{name}"
    while not s.get(url).json()["status"]["isStable"]:
        time.sleep(0.1)
    elapsed = time.perf_counter() - t0
    assert _running(s, base, name) == N
    _wait_op(s, base, s.delete(url).json())
    _gone(s, base, name)
    return elapsed


def singles_round(s: requests.Session, base: str, template: str, i: int) -> float:
    prefix = f"one{i}"
    url = f"{base}{API}/zones/{ZONE}/instances"
    t0 = time.perf_counter()
    for k in range(N):
        r = s.post(url, json={"name": f"{prefix}-{k:04d}"}, params={"sourceInstanceTemplate": template})
        r.raise_for_status()
    while _running(s, base, prefix) < N:
        time.sleep(0.1)
    elapsed = time.perf_counter() - t0
    for k in range(N):
        s.delete(f"{url}/{prefix}-{k:04d}").raise_for_status()
    _gone(s, base, prefix)
    return elapsed


def _summary(xs: list[float]) -> dict:
    return {"median_s": round(statistics.median(xs), 3), "min_s": round(min(xs), 3), "max_s": round(max(xs), 3),
            "rounds_s": [round(x, 3) for x in xs]}


def main(backend: str = "sqlite", rounds: str = "3") -> None:
    g = Gstack(backend)
    try:
        for metric in ("CPUS", "INSTANCES", "DISKS_TOTAL_GB", "IN_USE_ADDRESSES"):
            g.admin("project", "set-quota", "--project", "demo-project", "--region", "us-central1", "--metric", metric,
                    "--limit", "100000")
        g.admin("project", "set-quota", "--project", "demo-project", "--metric", "CPUS_ALL_REGIONS",
                "--limit", "100000")
        for h in range(4):
            g.admin("host", "add", "--zone", ZONE, "--name", f"bench-host-{h}", "--cpus", "64", "--memory-mb", "262144")
        token = g.token()
        g.serve(GSTACK_LOG_REQUESTS="1")  # as users run it: the request log on
        s = requests.Session()
        s.headers["Authorization"] = f"Bearer {token}"
        _wait_op(s, g.base, s.post(f"{g.base}{API}/global/instanceTemplates", json={
            "name": "bench-template", "properties": {
                "machineType": "e2-micro", "networkInterfaces": [{"network": "global/networks/default"}],
                "disks": [{"boot": True, "autoDelete": True, "initializeParams": {
                    "sourceImage": "projects/debian-cloud/global/images/family/debian-12"}}]}}).json())
        template = "projects/demo-project/global/instanceTemplates/bench-template"
        group, singles = [], []
        for i in range(int(rounds)):  # alternate, so drift in the machine's load falls on both
            first, second = (group_round, singles_round) if i % 2 == 0 else (singles_round, group_round)
            for side in (first, second):
                t = side(s, g.base, template, i)
                (group if side is group_round else singles).append(t)
                print(f"round {i} {side.__name__}: {t:.2f} s", file=sys.stderr)
        write_result(f"managed_group_200_{backend}", {
            "backend": backend, "instances": N, "request_log": True,
            "managed_group_to_stable": _summary(group), "single_inserts_to_running": _summary(singles),
            "ratio_group_over_singles_median": round(statistics.median(group) / statistics.median(singles), 2),
        })
    finally:
        g.close()


if __name__ == "__main__":
    main(*sys.argv[1:3])
