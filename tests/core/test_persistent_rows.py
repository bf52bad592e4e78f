"""Rows written by ``core.db.insert_persistent`` (a Core INSERT, the object attached without a
flush) are forgotten by a rollback as a flushed INSERT's are: a call run again after contention
(``core.services.calls.run``) inserts afresh in the same session, and the database may hand its
new row the primary key the rolled-back one had."""

from __future__ import annotations

import itertools

import pytest
from sqlalchemy import bindparam, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core import db
from core.models import Resource
from core.prepared import Prepared
from tests.helpers.databases import statements_sent

_UIDS = itertools.count(7_000_000_001)


def _disk(name: str) -> Resource:
    return Resource(uid=next(_UIDS), project="demo-project", collection="disks", scope="zones/us-central1-a",
                    name=name, created=0.0, body="{}")


def test_a_rolled_back_insert_leaves_nothing_in_the_session(engine):
    with Session(engine) as session:
        db.begin_write(session)
        first = _disk("rolled-back")
        db.insert_persistent(session, first)
        session.rollback()
        assert first not in session
        db.begin_write(session)  # the retry: the same session, a row that may reuse the key
        second = _disk("committed")
        db.insert_persistent(session, second)
        session.commit()
        assert second in session
        assert session.scalar(select(func.count()).select_from(Resource).where(Resource.name == "rolled-back")) == 0
        assert session.get(Resource, second.pk).name == "committed"
        session.delete(second)
        session.commit()


def test_a_committed_insert_stays_in_the_session(engine):
    with Session(engine, expire_on_commit=False) as session:
        db.begin_write(session)
        disk = _disk("kept")
        db.insert_persistent(session, disk)
        session.commit()
        db.begin_write(session)
        session.rollback()  # a later transaction's rollback does not undo an earlier commit
        assert disk in session
        assert session.get(Resource, disk.pk) is disk
        session.delete(disk)
        session.commit()


def test_a_unique_clash_is_sqlalchemys_integrity_error_and_the_transaction_goes_on(engine):
    """The INSERT runs on the Session's DBAPI connection (core.prepared.Prepared.in_session), not
    through Core: its driver error must still reach callers as SQLAlchemy's, the class they and
    core.db.retrying tell apart, and the session must roll back and go on as before."""
    with Session(engine) as session:
        db.begin_write(session)
        first = _disk("clash")
        db.insert_persistent(session, first)
        twin = _disk("clash")
        with pytest.raises(IntegrityError) as caught:
            db.insert_persistent(session, twin)
        assert isinstance(caught.value.orig, engine.dialect.loaded_dbapi.IntegrityError)
        assert twin not in session
        session.rollback()
        db.begin_write(session)
        again = _disk("clash")
        db.insert_persistent(session, again)
        session.flush()
        assert session.scalar(select(func.count()).select_from(Resource).where(Resource.name == "clash")) == 1
        session.rollback()


def test_the_connections_listeners_see_the_statements(engine):
    """A statement counted by an engine listener (the tests of what an insert sends) is counted
    though it does not go through Core's execution path."""
    with Session(engine) as session, statements_sent(engine) as sent:
        db.begin_write(session)
        db.insert_persistent(session, _disk("seen"))
        db.insert_all_persistent(session, [_disk("seen-1"), _disk("seen-2")], "uid")
        session.rollback()
    assert sum("INSERT INTO resources" in q for q in sent) == 2, sent


def test_many_rows_go_in_by_chunks_each_matched_to_its_object(engine):
    """More rows than one INSERT takes (core.db.ROWS_PER_INSERT), one of them clashing: every other
    row is in, each object has its own row's key, and the clash is left out."""
    count = db.ROWS_PER_INSERT * 2 + 7
    with Session(engine) as session:
        db.begin_write(session)
        taken = _disk("chunk-taken")
        db.insert_persistent(session, taken)
        rows = [_disk(f"chunk-{i}") for i in range(count)] + [_disk("chunk-taken")]
        inserted = db.insert_all_persistent(session, rows, "uid")
        assert inserted == {row.uid for row in rows[:-1]}
        found = dict(session.execute(select(Resource.pk, Resource.name).where(Resource.name.like("chunk-%"))).all())
        assert len(found) == count + 1
        assert all(found[row.pk] == row.name for row in rows[:-1])
        session.rollback()


def test_a_prepared_statements_constants_are_sent_and_an_in_list_refused(engine, session):
    """A constant of the statement (``status == "RUNNING"``) goes with the caller's parameters, on
    both drivers' parameter styles; an expanding IN list, which Core renders at each run, is refused."""
    db.begin_write(session)
    for name, status in (("const-a", "RUNNING"), ("const-b", "TERMINATED")):
        disk = _disk(name)
        disk.status = status
        db.insert_persistent(session, disk)
    prepared = Prepared(select(Resource.name).where(Resource.status == "RUNNING", Resource.name.like(bindparam("like"))))
    assert prepared.in_session(session, {"like": "const-%"}) == [("const-a",)]
    listed = Prepared(select(Resource.name).where(Resource.status.in_(("RUNNING", "TERMINATED"))))
    with pytest.raises(TypeError, match="expanding"):
        listed.in_session(session, {})
