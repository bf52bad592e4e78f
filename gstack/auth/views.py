"""OAuth2 endpoints on Google's paths. oauthlib speaks the protocol; these views adapt Flask.

The browser pages (sign-in, consent, device verification) are in :mod:`gstack.auth.pages`, on
the same blueprint.
"""

from __future__ import annotations

import time
from urllib.parse import parse_qsl, urlencode

import orjson
from flask import Blueprint, Response, current_app, request
from oauthlib.oauth2.rfc6749.errors import OAuth2Error

from core import identity
from core.identity import signing
from gstack.auth import scopes, server
from gstack.auth.ratelimit import LIMITER
from gstack.auth.urls import issuer
from gstack.auth.validator import UnknownToken, basic_credentials
from gstack.gce.render import JSON_TYPE

bp = Blueprint("oauth", __name__, template_folder="templates")

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
# Google's statuses for the device flow's polling answers (RFC 8628 says 400 for all).
DEVICE_STATUSES = {"authorization_pending": 428, "slow_down": 403, "access_denied": 403}
# Polling answers are the device flow working as designed, not failures to count.
NOT_FAILURES = {"authorization_pending", "slow_down"}


def json_response(body: dict | str, status: int = 200, headers: dict | None = None) -> Response:
    data = body if isinstance(body, str) else orjson.dumps(body)
    headers = {k: v for k, v in (headers or {}).items() if k.lower() != "content-type"}
    return Response(data, status=status, headers=headers, content_type=JSON_TYPE)


def oauth_error(error: OAuth2Error) -> Response:
    return json_response(error.json, error.status_code, {**error.headers, "Cache-Control": "no-store"})


def _form_body() -> str:
    """The request's parameters re-encoded strictly: oauthlib silently drops a whole form body holding a
    character it deems unencoded (a bare '"'), and Google's endpoint also takes a JSON object.
    Query-string parameters join the body: Google's own examples put ``token=`` there on /revoke."""
    if request.is_json:
        data = request.get_json(silent=True)
        pairs = [(str(k), str(v)) for k, v in data.items()] if isinstance(data, dict) else []
    else:
        pairs = list(request.form.items(multi=True))
    pairs += [(k, v) for k, v in request.args.items(multi=True) if k not in {p[0] for p in pairs}]
    return urlencode(pairs)


def _headers() -> dict:
    headers = dict(FORM)
    if request.headers.get("Authorization"):
        headers["Authorization"] = request.headers["Authorization"]
    return headers


# The form fields that carry a grant's secret, the credential whose failures count besides the address.
SECRET_FIELDS = ("assertion", "refresh_token", "code", "device_code", "client_secret")


def _credential_key(body: str) -> str:
    params = dict(parse_qsl(body))
    secret = next((params[f] for f in SECRET_FIELDS if params.get(f)), None) or request.headers.get("Authorization")
    return "cred:" + identity.digest(secret or params.get("client_id", ""))


@bp.post("/token")
@bp.post("/oauth2/v4/token")
@bp.post("/o/oauth2/token")
def token() -> Response:
    """Failures are counted per caller address and per credential (the grant's secret). Not per client:
    gcloud's client id is public, and counting its failures would let anyone lock every gcloud user out.
    The request is always served first: a valid grant succeeds whatever failed before it; only a
    failure over the limit is answered 429 instead."""
    body = _form_body()
    headers, data, status = server.token_endpoint().create_token_response(
        issuer() + request.path, http_method="POST", body=body, headers=_headers())
    if status >= 400:
        error = orjson.loads(data).get("error", "")
        status = DEVICE_STATUSES.get(error, status)
        if error not in NOT_FAILURES:
            keys = ("ip:" + (request.remote_addr or ""), _credential_key(body))
            wait = LIMITER.blocked("token", *keys)
            LIMITER.fail("token", *keys)
            if wait:
                LIMITER.refused("token")
                return json_response({"error": "temporarily_unavailable",
                                      "error_description": "Too many failed requests; try again later."},
                                     429, {"Retry-After": str(int(wait) + 1), "Cache-Control": "no-store"})
    headers["Cache-Control"] = "no-store"
    return json_response(data, status, headers)


@bp.route("/revoke", methods=["GET", "POST"])
@bp.route("/o/oauth2/revoke", methods=["GET", "POST"])
def revoke() -> Response:
    """Revoke an access or refresh token: 200 with an empty body, 400 invalid_token for one we do not know."""
    try:
        headers, body, status = server.revocation_endpoint().create_revocation_response(
            issuer() + "/revoke", http_method="POST", body=_form_body(), headers=_headers())
    except UnknownToken as e:
        LIMITER.fail("api", "ip:" + (request.remote_addr or ""))
        return oauth_error(e)
    if status != 200:
        return json_response(body, status, headers)
    return Response(b"", status=200, content_type=JSON_TYPE)


