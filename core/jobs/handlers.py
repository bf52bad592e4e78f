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
from sqlalchemy import bindparam, update
from sqlalchemy.orm import Session

from core.db import flushed_connection, write_session
from core.errors import OperationFailure
from core.models import Operation

if TYPE_CHECKING:
    from core.jobs.engine import JobEngine

LEASE_SECONDS = 30.0
# What an Operation that ended holds, besides its end time (and its error or warnings).
DONE_VALUES = {"status": "DONE", "progress": 100, "lease_owner": None, "lease_expiry": None}
# A job's UPDATEs of its own Operation run as Core statements on the session's connection: no
# Operation object of the job's sessions is the job's own, so the ORM's execution path (its bulk
# UPDATE machinery, ~150 us of a small UPDATE's ~250) would bring nothing up to date.
_PROGRESS_ALL = update(Operation).where(Operation.pk.in_(bindparam("pks", expanding=True)),
                                        Operation.progress < bindparam("percent")) \
    .values(progress=bindparam("percent"), lease_expiry=bindparam("expiry"))
_DONE_ALL = update(Operation).where(Operation.pk.in_(bindparam("pks", expanding=True))).values(
    **DONE_VALUES, end_time=bindparam("now"))


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
        stmt = (update(Operation).where(Operation.pk == self.op_pk, Operation.progress < percent)
                .values(progress=percent, status_message=message, lease_expiry=time.time() + LEASE_SECONDS))
        if session is not None:
            flushed_connection(session).execute(stmt)
            return
        with self.write() as own:
            flushed_connection(own).execute(stmt)

    @staticmethod
    def progress_all(session: Session, ctxs: list[JobContext], percent: int) -> None:
        """:meth:`progress` for a batch, in one UPDATE inside the batch's transaction."""
        if ctxs:
            flushed_connection(session).execute(_PROGRESS_ALL, {"pks": [c.op_pk for c in ctxs], "percent": percent,
                                                                "expiry": time.time() + LEASE_SECONDS})

    def complete(self, session: Session, params: dict[str, Any] | None = None) -> None:
        """Mark the Operation DONE inside the handler's last transaction, so the resource's final
        state and the end of its Operation commit together (and one commit is saved). ``params``:
        the job's parameters as it leaves them, written by the same UPDATE."""
        values = self.engine.done_values(self.warnings)
        if params is not None:
            values["params"] = orjson.dumps(params).decode()
        self.engine.end_jobs(session, update(Operation).where(Operation.pk == self.op_pk).values(**values))
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
        engine.end_jobs(session, _DONE_ALL, {"pks": [c.op_pk for c in plain], "now": time.time()})
        for ctx in plain:
            ctx.completed = True

    def warn(self, code: str, message: str, data: list[dict[str, Any]] | None = None) -> None:
        w: dict[str, Any] = {"code": code, "message": message}
        if data:
            w["data"] = data
        self.warnings.append(w)
