"""Hearing of SQLite commits made by other connections, without waking 20 times a second when
nothing happens.

SQLite has no NOTIFY. A process learns that another one committed (a job to run, a job another
process finished) from the database's commit counter, ``PRAGMA data_version``, which it must read
to see change: every ``WATCH_INTERVAL`` while the database is busy, for a job written by another
process waits at most that long. An idle server looked 20 times a second all the same: ~0.25 s of
CPU a minute, 40% of what an idle ``gstack serve`` spent.

So on Linux the watch also asks the kernel (inotify) to say when the database's write-ahead log is
written, which every commit does, by any process on the machine. After ``HOT_SECONDS`` without a
commit it stops looking on a timer and sleeps until the log is written (or ``idle_interval``
passes: a safety net for a write the kernel does not report, such as one over a network file
system); the first write wakes it at once and it looks every ``WATCH_INTERVAL`` again. A write is
only a hint: the counter decides, and a commit published just after a look is still seen, at the
next look of the busy period the write began. Elsewhere, or when the log cannot be watched, it
looks every ``WATCH_INTERVAL`` as before.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import select
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

from sqlalchemy import Engine

log = logging.getLogger("gstack.jobs")

WATCH_INTERVAL = 0.05  # between looks while the database is busy
HOT_SECONDS = 1.0  # busy: a commit or a write of the log was seen this recently
IDLE_INTERVAL = 1.0  # between looks while idle, when the kernel reports the log's writes

_IN_MODIFY, _IN_DELETE_SELF, _IN_MOVE_SELF = 0x2, 0x400, 0x800


class _LogWrites:
    """An inotify watch on the write-ahead log: readable when the file was written since the last
    :meth:`drain`. A pipe beside it lets :meth:`interrupt` end a wait at once (the engine stops)."""

    def __init__(self, path: str) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        self._fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if self._fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        if libc.inotify_add_watch(self._fd, os.fsencode(path), _IN_MODIFY | _IN_DELETE_SELF | _IN_MOVE_SELF) < 0:
            os.close(self._fd)
            raise OSError(ctypes.get_errno(), f"inotify_add_watch {path}")
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)

    def wait(self, timeout: float) -> None:
        select.select([self._fd, self._wake_r], [], [], timeout)

    def drain(self) -> bool:
        """Were there writes (or a removal of the file) since the last drain?"""
        written = False
        for fd in (self._fd, self._wake_r):
            try:
                while os.read(fd, 4096):
                    written = written or fd == self._fd
            except BlockingIOError:
                pass
        return written

    def interrupt(self) -> None:
        with contextlib.suppress(BlockingIOError):  # a wake-up is pending already
            os.write(self._wake_w, b"x")

    def close(self) -> None:
        for fd in (self._fd, self._wake_r, self._wake_w):
            os.close(fd)


class CommitWatch:
    """The commit counter of a SQLite database, looked at as often as it changes: each value
    :meth:`looks` yields is a look; the caller compares it with the last one."""

    def __init__(self, engine: Engine, stop: threading.Event, *, idle_interval: float = IDLE_INTERVAL) -> None:
        self._engine = engine
        self._stop = stop
        self.idle_interval = idle_interval
        self._writes: _LogWrites | None = None
        self._watched: int | None = None  # the inode of the log watched
        self._lock = threading.Lock()  # closing the watch, against interrupt()
        path = engine.url.database
        if sys.platform.startswith("linux") and path and path != ":memory:" and not path.startswith("file:"):
            self._log_path: str | None = os.path.abspath(path) + "-wal"
        else:
            self._log_path = None

    def interrupt(self) -> None:
        """End a sleep now (the caller set ``stop``)."""
        with self._lock:  # not into a descriptor closed meanwhile, whose number may be another's now
            if self._writes is not None:
                self._writes.interrupt()

    def looks(self) -> Iterator[int]:
        """The counter at each look, until ``stop`` is set."""
        conn: Any = None
        last, hot_until = None, time.monotonic() + HOT_SECONDS
        try:
            while not self._stop.is_set():
                try:
                    if conn is None:
                        conn = self._engine.raw_connection()
                    version = self._read(conn)
                    self._watch_log()
                except Exception:
                    log.exception("watching the database for commits failed; retrying")
                    if conn is not None:
                        conn.invalidate()
                    conn = None
                    self._stop.wait(1.0)
                    continue
                now = time.monotonic()
                if version != last:
                    last, hot_until = version, now + HOT_SECONDS
                yield version
                hot_until = self._sleep(hot_until)
        finally:
            if conn is not None:
                conn.close()
            self._unwatch()

    def _unwatch(self) -> None:
        with self._lock:
            if self._writes is not None:
                self._writes.close()
                self._writes = None

    @staticmethod
    def _read(conn: Any) -> int:
        cursor = conn.cursor()
        cursor.execute("PRAGMA data_version")
        version = cursor.fetchone()[0]
        cursor.close()
        return int(version)

    def _watch_log(self) -> None:
        """Watch the log once it exists (a database's first connection makes it), and the new one
        if it was removed and made again (SQLite removes it when the last connection closes, which
        this watch's own connection prevents, but another program may); give up on watching, and
        look on the timer, where the kernel will not watch it."""
        if self._log_path is None:
            return
        try:
            inode = os.stat(self._log_path).st_ino
        except FileNotFoundError:
            inode = None
        if self._writes is not None and inode == self._watched:
            return
        self._unwatch()
        if inode is None:
            return
        try:
            self._writes, self._watched = _LogWrites(self._log_path), inode
        except (OSError, AttributeError) as exc:  # no inotify (no such libc symbol), too many watches
            log.warning("the job engine looks for commits every %.2f s: %s", WATCH_INTERVAL, exc)
            self._log_path = None

    def _sleep(self, hot_until: float) -> float:
        """Until the next look; the new end of the busy period (a write of the log extends it)."""
        writes = self._writes
        if writes is None:
            self._stop.wait(WATCH_INTERVAL)
            return hot_until
        if time.monotonic() < hot_until:
            self._stop.wait(WATCH_INTERVAL)
        else:
            writes.wait(self.idle_interval)
        if writes.drain():
            hot_until = time.monotonic() + HOT_SECONDS
        return hot_until
