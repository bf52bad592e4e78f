"""oauthlib's RequestValidator for gstack: where tokens, keys and assertions are looked up.

Protocol handling stays in oauthlib; this class only answers its questions from the database.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from oauthlib.oauth2 import RequestValidator
from oauthlib.oauth2.rfc6749.errors import OAuth2Error
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from core.identity import digest
from core.models import AccessToken, Principal, ServiceAccountKey, UsedAssertion
from gstack.auth.jwt_bearer import signed_identity

CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"
# Audiences a self-signed JWT may name instead of scopes: Google's compute hosts, or this server.
_GOOGLE_API_HOSTS = ("compute.googleapis.com", "www.googleapis.com")


def is_jwt(token: str) -> bool:
    return token.startswith("eyJ") and token.count(".") == 2


def _api_audience(aud: object, host: str) -> bool:
    auds = aud if isinstance(aud, list) else [aud]
    for a in auds:
        if not isinstance(a, str) or not a:
            continue
        netloc = urlsplit(a if "://" in a else "//" + a).netloc
        if netloc in _GOOGLE_API_HOSTS or netloc.removesuffix(":443") in _GOOGLE_API_HOSTS or (host and netloc == host):
            return True
    return False


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


class GstackValidator(RequestValidator):
    def __init__(self, session_factory, cache: TokenCache | None = None):
        self.session_factory = session_factory  # () -> Session usable in the current context
        self.cache = cache or TokenCache()

    # -- resource server ---------------------------------------------------------------------

    def lookup_token(self, token: str, host: str = "") -> Identity | None:
        """The identity behind an access token we issued, or behind a self-signed service-account JWT."""
        if is_jwt(token):
            return self.lookup_self_signed(token, host)
        key = digest(token)
        found, ident = self.cache.get(key)
        if found:
            return ident
        session = self.session_factory()
        row = session.execute(
            select(AccessToken.expires, AccessToken.revoked, AccessToken.scopes, Principal.id, Principal.email,
                   Principal.admin, Principal.disabled)
            .join(Principal, Principal.id == AccessToken.principal_id)
            .where(AccessToken.token_hash == key)
        ).first()
        ident = None
        if row is not None and not row.revoked and not row.disabled:
            ident = Identity(row.id, row.email, row.admin, frozenset(row.scopes.split()), row.expires)
        self.cache.put(key, ident)
        return ident

    def lookup_self_signed(self, token: str, host: str) -> Identity | None:
        """A JWT signed with a service-account key, used directly as the bearer token (AIP-4111): what
        google-cloud-* clients send with ``always_use_jwt_access`` and gcloud with
        ``auth/service_account_use_self_signed_jwt``. Claims: iss = sub = the account, iat, exp, and
        ``scope`` (space-separated) or an ``aud`` naming the API (then every compute scope applies)."""
        key = f"jwt:{host}:{digest(token)}"
        found, ident = self.cache.get(key)
        if found:
            return ident
        ident = None
        try:
            claims, principal = signed_identity(token, self)
        except OAuth2Error:
            claims, principal = None, None
        if claims is not None and claims.get("sub", claims["iss"]) == claims["iss"]:
            if claims.get("scope"):
                scopes = frozenset(str(claims["scope"]).split())
            elif _api_audience(claims.get("aud"), host):
                scopes = frozenset({CLOUD_PLATFORM})
            else:
                scopes = None
            if scopes is not None:
                ident = Identity(principal.id, principal.email, principal.admin, scopes, float(claims["exp"]))
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

    # -- token endpoint ----------------------------------------------------------------------

    def client_authentication_required(self, request, *args, **kwargs) -> bool:
        return False

    def authenticate_client_id(self, client_id, request, *args, **kwargs) -> bool:
        return True

    def validate_grant_type(self, client_id, grant_type, client, request, *args, **kwargs) -> bool:
        return True

    def save_bearer_token(self, token, request, *args, **kwargs) -> None:
        session = self.session_factory()
        session.add(AccessToken(token_hash=digest(token["access_token"]), principal_id=request.principal_id,
                                client_id=request.client_id or "", scopes=" ".join(request.scopes or []),
                                expires=time.time() + int(token["expires_in"]), revoked=False,
                                created=time.time()))
        session.commit()

    # -- JWT bearer (RFC 7523) -----------------------------------------------------------------

    def service_account_key(self, kid: str) -> tuple[str, Principal] | None:
        session = self.session_factory()
        row = session.execute(
            select(ServiceAccountKey, Principal).join(Principal, Principal.id == ServiceAccountKey.principal_id)
            .where(ServiceAccountKey.key_id == kid)
        ).first()
        if row is None or row[0].disabled or row[1].disabled:
            return None
        return row[0].public_pem, row[1]

    def record_assertion(self, key: str, expires: float) -> bool:
        """Remember an accepted assertion's ``key`` (its issuer and ``jti``) until it expires; False if it
        was seen before (a replay)."""
        session = self.session_factory()
        session.execute(delete(UsedAssertion).where(UsedAssertion.expires < time.time()))
        session.add(UsedAssertion(digest=digest(key), expires=expires))
        try:
            session.commit()
        except IntegrityError:
            session.rollback()
            return False
        return True
