"""oauthlib's RequestValidator for gstack: where clients, codes, tokens, keys and assertions are looked up.

Protocol handling stays in oauthlib; this class only answers its questions from the database. Where
Google words an error in its own way (``Token has been expired or revoked.``), the answer raises
oauthlib's error with that description instead of returning False.
"""

from __future__ import annotations

import base64
import threading
import time
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from flask import has_request_context
from oauthlib.oauth2.rfc6749 import errors
from oauthlib.oauth2.rfc6749.errors import OAuth2Error
from oauthlib.oauth2.rfc8628 import errors as device_errors
from oauthlib.openid import RequestValidator

from core import identity
from core.identity import Principal, digest, oauth, signing
from gstack.auth import clients, scopes
from gstack.auth.jwt_bearer import GRANT_TYPE as JWT_GRANT
from gstack.auth.jwt_bearer import signed_identity
from gstack.auth.scopes import is_known

CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"
# Audiences a self-signed JWT may name instead of scopes: Google's compute hosts, or this server.
_GOOGLE_API_HOSTS = ("compute.googleapis.com", "www.googleapis.com")
_API_AUDIENCE_PATHS = ("", "/", "/compute/v1", "/compute/v1/")
# oauthlib endpoints that accept a bare client_id from a confidential client (as Google does).
_CLIENT_ID_ONLY_PATHS = ("/device/code", "/revoke")
# validate_device_code's answers: oauthlib's DeviceCodeGrant.DEVICE_CODE_* statuses, spelt as oauthlib
# defines them (types-oauthlib does not declare those names).
DEVICE_AUTHORIZED = "authorized"
DEVICE_PENDING = device_errors.AuthorizationPendingError.error
DEVICE_SLOW_DOWN = device_errors.SlowDownError.error
DEVICE_EXPIRED = device_errors.ExpiredTokenError.error
DEVICE_DENIED = device_errors.AccessDenied.error


def is_jwt(token: str) -> bool:
    return token.startswith("eyJ") and token.count(".") == 2


def _api_audience(aud: object, host: str) -> bool:
    """Is ``aud`` (a string or a list) one of this API's audiences and nothing else? Google's compute
    host (``https://compute.googleapis.com/``, what google-auth's AuthorizedSession puts there from
    the client library's default host) or this server (its root or ``/compute/v1/``, on the host
    the caller used). Every audience of a list must be ours: a token also meant for another
    service could be replayed here by that service."""
    auds = aud if isinstance(aud, list) else [aud]
    if not auds:
        return False
    for a in auds:
        if not isinstance(a, str) or not a:
            return False
        parts = urlsplit(a if "://" in a else "//" + a)
        netloc = parts.netloc.removesuffix(":443")
        ours = netloc in _GOOGLE_API_HOSTS or (bool(host) and parts.netloc == host)
        if not ours or parts.path not in _API_AUDIENCE_PATHS or parts.query or parts.fragment:
            return False
    return True


@dataclass(frozen=True)
class Identity:
    principal_id: int
    email: str
    admin: bool
    scopes: frozenset[str]
    expires: float


class TokenCache:
    """A short-lived cache of token lookups: a GET must not cost two extra queries.

    Revocation in this process clears the entry at once; other processes see it within ``ttl``.
    """

    def __init__(self, ttl: float = 2.0, size: int = 10000):
        self.ttl, self.size = ttl, size
        self._data: dict[str, tuple[float, Identity | None]] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> tuple[bool, Identity | None]:
        hit = self._data.get(key)
        if hit is None or hit[0] < time.monotonic():
            return False, None
        return True, hit[1]

    def put(self, key: str, value: Identity | None) -> None:
        with self._lock:
            if len(self._data) >= self.size:
                self._data.clear()
            self._data[key] = (time.monotonic() + self.ttl, value)

    def drop(self, key: str) -> None:
        with self._lock:
            self._data.pop(key, None)


def basic_credentials(request) -> tuple[str, str] | None:
    """``Authorization: Basic`` client credentials (form-urlencoded, RFC 6749 section 2.3.1)."""
    auth = request.headers.get("Authorization", "")
    if not auth.lower().startswith("basic "):
        return None
    try:
        user, _, password = base64.b64decode(auth[6:].strip()).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return None
    return unquote(user), unquote(password)


