"""Schema migrations (Alembic), run from code: the revisions ship inside this package
(``versions/``) and no alembic.ini is read, so ``gstack db upgrade`` works wherever gstack is installed.

Three kinds of database meet a starting gstack:

* an empty one (a brand new data directory): :func:`prepare` makes the head schema directly
  (:func:`core.db.create_schema`, which the tests prove equal to the revisions run one by one)
  and stamps it, so the embedded default still starts with one command;
* one at an older revision: :func:`prepare` refuses with :class:`SchemaNotCurrent`, whose message
  says to run ``gstack db upgrade``. An upgrade changes the operator's data and may take long
  (the terms of every resource are derived once): it is a step the operator takes, after a backup,
  never a side effect of a restart;
* one made before migrations (no ``alembic_version``): :func:`upgrade` checks that it holds what
  release 5b7c533 made (``0001``'s tables, columns, indexes and triggers), stamps it at ``0001`` and
  upgrades it; :func:`prepare` refuses it like an older revision.

Every upgrade runs in one transaction (both databases have transactional DDL) under a lock, so
processes starting together never migrate twice and a failed upgrade leaves nothing half done.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, inspect

from core.db import create_schema, make_engine, write_connection

SCRIPTS = os.path.dirname(os.path.abspath(__file__))
BASELINE = "0001"  # release 5b7c533's schema, the last made without migrations
_LOCK = "SELECT pg_advisory_xact_lock(hashtext('gstack_migrations'))"


class SchemaNotCurrent(Exception):
    """The database's schema is not the one this build runs on; the message says what to do."""


def config(connection: Connection | None = None) -> Config:
    """Alembic's configuration without a file: the scripts of this package, on ``connection``."""
    cfg = Config()
    cfg.set_main_option("script_location", SCRIPTS)
    cfg.attributes["connection"] = connection
    return cfg


@functools.cache
def scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(config())


def head() -> str:
    """The revision this build's models are at."""
    revision = scripts().get_current_head()
    assert revision is not None, "core/migrations/versions holds no revision"
    return revision


def history() -> list[tuple[str, str]]:
    """Every revision, oldest first, with the first paragraph of its docstring."""
    return [(rev.revision, " ".join((rev.module.__doc__ or "").split("\n\n")[0].split()))
            for rev in reversed(list(scripts().walk_revisions()))]


def current(engine: Engine) -> str | None:
    """The database's revision; None for an empty database or one made before migrations."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def _baseline() -> Any:
    return scripts().get_revision(BASELINE).module


def _empty(conn: Connection) -> bool:
    return not set(inspect(conn).get_table_names()) & set(_baseline().TABLES)


@functools.cache
def _baseline_catalog() -> dict[str, tuple[frozenset[str], frozenset[str]]]:
    """The columns and indexes of each table revision 0001 makes, read from a scratch in-memory
    database it was run on: the revision stays the one statement of the release's schema."""
    engine = make_engine("sqlite://")
    try:
        upgrade(engine, BASELINE)
        inspector = inspect(engine)
        return {table: (frozenset(c["name"] for c in inspector.get_columns(table)),
                        frozenset(str(ix["name"]) for ix in inspector.get_indexes(table)))
                for table in _baseline().TABLES}
    finally:
        engine.dispose()


def legacy_gaps(conn: Connection) -> list[str]:
    """What a database made before migrations lacks of release 5b7c533's schema (empty when it
    holds every table, column, index and usage trigger the baseline makes): only then is it stamped."""
    inspector = inspect(conn)
    tables = set(inspector.get_table_names())
    missing = []
    for table, (columns, indexes) in _baseline_catalog().items():
        if table not in tables:
            missing.append(f"table {table}")
            continue
        missing += [f"column {table}.{c}" for c in sorted(columns - {c["name"] for c in inspector.get_columns(table)})]
        missing += [f"index {ix}" for ix in sorted(indexes - {str(i["name"]) for i in inspector.get_indexes(table)})]
    if conn.dialect.name == "postgresql":
        found = {row[0] for row in conn.exec_driver_sql("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal")}
        wanted = ["resource_usage"]
    else:
        found = {row[0] for row in conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'trigger'")}
        wanted = ["resource_usage_insert", "resource_usage_delete", "resource_usage_update"]
    return missing + [f"trigger {t}" for t in wanted if t not in found]


@contextmanager
def _locked(engine: Engine) -> Iterator[Connection]:
    """A write transaction that holds the migration lock (``BEGIN IMMEDIATE`` on SQLite; an
    advisory lock on PostgreSQL), committed when the block ends."""
    with write_connection(engine) as conn, conn.begin():
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql(_LOCK)
        yield conn


def _create_at_head(engine: Engine) -> None:
    create_schema(engine)  # idempotent: a process starting beside this one may do it too
    with _locked(engine) as conn:
        context = MigrationContext.configure(conn)
        if context.get_current_revision() is None:
            context.stamp(scripts(), "head")  # no env.py run: the cheap path every test database takes


def upgrade(engine: Engine, revision: str = "head") -> str | None:
    """Bring the database to ``revision``; returns the revision it was at (None: empty, or made
    before migrations). SchemaNotCurrent if it was made before migrations and is not release
    5b7c533's schema: gstack does not guess what an unknown schema holds."""
    with _locked(engine) as conn:
        before = MigrationContext.configure(conn).get_current_revision()
        empty = before is None and _empty(conn)
        fresh = empty and revision == "head"  # made directly, as at start-up
        if before is None and not empty:
            gaps = legacy_gaps(conn)
            if gaps:
                raise SchemaNotCurrent("the database has no migration revision and is not the schema of "
                                       f"release 5b7c533 (missing: {', '.join(gaps)}); gstack will not migrate it")
            MigrationContext.configure(conn).stamp(scripts(), BASELINE)
        if not fresh:
            command.upgrade(config(conn), revision)
    if fresh:
        _create_at_head(engine)
    return before


def prepare(engine: Engine) -> None:
    """At start-up (serve, worker, admin): make an empty database at head, and refuse any other
    that is not at head with :class:`SchemaNotCurrent`. Writes nothing to a database that holds data."""
    with engine.connect() as conn:
        revision = MigrationContext.configure(conn).get_current_revision()
        if revision == head():
            return
        empty = revision is None and _empty(conn)
    if empty:
        _create_at_head(engine)
        return
    if revision is not None and revision not in {rev.revision for rev in scripts().walk_revisions()}:
        raise SchemaNotCurrent(f"the database holds revision {revision}, which this gstack does not know: a newer "
                               "gstack made it. Run that build, or restore a backup this build can read.")
    found = f"revision {revision}" if revision else "a schema made before migrations (no revision)"
    raise SchemaNotCurrent(f"the database holds {found}; this gstack needs revision {head()}. "
                           "Back the database up, then run `gstack db upgrade` (see the operator's guide, Upgrading).")
