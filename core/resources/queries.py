"""Ordered, keyset-paged reads of resources and operations for the list methods."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from sqlalchemy import (
    BigInteger,
    BindParameter,
    ColumnElement,
    Engine,
    Float,
    Integer,
    LargeBinary,
    Select,
    String,
    Text,
    and_,
    bindparam,
    func,
    literal_column,
    or_,
    select,
    text,
)
from sqlalchemy import cast as sql_cast
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import InstrumentedAttribute, Session
from sqlalchemy.sql.functions import FunctionElement

from core.db import flushed_connection
from core.links import CANONICAL_BASE
from core.models import Operation, Resource, ResourceRevision, ResourceTerm, revision
from core.prepared import Prepared


class InvalidCursor(ValueError):
    """A page token whose key does not fit the list's sort columns (forged, or from another list)."""


# The sort columns of a list, and a key along them (a page token's cursor, decoded from JSON).
Columns = list[InstrumentedAttribute[Any]]
Key = list[Any]


def _fits(column: InstrumentedAttribute[Any], value: object) -> bool:
    kind = column.type
    if isinstance(kind, String):
        return isinstance(value, str) and "\x00" not in value
    if isinstance(value, bool):
        return False
    if isinstance(kind, BigInteger):
        return isinstance(value, int) and -(2**63) <= value < 2**63
    if isinstance(kind, Integer):
        return isinstance(value, int) and -(2**31) <= value < 2**31
    if isinstance(kind, Float):
        return isinstance(value, int | float) and math.isfinite(value)
    return False


def _check_after(columns: Columns, after: Key | None) -> None:
    """Refuse a cursor the database could not compare with the sort columns (it would fail there)."""
    if after is None:
        return
    if len(after) != len(columns) or not all(_fits(c, v) for c, v in zip(columns, after, strict=True)):
        raise InvalidCursor(after)


def _keyset(columns: Columns, after: Key | None, descending: list[bool]) -> ColumnElement[bool] | None:
    """WHERE clause selecting rows strictly after ``after`` in the given mixed-direction order."""
    if after is None:
        return None
    _check_after(columns, after)
    clauses = []
    for i, col in enumerate(columns):
        eq = [c == v for c, v in zip(columns[:i], after[:i], strict=True)]
        step = col < after[i] if descending[i] else col > after[i]
        clauses.append(and_(*eq, step))
    return or_(*clauses)


def resource_rows(session: Session, project: str, collection: str, scopes: list[str], order: str,
                  after: Key | None, limit: int) -> list[tuple[Key, str]]:
    """(sort key, body) of resources in ``scopes``; the key starts with the scope when several are listed."""
    multi = len(scopes) > 1
    cols: Columns
    if order == "name":
        cols, desc = [Resource.name], [False]
    else:
        cols, desc = [Resource.created, Resource.pk], [True, True]
    if multi:
        cols, desc = [Resource.scope, *cols], [False, *desc]
        if order != "name":
            _check_after(cols, after)
            return scope_by_scope(scopes, after, limit, lambda scope, rest, n: resource_rows(
                session, project, collection, [scope], order, rest, n))
    q = select(*cols, Resource.body).where(Resource.project == project, Resource.collection == collection)
    q = q.where(Resource.scope == scopes[0]) if not multi else q.where(Resource.scope.in_(scopes))
    cond = _keyset(cols, after, desc)
    if cond is not None:
        q = q.where(cond)
    q = q.order_by(*[c.desc() if d else c for c, d in zip(cols, desc, strict=True)]).limit(limit)
    # Plain rows through Core: the ORM's result processing cost more than the page's query; and
    # all at once (one fetchall): iterating the result fetched them one call at a time.
    # (Unpacked, not sliced: slicing a Row costs more than the row's fetch.)
    rows: Sequence[Any] = flushed_connection(session).execute(q).all()
    if len(cols) == 1:
        return [([key], body) for key, body in rows]
    return [(key, body) for *key, body in rows]


_T = TypeVar("_T")


def scope_by_scope(scopes: list[str], after: Key | None, limit: int,
                   read: Callable[[str, Key | None, int], list[tuple[Key, _T]]]) -> list[tuple[Key, _T]]:
    """A page over several scopes newest first ((scope, newest first) order), read one scope after
    another from the page token's on: ``read(scope, after within it or None, limit)`` gives a
    scope's rows, each a walk of its own index range backwards. One statement over every scope
    made the database sort each scope's whole collection (SQLite walks an IN list ascending, not
    the rest of the key descending beside it): 106 ms at 20,000 instances, against 1 ms by name."""
    out: list[tuple[Key, _T]] = []
    for scope in sorted(scopes):
        if after is not None and scope < after[0]:
            continue
        rest = after[1:] if after is not None and scope == after[0] else None
        out += [([scope, *key], item) for key, item in read(scope, rest, limit - len(out))]
        if len(out) >= limit:
            break
    return out


