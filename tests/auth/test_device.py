"""The device flow (RFC 8628, with Google's statuses): a device polls while a person approves its code."""

from __future__ import annotations

import time

import requests

from tests.auth.conftest import execute
from tests.conftest import PROJECT
from tests.helpers.oauth import CLOUD_PLATFORM, GCLOUD_CLIENT_ID, GCLOUD_CLIENT_SECRET, Browser

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


def start(server, scope: str = CLOUD_PLATFORM) -> dict:
    r = requests.post(server.base + "/device/code", data={"client_id": GCLOUD_CLIENT_ID, "scope": scope})
    assert r.status_code == 200, r.text
    return r.json()


def poll(server, device_code: str) -> requests.Response:
    return requests.post(server.base + "/token", data={
        "grant_type": DEVICE_GRANT, "device_code": device_code, "client_id": GCLOUD_CLIENT_ID,
        "client_secret": GCLOUD_CLIENT_SECRET})


def allow_polling_now(server) -> None:
    """Skip the 5-second interval between polls (the server would answer slow_down)."""
    execute(server, "UPDATE device_authorizations SET last_poll = 0")


def decide(server, person, user_code: str, action: str) -> requests.Response:
    browser = Browser.new(server.base)
    url = f"{server.base}/device?user_code={user_code}"
    page = browser.sign_in(url, person.email, person.password)
    assert page.status_code == 200 and user_code in page.text and "Google Cloud SDK" in page.text
    return browser.post(url, page, action=action, user_code=user_code)


def test_device_flow(server, editor):
    started = start(server)
    assert set(started) == {"device_code", "user_code", "verification_uri", "verification_url", "expires_in",
                            "interval"}
    assert started["verification_url"] == server.base + "/device"
    assert started["expires_in"] == 1800 and started["interval"] == 5
    assert len(started["user_code"]) == 9 and started["user_code"][4] == "-"
    pending = poll(server, started["device_code"])
    assert pending.status_code == 428 and pending.json() == {"error": "authorization_pending"}
    too_fast = poll(server, started["device_code"])
    assert too_fast.status_code == 403 and too_fast.json() == {"error": "slow_down"}
    done = decide(server, editor, started["user_code"].lower().replace("-", ""), "approve")
    assert done.status_code == 200 and "Device connected" in done.text
    allow_polling_now(server)
    r = poll(server, started["device_code"])
    assert r.status_code == 200, r.text
    tokens = r.json()
    assert tokens["scope"] == CLOUD_PLATFORM and tokens["refresh_token"].startswith("1//")
    api = requests.get(f"{server.api}projects/{PROJECT}/zones", headers={"Authorization": "Bearer " +
                                                                         tokens["access_token"]})
    assert api.status_code == 200
    allow_polling_now(server)
    again = poll(server, started["device_code"])
    assert again.status_code == 400 and again.json() == {"error": "invalid_grant"}


def test_device_denied_and_expired(server, editor):
    denied = start(server)
    assert "Access denied" in decide(server, editor, denied["user_code"], "deny").text
    allow_polling_now(server)
    r = poll(server, denied["device_code"])
    assert r.status_code == 403 and r.json() == {"error": "access_denied"}
    expired = start(server)
    execute(server, "UPDATE device_authorizations SET expires = :t WHERE status = 'pending'", t=time.time() - 1)
    r = poll(server, expired["device_code"])
    assert r.status_code == 400 and r.json() == {"error": "expired_token"}
    assert poll(server, "unknown-device-code").json() == {"error": "invalid_grant"}


def test_device_code_refusals(server, editor):
    r = requests.post(server.base + "/device/code", data={"client_id": "nobody", "scope": CLOUD_PLATFORM})
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    r = requests.post(server.base + "/device/code", data={"client_id": GCLOUD_CLIENT_ID})
    assert r.status_code == 400 and r.json() == {"error": "invalid_scope",
                                                 "error_description": "Missing required parameter: scope"}
    browser = Browser.new(server.base)
    url = server.base + "/device?user_code=BCDF-GHJK"
    page = browser.sign_in(url, editor.email, editor.password)
    assert page.status_code == 404 and "not valid or has expired" in page.text
