"""One API call's transaction: a write runs in ``BEGIN IMMEDIATE``, answers the Operation of an
earlier call with the same ``requestId`` instead of running twice, wakes the job engine's workers
in the same commit (PostgreSQL NOTIFY), renders its Operation before that commit (afterwards the
row would be read again), and runs again when the database aborts it for contention.

Backpressure: a call that would leave its project more than ``call.max_queued`` unfinished
Operations (queued or running) is refused with GCE's per-project rate-limit answer
(:class:`~core.errors.ProjectRateLimited`, which Google's clients back off and retry on), and
nothing of it is committed. Each job's Operation is counted in as it is inserted, by its own INSERT
(:mod:`core.jobs.admission`, which also announces it to the workers): no round trip of its own. The
bound is per project, so a project that floods the queue is refused while every other project's
calls go on as before. On SQLite writes are serialised and the bound is exact; on PostgreSQL
concurrent calls of one project may each see room and overshoot it by at most their number.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NoReturn

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.db import begin_write, retrying
from core.errors import ProjectRateLimited, ResourceNotReady
from core.jobs.admission import QueueFull
from core.models import Operation, Project
from core.resources import operations
from core.resources.context import Call
from core.resources.operations import DuplicateRequest


@dataclass(frozen=True)
class Outcome:
    """What a call answered: an Operation's JSON, or whatever else its handler returned."""

    operation: dict[str, object] | None = None
    result: object = None
    wake: bool = False  # a job is pending: the workers must be kicked for ``kind``
    kind: str | None = None


def run(call: Call, write: bool, handler: Callable[[], object]) -> Outcome:
    """Run ``handler`` as ``call``: in a write transaction committed at the end when ``write``.

    A write the database aborts for contention (a deadlock, a serialization failure, SQLite busy)
    is rolled back and run again from the start (:func:`~core.db.retrying`): the clients of a
    busy server see their calls succeed, later, never the server's own contention. ``handler``
    may thus run more than once; it must take everything it reads from the database or its
    arguments afresh.

    ``call.max_queued`` (0: no bound) bounds the project's unfinished Operations (see the module's
    docstring).
    """
    if not write:
        return _outcome(handler())
    return retrying(lambda: _write(call, handler), rollback=call.session.rollback)


def _write(call: Call, handler: Callable[[], object]) -> Outcome:
    begin_write(call.session)
    existing = operations.by_request_id(call)
    if existing is not None:
        return Outcome(operations.to_json(existing))
    try:
        result = handler()
        outcome = _outcome(result)
        call.session.commit()
    except DuplicateRequest:
        return Outcome(_replay(call))
    except QueueFull:
        _refuse(call)
    return outcome


def _outcome(result: object) -> Outcome:
    if not isinstance(result, Operation):
        return Outcome(result=result)
    payload = operations.to_json(result)
    return Outcome(payload, wake=payload["status"] != "DONE", kind=result.job)


def _refuse(call: Call) -> NoReturn:
    """The project's queue was full when the call queued a job: undo all the call made (its
    resources, its other Operations; the NOTIFYs go with the rollback) and answer as GCE does."""
    call.session.rollback()
    number = call.session.scalar(select(Project.number).where(Project.name == call.project)) or 0
    raise ProjectRateLimited(number) from None


def _replay(call: Call) -> dict[str, object]:
    """A concurrent call with the same requestId committed first: answer its Operation."""
    call.session.rollback()
    existing = operations.by_request_id(call)
    if existing is None:  # the other request rolled back after all: this one may run again
        raise ResourceNotReady("A request with the same requestId is in progress; retry it.") from None
    return operations.to_json(existing)


def release(session: Session) -> None:
    """End the call's transaction and hand its connection back, before a long wait holds neither."""
    session.rollback()
    session.close()
