"""Authentication and authorization: 401/403 envelopes, scopes, project access, and the OAuth2 token
endpoint (RFC 7523 JWT-bearer grant) with assertions built by hand, by google-auth, and ID tokens."""

from __future__ import annotations

import time
import uuid

import google.auth.credentials
import google.auth.transport.requests
import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.oauth2 import service_account
from googleapiclient.errors import HttpError

from tests.conftest import CLOUD_PLATFORM, PROJECT, ZONE, error_of, unique, wait_op

GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"
READONLY = "https://www.googleapis.com/auth/compute.readonly"
MISSING = ("Request is missing required authentication credential. Expected OAuth 2 access token, login cookie or "
           "other valid authentication credential. See "
           "https://developers.google.com/identity/sign-in/web/devconsole-project.")
INVALID = ("Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other "
           "valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.")
SHORT_LIVED = ("Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your "
               "iat and exp values in the JWT claim.")


@pytest.fixture(scope="module")
def readonly(server) -> str:
    return server.token("compute.readonly")


@pytest.fixture(scope="module")
def other_project(server) -> tuple[str, str]:
    """A second project and a cloud-platform token of its owner service account."""
    name = unique("authp")
    server.admin("project", "create", name)
    return name, server.token(project=name)


def _bearer(token: str) -> dict:
    return {"Authorization": "Bearer " + token}


def _zones(server) -> str:
    return f"{server.api}projects/{PROJECT}/zones"


def _assert_401(r: requests.Response, reason: str, message: str) -> None:
    assert r.status_code == 401, r.text
    assert r.headers["WWW-Authenticate"] == 'Bearer realm="https://accounts.google.com/", error="invalid_token"'
    assert r.headers["Content-Type"] == "application/json; charset=UTF-8"
    err = r.json()["error"]
    assert err["code"] == 401
    assert err["status"] == "UNAUTHENTICATED"
    assert err["message"] == message
    assert err["errors"] == [{"message": message, "domain": "global", "reason": reason,
                              "locationType": "header", "location": "Authorization"}]


# --------------------------------------------------------------------------- API calls

def test_no_token_is_401(server):
    _assert_401(requests.get(_zones(server)), "required", MISSING)
    _assert_401(requests.post(f"{server.api}projects/{PROJECT}/zones/{ZONE}/disks", json={"name": "x"}),
                "required", MISSING)


def test_api_key_alone_is_401(server):
    """An API key identifies a project, not a caller: compute needs OAuth."""
    _assert_401(requests.get(_zones(server), params={"key": "AIzaSyFakeKey"}), "required", MISSING)


@pytest.mark.parametrize("header", ["Bearer ya29.garbage", "Bearer ", "Basic dXNlcjpwYXNz", "ya29.no-scheme"])
def test_bad_token_is_401(server, header):
    _assert_401(requests.get(_zones(server), headers={"Authorization": header}), "authError", INVALID)


class FixedToken(google.auth.credentials.Credentials):
    """A token that "refreshes" to itself, as gcloud's --access-token-file does."""

    def __init__(self, token: str):
        super().__init__()
        self.token = token

    def refresh(self, request) -> None:
        pass


def test_bad_token_through_client(server):
    gce = server.gce(credentials=FixedToken("ya29.not-a-real-token"))
    with pytest.raises(HttpError) as e:
        gce.zones().list(project=PROJECT).execute()
    assert e.value.resp.status == 401
    assert error_of(e.value)["message"] == INVALID
    assert error_of(e.value)["errors"][0]["reason"] == "authError"


def test_expired_token_is_401(server):
    token = server.admin("token", "--project", PROJECT, "--lifetime", "0").stdout.strip()
    _assert_401(requests.get(_zones(server), headers=_bearer(token)), "authError", INVALID)


def test_readonly_token_reads_and_waits(server, readonly):
    r = requests.get(_zones(server), headers=_bearer(readonly))
    assert r.status_code == 200, r.text
    gce = server.gce()
    op = gce.disks().insert(project=PROJECT, zone=ZONE, body={"name": unique("authro"), "sizeGb": "10"}).execute()
    r = requests.post(f"{server.api}projects/{PROJECT}/zones/{ZONE}/operations/{op['name']}/wait",
                      headers=_bearer(readonly))
    assert r.status_code == 200, r.text
    assert r.json()["name"] == op["name"]


