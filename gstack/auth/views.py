"""OAuth2 endpoints on Google's paths. oauthlib speaks the protocol; these views adapt Flask."""

from __future__ import annotations

from urllib.parse import urlencode

from flask import Blueprint, Response, current_app, request
from oauthlib.oauth2 import BearerToken, TokenEndpoint

from gstack.auth import keys
from gstack.auth.jwt_bearer import GOOGLE_TOKEN_URI, GRANT_TYPE, JWTBearerGrant
from gstack.gce.render import JSON_TYPE

bp = Blueprint("oauth", __name__)


def issuer() -> str:
    configured = current_app.config["GSTACK"].base_url
    return (configured or request.host_url).rstrip("/")


def token_endpoint() -> TokenEndpoint:
    runtime = current_app.extensions["gstack"]
    db = runtime.db
    own = issuer()

    def sign(principal, audience):
        return keys.sign_id_token(db.session, own, str(10**20 + principal.id), principal.email, audience)

    grant = JWTBearerGrant(runtime.validator, token_uris=(GOOGLE_TOKEN_URI, own + "/token", own + "/oauth2/v4/token",
                                                          "https://www.googleapis.com/oauth2/v4/token",
                                                          "https://accounts.google.com/o/oauth2/token"),
                           id_token_signer=sign)
    bearer = BearerToken(runtime.validator, token_generator=lambda _r: runtime.new_token(), expires_in=3599)
    return TokenEndpoint(default_grant_type=GRANT_TYPE, default_token_type=bearer, grant_types={GRANT_TYPE: grant})


def _form_body() -> str:
    """The request's parameters re-encoded strictly: oauthlib silently drops a whole form body holding a
    character it deems unencoded (a bare '"'), and Google's endpoint also takes a JSON object."""
    if request.is_json:
        data = request.get_json(silent=True)
        pairs = [(str(k), str(v)) for k, v in data.items()] if isinstance(data, dict) else []
    else:
        pairs = list(request.form.items(multi=True))
    return urlencode(pairs)


@bp.post("/token")
@bp.post("/oauth2/v4/token")
@bp.post("/o/oauth2/token")
def token() -> Response:
    headers, body, status = token_endpoint().create_token_response(
        request.base_url, http_method="POST", body=_form_body(),
        headers={"Content-Type": "application/x-www-form-urlencoded"})
    headers = {k: v for k, v in headers.items() if k.lower() != "content-type"}
    headers["Cache-Control"] = "no-store"
    return Response(body, status=status, headers=headers, content_type=JSON_TYPE)


@bp.get("/oauth2/v3/certs")
def certs() -> Response:
    import orjson

    runtime = current_app.extensions["gstack"]
    keys.current_key(runtime.db.session)
    return Response(orjson.dumps(keys.jwks(runtime.db.session)), content_type=JSON_TYPE)
