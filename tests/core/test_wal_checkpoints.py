"""How gstack's SQLite connections checkpoint their WAL (core.db.WAL_CHECKPOINT_PAGES): every
10,000 pages, not SQLite's default 1,000, so that the commits of one checkpoint share more of the
pages it copies; and a WAL grown past WAL_KEPT_BYTES by a long transaction is cut back to it when
the next writer restarts it after a checkpoint, so a data directory does not keep a WAL as large as
its largest transaction."""

from __future__ import annotations

import os

import pytest
from sqlalchemy import text

from core import db

PAGE = 4096
ROW = "x" * 3000  # one row to a page


@pytest.fixture
def engine(tmp_path):
    engine = db.make_engine(f"sqlite:///{tmp_path}/wal.sqlite3")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, pad TEXT)"))
    yield engine
    engine.dispose()


def _write_pages(engine, pages: int, per_commit: int) -> None:
    for _ in range(pages // per_commit):
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO t (pad) VALUES (:pad)"), [{"pad": ROW}] * per_commit)


def _wal_pages(engine) -> int:
    return os.path.getsize(engine.url.database + "-wal") // (PAGE + 24)


def test_the_wal_is_checkpointed_every_wal_checkpoint_pages(engine):
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == db.WAL_CHECKPOINT_PAGES
    # Past SQLite's default of 1,000 pages the WAL goes on growing: no checkpoint restarted it.
    _write_pages(engine, 3000, 100)
    assert _wal_pages(engine) >= 3000
    # Past WAL_CHECKPOINT_PAGES a checkpoint copied it all, and the WAL started again from its
    # beginning: the file holds no more than the window and one commit.
    _write_pages(engine, db.WAL_CHECKPOINT_PAGES + 3000, 100)
    assert _wal_pages(engine) <= db.WAL_CHECKPOINT_PAGES + 200
    with engine.connect() as conn:
        busy, wal_frames, _ = conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)").one()
    assert busy == 0 and wal_frames < db.WAL_CHECKPOINT_PAGES  # the frames since the restart only


def test_a_wal_grown_by_a_long_transaction_is_cut_back_after_its_checkpoint(engine):
    big = db.WAL_KEPT_BYTES // PAGE + 2000  # one transaction larger than the WAL kept
    _write_pages(engine, big, big)
    assert os.path.getsize(engine.url.database + "-wal") > db.WAL_KEPT_BYTES
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
    _write_pages(engine, 10, 10)  # the next writer restarts the WAL and truncates the file
    assert os.path.getsize(engine.url.database + "-wal") <= db.WAL_KEPT_BYTES
