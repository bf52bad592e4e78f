"""The chaos suite (issue 16): what an adversarial run does to the server, as tests.

Every module here marks its tests ``chaos`` (``pytest -m chaos`` runs the suite alone). The test
command runs a bounded version (a few hundred requests, small bursts) inside the CPU budget of the
whole suite; ``GSTACK_CHAOS_LONG=1`` scales each test up to the size of the adversarial run that
found the defects (thousands of fuzzed requests, 220-operation bursts). :func:`scaled` is the one
switch.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import pytest
import requests

from tests.conftest import Server, running_server

LONG = os.environ.get("GSTACK_CHAOS_LONG", "") not in ("", "0")


def scaled(bounded: int, long: int) -> int:
    """``long`` when GSTACK_CHAOS_LONG is set, else ``bounded``."""
    return long if LONG else bounded


@pytest.fixture(scope="package")
def chaos_server() -> Iterator[Server]:
    """A SQLite server of the suite's own: it trusts 127.0.0.1 as a reverse proxy (so a test speaks
    from many addresses through X-Forwarded-For) and refuses API credentials after a few failures,
    so the attack tests reach the limits in a handful of requests."""
    with running_server("sqlite", GSTACK_TRUSTED_PROXIES="127.0.0.1", GSTACK_AUTH_API_LIMIT="5",
                        GSTACK_AUTH_TOKEN_LIMIT="5") as srv:
        yield srv


def assert_google_error(resp: requests.Response, status: int | None = None) -> dict:
    """The response is an error in Google's envelope (``error.code`` equal to the HTTP status, a
    message, and ``errors[]`` each with a reason); its ``error`` object."""
    where = f"{resp.request.method} {resp.url[:200]} -> {resp.status_code}: {resp.text[:300]!r}"
    assert resp.headers.get("Content-Type", "").startswith("application/json"), where
    return check_envelope(resp.status_code, resp.content, where, status)


def check_envelope(code: int, body: bytes, where: str, status: int | None = None) -> dict:
    """:func:`assert_google_error` of a status and a body (a batch part's, say)."""
    if status is not None:
        assert code == status, where
    assert code >= 400, where
    try:
        error = json.loads(body)["error"]
    except (ValueError, KeyError, TypeError) as exc:
        raise AssertionError(f"not Google's envelope: {where}") from exc
    assert error["code"] == code and isinstance(error["message"], str) and error["message"], where
    assert error["errors"] and all(isinstance(e.get("reason"), str) and e["reason"] for e in error["errors"]), where
    return error
