"""Authorization code + PKCE for installed apps, refresh tokens, ID tokens, tokeninfo, userinfo, revoke:
the tokens drive google-api-python-client and google-cloud-compute like any Google user's."""

from __future__ import annotations

import time

import google.auth.transport.requests
import jwt
import pytest
import requests
from google.oauth2 import credentials as user_credentials
from google.oauth2 import id_token
from googleapiclient.errors import HttpError

from tests.auth.conftest import admin, execute
from tests.conftest import PROJECT, ZONE, error_of, unique, wait_op
from tests.helpers.oauth import (
    CLOUD_PLATFORM,
    COMPUTE,
    EMAIL,
    GCLOUD_CLIENT_ID,
    GCLOUD_CLIENT_SECRET,
    READONLY,
    Browser,
    authorization_code,
    exchange,
    pkce,
    query,
)

REFRESH_REVOKED = {"error": "invalid_grant", "error_description": "Token has been expired or revoked."}


@pytest.fixture(scope="module")
def tokens(server, editor) -> dict:
    code, verifier, redirect_uri = authorization_code(server.base, editor.email, editor.password)
    r = exchange(server.base, code, verifier, redirect_uri)
    assert r.status_code == 200, r.text
    return r.json()


def authorized_user(server, refresh_token: str, scopes=None) -> user_credentials.Credentials:
    """Authorized-user credentials as google-auth-oauthlib's flows make them. (An ``authorized_user`` file
    cannot name another token URI: google-auth's ``from_authorized_user_info`` always uses Google's.)"""
    return user_credentials.Credentials(None, refresh_token=refresh_token, token_uri=server.base + "/token",
                                        client_id=GCLOUD_CLIENT_ID, client_secret=GCLOUD_CLIENT_SECRET,
                                        scopes=scopes)


def refresh(server, refresh_token: str, **extra: str) -> requests.Response:
    return requests.post(server.base + "/token", data={
        "grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": GCLOUD_CLIENT_ID,
        "client_secret": GCLOUD_CLIENT_SECRET, **extra})


def test_token_response(server, tokens):
    assert set(tokens) == {"access_token", "expires_in", "token_type", "scope", "refresh_token", "id_token"}
    assert tokens["token_type"] == "Bearer" and tokens["expires_in"] == 3599
    assert tokens["access_token"].startswith("ya29.") and tokens["refresh_token"].startswith("1//")
    assert tokens["scope"].split() == ["openid", EMAIL, CLOUD_PLATFORM]


def test_id_token_is_signed_with_jwks(server, tokens, editor):
    request = google.auth.transport.requests.Request()
    claims = id_token.verify_token(tokens["id_token"], request, audience=GCLOUD_CLIENT_ID,
                                   certs_url=server.base + "/oauth2/v3/certs")
    assert claims["iss"] == server.base
    assert claims["email"] == editor.email and claims["email_verified"] is True
    assert claims["azp"] == GCLOUD_CLIENT_ID and claims["sub"].isdigit() and len(claims["sub"]) == 21
    assert claims["at_hash"]
    discovery = requests.get(server.base + "/.well-known/openid-configuration").json()
    assert discovery["jwks_uri"] == server.base + "/oauth2/v3/certs"
    assert discovery["authorization_endpoint"] == server.base + "/o/oauth2/v2/auth"
    assert discovery["token_endpoint"] == server.base + "/token"
    assert discovery["code_challenge_methods_supported"] == ["S256"]


def test_authorized_user_credentials_drive_both_clients(server, tokens, editor):
    from google.cloud import compute_v1

    creds = authorized_user(server, tokens["refresh_token"])
    gce = server.gce(credentials=creds)
    name = unique("authuser")
    op = gce.disks().insert(project=PROJECT, zone=ZONE, body={"name": name, "sizeGb": "10"}).execute()
    assert wait_op(gce, op)["status"] == "DONE"
    assert op["user"] == editor.email
    assert creds.token.startswith("ya29.") and creds.refresh_token == tokens["refresh_token"]
    client = server.compute(compute_v1.DisksClient, credentials=authorized_user(server, tokens["refresh_token"]))
    assert client.get(project=PROJECT, zone=ZONE, disk=name).name == name


