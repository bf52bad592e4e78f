"""Rows written by ``core.db.insert_persistent`` (a Core INSERT, the object attached without a
flush) are forgotten by a rollback as a flushed INSERT's are: a call run again after contention
(``core.services.calls.run``) inserts afresh in the same session, and the database may hand its
new row the primary key the rolled-back one had."""

from __future__ import annotations

import itertools

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core import db
from core.models import Resource

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
