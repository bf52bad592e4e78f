"""The HTTP server of ``gstack serve``: werkzeug's threaded server, its connections kept alive and
its request threads reused.

werkzeug answers one request per connection and closes it (``Connection: close``: http.server cannot
tell where an unread request body ends), so every request paid a TCP connection, the hand-over of
the socket to a thread and, after the response, werkzeug's wait for the client's close; over TLS
(``--tls``, the intercepting proxy's tunnels) a handshake too. Google's clients (httplib2,
requests, Node's gaxios) keep their connections for the next request. Here a connection stays open
as HTTP/1.1 says it may: the request body is read through a stream that knows its length, what the
application left unread is drained (up to :data:`DRAIN_MAX`, else the connection closes), and an
idle connection waits :data:`KEEP_ALIVE_IDLE` seconds for its next request.

A request that runs on a fresh thread costs ~0.5 ms more than the same request on a thread that
has run one before (measured on instances.insert: 2.5 ms against 2.0 ms in-process; the Python
calls are the same, the new thread's interpreter state and caches are cold). Threads here wait for
the next connection instead of exiting; one more starts only when none is idle, so a console's
long-lived WebSocket never holds up other requests.
"""

from __future__ import annotations

import contextlib
import http.client
import io
import logging
import queue
import re
import selectors
import socket
import ssl
import threading
import typing
from typing import Any

import orjson
from werkzeug.exceptions import InternalServerError
from werkzeug.serving import ThreadedWSGIServer, WSGIRequestHandler, connection_dropped_errors
from werkzeug.wsgi import LimitedStream

from gstack.gce.errors import envelope

# What socketserver hands over for a connection: the socket (a datagram server's is a pair), the peer address.
_Request = socket.socket | tuple[bytes, socket.socket]

_WERKZEUG_LOG = logging.getLogger("werkzeug")

MAX_IDLE = 16  # threads kept waiting beyond this exit: a burst's threads do not stay forever
KEEP_ALIVE_IDLE = 60.0  # seconds an open connection waits for its next request (nginx: 75, gunicorn's gthread: 2)
# Connections kept waiting for a next request, each holding a thread: past this, answers close theirs
# (a client that opens connections without end would otherwise make a thread of each).
MAX_KEPT = 256
DRAIN_MAX = 1 << 20  # bytes of a request body the application left unread that are read to keep the connection
MAX_LINE = 65536  # bytes of a header line (http.client's limit)
MAX_HEADERS = 100  # header lines of a request (http.client's limit)
# The start of a header line: a name (visible ASCII but the colon) and its colon, as the email
# package's parser tells one (email.feedparser.headerRE, without its mbox "From " line).
_HEADER_NAME = re.compile(r"[\x21-\x39\x3b-\x7e]+:")


# What the HTTP layer itself refuses, before any request reaches the application (http.server's limits:
# a request line over 64 KiB, a header line over 64 KiB or more than 100 headers), in Google's words.
SERVER_ERRORS = {
    414: "The requested URL is too long.",
    431: "Request header fields are too large.",
    400: "The request could not be parsed.",
}