def test_plain_access_token_drives_both_clients(server, tokens):
    from google.cloud import compute_v1

    creds = user_credentials.Credentials(token=tokens["access_token"])
    assert server.gce(credentials=creds).zones().get(project=PROJECT, zone=ZONE).execute()["name"] == ZONE
    client = server.compute(compute_v1.ZonesClient, credentials=user_credentials.Credentials(tokens["access_token"]))
    assert client.get(project=PROJECT, zone=ZONE).name == ZONE


def test_refresh_is_not_rotated_and_may_narrow(server, tokens):
    r = refresh(server, tokens["refresh_token"])
    assert r.status_code == 200, r.text
    assert r.headers["Cache-Control"] == "no-store"
    body = r.json()
    assert "refresh_token" not in body
    assert body["scope"] == tokens["scope"] and body["id_token"]
    narrowed = refresh(server, tokens["refresh_token"], scope=READONLY)
    assert narrowed.status_code == 200, narrowed.text
    assert narrowed.json()["scope"] == READONLY
    gce = server.gce(credentials=user_credentials.Credentials(narrowed.json()["access_token"]))
    assert gce.zones().list(project=PROJECT).execute()["items"]
    with pytest.raises(HttpError) as e:
        gce.disks().insert(project=PROJECT, zone=ZONE, body={"name": unique("narrow")}).execute()
    assert e.value.resp.status == 403 and error_of(e.value)["errors"][0]["reason"] == "insufficientPermissions"
    wider = refresh(server, tokens["refresh_token"], scope=f"{CLOUD_PLATFORM} https://www.googleapis.com/auth/drive")
    assert wider.status_code == 400
    assert wider.json() == {"error": "invalid_scope", "error_description":
                            "Some requested scopes were invalid. {invalid=[https://www.googleapis.com/auth/drive]}"}


def test_refresh_needs_the_client_secret(server, tokens):
    r = refresh(server, tokens["refresh_token"], client_secret="wrong")
    assert r.status_code == 401
    assert r.json() == {"error": "invalid_client", "error_description": "Unauthorized"}
    r = refresh(server, tokens["refresh_token"], client_id="nobody.apps.googleusercontent.com")
    assert r.status_code == 401
    assert r.json() == {"error": "invalid_client", "error_description": "The OAuth client was not found."}
    assert refresh(server, "1//not-a-refresh-token").json() == REFRESH_REVOKED


def test_tokeninfo_and_userinfo(server, tokens, editor):
    info = requests.get(server.base + "/tokeninfo", params={"access_token": tokens["access_token"]})
    assert info.status_code == 200
    body = info.json()
    assert body["azp"] == body["aud"] == GCLOUD_CLIENT_ID
    assert body["scope"] == tokens["scope"] and body["email"] == editor.email and body["email_verified"] == "true"
    assert body["access_type"] == "offline"
    assert 3500 < int(body["expires_in"]) <= 3599 and int(body["exp"]) > time.time()
    v3 = requests.post(server.base + "/oauth2/v3/tokeninfo", data={"access_token": tokens["access_token"]}).json()
    assert v3["sub"] == body["sub"]
    claims = requests.get(server.base + "/oauth2/v3/tokeninfo", params={"id_token": tokens["id_token"]}).json()
    assert claims["email"] == editor.email and claims["email_verified"] == "true" and claims["exp"].isdigit()
    for bad in ({"access_token": "ya29.nope"}, {"id_token": tokens["id_token"][:-4] + "AAAA"}, {}):
        r = requests.get(server.base + "/tokeninfo", params=bad)
        assert r.status_code == 400 and r.json() == {"error": "invalid_token", "error_description": "Invalid Value"}
    me = requests.get(server.base + "/oauth2/v3/userinfo", headers={"Authorization": "Bearer " + tokens["access_token"]})
    assert me.json() == {"sub": body["sub"], "email": editor.email, "email_verified": True}
    assert requests.get(server.base + "/v1/userinfo", params={"access_token": tokens["access_token"]}).status_code == 200
    # a token without openid/email/profile may not read userinfo
    compute_only = refresh(server, tokens["refresh_token"], scope=CLOUD_PLATFORM).json()["access_token"]
    r = requests.get(server.base + "/oauth2/v3/userinfo", headers={"Authorization": "Bearer " + compute_only})
    assert r.status_code == 401 and r.json()["error_description"] == "Invalid Credentials"
    assert "invalid_token" in r.headers["WWW-Authenticate"]


