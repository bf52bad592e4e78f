from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session


@dataclass
class Call:
    """Who asks, for which project, in which transaction; what every use case receives."""

    session: Session
    project: str
    user: str = ""
    request_id: str | None = None
    # The bound of the project's unfinished Operations a job this call queues must stay within
    # (backpressure, see core.services.calls); 0: none (the job engine's and the system's own calls).
    max_queued: int = 0
