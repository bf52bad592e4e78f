"""The buffered request log (gstack/logs.py): the same lines as logging's own formatter, in order,
written by the writer thread without anyone flushing, and what is buffered written at exit."""

from __future__ import annotations

import io
import logging
import subprocess
import sys
import time

from gstack import logs


def _handler() -> tuple[logs.BufferedHandler, io.StringIO, logging.Logger]:
    out = io.StringIO()
    handler = logs.BufferedHandler(out, interval=0.01)
    handler.setFormatter(logs._Formatter(logs.FORMAT))
    logger = logging.getLogger(f"test.logs.{id(handler)}")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    return handler, out, logger


def test_lines_match_logging_formatter_in_order() -> None:
    handler, out, logger = _handler()
    records = []
    logger.addFilter(lambda r: records.append(logging.makeLogRecord(r.__dict__)) or True)
    for n in range(200):
        logger.info("%s %s %s %.1fms", "GET", f"/compute/v1/x/{n}", 200, n / 7)
    try:
        raise ValueError("boom")
    except ValueError:
        logger.exception("failed %d", 1)
    handler.flush()
    plain = logging.Formatter(logs.FORMAT)
    expected = []
    for r in records[:-1]:
        expected.append(plain.format(r))
    lines = out.getvalue().splitlines()
    assert lines[:200] == expected
    assert lines[200].endswith("ERROR " + logger.name + ": failed 1")
    assert lines[-1] == "ValueError: boom"


def test_writer_thread_writes_without_a_flush() -> None:
    _, out, logger = _handler()
    logger.info("hello %s", "there")
    deadline = time.monotonic() + 5
    while "hello there" not in out.getvalue() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert out.getvalue().endswith(": hello there\n")


def test_buffered_lines_are_written_at_exit() -> None:
    code = ("import logging; from gstack import logs; logs.configure(); "
            "[logging.getLogger('gstack.http').info('line %d', n) for n in range(1000)]")
    err = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stderr
    assert [line.rsplit(" ", 1)[-1] for line in err.splitlines()] == [str(n) for n in range(1000)]
