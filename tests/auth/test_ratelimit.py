"""Failure limits: password guessing on the sign-in page, failed token requests, rejected API credentials.

Only failures count, and a valid credential is always served: failures from one source never lock
out another, nor a valid token presented from the same address (every client behind a proxy shares
it). The server trusts 127.0.0.1 as a reverse proxy, so each test speaks from addresses of its own
through X-Forwarded-For. The limiter lives in the server process and does not touch the database, so
these run once, on SQLite, against a server of their own with small limits."""

from __future__ import annotations

import time
import uuid

import jwt
import pytest
import requests

from tests.auth.conftest import make_user
from tests.conftest import PROJECT, running_server
from tests.helpers.oauth import CLOUD_PLATFORM, GCLOUD_CLIENT_ID, GCLOUD_CLIENT_SECRET, Browser, pkce

LOGIN_WINDOW = 12.0  # long enough for four sign-ins on a loaded machine
RATE_LIMITED = {"error": {"code": 429, "message": "Rate Limit Exceeded", "status": "RESOURCE_EXHAUSTED",
                          "errors": [{"message": "Rate Limit Exceeded", "domain": "usageLimits",
                                      "reason": "rateLimitExceeded"}]}}


@pytest.fixture(scope="module")
def limited():
    with running_server("sqlite", GSTACK_AUTH_LOGIN_LIMIT="3", GSTACK_AUTH_LOGIN_WINDOW=str(LOGIN_WINDOW),
                        GSTACK_AUTH_LOGIN_ACCOUNT_LIMIT="7", GSTACK_AUTH_TOKEN_LIMIT="4",
                        GSTACK_AUTH_API_LIMIT="5", GSTACK_TRUSTED_PROXIES="127.0.0.1") as srv:
        yield srv


_next = iter(range(1, 250))


def address() -> str:
    """A client address no other test uses."""
    return f"198.51.100.{next(_next)}"


def sign_in_from(server, addr: str, email: str, password: str) -> requests.Response:
    browser = Browser.new(server.base)
    browser.session.headers["X-Forwarded-For"] = addr
    url = browser.auth_url(GCLOUD_CLIENT_ID, "http://127.0.0.1:9100/", CLOUD_PLATFORM, pkce()[1])
    return browser.post(url, browser.session.get(url), action="login", email=email, password=password)


def test_password_guessing_is_limited_per_account_and_address(limited):
    person = make_user(limited, "guess")
    attacker, owner = address(), address()
    for _ in range(3):
        assert sign_in_from(limited, attacker, person.email, "wrong-password").status_code == 401
    r = sign_in_from(limited, attacker, person.email, person.password)
    assert r.status_code == 429 and "Too many failed attempts. Try again in" in r.text
    # the account is not locked for its owner, who signs in from elsewhere
    assert sign_in_from(limited, owner, person.email, person.password).status_code == 303


def test_password_lockout_backs_off(limited):
    """A failure soon after a lockout locks the (account, address) pair again at once, twice as long."""
    person = make_user(limited, "backoff")
    attacker = address()
    for _ in range(3):
        assert sign_in_from(limited, attacker, person.email, "wrong").status_code == 401
    assert sign_in_from(limited, attacker, person.email, "wrong").status_code == 429
    time.sleep(LOGIN_WINDOW + 0.5)
    assert sign_in_from(limited, attacker, person.email, "wrong").status_code == 401  # the lock ended
    time.sleep(LOGIN_WINDOW + 0.5)  # one failure locked it again, for twice the window
    assert sign_in_from(limited, attacker, person.email, person.password).status_code == 429


def test_account_limit_is_global(limited):
    """Failures from many addresses together lock the account (LOGIN_ACCOUNT, high by default: 500 an hour)."""
    person = make_user(limited, "spray")
    for _ in range(4):
        addr = address()
        for _ in range(2):  # under the per-address limit (3)
            sign_in_from(limited, addr, person.email, "wrong")
    assert sign_in_from(limited, address(), person.email, person.password).status_code == 429


def _assertion(key: dict) -> str:
    now = int(time.time())
    return jwt.encode({"iss": key["client_email"], "aud": "https://oauth2.googleapis.com/token", "iat": now,
                       "exp": now + 3600, "scope": CLOUD_PLATFORM, "jti": uuid.uuid4().hex},
                      key["private_key"], algorithm="RS256", headers={"kid": key["private_key_id"]})


def test_failed_token_requests_are_limited(limited):
    addr = address()
    form = {"grant_type": "refresh_token", "client_id": GCLOUD_CLIENT_ID, "client_secret": GCLOUD_CLIENT_SECRET}
    for n in range(4):
        r = requests.post(limited.base + "/token", data={**form, "refresh_token": f"1//guess{n}"},
                          headers={"X-Forwarded-For": addr})
        assert r.json()["error"] == "invalid_grant"
    r = requests.post(limited.base + "/token", data={**form, "refresh_token": "1//guess"},
                      headers={"X-Forwarded-For": addr})
    assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0
    assert r.json() == {"error": "temporarily_unavailable",
                        "error_description": "Too many failed requests; try again later."}
    # a valid grant from the same address is served
    r = requests.post(limited.base + "/token", headers={"X-Forwarded-For": addr},
                      data={"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
                            "assertion": _assertion(limited.key())})
    assert r.status_code == 200, r.text


def test_rejected_credentials_never_block_a_valid_token(limited):
    zones = f"{limited.api}projects/{PROJECT}/zones"
    addr, valid = address(), limited.token()
    for n in range(5):
        r = requests.get(zones, headers={"Authorization": f"Bearer ya29.guess{n}", "X-Forwarded-For": addr})
        assert r.status_code == 401
    r = requests.get(zones, headers={"Authorization": "Bearer ya29.guess", "X-Forwarded-For": addr})
    assert r.status_code == 429 and r.json() == RATE_LIMITED
    r = requests.get(zones, headers={"Authorization": "Bearer " + valid, "X-Forwarded-For": addr})
    assert r.status_code == 200, r.text
    metrics = requests.get(limited.base + "/metrics").text
    refused = [line for line in metrics.splitlines() if line.startswith('gstack_ratelimit_refusals_total{kind="api"}')]
    assert refused and float(refused[0].split()[-1]) >= 1


def test_one_bad_credential_is_limited_from_any_address(limited):
    zones = f"{limited.api}projects/{PROJECT}/zones"
    stale = "Bearer ya29.stale-" + uuid.uuid4().hex
    for _ in range(5):
        assert requests.get(zones, headers={"Authorization": stale, "X-Forwarded-For": address()}).status_code == 401
    r = requests.get(zones, headers={"Authorization": stale, "X-Forwarded-For": address()})
    assert r.status_code == 429


def test_limits_see_the_client_behind_the_proxy(limited):
    """The client is the rightmost X-Forwarded-For address that is not a trusted proxy: a value the client
    put further left is not believed, so it cannot escape its limit by inventing addresses."""
    zones = f"{limited.api}projects/{PROJECT}/zones"
    client = address()
    for n in range(5):
        r = requests.get(zones, headers={"Authorization": f"Bearer ya29.spoof{n}",
                                         "X-Forwarded-For": f"203.0.113.{n}, {client}"})
        assert r.status_code == 401
    r = requests.get(zones, headers={"Authorization": "Bearer ya29.spoof", "X-Forwarded-For": f"{client}, 127.0.0.1"})
    assert r.status_code == 429
