"""Statements run on the DBAPI connection: :class:`Prepared`, compiled once per dialect and run
outside any Session (on PostgreSQL on one of a few connections kept in autocommit beside the pool),
or in a Session's transaction. The hottest reads, the job engine's claims and the rows an insert
writes: through SQLAlchemy's execution path each paid several times its own cost in Python. And
:func:`shared_statement` and :func:`warmed`, for the statements that do take SQLAlchemy's path but
are shared by every request thread: compiled once, in one thread, before any thread runs them."""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import orjson
from sqlalchemy import ColumnElement, Engine, String, Table, bindparam, event, inspect, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import QueryableAttribute, Session
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.sql import ClauseElement, Select
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import TextClause
from sqlalchemy.sql.sqltypes import NullType

log = logging.getLogger("gstack.db")
_IDLE = 0  # libpq's PQTRANS_IDLE (psycopg.pq.TransactionStatus.IDLE): no transaction open
_COMPILING = threading.Lock()


class Among(ColumnElement[Any]):
    """``column IN`` the integers of a JSON array given as the parameter ``name`` (text, as
    ``"[3, 5, 8]"``): a list in a :class:`Prepared` statement, which takes no expanding parameter.
    SQLite reads the array with ``json_each``; PostgreSQL makes it an array once (an InitPlan) and
    matches ``= ANY`` of it, which walks the column's index as an ``IN`` list would."""

    type = NullType()  # a Boolean one would be compared with 1 on SQLite (which then scans the table)
    inherit_cache = False  # compiled once by Prepared, never looked up in Core's statement cache

    def __init__(self, column: ColumnElement[Any] | QueryableAttribute[Any], name: str):
        self.column = column.expression if isinstance(column, QueryableAttribute) else column
        self.param = bindparam(name, type_=String)


@compiles(Among)
def _among(element: Among, compiler: SQLCompiler, **kw: Any) -> str:
    return (f"{compiler.process(element.column, **kw)} IN "
            f"(SELECT value FROM json_each({compiler.process(element.param, **kw)}))")


@compiles(Among, "postgresql")
def _among_postgresql(element: Among, compiler: SQLCompiler, **kw: Any) -> str:
    return (f"{compiler.process(element.column, **kw)} = ANY(ARRAY("
            f"SELECT CAST(json_array_elements_text(CAST({compiler.process(element.param, **kw)} AS json)) AS bigint)))")


def among(column: ColumnElement[Any] | QueryableAttribute[Any], name: str) -> Among:
    """See :class:`Among`."""
    return Among(column, name)


def json_ids(ids: Iterable[int]) -> str:
    """Integers as the parameter of :func:`among`."""
    return orjson.dumps(list(ids)).decode()


