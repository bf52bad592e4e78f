"""Hanging GETs (gstack.metadata.waits): a wait reads the whole view only when the stamp of what it
is made of moved, or at the full look's interval, and answers as a wait of whole looks would."""

from __future__ import annotations

import threading
import time

import pytest

from gstack.metadata import waits
from gstack.metadata.render import Answer


class Source:
    """A value with a stamp, counting the whole looks taken."""

    def __init__(self) -> None:
        self.value, self.stamped, self.looks = "a", 0, 0

    def look(self) -> Answer:
        self.looks += 1
        return Answer(self.value, "text/plain")

    def stamp(self) -> object:
        return self.stamped

    def change(self, value: str, *, stamped: bool = True) -> None:
        self.value = value
        if stamped:
            self.stamped += 1


@pytest.fixture(autouse=True)
def fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(waits, "LOOK_INTERVAL", 0.01)
    monkeypatch.setattr(waits, "FULL_LOOK_INTERVAL", 0.5)


def _wait_in_thread(source: Source, timeout: float, last_etag: str | None = None) -> dict:
    out: dict = {}

    def wait() -> None:
        started = time.monotonic()
        out["answer"] = waits.wait_for_change(source.look, last_etag, timeout, threading.Event(), stamp=source.stamp)
        out["seconds"] = time.monotonic() - started

    out["thread"] = threading.Thread(target=wait)
    out["thread"].start()
    return out


def test_a_quiet_wait_reads_the_stamp_not_the_view():
    source = Source()
    answer = waits.wait_for_change(source.look, None, 0.3, threading.Event(), stamp=source.stamp)
    assert answer.body == "a"
    assert source.looks == 2  # the first look and the one at the deadline; ~30 stamps between


def test_a_stamped_change_wakes_the_wait_at_once():
    source = Source()
    out = _wait_in_thread(source, timeout=5)
    time.sleep(0.1)
    source.change("b")
    out["thread"].join(5)
    assert out["answer"].body == "b" and out["seconds"] < 0.4  # well before the full look


def test_a_change_the_stamp_misses_is_seen_at_the_full_look():
    source = Source()
    out = _wait_in_thread(source, timeout=5)
    time.sleep(0.1)
    source.change("b", stamped=False)
    out["thread"].join(5)
    assert out["answer"].body == "b" and 0.45 < out["seconds"] < 2


def test_a_stamp_moved_by_another_subtree_keeps_waiting():
    source = Source()
    out = _wait_in_thread(source, timeout=0.3)
    time.sleep(0.1)
    source.stamped += 1  # something else of the view changed: a look, the same answer
    out["thread"].join(5)
    assert out["answer"].body == "a" and out["seconds"] >= 0.3 and source.looks == 3


def test_an_old_etag_answers_at_once():
    source = Source()
    answer = waits.wait_for_change(source.look, "0123456789abcdef", 5, threading.Event(), stamp=source.stamp)
    assert answer.body == "a" and source.looks == 1
