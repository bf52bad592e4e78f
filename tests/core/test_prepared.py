"""Statements run outside a Session (core.prepared.Prepared): on PostgreSQL on connections kept in
autocommit beside the pool. A read whose connection the server dropped runs again on a new one (a
database restart costs no caller an error); a write's error goes to its caller (it may have
committed before the break); with every such connection in use a statement takes a pooled one;
disposing of the engine closes them all."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest
from sqlalchemy import Engine, bindparam, inspect, select, text, update

from core import db, prepared
from core.models import Project, Resource, Zone
from core.prepared import Prepared, among, json_ids, write_back
from core.services.instances.rows import BY_UIDS_LOCKED

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
    # Closed by the client at once; the server's backend ends a moment later (a busy machine in CI
    # still listed one in pg_stat_activity right after the close).
    deadline = time.monotonic() + 10
    while _ours(pg) and time.monotonic() < deadline:
        time.sleep(0.05)
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


# -- lists in a prepared statement: core.prepared.among ----------------------------------------

ZONES_AMONG = Prepared(select(Zone.id).where(among(Zone.id, "ids")).order_by(Zone.id))
RENAME = Prepared(update(Zone).where(Zone.id == bindparam("id")).values(status=bindparam("status")))


def test_among_matches_exactly_the_ids_of_its_json_array(engine, session):
    ids = [z for (z,) in session.execute(select(Zone.id).order_by(Zone.id))]
    assert len(ids) >= 2
    assert [z for (z,) in ZONES_AMONG.in_session(session, {"ids": json_ids(ids)})] == ids
    assert [z for (z,) in ZONES_AMONG.in_session(session, {"ids": json_ids([ids[-1], 10**9])})] == [ids[-1]]
    assert ZONES_AMONG.in_session(session, {"ids": json_ids([])}) == []
    assert ZONES_AMONG.all(engine, {"ids": json_ids(ids[:1])}) == [(ids[0],)]  # outside a session too


def test_among_seeks_the_columns_index_on_sqlite(engine):
    """Compared with 1 (what a Boolean expression gets on SQLite), the IN made SQLite scan the table."""
    if engine.dialect.name != "sqlite":
        pytest.skip("SQLite's plans")
    sql = BY_UIDS_LOCKED._sql(engine).sql
    conn = engine.raw_connection()
    try:
        plan = [row[3] for row in conn.cursor().execute("EXPLAIN QUERY PLAN " + sql, ("[1, 2]",))]
    finally:
        conn.close()
    assert any(line.startswith("SEARCH resources USING INDEX") and "(uid=?)" in line for line in plan), plan
    assert not any(line.startswith("SCAN resources") for line in plan), plan


def test_many_in_session_runs_once_per_parameter_set_in_the_transaction(engine, session):
    before = dict(session.execute(select(Zone.id, Zone.status)).all())
    RENAME.many_in_session(session, [{"id": z, "status": f"S{z}"} for z in before])
    RENAME.many_in_session(session, [])  # nothing to run
    assert dict(session.execute(select(Zone.id, Zone.status)).all()) == {z: f"S{z}" for z in before}
    with engine.connect() as other:  # the caller's transaction's, not committed
        assert dict(other.execute(select(Zone.id, Zone.status)).all()) == before


# -- rows read as persistent objects: core.db.loaded -------------------------------------------

ZONE_ROWS = Prepared(select(*Zone.__table__.columns).where(among(Zone.id, "ids")).order_by(Zone.id))


def test_loaded_rows_are_persistent_objects_whose_changes_the_session_writes(engine, session):
    ids = [z for (z,) in session.execute(select(Zone.id).order_by(Zone.id))]
    found = db.loaded(session, Zone, ZONE_ROWS, {"ids": json_ids(ids)})
    assert [z.id for z in found] == ids
    assert not session.dirty and all(inspect(z).persistent for z in found)
    assert session.get(Zone, ids[0]) is found[0]  # the session's own object: not read again
    found[0].status = "DOWN"
    session.flush()
    assert session.execute(select(Zone.status).where(Zone.id == ids[0])).scalar() == "DOWN"
    assert db.loaded(session, Zone, ZONE_ROWS, {"ids": json_ids(ids[:1])})[0] is found[0]  # kept, as the ORM keeps it


def test_rows_written_back_leave_nothing_for_the_next_flush(engine, session):
    """write_back writes the changed columns itself; the rows must then be clean, or the next
    statement's autoflush compares them attribute by attribute (~130 us a row) to write nothing."""
    rows = list(session.scalars(select(Resource).where(Resource.collection == "networks").limit(2)))
    assert rows, "the seed has networks"
    for r in rows:
        r.status = "CHANGED"
    write_back(session, rows, ("status",))
    assert not session.dirty
    rows[0].status, rows[0].subtype = "AGAIN", "other"  # a column write_back is not given stays the flush's
    write_back(session, rows[:1], ("status",))
    assert rows[0] in session.dirty
    session.flush()
    assert session.execute(select(Resource.status, Resource.subtype).where(Resource.pk == rows[0].pk)).one() == (
        "AGAIN", "other")


def test_write_back_writes_any_table_and_leaves_new_objects_to_the_flush(engine, session):
    """The same for another table (a zone's row: its primary key is ``id``, a resource's ``pk``);
    an object the session has not inserted yet has no row to update: the flush inserts it, with
    the value it was given."""
    zone = session.scalars(select(Zone).order_by(Zone.id).limit(1)).one()
    zone.status = "DOWN"
    write_back(session, [zone], ("status",))
    assert not session.dirty
    assert session.execute(select(Zone.status).where(Zone.id == zone.id)).scalar() == "DOWN"
    new = Zone(uid=987654321, name="written-back-z", region_id=zone.region_id, status="UP")
    session.add(new)
    new.status = "DOWN"
    write_back(session, [new], ("status",))
    assert new in session.new
    session.flush()
    assert session.execute(select(Zone.status).where(Zone.name == "written-back-z")).scalar() == "DOWN"
