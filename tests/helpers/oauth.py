"""A browser without a browser: the sign-in and consent pages driven with requests, and PKCE."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from dataclasses import dataclass
from urllib.parse import parse_qs, urlencode, urlsplit

import requests

GCLOUD_CLIENT_ID = "32555940559.apps.googleusercontent.com"
GCLOUD_CLIENT_SECRET = "ZmssLNjJy2998hD4CTg2ejr2"
CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"
COMPUTE = "https://www.googleapis.com/auth/compute"
READONLY = "https://www.googleapis.com/auth/compute.readonly"
EMAIL = "https://www.googleapis.com/auth/userinfo.email"


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    return verifier, challenge


def csrf(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, html
    return found.group(1)


def query(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


@dataclass
class Browser:
    """A requests session that signs in and answers the consent page."""

    base: str
    session: requests.Session

    @classmethod
    def new(cls, base: str) -> Browser:
        return cls(base, requests.Session())

    def auth_url(self, client_id: str, redirect_uri: str, scope: str, challenge: str | None = None,
                 path: str = "/o/oauth2/auth", **extra: str) -> str:
        params = {"client_id": client_id, "redirect_uri": redirect_uri, "response_type": "code", "scope": scope,
                  "state": "st-" + secrets.token_hex(4), **extra}
        if challenge:
            params.update(code_challenge=challenge, code_challenge_method="S256")
        return self.base + path + "?" + urlencode(params)

    def post(self, url: str, page: requests.Response, **form: str) -> requests.Response:
        return self.session.post(url, data={"csrf_token": csrf(page.text), **form}, allow_redirects=False)

    def sign_in(self, url: str, email: str, password: str) -> requests.Response:
        page = self.session.get(url, allow_redirects=False)
        assert page.status_code == 200 and 'name="password"' in page.text, page.text
        r = self.post(url, page, action="login", email=email, password=password)
        assert r.status_code == 303, r.text
        return self.session.get(url, allow_redirects=False)

    def approve(self, url: str, email: str, password: str, action: str = "approve") -> requests.Response:
        """Sign in if needed, then allow (or deny); the response redirects to the client."""
        page = self.session.get(url, allow_redirects=False)
        if 'name="password"' in page.text:
            page = self.sign_in(url, email, password)
        assert page.status_code == 200 and 'value="approve"' in page.text, page.text
        return self.post(url, page, action=action)


def authorization_code(base: str, email: str, password: str, *, client_id: str = GCLOUD_CLIENT_ID,
                       redirect_uri: str = "http://127.0.0.1:8085/", scope: str = f"openid {EMAIL} {CLOUD_PLATFORM}",
                       use_pkce: bool = True, **extra: str) -> tuple[str, str | None, str]:
    """Run the flow; (code, verifier, redirect_uri)."""
    verifier, challenge = pkce() if use_pkce else (None, None)
    browser = Browser.new(base)
    url = browser.auth_url(client_id, redirect_uri, scope, challenge, **extra)
    r = browser.approve(url, email, password)
    assert r.status_code == 302, r.text
    assert r.headers["Location"].startswith(redirect_uri)
    params = query(r.headers["Location"])
    assert "code" in params, r.headers["Location"]
    return params["code"], verifier, redirect_uri


def exchange(base: str, code: str, verifier: str | None, redirect_uri: str, *, client_id: str = GCLOUD_CLIENT_ID,
             client_secret: str | None = GCLOUD_CLIENT_SECRET) -> requests.Response:
    data = {"grant_type": "authorization_code", "code": code, "client_id": client_id, "redirect_uri": redirect_uri}
    if client_secret is not None:
        data["client_secret"] = client_secret
    if verifier is not None:
        data["code_verifier"] = verifier
    return requests.post(base + "/token", data=data)
