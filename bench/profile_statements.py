"""Which statements an insert costs, inside a live ``gstack serve``: every statement the server
sends, by its SQL text, with its executions, its thread's CPU time and its wall time per insert,
over ``N`` sequential ``instances.insert`` to RUNNING (the server and the client of
:mod:`bench.insert_1000`, the request log on). The hooks are :mod:`bench.statement_hooks`'s
``sitecustomize``, on the server's ``PYTHONPATH`` only.

This is how the statements whose cost grew with the cloud were found (issue 15): the same hooks
on a server grown to 1k, 10k and 100k instances showed the two statements whose CPU per run grew
with the size. Wall time includes the wait for the GIL after a statement; CPU time is what it
cost. The hooks' ``sitecustomize`` shadows any other one for the server process.

Usage: ``python3 -m bench.profile_statements [sqlite|postgresql] [N] [--top K]``.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import signal
import sys
import tempfile
import time

from bench import insert_1000
from bench.harness import Gstack

HOOKS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "statement_hooks")


def _snapshot(pid: int, prefix: str, n: int) -> dict[str, list[float]]:
    os.kill(pid, signal.SIGUSR1)
    path = f"{prefix}.{pid}.{n}.json"
    for _ in range(100):
        if os.path.exists(path):
            time.sleep(0.1)  # written in one go by the signal handler; let it finish
            with open(path) as f:
                return json.load(f)
        time.sleep(0.05)
    raise TimeoutError(path)


def between(before: dict[str, list[float]], after: dict[str, list[float]]) -> list[tuple[str, float, float, float]]:
    """(sql, executions, wall, cpu) of what ran between two snapshots, costliest CPU first."""
    rows = []
    for sql, (count, wall, cpu) in after.items():
        was = before.get(sql, [0, 0.0, 0.0])
        if count - was[0]:
            rows.append((sql, count - was[0], wall - was[1], cpu - was[2]))
    return sorted(rows, key=lambda r: -r[3])


def main(backend: str, n: int, top: int) -> None:
    prefix = os.path.join(tempfile.mkdtemp(prefix="gstack-statements-"), "profile")
    os.environ["PYTHONPATH"] = os.pathsep.join([HOOKS, *filter(None, [os.environ.get("PYTHONPATH")])])
    g = Gstack(backend)
    try:
        token = insert_1000.prepare(g)
        base = g.server(GSTACK_STATEMENT_PROFILE=prefix)
        pid = g.procs[-1].pid
        before = _snapshot(pid, prefix, 0)
        timings = insert_1000.insert_all(base, token, n)
        rows = between(before, _snapshot(pid, prefix, 1))
    finally:
        g.close()
        for path in glob.glob(prefix + ".*"):
            os.remove(path)
    print(f"{backend}, {n} inserts: {timings}; per insert: {sum(r[1] for r in rows) / n:.1f} statements, "
          f"{sum(r[3] for r in rows) * 1e3 / n:.2f} ms CPU, {sum(r[2] for r in rows) * 1e3 / n:.2f} ms wall")
    print(f"{'CPU ms/insert':>13} {'wall':>6} {'runs/insert':>11} {'CPU us/run':>10}  statement")
    for sql, count, wall, cpu in rows[:top]:
        print(f"{cpu * 1e3 / n:13.3f} {wall * 1e3 / n:6.2f} {count / n:11.2f} {cpu / count * 1e6:10.0f}  "
              f"{' '.join(sql.split())[:160]}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("backend", nargs="?", default="sqlite", choices=["sqlite", "postgresql"])
    parser.add_argument("n", nargs="?", type=int, default=300)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    sys.exit(main(args.backend, args.n, args.top))
