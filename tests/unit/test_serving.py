"""The HTTP server of ``gstack serve``: request threads are reused, a request held open (a console's
WebSocket) never keeps the next one waiting, and a connection serves request after request
(HTTP/1.1 keep-alive) whatever the application read of each body."""

from __future__ import annotations

import http.client
import io
import json
import logging
import socket
import threading
import time

import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st

from gstack import serving
from gstack.serving import DRAIN_MAX, MAX_HEADERS, MAX_IDLE, PooledWSGIServer, read_headers


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


# Keep-alive: a connection serves request after request, whatever the application read of each body.

@pytest.fixture
def kept():
    """A server whose application reads the body only on /read, raises on /raise, and answers each
    request with the id of its connection (the thread serving it) and the body it read."""
    seen: list[tuple[int, bytes]] = []

    def app(environ, start_response):
        if environ["PATH_INFO"] == "/raise":
            raise RuntimeError("boom")
        if environ["PATH_INFO"] == "/environ":  # what the application sees of the request
            body = json.dumps({k: v for k, v in environ.items() if k.startswith("HTTP_") or k in (
                "PATH_INFO", "CONTENT_TYPE", "CONTENT_LENGTH")}).encode()
            start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
            return [body]
        data = environ["wsgi.input"].read() if environ["PATH_INFO"] == "/read" else b""
        seen.append((threading.get_ident(), data))
        body = b"%d %s" % (threading.get_ident(), data)
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
        return [body]

    server = PooledWSGIServer("127.0.0.1", 0, app)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server, seen
    server.shutdown()
    server.server_close()


def _exchange(conn: http.client.HTTPConnection, method: str, path: str, body: bytes | None = None,
              headers: dict | None = None) -> tuple[http.client.HTTPResponse, bytes]:
    headers = headers or {}
    conn.request(method, path, body=body, headers=headers, encode_chunked="Transfer-Encoding" in headers)
    response = conn.getresponse()
    return response, response.read()


def test_one_connection_serves_many_requests(kept):
    server, seen = kept
    port = server.server_port
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    answers = [_exchange(conn, "GET", "/")[1] for _ in range(3)]
    answers.append(_exchange(conn, "POST", "/read", b'{"name": "vm-1"}')[1])
    sock = conn.sock
    response, data = _exchange(conn, "GET", "/")
    assert conn.sock is sock  # http.client reconnects (a new socket) when the server closed
    assert response.getheader("Connection") is None
    assert len({a.split()[0] for a in [*answers, data]}) == 1  # one thread: one connection
    assert answers[3].endswith(b'{"name": "vm-1"}')
    conn.close()


