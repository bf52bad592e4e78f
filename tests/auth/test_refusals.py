"""Every refusal, with its exact status and body: the API's Google envelopes (401, 403) and the token
endpoint's RFC 6749 errors."""

from __future__ import annotations

import time
import uuid

import jwt
import pytest
import requests

from tests.auth.conftest import make_project, make_user
from tests.conftest import PROJECT, ZONE, unique
from tests.helpers.forgery import (
    assertion_claims,
    forge,
    self_signed_claims,
)
from tests.helpers.oauth import READONLY, Browser, authorization_code, exchange, pkce

JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
SEE = "See https://developers.google.com/identity/sign-in/web/devconsole-project."
MISSING = ("Request is missing required authentication credential. Expected OAuth 2 access token, login cookie or "
           "other valid authentication credential. " + SEE)
INVALID = ("Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other "
           "valid authentication credential. " + SEE)
SCOPES = "Request had insufficient authentication scopes."
SHORT_LIVED = ("Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your "
               "iat and exp values in the JWT claim.")


def unauthenticated(reason: str, message: str) -> dict:
    return {"error": {"code": 401, "message": message, "status": "UNAUTHENTICATED", "errors": [
        {"message": message, "domain": "global", "reason": reason, "locationType": "header",
         "location": "Authorization"}]}}


def forbidden(permission: str, project: str = PROJECT) -> dict:
    message = f"Required '{permission}' permission for 'projects/{project}'"
    return {"error": {"code": 403, "message": message, "status": "PERMISSION_DENIED",
                      "errors": [{"message": message, "domain": "global", "reason": "forbidden"}]}}


INSUFFICIENT = {"error": {"code": 403, "message": SCOPES, "status": "PERMISSION_DENIED",
                          "errors": [{"message": SCOPES, "domain": "global", "reason": "insufficientPermissions"}],
                          "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo",
                                       "reason": "ACCESS_TOKEN_SCOPE_INSUFFICIENT", "domain": "googleapis.com",
                                       "metadata": {"service": "compute.googleapis.com"}}]}}


@pytest.fixture(scope="module")
def ctx(server, editor, viewer) -> dict:
    """Tokens for the cases: a viewer's, a revoked one, an outsider's (owner of another project)."""
    outsider = make_user(server, "out")
    make_project(server, unique("own"), outsider)

    def user_token(person) -> str:
        code, verifier, redirect_uri = authorization_code(server.base, person.email, person.password)
        return exchange(server.base, code, verifier, redirect_uri).json()["access_token"]

    revoked = user_token(editor)
    assert requests.post(server.base + "/revoke", data={"token": revoked}).status_code == 200
    return {"key": server.key(), "viewer": user_token(viewer), "revoked": revoked, "outsider": user_token(outsider),
            "readonly": server.token("compute.readonly"),
            "expired": server.admin("token", "--project", PROJECT, "--lifetime", "0").stdout.strip()}


def zones(server, token: str | None) -> requests.Response:
    headers = {"Authorization": "Bearer " + token} if token is not None else {}
    return requests.get(f"{server.api}projects/{PROJECT}/zones", headers=headers)


def insert_disk(server, token: str) -> requests.Response:
    return requests.post(f"{server.api}projects/{PROJECT}/zones/{ZONE}/disks", headers={"Authorization": "Bearer " +
                         token}, json={"name": unique("refused")})


API_CASES = {
    "no-token": (lambda s, c: zones(s, None), 401, unauthenticated("required", MISSING)),
    "malformed-token": (lambda s, c: zones(s, "ya29.this-is-not-a-token"), 401, unauthenticated("authError", INVALID)),
    "malformed-jwt": (lambda s, c: zones(s, "eyJhbGciOi.eyJpc3Mi.c2ln"), 401, unauthenticated("authError", INVALID)),
    "expired-token": (lambda s, c: zones(s, c["expired"]), 401, unauthenticated("authError", INVALID)),
    "revoked-token": (lambda s, c: zones(s, c["revoked"]), 401, unauthenticated("authError", INVALID)),
    "wrong-project": (lambda s, c: zones(s, c["outsider"]), 403, forbidden("compute.zones.list")),
    "viewer-writing": (lambda s, c: insert_disk(s, c["viewer"]), 403, forbidden("compute.disks.create")),
    "readonly-writing": (lambda s, c: insert_disk(s, c["readonly"]), 403, INSUFFICIENT),
    **{f"forged-jwt-{how}": (lambda s, c, how=how: zones(s, forge(c["key"], how, self_signed_claims(c["key"]))),
                             401, unauthenticated("authError", INVALID))
       for how in ("wrong-key", "wrong-kid", "alg-none", "hs256-public-key")},
}


