"""What a job is to the engine: its registered handler and the context a handler runs with.

Handlers register under the job kind an Operation names (:func:`job`); the engine
(:mod:`core.jobs.engine`) claims Operations and hands each handler a :class:`JobContext`, through
which it reports progress and ends its Operation in its own last transaction.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import Update, bindparam, func, literal_column, null, update
from sqlalchemy.orm import Session

from core.db import write_session
from core.errors import OperationFailure
from core.models import Operation
from core.prepared import Prepared, among, json_ids

if TYPE_CHECKING:
    from core.jobs.engine import JobEngine

LEASE_SECONDS = 30.0
DONE_CHANNEL = "gstack_jobs_done"  # PostgreSQL's NOTIFY of a job's end, heard by the other processes
# What an Operation that ended holds, besides its end time (and its error or warnings).
DONE_VALUES = {"status": "DONE", "progress": 100, "lease_owner": None, "lease_expiry": None}
# A job's UPDATEs of its own Operation are prepared statements on the session's connection
# (core.prepared): no Operation object of the job's sessions is the job's own, so the ORM's
# execution path would bring nothing up to date, and Core's cost ~130 us of a small UPDATE's ~150.
# The Operations of a batch are a JSON array (``pks``, core.prepared.among).
_PROGRESS_ALL = Prepared(update(Operation).where(among(Operation.pk, "pks"), Operation.progress < bindparam("percent"))
                         .values(progress=bindparam("percent"), lease_expiry=bindparam("expiry")))
_PROGRESS = Prepared(update(Operation).where(Operation.pk == bindparam("pk"), Operation.progress < bindparam("percent"))
                     .values(progress=bindparam("percent"), status_message=bindparam("message"),
                             lease_expiry=bindparam("expiry")))


class Ending:
    """A prepared UPDATE that ends Operations (see :meth:`JobEngine.end_jobs`), in two forms: as it
    is, and on PostgreSQL with a NOTIFY in its RETURNING (the same round trip) whose payload is the
    ending process (``owner``), so that the others wake their waiters."""

    def __init__(self, stmt: Update):
        self.plain = Prepared(stmt)
        self.notifying = Prepared(stmt.returning(func.pg_notify(literal_column(f"'{DONE_CHANNEL}'"), bindparam("owner"))))


_DONE = {**{c: null() if v is None else v for c, v in DONE_VALUES.items()}, "end_time": bindparam("now")}
# The end of one Operation: its warnings, params and error written when given (not None), kept
# otherwise (see ending); and the end of many, none of which has any.
_GIVEN = ("warnings", "params", "error", "http_error_status", "http_error_message")
END_ONE = Ending(update(Operation).where(Operation.pk == bindparam("pk")).values(
    **_DONE, **{c: func.coalesce(bindparam(c, type_=Operation.__table__.c[c].type), Operation.__table__.c[c])
                for c in _GIVEN}))
_END_ALL = Ending(update(Operation).where(among(Operation.pk, "pks")).values(**_DONE))


# The reason phrase an Operation that failed with a status shows (httpErrorMessage).
_HTTP_MESSAGES = {400: "BAD REQUEST", 401: "UNAUTHORIZED", 403: "FORBIDDEN", 404: "NOT FOUND", 409: "CONFLICT",
                  412: "PRECONDITION FAILED", 429: "TOO MANY REQUESTS", 500: "INTERNAL SERVER ERROR",
                  501: "NOT IMPLEMENTED", 503: "SERVICE UNAVAILABLE"}


def ending(pk: int, warnings: list[dict[str, Any]], params: dict[str, Any] | None = None,
           failure: OperationFailure | None = None) -> dict[str, Any]:
    """:data:`END_ONE`'s parameters: the Operation ``pk`` ends now, with its ``warnings`` (if
    any), its job's ``params`` as the job leaves them (if given) and ``failure`` as its error."""
    values: dict[str, Any] = {"pk": pk, "now": time.time(),
                              "warnings": orjson.dumps(warnings).decode() if warnings else None,
                              "params": None if params is None else orjson.dumps(params).decode(),
                              "error": None, "http_error_status": None, "http_error_message": None}
    if failure is not None:
        values["error"] = orjson.dumps({"errors": [{"code": failure.code, "message": failure.message}]}).decode()
        values["http_error_status"] = failure.http_status
        values["http_error_message"] = _HTTP_MESSAGES.get(failure.http_status, "BAD REQUEST")
    return values


