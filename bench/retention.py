"""What a retention round (:mod:`core.jobs.retention`) costs, by the size of the history it keeps.

A round walks the Operations from the oldest and stops at the first younger than the cut-off, so
what it costs should be what it removes, whatever the table holds. The bench writes ``KEPT``
young Operations (ended within the retention: they stay) and ``DOOMED`` old ones before them into
a fresh SQLite database of gstack's schema, then times, in alternating rounds:

- a round that removes the ``DOOMED`` (written again before each), per row removed;
- a round that removes nothing, at ``KEPT`` young rows and at a tenth of them (two databases): the
  ratio of the two is the growth of an idle round's cost with the history's size (goal: ~1).

CPU time of this process (the rounds run in it, on one connection pool), medians and spread of
``ROUNDS`` rounds, written to ``bench/results/retention.json``.

Usage: ``python3 -m bench.retention [KEPT [DOOMED]]`` (default 100000 and 20000).
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import tempfile
import time

from sqlalchemy import insert
from sqlalchemy.orm import sessionmaker

from bench.harness import write_result
from core import migrations
from core.db import make_engine
from core.jobs import retention
from core.models import Operation

ROUNDS = 5
CUTOFF = 1_000_000.0


def _rows(first: int, count: int, inserted: float, ended: float) -> list[dict]:
    return [{"pk": first + i, "uid": first + i, "name": f"operation-bench-{first + i}", "project": "demo-project",
             "scope": "zones/us-central1-a", "operation_type": "insert", "target_link": "projects/demo-project/x",
             "status": "DONE", "progress": 100, "user": "bench", "insert_time": inserted, "end_time": ended,
             "job": "none", "params": "{}", "attempts": 0} for i in range(count)]


def _database(folder: str, kept: int) -> sessionmaker:
    engine = make_engine("sqlite:///" + os.path.join(folder, "gstack.sqlite3"))
    migrations.prepare(engine)
    with engine.begin() as conn:
        for start in range(0, kept, 10_000):
            conn.execute(insert(Operation), _rows(10_000_000 + start, min(10_000, kept - start), CUTOFF + 10, CUTOFF + 20))
    return sessionmaker(bind=engine, expire_on_commit=False)


def _doom(factory: sessionmaker, count: int, serial: int) -> None:
    """``count`` old finished Operations, keyed below every kept one, as older rows are."""
    with factory.kw["bind"].begin() as conn:
        conn.execute(insert(Operation), _rows(serial * 1_000_000, count, CUTOFF - 100, CUTOFF - 50))  # below 10,000,000


def _round(factory: sessionmaker) -> tuple[float, int]:
    """(CPU seconds, Operations removed) of one round over ``factory``'s database."""
    t0 = time.process_time()
    removed = retention.forget_operations(factory, CUTOFF)
    return time.process_time() - t0, removed


def main(kept: int, doomed: int) -> None:
    folders = [tempfile.mkdtemp(prefix="gstack-bench-retention-") for _ in range(2)]
    try:
        large, small = _database(folders[0], kept), _database(folders[1], kept // 10)
        removing: list[float] = []
        idle: dict[str, list[float]] = {"large": [], "small": []}
        for r in range(ROUNDS):
            _doom(large, doomed, r + 1)
            spent, removed = _round(large)
            assert removed == doomed, removed
            removing.append(spent / doomed)
            for label in (("large", "small") if r % 2 == 0 else ("small", "large")):
                spent, removed = _round(large if label == "large" else small)
                assert removed == 0
                idle[label].append(spent)

        def summary(values: list[float], scale: float) -> dict:
            return {"median": round(statistics.median(values) * scale, 3), "min": round(min(values) * scale, 3),
                    "max": round(max(values) * scale, 3)}

        write_result("retention", {
            "kept": kept, "doomed": doomed, "rounds": ROUNDS,
            "removing_us_per_operation": summary(removing, 1e6),
            "idle_round_ms": {f"{kept} kept": summary(idle["large"], 1e3), f"{kept // 10} kept": summary(idle["small"], 1e3)},
            "idle_growth": round(statistics.median(idle["large"]) / statistics.median(idle["small"]), 2)})
    finally:
        for folder in folders:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:]]
    main(*(args + [100_000, 20_000][len(args):]))
