"""The reads every instances.insert makes walk an index to the rows they want, whatever the size of
the project: on SQLite an OR of two collections in one WHERE read every resource of the project
(42 ms at 54,000 instances, twice per insert), so they are UNION ALLs of index seeks. Checked with
SQLite's own EXPLAIN QUERY PLAN; PostgreSQL plans by statistics and is measured by bench.scale."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, event

from core.services.instances.lifecycle import _TAKEN
from core.services.instances.spec import _NETWORK_AND_SUBNETS


def _plan(engine: Engine, stmt, params: dict) -> list[str]:
    """SQLite's plan of ``stmt`` as SQLAlchemy sends it (expanded IN lists and all)."""

    def explain(conn, cursor, statement, parameters, context, executemany):
        return "EXPLAIN QUERY PLAN " + statement, parameters

    with engine.connect() as conn:
        event.listen(conn, "before_cursor_execute", explain, retval=True)
        try:
            return [row[3] for row in conn.execute(stmt, params)]
        finally:
            event.remove(conn, "before_cursor_execute", explain)


@pytest.mark.parametrize("stmt, params, seek", [
    (_TAKEN, {"project": "demo-project", "scope": "zones/us-central1-a", "name": "vm", "disks": ["vm", "data"]},
     "(project=? AND collection=? AND scope=? AND name=?)"),
    (_NETWORK_AND_SUBNETS, {"project": "demo-project", "name": "default", "scope": "regions/us-central1"},
     "(project=? AND collection=?"),
])
def test_the_inserts_reads_seek_by_collection_not_by_project_alone(engine, stmt, params, seek):
    if engine.dialect.name != "sqlite":
        pytest.skip("SQLite's plans; PostgreSQL's depend on its statistics")
    searches = [line for line in _plan(engine, stmt, params) if "resources" in line]
    assert len(searches) == 2, searches  # one seek per branch
    assert all(seek in line for line in searches), searches
