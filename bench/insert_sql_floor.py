"""What the SQL of an instances.insert costs by itself, with no Python of gstack's around it: a
lower bound of the insert's server CPU on SQLite, to hold goal 2 of issue 15 (≤ 3× the floor of
:mod:`bench.insert_cost`) against.

The script runs gstack in this process (:mod:`bench.inprocess`, SQLite) and records every statement
its connections send to the driver, with its parameters: those of ``N`` sequential insert requests,
then those of their jobs run to RUNNING in one go (batched: the fewest statements the jobs can
take) with the router syncs they ask for. Statements run by triggers are not recorded: replaying
the statement fires them again.

It then replays the statements on a copy of the database as it was before the first insert, with
the pragmas gstack sets, on one connection and nothing else: ``sqlite3``'s C code and SQLite's
work, every SELECT's rows fetched, each text prepared once as gstack's connections do. One warm
connection is a lower bound too: gstack's request and job connections each read again the pages
the other wrote. Rounds alternate with the floor's statements (BEGIN IMMEDIATE, one INSERT of the
row, COMMIT: :mod:`bench.insert_floor_app`) on a database of their own, and with the served floor
itself (:func:`bench.insert_cost.floor_round`: an HTTP round trip and that commit). CPU is this
process's (``time.process_time``) for the statements, the floor server's for the served floor.

What an insert would cost if gstack's Python took no time: the served floor, less its statements,
plus the insert's statements. Its ratio to the served floor is the best goal 2's ratio can be with
these statements; each round's is reported, with medians and spread.

Usage: ``python3 -m bench.insert_sql_floor [N]`` (default 200).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from typing import Any, Self

from bench.harness import Gstack, write_result
from bench.insert_cost import floor_round, start_floor
from bench.insert_floor_app import commit_row, make_table
from bench.profile_insert import BODY, inserting
from gstack.app import MMAP_BYTES

ROUNDS = 7
SERVED = 500  # served floor requests per round: CPU is read in 10 ms ticks
WARM_UP = 20
_recording: list[tuple[str, str, Any]] = []  # (method, SQL, parameters)
_recording_on = threading.Event()
_lock = threading.Lock()
_connect = sqlite3.connect


def _record(method: str, sql: str, params: Any) -> None:
    if _recording_on.is_set():
        with _lock:
            _recording.append((method, sql, params))


class _Cursor(sqlite3.Cursor):
    """A cursor whose statements (and their parameters, as the driver got them) are recorded."""

    def execute(self, sql: str, params: Any = (), /) -> Self:
        _record("execute", sql, params)
        return super().execute(sql, params)

    def executemany(self, sql: str, seq: Any, /) -> Self:
        seq = list(seq)
        _record("executemany", sql, seq)
        return super().executemany(sql, seq)


class _Connection(sqlite3.Connection):
    """A connection whose statements, commits and rollbacks are recorded. Statements keep their
    parameters: sqlite3 then prepares each text once, as it does for gstack (a statement with its
    values spelled out would be a new text, prepared again, at every run)."""

    def cursor(self, factory: Any = _Cursor) -> Any:
        return super().cursor(factory)

    def execute(self, sql: str, params: Any = (), /) -> sqlite3.Cursor:
        _record("execute", sql, params)
        return super().execute(sql, params)

    def commit(self) -> None:
        if self.in_transaction:
            _record("execute", "COMMIT", ())
        super().commit()

    def rollback(self) -> None:
        if self.in_transaction:
            _record("execute", "ROLLBACK", ())
        super().rollback()


def _recording_connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
    return _connect(*args, factory=_Connection, **kwargs)


def _state(conn: sqlite3.Connection) -> list:
    """What the statements made: resources by collection and status, Operations by status."""
    return (conn.execute("SELECT collection, status, count(*) FROM resources GROUP BY 1, 2 ORDER BY 1, 2").fetchall()
            + conn.execute("SELECT status, count(*) FROM operations GROUP BY 1 ORDER BY 1").fetchall())


def capture(n: int) -> tuple[str, list, list, list]:
    """(a copy of the database before the first recorded insert, the requests' statements, the
    jobs' statements, :func:`_state` after them)."""
    sqlite3.connect = sqlite3.dbapi2.connect = _recording_connect  # type: ignore[assignment] # SQLAlchemy's: dbapi2's
    runtime, _, _, insert = inserting()

    def run_jobs() -> None:  # to their end, with the router syncs they ask for (deferred ~0.25 s)
        runtime.engine.run_until_idle(timeout=600)
        time.sleep(1)
        runtime.engine.run_until_idle(timeout=600)

    for i in range(WARM_UP):
        insert(i)
    run_jobs()
    database = runtime.factory.kw["bind"].url.database
    snapshot = os.path.join(tempfile.mkdtemp(prefix="gstack-sqlfloor-"), "before.sqlite3")
    with _connect(database) as src, _connect(snapshot) as dst:
        src.backup(dst)
    _recording_on.set()
    for i in range(WARM_UP, WARM_UP + n):
        insert(i)
    requests_end = len(_recording)
    run_jobs()
    _recording_on.clear()
    runtime.stop()
    sqlite3.connect = sqlite3.dbapi2.connect = _connect
    with _connect(database) as conn:
        state = _state(conn)
    runtime.factory.kw["bind"].dispose()
    return snapshot, _recording[:requests_end], _recording[requests_end:], state


def _open(path: str) -> sqlite3.Connection:
    conn = _connect(path, isolation_level=None)
    for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "busy_timeout=30000", "foreign_keys=ON",
                   f"mmap_size={MMAP_BYTES}"):
        conn.execute("PRAGMA " + pragma)
    return conn