def test_a_body_left_unread_is_drained_before_the_next_request(kept):
    server, seen = kept
    port = server.server_port
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    _exchange(conn, "POST", "/ignore", b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n" * 100)
    sock = conn.sock
    response, data = _exchange(conn, "POST", "/read", b"next")
    assert conn.sock is sock and response.status == 200 and data.endswith(b" next")
    assert [body for _, body in seen] == [b"", b"next"]  # no request was read from the first body
    conn.close()


def test_a_chunked_body_keeps_the_connection_once_read(kept):
    server, seen = kept
    port = server.server_port
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    response, data = _exchange(conn, "POST", "/read", iter([b"ab", b"cd"]), {"Transfer-Encoding": "chunked"})
    assert data.endswith(b" abcd") and response.getheader("Connection") is None
    # Left unread, a chunked body has no known end short of reading it: the connection closes.
    response, _ = _exchange(conn, "POST", "/ignore", iter([b"ab"]), {"Transfer-Encoding": "chunked"})
    assert response.getheader("Connection") == "close"
    assert conn.sock is None  # http.client closed it, as the answer said
    assert _exchange(conn, "GET", "/")[0].status == 200  # on a new connection
    conn.close()


def test_a_large_unread_body_closes_the_connection(kept):
    port = kept[0].server_port
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    response, _ = _exchange(conn, "POST", "/ignore", b"x" * (DRAIN_MAX + 1))
    assert response.getheader("Connection") == "close"
    conn.close()


@pytest.mark.parametrize("version, headers", [("HTTP/1.0", ""), ("HTTP/1.1", "Connection: close\r\n")])
def test_a_client_that_asks_for_a_close_gets_one(kept, version, headers):
    port = kept[0].server_port
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(f"GET / {version}\r\nHost: x\r\n{headers}\r\n".encode())
        answer = _read_until_closed(sock)
    assert answer.startswith(f"{version.replace('1.0', '1.1')} 200".encode())
    assert b"\r\nConnection: close\r\n" in answer


@pytest.mark.parametrize("framing", ["Content-Length: -3", "Content-Length: 3x", "Transfer-Encoding: gzip"])
def test_a_body_of_unknown_extent_closes_the_connection(kept, framing):
    port = kept[0].server_port
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(f"POST / HTTP/1.1\r\nHost: x\r\n{framing}\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        answer = _read_until_closed(sock)
    # one answer: what followed the headers was not read as a request
    assert answer.count(b"HTTP/1.1 ") == 1 and b"\r\nConnection: close\r\n" in answer


def test_expect_100_continue_is_answered_once(kept):
    port = kept[0].server_port
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"POST /read HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
        assert sock.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"  # before the body is sent
        sock.sendall(b"body")
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        answer = _read_until_closed(sock)
    assert answer.count(b"HTTP/1.1 ") == 2 and b"100 Continue" not in answer and b" body" in answer


def test_an_application_error_answers_500_and_closes(kept):
    port = kept[0].server_port
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"GET /raise HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = _read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 500") and answer.count(b"HTTP/1.1 ") == 1


def test_requests_sent_back_to_back_are_answered_in_order(kept):
    port = kept[0].server_port
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"POST /read HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\none"
                     b"POST /read HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nConnection: close\r\n\r\ntwo")
        answer = _read_until_closed(sock)
    assert answer.count(b"HTTP/1.1 200") == 2
    assert answer.index(b" one") < answer.index(b" two")


def test_an_idle_connection_is_closed_and_its_thread_freed(kept, monkeypatch):
    server, seen = kept
    port = server.server_port
    monkeypatch.setattr(serving, "KEEP_ALIVE_IDLE", 0.2)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = _read_until_closed(sock)  # the server closes once the connection has been idle 0.2 s
    assert answer.startswith(b"HTTP/1.1 200") and b"Connection: close" not in answer
    # The thread went back to the pool: the next connection is served by it.
    wait_for(lambda: server._idle == 1)
    assert requests.get(f"http://127.0.0.1:{port}/", timeout=5).text.split()[0] == str(seen[0][0])


def test_past_max_kept_connections_answers_close_theirs(kept, monkeypatch):
    server, _ = kept
    monkeypatch.setattr(serving, "MAX_KEPT", 1)
    first = http.client.HTTPConnection("127.0.0.1", server.server_port, timeout=5)
    assert _exchange(first, "GET", "/")[0].getheader("Connection") is None
    wait_for(lambda: server._kept == 1)  # the first waits for its next request
    second = http.client.HTTPConnection("127.0.0.1", server.server_port, timeout=5)
    assert _exchange(second, "GET", "/")[0].getheader("Connection") == "close"
    assert second.sock is None
    first.close()  # its thread stops waiting: the next connection is kept again
    wait_for(lambda: server._kept == 0)
    assert _exchange(second, "GET", "/")[0].getheader("Connection") is None
    second.close()


@pytest.mark.parametrize("level", [logging.NOTSET, logging.INFO])
def test_werkzeug_logs_each_request_unless_turned_down(kept, caplog, level):
    logger = logging.getLogger("werkzeug")
    before = logger.level
    logger.setLevel(level)  # NOTSET: as an app that never configured it (werkzeug then logs at INFO)
    try:
        with caplog.at_level(logging.INFO):
            conn = http.client.HTTPConnection("127.0.0.1", kept[0].server_port, timeout=5)
            _exchange(conn, "GET", "/logged")
            conn.close()
            wait_for(lambda: any("GET /logged HTTP/1.1" in r.getMessage() for r in caplog.records))
    finally:
        logger.setLevel(before)


