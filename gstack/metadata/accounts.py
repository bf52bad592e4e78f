"""The credentials an instance's metadata server hands its guest: access tokens and ID tokens of
the instance's service account, minted by gstack's own OAuth server (the same token table the API
checks bearer tokens against), so a token carries exactly the instance's access scopes and an
instance with ``compute.readonly`` cannot write.

Like GCE's, the server hands out the same access token until it is close to expiry (``expires_in``
counts down), instead of minting one per request: guest agents and client libraries ask often.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from core.services import instance_metadata
from core.services.admin import transaction
from core.services.instance_metadata import GuestView, Sessions

# A cached token is handed out while it has at least this long to live (google-auth refreshes
# a token 3 min 45 s before it expires; a fresh one leaves it room).
REUSE_MARGIN = 300


class TokenRefused(Exception):
    """A token request the metadata server answers with an error (status and text, as GCE does)."""

    def __init__(self, status: int, text: str):
        super().__init__(text)
        self.status = status
        self.text = text


@dataclass
class _Cached:
    token: str
    expires: float


class Minter:
    """Access and ID tokens for the instances one metadata server serves."""

    def __init__(self, sessions: Sessions, issuer: str):
        self.sessions = sessions
        self.issuer = issuer
        self._cache: dict[tuple[str, tuple[str, ...]], _Cached] = {}
        self._lock = threading.Lock()

    def access_token(self, view: GuestView, email: str, requested: str | None) -> dict[str, object]:
        """The body of ``service-accounts/EMAIL/token``: the instance's scopes, or the subset of
        them ``?scopes=`` names (a scope the instance lacks is refused: scopes are the limit GCE's
        access scopes set, and the guest may not widen them)."""
        scopes = _scopes_of(view, email)
        if requested:
            wanted = [s.strip() for s in requested.split(",") if s.strip()]
            beyond = [s for s in wanted if s not in scopes]
            if beyond:
                raise TokenRefused(400, f"The instance's service account has no access scope {beyond[0]}.")
            scopes = wanted
        key = (email, tuple(sorted(scopes)))
        now = time.time()
        with self._lock:
            cached = self._cache.get(key)
            if cached is None or cached.expires - now < REUSE_MARGIN:
                try:
                    with transaction(self.sessions) as session:
                        token, ttl = instance_metadata.access_token(session, view.project, email, list(scopes))
                except instance_metadata.NoSuchAccount as exc:
                    raise TokenRefused(404, f"The service account {exc} does not exist.") from exc
                cached = self._cache[key] = _Cached(token, now + ttl)
        return {"access_token": cached.token, "expires_in": int(cached.expires - now), "token_type": "Bearer"}

    def id_token(self, view: GuestView, email: str, audience: str | None, token_format: str | None) -> str:
        """The body of ``service-accounts/EMAIL/identity?audience=...``: a JWT signed with the keys
        gstack publishes at ``/oauth2/v3/certs``."""
        _scopes_of(view, email)
        if not audience:
            raise TokenRefused(400, "non-empty audience parameter required")
        try:
            with transaction(self.sessions) as session:
                return instance_metadata.id_token(session, view, email, self.issuer, audience, token_format == "full")
        except instance_metadata.NoSuchAccount as exc:
            raise TokenRefused(404, f"The service account {exc} does not exist.") from exc


def account_email(view: GuestView, alias: str) -> str | None:
    """The email ``default`` or an email names among the instance's service accounts; None otherwise."""
    for sa in view.body.get("serviceAccounts", []):
        if alias in ("default", sa.get("email")):
            return str(sa["email"])
    return None


def _scopes_of(view: GuestView, email: str) -> list[str]:
    for sa in view.body.get("serviceAccounts", []):
        if sa.get("email") == email:
            return list(sa.get("scopes", []))
    raise TokenRefused(404, f"The instance has no service account {email}.")
