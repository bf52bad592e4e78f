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

On PostgreSQL the rows a job is for (a new instance and its disks) can go in with it, in the same
statement (:func:`enqueue_after`): their INSERT is a CTE the Operation's INSERT waits on; so can a
row they go in only with (a :class:`Claim`: the instance's predicted address), and the statement
can run alone, as a transaction of its own, when it is all its call writes.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import (
    JSON,
    BigInteger,
    ColumnElement,
    Integer,
    String,
    bindparam,
    cast,
    func,
    insert,
    literal,
    literal_column,
    null,
    select,
    true,
    union_all,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import ReturningInsert

from core.db import attach_persistent, insert_all_persistent, persist, row_params, row_values
from core.jobs.claims import UNFINISHED_SQL
from core.jobs.engine import NEW_CHANNEL
from core.models import Operation, Resource
from core.prepared import Prepared
from core.usage import USAGE_GREW, usage_unchanged


@dataclass(frozen=True)
class Claim:
    """Rows a job's new rows go in only with (predicted addresses, :func:`core.ipam.taking`):
    ``build`` makes their INSERT ... RETURNING, taking ``rows`` rows or none, only where the
    condition it is given holds (its second argument: whether a clash fails the statement);
    ``params`` are its parameters. When it takes fewer, nothing of the job is made (:class:`Missed`)."""

    build: Callable[[ColumnElement[bool], bool], ReturningInsert[Any]]
    params: Mapping[str, Any]
    rows: int = 1


class Missed(Exception):
    """:func:`enqueue_after` made nothing: its claim took fewer rows than it claims, the quota usage
    its caller checked grew since, or, alone, its statement did not make everything (a name or the
    ``requestId`` taken, the queue full). The caller makes its insert again the usual way, which
    answers what happened."""


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


def enqueue_after(session: Session, rows: Sequence[Resource], op: Operation, bound: int = 0,
                  claim: Claim | None = None, alone: bool = False, seen: Mapping[str, Any] | None = None) -> list[Resource]:
    """Insert the new resource rows ``rows`` (an instance and its new disks), then :func:`enqueue`
    ``op`` only if every row went in; the rows whose name was taken (a concurrent insert won:
    nothing of ``op`` is made, and the caller rolls back the rows that went in).

    On PostgreSQL one statement: the rows' INSERT is a CTE of the Operation's, a round trip less
    per instances.insert than the two statements SQLite (which has no INSERT in a CTE) runs.
    ``claim`` (PostgreSQL): the rows go in only if it takes its rows first; :class:`Missed` if not.
    ``alone`` (PostgreSQL): the caller writes nothing else in its transaction, so the statement may
    be that transaction (:meth:`~core.prepared.Prepared.alone`; no BEGIN, no COMMIT round trip),
    when the session has sent none yet. Then it makes everything or nothing (a taken name fails
    the whole statement), and :class:`Missed` when nothing. ``seen`` (PostgreSQL): the quota counters
    the caller checked, read outside its transaction (:func:`core.usage.usage_unchanged`'s
    parameters but ``project``): if they grew since, nothing goes in, and :class:`Missed` (the caller
    rolls back and checks again the usual way)."""
    if session.get_bind().dialect.name != "postgresql":
        if claim is not None:
            raise ValueError("a claim is PostgreSQL's")
        inserted = insert_all_persistent(session, rows, "uid")
        clashed = [row for row in rows if row.uid not in inserted]
        if not clashed:
            enqueue(session, op, bound)
        return clashed
    params: dict[str, Any] = {"rows": orjson.dumps([row_values(row) for row in rows]).decode(), "count": len(rows),
                              **row_values(op), **({"bound": bound} if bound else {}),
                              **({**claim.params, "claim_rows": claim.rows} if claim else {}), **(seen or {})}
    build = claim.build if claim else None
    gated = seen is not None
    found = None
    try:
        if alone:
            found = _insert_after(bound > 0, build, True, gated).alone(session, params)
            if found is not None and not any(kind == "operation" for kind, _, _ in found):
                raise Missed()  # nothing was made (the statement makes all or nothing)
        if found is None:
            found = _insert_after(bound > 0, build, False, gated).in_session(session, params)
    except DBAPIError as exc:
        if (alone and isinstance(exc, IntegrityError)) or getattr(exc.orig, "sqlstate", None) == USAGE_GREW:
            raise Missed() from None  # a name or address taken meanwhile, or the usage grew since the check
        raise
    if claim is not None and sum(kind == "claim" for kind, _, _ in found) < claim.rows:
        raise Missed()  # the rows go in only with the whole claim (the caller rolls back a part of it)
    found = [row for row in found if row[0] != "claim"]
    by_uid = {row.uid: row for row in rows}
    for kind, pk, uid in found:
        obj = op if kind == "operation" else by_uid.pop(uid)
        setattr(obj, obj.__table__.primary_key.columns[0].key, pk)
        attach_persistent(session, obj)
    if by_uid:
        return list(by_uid.values())
    if not any(kind == "operation" for kind, _, _ in found):
        raise QueueFull()
    return []


@functools.cache
def _insert_after(bounded: bool, claim: Callable[[ColumnElement[bool], bool], ReturningInsert[Any]] | None,
                  atomic: bool, gated: bool = False) -> Prepared:
    """:func:`enqueue_after`'s statement on PostgreSQL: the resource rows of the JSON array
    parameter ``rows`` (objects of their columns) skipping clashes (``atomic``: failing on one),
    then the Operation (parameters named after its columns) when all ``count`` went in; its rows
    are (``'row'``, pk, uid) of each row inserted, and (``'operation'``, pk, NULL) when the
    Operation was. The rows are one JSON parameter, not a multi-row VALUES: SQLAlchemy compiles a
    VALUES list again at every execution. ``claim``: its INSERT goes first, where the queue has room
    (``bounded``); the rows go in only if it took its ``claim_rows`` rows, (``'claim'``, its first
    column, NULL) each.
    ``atomic`` without a claim: the rows go in only where the queue has room, as the Operation, so
    that the statement makes all or nothing. ``gated``: the rows go in only through
    :func:`core.usage.usage_unchanged`, after the claim's rows (which it is given)."""
    table = Resource.__table__
    pk = table.primary_key.columns[0]
    columns = [c.key for c in table.columns if c is not pk]
    given = func.json_populate_recordset(literal_column(f"NULL::{table.name}"),
                                         cast(bindparam("rows", type_=String), JSON)).table_valued(*columns)
    rows = select(*(given.c[key] for key in columns))
    claimed = None
    if claim is not None:
        claimed = claim(_room() if bounded else true(), atomic).cte("claimed")
        rows = rows.where(select(func.count()).select_from(claimed).scalar_subquery()
                          == bindparam("claim_rows", type_=Integer))
    elif atomic and bounded:
        rows = rows.where(_room())
    if gated:  # once, after the claim's rows and before the resource rows
        made = select(func.count()).select_from(claimed).scalar_subquery() if claimed is not None \
            else literal(0, BigInteger)
        rows = rows.where(select(usage_unchanged(made)).scalar_subquery())
    insert_rows = postgresql.insert(table).from_select(columns, rows)
    if not atomic:
        insert_rows = insert_rows.on_conflict_do_nothing()
    new_rows = insert_rows.returning(pk, table.c.uid).cte("new_rows")
    all_in = select(func.count()).select_from(new_rows).scalar_subquery() == bindparam("count", type_=Integer)
    new_op = _build_insert(True, bounded, all_in).cte("new_operation")
    parts = [select(literal("row"), new_rows.c[pk.key], new_rows.c.uid),
             select(literal("operation"), new_op.c[Operation.pk.key], null().cast(BigInteger))]
    if claimed is not None:
        parts.append(select(literal("claim"), claimed.c[0], null().cast(BigInteger)))
    return Prepared(union_all(*parts))


@functools.cache
def _insert(notify: bool, bounded: bool) -> Prepared:
    """The INSERT of an Operation's row (its columns' values as parameters named after them),
    RETURNING its primary key, and on PostgreSQL (``notify``) the NOTIFY of its job's kind;
    ``bounded``: inserted only while its project has fewer unfinished Operations than the
    parameter ``bound``. Built once: building it costs more than running it."""
    return Prepared(_build_insert(notify, bounded))


def _room() -> ColumnElement[bool]:
    """Whether the project (parameter ``project``) has fewer unfinished Operations than ``bound``.

    One walk of ix_operation_project_status per unfinished status: with ``status IN (...)``
    PostgreSQL's planner, its statistics behind a fast growth, walked all the project's Operations
    of every status (those kept done too) and tested each one's status."""
    bound = bindparam("bound", type_=Integer)
    counts = [select(func.count()).select_from(
        select(Operation.pk).where(Operation.project == bindparam("project", type_=String), Operation.status == status)
        .limit(bound).subquery()).scalar_subquery() for status in UNFINISHED_SQL]
    return functools.reduce(operator.add, counts) < bound


def _build_insert(notify: bool, bounded: bool, condition: Any = None) -> ReturningInsert[Any]:
    """:func:`_insert`, the row inserted only where ``condition`` (an SQL expression) holds too."""
    table = Operation.__table__
    pk = table.primary_key.columns[0]
    returned = [pk, func.pg_notify(literal(NEW_CHANNEL), table.c.job)] if notify else [pk]
    values = row_params(table)
    if not bounded and condition is None:
        return insert(table).values(values).returning(*returned)
    row = select(*values.values())
    if bounded:
        row = row.where(_room())
    if condition is not None:
        row = row.where(condition)
    return insert(table).from_select(list(values), row).returning(*returned)
