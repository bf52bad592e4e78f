"""The buffered request log (gstack/logs.py): the same lines as logging's own formatter, in order,
written by the writer thread without anyone flushing, and what is buffered written at exit; an idle
writer sleeps until a record comes, and no record of threads logging at once waits for the writer's
safety net."""

from __future__ import annotations

import io
import logging
import random
import subprocess
import sys
import threading
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


def _written(out: io.StringIO, lines: int, seconds: float = 5.0) -> int:
    deadline = time.monotonic() + seconds
    while out.getvalue().count("\n") < lines and time.monotonic() < deadline:
        time.sleep(0.01)
    return out.getvalue().count("\n")


def test_an_idle_writer_sleeps_until_a_record_comes(monkeypatch) -> None:
    monkeypatch.setattr(logs, "IDLE_SECONDS", 60.0)  # the safety net out of reach: only a record wakes it
    handler, out, logger = _handler()
    flushes = []
    real_flush = handler.flush
    monkeypatch.setattr(handler, "flush", lambda: flushes.append(1) or real_flush())
    logger.info("first")
    assert _written(out, 1) == 1
    before = len(flushes)
    time.sleep(0.3)  # 30 of the writer's intervals, idle
    assert len(flushes) == before  # it woke to write nothing 20 times a second
    logger.info("second")
    assert _written(out, 2) == 2


def test_records_of_threads_logging_at_once_are_all_written_without_the_safety_net(monkeypatch) -> None:
    """Each record either finds the writer awake or wakes it: none is left for the next record (or
    the safety net, out of reach here) however emit and the writer interleave."""
    monkeypatch.setattr(logs, "IDLE_SECONDS", 60.0)
    _, out, logger = _handler()
    per_thread, threads, written = 40, 4, 0

    def log_some(n: int) -> None:
        rng = random.Random(n)
        for i in range(per_thread):
            logger.info("t%d line %d", n, i)
            if rng.random() < 0.1:
                time.sleep(rng.random() * 0.02)  # now and then the writer drains the deque and sleeps

    for burst in range(15):  # each burst ends with the writer going idle: its last records are at stake
        workers = [threading.Thread(target=log_some, args=(burst * threads + n,)) for n in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        written += per_thread * threads
        assert _written(out, written, seconds=3.0) == written, f"burst {burst}"