def replay(snapshot: str, statements: list, state: list | None = None) -> float:
    """CPU seconds to run ``statements`` on a fresh copy of ``snapshot``; given the :func:`_state`
    they made in gstack, the replay must have made it too (no statement did less)."""
    work = tempfile.mkdtemp(prefix="gstack-sqlfloor-")
    try:
        path = os.path.join(work, "db.sqlite3")
        shutil.copy(snapshot, path)
        conn = _open(path)
        conn.execute("SELECT count(*) FROM resources").fetchall()  # the schema and first pages read
        t0 = time.process_time()
        for method, sql, params in statements:
            getattr(conn, method)(sql, params).fetchall()
        spent = time.process_time() - t0
        if state is not None and _state(conn) != state:
            raise AssertionError(f"the replay made {_state(conn)}, gstack {state}")
        conn.close()
        return spent
    finally:
        shutil.rmtree(work, ignore_errors=True)


def floor(n: int) -> float:
    """CPU seconds of ``n`` of the floor's transactions (its statements, its body's size)."""
    work = tempfile.mkdtemp(prefix="gstack-sqlfloor-")
    try:
        path = os.path.join(work, "floor.sqlite3")
        make_table(path)
        conn = _open(path)
        for i in range(WARM_UP):
            commit_row(conn, "demo-project", "us-central1-a", {**BODY, "name": f"w-{i}"})
        t0 = time.process_time()
        for i in range(n):
            commit_row(conn, "demo-project", "us-central1-a", {**BODY, "name": f"vm-{i:04d}"})
        spent = time.process_time() - t0
        conn.close()
        return spent
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(n: int) -> None:
    snapshot, requests, jobs, state = capture(n)
    rounds: dict[str, list[float]] = {"requests": [], "requests_and_jobs": [], "floor": [], "served_floor": []}
    served = Gstack("sqlite")  # a data directory for the floor's server (no gstack runs)
    server, base = start_floor(served)
    try:
        for r in range(ROUNDS):
            rounds["requests"].append(replay(snapshot, requests) / n)
            rounds["requests_and_jobs"].append(replay(snapshot, requests + jobs, state) / n)
            rounds["floor"].append(floor(n) / n)
            rounds["served_floor"].append(floor_round(base, [server.pid], f"{r}", count=SERVED))
    finally:
        server.terminate()
        server.wait()
        served.close()
        shutil.rmtree(os.path.dirname(snapshot), ignore_errors=True)
    # Per round: the served floor, its statements swapped for the insert's, over the served floor.
    bound = [(f + sql - fs) / f for f, sql, fs in zip(rounds["served_floor"], rounds["requests_and_jobs"],
                                                       rounds["floor"], strict=True)]

    def summary(values: list[float]) -> dict:
        return {"median_us": round(statistics.median(values) * 1e6), "min_us": round(min(values) * 1e6),
                "max_us": round(max(values) * 1e6)}

    ratios = {key: round(statistics.median(a / f for a, f in zip(rounds[key], rounds["floor"], strict=True)), 1)
              for key in ("requests", "requests_and_jobs")}
    write_result("insert_sql_floor", {
        "inserts": n, "rounds": ROUNDS,
        "statements_per_insert": {"requests": round(len(requests) / n, 1), "jobs": round(len(jobs) / n, 1),
                                  "commits": round(sum(sql == "COMMIT" for _, sql, _ in requests + jobs) / n, 2)},
        "cpu_per_insert": {key: summary(values) for key, values in rounds.items()},
        "ratio_to_floor_statements": ratios,
        "best_ratio_to_served_floor": {"median": round(statistics.median(bound), 2), "min": round(min(bound), 2),
                                       "max": round(max(bound), 2), "rounds": [round(b, 2) for b in bound]}})


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200)
