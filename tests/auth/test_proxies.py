"""Behind a reverse proxy: X-Forwarded-For/-Proto/-Host are believed from GSTACK_TRUSTED_PROXIES only.

From a trusted proxy, the URL the client used (scheme and host) is the server's issuer and selfLink
base, and cookies are Secure behind TLS; from anyone else, the same headers change nothing. (The
client's address, what the rate limits see, is tested in test_ratelimit.py.)"""

from __future__ import annotations

import pytest
import requests

from tests.conftest import PROJECT, running_server
from tests.helpers.oauth import CLOUD_PLATFORM, GCLOUD_CLIENT_ID, Browser, pkce

TLS = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "gstack.example.com", "X-Forwarded-For": "192.0.2.7"}


@pytest.fixture(scope="module")
def proxied():
    with running_server("sqlite", GSTACK_TRUSTED_PROXIES="10.0.0.0/8, 127.0.0.1") as srv:
        yield srv


def sign_in_cookies(server, headers: dict) -> dict[str, bool]:
    """The cookies the sign-in page sets, by name: whether each is Secure."""
    browser = Browser.new(server.base)
    url = browser.auth_url(GCLOUD_CLIENT_ID, "http://127.0.0.1:9100/", CLOUD_PLATFORM, pkce()[1])
    r = requests.get(url, headers=headers, allow_redirects=False)
    assert r.status_code == 200, r.text
    return {c.name: bool(c.secure) for c in r.cookies}


def test_trusted_proxy_tls(proxied):
    assert requests.get(proxied.base + "/.well-known/openid-configuration",
                        headers=TLS).json()["issuer"] == "https://gstack.example.com"
    cookies = sign_in_cookies(proxied, TLS)
    assert cookies and all(cookies.values())
    zones = requests.get(f"{proxied.api}projects/{PROJECT}/zones",
                         headers={**TLS, "Authorization": "Bearer " + proxied.token()}).json()
    assert zones["selfLink"] == f"https://gstack.example.com/compute/v1/projects/{PROJECT}/zones"


def test_forwarded_port(proxied):
    headers = {**TLS, "X-Forwarded-Port": "8443"}
    issuer = requests.get(proxied.base + "/.well-known/openid-configuration", headers=headers).json()["issuer"]
    assert issuer == "https://gstack.example.com:8443"


def test_plain_http_through_the_proxy(proxied):
    cookies = sign_in_cookies(proxied, {"X-Forwarded-Proto": "http", "X-Forwarded-For": "192.0.2.8"})
    assert cookies and not any(cookies.values())


def test_untrusted_peer_headers_are_ignored(server):
    """The shared server trusts no proxy: the headers of a direct client change nothing."""
    issuer = requests.get(server.base + "/.well-known/openid-configuration", headers=TLS).json()["issuer"]
    assert issuer == server.base
    cookies = sign_in_cookies(server, TLS)
    assert cookies and not any(cookies.values())
