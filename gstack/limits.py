"""Request-size limits, enforced before a body is read.

Every request body is refused with 413 in Google's envelope when its ``Content-Length`` exceeds the
limit (nothing of it is read), and a body of unknown length (chunked) is read through a stream that
stops at the limit. Batches have a limit of their own for the whole body (they carry up to 1,000
calls); each of their parts then meets the request limit again as it runs. GCE's own front end refuses
request bodies of a few megabytes, which no resource comes near.
"""

from __future__ import annotations

from typing import Any

import orjson
from werkzeug.exceptions import RequestEntityTooLarge

from gstack.gce.errors import envelope

LIMIT_KEY = "gstack.body_limit"  # where the applicable limit is left in the WSGI environ


def too_large_message(limit: int) -> str:
    return f"Request payload size exceeds the limit: {limit} bytes."


def is_batch(path: str) -> bool:
    return path == "/batch" or path.startswith("/batch/")


class CappedInput:
    """A body of unknown length (chunked), read through: one byte past ``limit`` raises 413. (werkzeug's
    LimitedStream with ``is_max`` returns the first ``limit`` bytes of a ``read()`` without a word.)"""

    def __init__(self, stream: Any, limit: int):
        self.stream = stream
        self.limit = limit
        self.count = 0

    def _took(self, data: bytes) -> bytes:
        self.count += len(data)
        if self.count > self.limit:
            raise RequestEntityTooLarge()
        return data

    def read(self, size: int | None = -1) -> bytes:
        room = self.limit + 1 - self.count
        if size is not None and size >= 0:
            return self._took(self.stream.read(min(size, room))) if room > 0 and size else b""
        chunks = []
        while room > 0:
            chunk = self.stream.read(min(room, 65536))
            if not chunk:
                break
            chunks.append(chunk)
            room -= len(chunk)
        return self._took(b"".join(chunks))

    def readline(self, size: int | None = -1) -> bytes:
        room = self.limit + 1 - self.count
        if room <= 0:
            return b""
        return self._took(self.stream.readline(room if size is None or size < 0 else min(size, room)))


class BodyLimit:
    """WSGI middleware: the outermost layer, so nothing in front of it reads a body unchecked."""

    def __init__(self, wsgi_app, request_limit: int, batch_limit: int):
        self.wsgi_app = wsgi_app
        self.request_limit = request_limit
        self.batch_limit = batch_limit

    def __call__(self, environ, start_response):
        limit = self.batch_limit if is_batch(environ.get("PATH_INFO", "")) else self.request_limit
        environ[LIMIT_KEY] = limit
        try:
            length = int(environ.get("CONTENT_LENGTH") or -1)
        except ValueError:
            length = -1
        if length > limit:
            body = orjson.dumps(envelope(413, "badRequest", too_large_message(limit)), option=orjson.OPT_INDENT_2)
            start_response("413 Request Entity Too Large", [
                ("Content-Type", "application/json; charset=UTF-8"), ("Content-Length", str(len(body))),
                ("Vary", "Origin, X-Origin, Referer"), ("Connection", "close")])
            return [body]
        if length < 0 and environ.get("wsgi.input_terminated"):  # chunked: stop reading past the limit
            environ["wsgi.input"] = CappedInput(environ["wsgi.input"], limit)
        return self.wsgi_app(environ, start_response)