@pytest.mark.parametrize("case", API_CASES)
def test_api_refusal(server, ctx, case):
    make, status, body = API_CASES[case]
    r = make(server, ctx)
    assert r.status_code == status, r.text
    assert r.headers["Content-Type"] == "application/json; charset=UTF-8"
    assert r.json() == body


def grant(server, assertion: str) -> requests.Response:
    return requests.post(server.base + "/token", data={"grant_type": JWT_GRANT, "assertion": assertion})


def replayed(server, ctx) -> requests.Response:
    key = ctx["key"]
    assertion = jwt.encode(assertion_claims(key, jti=uuid.uuid4().hex), key["private_key"], algorithm="RS256",
                           headers={"kid": key["private_key_id"]})
    assert grant(server, assertion).status_code == 200
    return grant(server, assertion)


def pkce_mismatch(server, ctx) -> requests.Response:
    editor = ctx["editor"]
    code, _, redirect_uri = authorization_code(server.base, editor.email, editor.password)
    return exchange(server.base, code, pkce()[0], redirect_uri)


def reused_code(server, ctx) -> requests.Response:
    editor = ctx["editor"]
    code, verifier, redirect_uri = authorization_code(server.base, editor.email, editor.password)
    assert exchange(server.base, code, verifier, redirect_uri).status_code == 200
    return exchange(server.base, code, verifier, redirect_uri)


def expired_assertion(server, ctx) -> requests.Response:
    key, now = ctx["key"], int(time.time())
    return grant(server, jwt.encode(assertion_claims(key, iat=now - 7200, exp=now - 3600), key["private_key"],
                                    algorithm="RS256", headers={"kid": key["private_key_id"]}))


def invalid_grant(description: str) -> dict:
    return {"error": "invalid_grant", "error_description": description}


TOKEN_CASES = {
    **{f"forged-assertion-{how}": (lambda s, c, how=how: grant(s, forge(c["key"], how, assertion_claims(c["key"]))),
                                   invalid_grant("Invalid JWT Signature."))
       for how in ("wrong-key", "wrong-kid", "alg-none", "hs256-public-key")},
    "expired-assertion": (expired_assertion, invalid_grant(SHORT_LIVED)),
    "replayed-assertion": (replayed, invalid_grant("Invalid JWT: the assertion has already been used.")),
    "pkce-verifier-mismatch": (pkce_mismatch, invalid_grant("Invalid code verifier.")),
    "reused-code": (reused_code, invalid_grant("Bad Request")),
}


@pytest.mark.parametrize("case", TOKEN_CASES)
def test_token_refusal(server, ctx, editor, case):
    make, body = TOKEN_CASES[case]
    r = make(server, {**ctx, "editor": editor})
    assert r.status_code == 400, r.text
    assert r.headers["Cache-Control"] == "no-store"
    assert r.json() == body


def test_foreign_redirect_uri(server):
    """A redirect URI the client did not register: an error page, and never a redirect to it."""
    browser = Browser.new(server.base)
    for uri in ("https://attacker.example.com/", "http://attacker.example.com:8085/", "http://127.0.0.1.nip.io:8085/"):
        r = browser.session.get(browser.auth_url("32555940559.apps.googleusercontent.com", uri, READONLY,
                                                 pkce()[1]), allow_redirects=False)
        assert r.status_code == 400 and "Location" not in r.headers
        assert r.headers["Content-Type"] == "text/html; charset=utf-8"
        assert "Error 400: redirect_uri_mismatch" in r.text and "attacker" not in r.text