@pytest.mark.parametrize("scope", ["compute.readonly", "https://www.googleapis.com/auth/cloud-platform.read-only"])
def test_readonly_token_cannot_write(server, readonly, scope):
    token = readonly if scope == "compute.readonly" else server.token(scope)
    r = requests.post(f"{server.api}projects/{PROJECT}/zones/{ZONE}/disks", headers=_bearer(token),
                      json={"name": unique("authro")})
    assert r.status_code == 403, r.text
    err = r.json()["error"]
    assert err["status"] == "PERMISSION_DENIED"
    assert err["message"] == "Request had insufficient authentication scopes."
    assert err["errors"] == [{"message": "Request had insufficient authentication scopes.", "domain": "global",
                              "reason": "insufficientPermissions"}]
    assert err["details"][0]["@type"] == "type.googleapis.com/google.rpc.ErrorInfo"
    assert err["details"][0]["reason"] == "ACCESS_TOKEN_SCOPE_INSUFFICIENT"
    assert err["details"][0]["metadata"]["service"] == "compute.googleapis.com"
    if scope != "compute.readonly":  # cloud-platform.read-only satisfies no compute method at all
        assert requests.get(_zones(server), headers=_bearer(token)).status_code == 403


def test_access_token_query_parameter(server, readonly):
    for param in ("access_token", "oauth_token"):
        r = requests.get(_zones(server), params={param: readonly, "filter": 'name = "us-*"'})
        assert r.status_code == 200, r.text
        assert r.json()["kind"] == "compute#zoneList"
    r = requests.get(_zones(server), params={"access_token": "ya29.bogus"})
    _assert_401(r, "authError", INVALID)


def test_other_project_is_forbidden(server, other_project):
    name, token = other_project
    r = requests.get(_zones(server), headers=_bearer(token))
    assert r.status_code == 403, r.text
    err = r.json()["error"]
    assert err["errors"][0]["reason"] == "forbidden"
    assert err["status"] == "PERMISSION_DENIED"
    assert err["message"] == f"Required 'compute.zones.list' permission for 'projects/{PROJECT}'"
    r = requests.post(f"{server.api}projects/{PROJECT}/zones/{ZONE}/disks", headers=_bearer(token),
                      json={"name": unique("authx")})
    assert r.status_code == 403
    assert r.json()["error"]["message"] == f"Required 'compute.disks.create' permission for 'projects/{PROJECT}'"
    # its own project works
    r = requests.get(f"{server.api}projects/{name}/zones", headers=_bearer(token))
    assert r.status_code == 200, r.text


def test_other_project_reads_public_images(server, other_project):
    _, token = other_project
    r = requests.get(f"{server.api}projects/debian-cloud/global/images", headers=_bearer(token))
    assert r.status_code == 200, r.text
    assert any(i["family"] == "debian-12" for i in r.json()["items"])
    r = requests.get(f"{server.api}projects/debian-cloud/global/images/family/debian-12", headers=_bearer(token))
    assert r.status_code == 200
    r = requests.delete(f"{server.api}projects/debian-cloud/global/images/{r.json()['name']}", headers=_bearer(token))
    assert r.status_code == 403
    assert r.json()["error"]["errors"][0]["reason"] == "forbidden"


# --------------------------------------------------------------------------- the token endpoint

def _claims(key: dict, **over) -> dict:
    now = int(time.time())
    claims = {"iss": key["client_email"], "aud": GOOGLE_TOKEN_URI, "iat": now, "exp": now + 3600,
              "scope": CLOUD_PLATFORM}
    claims.update(over)
    return {k: v for k, v in claims.items() if v is not None}


def _assertion(key: dict, headers: dict | None = None, private: str | None = None, **over) -> str:
    return jwt.encode(_claims(key, **over), private or key["private_key"], algorithm="RS256",
                      headers={"kid": key["private_key_id"], **(headers or {})})


def _grant(server, assertion: str, url: str | None = None) -> requests.Response:
    return requests.post(url or server.base + "/token", data={"grant_type": GRANT, "assertion": assertion})


def _assert_invalid_grant(r: requests.Response, description: str | None = None) -> None:
    assert r.status_code == 400, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    body = r.json()
    assert body["error"] == "invalid_grant"
    if description is not None:
        assert body["error_description"] == description


def test_jwt_bearer_grant(server):
    key = server.key()
    r = _grant(server, _assertion(key))
    assert r.status_code == 200, r.text
    assert r.headers["Cache-Control"] == "no-store"
    body = r.json()
    assert set(body) == {"access_token", "expires_in", "token_type"}
    assert body["token_type"] == "Bearer"
    assert 3500 <= body["expires_in"] <= 3600
    api = requests.get(_zones(server), headers=_bearer(body["access_token"]))
    assert api.status_code == 200


