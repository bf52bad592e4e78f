"""Sequential instances.insert → RUNNING latency on the zero-latency simulator (issue 15, goal 3).

Each insert is followed by ``operations.wait`` until its Operation is DONE (the instance RUNNING),
then the next one is sent: the latency is what a client doing one thing at a time sees, from
sending the insert to the wait returning. Goal: median ≤ 50 ms (no fixed pause when there is no
burst).

Target and baseline are two source trees (this one, and the main checkout before the change by
default) run as users run them: ``gstack serve`` defaults, request log on, a fresh data directory
each round; the rounds alternate target, baseline, target, ... so drift on a shared machine hits
both alike. Results go to ``bench/results/insert_latency.json``: per-round medians, and overall
median, p90 and the spread (min/max) of the round medians for each tree.

Usage: ``python3 -m bench.insert_latency [rounds] [inserts per round] [baseline tree]``
"""

from __future__ import annotations

import os
import statistics
import sys
import time

import requests

from bench.harness import Gstack, write_result

ZONE = "us-central1-a"
HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BODY = {"machineType": f"zones/{ZONE}/machineTypes/e2-micro",
        "disks": [{"boot": True, "autoDelete": True,
                   "initializeParams": {"sourceImage": "projects/debian-cloud/global/images/family/debian-12"}}]}


class Tree(Gstack):
    """A gstack of one source tree (its code first on PYTHONPATH, for the server and the admin CLI)."""

    def __init__(self, tree: str, backend: str = "sqlite"):
        super().__init__(backend)
        self.tree = tree

    def env(self, **extra) -> dict:
        return {**super().env(**extra), "PYTHONPATH": self.tree}


def one_round(tree: str, inserts: int) -> list[float]:
    g = Tree(tree)
    try:
        for metric in ("CPUS", "INSTANCES"):
            g.admin("project", "set-quota", "--project", "demo-project", "--region", "us-central1", "--metric", metric,
                    "--limit", "100000")
        g.admin("project", "set-quota", "--project", "demo-project", "--metric", "CPUS_ALL_REGIONS",
                "--limit", "100000")
        token = g.token()
        g.serve(GSTACK_LOG_REQUESTS="1")  # as users run it: the request log on
        s = requests.Session()
        s.headers["Authorization"] = f"Bearer {token}"
        base = f"{g.base}/compute/v1/projects/demo-project/zones/{ZONE}"
        latencies = []
        for i in range(inserts + 3):  # the first three warm the server up and are not counted
            t0 = time.perf_counter()
            op = s.post(f"{base}/instances", json={**BODY, "name": f"vm-{i:04d}"}).json()
            while op.get("status") != "DONE":
                op = s.post(f"{base}/operations/{op['name']}/wait").json()
            elapsed = time.perf_counter() - t0
            assert "error" not in op, op
            if i >= 3:
                latencies.append(elapsed)
        assert s.get(f"{base}/instances/vm-0003").json()["status"] == "RUNNING"
        return latencies
    finally:
        g.close()


def summary(rounds: list[list[float]]) -> dict:
    every = sorted(x for r in rounds for x in r)
    medians = [statistics.median(r) for r in rounds]
    return {"median_ms": round(statistics.median(every) * 1000, 1),
            "p90_ms": round(every[int(len(every) * 0.9)] * 1000, 1),
            "round_medians_ms": [round(m * 1000, 1) for m in medians],
            "spread_ms": [round(min(medians) * 1000, 1), round(max(medians) * 1000, 1)]}


def main(rounds: int = 3, inserts: int = 30, baseline: str = "/work/main") -> None:
    results: dict[str, list[list[float]]] = {"target": [], "baseline": []}
    for _ in range(rounds):
        for name, tree in (("target", HERE), ("baseline", baseline)):
            results[name].append(one_round(tree, inserts))
            print(name, f"{statistics.median(results[name][-1]) * 1000:.1f} ms", file=sys.stderr)
    target, base = summary(results["target"]), summary(results["baseline"])
    write_result("insert_latency", {
        "server": "gstack serve (defaults, request log on), SQLite, zero-latency simulator",
        "rounds": rounds, "inserts_per_round": inserts, "target_tree": HERE, "baseline_tree": baseline,
        "target": target, "baseline": base,
        "median_ratio_target_over_baseline": round(target["median_ms"] / base["median_ms"], 3),
        "goals": {"median_ms": 50},
    })


if __name__ == "__main__":
    args = sys.argv[1:]
    main(int(args[0]) if args else 3, int(args[1]) if len(args) > 1 else 30, args[2] if len(args) > 2 else "/work/main")