class GstackValidator(RequestValidator):
    def __init__(self, session_factory, cache: TokenCache | None = None):
        self.session_factory = session_factory  # () -> Session usable in the current context
        self.cache = cache or TokenCache()

    def writing(self):
        """The request's session in a write transaction (``BEGIN IMMEDIATE`` on SQLite), committed at the end."""
        return oauth.write_transaction(self.session_factory())

    def forget(self, token_hashes) -> None:
        for key in token_hashes or ():
            self.cache.drop(key)

    # -- resource server ---------------------------------------------------------------------

    @staticmethod
    def cache_key(token: str, host: str = "") -> str:
        """Where :meth:`lookup_token` keeps its answer: a self-signed JWT's depends on the host it
        was sent to (its audience), an issued token's does not."""
        return f"jwt:{host}:{digest(token)}" if is_jwt(token) else digest(token)

    def cached_identity(self, token: str, host: str = "") -> tuple[bool, Identity | None]:
        """(True, :meth:`lookup_token`'s answer) when this process looked the token up less than the
        cache's ttl ago and no revocation here dropped it since, else (False, None); never a query
        (the lighter GET path runs outside any request context and session)."""
        return self.cache.get(self.cache_key(token, host))

    def lookup_token(self, token: str, host: str = "") -> Identity | None:
        """The identity behind an access token we issued, or behind a self-signed service-account JWT."""
        if is_jwt(token):
            return self.lookup_self_signed(token, host)
        key = self.cache_key(token)
        found, ident = self.cache.get(key)
        if found:
            return ident
        owner = oauth.token_owner(self.session_factory(), key)
        ident = None if owner is None else Identity(owner.principal_id, owner.email, owner.admin, owner.scopes,
                                                    owner.expires)
        self.cache.put(key, ident)
        return ident

    def lookup_self_signed(self, token: str, host: str) -> Identity | None:
        """A JWT signed with a service-account key, used directly as the bearer token (AIP-4111): what
        google-cloud-* clients send with ``always_use_jwt_access`` and gcloud with
        ``auth/service_account_use_self_signed_jwt``. Claims: iss = sub = the account, iat, exp, and
        ``scope`` (space-separated) or an ``aud`` naming the API (then every compute scope applies).
        google-auth sends one or the other; a JWT that carries an ``aud`` must name this API whether
        or not it has a ``scope`` (one meant for another service is refused)."""
        key = self.cache_key(token, host)
        found, ident = self.cache.get(key)
        if found:
            return ident
        ident = None
        try:
            claims, principal = signed_identity(token, self)
        except OAuth2Error:
            claims, principal = {}, None
        if principal is not None and claims.get("sub", claims["iss"]) == claims["iss"]:
            if "aud" in claims and not _api_audience(claims["aud"], host):
                granted = None
            elif claims.get("scope"):
                granted = frozenset(str(claims["scope"]).split())
            elif "aud" in claims:
                granted = frozenset({CLOUD_PLATFORM})
            else:
                granted = None
            if granted is not None:
                ident = Identity(principal.id, principal.email, principal.admin, granted, float(claims["exp"]))
        self.cache.put(key, ident)
        return ident

    def validate_bearer_token(self, token, scopes, request) -> bool:
        """Valid = known, not revoked, not expired. Scopes are checked by the caller, which must
        tell a bad token (401) from a token lacking scope (403)."""
        if not token:
            return False
        ident = self.lookup_token(token, urlsplit(request.uri or "").netloc)
        if ident is None or ident.expires < time.time():
            return False
        request.identity = ident
        return True

    # -- clients -------------------------------------------------------------------------------

    def _client_credentials(self, request) -> tuple[str | None, str | None]:
        basic = basic_credentials(request)
        if basic is not None:
            return basic
        return request.client_id, request.client_secret

    def client_authentication_required(self, request, *args, **kwargs) -> bool:
        """A client that has a secret must present it, except where Google asks only for the client id
        (the device-code and revocation endpoints). The JWT-bearer grant has no client at all."""
        if request.grant_type == JWT_GRANT:
            return False
        client_id, secret = self._client_credentials(request)
        if secret is not None:
            return True
        if urlsplit(request.uri or "").path.endswith(_CLIENT_ID_ONLY_PATHS):
            return False
        client = clients.find(self.session_factory(), client_id)
        return client is None or not client.public

    def authenticate_client(self, request, *args, **kwargs) -> bool:
        client_id, secret = self._client_credentials(request)
        client = clients.find(self.session_factory(), client_id)
        if client is None:
            raise errors.InvalidClientError(description="The OAuth client was not found.", request=request)
        if not identity.same_secret(secret or "", client.secret_hash):
            raise errors.InvalidClientError(description="Unauthorized", request=request)
        request.client = client
        request.client_id = client.client_id
        return True

    def authenticate_client_id(self, client_id, request, *args, **kwargs) -> bool:
        if request.grant_type == JWT_GRANT or (urlsplit(request.uri or "").path.endswith("/revoke") and not client_id):
            return True
        client = clients.find(self.session_factory(), client_id)
        if client is None:
            raise errors.InvalidClientError(description="The OAuth client was not found.", request=request)
        request.client = client
        return True

    def validate_client_id(self, client_id, request, *args, **kwargs) -> bool:
        client = clients.find(self.session_factory(), client_id)
        if client is None:
            raise errors.InvalidClientError(description="The OAuth client was not found.", request=request)
        request.client = client
        return True

    def validate_grant_type(self, client_id, grant_type, client, request, *args, **kwargs) -> bool:
        return True

    def validate_response_type(self, client_id, response_type, client, request, *args, **kwargs) -> bool:
        return response_type == "code"

    def validate_redirect_uri(self, client_id, redirect_uri, request, *args, **kwargs) -> bool:
        client = clients.find(self.session_factory(), client_id)
        return client is not None and client.allows_redirect(redirect_uri)

    def get_default_redirect_uri(self, client_id, request, *args, **kwargs):
        return None  # Google requires redirect_uri; so do we

    def get_default_scopes(self, client_id, request, *args, **kwargs) -> list[str]:
        return []

    def validate_scopes(self, client_id, scopes, client, request, *args, **kwargs) -> bool:
        if not scopes:
            raise errors.InvalidScopeError(description="Missing required parameter: scope", request=request)
        invalid = [s for s in scopes if not is_known(s)]
        if invalid:
            raise errors.InvalidScopeError(
                description=f"Some requested scopes were invalid. {{invalid=[{', '.join(invalid)}]}}", request=request)
        return True

    def is_pkce_required(self, client_id, request) -> bool:
        """Installed apps and public clients cannot keep a secret: their codes need PKCE."""
        client = clients.find(self.session_factory(), client_id)
        return client is None or client.public or client.kind == "installed"

    # -- authorization codes ------------------------------------------------------------------

    def save_authorization_code(self, client_id, code, request, *args, **kwargs) -> None:
        client = request.client or clients.find(self.session_factory(), client_id)
        if client is None:  # validate_client_id found it before
            raise errors.InvalidClientError(description="The OAuth client was not found.", request=request)
        offline = client.kind == "installed" or request._params.get("access_type") == "offline"
        with self.writing() as session:
            identity.create_code(session, code["code"], client_id=client_id, principal_id=request.user.id,
                                 redirect_uri=request.redirect_uri, scopes=request.scopes,
                                 challenge=request.code_challenge, method=request.code_challenge_method,
                                 nonce=request.nonce, offline=offline)

    def _code(self, code: str, request):
        cached = getattr(request, "gstack_code", None)
        if cached is None or cached[0] != code:
            cached = (code, identity.find_code(self.session_factory(), code))
            request.gstack_code = cached
        return cached[1]

    def validate_code(self, client_id, code, client, request, *args, **kwargs) -> bool:
        """Redeem the code: it is single use even when the rest of the request then fails (a wrong PKCE
        verifier burns it). A code presented twice revokes every token issued from it."""
        row = self._code(code, request)
        if row is None:
            raise errors.InvalidGrantError(description="Malformed auth code.", request=request)
        with self.writing() as session:
            redeemed = identity.redeem_code(session, row)
            if not redeemed:
                self.forget(identity.revoke_grant(session, row.code_hash))
        principal = oauth.principal(self.session_factory(), row.principal_id)
        if not redeemed or row.client_id != client_id or row.expires < time.time() or principal is None \
                or principal.disabled:
            raise errors.InvalidGrantError(description="Bad Request", request=request)
        request.user = principal
        request.scopes = row.scopes.split()
        request.gstack_grant = row.code_hash
        request.gstack_offline = row.offline
        return True

    def get_code_challenge(self, code, request):
        row = self._code(code, request)
        return row.code_challenge if row is not None else None

    def get_code_challenge_method(self, code, request):
        row = self._code(code, request)
        return row.code_challenge_method if row is not None else None

    def confirm_redirect_uri(self, client_id, code, redirect_uri, client, request, *args, **kwargs) -> bool:
        row = self._code(code, request)
        return row is not None and redirect_uri == row.redirect_uri

    def invalidate_authorization_code(self, client_id, code, request, *args, **kwargs) -> None:
        """Nothing left to do: validate_code redeemed the code already."""

    def get_authorization_code_scopes(self, client_id, code, redirect_uri, request) -> list[str]:
        row = self._code(code, request)
        return row.scopes.split() if row is not None else []

    def get_authorization_code_nonce(self, client_id, code, redirect_uri, request):
        row = self._code(code, request)
        return row.nonce if row is not None else None

    # -- refresh tokens --------------------------------------------------------------------------

    def validate_refresh_token(self, refresh_token, client, request, *args, **kwargs) -> bool:
        row = identity.find_refresh_token(self.session_factory(), refresh_token)
        if row is None or client is None or row.client_id != client.client_id:
            raise errors.InvalidGrantError(description="Token has been expired or revoked.", request=request)
        request.user = oauth.principal(self.session_factory(), row.principal_id)
        request.gstack_refresh = row
        request.gstack_grant = row.grant
        return True

    def get_original_scopes(self, refresh_token, request, *args, **kwargs) -> list[str]:
        return request.gstack_refresh.scopes.split()

    def is_within_original_scope(self, request_scopes, refresh_token, request, *args, **kwargs) -> bool:
        outside = scopes.within(request_scopes, request.gstack_refresh.scopes.split())
        if outside:
            raise errors.InvalidScopeError(
                description=f"Some requested scopes were invalid. {{invalid=[{', '.join(outside)}]}}", request=request)
        return True

    def rotate_refresh_token(self, request) -> bool:
        return False  # Google does not rotate refresh tokens

    def refresh_id_token(self, request) -> bool:
        return True

    # -- device authorization (RFC 8628) -----------------------------------------------------------

    def validate_device_code(self, client_id, code, request, *args, **kwargs) -> str | None:
        row = identity.find_device(self.session_factory(), code)
        if row is None or row.client_id != client_id or row.status == "consumed":
            return None
        now = time.time()
        if row.expires < now:
            return DEVICE_EXPIRED
        if row.status == "denied":
            return DEVICE_DENIED
        if row.status == "pending":
            with self.writing() as session:
                too_fast = oauth.poll_device(session, row, now)
            return DEVICE_SLOW_DOWN if too_fast else DEVICE_PENDING
        with self.writing() as session:
            consumed = identity.consume_device(session, row)
        if not consumed or row.principal_id is None:  # an authorized device has its principal
            return None
        request.user = oauth.principal(self.session_factory(), row.principal_id)
        request.scopes = row.scopes.split()
        request.gstack_grant = row.device_code_hash
        return DEVICE_AUTHORIZED

    # -- issuing ----------------------------------------------------------------------------------

    def save_bearer_token(self, token, request, *args, **kwargs) -> None:
        """Store the access token and, when this grant issued one, the refresh token (digests only)."""
        # The JWT-bearer grant sets principal_id; every other grant sets the user (oauthlib's Request has one).
        principal_id = getattr(request, "principal_id", None) or request.user.id
        grant = getattr(request, "gstack_grant", None)
        refresh = getattr(request, "gstack_refresh", None)
        granted = list(request.scopes or [])
        with self.writing() as session:
            refresh_id = refresh.id if refresh is not None else None
            if token.get("refresh_token") and refresh is None:
                refresh_id = identity.store_refresh_token(session, token["refresh_token"], principal_id,
                                                          request.client_id, granted, grant).id
            identity.store_access_token(session, token["access_token"], principal_id, request.client_id or "",
                                        granted, int(token["expires_in"]), refresh_token_id=refresh_id, grant=grant)

    def finalize_id_token(self, id_token, token, token_handler, request) -> str:
        """Complete oauthlib's ID token (aud, iat, nonce, at_hash) and sign it with the JWKS key."""
        from gstack.auth.urls import issuer

        user = request.user
        now = int(time.time())
        id_token.update({"iss": issuer() if has_request_context() else "", "sub": identity.subject_id(user),
                         "azp": request.client_id, "exp": now + int(token.get("expires_in", 3600))})
        if scopes.grants_email(request.scopes):
            id_token.update({"email": user.email, "email_verified": True})
        return signing.sign(self.session_factory(), id_token)

    def validate_silent_login(self, request) -> bool:
        return False  # prompt=none: gstack remembers no consent, so the user must always be asked

    def validate_silent_authorization(self, request) -> bool:
        return False

    def validate_user_match(self, id_token_hint, scopes, claims, request) -> bool:
        return True

    # -- revocation ---------------------------------------------------------------------------------

    def revoke_token(self, token, token_type_hint, request, *args, **kwargs) -> None:
        with self.writing() as session:
            revoked = identity.revoke_token(session, token)
        if revoked is None:
            raise UnknownToken()
        self.forget(revoked)

    # -- JWT bearer (RFC 7523) -------------------------------------------------------------------

    def service_account_key(self, kid: str) -> tuple[str, Principal] | None:
        return oauth.service_account_key(self.session_factory(), kid)

    def service_account_keys(self, email: str) -> list[tuple[str, Principal]]:
        return oauth.active_service_account_keys(self.session_factory(), email)

    def record_assertion(self, key: str, expires: float) -> bool:
        """Remember an accepted assertion's ``key`` (its issuer and ``jti``) until it expires; False if it
        was seen before (a replay)."""
        return oauth.remember_assertion(self.session_factory(), digest(key), expires)


class UnknownToken(OAuth2Error):
    """/revoke of a token we do not know (or revoked already): Google answers 400 invalid_token."""

    error = "invalid_token"
    description = "Token expired or revoked"
    status_code = 400
