"""Loaded by every Python process that has this directory on ``PYTHONPATH`` (``site`` imports a
``sitecustomize`` module at start-up), when ``GSTACK_STATEMENT_PROFILE`` names an output prefix:
times every statement the process sends, by its SQL text, for :mod:`bench.profile_statements`.

Per statement: executions, wall time and the thread's CPU time (``time.thread_time``: in a busy
multi-threaded server the wall time of a small statement is mostly the wait for the GIL after it,
the CPU time is what it cost). SQLite: the ``sqlite3`` module's cursors (``execute``,
``executemany``, and the rows fetched after, as ``FETCH <sql>``); PostgreSQL: psycopg's cursors
and the connections' ``COMMIT``/``ROLLBACK``. On ``SIGUSR1`` the totals so far are written to
``<prefix>.<pid>.<n>.json`` (n counts up from 0): the difference of two is what ran between them.
Diagnosis only: never loaded by gstack itself."""

from __future__ import annotations

import itertools
import json
import os
import signal
import sqlite3
import threading
import time
from collections import defaultdict
from typing import Any

_PREFIX = os.environ.get("GSTACK_STATEMENT_PROFILE")
_totals: defaultdict[str, list[float]] = defaultdict(lambda: [0, 0.0, 0.0])  # count, wall, cpu
_lock = threading.Lock()
_snapshots = itertools.count()


def _record(sql: str, wall: float, cpu: float) -> None:
    with _lock:
        total = _totals[sql]
        total[0] += 1
        total[1] += wall
        total[2] += cpu


def _timed(fn: Any, label: Any) -> Any:
    """``fn`` (a method) timed under the SQL its call names (``label(self, args)``)."""

    def timed(self: Any, *args: Any, **kwargs: Any) -> Any:
        wall, cpu = time.perf_counter(), time.thread_time()
        try:
            return fn(self, *args, **kwargs)
        finally:
            _record(label(self, args), time.perf_counter() - wall, time.thread_time() - cpu)

    return timed


def _snapshot(_signum: int, _frame: Any) -> None:
    with _lock:
        totals = {sql: list(t) for sql, t in _totals.items()}
    with open(f"{_PREFIX}.{os.getpid()}.{next(_snapshots)}.json", "w") as f:
        json.dump(totals, f)


def _sql(_self: Any, args: tuple[Any, ...]) -> str:
    return str(args[0]) if args else "?"


def _named(label: str) -> Any:
    return lambda _self, _args: label


def _fetched(self: Any, _args: tuple[Any, ...]) -> str:
    return "FETCH " + getattr(self, "_profiled_sql", "?")


class _Cursor(sqlite3.Cursor):
    def execute(self, sql: str, *args: Any) -> Any:  # type: ignore[override]
        self._profiled_sql = sql
        return _timed(sqlite3.Cursor.execute, _sql)(self, sql, *args)

    def executemany(self, sql: str, *args: Any) -> Any:  # type: ignore[override]
        return _timed(sqlite3.Cursor.executemany, _sql)(self, sql, *args)

    fetchone = _timed(sqlite3.Cursor.fetchone, _fetched)
    fetchmany = _timed(sqlite3.Cursor.fetchmany, _fetched)
    fetchall = _timed(sqlite3.Cursor.fetchall, _fetched)


class _Connection(sqlite3.Connection):
    def cursor(self, factory: Any = _Cursor) -> Any:  # type: ignore[override]
        return super().cursor(factory)

    def execute(self, sql: str, *args: Any) -> Any:  # type: ignore[override]
        return self.cursor().execute(sql, *args)


def _install() -> None:
    connect = sqlite3.connect

    def profiled_connect(*args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("factory", _Connection)
        return connect(*args, **kwargs)

    sqlite3.connect = sqlite3.dbapi2.connect = profiled_connect  # type: ignore[assignment]
    try:
        import psycopg
    except ImportError:
        psycopg = None
    if psycopg is not None:
        for name in ("execute", "executemany"):
            setattr(psycopg.Cursor, name, _timed(getattr(psycopg.Cursor, name), _sql))
        for name in ("commit", "rollback"):
            setattr(psycopg.Connection, name, _timed(getattr(psycopg.Connection, name), _named(name.upper())))
    signal.signal(signal.SIGUSR1, _snapshot)


if _PREFIX:
    _install()