class RequestHandler(WSGIRequestHandler):
    """werkzeug's handler with HTTP/1.1 keep-alive (see the module's docstring), whose own error answers
    (the ones http.server sends before the application runs: 414, 431, a garbled request line) are
    Google's JSON envelope instead of an HTML page."""

    protocol_version = "HTTP/1.1"  # responses without a length are chunked
    # A response's chunks go out as written (TCP_NODELAY): a kept connection's next send would
    # otherwise wait for the client's delayed ACK of the previous one (through the proxy's TLS,
    # whose records are small and separate, 15 ms a request instead of 3.5 ms).
    disable_nagle_algorithm = True
    _served = False  # a request of this connection was answered: the next one may take its time
    server: PooledWSGIServer

    def handle_one_request(self) -> None:
        if self._served and not self._next_request():
            self.close_connection = True
            return
        self._served = True
        super().handle_one_request()

    def _next_request(self) -> bool:
        """Wait at most :data:`KEEP_ALIVE_IDLE` for the first byte of the connection's next request
        (it may be buffered already): False when the client closed or went quiet."""
        server = self.server
        server.kept(1)
        try:
            self.connection.settimeout(KEEP_ALIVE_IDLE)
            return bool(typing.cast(io.BufferedReader, self.rfile).peek(1))
        except (OSError, ValueError):  # a timeout, a reset, a TLS close
            return False
        finally:
            server.kept(-1)
            with contextlib.suppress(OSError):
                self.connection.settimeout(None)

    def parse_request(self) -> bool:
        """http.server's ``parse_request`` (its checks of the request line and their answers, its
        handling of ``Connection`` and ``Expect``), with the header block read by :func:`read_headers`
        instead of by the email package: ~45 us of a ~350 us instances.get, on every request. A
        header line that is no header is a 400; http.server's parser took it, and every header after
        it, for the start of the body, and went on without them."""
        self.command = None  # type: ignore[assignment]  # http.server's "none yet", for an error on the request line
        self.request_version = self.default_request_version
        self.close_connection = True
        self.requestline = str(self.raw_requestline, "iso-8859-1").rstrip("\r\n")
        words = self.requestline.split()
        if not words:
            return False
        if len(words) >= 3:  # enough to know the version
            number = _http_version(words[-1])
            if number is None:
                self.send_error(400, f"Bad request version ({words[-1]!r})")
                return False
            if number >= (2, 0):
                self.send_error(505, f"Invalid HTTP version ({words[-1][5:]})")
                return False
            self.close_connection = number < (1, 1)
            self.request_version = words[-1]
        if not 2 <= len(words) <= 3:
            self.send_error(400, f"Bad request syntax ({self.requestline!r})")
            return False
        self.command, path = words[:2]
        if len(words) == 2:  # HTTP/0.9
            self.close_connection = True
            if self.command != "GET":
                self.send_error(400, f"Bad HTTP/0.9 request type ({self.command!r})")
                return False
        # //path would read as a host to clients a redirect sends there (gh-87389)
        self.path = "/" + path.lstrip("/") if path.startswith("//") else path
        try:
            self.headers = read_headers(typing.cast(io.BufferedReader, self.rfile))
        except http.client.LineTooLong as exc:
            self.send_error(431, "Line too long", str(exc))
            return False
        except http.client.HTTPException as exc:
            self.send_error(431, "Too many headers", str(exc))
            return False
        except ValueError as exc:
            self.send_error(400, "Bad header", str(exc))
            return False
        connection = self.headers.get("Connection", "").lower()
        if connection == "close":
            self.close_connection = True
        elif connection == "keep-alive":
            self.close_connection = False
        expect = self.headers.get("Expect", "").lower() == "100-continue" and self.request_version >= "HTTP/1.1"
        return not expect or self.handle_expect_100()

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """werkzeug's line for the request, unless its logger is turned down (``gstack serve`` logs
        every request itself, gstack.http): werkzeug formats the line, its path and its timestamp
        before the logger drops it, ~20 us a request. Left alone (no level set), werkzeug logs."""
        if _WERKZEUG_LOG.level == logging.NOTSET or _WERKZEUG_LOG.isEnabledFor(logging.INFO):
            super().log_request(code, size)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        text = SERVER_ERRORS.get(code) or message or self.responses.get(code, ("Error",))[0]
        self.log_error("code %d, message %s", code, message or text)
        body = orjson.dumps(envelope(code, "badRequest", text), option=orjson.OPT_INDENT_2)
        self.send_response(code, message)
        self.send_header("Connection", "close")
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def run_wsgi(self) -> None:
        """werkzeug's ``run_wsgi`` (its response writing, its 500 for an application that raised
        before answering), keeping the connection when the request body can be read to its end:
        ``wsgi.input`` stops at the body's length (``wsgi.input_terminated``; werkzeug's own
        chunked reader for a chunked body), and what the application left is drained afterwards.
        (An ``Expect: 100-continue`` was answered by http.server's ``parse_request`` already; werkzeug
        answered it a second time.)"""
        self.environ = environ = self.make_environ()
        body = environ["wsgi.input"]
        if not environ.get("wsgi.input_terminated"):  # not chunked: the body is Content-Length bytes, or none
            try:
                length = int(environ.get("CONTENT_LENGTH") or 0)
            except ValueError:
                length = -1
            if length < 0 or environ.get("HTTP_TRANSFER_ENCODING"):
                # A garbled length, or a transfer coding other than chunked: nothing says where the
                # next request would start.
                self.close_connection = True
            else:
                body = environ["wsgi.input"] = LimitedStream(typing.cast(typing.IO[bytes], self.rfile), length)
                environ["wsgi.input_terminated"] = True
        if self.request_version != "HTTP/1.1" or environ.get("HTTP_UPGRADE"):
            self.close_connection = True  # an upgraded connection (a console's WebSocket) is the application's
        status_set: str | None = None
        headers_set: list[tuple[str, str]] | None = None
        status_sent: str | None = None
        chunk_response = False

        def write(data: bytes) -> None:
            nonlocal status_sent, chunk_response
            assert status_set is not None and headers_set is not None, "write() before start_response"
            if status_sent is None:
                status_sent = status_set
                code_str, _, msg = status_sent.partition(" ")
                code = int(code_str)
                self.send_response(code, msg)
                header_keys = set()
                for key, value in headers_set:
                    self.send_header(key, value)  # the application's "Connection: close" closes (http.server)
                    header_keys.add(key.lower())
                if (not ("content-length" in header_keys or environ["REQUEST_METHOD"] == "HEAD"
                         or 100 <= code < 200 or code in (204, 304))):
                    chunk_response = True
                    self.send_header("Transfer-Encoding", "chunked")
                if not self.close_connection and (not _drainable(body) or not self.server.may_keep()):
                    self.close_connection = True
                if self.close_connection and "connection" not in header_keys:
                    self.send_header("Connection", "close")
                buffered: list[bytes] = self._headers_buffer
                head = b"".join(buffered) + b"\r\n"  # end_headers(), sent with the data below
                buffered.clear()
            else:
                head = b""
            if data and chunk_response:
                data = b"%x\r\n%s\r\n" % (len(data), data)
            # One send for the head and the first data: a response in two sends on a kept connection
            # waits for the client's delayed ACK of the first (Nagle), 40 ms on Linux.
            self.wfile.write(head + data if head else data)
            self.wfile.flush()

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            nonlocal status_set, headers_set
            if exc_info:
                try:
                    if status_sent:
                        raise exc_info[1].with_traceback(exc_info[2])
                finally:
                    exc_info = None
            elif status_set:
                raise AssertionError("Headers already set")
            status_set, headers_set = status, headers
            return write

        def execute(app: Any) -> None:
            application_iter = app(environ, start_response)
            try:
                for data in application_iter:
                    write(data)
                if status_sent is None:
                    write(b"")
                if chunk_response:
                    self.wfile.write(b"0\r\n\r\n")
            finally:
                if hasattr(application_iter, "close"):
                    application_iter.close()

        try:
            execute(self.server.app)
        except connection_dropped_errors as e:
            self.close_connection = True
            self.connection_dropped(e, environ)
        except Exception as e:
            if self.server.passthrough_errors:
                raise
            self.close_connection = True
            if status_sent is None:  # nothing was sent: werkzeug's 500 can still be
                status_set = headers_set = None
                with contextlib.suppress(Exception):
                    execute(InternalServerError())
            from werkzeug.debug.tbtools import DebugTraceback

            self.server.log("error", f"Error on request:\n{DebugTraceback(e).render_traceback_text()}")
        if self.close_connection:
            self._linger()
        elif not _drain(body):
            self.close_connection = True

    def _linger(self) -> None:
        """Before closing, read what the client still sends of its request for as long as it keeps
        sending (werkzeug's way: 10 ms at a time, up to 10 GB): closed with unread data, the
        connection would be reset and the client see that instead of the answer (a 413, say)."""
        with selectors.DefaultSelector() as selector:
            total, reads = 0, 0
            try:  # (an upgraded connection's socket may be closed already)
                selector.register(self.connection, selectors.EVENT_READ)
                while total < 10_000_000_000 and reads <= 1000 and selector.select(timeout=0.01):
                    data = typing.cast(io.BufferedReader, self.rfile).read1(10_000_000)
                    if not data:
                        return
                    total, reads = total + len(data), reads + 1
            except (OSError, ValueError):
                return


