"""The HTTP server of ``gstack serve``: request threads are reused, and a request held open (a
console's WebSocket) never keeps the next one waiting."""

from __future__ import annotations

import threading
import time

import pytest
import requests

from gstack.serving import MAX_IDLE, PooledWSGIServer


@pytest.fixture
def served():
    release = threading.Event()
    threads: list[int] = []
    holding: list[int] = []

    def app(environ, start_response):
        if environ["PATH_INFO"] == "/hold":
            holding.append(threading.get_ident())
            release.wait(10)
        threads.append(threading.get_ident())
        body = str(len(threads)).encode()
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
        return [body]

    server = PooledWSGIServer("127.0.0.1", 0, app)
    loop = threading.Thread(target=server.serve_forever, daemon=True)
    loop.start()
    yield f"http://127.0.0.1:{server.server_port}", threads, release, holding
    release.set()
    server.shutdown()
    server.server_close()


def test_sequential_requests_reuse_threads(served):
    base, threads, _, _ = served
    for _ in range(40):
        assert requests.get(base + "/").status_code == 200
    assert len(threads) == 40
    # A thread is idle again a moment after its response (werkzeug reads the client's close
    # first), so the next connection may find it still busy: a few threads take turns.
    assert len(set(threads)) <= 8  # not one per request


def test_requests_held_open_do_not_block_others(served):
    base, threads, release, holding = served
    held = [threading.Thread(target=requests.get, args=(base + "/hold",), kwargs={"timeout": 10}) for _ in range(3)]
    for t in held:
        t.start()
    wait_for(lambda: len(holding) == 3)
    # Three threads wait in /hold: the next requests get a thread of their own, at once.
    for _ in range(5):
        assert requests.get(base + "/", timeout=2).status_code == 200
    release.set()
    for t in held:
        t.join(10)
    assert len(threads) == 8
    assert len(set(holding)) == 3
    assert not set(threads[:5]) & set(holding)


def test_a_burst_leaves_at_most_max_idle_threads(served):
    base, threads, release, holding = served
    burst = MAX_IDLE + 4
    held = [threading.Thread(target=requests.get, args=(base + "/hold",), kwargs={"timeout": 10}) for _ in range(burst)]
    before = threading.active_count()
    for t in held:
        t.start()
    wait_for(lambda: len(holding) == burst)  # each on a thread of its own
    release.set()
    for t in held:
        t.join(10)
    assert len(set(threads)) == burst
    # The surplus threads exit once their connection is served.
    wait_for(lambda: threading.active_count() - before <= MAX_IDLE)


def wait_for(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)
