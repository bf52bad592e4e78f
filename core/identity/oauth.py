"""What the OAuth server asks of the database beyond storing codes and tokens: who holds a bearer
token, which key signed an assertion, whether an assertion was seen before, how a device polls.

The questions come from oauthlib's RequestValidator in the HTTP layer; the SQL stays here.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, scoped_session

from core.db import writing
from core.models import AccessToken, Principal, ServiceAccountKey, UsedAssertion
from core.models.identity import DeviceAuthorization


@contextmanager
def write_transaction(session: Session | scoped_session[Session]) -> Iterator[Session]:
    """A write transaction (``BEGIN IMMEDIATE`` on SQLite) on the session, committed at the end.

    A request's scoped session is unwrapped first: the transaction's bookkeeping needs the Session itself.
    """
    with writing(session() if isinstance(session, scoped_session) else session) as opened:
        yield opened


@dataclass(frozen=True)
class TokenOwner:
    """Who an access token speaks for, and with what scopes until when."""

    principal_id: int
    email: str
    admin: bool
    scopes: frozenset[str]
    expires: float


def token_owner(session: Session, token_hash: str) -> TokenOwner | None:
    """The owner of the access token with this digest; None when it is unknown, revoked or its
    principal is disabled (expiry is the caller's to check: a cached answer outlives the query)."""
    row = session.execute(
        select(AccessToken.expires, AccessToken.revoked, AccessToken.scopes, Principal.id, Principal.email,
               Principal.admin, Principal.disabled)
        .join(Principal, Principal.id == AccessToken.principal_id)
        .where(AccessToken.token_hash == token_hash)
    ).first()
    if row is None or row.revoked or row.disabled:
        return None
    return TokenOwner(row.id, row.email, row.admin, frozenset(row.scopes.split()), row.expires)


def principal(session: Session, principal_id: int) -> Principal | None:
    return session.get(Principal, principal_id)


def service_account_key(session: Session, kid: str) -> tuple[str, Principal] | None:
    """The public key (PEM) with this id and its service account; None when either is disabled."""
    row = session.execute(
        select(ServiceAccountKey, Principal).join(Principal, Principal.id == ServiceAccountKey.principal_id)
        .where(ServiceAccountKey.key_id == kid)
    ).first()
    if row is None or row[0].disabled or row[1].disabled:
        return None
    return row[0].public_pem, row[1]


# Keys tried for an assertion that names no key: Google allows a service account ten keys.
MAX_KEYS_TRIED = 10


def active_service_account_keys(session: Session, email: str) -> list[tuple[str, Principal]]:
    """The enabled public keys (PEM) of the enabled service account ``email``, newest first: what a
    JWT that names no key (no ``kid``) may have been signed with."""
    rows = session.execute(
        select(ServiceAccountKey, Principal).join(Principal, Principal.id == ServiceAccountKey.principal_id)
        .where(Principal.email == email, Principal.kind == "serviceAccount", Principal.disabled.is_(False),
               ServiceAccountKey.disabled.is_(False))
        .order_by(ServiceAccountKey.created.desc(), ServiceAccountKey.id.desc()).limit(MAX_KEYS_TRIED)
    ).all()
    return [(key.public_pem, principal) for key, principal in rows]


def remember_assertion(session: Session | scoped_session[Session], key_digest: str, expires: float) -> bool:
    """Remember an accepted assertion (by the digest of its issuer and ``jti``) until it expires, in a
    transaction of its own; False if it was seen before (a replay). Expired ones are forgotten."""
    try:
        with write_transaction(session) as opened:
            opened.execute(delete(UsedAssertion).where(UsedAssertion.expires < time.time()))
            opened.add(UsedAssertion(digest=key_digest, expires=expires))
    except IntegrityError:
        return False
    return True


def poll_device(session: Session, row: DeviceAuthorization, now: float) -> bool:
    """Record a poll of a pending device code; True when it came sooner than its interval allows,
    which also makes the interval five seconds longer (RFC 8628 section 3.5, ``slow_down``)."""
    row = session.merge(row)
    too_fast = now - row.last_poll < row.interval
    row.interval += 5 if too_fast else 0
    row.last_poll = now
    return too_fast
