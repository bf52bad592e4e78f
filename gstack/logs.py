"""The process's log, written off the threads that log.

``gstack serve`` logs a line per request. Formatting that line (its timestamp above all) and
writing it to stderr on the request thread cost ~10% of an ``instances.get``; here the request
thread only renders the message and queues the record, and one listener thread formats and
writes, in order. Nothing is dropped: the queue is unbounded, and the listener drains it when the
process exits.
"""

from __future__ import annotations

import atexit
import logging
import logging.handlers
import queue

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class _Enqueue(logging.handlers.QueueHandler):
    """A QueueHandler that leaves formatting to the listener: the queued record keeps its own
    timestamp, so the line is the same whenever it is written. Only what could change after the
    call is settled here: the message (its arguments rendered) and the traceback's text."""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        record.msg = record.getMessage()
        record.args = None
        if record.exc_info:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
            record.exc_info = None
        return record


def configure(level: int = logging.INFO) -> logging.handlers.QueueListener | None:
    """Root logging to stderr through a queue and a listener thread (the format ``basicConfig``
    gave before). Like ``basicConfig``, nothing changes when the root logger has handlers already
    (a test's log capture, an embedding program's own configuration)."""
    root = logging.getLogger()
    if root.handlers:
        return None
    q: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    stream = logging.StreamHandler()
    stream.setFormatter(logging.Formatter(FORMAT))
    listener = logging.handlers.QueueListener(q, stream, respect_handler_level=True)
    root.addHandler(_Enqueue(q))
    root.setLevel(level)
    listener.start()
    atexit.register(listener.stop)  # writes what is still queued
    return listener
