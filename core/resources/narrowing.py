"""Lists whose filter the terms index answers in part: the rows that can match, in page order.

A filter is tested in Python on each row's body (its semantics are GCE's, not SQL's); what the
database can do is hand over only the rows that *can* match. :class:`Narrowing` is that necessary
condition, stated over the values :mod:`core.terms` keeps (``labels.env`` is one of ``prod``;
``name`` starts with ``web-``; ``zone`` is a value ``accept`` takes; one of the name's words,
``nameword``, is ``web`` or the name is irregular). The HTTP layer derives it
from the filter; the rows read here are then tested by the filter as before, so a narrowing may
let through rows the filter refuses but must never hold back one it takes.

Each (scope, value) pair is one walk of ``ix_resource_term_list`` in name order, merged in
Python: a page reads about a page of rows, however large the collection and however many of its
rows the filter matches. Pages in creationTimestamp order sort the rows of each value instead.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Connection, Select, and_, select
from sqlalchemy.orm import Session

from core.db import flushed_connection
from core.jobs.claims import UNFINISHED
from core.models import Operation, Resource, ResourceTerm
from core.resources.queries import Columns, Key, OperationFilter, _check_after, _keyset, resource_rows

# A field with more distinct values than this in a scope is not narrowed by ``accept``: trying
# each value would cost more than it saves. Scopes times values above this are not narrowed either.
MAX_VALUES = 64


@dataclass(frozen=True)
class Narrowing:
    """Rows whose ``field`` term is one of ``values``, or starts with ``prefix``, or is a value
    ``accept`` takes (tried on the distinct values the field holds in each scope), or contains
    ``part``. One of the four; ``prefix`` and ``part`` only on ``name``, whose values are in name
    order in the index (``part`` reads every name of the scope, in the database, until a page is full)."""

    field: str
    values: frozenset[str] | None = None
    prefix: str | None = None
    accept: Callable[[str], bool] | None = None
    part: str | None = None


def filtered_rows(session: Session, project: str, collection: str, scopes: list[str], order: str,
                  after: Key | None, limit: int, narrowing: Narrowing | None) -> list[tuple[Key, str]]:
    """:func:`~core.resources.queries.resource_rows`, narrowed when ``narrowing`` can be used."""
    if narrowing is not None:
        rows = _narrowed(flushed_connection(session), project, collection, scopes, order, after, limit, narrowing)
        if rows is not None:
            return rows
    return resource_rows(session, project, collection, scopes, order, after, limit)


def _starting_with(column: Any, prefix: str) -> ColumnElement[bool]:
    """The values of ``column`` that start with ``prefix``, as a range an index walks."""
    upper = _next_string(prefix)
    return column >= prefix if upper is None else and_(column >= prefix, column < upper)


def _next_string(prefix: str) -> str | None:
    """The least string above every string that starts with ``prefix`` (in code point order, which
    is also UTF-8 byte order), or None when there is none."""
    while prefix:
        code = ord(prefix[-1]) + 1
        if code == 0xD800:
            code = 0xE000  # surrogates are no characters
        if code <= 0x10FFFF:
            return prefix[:-1] + chr(code)
        prefix = prefix[:-1]
    return None


def _distinct_values(conn: Connection, where: list[Any], cap: int) -> list[str] | None:
    """The distinct values of one field in one scope, one index probe each (a loose index scan);
    None when there are more than ``cap``."""
    found: list[str] = []
    probe = select(ResourceTerm.value).where(*where).order_by(ResourceTerm.value).limit(1)
    while True:
        q = probe.where(ResourceTerm.value > found[-1]) if found else probe
        value = conn.execute(q).scalar()
        if value is None:
            return found
        if len(found) == cap:
            return None
        found.append(value)


def _walks(conn: Connection, scope_where: Callable[[str], list[Any]], scopes: list[str],
           narrowing: Narrowing) -> list[tuple[str, Any]] | None:
    """(scope, condition on ResourceTerm.value) pairs, one index walk each; None past MAX_VALUES."""
    walks: list[tuple[str, Any]] = []
    for scope in scopes:
        if narrowing.part is not None:
            walks.append((scope, ResourceTerm.value.contains(narrowing.part, autoescape=True)))
            continue
        if narrowing.prefix is not None:
            walks.append((scope, _starting_with(ResourceTerm.value, narrowing.prefix)))
            continue
        if narrowing.values is not None:
            values = sorted(narrowing.values)
        else:
            found = _distinct_values(conn, scope_where(scope), MAX_VALUES)
            if found is None or narrowing.accept is None:
                return None
            values = [v for v in found if narrowing.accept(v)]
        walks.extend((scope, ResourceTerm.value == v) for v in values)
        if len(walks) > MAX_VALUES:
            return None
    return walks


def _narrowed(conn: Connection, project: str, collection: str, scopes: list[str], order: str,
              after: Key | None, limit: int, narrowing: Narrowing) -> list[tuple[Key, str]] | None:
    multi = len(scopes) > 1
    by_name = order == "name"
    # The sort key after the scope: the term's name (its value when walking names by a prefix or a
    # part: the same string, in the index's order), or the resource's (created, pk), newest first.
    by_value = narrowing.prefix is not None or narrowing.part is not None
    cols: Columns = ([ResourceTerm.value if by_value else ResourceTerm.name] if by_name
                     else [Resource.created, Resource.pk])
    desc = [False] if by_name else [True, True]
    _check_after([Resource.scope, *cols] if multi else cols, after)

    def scope_where(scope: str) -> list[Any]:
        return [ResourceTerm.project == project, ResourceTerm.collection == collection,
                ResourceTerm.scope == scope, ResourceTerm.field == narrowing.field]

    walks = _walks(conn, scope_where, scopes, narrowing)
    if walks is None:
        return None
    runs = []
    for scope, value_cond in walks:
        rest = after
        if multi and after is not None:
            if scope < after[0]:
                continue
            rest = after[1:] if scope == after[0] else None
        q: Select[Any] = (select(*cols, Resource.body).select_from(ResourceTerm)
                          .join(Resource, Resource.pk == ResourceTerm.resource_pk)
                          .where(*scope_where(scope), value_cond))
        cond = _keyset(cols, rest, desc)
        if cond is not None:
            q = q.where(cond)
        q = q.order_by(*[c.desc() if d else c for c, d in zip(cols, desc, strict=True)]).limit(limit)
        prefix = [scope] if multi else []
        runs.append([([*prefix, *row[:-1]], row[-1]) for row in conn.execute(q).all()])
    if len(runs) == 1:
        return runs[0]
    merged = heapq.merge(*runs, key=lambda item: _sort_key(item[0], multi, by_name))
    out: list[tuple[Key, str]] = []
    for item in merged:
        if out and out[-1][0] == item[0]:
            continue  # one resource reached through two values (two NICs with IPs asked for)
        out.append(item)
        if len(out) == limit:
            break
    return out


def _sort_key(key: Key, multi: bool, by_name: bool) -> tuple[Any, ...]:
    scope = (key[0],) if multi else ()
    rest = key[1:] if multi else key
    return (*scope, rest[0]) if by_name else (*scope, -rest[0], -rest[1])


# An Operation's statuses (a narrowing's ``accept`` is tried on each).
OPERATION_STATUSES = (*UNFINISHED, "DONE")


def operation_condition(n: Narrowing | None) -> OperationFilter | None:
    """A narrowing on an Operation's ``status`` or ``name`` as the SQL condition on its column (the
    Operations table has no terms: both are columns), None when it says nothing of them. A filter
    on a list of a day of history tested every Operation in Python: 2.4 s at 100,000."""
    if n is None or n.field not in ("status", "name"):
        return None
    if n.field == "name":
        if n.values is not None:
            return OperationFilter(Operation.name.in_(sorted(n.values)), False)
        return None if n.prefix is None else OperationFilter(_starting_with(Operation.name, n.prefix), False)
    if n.values is not None:
        statuses = sorted(n.values)
    elif n.accept is not None:
        statuses = [s for s in OPERATION_STATUSES if n.accept(s)]
    else:
        return None  # (a prefix or a part is a narrowing of names alone)
    return OperationFilter(Operation.status.in_(statuses), "DONE" not in statuses)