def test_token_scopes_are_enforced(server):
    key = server.key()
    r = _grant(server, _assertion(key, scope=READONLY, jti=uuid.uuid4().hex))
    token = r.json()["access_token"]
    assert requests.get(_zones(server), headers=_bearer(token)).status_code == 200
    r = requests.post(f"{server.api}projects/{PROJECT}/zones/{ZONE}/disks", headers=_bearer(token),
                      json={"name": unique("authsc")})
    assert r.status_code == 403
    assert r.json()["error"]["errors"][0]["reason"] == "insufficientPermissions"


def test_audience_own_token_uri_accepted(server):
    key = server.key()
    for path in ("/token", "/oauth2/v4/token"):
        r = _grant(server, _assertion(key, aud=server.base + path), url=server.base + path)
        assert r.status_code == 200, r.text
    _assert_invalid_grant(_grant(server, _assertion(key, aud="https://example.com/token")))
    _assert_invalid_grant(_grant(server, _assertion(key, aud=None)))


def test_replayed_assertion(server):
    key = server.key()
    assertion = _assertion(key, jti=uuid.uuid4().hex)
    assert _grant(server, assertion).status_code == 200
    _assert_invalid_grant(_grant(server, assertion), "Invalid JWT: the assertion has already been used.")
    # the same jti in a fresh assertion is a replay too
    _assert_invalid_grant(_grant(server, _assertion(key, jti=jwt.decode(assertion, options={
        "verify_signature": False})["jti"], iat=int(time.time()) - 1)))


def test_identical_assertions_without_jti_are_accepted(server):
    """google-auth puts no jti in its assertions and RS256 is deterministic: two credentials refreshing in
    the same second send the same bytes, and Google accepts both."""
    key = server.key()
    assertion = _assertion(key)
    assert _grant(server, assertion).status_code == 200
    assert _grant(server, assertion).status_code == 200


def _other_private_key() -> str:
    k = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                           serialization.NoEncryption()).decode()


