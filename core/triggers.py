"""Installing a set of triggers once, however many processes start together.

Two tables are kept by triggers (quota usage, :mod:`core.usage`; filter terms, :mod:`core.terms`),
and both are installed the same careful way: look without a lock (the common case, nothing to
do), then take the database's write lock, look again (another process may have finished first)
and only then create the triggers and derive what the rows already hold, in one transaction, so
no change slips between the derivation and the first trigger.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from sqlalchemy import Connection, Engine


def install_once(engine: Engine, table: str, installed: Callable[[Connection, bool], bool],
                 statements: Callable[[bool], Sequence[str]]) -> None:
    """Run ``statements(postgres)`` unless ``installed(conn, postgres)`` says it is done; ``table``
    names the lock (PostgreSQL: an advisory lock; SQLite: the write lock a no-op DELETE takes)."""
    postgres = engine.dialect.name == "postgresql"
    with engine.connect() as conn:
        if installed(conn, postgres):
            return
    with engine.begin() as conn:
        if postgres:  # processes starting together: one installs, the others find it done
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock(hashtext('gstack_{table}'))")
        else:
            conn.exec_driver_sql(f"DELETE FROM {table} WHERE 0")  # take the write lock now
        if installed(conn, postgres):
            return
        for stmt in statements(postgres):
            conn.exec_driver_sql(stmt)
