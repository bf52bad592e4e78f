"""Hanging GETs: ``?wait_for_change=true[&last_etag=E][&timeout_sec=N]``.

The answer comes back when its ETag differs from ``last_etag`` (at once if it already does) or
from the ETag the value had when the wait began, or when ``timeout_sec`` runs out (with the
current value, as GCE does). A stop or a start changes every ETag (see
:class:`gstack.metadata.render.Answer`), so it ends every wait, even one begun after it.

The metadata server runs in processes of its own (``gstack metadata``, beside ``gstack serve``
and its workers), so a change made by the API (setMetadata, setTags,
setCommonInstanceMetadata, stop, start) cannot notify it in memory: a wait looks again every
:data:`LOOK_INTERVAL`, reading one instance's rows. That bounds how late a guest hears of a
change (GCE promises no better) at a cost of a few indexed reads per second per waiting guest.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from gstack.metadata.render import Answer

LOOK_INTERVAL = 0.2  # seconds between looks at the database
# A wait without timeout_sec still ends: GCE's clients loop on wait_for_change anyway.
DEFAULT_TIMEOUT = 600.0
MAX_TIMEOUT = 3600.0

# A look at the current answer.
Look = Callable[[], Answer]


def timeout_of(value: str | None) -> float:
    """``timeout_sec`` as seconds (GCE's default and cap when absent or out of range)."""
    try:
        seconds = float(value) if value else DEFAULT_TIMEOUT
    except ValueError:
        seconds = DEFAULT_TIMEOUT
    return min(max(seconds, 0.0), MAX_TIMEOUT)


def wait_for_change(look: Look, last_etag: str | None, timeout: float, stopping: threading.Event) -> Answer:
    """The answer once it changed (see the module's docstring), or the current one at the timeout
    or when the server shuts down."""
    answer = look()
    if last_etag and answer.etag != last_etag:
        return answer
    baseline = last_etag or answer.etag
    deadline = time.monotonic() + timeout
    while not stopping.wait(min(LOOK_INTERVAL, max(deadline - time.monotonic(), 0.0))):
        answer = look()
        if answer.etag != baseline or time.monotonic() >= deadline:
            return answer
    return answer