class Prepared:
    """A Core statement compiled once per dialect and run on a DBAPI connection: a read on a pooled
    one (:meth:`all`), or any statement in a Session's transaction (:meth:`in_session`).

    The hottest reads (a resource's body, a page of a list) are one indexed SELECT that costs the
    database a few µs; through a Session each also paid ~100 µs of Python: the ORM execution path,
    ``BEGIN``, result processing and the rollback at the end. A statement prepared here runs outside
    any Session, as its own transaction (autocommit), so it sees what is committed,
    as a fresh Session would, and never what the caller's own open transaction wrote.

    Only for statements whose parameters are named :func:`~sqlalchemy.bindparam` or constants of the
    statement (no expanding IN list), none of whose values or result columns need type conversion
    (strings, integers, floats): parameters go to the driver and rows come back as they are.
    """

    def __init__(self, stmt: ClauseElement):
        self.stmt = stmt
        self._compiled: dict[str, _Compiled] = {}
        # A read may run again on another connection when its own turns out broken; a write may
        # have committed before the connection broke, so its error goes to the caller.
        self.read_only = isinstance(stmt, Select) or (isinstance(stmt, TextClause)
                                                      and stmt.text.lstrip().upper().startswith("SELECT"))

    def _sql(self, engine: Engine) -> _Compiled:
        """The statement compiled for the engine's dialect."""
        hit = self._compiled.get(engine.dialect.name)
        if hit is None:
            with _COMPILING:  # never two threads compiling one statement cold (see shared_statement below)
                hit = self._compiled.get(engine.dialect.name)
                if hit is None:
                    hit = self._compiled[engine.dialect.name] = _Compiled.of(self.stmt, engine)
        return hit

    def all(self, engine: Engine, params: Mapping[str, object]) -> Sequence[tuple[Any, ...]]:
        compiled = self._sql(engine)
        sql, args = compiled.sql, compiled.args(params)
        if engine.dialect.name == "postgresql":
            rows = _autocommit(engine).all(sql, args, self.read_only)
            if rows is not None:
                return rows
        conn = engine.raw_connection()
        # PostgreSQL (when its autocommit connections are all in use): the statement is its own
        # transaction, as on SQLite: no BEGIN and no ROLLBACK, two round trips of three.
        driver = conn.driver_connection if engine.dialect.name == "postgresql" else None
        try:
            if driver is not None:
                driver.autocommit = True
            cursor = conn.cursor()
            try:
                cursor.execute(sql, args)
                return cursor.fetchall()
            finally:
                cursor.close()
        finally:
            if driver is not None:
                try:
                    driver.autocommit = False  # as the pool hands connections out
                except Exception:  # the connection broke (the statement's error is on its way)
                    # As a Session's statement would on a disconnect: every pooled connection made
                    # before this one is suspect too (the server went away or was restarted), and is
                    # replaced at its next checkout instead of failing the next statement of its own.
                    engine.pool._invalidate(conn)
            conn.close()  # back to the pool

    def on(self, cursor: Any, engine: Engine, params: Mapping[str, object]) -> Sequence[tuple[Any, ...]]:
        """Run in the transaction of ``cursor`` (a :func:`core.db.sqlite_write` cursor), not as its own."""
        compiled = self._sql(engine)
        cursor.execute(compiled.sql, compiled.args(params))
        return cast(Sequence[tuple[Any, ...]], cursor.fetchall())

    def in_session(self, session: Session, params: Mapping[str, object]) -> Sequence[tuple[Any, ...]]:
        """Run in the Session's transaction, on its DBAPI connection: a statement of the caller's
        transaction (an insert's first read, its rows, address and Operation), at ~10 µs of Python
        where Core's execution path cost ~130 µs (its execution context, parameter processing,
        result object) and the ORM's several times that. Not for statements whose parameters or
        results need type conversion (see the class).

        As a Session's statement would, what the session holds unflushed is flushed first; as Core
        would, the connection's ``before_cursor_execute`` listeners see the statement (and
        may rewrite it), and the driver's error is raised as SQLAlchemy's (an ``IntegrityError`` on a
        unique clash; the connection invalidated on a disconnect), so callers and
        :func:`core.db.retrying` tell them apart as before."""
        return self._in_session(session, params, many=False)

    def alone(self, session: Session, params: Mapping[str, object]) -> Sequence[tuple[Any, ...]] | None:
        """PostgreSQL, while the Session's transaction has sent no statement yet (psycopg sends its
        BEGIN with the first): the statement as a transaction of its own, on the session's
        connection, as :meth:`all` runs one on a pooled connection; its error raised as
        :meth:`in_session` raises it. None when it cannot run so (SQLite, or the transaction has
        begun): the caller runs it :meth:`in_session`.

        A call whose write is this one statement saves the round trips of BEGIN and COMMIT, two of
        an instance insert's five. What it writes is committed whatever the session does next: only
        for a statement that writes nothing, or a caller that writes nothing else in its call."""
        if session.new or session.dirty or session.deleted:
            return None
        conn = session.connection()
        if conn.dialect.name != "postgresql":
            return None
        driver = conn.connection.driver_connection
        if driver is None or driver.info.transaction_status != _IDLE:
            return None
        driver.autocommit = True
        try:
            return self._in_session(session, params, many=False)
        finally:
            with contextlib.suppress(Exception):  # a broken connection: its error is on its way
                driver.autocommit = False  # as the pool handed it out

    def many_in_session(self, session: Session, params: Sequence[Mapping[str, object]]) -> None:
        """:meth:`in_session` once for each of ``params``, as one executemany (which psycopg sends
        as one pipeline), without flushing the session first: what its caller writes is the rows
        the session holds changed (:func:`write_back`), which a flush would write first, one
        UPDATE each."""
        if params:
            self._in_session(session, params, many=True)

    def _in_session(self, session: Session, params: Any, many: bool) -> Sequence[tuple[Any, ...]]:
        if not many and (session.new or session.dirty or session.deleted):
            session.flush()
        conn = session.connection()
        engine = conn.engine
        compiled = self._sql(engine)
        sql = compiled.sql
        args = [compiled.args(p) for p in params] if many else compiled.args(params)
        fairy = conn.connection
        cursor = fairy.driver_connection.cursor()  # type: ignore[union-attr]  # a live transaction's
        try:
            for listener in conn.dispatch.before_cursor_execute:
                sql, args = listener(conn, cursor, sql, args, None, many)
            if many:
                cursor.executemany(sql, args)
                return []
            cursor.execute(sql, args)
            # No rows to fetch from a statement that returns none (psycopg refuses to fetch them).
            return cast(Sequence[tuple[Any, ...]], cursor.fetchall()) if cursor.description is not None else []
        except engine.dialect.loaded_dbapi.Error as exc:
            lost = engine.dialect.is_disconnect(exc, fairy.dbapi_connection, cursor)
            if lost:
                conn.invalidate(exc)
            raise DBAPIError.instance(sql, args, exc, engine.dialect.loaded_dbapi.Error, connection_invalidated=lost,
                                      dialect=engine.dialect) from exc
        finally:
            cursor.close()

    def scalar(self, engine: Engine, params: Mapping[str, object]) -> object:
        """The first column of the first row, None when there is no row."""
        rows = self.all(engine, params)
        return rows[0][0] if rows else None