@dataclass
class JobHandler:
    run: Callable[[JobContext], None]
    on_fail: Callable[[JobContext, OperationFailure], None] | None = None
    # Runs several claimed jobs of this kind together (one transaction per step instead of one per
    # job and step); the jobs it does not complete run through :attr:`run`, one by one. Optional:
    # an optimisation for bursts, never a different outcome.
    batch: Callable[[list[JobContext]], None] | None = None
    # While a batch of this kind runs in a worker process, that process's other workers leave the
    # kind's queued jobs alone: during a burst they gather behind the running batch and the next
    # batch takes them together. A job queued while none runs starts at once (no pause, no timer).
    coalesce: bool = False


HANDLERS: dict[str, JobHandler] = {}
BATCH_SIZE = 100  # most jobs of one kind a worker claims at once


def job(name: str, on_fail: Callable[[JobContext, OperationFailure], None] | None = None,
        batch: Callable[[list[JobContext]], None] | None = None,
        coalesce: bool = False) -> Callable[[Callable[[JobContext], None]], Callable[[JobContext], None]]:
    """Register a job handler under ``name`` (the Operation's ``job`` column)."""

    def register(fn: Callable[[JobContext], None]) -> Callable[[JobContext], None]:
        HANDLERS[name] = JobHandler(fn, on_fail, batch, coalesce)
        return fn

    return register


@dataclass
class JobContext:
    engine: JobEngine
    op_pk: int
    project: str
    params: dict[str, Any]
    attempt: int
    job_name: str = ""
    warnings: list[dict[str, Any]] = field(default_factory=list)
    completed: bool = False
    # What a batch run learnt that the single run it hands a job to must know (hosts that failed).
    scratch: dict[str, Any] = field(default_factory=dict)

    @property
    def drivers(self) -> Any:
        return self.engine.drivers

    @contextmanager
    def write(self) -> Iterator[Session]:
        with write_session(self.engine.factory) as session:
            yield session

    def progress(self, percent: int, message: str | None = None, session: Session | None = None) -> None:
        """Record progress (monotonic) and extend the lease: the job is alive.

        Given a session, the update joins that transaction instead of making its own.
        """
        params = {"pk": self.op_pk, "percent": percent, "message": message, "expiry": time.time() + LEASE_SECONDS}
        if session is not None:
            _PROGRESS.in_session(session, params)
            return
        with self.write() as own:
            _PROGRESS.in_session(own, params)

    @staticmethod
    def progress_all(session: Session, ctxs: list[JobContext], percent: int) -> None:
        """:meth:`progress` for a batch, in one UPDATE inside the batch's transaction."""
        if ctxs:
            _PROGRESS_ALL.in_session(session, {"pks": json_ids(c.op_pk for c in ctxs), "percent": percent,
                                               "expiry": time.time() + LEASE_SECONDS})

    def complete(self, session: Session, params: dict[str, Any] | None = None) -> None:
        """Mark the Operation DONE inside the handler's last transaction, so the resource's final
        state and the end of its Operation commit together (and one commit is saved). ``params``:
        the job's parameters as it leaves them, written by the same UPDATE."""
        self.engine.end_jobs(session, END_ONE, ending(self.op_pk, self.warnings, params))
        self.completed = True

    @staticmethod
    def complete_all(session: Session, ctxs: list[JobContext]) -> None:
        """:meth:`complete` for a batch: one UPDATE for the Operations that carry no warning."""
        plain = [c for c in ctxs if not c.warnings]
        for ctx in ctxs:
            if ctx.warnings:
                ctx.complete(session)
        if not plain:
            return
        engine = plain[0].engine
        engine.end_jobs(session, _END_ALL, {"pks": json_ids(c.op_pk for c in plain), "now": time.time()})
        for ctx in plain:
            ctx.completed = True

    def warn(self, code: str, message: str, data: list[dict[str, Any]] | None = None) -> None:
        w: dict[str, Any] = {"code": code, "message": message}
        if data:
            w["data"] = data
        self.warnings.append(w)
