"""A fresh, seeded gstack database on either backend, for tests that drive the core directly."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import Engine, event
from sqlalchemy.orm import Session, sessionmaker

from core import migrations
from core.db import make_engine, write_session
from core.services.seed import seed
from tests.conftest import PG_ADMIN_DSN, create_pg_database, drop_pg_database, pg_available


@contextmanager
def seeded_engine(backend: str, prefix: str = "gstack-db-") -> Iterator[Engine]:
    """An engine on a new database (SQLite in a temporary directory, or a PostgreSQL database of its
    own) with the schema made and the demo cloud seeded; everything is removed afterwards."""
    pg_name, tmp = None, None
    if backend == "postgresql":
        if not pg_available():
            pytest.fail("PostgreSQL is not reachable at " + PG_ADMIN_DSN + " (.ci/run starts it)")
        pg_name, url = create_pg_database()
    else:
        tmp = tempfile.mkdtemp(prefix=prefix)
        url = "sqlite:///" + os.path.join(tmp, "gstack.sqlite3")
    engine = make_engine(url)
    try:
        migrations.prepare(engine)
        with write_session(sessions(engine)) as session:
            seed(session)
        yield engine
    finally:
        engine.dispose()
        if pg_name:
            drop_pg_database(pg_name)
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


def sessions(engine: Engine) -> sessionmaker[Session]:
    """The session factory the core's services and job engine take."""
    return sessionmaker(bind=engine, expire_on_commit=False)


@contextmanager
def statements_sent(engine: Engine) -> Iterator[list[str]]:
    """The SQL statements ``engine`` sends meanwhile (from any thread), in order, each on one line."""
    sent: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        sent.append(" ".join(statement.split()))

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", record)


def sqlite_reads(session: Session, action: Callable[[], object]) -> tuple[list[list[str]], list[str]]:
    """Run ``action`` in ``session`` (SQLite) and explain what it sent: SQLite's plan of each
    statement (a line per step), and every step among them that reads ``resources``."""
    conn = session.connection()
    sent: list[tuple[str, object]] = []

    def record(c, cursor, statement, parameters, context, executemany):
        sent.append((statement, parameters))

    event.listen(conn, "before_cursor_execute", record)
    try:
        action()
    finally:
        event.remove(conn, "before_cursor_execute", record)
    cursor = conn.connection.driver_connection.cursor()
    plans = [[row[3] for row in cursor.execute("EXPLAIN QUERY PLAN " + sql, params)] for sql, params in sent]
    return plans, [line for plan in plans for line in plan if " resources " in f"{line} "]