@dataclass(frozen=True)
class _Compiled:
    """A statement's SQL for one dialect: ``order``, its parameters' names in order when the
    driver's style is positional (None: by name); ``constants``, the values bound in the statement
    itself (``collection == "instances"``), sent with the caller's parameters."""

    sql: str
    order: tuple[str, ...] | None
    constants: dict[str, Any]

    @classmethod
    def of(cls, stmt: ClauseElement, engine: Engine) -> _Compiled:
        compiled = cast(SQLCompiler, stmt.compile(dialect=engine.dialect))  # a statement's compiler
        expanding = [name for name, bind in compiled.binds.items() if bind.expanding]
        if expanding:  # rendered at each run by Core: a list of plain parameters instead
            raise TypeError(f"a Prepared statement takes no expanding parameter: {expanding}")
        bound = {name for name, bind in compiled.binds.items() if bind.value is not None or bind.callable is not None}
        constants = {name: value for name, value in compiled.construct_params(_check=False).items() if name in bound}
        return cls(compiled.string, tuple(compiled.positiontup or ()) if compiled.positional else None, constants)

    def args(self, params: Mapping[str, object]) -> Any:
        """The driver's parameters: the caller's ``params`` with the statement's constants."""
        if self.order is None:
            return {**self.constants, **params} if self.constants else params
        if not self.constants:
            return tuple(params[name] for name in self.order)
        return tuple(self.constants[name] if name in self.constants else params[name] for name in self.order)


