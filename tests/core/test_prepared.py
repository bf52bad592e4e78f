"""Statements run outside a Session (core.prepared.Prepared): on PostgreSQL on connections kept in
autocommit beside the pool. A read whose connection the server dropped runs again on a new one (a
database restart costs no caller an error); a write's error goes to its caller (it may have
committed before the break); with every such connection in use a statement takes a pooled one;
disposing of the engine closes them all."""

from __future__ import annotations

import threading

import psycopg
import pytest
from sqlalchemy import Engine, bindparam, select, text, update

from core import db, prepared
from core.models import Project
from core.prepared import Prepared

NAME = Prepared(select(Project.name).where(Project.name == bindparam("name")))
TOUCH = Prepared(update(Project).where(Project.name == bindparam("name")).values(public=bindparam("public"))
                 .returning(Project.name))


@pytest.fixture
def pg(engine: Engine) -> Engine:
    if engine.dialect.name != "postgresql":
        pytest.skip("the autocommit connections are PostgreSQL's; SQLite runs statements on its pool")
    return engine


def _ours(engine: Engine) -> list[int]:
    """The server pids of this process's autocommit connections to the test's database."""
    with engine.connect() as conn:
        mine = conn.execute(text("SELECT pg_backend_pid()")).scalar()
        return [pid for (pid,) in conn.execute(text(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> :me "
            "AND backend_type = 'client backend'"), {"me": mine})]


def _terminate(engine: Engine, pids: list[int]) -> None:
    with engine.connect() as conn:
        for pid in pids:
            conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})


def test_a_read_whose_connection_the_server_dropped_runs_again(pg):
    assert NAME.scalar(pg, {"name": "demo-project"}) == "demo-project"
    pg.pool.dispose()  # only the autocommit connections are left to see
    pids = _ours(pg)
    assert pids, "the read ran on no connection of its own"
    _terminate(pg, pids)
    assert NAME.scalar(pg, {"name": "demo-project"}) == "demo-project"
    assert set(_ours(pg)).isdisjoint(pids)


def test_a_write_whose_connection_the_server_dropped_fails_to_its_caller(pg):
    assert TOUCH.scalar(pg, {"name": "demo-project", "public": False}) == "demo-project"
    pg.pool.dispose()
    _terminate(pg, _ours(pg))
    with pytest.raises(psycopg.OperationalError):
        TOUCH.scalar(pg, {"name": "demo-project", "public": False})
    assert TOUCH.scalar(pg, {"name": "demo-project", "public": False}) == "demo-project"  # a new connection


def test_a_statement_error_leaves_the_connection_usable(pg):
    bad = Prepared(text("SELECT 1 / 0 WHERE :x = 1").bindparams(bindparam("x")))
    with pytest.raises(psycopg.errors.DivisionByZero):
        bad.scalar(pg, {"x": 1})
    assert NAME.scalar(pg, {"name": "demo-project"}) == "demo-project"


def test_with_every_autocommit_connection_in_use_statements_take_pooled_ones(pg, monkeypatch):
    pg.dispose()  # none idle
    monkeypatch.setattr(prepared, "AUTOCOMMIT_CONNECTIONS", 0)
    results: list[object] = []
    threads = [threading.Thread(target=lambda: results.append(NAME.scalar(pg, {"name": "demo-project"})))
               for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert results == ["demo-project"] * 4
    assert prepared._autocommit(pg)._open == 0  # every one ran on the pool


def test_disposing_of_the_engine_closes_them(pg):
    NAME.scalar(pg, {"name": "demo-project"})
    pg.dispose()
    assert _ours(pg) == []


def test_a_forked_child_makes_its_own_and_leaves_its_parents_alone(pg):
    import os

    NAME.scalar(pg, {"name": "demo-project"})  # the parent holds an idle one
    pid = os.fork()
    if pid == 0:  # the child: its own connection, never the parent's socket
        code = 0 if NAME.scalar(pg, {"name": "demo-project"}) == "demo-project" else 1
        code |= 0 if prepared._autocommit(pg).pid == os.getpid() else 2
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert NAME.scalar(pg, {"name": "demo-project"}) == "demo-project"  # the parent's still answers


@pytest.fixture
def lite(engine: Engine) -> Engine:
    if engine.dialect.name != "sqlite":
        pytest.skip("core.db.sqlite_write is SQLite's write transaction outside a Session")
    return engine


PUBLIC = Prepared(select(Project.public).where(Project.name == bindparam("name")))


def _write_elsewhere(engine: Engine) -> bool:
    """Whether another thread gets its own write transaction within a few seconds (the writers'
    queue is free): an ``RLock`` lets this thread in whatever it holds."""
    done = threading.Event()

    def write() -> None:
        with db.sqlite_write(engine) as cursor:
            TOUCH.on(cursor, engine, {"name": "demo-project", "public": False})
        done.set()

    threading.Thread(target=write, daemon=True).start()
    return done.wait(5)


def test_a_sqlite_write_commits_its_statements_and_lets_the_next_writer_in(lite):
    with db.sqlite_write(lite) as cursor:
        assert TOUCH.on(cursor, lite, {"name": "demo-project", "public": True}) == [("demo-project",)]
        assert PUBLIC.scalar(lite, {"name": "demo-project"}) == 0  # not committed yet: others do not see it
    assert PUBLIC.scalar(lite, {"name": "demo-project"}) == 1
    assert _write_elsewhere(lite)


def test_a_sqlite_write_that_fails_is_rolled_back_and_lets_the_next_writer_in(lite):
    with pytest.raises(RuntimeError), db.sqlite_write(lite) as cursor:
        TOUCH.on(cursor, lite, {"name": "demo-project", "public": True})
        raise RuntimeError("the claim broke halfway")
    assert PUBLIC.scalar(lite, {"name": "demo-project"}) == 0
    assert _write_elsewhere(lite)