def _public_pem(key: dict) -> str:
    private = serialization.load_pem_private_key(key["private_key"].encode(), None)
    return private.public_key().public_bytes(serialization.Encoding.PEM,
                                             serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def _unsigned(header: dict, claims: dict) -> str:
    import base64
    import json

    def part(d: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(d).encode()).decode().rstrip("=")

    return f"{part(header)}.{part(claims)}."


def _hs256_with_public_key(key: dict) -> str:
    """The algorithm-confusion attack: HMAC keyed with the RSA public key."""
    import base64
    import hashlib
    import hmac
    import json

    def part(d: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(d).encode()).decode().rstrip("=")

    signing_input = f"{part({'alg': 'HS256', 'typ': 'JWT', 'kid': key['private_key_id']})}.{part(_claims(key))}"
    mac = hmac.new(_public_pem(key).encode(), signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + base64.urlsafe_b64encode(mac).decode().rstrip("=")


@pytest.mark.parametrize("case", [
    "wrong-key", "unknown-kid", "no-kid-wrong-key", "no-kid-unknown-iss", "alg-none", "hs256-public-key", "too-long", "expired", "future",
    "exp-before-iat", "wrong-iss", "garbage", "tampered",
])
def test_bad_assertions_are_invalid_grant(server, case):
    key = server.key()
    now = int(time.time())
    if case == "wrong-key":
        a = _assertion(key, private=_other_private_key())
    elif case == "unknown-kid":
        a = _assertion(key, headers={"kid": "0" * 40})
    elif case == "no-kid-wrong-key":
        a = jwt.encode(_claims(key), _other_private_key(), algorithm="RS256")
    elif case == "no-kid-unknown-iss":
        a = jwt.encode(_claims(key, iss="nobody@demo-project.iam.gserviceaccount.com"), key["private_key"],
                       algorithm="RS256")
    elif case == "alg-none":
        a = _unsigned({"alg": "none", "typ": "JWT", "kid": key["private_key_id"]}, _claims(key))
    elif case == "hs256-public-key":
        a = _hs256_with_public_key(key)
    elif case == "too-long":
        a = _assertion(key, iat=now, exp=now + 3601)
    elif case == "expired":
        a = _assertion(key, iat=now - 7200, exp=now - 3600)
    elif case == "future":
        a = _assertion(key, iat=now + 3000, exp=now + 3600)
    elif case == "exp-before-iat":
        a = _assertion(key, iat=now, exp=now - 10)
    elif case == "wrong-iss":
        a = _assertion(key, iss="someone-else@demo-project.iam.gserviceaccount.com")
    elif case == "garbage":
        a = "not.a.jwt"
    else:
        h, c, sig = _assertion(key).split(".")
        other = _assertion(key, scope=READONLY).split(".")[1]
        a = ".".join([h, other, sig])
        assert other != c
    r = _grant(server, a)
    expected = SHORT_LIVED if case in ("too-long", "expired", "future", "exp-before-iat") else None
    if case in ("wrong-key", "unknown-kid", "no-kid-wrong-key", "no-kid-unknown-iss", "alg-none", "hs256-public-key",
                "tampered"):
        expected = "Invalid JWT Signature."
    _assert_invalid_grant(r, expected)


def test_token_endpoint_protocol_errors(server):
    key = server.key()
    r = requests.post(server.base + "/token", data={"grant_type": "password", "username": "u", "password": "p"})
    assert r.status_code == 400
    assert r.json()["error"] == "unsupported_grant_type"
    r = requests.post(server.base + "/token", data={"grant_type": GRANT})
    assert r.status_code == 400
    assert r.json()["error"] == "invalid_request"
    r = _grant(server, _assertion(key, scope=None))
    assert r.status_code == 400
    assert r.json()["error"] == "invalid_scope"
    # a bare '"' in the form must not make the whole body vanish
    r = requests.post(server.base + "/token", data=f'grant_type={GRANT}&assertion=x"y',
                      headers={"Content-Type": "application/x-www-form-urlencoded"})
    _assert_invalid_grant(r, "Invalid JWT: the assertion is malformed.")
    # Google's endpoint takes JSON bodies too
    r = requests.post(server.base + "/token", json={"grant_type": GRANT, "assertion": _assertion(key)})
    assert r.status_code == 200, r.text
    assert r.json()["token_type"] == "Bearer"


def test_id_token_for_target_audience(server):
    key = server.key()
    audience = "https://my-service.example.com"
    r = _grant(server, _assertion(key, scope=None, target_audience=audience))
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"id_token"}
    jwks = jwt.PyJWKClient(server.base + "/oauth2/v3/certs")
    signing_key = jwks.get_signing_key_from_jwt(body["id_token"])
    claims = jwt.decode(body["id_token"], signing_key.key, algorithms=["RS256"], audience=audience,
                        issuer=server.base)
    assert claims["email"] == key["client_email"]
    assert claims["email_verified"] is True
    assert claims["exp"] - claims["iat"] <= 3600
    assert claims["sub"].isdigit()


def test_google_auth_service_account_refresh(server):
    key = server.key()
    assert key["token_uri"] == server.base + "/token"
    creds = service_account.Credentials.from_service_account_info(key, scopes=[CLOUD_PLATFORM])
    creds.refresh(google.auth.transport.requests.Request())
    assert creds.valid and creds.token.startswith("ya29.")
    assert requests.get(_zones(server), headers=_bearer(creds.token)).status_code == 200


def test_google_auth_id_token_credentials(server):
    from google.oauth2 import id_token

    key = server.key()
    creds = service_account.IDTokenCredentials.from_service_account_info(key, target_audience="https://aud.example")
    request = google.auth.transport.requests.Request()
    creds.refresh(request)
    claims = id_token.verify_token(creds.token, request, audience="https://aud.example",
                                   certs_url=server.base + "/oauth2/v3/certs")
    assert claims["email"] == key["client_email"]
    assert claims["iss"] == server.base


def test_many_clients_refresh_at_once(server):
    """Every test builds its own credentials from the key; they must not trip replay detection."""
    gces = [server.gce() for _ in range(4)]
    for gce in gces:
        assert gce.zones().get(project=PROJECT, zone=ZONE).execute()["name"] == ZONE


def test_client_library_end_to_end(server):
    gce = server.gce()
    name = unique("authe2e")
    op = gce.disks().insert(project=PROJECT, zone=ZONE, body={"name": name, "sizeGb": "10"}).execute()
    assert wait_op(gce, op)["status"] == "DONE"
    assert op["user"] == server.key()["client_email"]


# --------------------------------------------------------------------------- self-signed JWTs (AIP-4111)

def _self_signed(key: dict, private: str | None = None, **claims) -> str:
    now = int(time.time())
    body = {"iss": key["client_email"], "sub": key["client_email"], "iat": now, "exp": now + 3600, **claims}
    body = {k: v for k, v in body.items() if v is not None}
    return jwt.encode(body, private or key["private_key"], algorithm="RS256", headers={"kid": key["private_key_id"]})


def test_self_signed_jwt_with_scope(server):
    """What gcloud sends with auth/service_account_use_self_signed_jwt: no aud, a scope claim."""
    key = server.key()
    token = _self_signed(key, scope=f"openid {CLOUD_PLATFORM}")
    r = requests.get(_zones(server), headers=_bearer(token))
    assert r.status_code == 200, r.text
    ro = _self_signed(key, scope=READONLY)
    assert requests.get(_zones(server), headers=_bearer(ro)).status_code == 200
    r = requests.post(f"{server.api}projects/{PROJECT}/zones/{ZONE}/disks", headers=_bearer(ro),
                      json={"name": unique("authjwt")})
    assert r.status_code == 403
    assert r.json()["error"]["errors"][0]["reason"] == "insufficientPermissions"


@pytest.mark.parametrize("aud", ["https://compute.googleapis.com/", "self"])
def test_self_signed_jwt_with_audience(server, aud):
    key = server.key()
    token = _self_signed(key, aud=server.base + "/" if aud == "self" else aud)
    assert requests.get(_zones(server), headers=_bearer(token)).status_code == 200


@pytest.mark.parametrize("case", ["other-audience", "no-scope-no-aud", "expired", "too-long", "wrong-key",
                                  "delegated-sub", "scope-foreign-audience", "scope-audience-list",
                                  "scope-token-audience"])
def test_bad_self_signed_jwt_is_401(server, case):
    key = server.key()
    now = int(time.time())
    token = {
        "other-audience": lambda: _self_signed(key, aud="https://storage.googleapis.com/"),
        "no-scope-no-aud": lambda: _self_signed(key),
        "expired": lambda: _self_signed(key, scope=CLOUD_PLATFORM, iat=now - 7200, exp=now - 3600),
        "too-long": lambda: _self_signed(key, scope=CLOUD_PLATFORM, exp=now + 7200),
        "wrong-key": lambda: _self_signed(key, private=_other_private_key(), scope=CLOUD_PLATFORM),
        "delegated-sub": lambda: _self_signed(key, scope=CLOUD_PLATFORM, sub="someone@example.com"),
        # A scope does not make any audience acceptable: a JWT meant for another service is not ours.
        "scope-foreign-audience": lambda: _self_signed(key, scope=CLOUD_PLATFORM, aud="https://evil.example/"),
        "scope-audience-list": lambda: _self_signed(key, scope=CLOUD_PLATFORM,
                                                    aud=["https://evil.example/", "https://storage.googleapis.com/"]),
        "scope-token-audience": lambda: _self_signed(key, scope=CLOUD_PLATFORM,
                                                     aud="https://oauth2.googleapis.com/token"),
    }[case]()
    _assert_401(requests.get(_zones(server), headers=_bearer(token)), "authError", INVALID)


@pytest.mark.parametrize("aud", ["https://compute.googleapis.com/", "self", "self-api"])
def test_self_signed_jwt_with_scope_and_our_audience(server, aud):
    key = server.key()
    audience = {"self": server.base + "/", "self-api": server.api}.get(aud, aud)
    token = _self_signed(key, scope=CLOUD_PLATFORM, aud=audience)
    assert requests.get(_zones(server), headers=_bearer(token)).status_code == 200


def test_google_auth_self_signed_jwts_are_accepted(server):
    """google-auth's own self-signed JWTs (AIP-4111), both shapes: with scopes (a ``scope`` claim, no
    ``aud``) and without (``aud`` = the API's default host, as AuthorizedSession's default_host makes it)."""
    import google.auth.transport.requests

    for scopes in ([CLOUD_PLATFORM], []):
        creds = server.credentials(scopes).with_always_use_jwt_access(True)
        session = google.auth.transport.requests.AuthorizedSession(creds, default_host="compute.googleapis.com")
        r = session.get(_zones(server))
        assert r.status_code == 200, r.text
        claims = jwt.decode(creds.token, options={"verify_signature": False})
        assert ("scope" in claims, "aud" in claims) == ((True, False) if scopes else (False, True))


def test_cloud_compute_client_uses_self_signed_jwt(server):
    """google-cloud-compute turns service-account credentials into self-signed JWTs (no /token call)."""
    from google.cloud import compute_v1

    creds = server.credentials()
    client = server.compute(compute_v1.ZonesClient, credentials=creds)
    assert client.get(project=PROJECT, zone=ZONE).name == ZONE
    assert creds.token is None or not creds.token.startswith("ya29.")
