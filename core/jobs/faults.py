"""What an exception raised by a job means: the Operation's outcome, or a fault worth a retry.

Three kinds, each with its own answer (:func:`verdict`):

- **The user's error** (:class:`~core.errors.ComputeError`, or an
  :class:`~core.errors.OperationFailure` the job built): the Operation ends at once with its code,
  message and HTTP status. Running the job again would give the same answer, later.
- **A transient fault** (:func:`transient`): the database or the network faltered under the job
  (a connection lost, a lock not granted, a deadlock or serialization failure PostgreSQL resolved
  by aborting this transaction, SQLite busy with another writer, a timeout). Nothing the job did
  is wrong and its handlers are safe to run again from the start, so the engine retries it with
  back-off, and reports INTERNAL_ERROR only when the fault outlasts every attempt.
- **Anything else is a bug**, and ends INTERNAL_ERROR at once (see :mod:`core.jobs.engine`).

A hypervisor's :class:`~core.hypervisors.base.DriverError` is transient when another host may
take the VM, or the failed one answer, by the next attempt (``retry_elsewhere``); a refusal for
good ends the Operation at once (:meth:`~core.hypervisors.base.DriverError.as_failure`).
"""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from core.errors import ComputeError, OperationFailure
from core.hypervisors.base import DriverError

# PostgreSQL SQLSTATE classes of faults that pass: 08 connection exception, 40 transaction
# rollback (40001 serialization failure, 40P01 deadlock), 53 insufficient resources (too many
# connections), 57 operator intervention (a statement timeout, a server restarting); and 55P03,
# a lock not granted in time.
_PG_TRANSIENT_CLASSES = ("08", "40", "53", "57")
_PG_TRANSIENT_CODES = ("55P03",)
# SQLite: another connection holds the write lock longer than the busy timeout.
_SQLITE_TRANSIENT = ("SQLITE_BUSY", "SQLITE_LOCKED")


def transient(exc: BaseException) -> bool:
    """Whether ``exc`` is a fault of the database or the network that a later attempt may not meet.

    SQLAlchemy's ``OperationalError`` alone is too wide: SQLite raises it for a missing table or a
    syntax error too, so the driver's own code decides.
    """
    if isinstance(exc, (TimeoutError, ConnectionError, PoolTimeout)):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    if not isinstance(exc, OperationalError):
        return False
    sqlstate = getattr(exc.orig, "sqlstate", None)
    if sqlstate:
        return sqlstate.startswith(_PG_TRANSIENT_CLASSES) or sqlstate in _PG_TRANSIENT_CODES
    sqlite = getattr(exc.orig, "sqlite_errorname", None)
    if sqlite:
        return sqlite in _SQLITE_TRANSIENT
    return True  # psycopg's client-side failures carry no code: the server could not be reached


def verdict(exc: Exception) -> OperationFailure | None:
    """The failure ``exc`` ends its Operation with, or ``None`` when the job is to be retried."""
    if isinstance(exc, OperationFailure):
        return exc
    if isinstance(exc, ComputeError):
        return exc.as_failure()
    if isinstance(exc, DriverError):
        return None if exc.retry_elsewhere else exc.as_failure()
    if transient(exc):
        return None
    return internal_error(exc)


def internal_error(exc: Exception) -> OperationFailure:
    """What a bug (or a fault that outlasted every attempt) ends the Operation with."""
    return OperationFailure("INTERNAL_ERROR", f"Internal error: {exc}", 500)