class _Utf8(FunctionElement[bytes]):
    """A text expression's UTF-8 bytes (SQLite ``CAST(x AS BLOB)``, PostgreSQL ``convert_to``): a
    page's ~1 MB of bodies reaches Python as bytes, which orjson takes as they are, instead of
    being decoded into a str first (~1 ms a page)."""

    type = LargeBinary()
    inherit_cache = True
    name = "utf8"


@compiles(_Utf8, "sqlite")
def _utf8_sqlite(element: _Utf8, compiler: Any, **kw: Any) -> str:
    return f"CAST({compiler.process(element.clauses, **kw)} AS BLOB)"


@compiles(_Utf8, "postgresql")
def _utf8_postgresql(element: _Utf8, compiler: Any, **kw: Any) -> str:
    return f"convert_to({compiler.process(element.clauses, **kw)}, 'UTF8')"


class Unindexed(FunctionElement[str]):
    """A column as a value SQLite answers with no index (its unary ``+``; the column itself
    elsewhere): it steers SQLite's planner, which has no statistics to choose by, off an index
    whose order it would otherwise prefer (see :func:`operation_page`)."""

    type = String()
    inherit_cache = True
    name = "unindexed"


@compiles(Unindexed, "sqlite")
def _unindexed_sqlite(element: Unindexed, compiler: Any, **kw: Any) -> str:
    return f"+{compiler.process(element.clauses, **kw)}"


@compiles(Unindexed)
def _unindexed(element: Unindexed, compiler: Any, **kw: Any) -> str:
    return str(compiler.process(element.clauses, **kw))


def with_term(project: Any, collection: Any, scope: Any, field: str, value: Any) -> Select[int]:
    """The pks of ``project``'s resources of ``collection`` in ``scope`` whose ``field`` has the
    term ``value`` (:mod:`core.terms`): one range of ``ix_resource_term_list``, whose columns these
    are in its order, per collection and scope. ``collection`` and ``scope`` are each a value (a
    string or a bound parameter) or a list of them; the others, a value."""
    return select(ResourceTerm.resource_pk).where(
        ResourceTerm.project == project, _one_of(ResourceTerm.collection, collection),
        _one_of(ResourceTerm.scope, scope), ResourceTerm.field == field, ResourceTerm.value == value)


def _one_of(column: InstrumentedAttribute[str], wanted: Any) -> ColumnElement[bool]:
    return column.in_(wanted) if isinstance(wanted, (list, tuple)) else column == wanted


_IN_SCOPE = (Resource.project == bindparam("project"), Resource.collection == bindparam("collection"),
             Resource.scope == bindparam("scope"))
# The body with its links moved to the caller's base by the database (one ``replace`` in C, outside
# Python's lock), where a byte replacement of the whole page would scan and copy it once more.
_BODY_ON_BASE = _Utf8(func.replace(Resource.body, bindparam("canonical"), bindparam("base")))
# The version of a row (core/models/revision.py): (pk, rev) names one state of its body.
_VERSION = (Resource.pk, ResourceRevision.rev)
_AFTER_CREATED = or_(Resource.created < bindparam("created"),
                     and_(Resource.created == bindparam("created"), Resource.pk < bindparam("pk")))
# The limit a parameter (and so the offset too: SQLite's compiler adds ``OFFSET ?`` to a bound limit).
_LIMIT: BindParameter[int] = bindparam("limit")
_OFFSET: BindParameter[int] = bindparam("offset")


def _page_statements(*columns: ColumnElement[Any] | InstrumentedAttribute[Any],
                     revisions: bool = True) -> dict[tuple[str, bool], Prepared]:
    """The page's statement, selecting ``columns`` (joined to the rows' revisions if they need
    them), for each order, first page or after a key."""
    joined = select(*columns)
    if revisions:
        joined = joined.outerjoin(ResourceRevision, ResourceRevision.resource_pk == Resource.pk)
    joined = joined.where(*_IN_SCOPE)
    by_name = joined.order_by(Resource.name)
    by_created = joined.order_by(Resource.created.desc(), Resource.pk.desc())
    return {
        ("name", False): Prepared(by_name.limit(_LIMIT).offset(_OFFSET)),
        ("name", True): Prepared(by_name.where(Resource.name > bindparam("name")).limit(_LIMIT).offset(_OFFSET)),
        ("created", False): Prepared(by_created.limit(_LIMIT).offset(_OFFSET)),
        ("created", True): Prepared(by_created.where(_AFTER_CREATED).limit(_LIMIT).offset(_OFFSET)),
    }


