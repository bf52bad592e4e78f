"""Resource revisions (core/models/revision.py), on SQLite and PostgreSQL: every write of a row's
page columns gives it a revision never handed out before, other writes leave it, a delete drops
it; and writers of different rows of one scope do not wait for each other on them."""

from __future__ import annotations

import itertools
import time

import pytest
from sqlalchemy import Engine, text

from core.resources.queries import committed_generation, generation_settled

_UIDS = itertools.count(9_100_000_000)


def _insert(engine: Engine, name: str, scope: str = "zones/us-central1-a") -> int:
    with engine.begin() as conn:
        return conn.execute(text(
            "INSERT INTO resources (uid, project, collection, scope, name, status, subtype, created, body, vcpus, "
            "memory_mb, size_gb) VALUES (:uid, 'rev-project', 'instances', :scope, :name, 'RUNNING', '', 1.0, "
            ":body, 0, 0, 0) RETURNING pk"), {"uid": next(_UIDS), "scope": scope, "name": name,
                                               "body": f'{{"name": "{name}"}}'}).scalar_one()


def _rev(engine: Engine, pk: int) -> int | None:
    with engine.connect() as conn:
        return conn.execute(text("SELECT rev FROM resource_revisions WHERE resource_pk = :pk"), {"pk": pk}).scalar()


def _write(engine: Engine, sql: str, **params: object) -> None:
    with engine.begin() as conn:
        conn.execute(text(sql), params)


def test_every_write_of_a_page_column_gives_a_new_revision(engine):
    pk = _insert(engine, "rev-a")
    seen = [_rev(engine, pk)]
    assert seen[0] is not None
    for sql in ("UPDATE resources SET body = '{\"name\": \"rev-a\", \"x\": 1}' WHERE pk = :pk",
                "UPDATE resources SET body = body WHERE pk = :pk",  # written, even if unchanged
                "UPDATE resources SET created = 2.0 WHERE pk = :pk",
                "UPDATE resources SET scope = 'zones/us-central1-b' WHERE pk = :pk"):
        _write(engine, sql, pk=pk)
        seen.append(_rev(engine, pk))
        assert seen[-1] is not None and seen[-1] not in seen[:-1]
    _write(engine, "UPDATE resources SET vcpus = 4, status = 'STOPPING' WHERE pk = :pk", pk=pk)  # no page column
    assert _rev(engine, pk) == seen[-1]
    _write(engine, "DELETE FROM resources WHERE pk = :pk", pk=pk)
    assert _rev(engine, pk) is None


def test_a_reused_pk_gets_a_revision_never_given_before(engine):
    pk = _insert(engine, "rev-b")
    old = _rev(engine, pk)
    _write(engine, "DELETE FROM resources WHERE pk = :pk", pk=pk)
    again = _insert(engine, "rev-b")
    if engine.dialect.name == "sqlite":
        assert again == pk  # SQLite hands out the deleted largest rowid again
    assert _rev(engine, again) is not None and _rev(engine, again) != old


def test_writers_of_one_scope_do_not_wait_for_each_other(engine):
    """A per-scope counter would make the second writer wait for the first one's commit (and two
    writers of two scopes in opposite orders deadlock); a revision row is its resource row's."""
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite has one writer at a time whatever the schema")
    a, b = _insert(engine, "rev-c"), _insert(engine, "rev-d")
    with engine.connect() as first, engine.connect() as second:
        first.begin()
        first.execute(text("UPDATE resources SET body = '{\"name\": \"rev-c\", \"y\": 1}' WHERE pk = :pk"), {"pk": a})
        second.begin()
        second.execute(text("SET LOCAL lock_timeout = '2s'"))
        second.execute(text("UPDATE resources SET body = '{\"name\": \"rev-d\", \"y\": 1}' WHERE pk = :pk"), {"pk": b})
        second.commit()
        first.commit()
    assert _rev(engine, a) != _rev(engine, b)


def test_the_generation_moves_with_every_write_of_a_page_column(engine):
    """core.resources.queries.committed_generation: SQLite's revision counter, PostgreSQL's
    sequence, moved by inserts, page-column updates and deletes alike (not by other updates)."""
    pk = _insert(engine, "rev-e")
    seen = [committed_generation(engine)]
    for sql in ("UPDATE resources SET body = '{\"name\": \"rev-e\", \"z\": 1}' WHERE pk = :pk",
                "DELETE FROM resources WHERE pk = :pk"):
        _write(engine, sql, pk=pk)
        seen.append(committed_generation(engine))
        assert seen[-1] is not None and seen[-2] is not None and seen[-1] > seen[-2]
    other = _insert(engine, "rev-f")
    moved = committed_generation(engine)
    _write(engine, "UPDATE resources SET vcpus = 2 WHERE pk = :pk", pk=other)
    assert committed_generation(engine) == moved


def test_a_generation_read_while_a_writer_is_in_flight_vouches_for_nothing(engine):
    """core.resources.queries.generation_settled: PostgreSQL's sequence moves when a writer takes
    its number, before it commits; while that writer runs, no page may be kept under the
    generation that names its number. SQLite's counter moves at commit: always settled."""
    pk = _insert(engine, "rev-g")
    before = committed_generation(engine)
    with engine.connect() as writer:
        writer.execute(text("UPDATE resources SET body = '{\"name\": \"rev-g\", \"w\": 1}' WHERE pk = :pk"),
                       {"pk": pk})
        if engine.dialect.name == "postgresql":
            assert committed_generation(engine) > before  # not committed, and yet moved
            assert not generation_settled(engine)
        else:
            assert committed_generation(engine) == before
            assert generation_settled(engine)
        writer.commit()
    # Settled again once it ended (other tests' writers of this database may be running: wait them out).
    deadline = time.monotonic() + 30
    while not generation_settled(engine):
        assert time.monotonic() < deadline, "a writer's lock on resources outlived every test's writes"
        time.sleep(0.05)
