"""Ordered, keyset-paged reads of resources and operations for the list methods."""

from __future__ import annotations

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from core.models import Operation, Resource


def _keyset(columns: list, after: list | None, descending: list[bool]):
    """WHERE clause selecting rows strictly after ``after`` in the given mixed-direction order."""
    if after is None:
        return None
    clauses = []
    for i, col in enumerate(columns):
        eq = [c == v for c, v in zip(columns[:i], after[:i], strict=True)]
        step = col < after[i] if descending[i] else col > after[i]
        clauses.append(and_(*eq, step))
    return or_(*clauses)


def resource_rows(session: Session, project: str, collection: str, scopes: list[str], order: str,
                  after: list | None, limit: int) -> list[tuple[list, str]]:
    """(sort key, body) of resources in ``scopes``; the key starts with the scope when several are listed."""
    multi = len(scopes) > 1
    if order == "name":
        cols, desc = [Resource.name], [False]
    else:
        cols, desc = [Resource.created, Resource.pk], [True, True]
    if multi:
        cols, desc = [Resource.scope, *cols], [False, *desc]
    q = select(*cols, Resource.body).where(Resource.project == project, Resource.collection == collection)
    q = q.where(Resource.scope == scopes[0]) if not multi else q.where(Resource.scope.in_(scopes))
    cond = _keyset(cols, after, desc)
    if cond is not None:
        q = q.where(cond)
    q = q.order_by(*[c.desc() if d else c for c, d in zip(cols, desc, strict=True)]).limit(limit)
    return [(list(row[:-1]), row[-1]) for row in session.execute(q)]


def operation_rows(session: Session, project: str, scopes: list[str], order: str, after: list | None,
                   limit: int) -> list[tuple[list, Operation]]:
    multi = len(scopes) > 1
    if order == "name":
        cols, desc = [Operation.name], [False]
    else:
        cols, desc = [Operation.insert_time, Operation.pk], [True, True]
    if multi:
        cols, desc = [Operation.scope, *cols], [False, *desc]
    q = select(Operation).where(Operation.project == project)
    q = q.where(Operation.scope == scopes[0]) if not multi else q.where(Operation.scope.in_(scopes))
    cond = _keyset(cols, after, desc)
    if cond is not None:
        q = q.where(cond)
    q = q.order_by(*[c.desc() if d else c for c, d in zip(cols, desc, strict=True)]).limit(limit)
    out = []
    for op in session.scalars(q):
        key = [getattr(op, c.key) for c in cols]
        out.append((key, op))
    return out