# Connections a process keeps in autocommit for its Prepared statements on PostgreSQL, beside the
# engine's pool (whose connections are handed out in transactions). A statement beyond this many
# at once takes a pooled connection instead, so a process never holds more than this many more.
AUTOCOMMIT_CONNECTIONS = 8


class _Autocommit:
    """PostgreSQL connections that stay in autocommit, each with its cursor, for :class:`Prepared`.

    Through the engine's pool a one-statement read cost ~90 µs of CPU against ~30 µs on a held
    connection (measured on the test machine, psycopg 3.3): the checkout and checkin events, two
    switches of autocommit, a new cursor and the reset at checkin. Here a statement takes an idle
    connection off a list and puts it back. A connection found broken (the server went away or
    restarted) is closed with every idle one made before it, as the pool would invalidate its own;
    a read then runs once more on a new connection, so a restart costs no caller an error; a write
    may have committed before the break, so its error goes to the caller, as it did before.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._idle: list[tuple[Any, Any, float]] = []  # (connection, its cursor, when it was made)
        self._open = 0  # idle and in use
        self._lock = threading.Lock()
        self._disposed_at = 0.0  # a connection made before is closed when given back
        self.pid = os.getpid()
        event.listen(engine, "engine_disposed", lambda _engine: self.dispose())

    def _take(self) -> tuple[Any, Any, float] | None:
        with self._lock:
            if self._idle:
                return self._idle.pop()
            if self._open >= AUTOCOMMIT_CONNECTIONS:
                return None
            self._open += 1
        try:
            cargs, cparams = self.engine.dialect.create_connect_args(self.engine.url)
            conn = self.engine.dialect.loaded_dbapi.connect(*cargs, **cparams, autocommit=True)
            hook = self.engine.dialect.on_connect()  # what the pool's connections get (a notice log)
            if hook is not None:
                hook(conn)
        except BaseException:
            with self._lock:
                self._open -= 1
            raise
        return conn, conn.cursor(), time.monotonic()

    def _close(self, conn: Any) -> None:
        with self._lock:
            self._open -= 1
        with contextlib.suppress(Exception):  # already gone
            conn.close()

    def _lost(self, made: float) -> None:
        """A connection made at ``made`` broke: so did every idle one made before it."""
        with self._lock:
            stale = [item for item in self._idle if item[2] <= made]
            self._idle = [item for item in self._idle if item[2] > made]
        for conn, _, _ in stale:
            self._close(conn)

    def all(self, sql: str, args: Any, read_only: bool) -> Sequence[tuple[Any, ...]] | None:
        """The statement's rows, None when every connection is in use (the caller runs it on the pool)."""
        for attempt in (1, 2):
            item = self._take()
            if item is None:
                return None
            conn, cursor, made = item
            try:
                cursor.execute(sql, args)
                rows: Sequence[tuple[Any, ...]] = cursor.fetchall()
            except Exception:
                if not conn.broken:  # the statement's own error: the connection is fine (autocommit)
                    self._give_back(item)
                    raise
                self._close(conn)
                self._lost(made)
                if read_only and attempt == 1:
                    continue
                raise
            self._give_back(item)
            return rows
        raise AssertionError("unreachable")

    def _give_back(self, item: tuple[Any, Any, float]) -> None:
        with self._lock:
            if item[2] > self._disposed_at:
                self._idle.append(item)
                return
        self._close(item[0])

    def dispose(self) -> None:
        """The engine was disposed (``Engine.dispose``): its connections close, these too."""
        self._disposed_at = time.monotonic()
        self._lost(self._disposed_at)


_AUTOCOMMIT: weakref.WeakKeyDictionary[Engine, _Autocommit] = weakref.WeakKeyDictionary()
_AUTOCOMMIT_LOCK = threading.Lock()


