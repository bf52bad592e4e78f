"""The durable job engine. Every job is an Operation row; see :mod:`core.jobs.engine`."""

from core.jobs import faults
from core.jobs.engine import JobEngine
from core.jobs.handlers import JobContext, job

__all__ = ["JobContext", "JobEngine", "faults", "job"]
