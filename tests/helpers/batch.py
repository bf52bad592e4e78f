"""Reading a multipart/mixed batch response into its parts."""

from __future__ import annotations

from email.parser import BytesParser
from email.policy import HTTP

import requests


def parse_multipart(r: requests.Response) -> list[tuple[str, int, dict, bytes]]:
    """(Content-ID, status, headers, body) of every part of a multipart/mixed response."""
    ctype = r.headers["Content-Type"]
    assert ctype.startswith("multipart/mixed; boundary="), ctype
    msg = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + r.content)
    out = []
    for part in msg.iter_parts():
        assert part.get_content_type() == "application/http"
        payload = part.get_payload(decode=True)
        head, _, body = payload.partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        version, code, _ = lines[0].split(" ", 2)
        assert version == "HTTP/1.1"
        headers = dict(line.split(": ", 1) for line in lines[1:])
        assert int(headers["Content-Length"]) == len(body)
        out.append((part["Content-ID"], int(code), headers, body))
    return out
