"""Failure limits: password guessing on the sign-in page, failed token requests, rejected API credentials.

The limiter lives in the server process and does not touch the database, so these run once, on
SQLite, against a server of their own with small limits."""

from __future__ import annotations

import pytest
import requests

from tests.auth.conftest import make_user
from tests.conftest import PROJECT, make_server
from tests.helpers.oauth import CLOUD_PLATFORM, GCLOUD_CLIENT_ID, GCLOUD_CLIENT_SECRET, Browser, pkce


@pytest.fixture(scope="module")
def limited():
    server, cleanup = make_server("sqlite", GSTACK_AUTH_LOGIN_LIMIT="3", GSTACK_AUTH_TOKEN_LIMIT="4",
                                  GSTACK_AUTH_API_LIMIT="5")
    server.start()
    yield server
    cleanup()


def test_password_guessing_is_limited(limited):
    person = make_user(limited, "guess")
    browser = Browser.new(limited.base)
    url = browser.auth_url(GCLOUD_CLIENT_ID, "http://127.0.0.1:9100/", CLOUD_PLATFORM, pkce()[1])
    page = browser.session.get(url)
    for _ in range(3):
        r = browser.post(url, page, action="login", email=person.email, password="wrong-password")
        assert r.status_code == 401
    r = browser.post(url, page, action="login", email=person.email, password=person.password)
    assert r.status_code == 429 and "Too many failed attempts. Try again in" in r.text
    assert not any(c.name == "gstack_session" for c in browser.session.cookies)


def test_failed_token_requests_are_limited(limited):
    form = {"grant_type": "refresh_token", "refresh_token": "1//guess", "client_id": GCLOUD_CLIENT_ID,
            "client_secret": GCLOUD_CLIENT_SECRET}
    for _ in range(4):
        assert requests.post(limited.base + "/token", data=form).json()["error"] == "invalid_grant"
    r = requests.post(limited.base + "/token", data=form)
    assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0
    assert r.json() == {"error": "temporarily_unavailable",
                        "error_description": "Too many failed requests; try again later."}


def test_rejected_credentials_are_limited(limited):
    zones = f"{limited.api}projects/{PROJECT}/zones"
    for _ in range(5):
        assert requests.get(zones, headers={"Authorization": "Bearer ya29.guess"}).status_code == 401
    r = requests.get(zones, headers={"Authorization": "Bearer " + limited.token()})
    assert r.status_code == 429
    assert r.json() == {"error": {"code": 429, "message": "Rate Limit Exceeded", "status": "RESOURCE_EXHAUSTED",
                                  "errors": [{"message": "Rate Limit Exceeded", "domain": "usageLimits",
                                              "reason": "rateLimitExceeded"}]}}
