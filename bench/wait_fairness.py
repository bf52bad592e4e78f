"""``operations.wait`` under load (issue 16, defect 10): 32 clients, simulator latency 0.2 s.

Each client, in one of ``PROJECTS`` projects (clients share them round-robin), loops for
``seconds``: insert ``burst`` instances (sent back to back), stop them, delete them, following every
Operation with ``operations.wait`` until it is DONE. Measured per Operation:

- total: from sending the request to the wait returning DONE;
- wait-after-DONE: from the Operation's ``endTime`` (when it reached DONE in the database) to the
  client's wait returning: what the client waits past its own work. Goal: p99 ≤ 2 s.
- server-after-DONE: the same from the later of ``endTime`` and the client starting to wait on
  that Operation. With bursts a client waits on its Operations one after another, so one that
  ended while the client still waited on an earlier one counts that wait in wait-after-DONE; this
  one is what the server alone adds (how late a wait returns after its Operation is DONE).

The server runs as users run it (``gstack serve`` defaults, request log on) with
``GSTACK_SIM_LATENCY=0.2`` and ``GSTACK_WORKERS=4``. Target and baseline trees run one after the
other (target first) and the results go to ``bench/results/wait_fairness.json``.

Usage: ``python3 -m bench.wait_fairness [seconds] [clients] [baseline tree or -] [sqlite|postgresql] [burst]``
"""

from __future__ import annotations

import statistics
import sys
import threading
import time
from datetime import datetime

import requests

from bench.harness import write_result
from bench.insert_latency import BODY, HERE, ZONE, Tree

PROJECTS = 4


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] if ordered else float("nan")


def _client(base: str, token: str, project: str, ident: int, stop_at: float, burst: int,
            out: list[tuple[float, float, float]], errors: list[str]) -> None:
    """Rounds of ``burst`` instances: insert them all, then wait for each; the same for stop, then delete."""
    s = requests.Session()
    s.headers["Authorization"] = f"Bearer {token}"
    zone = f"{base}/compute/v1/projects/{project}/zones/{ZONE}"
    n = 0
    while time.time() < stop_at:
        names = [f"c{ident:02d}-{n + i:04d}" for i in range(burst)]
        n += burst
        for step in ("insert", "stop", "delete"):
            sent = []
            for name in names:
                method, path, body = {"insert": ("POST", "/instances", {**BODY, "name": name}),
                                      "stop": ("POST", f"/instances/{name}/stop", None),
                                      "delete": ("DELETE", f"/instances/{name}", None)}[step]
                t0 = time.time()
                r = s.request(method, zone + path, json=body)
                if r.status_code >= 400:
                    errors.append(f"{r.status_code} {r.text[:200]}")
                    continue
                sent.append((name, t0, r.json()))
            names = []
            for name, t0, op in sent:
                waiting = time.time()
                while op.get("status") != "DONE":
                    op = s.post(f"{zone}/operations/{op['name']}/wait").json()
                returned = time.time()
                if "error" in op:
                    errors.append(str(op["error"])[:200])
                    continue
                names.append(name)
                ended = datetime.fromisoformat(op["endTime"]).timestamp()
                out.append((returned - t0, max(0.0, returned - ended), max(0.0, returned - max(ended, waiting))))


def run(tree: str, seconds: float, clients: int, backend: str, burst: int) -> dict:
    g = Tree(tree, backend)
    try:
        tokens = {}
        for p in range(PROJECTS):
            project = f"load-{p}"
            g.admin("project", "create", project)
            tokens[project] = g.token(project)
            for metric in ("CPUS", "INSTANCES"):
                g.admin("project", "set-quota", "--project", project, "--region", "us-central1", "--metric", metric,
                        "--limit", "100000")
            g.admin("project", "set-quota", "--project", project, "--metric", "CPUS_ALL_REGIONS", "--limit", "100000")
        g.serve(GSTACK_LOG_REQUESTS="1", GSTACK_SIM_LATENCY="0.2", GSTACK_WORKERS="4")
        out: list[tuple[float, float, float]] = []
        errors: list[str] = []
        stop_at = time.time() + seconds
        threads = [threading.Thread(target=_client, args=(g.base, tokens[f"load-{i % PROJECTS}"], f"load-{i % PROJECTS}",
                                                          i, stop_at, burst, out, errors)) for i in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        totals, after, server = [o[0] for o in out], [o[1] for o in out], [o[2] for o in out]
        return {"operations": len(out), "errors": len(errors), "first_errors": errors[:3],
                "total_p50_s": round(statistics.median(totals), 3), "total_p99_s": round(_percentile(totals, 0.99), 3),
                "wait_after_done_p50_s": round(statistics.median(after), 3),
                "wait_after_done_p99_s": round(_percentile(after, 0.99), 3),
                "wait_after_done_max_s": round(max(after), 3),
                "server_after_done_p99_s": round(_percentile(server, 0.99), 3),
                "server_after_done_max_s": round(max(server), 3)}
    finally:
        g.close()


def main(seconds: float = 60.0, clients: int = 32, baseline: str = "/work/main", backend: str = "sqlite",
         burst: int = 1) -> None:
    result = {"server": "gstack serve (defaults, request log on), GSTACK_SIM_LATENCY=0.2, GSTACK_WORKERS=4",
              "backend": backend, "clients": clients, "burst": burst, "projects": PROJECTS, "seconds": seconds,
              "target_tree": HERE, "target": run(HERE, seconds, clients, backend, burst)}
    print("target", result["target"], file=sys.stderr)
    if baseline != "-":
        result["baseline_tree"] = baseline
        result["baseline"] = run(baseline, seconds, clients, backend, burst)
    result["goals"] = {"wait_after_done_p99_s": 2.0}
    write_result(f"wait_fairness_{backend}_burst{burst}", result)


if __name__ == "__main__":
    args = sys.argv[1:]
    main(float(args[0]) if args else 60.0, int(args[1]) if len(args) > 1 else 32,
         args[2] if len(args) > 2 else "/work/main", args[3] if len(args) > 3 else "sqlite",
         int(args[4]) if len(args) > 4 else 1)
