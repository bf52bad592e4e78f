"""What the cloud's history keeps, and for how long: finished Operations, and access tokens past
their expiry, are forgotten after a while, and revoked refresh tokens once no access token names
them any more, so the database does not grow with the cloud's age.

Every request that changes something leaves an Operation, and every token grant an access token;
nothing else ever removes either. A cloud that kept them all would grow by every call it ever
served, and so would the cost of the indexes they sit in. GCE keeps a finished Operation "at least
1 hour and up to 14 days" (its documentation on viewing operations), and with it the ``requestId``
it answered (a retry past that is a new request). Here a finished Operation goes
``operation_retention`` seconds (a setting) after it ended; an unfinished one stays, however old.
An access token goes :data:`TOKEN_KEPT_SECONDS` after it expired: a bearer of an expired token and
of an unknown one get the same 401. A revoked refresh token goes once the access tokens issued
from it have gone (each names it): presented again, a revoked token and an unknown one get the
same ``invalid_grant``. (Authorization and device codes go a day after they expired, as each new
one is issued: ``core.identity``.)

A round walks each table from its oldest row (the primary key's order is the order rows were made
in), a page at a time, each page's rows removed in a transaction of their own, and stops at the
first row younger than the cut-off: it costs what it removes, plus the few old rows that must stay,
whatever the table's size. Several processes may run rounds on one database: removing a row twice
removes nothing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import bindparam, delete, exists, func, select
from sqlalchemy.orm import Session, sessionmaker

from core.db import write_session
from core.models import AccessToken, Operation, RefreshToken
from core.periodic import PeriodicRounds
from core.prepared import Prepared, among, json_ids

log = logging.getLogger("gstack.core")

PAGE_ROWS = 500  # rows read, and at most removed, per transaction
ROUND_SECONDS = 300.0  # between rounds (sooner when the retention is shorter)
TOKEN_KEPT_SECONDS = 86400.0  # an expired access token is forgotten this long after its expiry

_OPERATIONS = Prepared(select(Operation.pk, Operation.status, Operation.insert_time, Operation.end_time)
                       .where(Operation.pk > bindparam("after")).order_by(Operation.pk).limit(PAGE_ROWS))
_NEWEST_OPERATION = Prepared(select(func.max(Operation.pk)))
_FORGET_OPERATIONS = Prepared(delete(Operation).where(among(Operation.pk, "pks"), Operation.status == "DONE"))
_TOKENS = Prepared(select(AccessToken.id, AccessToken.expires, AccessToken.created)
                   .where(AccessToken.id > bindparam("after")).order_by(AccessToken.id).limit(PAGE_ROWS))
_FORGET_TOKENS = Prepared(delete(AccessToken).where(among(AccessToken.id, "pks")))
# Revoked refresh tokens no access token names: a walk of the table (every live login's token), in
# one statement a round; few rows against the Operations' and access tokens' history.
_FORGET_REVOKED_REFRESH = Prepared(delete(RefreshToken).where(
    RefreshToken.revoked.is_(True), ~exists().where(AccessToken.refresh_token_id == RefreshToken.id))
    .returning(RefreshToken.id))


def forget_operations(factory: sessionmaker[Session], ended_before: float) -> int:
    """Remove the Operations that finished before ``ended_before`` (a time): how many went.

    The newest Operation stays whatever its age: SQLite gives a new row the largest key plus one,
    so removing the newest would hand its key to the next Operation, and the host monitor tells a
    job that started during its round by a key above the largest it saw (``since_pk``)."""
    newest = _NEWEST_OPERATION.scalar(factory.kw["bind"], {})

    def doomed(row: Sequence[Any]) -> bool:
        pk, status, inserted, ended = row
        return bool(status == "DONE" and (ended if ended is not None else inserted) < ended_before and pk != newest)

    return _walk(factory, _OPERATIONS, _FORGET_OPERATIONS, doomed, lambda row: row[2] >= ended_before)


def forget_tokens(factory: sessionmaker[Session], expired_before: float) -> int:
    """Remove the access tokens that expired before ``expired_before``: how many went."""
    return _walk(factory, _TOKENS, _FORGET_TOKENS, lambda row: row[1] < expired_before,
                 lambda row: row[2] >= expired_before)


def forget_revoked_refresh_tokens(factory: sessionmaker[Session]) -> int:
    """Remove the revoked refresh tokens that no access token names any more: how many went."""
    with write_session(factory) as session:
        return len(_FORGET_REVOKED_REFRESH.in_session(session, {}))


def _walk(factory: sessionmaker[Session], page: Prepared, forget: Prepared,
          doomed: Callable[[Sequence[Any]], bool], young: Callable[[Sequence[Any]], bool]) -> int:
    """Read ``page`` (rows keyed above ``after``, oldest first, the key first) page after page,
    removing with ``forget`` those ``doomed``, until a ``young`` row: no row after it is older."""
    after, removed = -1, 0
    while True:
        rows = page.all(factory.kw["bind"], {"after": after})
        done = len(rows) < PAGE_ROWS
        for i, row in enumerate(rows):
            if young(row):
                rows, done = rows[:i], True
                break
        pks = [row[0] for row in rows if doomed(row)]
        if pks:
            with write_session(factory) as session:
                forget.in_session(session, {"pks": json_ids(pks)})
            removed += len(pks)
        if done or not rows:
            return removed
        after = rows[-1][0]


class Retention(PeriodicRounds):
    """The rounds of a process that runs jobs: Operations ``operation_retention`` seconds after they
    ended, access tokens :data:`TOKEN_KEPT_SECONDS` after they expired, then the revoked refresh
    tokens none of them names any more."""

    thread_name = "retention"
    first_round_at_start = True  # a server that was down for days forgets what aged meanwhile

    def __init__(self, factory: sessionmaker[Session], operation_retention: float) -> None:
        super().__init__(min(ROUND_SECONDS, max(operation_retention / 2, 1.0)))
        self.factory = factory
        self.operation_retention = operation_retention

    def run_once(self) -> tuple[int, int, int]:
        now = time.time()
        operations = forget_operations(self.factory, now - self.operation_retention)
        tokens = forget_tokens(self.factory, now - TOKEN_KEPT_SECONDS)
        refresh = forget_revoked_refresh_tokens(self.factory)
        if operations or tokens or refresh:
            log.info("retention: forgot %d finished operations, %d expired access tokens and %d revoked refresh "
                     "tokens", operations, tokens, refresh)
        return operations, tokens, refresh


def start_retention(factory: sessionmaker[Session], operation_retention: float) -> Retention:
    return Retention(factory, operation_retention).start()