# Header blocks as clients send them, and as some should not: names in any case, repeated, values
# with blanks and Latin-1 bytes, empty values, lines ending in a bare LF, continuation lines.
_NAME = st.text(alphabet=st.sampled_from("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"),
                min_size=1, max_size=20)
_VALUE = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"),
                 max_size=40)
_FOLD = st.tuples(st.sampled_from([" ", "\t", "  "]), _VALUE.filter(lambda v: v.strip()))
_LINE = st.tuples(_NAME, st.sampled_from(["", " ", "  ", "\t"]), _VALUE, st.lists(_FOLD, max_size=2),
                  st.sampled_from(["\r\n", "\n"]))


def _block(lines: list[tuple[str, str, str, list[tuple[str, str]], str]]) -> bytes:
    text = "".join(f"{name}:{blank}{value}" + "".join(f"{eol}{lead}{more}" for lead, more in folds) + eol
                   for name, blank, value, folds, eol in lines)
    return (text + "\r\n").encode("latin-1")


@settings(max_examples=300, deadline=None)
@given(st.lists(_LINE, max_size=12), st.binary(max_size=20))
def test_headers_are_read_as_http_client_reads_them(lines, body):
    """read_headers against http.client.parse_headers (the email package), which http.server used:
    the same names, values and order, the same lookups in any case, and the body left unread."""
    block = _block(lines)
    ours, theirs = io.BufferedReader(io.BytesIO(block + body)), io.BytesIO(block + body)
    got, want = read_headers(ours), http.client.parse_headers(theirs)
    assert got.items() == want.items()
    for name, _, _, _, _ in lines:
        assert got.get_all(name.upper()) == want.get_all(name.upper())
    assert ours.read() == theirs.read() == body


@pytest.mark.parametrize("request_head, status", [
    (b"GET / HTTP/1.1\r\nHost: x\r\nno colon here\r\nX-After: 1\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\n folded first\r\nHost: x\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost : x\r\n\r\n", 400),  # a blank before the colon (RFC 9112: 400)
    (b"GET / HTTP/1.1\r\n" + b"X-Many: 1\r\n" * MAX_HEADERS + b"\r\n", 431),
    (b"GET / HTTP/1.1\r\nX-Long: " + b"x" * 70_000 + b"\r\n\r\n", 431),
    (b"GET / HTTP/1.x\r\n\r\n", 400),
    (b"GET / HTTP/2.0\r\n\r\n", 505),
    (b"GET / HTTP/1.1 extra\r\n\r\n", 400),
    (b"POST /\r\n\r\n", 400),  # HTTP/0.9 knew GET alone
])
def test_a_request_head_that_is_not_http_is_refused(kept, request_head, status):
    """Refused with Google's JSON error before the application runs, the connection closed. A
    line that is not a header was read by http.server's parser as the start of the body: the
    headers after it were dropped and the request went on without them."""
    with socket.create_connection(("127.0.0.1", kept[0].server_port), timeout=5) as sock:
        sock.sendall(request_head)
        answer = _read_until_closed(sock)
    if b"HTTP/1.1" in request_head.split(b"\r\n")[0][-8:]:
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 %d " % status) and b"\r\nConnection: close" in head
    else:  # no version read from the request line: answered as HTTP/0.9 (no status line), as http.server does
        body = answer
    assert json.loads(body)["error"]["code"] == status
    assert kept[1] == []  # the application saw nothing


def test_the_application_sees_the_headers_as_sent(kept):
    """Through the server: repeated names joined, a folded value unfolded, a //path reduced (gh-87389)."""
    with socket.create_connection(("127.0.0.1", kept[0].server_port), timeout=5) as sock:
        sock.sendall(b"GET //environ HTTP/1.1\r\nHost: x\r\nX-Twice: a\r\nx-twice: b\r\n"
                     b"X-Folded: one\r\n  two\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n")
        answer = _read_until_closed(sock)
    seen = json.loads(answer.partition(b"\r\n\r\n")[2])
    assert seen["PATH_INFO"] == "/environ" and seen["HTTP_X_TWICE"] == "a,b"
    assert seen["HTTP_X_FOLDED"] == "one  two" and seen["CONTENT_TYPE"] == "text/plain"


def _read_until_closed(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)
