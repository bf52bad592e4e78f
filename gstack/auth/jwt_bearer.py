"""The RFC 7523 JWT-bearer grant, as google-auth and gcloud send it for service accounts.

oauthlib has no grant type for it, so this is one: it plugs into oauthlib's TokenEndpoint and
leaves token issuing, response shaping and errors to oauthlib.

Replays are refused by ``jti`` (RFC 7523 section 3, item 7), not by the whole assertion: google-auth
and gcloud put no ``jti`` in their assertions and RS256 signatures are deterministic, so two
credentials of one key refreshing within the same second send byte-identical assertions, and
Google accepts both. An assertion that carries a ``jti`` is accepted once.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

import jwt
from oauthlib.oauth2.rfc6749 import errors
from oauthlib.oauth2.rfc6749.grant_types.base import GrantTypeBase

from core.identity import Principal

if TYPE_CHECKING:  # the validator module imports this one
    from gstack.auth.validator import GstackValidator

GRANT_TYPE = "urn:ietf:params:oauth:grant-type:jwt-bearer"
GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"
MAX_LIFETIME = 3600
CLOCK_SKEW = 300


class InvalidGrant(errors.InvalidGrantError):
    def __init__(self, description: str, request=None):
        super().__init__(description=description, request=request)


def _candidate_keys(assertion: str, header: dict, validator: GstackValidator) -> list[tuple[str, Principal]]:
    """The keys that may have signed the assertion: the one its ``kid`` names; without a ``kid`` (Node's
    google-auth-library, libcloud, Google's own server-to-server example), the active keys of the
    service account its ``iss`` names."""
    if header.get("kid"):
        found = validator.service_account_key(str(header["kid"]))
        return [found] if found is not None else []
    try:
        issuer = jwt.decode(assertion, options={"verify_signature": False}).get("iss")
    except jwt.PyJWTError:
        return []
    return validator.service_account_keys(issuer) if isinstance(issuer, str) and issuer else []


def _verify(assertion: str, keys: list[tuple[str, Principal]]) -> tuple[dict[str, Any], Principal] | None:
    """(claims, principal) of the first key whose signature matches, None when none does."""
    for public_pem, principal in keys:
        try:
            return jwt.decode(assertion, public_pem, algorithms=["RS256"],
                              options={"verify_aud": False, "verify_exp": False, "verify_iat": False}), principal
        except jwt.PyJWTError:
            continue
    return None


def signed_identity(assertion: str, validator: GstackValidator) -> tuple[dict[str, Any], Principal]:
    """Verify a service-account-signed JWT (RS256, key by ``kid`` or by issuer); (claims, principal) or
    InvalidGrant."""
    try:
        header = jwt.get_unverified_header(assertion)
    except jwt.PyJWTError:
        raise InvalidGrant("Invalid JWT: the assertion is malformed.") from None
    if header.get("alg") != "RS256":
        raise InvalidGrant("Invalid JWT Signature.")
    verified = _verify(assertion, _candidate_keys(assertion, header, validator))
    if verified is None:
        raise InvalidGrant("Invalid JWT Signature.")
    claims, principal = verified
    if claims.get("iss") != principal.email:
        raise InvalidGrant("Invalid JWT: the issuer does not match the key's service account.")
    iat, exp = claims.get("iat"), claims.get("exp")
    now = time.time()
    if (not isinstance(iat, (int, float)) or not isinstance(exp, (int, float)) or exp - iat > MAX_LIFETIME
            or exp <= iat or iat > now + CLOCK_SKEW or exp < now - CLOCK_SKEW):
        raise InvalidGrant("Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable "
                           "timeframe. Check your iat and exp values in the JWT claim.")
    return claims, principal


class JWTBearerGrant(GrantTypeBase):
    request_validator: GstackValidator

    def __init__(self, request_validator: GstackValidator, *, token_uris: tuple[str, ...], id_token_signer):
        super().__init__(request_validator)
        self.token_uris = token_uris
        self.id_token_signer = id_token_signer

    def create_token_response(self, request, token_handler):
        headers = self._get_default_headers()  # type: ignore[attr-defined]  # oauthlib's, missing from types-oauthlib
        try:
            claims, principal = self.validate_token_request(request)
        except errors.OAuth2Error as e:
            headers.update(e.headers)
            return headers, e.json, e.status_code
        if claims.get("target_audience"):
            token = {"id_token": self.id_token_signer(principal, claims["target_audience"])}
            return headers, json.dumps(token), 200
        request.principal_id = principal.id
        request.client_id = str(10**20 + principal.id)  # the account's unique id, as Google's tokeninfo shows
        request.scopes = (claims.get("scope") or "").split()
        token = token_handler.create_token(request, refresh_token=False)
        self.request_validator.save_bearer_token(token, request)
        body = {"access_token": token["access_token"], "expires_in": token["expires_in"], "token_type": "Bearer"}
        if "openid" in request.scopes:
            body["id_token"] = self.id_token_signer(principal, request.client_id)
        return headers, json.dumps(body), 200

    def validate_token_request(self, request):
        if request.grant_type != GRANT_TYPE:
            raise errors.UnsupportedGrantTypeError(request=request)
        assertion = request.assertion if hasattr(request, "assertion") else None
        assertion = assertion or request._params.get("assertion")
        if not assertion:
            raise errors.InvalidRequestError(description="Missing required parameter: assertion", request=request)
        claims, principal = signed_identity(assertion, self.request_validator)
        if claims.get("aud") not in self.token_uris:
            raise InvalidGrant("Invalid JWT: the audience is not this token endpoint.", request)
        if not claims.get("target_audience") and not claims.get("scope"):
            raise errors.InvalidScopeError(description="Invalid OAuth scope or ID token audience provided.",
                                           request=request)
        jti = claims.get("jti")
        if jti is not None and not self.request_validator.record_assertion(f"jti:{claims['iss']}:{jti}",
                                                                           float(claims["exp"])):
            raise InvalidGrant("Invalid JWT: the assertion has already been used.", request)
        return claims, principal
