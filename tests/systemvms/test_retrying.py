"""core.db.retrying on the real databases: a PostgreSQL deadlock and a busy SQLite are run again
until they succeed, other errors are not; and a database whose usage trigger an older build made
(without the per-project lock) gets the current one at start."""

from __future__ import annotations

import os
import sqlite3
import threading

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import IntegrityError

from core import usage
from core.db import make_engine, retrying
from tests.conftest import create_pg_database, drop_pg_database, pg_available
from tests.helpers.databases import seeded_engine


@pytest.fixture
def pg_engine():
    if not pg_available():
        pytest.fail("PostgreSQL is not reachable (.ci/run starts it)")
    name, url = create_pg_database()
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE probe (id integer PRIMARY KEY, n integer NOT NULL)")
        conn.exec_driver_sql("INSERT INTO probe VALUES (1, 0), (2, 0)")
    yield engine
    engine.dispose()
    drop_pg_database(name)


def test_a_deadlock_victim_runs_again_and_both_commit(pg_engine):
    """Two transactions lock rows 1 and 2 in opposite orders: PostgreSQL aborts one of them (40P01),
    and retrying runs it again after the other committed."""
    both_hold_one = threading.Barrier(2)
    attempts: list[int] = []

    def swap(first: int, second: int) -> None:
        conn = pg_engine.connect()

        def attempt() -> None:
            attempts.append(first)
            with conn.begin():
                conn.execute(text("UPDATE probe SET n = n + 1 WHERE id = :id"), {"id": first})
                if len(attempts) <= 2:
                    both_hold_one.wait(5)
                conn.execute(text("UPDATE probe SET n = n + 1 WHERE id = :id"), {"id": second})

        try:
            retrying(attempt, rollback=conn.rollback)
        finally:
            conn.close()

    threads = [threading.Thread(target=swap, args=order) for order in ((1, 2), (2, 1))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert len(attempts) == 3  # one of the two ran again
    with pg_engine.connect() as conn:
        assert conn.execute(text("SELECT n FROM probe ORDER BY id")).scalars().all() == [2, 2]


def test_other_errors_are_not_retried(pg_engine):
    attempts = []

    def clash() -> None:
        attempts.append(1)
        with pg_engine.begin() as conn:
            conn.execute(text("INSERT INTO probe VALUES (1, 0)"))

    with pytest.raises(IntegrityError):
        retrying(clash)
    assert len(attempts) == 1


def test_a_busy_sqlite_database_is_retried(tmp_path):
    """A writer outside gstack holds the write lock; a write that finds it busy (no busy timeout)
    runs again until the lock is let go."""
    path = os.path.join(tmp_path, "busy.sqlite3")
    holder = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    holder.execute("CREATE TABLE probe (n integer)")
    holder.execute("BEGIN IMMEDIATE")
    threading.Timer(0.3, holder.execute, args=("ROLLBACK",)).start()
    engine = create_engine("sqlite:///" + path, connect_args={"timeout": 0})
    attempts = []

    def write() -> None:
        attempts.append(1)
        with engine.begin() as conn:
            conn.exec_driver_sql("INSERT INTO probe VALUES (1)")

    try:
        retrying(write)
    finally:
        engine.dispose()
        holder.close()
    assert len(attempts) > 1


@pytest.mark.parametrize("older", [
    # a build before the per-project lock
    usage._POSTGRESQL[0].replace(usage._IN_USE_LOCK, "").replace(usage._LOCK_PREFIX, "").replace(
        "PERFORM pg_advisory_xact_lock(2, hashtext('' || COALESCE(NEW.project, OLD.project)));", ""),
    usage._POSTGRESQL[0].replace(usage._IN_USE_LOCK, ""),  # a build before the lock of an address going IN_USE
], ids=["before-the-project-lock", "before-the-in-use-lock"])
def test_an_older_usage_function_is_replaced(older):
    with seeded_engine("postgresql") as engine:
        with engine.begin() as conn:
            conn.exec_driver_sql(older)
        usage.install(engine)
        with engine.connect() as conn:
            source = conn.exec_driver_sql("SELECT prosrc FROM pg_proc WHERE proname = 'gstack_resource_usage'").scalar()
            triggers = conn.exec_driver_sql("SELECT count(*) FROM pg_trigger WHERE tgname = 'resource_usage'").scalar()
        assert source == usage._POSTGRESQL[0].split("$$")[1] and triggers == 1
