"""Statements the request threads share are built once and compiled before any thread gets them
(core.prepared.shared_statement): compiled cold by several threads at once, an ORM select over an
aliased subquery once came out with a column left unadapted, and the engine cached that SQL
(a PostgreSQL server's first burst of inserts answered 400s; tests/chaos/test_kill9.py found it)."""

from __future__ import annotations

import threading
import time

from core.prepared import shared_statement


class _Statement:
    """Stands in for a statement: records its compilations, slowly, as a cold compile is."""

    def __init__(self) -> None:
        self.compiled: list[str] = []

    def compile(self, dialect) -> str:
        time.sleep(0.01)
        self.compiled.append(dialect.name)
        return ""


def test_concurrent_first_callers_get_one_statement_compiled_for_each_dialect():
    built: list[_Statement] = []

    @shared_statement
    def build(kind: str) -> _Statement:
        built.append(_Statement())
        return built[-1]

    barrier = threading.Barrier(8)
    got: list[tuple[_Statement, list[str]]] = []

    def call() -> None:
        barrier.wait()
        stmt = build("a")
        got.append((stmt, list(stmt.compiled)))  # what the caller found compiled when it got it

    threads = [threading.Thread(target=call) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(built) == 1
    assert all(stmt is built[0] and seen == ["sqlite", "postgresql"] for stmt, seen in got)
    assert build("b") is not built[0] and len(built) == 2  # one per arguments
    assert build("a") is built[0]
