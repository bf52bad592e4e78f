"""The process's log, written off the threads that log, in batches.

``gstack serve`` logs a line per request. Formatting that line and writing it to stderr on the
request thread cost ~20% of an ``instances.get``; a queue whose listener wakes for every record
(logging's QueueHandler/QueueListener) cost as much again in thread hand-offs under load. Here
the logging thread only renders the message and appends the record to a deque; one writer thread
formats what accumulated over :data:`FLUSH_SECONDS` and writes it with one call, in order (at once
for a warning or worse). Nothing is dropped: the deque is unbounded, and it is drained when the
process exits.

An idle writer sleeps until a record comes: it woke every :data:`FLUSH_SECONDS` to find nothing,
twenty times a second, the largest share of an idle server's CPU. The first record wakes it (the
only one that does: under load the writer never sleeps long, and a record costs no hand-off).
"""

from __future__ import annotations

import atexit
import collections
import logging
import sys
import threading
import time

REQUESTS = logging.getLogger("gstack.http")
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
FLUSH_SECONDS = 0.05
# An idle writer looks anyway this often: a safety net, the wake-up of the first record is exact.
IDLE_SECONDS = 1.0


class _Formatter(logging.Formatter):
    """logging's Formatter, its timestamp's seconds formatted once per second, not once per line
    (the lines are the same)."""

    _second = -1
    _text = ""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        second = int(record.created)
        if second != self._second:
            self._text = time.strftime(self.default_time_format, self.converter(record.created))
            self._second = second
        return f"{self._text},{int(record.msecs):03d}"  # logging's default_msec_format, "%s,%03d"


class BufferedHandler(logging.Handler):
    """Appends records to a deque that :meth:`flush` (the writer thread) formats and writes."""

    def __init__(self, stream=None, interval: float = FLUSH_SECONDS) -> None:
        super().__init__()
        self.stream = stream
        self.records: collections.deque[logging.LogRecord] = collections.deque()
        self.wake = threading.Event()  # the first record for a sleeping writer, or a warning
        self.urgent = threading.Event()  # a warning: write what is gathered now
        self.sleeping = False
        self.interval = interval
        self._writing = threading.Lock()
        threading.Thread(target=self._write_forever, name="log-writer", daemon=True).start()

    def emit(self, record: logging.LogRecord) -> None:
        # What could change after the call is settled here: the message (its arguments
        # rendered) and the traceback's text; the timestamp is the record's own already.
        try:
            record.msg = record.getMessage()
            record.args = None
            if record.exc_info:
                record.exc_text = logging.Formatter().formatException(record.exc_info)
                record.exc_info = None
        except Exception:  # noqa: BLE001 - logging must not fail the caller
            self.handleError(record)
            return
        self.records.append(record)  # atomic: no lock, no thread woken but a sleeping writer
        if record.levelno >= logging.WARNING:
            self.urgent.set()
            self.wake.set()
        elif self.sleeping:  # read after the append: see _write_forever
            self.sleeping = False
            self.wake.set()

    def flush(self) -> None:
        with self._writing:
            lines = []
            records = self.records
            while records:
                record = records.popleft()
                try:
                    lines.append(self.format(record))
                except Exception:  # noqa: BLE001
                    self.handleError(record)
            if lines:
                stream = self.stream or sys.stderr
                stream.write("\n".join(lines) + "\n")
                stream.flush()

    def _write_forever(self) -> None:
        while True:
            # Said before the writer looks at the deque, read by emit after its append: either the
            # writer sees the record, or the record's emit sees the writer sleeping and wakes it.
            self.sleeping = True
            if not self.records:
                self.wake.wait(IDLE_SECONDS)
            self.sleeping = False
            self.wake.clear()
            self.urgent.wait(self.interval)  # what else comes meanwhile goes in the same write
            self.urgent.clear()
            try:
                self.flush()
            except Exception:  # noqa: BLE001 - a closed stderr at exit: the writer stops, the process goes on
                return


def configure(level: int = logging.INFO) -> BufferedHandler | None:
    """Root logging to stderr through a :class:`BufferedHandler` (the format ``basicConfig`` gave
    before). Like ``basicConfig``, nothing changes when the root logger has handlers already (a
    test's log capture, an embedding program's own configuration)."""
    root = logging.getLogger()
    if root.handlers:
        return None
    handler = BufferedHandler()
    handler.setFormatter(_Formatter(FORMAT))
    root.addHandler(handler)
    root.setLevel(level)
    atexit.register(handler.flush)  # writes what is still buffered
    return handler


def log_request(method: str, path: str, status: int, ms: float) -> None:
    """The request log's line (``GSTACK_LOG_REQUESTS``): method, path (no query: it may carry
    access_token), status, time. The record is made directly: ``log.info`` would also walk the
    stack for the caller's file and line, which the line does not show."""
    if REQUESTS.isEnabledFor(logging.INFO):
        REQUESTS.handle(REQUESTS.makeRecord(REQUESTS.name, logging.INFO, __file__, 0, "%s %s %s %.1fms",
                                            (method, path, status, ms), None))
