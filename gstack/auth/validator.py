"""oauthlib's RequestValidator for gstack: where tokens, keys and assertions are looked up.

Protocol handling stays in oauthlib; this class only answers its questions from the database.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from oauthlib.oauth2 import RequestValidator
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from core.identity import digest
from core.models import AccessToken, Principal, ServiceAccountKey, UsedAssertion


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

    def lookup_token(self, token: str) -> Identity | None:
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

    def validate_bearer_token(self, token, scopes, request) -> bool:
        """Valid = known, not revoked, not expired. Scopes are checked by the caller, which must
        tell a bad token (401) from a token lacking scope (403)."""
        if not token:
            return False
        ident = self.lookup_token(token)
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

    def record_assertion(self, assertion: str, expires: float) -> bool:
        """Remember an accepted assertion until it expires; False if it was seen before (a replay)."""
        session = self.session_factory()
        session.execute(delete(UsedAssertion).where(UsedAssertion.expires < time.time()))
        session.add(UsedAssertion(digest=digest(assertion), expires=expires))
        try:
            session.commit()
        except IntegrityError:
            session.rollback()
            return False
        return True
