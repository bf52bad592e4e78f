"""Server CPU of one instances.insert whose jobs run alone, by part: what a client that creates one
instance at a time costs, as gcloud does (a run of ``gcloud compute instances create`` takes a
second or so, so each instance's jobs and router sync run by themselves; a stream of inserts, which
:mod:`bench.insert_cost` measures, shares them).

Each round is a process of its own running gstack in process (:mod:`bench.profile_insert`: the app,
its Flask test client, jobs run in the calling thread): ``N`` inserts, each followed by its jobs to
their end (``run_until_idle``). Thread CPU (``time.thread_time``) is read around each part: the
insert request, the instance's job, the job engine's claims, the router sync the job asks for. The
syncs' spacing (``SYNC_INTERVAL``) is set to 0 so that a round does not sleep 0.25 s per insert: it
decides when a sync starts, not what it does. Medians per insert are reported for each round, then
their median and spread over the rounds.

``--baseline TREE``: the rounds alternate with the same rounds of another checkout (its code first
on ``PYTHONPATH``; this script's measuring code is the same for both), and each part's ratio to
the baseline's is reported.

Usage: ``python3 -m bench.lone_insert [--baseline TREE] [--rounds R] [N]`` (default 5 rounds of 150).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

from bench.harness import write_result

TREE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PARTS = ("request", "instance_job", "claims", "router_sync", "total")

# A round, run by ``python -c`` with the tree measured first on sys.path: kept to what every tree's
# bench.profile_insert and job engine have (inserting(), HANDLERS' run and batch, _claim).
_ROUND = r'''
import dataclasses, json, statistics, sys, time
from bench.profile_insert import WARM_UP, inserting
from core.jobs import handlers
from core.systemvms import sync

sync.SYNC_INTERVAL = 0.0
spent = {}

def timed(part, fn):
    def run(*args):
        t0 = time.thread_time()
        try:
            return fn(*args)
        finally:
            spent[part] = spent.get(part, 0.0) + time.thread_time() - t0
    return run

for name, h in list(handlers.HANDLERS.items()):
    part = "router_sync" if name == sync.SYNC_JOB else "instance_job" if name.startswith("instances.") else "other_jobs"
    handlers.HANDLERS[name] = dataclasses.replace(h, run=timed(part, h.run), batch=timed(part, h.batch) if h.batch else None)
runtime, client, headers, insert = inserting()
runtime.engine._claim = timed("claims", runtime.engine._claim)
for i in range(WARM_UP):
    insert(i)
runtime.engine.run_until_idle()
per = {}
for i in range(WARM_UP, WARM_UP + int(sys.argv[1])):
    spent.clear()
    t0 = time.thread_time()
    insert(i)
    spent["request"] = time.thread_time() - t0
    runtime.engine.run_until_idle()
    spent["total"] = time.thread_time() - t0
    for part, seconds in spent.items():
        per.setdefault(part, []).append(seconds)
print(json.dumps({part: statistics.median(values) for part, values in per.items()}))
'''


def one_round(tree: str, n: int) -> dict[str, float]:
    """A round in a process of its own, ``tree``'s code first on its path: seconds per insert by part."""
    env = {**os.environ, "PYTHONPATH": tree, "GSTACK_LOG_REQUESTS": "0"}
    out = subprocess.run([sys.executable, "-c", _ROUND, str(n)], env=env, cwd="/", capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"{tree}: {out.stderr[-2000:]}")
    found: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return found


def main(n: int, rounds: int, baseline: str | None) -> None:
    trees = {"gstack": TREE, **({"baseline": baseline} if baseline else {})}
    results: dict[str, list[dict[str, float]]] = {label: [] for label in trees}
    for r in range(rounds):
        for label in (list(trees) if r % 2 == 0 else list(reversed(trees))):
            results[label].append(one_round(trees[label], n))
            print(label, {k: round(v * 1e3, 3) for k, v in results[label][-1].items()}, flush=True)

    def summary(label: str, part: str) -> dict:
        values = [each.get(part, 0.0) * 1e3 for each in results[label]]
        return {"median_ms": round(statistics.median(values), 3), "min_ms": round(min(values), 3),
                "max_ms": round(max(values), 3)}

    out: dict = {"inserts_per_round": n, "rounds": rounds, "trees": trees,
                 **{label: {part: summary(label, part) for part in PARTS} for label in trees}}
    if baseline:
        out["ratio_to_baseline"] = {
            part: round(out["gstack"][part]["median_ms"] / out["baseline"][part]["median_ms"], 2)
            for part in PARTS if out["baseline"][part]["median_ms"]}
        out["rounds_lower"] = {part: sum(a.get(part, 0) < b.get(part, 0) for a, b in zip(
            results["gstack"], results["baseline"], strict=True)) for part in PARTS}
    write_result("lone_insert", out)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", help="another gstack checkout, measured in alternating rounds")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("n", nargs="?", type=int, default=150)
    args = parser.parse_args()
    main(args.n, args.rounds, os.path.abspath(args.baseline) if args.baseline else None)