def test_revoke_access_token_revokes_its_refresh_token(server, editor):
    code, verifier, redirect_uri = authorization_code(server.base, editor.email, editor.password)
    t = exchange(server.base, code, verifier, redirect_uri).json()
    zones = f"{server.api}projects/{PROJECT}/zones"
    assert requests.get(zones, headers={"Authorization": "Bearer " + t["access_token"]}).status_code == 200
    r = requests.post(server.base + "/revoke", params={"token": t["access_token"]},
                      headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 200 and r.content == b""
    r = requests.get(zones, headers={"Authorization": "Bearer " + t["access_token"]})
    assert r.status_code == 401 and r.json()["error"]["errors"][0]["reason"] == "authError"
    assert refresh(server, t["refresh_token"]).json() == REFRESH_REVOKED
    again = requests.post(server.base + "/revoke", data={"token": t["access_token"]})
    assert again.status_code == 400
    assert again.json() == {"error": "invalid_token", "error_description": "Token expired or revoked"}


def test_revoke_refresh_token_revokes_its_access_tokens(server, editor):
    code, verifier, redirect_uri = authorization_code(server.base, editor.email, editor.password)
    t = exchange(server.base, code, verifier, redirect_uri).json()
    later = refresh(server, t["refresh_token"]).json()["access_token"]
    assert requests.post(server.base + "/revoke", data={"token": t["refresh_token"]}).status_code == 200
    for token in (t["access_token"], later):
        assert requests.get(server.base + "/tokeninfo", params={"access_token": token}).status_code == 400
        r = requests.get(f"{server.api}projects/{PROJECT}/zones", headers={"Authorization": "Bearer " + token})
        assert r.status_code == 401


def test_deny_returns_access_denied(server, editor):
    browser = Browser.new(server.base)
    url = browser.auth_url(GCLOUD_CLIENT_ID, "http://localhost:9005/", CLOUD_PLATFORM, pkce()[1], state="xyz")
    r = browser.approve(url, editor.email, editor.password, action="deny")
    assert r.status_code == 302
    assert r.headers["Location"] == "http://localhost:9005/?error=access_denied&state=xyz"


def test_redirect_carries_state_and_scope(server, editor):
    browser = Browser.new(server.base)
    url = browser.auth_url(GCLOUD_CLIENT_ID, "http://[::1]:9006/", COMPUTE, pkce()[1], state="s1",
                           path="/o/oauth2/v2/auth", access_type="offline", prompt="consent")
    r = browser.approve(url, editor.email, editor.password)
    params = query(r.headers["Location"])
    assert r.headers["Location"].startswith("http://[::1]:9006/?")
    assert params["state"] == "s1" and params["scope"] == COMPUTE and params["code"]


def test_signed_in_browser_skips_the_password(server, editor):
    browser = Browser.new(server.base)
    url = browser.auth_url(GCLOUD_CLIENT_ID, "http://127.0.0.1:9007/", CLOUD_PLATFORM, pkce()[1])
    assert browser.approve(url, editor.email, editor.password).status_code == 302
    page = browser.session.get(url)
    assert 'value="approve"' in page.text and editor.email in page.text and 'name="password"' not in page.text


def test_no_browser_code_page(server, editor):
    """gcloud's --no-launch-browser redirect (a Google page showing the code): gstack shows the code itself."""
    verifier, challenge = pkce()
    browser = Browser.new(server.base)
    target = "https://sdk.cloud.google.com/authcode.html"
    r = browser.approve(browser.auth_url(GCLOUD_CLIENT_ID, target, CLOUD_PLATFORM, challenge), editor.email,
                        editor.password)
    assert r.status_code == 200 and "Copy this code" in r.text
    code = r.text.split('id="code" aria-label="Authorization code">', 1)[1].split("<", 1)[0]
    assert exchange(server.base, code, verifier, target).status_code == 200


@pytest.fixture(scope="module")
def web_client(server) -> tuple[str, str]:
    out = admin(server, "client", "create", "--name", "Example Web App", "--type", "web",
                "--redirect-uri", "http://127.0.0.1:9010/callback").stdout
    fields = dict(line.split(": ", 1) for line in out.splitlines())
    return fields["client_id"], fields["client_secret"]


def test_web_client_gets_refresh_token_only_offline(server, editor, web_client):
    client_id, secret = web_client
    redirect_uri = "http://127.0.0.1:9010/callback"
    for offline in (False, True):
        extra = {"access_type": "offline"} if offline else {}
        code, _, _ = authorization_code(server.base, editor.email, editor.password, client_id=client_id,
                                        redirect_uri=redirect_uri, scope=CLOUD_PLATFORM, use_pkce=False, **extra)
        r = exchange(server.base, code, None, redirect_uri, client_id=client_id, client_secret=secret)
        assert r.status_code == 200, r.text
        assert ("refresh_token" in r.json()) is offline
    # a web client's redirect URI matches exactly: another port or path is refused
    browser = Browser.new(server.base)
    for uri in ("http://127.0.0.1:9011/callback", "http://127.0.0.1:9010/callback/", "http://127.0.0.1:9010/"):
        page = browser.session.get(browser.auth_url(client_id, uri, CLOUD_PLATFORM), allow_redirects=False)
        assert page.status_code == 400 and "redirect_uri_mismatch" in page.text
    # and the code goes only to the client that asked for it
    code, _, _ = authorization_code(server.base, editor.email, editor.password, client_id=client_id,
                                    redirect_uri=redirect_uri, scope=CLOUD_PLATFORM, use_pkce=False)
    r = exchange(server.base, code, None, redirect_uri)  # gcloud's client presents it
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"


def test_expired_code(server, editor):
    code, verifier, redirect_uri = authorization_code(server.base, editor.email, editor.password)
    execute(server, "UPDATE authorization_codes SET expires = :t WHERE used = :f", t=time.time() - 1, f=False)
    r = exchange(server.base, code, verifier, redirect_uri)
    assert r.status_code == 400 and r.json() == {"error": "invalid_grant", "error_description": "Bad Request"}


def test_prompt_none_needs_consent(server):
    browser = Browser.new(server.base)
    url = browser.auth_url(GCLOUD_CLIENT_ID, "http://127.0.0.1:9008/", f"openid {EMAIL}", pkce()[1], state="q",
                           prompt="none")
    r = browser.session.get(url, allow_redirects=False)
    assert r.status_code == 302
    assert query(r.headers["Location"]) == {"error": "login_required", "state": "q"}


def test_pages_refuse_bad_requests(server):
    browser = Browser.new(server.base)
    challenge = pkce()[1]
    cases = [
        (browser.auth_url("unknown.apps.googleusercontent.com", "http://127.0.0.1:1/", CLOUD_PLATFORM, challenge),
         "invalid_client"),
        (browser.auth_url(GCLOUD_CLIENT_ID, "https://evil.example.com/", CLOUD_PLATFORM, challenge),
         "redirect_uri_mismatch"),
        (browser.auth_url(GCLOUD_CLIENT_ID, "http://127.0.0.1.evil.example.com:80/", CLOUD_PLATFORM, challenge),
         "redirect_uri_mismatch"),
    ]
    for url, code in cases:
        r = browser.session.get(url, allow_redirects=False)
        status = 401 if code == "invalid_client" else 400
        assert r.status_code == status and "Location" not in r.headers
        assert f"Error {status}: {code}" in r.text
    # errors once the redirect URI is known go back to it
    redirect_uri = "http://127.0.0.1:9009/"
    for extra, error in (({"scope": "https://example.com/nope"}, "invalid_scope"),
                         ({"code_challenge": None}, "invalid_request"),
                         ({"code_challenge_method": "plain"}, "invalid_request"),
                         ({"response_type": "token"}, "unsupported_response_type")):
        url = browser.auth_url(GCLOUD_CLIENT_ID, redirect_uri, CLOUD_PLATFORM, challenge)
        params = {**query(url), **extra}
        r = browser.session.get(server.base + "/o/oauth2/auth",
                                params={k: v for k, v in params.items() if v is not None}, allow_redirects=False)
        assert r.status_code == 302, (extra, r.text)
        assert r.headers["Location"].startswith(redirect_uri) and query(r.headers["Location"])["error"] == error


def test_login_page_security(server, editor):
    browser = Browser.new(server.base)
    url = browser.auth_url(GCLOUD_CLIENT_ID, "http://127.0.0.1:9012/", CLOUD_PLATFORM, pkce()[1])
    page = browser.session.get(url)
    assert page.headers["X-Frame-Options"] == "DENY" and "frame-ancestors 'none'" in page.headers[
        "Content-Security-Policy"]
    assert page.headers["Cache-Control"] == "no-store" and page.headers["Referrer-Policy"] == "no-referrer"
    cookie = next(c for c in browser.session.cookies if c.name == "gstack_csrf")
    assert cookie.has_nonstandard_attr("HttpOnly")
    # no CSRF token, or a wrong one: refused before the password is even looked at
    for token in (None, "x" * 43):
        form = {"action": "login", "email": editor.email, "password": editor.password}
        if token:
            form["csrf_token"] = token
        r = browser.session.post(url, data=form, allow_redirects=False)
        assert r.status_code == 400 and "This page has expired" in r.text
    r = browser.post(url, page, action="login", email=editor.email, password="wrong-password")
    assert r.status_code == 401 and "Wrong email or password." in r.text and 'role="alert"' in r.text
    assert not any(c.name == "gstack_session" for c in browser.session.cookies)
    r = browser.post(url, page, action="login", email="nobody@example.com", password="wrong-password")
    assert r.status_code == 401 and "Wrong email or password." in r.text
    # signing in gives an HttpOnly session cookie; "Not you?" ends the session
    consent = browser.sign_in(url, editor.email, editor.password)
    assert "Google Cloud SDK" in consent.text and "delete your Google Cloud data" in consent.text
    assert editor.email in consent.text and "http://127.0.0.1:9012" in consent.text
    r = browser.post(url, consent, action="switch")
    assert r.status_code == 303
    assert 'name="password"' in browser.session.get(url).text


def test_code_is_bound_to_its_verifier_redirect_and_use(server, editor):
    code, verifier, redirect_uri = authorization_code(server.base, editor.email, editor.password)
    r = exchange(server.base, code, verifier, "http://127.0.0.1:8086/")
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"  # mismatching_redirect_uri
    code, verifier, redirect_uri = authorization_code(server.base, editor.email, editor.password)
    r = exchange(server.base, code, None, redirect_uri)
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"
    assert r.json()["error_description"] == "Code verifier required."
    assert exchange(server.base, code, verifier, redirect_uri).json()["error_description"] == "Bad Request"
    assert exchange(server.base, "garbage", verifier, redirect_uri).json() == {
        "error": "invalid_grant", "error_description": "Malformed auth code."}


def test_self_signed_id_token_is_not_an_access_token(server, tokens):
    """Our ID tokens (RS256, our key) are JWTs, but no service-account key signed them."""
    r = requests.get(f"{server.api}projects/{PROJECT}/zones", headers={"Authorization": "Bearer " + tokens["id_token"]})
    assert r.status_code == 401
    assert jwt.get_unverified_header(tokens["id_token"])["alg"] == "RS256"
