"""The SQLite commit watch of the job engine (core.jobs.watch): idle, it stops looking on a timer,
and a commit by another process wakes it at once through the kernel's report of the write-ahead
log's writes; stopping it ends its sleep at once.

The database is a real SQLite file in WAL mode (the engine's own settings), written by a separate
Python process; the safety net's interval is set to 60 s, so a look soon after that commit can
only come from the kernel's report.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import pytest
from sqlalchemy import text

from core.db import make_engine
from core.jobs import watch

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inotify is Linux's")

IDLE = 60.0


class Looks:
    """A CommitWatch run in a thread, recording each look (when, the counter)."""

    def __init__(self, engine) -> None:
        self.stop = threading.Event()
        self.watch = watch.CommitWatch(engine, self.stop, idle_interval=IDLE)
        self.seen: list[tuple[float, int]] = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        for version in self.watch.looks():
            self.seen.append((time.monotonic(), version))

    def after(self, t: float) -> list[int]:
        return [v for at, v in list(self.seen) if at > t]

    def close(self) -> float:
        """Stop it; how long the thread took to end."""
        t0 = time.monotonic()
        self.stop.set()
        self.watch.interrupt()
        self.thread.join(10)
        return time.monotonic() - t0


@pytest.fixture
def database(tmp_path):
    path = os.path.join(tmp_path, "watched.sqlite3")
    engine = make_engine("sqlite:///" + path)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (x INTEGER)"))
    yield engine, path
    engine.dispose()


def _commit_elsewhere(path: str) -> None:
    """A commit by another process, as a ``gstack worker`` or a second server makes one."""
    subprocess.run([sys.executable, "-c", "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); "
                    "c.execute('INSERT INTO t VALUES (1)'); c.commit(); c.close()", path], check=True, timeout=60)


def test_idle_watch_sleeps_and_a_commit_elsewhere_wakes_it(database):
    engine, path = database
    looks = Looks(engine)
    try:
        deadline = time.monotonic() + 30
        while not looks.seen and time.monotonic() < deadline:
            time.sleep(0.05)
        assert looks.seen, "the watch never looked"
        # Busy at first (a look every WATCH_INTERVAL), then idle: no look on a timer any more.
        time.sleep(watch.HOT_SECONDS + 1.0)
        quiet_from = time.monotonic()
        time.sleep(1.5)
        assert looks.after(quiet_from) == [], "an idle watch kept looking"
        before = looks.seen[-1][1]

        written = time.monotonic()
        _commit_elsewhere(path)
        deadline = time.monotonic() + 20  # far below the 60 s safety net
        while not [v for v in looks.after(written) if v != before] and time.monotonic() < deadline:
            time.sleep(0.02)
        changed = [v for v in looks.after(written) if v != before]
        assert changed, "the other process's commit was not heard before the safety net's look"
    finally:
        took = looks.close()
    assert not looks.thread.is_alive() and took < 5, took  # the sleep ended when told, not after 60 s


def test_the_watch_looks_on_its_timer_where_the_log_cannot_be_watched(database, monkeypatch):
    engine, path = database

    def refused(_path: str):
        raise OSError(28, "inotify watch limit reached")

    monkeypatch.setattr(watch, "_LogWrites", refused)
    looks = Looks(engine)
    try:
        time.sleep(watch.HOT_SECONDS + 1.0)
        quiet_from = time.monotonic()
        time.sleep(1.0)
        assert len(looks.after(quiet_from)) >= 2, "without the kernel's reports the watch must keep looking"
        written = time.monotonic()
        before = looks.seen[-1][1]
        _commit_elsewhere(path)
        deadline = time.monotonic() + 20
        while not [v for v in looks.after(written) if v != before] and time.monotonic() < deadline:
            time.sleep(0.02)
        assert [v for v in looks.after(written) if v != before]
    finally:
        looks.close()
