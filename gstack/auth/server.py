"""gstack's oauthlib endpoints, assembled: which grants the token endpoint speaks, and how.

Everything protocol is oauthlib's. The few subclasses only narrow it to what Google does: PKCE
with S256, Google's wording for a wrong verifier, refresh tokens that are not rotated, and
refresh tokens only for installed apps or ``access_type=offline``.
"""

from __future__ import annotations

import secrets

from flask import current_app
from oauthlib.oauth2 import BearerToken, RevocationEndpoint, TokenEndpoint
from oauthlib.oauth2.rfc6749 import errors
from oauthlib.oauth2.rfc6749.endpoints import AuthorizationEndpoint
from oauthlib.oauth2.rfc6749.grant_types import AuthorizationCodeGrant
from oauthlib.oauth2.rfc6749.grant_types.authorization_code import code_challenge_method_s256
from oauthlib.oauth2.rfc8628.endpoints import DeviceAuthorizationEndpoint
from oauthlib.oauth2.rfc8628.grant_types import DeviceCodeGrant
from oauthlib.openid.connect.core.grant_types import AuthorizationCodeGrant as OpenIDAuthorizationCodeGrant
from oauthlib.openid.connect.core.grant_types import RefreshTokenGrant
from oauthlib.openid.connect.core.grant_types.dispatchers import (
    AuthorizationCodeGrantDispatcher,
    AuthorizationTokenGrantDispatcher,
)

from core import identity
from core.identity import signing
from gstack.auth.jwt_bearer import GRANT_TYPE as JWT_GRANT
from gstack.auth.jwt_bearer import JWTBearerGrant
from gstack.auth.urls import issuer, token_audiences
from gstack.auth.validator import GstackValidator

ACCESS_TOKEN_TTL = 3599  # what Google answers in expires_in
DEVICE_CODE_TTL = 1800
DEVICE_POLL_INTERVAL = 5
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
# Letters a person cannot misread or mistype (no vowels either, so no words): BCDF-GHJK.
USER_CODE_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"


class CodeGrant(AuthorizationCodeGrant):
    """Authorization code with PKCE S256 only (``plain`` protects nothing if the request leaks)."""

    _code_challenge_methods = {"S256": code_challenge_method_s256}

    def validate_code_challenge(self, challenge, challenge_method, verifier):
        if not super().validate_code_challenge(challenge, challenge_method, verifier):
            raise errors.InvalidGrantError(description="Invalid code verifier.")
        return True


class OpenIDCodeGrant(OpenIDAuthorizationCodeGrant):
    """oauthlib's OpenID Connect code grant, on top of :class:`CodeGrant`."""

    def __init__(self, request_validator=None, **kwargs):
        self.proxy_target = CodeGrant(request_validator=request_validator, **kwargs)
        self.custom_validators.post_auth.append(self.openid_authorization_validator)
        self.register_token_modifier(self.add_id_token)


def _online_only(token, token_handler, request):
    """A web client that did not ask for ``access_type=offline`` gets no refresh token (Google's rule)."""
    if not getattr(request, "gstack_offline", True):
        token.pop("refresh_token", None)
    return token


def _granted_scope(grant, token_handler, request):
    """Google's redirect carries the granted ``scope`` next to the code."""
    grant["scope"] = " ".join(request.scopes or [])
    return grant


def _code_grants(validator: GstackValidator) -> tuple[CodeGrant, OpenIDCodeGrant]:
    plain, oidc = CodeGrant(validator), OpenIDCodeGrant(validator)
    for grant in (plain, oidc.proxy_target):
        grant.register_token_modifier(_online_only)
        grant.register_code_modifier(_granted_scope)
    return plain, oidc


def bearer(validator: GstackValidator) -> BearerToken:
    return BearerToken(validator, token_generator=lambda _r: identity.new_access_token(),
                       refresh_token_generator=lambda _r: identity.new_refresh_token(),
                       expires_in=ACCESS_TOKEN_TTL)


def validator() -> GstackValidator:
    return current_app.extensions["gstack"].validator


def token_endpoint() -> TokenEndpoint:
    v = validator()
    session = v.session_factory()
    own = issuer()

    def sign(principal, audience):
        return signing.sign_id_token(session, own, identity.subject_id(principal), principal.email, audience)

    plain, oidc = _code_grants(v)
    grants = {
        "authorization_code": AuthorizationTokenGrantDispatcher(v, default_grant=plain, oidc_grant=oidc),
        "refresh_token": RefreshTokenGrant(v, issue_new_refresh_tokens=False),
        DEVICE_GRANT: DeviceCodeGrant(v),
        JWT_GRANT: JWTBearerGrant(v, token_uris=token_audiences(), id_token_signer=sign),
    }
    # types-oauthlib types default_token_type as a str; oauthlib takes (and calls) the token handler.
    return TokenEndpoint(default_grant_type=JWT_GRANT, default_token_type=bearer(v),  # type: ignore[arg-type]
                         grant_types=grants)


def authorization_endpoint() -> AuthorizationEndpoint:
    v = validator()
    plain, oidc = _code_grants(v)
    code = AuthorizationCodeGrantDispatcher(default_grant=plain, oidc_grant=oidc)
    return AuthorizationEndpoint(default_response_type="code",
                                 default_token_type=bearer(v),  # type: ignore[arg-type]  # as in token_endpoint
                                 response_types={"code": code})


def revocation_endpoint() -> RevocationEndpoint:
    return RevocationEndpoint(validator())


def user_code() -> str:
    letters = "".join(secrets.choice(USER_CODE_ALPHABET) for _ in range(8))
    return f"{letters[:4]}-{letters[4:]}"


def device_authorization_endpoint() -> DeviceAuthorizationEndpoint:
    return DeviceAuthorizationEndpoint(validator(), verification_uri=issuer() + "/device",
                                       expires_in=DEVICE_CODE_TTL, interval=DEVICE_POLL_INTERVAL,
                                       # oauthlib calls it with no argument; its annotation says one (None)
                                       user_code_generator=user_code)  # type: ignore[arg-type]
