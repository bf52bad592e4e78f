"""A new job's Operation enters the queue with one statement, its INSERT, which also does the two
things that used to take a round trip each after it:

- backpressure (see :mod:`core.services.calls`): an ``INSERT ... SELECT ... WHERE`` that counts the
  project's unfinished Operations first and inserts nothing when there are ``bound`` already. The
  count stops at the bound (``LIMIT``, over ix_operation_project_status): a flooded queue costs no
  more to refuse than a short one;
- the wake-up: on PostgreSQL its RETURNING sends the NOTIFY of the job's kind on ``NEW_CHANNEL``
  (delivered at commit, never if the transaction rolls back), so every Operation a transaction
  queues announces its own kind, and a process whose batch of that kind runs may sleep on (see
  :meth:`~core.jobs.engine.JobEngine.kick`). In-process workers are kicked after the commit; SQLite
  has no NOTIFY: other processes see the commit in the database's commit counter.
"""

from __future__ import annotations

import functools
from typing import Any

from sqlalchemy import Integer, bindparam, func, insert, literal, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import ReturningInsert

from core.db import persist
from core.jobs.claims import UNFINISHED
from core.jobs.engine import NEW_CHANNEL
from core.models import Operation


class QueueFull(Exception):
    """The project has ``bound`` unfinished Operations already: the new one was not inserted. The
    caller's transaction must be rolled back (what it made before stays otherwise)."""


def enqueue(session: Session, op: Operation, bound: int = 0) -> None:
    """INSERT the new Operation ``op`` of a job and make it persistent (as
    :func:`~core.db.insert_persistent` does), announcing its kind to the workers of every process;
    :class:`QueueFull` when its project holds ``bound`` unfinished Operations already (0: no bound).
    A clash of its ``requestId`` is the statement's ``IntegrityError``."""
    stmt = _insert(session.get_bind().dialect.name == "postgresql", bound > 0)
    if persist(session, op, stmt, {"bound": bound} if bound else None) is None:
        raise QueueFull()


@functools.cache
def _insert(notify: bool, bounded: bool) -> ReturningInsert[Any]:
    """The INSERT of an Operation's row (its columns' values as parameters named after them),
    RETURNING its primary key, and on PostgreSQL (``notify``) the NOTIFY of its job's kind;
    ``bounded``: inserted only while its project has fewer unfinished Operations than the
    parameter ``bound``. Built once: building it costs more than running it."""
    table = Operation.__table__
    pk = table.primary_key.columns[0]
    returned = [pk, func.pg_notify(literal(NEW_CHANNEL), table.c.job)] if notify else [pk]
    if not bounded:
        return insert(table).returning(*returned)
    columns = [c for c in table.columns if c is not pk]
    values = {c.key: bindparam(c.key, type_=c.type) for c in columns}
    bound = bindparam("bound", type_=Integer)
    queued = (select(Operation.pk).where(Operation.status.in_(UNFINISHED), Operation.project == values["project"])
              .limit(bound).subquery())
    row = select(*values.values()).where(select(func.count()).select_from(queued).scalar_subquery() < bound)
    return insert(table).from_select(list(values), row).returning(*returned)