def _autocommit(engine: Engine) -> _Autocommit:
    """The engine's autocommit connections in this process: a forked child (a server that forks
    its workers) makes its own and leaves its parent's alone, whose sockets it shares."""
    found = _AUTOCOMMIT.get(engine)
    if found is None or found.pid != os.getpid():
        with _AUTOCOMMIT_LOCK:
            found = _AUTOCOMMIT.get(engine)
            if found is None or found.pid != os.getpid():
                found = _AUTOCOMMIT[engine] = _Autocommit(engine)
    return found


@functools.cache
def _written(table: Table, columns: tuple[str, ...]) -> Prepared:
    pk = table.primary_key.columns[0]
    return Prepared(update(table).where(pk == bindparam("row_pk")).values({c: bindparam("row_" + c) for c in columns}))


def write_back(session: Session, objs: Iterable[Any], columns: tuple[str, ...]) -> None:
    """Write ``columns`` of ``objs`` (persistent objects of one table, changed in memory in this
    transaction) with one executemany UPDATE by primary key, and leave them clean.

    The flush would make the same change through the unit of work: one UPDATE per set of changed
    columns, at ~0.2-0.3 ms of Python for a single row, the cost of a whole small statement several
    times over (psycopg pipelines the executemany: one round trip however many rows). A column an
    object did not change is written with the value it has (the triggers compare values). An
    object with a change to a column not in ``columns`` stays dirty, and the flush writes that
    change; so does an object the session has not inserted yet."""
    # (What an autoflush wrote is not written again; an object not yet inserted is the flush's.)
    changed = [obj for obj in objs if (state := inspect(obj)).modified and state.persistent]
    if not changed:
        return
    table = changed[0].__table__
    pk = table.primary_key.columns[0].key
    _written(table, columns).many_in_session(
        session, [{"row_pk": getattr(obj, pk), **{"row_" + c: getattr(obj, c) for c in columns}} for obj in changed])
    written = set(columns)
    for obj in changed:
        state = inspect(obj)
        if state.committed_state.keys() <= written:
            # Every change was written: the object is clean. Left flagged modified, it stayed in
            # the session's dirty set, and the next statement's autoflush compared it attribute by
            # attribute to write nothing (~130 us a row: half a lone VM's staging). (The public
            # set_committed_value leaves it flagged modified.)
            state._commit_all(state.dict, session.identity_map)
            continue
        for c in columns:
            set_committed_value(obj, c, getattr(obj, c))


_S = TypeVar("_S")
_SHARED_LOCK = threading.Lock()
_DIALECTS: tuple[Dialect, ...] = (sqlite.dialect(), cast(Callable[[], Dialect], postgresql.dialect)())


def shared_statement(build: Callable[..., _S]) -> Callable[..., _S]:
    """:func:`functools.cache` for a function that builds a statement the request threads share,
    built once, under a lock, and compiled once for each dialect before any thread gets it.

    A statement's first compilations fill structures SQLAlchemy builds lazily (an ORM entity
    aliased to a subquery adapts the entity's columns to the subquery's). Compiled for the first
    time by several threads at once, an ORM select over such a subquery once came out with a
    column left unadapted (``resources.size_gb`` for ``found.size_gb``: the table in the FROM list
    again, every row joined to every resource), and the engine kept that SQL in its compiled
    cache: a PostgreSQL server's first burst of inserts answered 400s until the entry was evicted
    (tests/chaos/test_kill9.py). Compiled here first, in one thread, no thread compiles it cold."""
    built: dict[Any, _S] = {}

    @functools.wraps(build)
    def get(*args: Any) -> _S:
        found = built.get(args)
        if found is None:
            with _SHARED_LOCK:
                found = built.get(args)
                if found is None:
                    found = built[args] = warmed(build(*args))
        return found

    return get


def warmed(stmt: _S) -> _S:
    """``stmt`` compiled once for each dialect, in this thread, before threads share it (see
    :func:`shared_statement`): for a statement built at import and run by every request."""
    for dialect in _DIALECTS:
        cast(Any, stmt).compile(dialect=dialect)
    return stmt