def _http_version(word: str) -> tuple[int, int] | None:
    """``HTTP/1.1``'s (1, 1); None for what is no version (RFC 2145: one dot, digits, leading zeros ignored)."""
    if not word.startswith("HTTP/"):
        return None
    parts = word[5:].split(".")
    if len(parts) != 2 or not all(p.isdigit() and len(p) <= 10 for p in parts):
        return None
    return int(parts[0]), int(parts[1])


def read_headers(rfile: io.BufferedReader) -> http.client.HTTPMessage:
    """A request's header block, read up to its empty line, as ``http.client.parse_headers`` gives it
    (an ``HTTPMessage``: names looked up in any case, repeated names kept in order, each name as
    sent, its value without leading blanks or the line's end, a continuation line appended to the
    value before it), without the email package's parser, which costs ~10 times as much. Its
    limits: :data:`MAX_LINE` (``LineTooLong``), :data:`MAX_HEADERS` (``HTTPException``); a line
    that is neither a header nor a continuation of one is a ``ValueError``."""
    fields: list[list[str]] = []
    count = 0
    while True:
        line = rfile.readline(MAX_LINE + 1)
        if len(line) > MAX_LINE:
            raise http.client.LineTooLong("header line")
        count += 1
        if count > MAX_HEADERS:
            raise http.client.HTTPException(f"got more than {MAX_HEADERS} headers")
        if line in (b"\r\n", b"\n", b""):
            break
        text = line.decode("iso-8859-1")
        if text[0] in " \t" and fields:
            fields[-1].append(text)  # obs-fold: the email parser keeps it, line end and all
        elif _HEADER_NAME.match(text):
            fields.append([text])
        else:
            raise ValueError(f"not a header line: {text.rstrip()[:64]!r}")
    message = http.client.HTTPMessage()
    for first, *more in fields:
        name, _, value = first.partition(":")
        message[name] = (value.lstrip(" \t") + "".join(more)).rstrip("\r\n")
    return message


