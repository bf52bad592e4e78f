from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy.orm import Session


class JobDesk(Protocol):
    """The job engine of the process serving the call, as far as a new job's birth asks it
    (:meth:`core.jobs.engine.JobEngine.lease_at_birth`)."""

    def lease_at_birth(self, kind: str) -> tuple[str, float] | None: ...


@dataclass(frozen=True)
class Handed:
    """A job its Operation's INSERT leased to this process's engine: after the commit the engine
    runs it without claiming it (:meth:`core.jobs.engine.JobEngine.hand`)."""

    op_pk: int
    project: str
    params: dict[str, Any]
    job: str


@dataclass
class Call:
    """Who asks, for which project, in which transaction; what every use case receives.

    ``desk``: the engine that may take the call's new job at birth (None: the job is queued for
    any worker to claim). ``handed``: the jobs it took, for the caller to hand over once the
    transaction committed (:mod:`core.services.calls`)."""

    session: Session
    project: str
    user: str = ""
    request_id: str | None = None
    desk: JobDesk | None = None
    handed: list[Handed] = field(default_factory=list)