_COMMITTED = _page_statements(Resource.name, Resource.created, *_VERSION, _BODY_ON_BASE)
# A page whose versions nobody keeps (a page of another collection than the cached one) skips the join.
_COMMITTED_BODIES = _page_statements(Resource.name, Resource.created, Resource.pk, _BODY_ON_BASE, revisions=False)
_VERSIONS = _page_statements(*_VERSION)


def _aggregated_versions() -> dict[tuple[str, bool], Prepared]:
    """PostgreSQL: :data:`_VERSIONS` as one text (see :func:`versions_text`) made by the database:
    one value over the wire instead of 501 rows for the driver to build."""
    out = {}
    for (order, after), prepared in _page_statements(Resource.pk).items():
        page = cast(Select[Any], prepared.stmt).subquery()
        version = func.coalesce(ResourceRevision.rev, -page.c.pk)
        out[order, after] = Prepared(
            select(func.string_agg(sql_cast(version, Text), aggregate_order_by(literal_column("','"), version)))
            .select_from(page.outerjoin(ResourceRevision, ResourceRevision.resource_pk == page.c.pk)))
    return out


_VERSIONS_TEXT = _aggregated_versions()


def versions_text(versions: Sequence[tuple[int, int | None]]) -> str:
    """The (pk, rev) of a page's rows as one comparable text: each row's revision (``-pk`` for a
    row without one), in increasing order. The set is what matters: a page's order and bytes
    follow from its rows' versions."""
    return ",".join(map(str, sorted(-pk if rev is None else rev for pk, rev in versions)))

def _page_params(project: str, collection: str, scope: str, order: str, after: Key | None,
                 limit: int) -> dict[str, object]:
    params: dict[str, object] = {"project": project, "collection": collection, "scope": scope, "limit": limit,
                                 "offset": 0}
    if order == "name":
        _check_after([Resource.name], after)
        if after is not None:
            params["name"] = after[0]
    else:
        _check_after([Resource.created, Resource.pk], after)
        if after is not None:
            params["created"], params["pk"] = after
    return params


def committed_rows(engine: Engine, project: str, collection: str, scope: str, order: str, after: Key | None,
                   limit: int, *, base: str = CANONICAL_BASE,
                   versions: list[tuple[int, int | None]] | None = None) -> list[tuple[Key, bytes]]:
    """:func:`resource_rows` of one scope as committed, for a read-only request: the same rows and
    keys (and the same :class:`InvalidCursor`), read by a statement prepared once and run on a
    pooled connection outside any Session (:class:`~core.prepared.Prepared`). A 500-item page's query
    costs ~2.2 ms of CPU through the ORM session and Core's statement building and result rows,
    ~0.9 ms so. The bodies come as UTF-8 bytes with their links on ``base`` (see ``_BODY_ON_BASE``).
    ``versions``, when given, receives the rows' (pk, rev), read by the same statement (one
    snapshot): what :func:`committed_versions` answers while these rows are unchanged."""
    params = _page_params(project, collection, scope, order, after, limit)
    params["canonical"], params["base"] = '"' + CANONICAL_BASE, '"' + base
    rows = (_COMMITTED if versions is not None else _COMMITTED_BODIES)[order, after is not None].all(engine, params)
    if versions is not None:
        versions.extend((row[2], row[3]) for row in rows)
    if order == "name":
        return [([row[0]], row[-1]) for row in rows]
    return [([row[1], row[2]], row[-1]) for row in rows]


def committed_versions(engine: Engine, project: str, collection: str, scope: str, order: str,
                       after: Key | None, limit: int) -> str:
    """:func:`versions_text` of the rows :func:`committed_rows` would read now: equal to that of
    the rows of a page's bytes only if that page's rows are still the same rows, unchanged. An
    index walk and a revision lookup per row; no body is read."""
    params = _page_params(project, collection, scope, order, after, limit)
    if engine.dialect.name == "postgresql":
        return cast(str | None, _VERSIONS_TEXT[order, after is not None].scalar(engine, params)) or ""
    return versions_text(_VERSIONS[order, after is not None].all(engine, params))


_GENERATION = Prepared(text("SELECT seq FROM sqlite_sequence WHERE name = 'resource_revisions'"))
# PostgreSQL: the sequence's last number handed out (0 before the first), whatever committed.
_PG_GENERATION = Prepared(text(f"SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM {revision.PG_SEQUENCE}"))
# No transaction holds a writer's lock on the resources table now (a fast-path lock included).
_PG_SETTLED = Prepared(text(
    "SELECT NOT EXISTS (SELECT FROM pg_locks WHERE locktype = 'relation' AND relation = 'resources'::regclass "
    "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
    "AND mode IN ('RowExclusiveLock', 'ShareRowExclusiveLock', 'ExclusiveLock', 'AccessExclusiveLock'))"))