def _drainable(body: Any) -> bool:
    """Whether what is left of a request body can be read to keep its connection: a known length of
    at most :data:`DRAIN_MAX` (a chunked body only once read to its end)."""
    if isinstance(body, LimitedStream):
        return body.limit - body.tell() <= DRAIN_MAX
    return bool(getattr(body, "_done", False))


def _drain(body: Any) -> bool:
    """Read what the application left of the request body, so that the next request starts where
    it ends: False when the client went away. Called only for a connection kept when its answer
    began, so the body was :func:`_drainable` then, and still is (what is left only shrinks)."""
    if isinstance(body, LimitedStream) and not body.is_exhausted:
        try:
            body.exhaust()
        except Exception:  # werkzeug's ClientDisconnected, a reset
            return False
        return body.is_exhausted
    return True


class PooledWSGIServer(ThreadedWSGIServer):
    def __init__(self, host: str, port: int, app, ssl_context: ssl.SSLContext | None = None,
                 handler: type[RequestHandler] = RequestHandler) -> None:
        super().__init__(host, port, app, handler=handler)
        if ssl_context is not None:
            # Not werkzeug's ssl_context argument: that one shakes hands inside accept(), on the one
            # thread that accepts every connection, so a client that connects and says nothing would
            # stop the server. Here the handshake is the first read, on the connection's own thread.
            self.socket = ssl_context.wrap_socket(self.socket, server_side=True, do_handshake_on_connect=False)
            self.ssl_context = ssl_context  # werkzeug's handler reads it: wsgi.url_scheme is https
        self._connections: queue.SimpleQueue[tuple[_Request, Any]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0
        self._kept = 0  # connections waiting for their next request

    def kept(self, change: int) -> None:
        with self._lock:
            self._kept += change

    def may_keep(self) -> bool:
        """Whether one more connection may wait for its next request (:data:`MAX_KEPT`)."""
        return self._kept < MAX_KEPT

    def process_request(self, request: _Request, client_address: Any) -> None:
        """Hand the connection to an idle thread, or to a new one when every thread is busy."""
        with self._lock:
            start = self._idle == 0
            if not start:
                self._idle -= 1  # that thread is this connection's
        if start:
            threading.Thread(target=self._serve_connections, name="http", daemon=True).start()
        self._connections.put((request, client_address))

    def _serve_connections(self) -> None:
        while True:
            request, client_address = self._connections.get()
            self.process_request_thread(request, client_address)
            with self._lock:
                if self._idle >= MAX_IDLE:
                    return
                self._idle += 1
