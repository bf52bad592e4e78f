"""``POST /batch/compute/v1``: multipart/mixed batches, as gcloud and googleapiclient send them.

Each part is an embedded HTTP request. It runs through the whole application (auth, routing,
errors), with the outer request's Authorization when the part carries none (gcloud's parts
never do), and its response comes back as an ``application/http`` part whose Content-ID is
``response-`` + the request part's id.
"""

from __future__ import annotations

import secrets
from email.parser import BytesParser
from email.policy import HTTP
from http import HTTPStatus

from flask import Flask, Response, request
from werkzeug.http import parse_options_header
from werkzeug.test import EnvironBuilder, run_wsgi_app

from core.errors import Invalid

MAX_PARTS = 1000


def _parse_part(payload: bytes) -> tuple[str, str, dict[str, str], bytes]:
    head, _, body = payload.replace(b"\r\n", b"\n").partition(b"\n\n")
    # A bare CR left in a line becomes a space, as RFC 9112 (section 2.2) lets a recipient do: in a
    # header it would make werkzeug refuse the part's environ (a 500).
    lines = head.decode("latin-1").replace("\r", " ").split("\n")
    try:
        method, target, version = lines[0].split(" ", 2)
    except ValueError:
        method = target = version = ""
    if not version.startswith("HTTP/") or not target.startswith(("/", "http://", "https://")) or not method.isalpha():
        raise Invalid("batch", lines[0], "Each part must hold an HTTP request line.")
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip()] = v.strip()
    return method.upper(), target, headers, body


def _run(app: Flask, method: str, target: str, headers: dict[str, str], body: bytes) -> tuple[str, list, bytes]:
    if "://" in target:
        target = "/" + target.split("://", 1)[1].split("/", 1)[1]
    path, _, query = target.partition("?")
    if "Authorization" not in headers and "authorization" not in headers and request.headers.get("Authorization"):
        headers["Authorization"] = request.headers["Authorization"]
    # The part comes from the batch's caller: its address (after gstack.proxies) for the rate limits.
    env = EnvironBuilder(path=path, query_string=query, method=method, headers=list(headers.items()), data=body or None,
                         base_url=request.host_url,
                         environ_overrides={"REMOTE_ADDR": request.remote_addr or ""}).get_environ()
    app_iter, status, resp_headers = run_wsgi_app(app.wsgi_app, env, buffered=True)
    return status, list(resp_headers.items()), b"".join(app_iter)


def handle(app: Flask) -> Response:
    ctype = request.headers.get("Content-Type", "")
    if not ctype.startswith("multipart/mixed"):
        raise Invalid("Content-Type", ctype, "A batch request must be multipart/mixed.")
    data = request.get_data()
    boundary = parse_options_header(ctype)[1].get("boundary", "")
    # Count the parts before parsing them: parsing 20,000 takes seconds, counting delimiters milliseconds.
    counted = data.count(b"--" + boundary.encode("latin-1")) - 1 if boundary else 0
    if counted > MAX_PARTS:
        raise Invalid("batch", counted, f"A batch may hold at most {MAX_PARTS} requests.")
    message = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + data)
    if not message.is_multipart():
        raise Invalid("batch", "", "The batch request has no parts.")
    parts = list(message.iter_parts())
    if len(parts) > MAX_PARTS:
        raise Invalid("batch", len(parts), f"A batch may hold at most {MAX_PARTS} requests.")
    boundary = "batch_" + secrets.token_hex(12)
    out = []
    for part in parts:
        content_id = (part.get("Content-ID") or "").strip().strip("<>")
        payload = part.get_payload(decode=True)
        status, headers, body = _run(app, *_parse_part(payload if isinstance(payload, bytes) else b""))
        code = int(status.split(" ", 1)[0])
        lines = [f"--{boundary}", "Content-Type: application/http", f"Content-ID: <response-{content_id}>", "",
                 f"HTTP/1.1 {code} {HTTPStatus(code).phrase}"]
        lines += [f"{k}: {v}" for k, v in headers if k.lower() not in ("content-length",)]
        lines += [f"Content-Length: {len(body)}", ""]
        out.append("\r\n".join(lines).encode() + b"\r\n" + body + b"\r\n")
    data = b"".join(out) + f"--{boundary}--\r\n".encode()
    return Response(data, content_type=f"multipart/mixed; boundary={boundary}")