def committed_generation(engine: Engine) -> int | None:
    """A number that moves with every write of a resource's page columns (any row, any process),
    read before the pages it vouches for (see :func:`generation_settled`); None where there is none
    yet. SQLite: its revision counter, transactional. PostgreSQL: the revisions' sequence, which
    moves when a writer takes its number, before that writer commits."""
    if engine.dialect.name == "postgresql":
        return cast(int | None, _PG_GENERATION.scalar(engine, {}))
    return cast(int | None, _GENERATION.scalar(engine, {}))


def generation_settled(engine: Engine) -> bool:
    """May the generation read just before this call vouch for rows read just after it?

    On SQLite always: its counter is transactional, so it names exactly what is committed. On
    PostgreSQL a number is taken before its writer commits, so a generation ``g`` read at time A
    names rows some of which may not be committed yet: a page read then and kept under ``g``
    would miss a change that commits later without moving the sequence. It may vouch only if every
    writer that took a number up to ``g`` has ended before the page is read: this statement, run
    after A, finds no transaction holding a writer's lock on ``resources``. Why that is enough: a
    writer takes that lock before it writes its row, and its number after (in an AFTER trigger),
    and keeps the lock until its transaction ends, releasing it only once its commit is visible to
    every later snapshot; so with no such lock held now, every writer that took a number before A
    has committed (then a read after this statement sees it) or aborted. A writer that takes a
    number after A moves the sequence past ``g``: a later check sees that. (The snapshot's list
    of running transactions would not do: its ``xmax`` is the last completed id + 1, and a writer
    with a newer id is in no list.) A busy database is seldom settled: pages are then compared row
    by row (:func:`committed_versions`), as before this shortcut.
    """
    if engine.dialect.name != "postgresql":
        return True
    return bool(_PG_SETTLED.scalar(engine, {}))


@dataclass(frozen=True)
class OperationFilter:
    """What a list's filter says of its Operations' columns
    (:func:`core.resources.narrowing.operation_condition`)."""

    where: ColumnElement[bool]  # met by every Operation that can match
    unfinished: bool  # no finished one can match: a few at most, however long the history kept


def operation_rows(session: Session, project: str, scopes: list[str], order: str, after: Key | None,
                   limit: int, narrowed: OperationFilter | None = None) -> list[tuple[Key, Operation]]:
    """A page of the scopes' Operations in ``order`` after the key ``after``; ``narrowed``: only
    those that can match the list's filter."""
    if len(scopes) > 1 and order != "name" and not (narrowed and narrowed.unfinished):  # (a few are sorted at once)
        _check_after([Operation.scope, Operation.insert_time, Operation.pk], after)
        return scope_by_scope(scopes, after, limit, lambda scope, rest, n: operation_rows(
            session, project, [scope], order, rest, n, narrowed))
    q, cols = operation_page(project, scopes, order, after, limit, narrowed)
    return [([getattr(op, c.key) for c in cols], op) for op in session.scalars(q)]


def operation_page(project: str, scopes: list[str], order: str, after: Key | None, limit: int,
                   narrowed: OperationFilter | None = None) -> tuple[Select[Operation], Columns]:
    """:func:`operation_rows`' statement and its page order's columns. It walks the index in the
    page's order: ``ix_operation_scope`` by name (the default order), ``ix_operation_list``
    backwards newest first; a page of rows, whatever the history's length.

    A list of unfinished Operations alone (``narrowed.unfinished``) reads the project's unfinished ones from
    ``ix_operation_project_status`` instead and sorts them: a few (the job engine's backpressure
    bound), where the walk in page order went through the whole finished history to find them
    (68 ms a page newest first at 100,000 finished in the zone, against 3.2 ms). SQLite's planner
    preferred that walk for its order, so the scope is kept off the index there, in the page's
    condition and in its order (:class:`Unindexed`)."""
    multi = len(scopes) > 1
    cols: Columns
    if order == "name":
        cols, desc = [Operation.name], [False]
    else:
        cols, desc = [Operation.insert_time, Operation.pk], [True, True]
    scope: Any = Unindexed(Operation.scope) if narrowed and narrowed.unfinished else Operation.scope
    sort = cols
    if multi:
        cols, sort, desc = [Operation.scope, *cols], [scope, *cols], [False, *desc]
    q = select(Operation).where(Operation.project == project)
    q = q.where(scope == scopes[0]) if not multi else q.where(scope.in_(scopes))
    if narrowed is not None:
        q = q.where(narrowed.where)
    cond = _keyset(sort, after, desc)
    if cond is not None:
        q = q.where(cond)
    return q.order_by(*[c.desc() if d else c for c, d in zip(sort, desc, strict=True)]).limit(limit), cols
