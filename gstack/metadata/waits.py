"""Hanging GETs: ``?wait_for_change=true[&last_etag=E][&timeout_sec=N]``.

The answer comes back when its ETag differs from ``last_etag`` (at once if it already does) or
from the ETag the value had when the wait began, or when ``timeout_sec`` runs out (with the
current value, as GCE does). A stop or a start changes every ETag (see
:class:`gstack.metadata.render.Answer`), so it ends every wait, even one begun after it.

The metadata server runs in processes of its own (``gstack metadata``, beside ``gstack serve``
and its workers), so a change made by the API (setMetadata, setTags,
setCommonInstanceMetadata, stop, start) cannot notify it in memory: a wait looks again every
:data:`LOOK_INTERVAL`. That bounds how late a guest hears of a change (GCE promises no better).
A look is a stamp of what the API and the guest change (one read,
:func:`core.services.instance_metadata.view_stamp`); the whole view (~0.45 ms of reads and
rendering) is read only when the stamp moved, or every :data:`FULL_LOOK_INTERVAL` for what the
stamp leaves out (a subnetwork's range). google-guest-agent keeps such a wait open all the time,
so that is what each running guest costs its server while nothing changes: 0.45 ms of CPU a
second per wait, against 3.8 ms when each look read the whole view (``bench.metadata_waits``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from gstack.metadata.render import Answer

LOOK_INTERVAL = 0.2  # seconds between looks at the database
FULL_LOOK_INTERVAL = 10.0  # seconds between reads of the whole view while the stamp stays
# A wait without timeout_sec still ends: GCE's clients loop on wait_for_change anyway.
DEFAULT_TIMEOUT = 600.0
MAX_TIMEOUT = 3600.0

# A look at the current answer; a stamp of what it is made of (equal stamps: the same answer).
Look = Callable[[], Answer]
Stamp = Callable[[], object]


def timeout_of(value: str | None) -> float:
    """``timeout_sec`` as seconds (GCE's default and cap when absent or out of range)."""
    try:
        seconds = float(value) if value else DEFAULT_TIMEOUT
    except ValueError:
        seconds = DEFAULT_TIMEOUT
    return min(max(seconds, 0.0), MAX_TIMEOUT)


def wait_for_change(look: Look, last_etag: str | None, timeout: float, stopping: threading.Event,
                    stamp: Stamp | None = None) -> Answer:
    """The answer once it changed (see the module's docstring), or the current one at the timeout
    or when the server shuts down. ``stamp``: see the module's docstring (None: a whole look each
    time)."""
    seen = stamp() if stamp is not None else None  # before the look: a change between is seen next
    answer = look()
    if last_etag and answer.etag != last_etag:
        return answer
    baseline = last_etag or answer.etag
    looked = time.monotonic()
    deadline = looked + timeout
    while not stopping.wait(min(LOOK_INTERVAL, max(deadline - time.monotonic(), 0.0))):
        now = time.monotonic()
        if stamp is not None and now < deadline and now - looked < FULL_LOOK_INTERVAL:
            current = stamp()
            if current == seen:
                continue
            seen = current
        answer, looked = look(), now
        if answer.etag != baseline or now >= deadline:
            return answer
    return answer
