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
