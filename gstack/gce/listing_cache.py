"""Finished list pages, served again while the rows they were made of are unchanged.

Why: a 500-item page is ~1 MB of bodies that the database reads, copies and hands over, and that
are then joined into the answer, on every request, although a client polling a list mostly asks
for the same bytes again; that was ~3/4 of a page's cost on the server (issue 15: a page ran at
0.22× a bare app serving the same bytes). Asking the database whether the page's rows changed
costs an index walk (:func:`core.resources.queries.committed_versions`), not the bodies.

A page is kept with the versions (pk, rev) of the rows it was read from, read by the same statement
as the bodies. A revision (core/models/revision.py) is changed by the database on every write of a row's
page columns and never handed out twice, so equal versions now mean the same rows, in the same
order, with the same bodies: the same bytes. The check is made on every request against the
database, so a write by any process (gunicorn's other workers, a ``gstack worker``) is seen at
once; nothing here needs to be told of writes. A generation of the whole table answers first
(core/models/revision.py): while it has not moved since a page was last known current, the page
is current, and the rows need not be asked. (On PostgreSQL a generation vouches for a page only
when no writer was in flight as it was read: core.resources.queries.generation_settled.) The cache holds at most :data:`MAX_BYTES`, the
pages used least recently leaving first.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable

MAX_BYTES = 32 * 1024 * 1024  # ~32 full 500-item pages of instances

Versions = str  # core.resources.queries.versions_text


class PageCache:
    """Page bytes by request (the caller's key: what the bytes depend on besides the rows)."""

    def __init__(self, max_bytes: int = MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        # key -> [generation when last known current, versions of its rows, bytes]
        self._pages: OrderedDict[Hashable, list] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def unchanged(self, key: Hashable, generation: int | None) -> bytes | None:
        """The page kept for ``key`` if nothing was written since it was last known current:
        ``generation`` (:func:`~core.resources.queries.committed_generation`, read before this
        call) is the one read before that check. None: ask :meth:`get` with the rows' versions."""
        if generation is None:
            return None
        with self._lock:
            entry = self._pages.get(key)
            if entry is None or entry[0] != generation:
                return None
            self._pages.move_to_end(key)
            return entry[2]

    def get(self, key: Hashable, versions: Versions, generation: int | None) -> bytes | None:
        """The page kept for ``key`` if it was made of rows of these ``versions`` (read after
        ``generation``, which it then vouches for), else None."""
        with self._lock:
            entry = self._pages.get(key)
            if entry is None or entry[1] != versions:
                return None
            self._pages.move_to_end(key)
            entry[0] = generation
            return entry[2]

    def put(self, key: Hashable, versions: Versions, generation: int | None, body: bytes) -> None:
        """Keep ``body``, made of rows of ``versions`` read after ``generation``, for ``key``."""
        if len(body) > self.max_bytes:
            return
        with self._lock:
            old = self._pages.pop(key, None)
            if old is not None:
                self._bytes -= len(old[2])
            self._pages[key] = [generation, versions, body]
            self._bytes += len(body)
            while self._bytes > self.max_bytes:
                _, dropped = self._pages.popitem(last=False)
                self._bytes -= len(dropped[2])

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._pages

    def __len__(self) -> int:
        return len(self._pages)