def _string_claims(claims: dict) -> dict:
    """Google's tokeninfo answers every claim of an ID token as a string."""
    out = {}
    for key, value in claims.items():
        out[key] = ("true" if value else "false") if isinstance(value, bool) else \
            value if isinstance(value, (str, list, dict)) else str(value)
    return out


@bp.route("/tokeninfo", methods=["GET", "POST"])
@bp.route("/oauth2/v3/tokeninfo", methods=["GET", "POST"])
def tokeninfo() -> Response:
    runtime = current_app.extensions["gstack"]
    session = runtime.db.session
    invalid = json_response({"error": "invalid_token", "error_description": "Invalid Value"}, 400)
    if request.values.get("id_token"):
        claims = signing.verify(session, request.values["id_token"])
        return json_response(_string_claims(claims)) if claims else invalid
    found = identity.token_details(session, request.values.get("access_token", ""))
    if found is None:
        return invalid
    token, principal = found
    granted = token.scopes.split()
    info = {"azp": token.client_id, "aud": token.client_id, "sub": identity.subject_id(principal),
            "scope": token.scopes, "exp": str(int(token.expires)),
            "expires_in": str(max(0, int(token.expires - time.time())))}
    if scopes.grants_email(granted):
        info.update(email=principal.email, email_verified="true")
    info["access_type"] = "offline" if token.refresh_token_id else "online"
    return json_response(info)


@bp.route("/oauth2/v3/userinfo", methods=["GET", "POST"])
@bp.route("/oauth2/v2/userinfo", methods=["GET", "POST"])
@bp.route("/v1/userinfo", methods=["GET", "POST"])
def userinfo() -> Response:
    runtime = current_app.extensions["gstack"]
    auth = request.headers.get("Authorization", "")
    token = auth[7:].strip() if auth.lower().startswith("bearer ") else request.values.get("access_token", "")
    found = identity.token_details(runtime.db.session, token) if token else None
    if found is None or not scopes.grants_identity(found[0].scopes.split()):
        return json_response({"error": "invalid_request", "error_description": "Invalid Credentials"}, 401,
                             {"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/", '
                                                  'error="invalid_token"'})
    access, principal = found
    granted = access.scopes.split()
    info: dict = {"sub": identity.subject_id(principal)}
    if scopes.grants_email(granted):
        info.update(email=principal.email, email_verified=True)
    if not scopes.PROFILE_SCOPES.isdisjoint(granted):
        info.update(name=principal.display_name or principal.email, given_name=principal.display_name or "")
    return json_response(info)


@bp.post("/device/code")
@bp.post("/o/oauth2/device/code")
def device_code() -> Response:
    """Start the device flow (RFC 8628); the answer names the page where a person approves the code."""
    endpoint, body = server.device_authorization_endpoint(), _form_body()
    try:
        headers, data, status = endpoint.create_device_authorization_response(
            issuer() + "/device/code", http_method="POST", body=body, headers=_headers())
    except OAuth2Error as e:
        return oauth_error(e)
    client_id = dict(parse_qsl(body)).get("client_id") or (basic_credentials(request) or ("",))[0]
    with server.validator().writing() as session:
        identity.create_device_authorization(session, str(data["device_code"]), str(data["user_code"]), client_id,
                                             str(data.get("scope", "")).split(), endpoint.expires_in,
                                             server.DEVICE_POLL_INTERVAL)
    data.pop("scope", None)
    data["verification_url"] = data["verification_uri"]  # Google's name for it
    return json_response(data, status, {**headers, "Cache-Control": "no-store"})


@bp.get("/.well-known/openid-configuration")
def openid_configuration() -> Response:
    own = issuer()
    return json_response({
        "issuer": own,
        "authorization_endpoint": own + "/o/oauth2/v2/auth",
        "device_authorization_endpoint": own + "/device/code",
        "token_endpoint": own + "/token",
        "userinfo_endpoint": own + "/v1/userinfo",
        "revocation_endpoint": own + "/revoke",
        "jwks_uri": own + "/oauth2/v3/certs",
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "scopes_supported": ["openid", "email", "profile"],
        "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic", "none"],
        "claims_supported": ["aud", "email", "email_verified", "exp", "iat", "iss", "name", "sub"],
        "code_challenge_methods_supported": ["S256"],
        "grant_types_supported": ["authorization_code", "refresh_token", server.DEVICE_GRANT,
                                  "urn:ietf:params:oauth:grant-type:jwt-bearer"],
    })


@bp.get("/oauth2/v3/certs")
def certs() -> Response:
    runtime = current_app.extensions["gstack"]
    signing.current_key(runtime.db.session)
    return json_response(signing.jwks(runtime.db.session))


from gstack.auth import pages  # noqa: E402,F401  (the browser pages attach to ``bp``)
