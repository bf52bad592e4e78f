"""Engines and transactions for SQLite (the embedded default) and PostgreSQL.

SQLite allows one writer: a write transaction that starts as a reader and upgrades later fails
with SQLITE_BUSY without waiting. So write paths call :func:`begin_write`, which starts the
transaction with ``BEGIN IMMEDIATE`` (it waits on the busy timeout instead); reads stay deferred
and never block on writers thanks to WAL.
"""

from __future__ import annotations

import fcntl
import functools
import logging
import os
import random
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar, cast

from sqlalchemy import (
    Boolean,
    Connection,
    Dialect,
    Engine,
    Insert,
    Table,
    bindparam,
    create_engine,
    event,
    insert,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.orm import Session, SessionTransaction, make_transient_to_detached, sessionmaker
from sqlalchemy.orm.util import identity_key
from sqlalchemy.sql.schema import ScalarElementColumnDefault

from core import terms, usage
from core.models import Base
from core.prepared import Prepared

log = logging.getLogger("gstack.db")

_IMMEDIATE = "gstack_immediate"
_CONFIGURED: weakref.WeakSet[Engine] = weakref.WeakSet()


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


# A checkpoint copies every page the WAL holds into the database file once, however many commits
# changed it. Every 10,000 pages (SQLite's default is 1,000, about 20 instance inserts) the commits
# of one checkpoint share more pages: at 100,000 instances an insert's request leaves 5.8 distinct
# pages to copy over 100 requests against 10.0 over 20 (bench.insert_pages). The WAL file is kept
# at most 64 MB after a checkpoint (a long transaction may grow it past that meanwhile).
WAL_CHECKPOINT_PAGES = 10_000
WAL_KEPT_BYTES = 64 << 20


def configure_engine(engine: Engine, mmap_bytes: int = 0) -> Engine:
    """Attach the per-dialect connection set-up to an engine made elsewhere: on SQLite the pragmas
    and the write-intent BEGIN (``mmap_bytes`` lets its reads go through a memory map of at most
    that size, 0: none), on PostgreSQL the ping of connections that sat idle (:func:`_ping_if_idle`)."""
    if engine in _CONFIGURED:
        return engine
    _CONFIGURED.add(engine)
    if engine.dialect.name == "postgresql":
        event.listen(engine.pool, "checkin", _checked_in)
        event.listen(engine.pool, "checkout", functools.partial(_ping_if_idle, engine.dialect))
        return engine
    if not is_sqlite(engine):
        return engine
    engine.pool.dispose()  # connections made before the listeners would lack the pragmas

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: object) -> None:  # pragma: no cover - exercised by every test
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA wal_autocheckpoint={WAL_CHECKPOINT_PAGES}")
        cur.execute(f"PRAGMA journal_size_limit={WAL_KEPT_BYTES}")
        if mmap_bytes:
            cur.execute(f"PRAGMA mmap_size={int(mmap_bytes)}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        # On the driver's connection: through exec_driver_sql the BEGIN cost ~80 us of Python, a
        # quarter of a small write transaction's overhead (it is a statement no event needs to see).
        conn.connection.driver_connection.execute(  # type: ignore[union-attr]
            "BEGIN IMMEDIATE" if conn.get_execution_options().get(_IMMEDIATE) else "BEGIN")

    return engine


DEFAULT_POOL_MAX = 40


def engine_options(url: str, pool_max: int = DEFAULT_POOL_MAX) -> dict[str, Any]:
    """``create_engine`` keywords for a database URL, the API's engine and every other alike.

    The pool holds up to ``pool_max`` connections (the API's request threads, the job workers and
    their spares; 40 by default, ``GSTACK_DB_POOL_MAX``), 10 of them kept open. Each process has its
    own: ``gstack serve`` and two ``gstack worker`` could ask PostgreSQL for 120 under load, past
    its default ``max_connections`` of 100, and a caller past that limit is refused; a thread that
    finds the pool full waits for a connection instead. PostgreSQL's pool does not
    ``pool_pre_ping``: a ping on every checkout is one more round trip per transaction (a fifth of
    an instance insert's); :func:`_ping_if_idle` pings only connections that sat idle long enough
    for the server to have gone away meanwhile.
    """
    kept = min(10, pool_max)
    # Last in, first out, on both databases: the connection used last is taken again. On SQLite a
    # write discards every other connection's page cache (below). On PostgreSQL a pool taken in turn
    # spread a stream of requests over all ten, each with its own server process, plan cache and
    # prepared statements (psycopg prepares a statement on its fifth run on a connection): 1,000
    # inserts to RUNNING took 6.28 s against 6.69 (bench.insert_1000 compare 5, SQLite 4.56 and 4.55).
    pool = {"pool_size": kept, "max_overflow": pool_max - kept, "pool_use_lifo": True}
    if not url.startswith("sqlite"):
        return pool
    if make_url(url).database in (None, "", ":memory:"):
        return {"connect_args": {"check_same_thread": False}}  # in memory: one connection per thread
    # SQLite's default pool keeps 5: the request threads, job workers, router syncs and host monitor
    # of a busy server check out more, and each one past 5 was a new connection (its open and
    # pragmas, ~4 ms) every few inserts at 10,000 instances.
    # Last in, first out: a write by one connection discards every other connection's page cache (a
    # WAL reader sees the database changed), so the next transaction on another connection reads its
    # pages again (those still in the WAL by a read() each). Taking the connection used last keeps a
    # stream of requests and jobs on one warm connection: 4.2 against 4.7 ms of server CPU per
    # insert (bench.insert_cost, 15 alternating rounds, 14 of them lower).
    return {"connect_args": {"check_same_thread": False, "timeout": 30}, **pool}


# A pooled PostgreSQL connection idle this long is pinged before use. One in steady use is not: the
# server going away between two of its transactions fails the next one, which a ping before it would
# not have prevented either (the server may go away between the ping and the statement).
PING_AFTER_IDLE = 2.0
_IDLE_SINCE = "gstack_idle_since"


def _checked_in(_dbapi_conn: Any, record: Any) -> None:
    record.info[_IDLE_SINCE] = time.monotonic()


def _ping_if_idle(dialect: Dialect, dbapi_conn: Any, record: Any, _proxy: object) -> None:
    """SQLAlchemy's pessimistic disconnect handling, for idle connections only: a ping that fails
    raises ``DisconnectionError``, on which the pool drops this connection and checks out (makes)
    another. A fresh connection has no idle time and is not pinged."""
    since = record.info.get(_IDLE_SINCE)
    if since is None or time.monotonic() - since < PING_AFTER_IDLE:
        return
    try:
        dialect.do_ping(dbapi_conn)  # what pool_pre_ping runs
    except Exception as exc:
        raise DisconnectionError(f"pooled connection lost while idle: {exc}") from exc


def make_engine(url: str, pool_max: int = DEFAULT_POOL_MAX) -> Engine:
    return configure_engine(create_engine(url, **engine_options(url, pool_max)))


def sqlite_url(data_dir: str) -> str:
    os.makedirs(data_dir, mode=0o700, exist_ok=True)  # private: see gstack/datadir.py
    return "sqlite:///" + os.path.join(os.path.abspath(data_dir), "gstack.sqlite3")


def create_schema(engine: Engine) -> None:
    """Make the head schema directly on an empty database: the tables, and the triggers that keep
    quota usage (:mod:`core.usage`) and filter terms (:mod:`core.terms`). What the migrations make
    step by step (tests/core/test_migrations.py proves the two equal); a database that holds data
    changes only through them (:mod:`core.migrations`)."""
    Base.metadata.create_all(engine)
    usage.install(engine)
    terms.install(engine)


def write_connection(engine: Engine) -> Connection:
    """A connection whose transactions begin as writes (``BEGIN IMMEDIATE`` on SQLite), for work
    outside a Session that must not meet another writer halfway (the migrations)."""
    return engine.connect().execution_options(**{_IMMEDIATE: True})


# SQLite's own busy handler waits by sleeping (1, 2, 5, 10 ... 100 ms), so writers queue before
# BEGIN IMMEDIATE instead: threads of one process on this lock, and the processes sharing a data
# directory (``gstack serve`` and ``gstack worker``) on an flock of a file beside the database.
# Both hand over the moment the holder lets go. Writers outside gstack still meet the busy timeout.
_SQLITE_WRITE_LOCK = threading.RLock()
_HOLDS_LOCK = "gstack_holds_write_lock"
_ATTACHED = "gstack_attached_uncommitted"
_lock_files: dict[tuple[int, str], int] = {}  # by (pid, path): a forked child opens its own
_depth = 0  # write transactions this process has open (under _SQLITE_WRITE_LOCK, so at most one)


def _lock_file(engine: Engine) -> int | None:
    """The open lock file of the engine's database file (None for an in-memory database)."""
    path = engine.url.database
    if not path or path == ":memory:":
        return None
    key = (os.getpid(), path)
    fd = _lock_files.get(key)
    if fd is None:
        fd = _lock_files[key] = os.open(path + "-writer.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    return fd


def _acquire(engine: Engine) -> None:
    global _depth
    _SQLITE_WRITE_LOCK.acquire()
    try:
        fd = _lock_file(engine)
        if _depth == 0 and fd is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)
    except BaseException:
        _SQLITE_WRITE_LOCK.release()
        raise
    _depth += 1


def _release(engine: Engine) -> None:
    global _depth
    _depth -= 1
    try:
        fd = _lock_files.get((os.getpid(), engine.url.database or ""))
        if _depth == 0 and fd is not None:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        _SQLITE_WRITE_LOCK.release()


def _release_write_lock(session: Session, transaction: SessionTransaction | None) -> None:
    if transaction is not None and transaction.parent is not None:
        return  # a savepoint or subtransaction ended; the write transaction goes on
    engine = session.info.pop(_HOLDS_LOCK, None)
    if engine is not None:
        _release(engine)
    _forget_uncommitted(session)


def _forget_uncommitted(session: Session) -> None:
    """Expunge the objects :func:`attach_persistent` attached in a transaction that ended without
    committing: their rows are gone, as a rolled-back flush's objects are (the ORM expunges those
    itself). Left in the session, they would clash with a later row given the same key."""
    for obj in session.info.pop(_ATTACHED, ()):
        if obj in session:
            session.expunge(obj)


def _committed(session: Session) -> None:
    session.info.pop(_ATTACHED, None)  # their rows are the database's now


# Every Session's: a session that holds no write lock has nothing to release (one lookup). Listened
# to per session, the listener cost each write session ~70 us (the session's own event dispatch).
event.listen(Session, "after_transaction_end", _release_write_lock)
event.listen(Session, "after_commit", _committed)


def begin_write(session: Session) -> None:
    """Start a write transaction (``BEGIN IMMEDIATE`` on SQLite).

    Anything read before in this session is discarded first: a write must decide on fresh data.
    """
    if session.in_transaction():
        if session.new or session.dirty or session.deleted:
            raise RuntimeError("begin_write after unflushed changes")
        session.rollback()
    bind = session.get_bind()
    if bind.dialect.name == "sqlite" and not session.info.get(_HOLDS_LOCK):
        engine = bind.engine  # an Engine's is itself
        _acquire(engine)
        session.info[_HOLDS_LOCK] = engine
    try:
        session.connection(execution_options={_IMMEDIATE: True})
    except BaseException:
        _release_write_lock(session, None)
        raise


def flushed_connection(session: Session) -> Connection:
    """The session's connection, for a Core statement inside its transaction, after flushing what
    the session holds unflushed (as the ORM's autoflush would before a query). Hot reads run here:
    the ORM's execution path costs more than the query."""
    if session.new or session.dirty or session.deleted:
        session.flush()
    return session.connection()


def insert_persistent(session: Session, obj: Base, *, skip_clash: bool = False) -> bool:
    """INSERT the new mapped object ``obj`` with one Core statement, and make it a persistent object
    of ``session`` without reading it back.

    The ORM's flush of one new object costs several times the statement it runs (unit-of-work
    sorting, events, bookkeeping); the hottest inserts (an instance, its disk, its Operation) come
    here instead. Columns left unset get their scalar default (or NULL), in the row and on the
    object alike, as a flush would give them. Errors are the statement's own (``IntegrityError``
    on a unique clash), raised before anything is attached.

    ``skip_clash``: a unique clash inserts nothing and returns False, leaving the transaction
    usable (``ON CONFLICT DO NOTHING``) where an error would abort it on PostgreSQL: no savepoint
    (two more round trips) is needed to go on after one.
    """
    table = obj.__table__
    dialect = session.get_bind().dialect.name
    return persist(session, obj, _insert_returning(table, dialect if skip_clash else None)) is not None


def insert_all_persistent(session: Session, objs: Sequence[Base], key: str) -> set[Any]:
    """:func:`insert_persistent` of several new objects of one table in one statement, a unique
    clash skipping its row (``ON CONFLICT DO NOTHING``): the values of their column ``key`` (one
    unique to each row, such as a uid the caller drew) of those inserted.

    One multi-row ``INSERT ... VALUES (...), (...) RETURNING`` (for up to ``ROWS_PER_INSERT`` rows),
    compiled once for each count of rows, instead of a round trip per row. The rows come back in
    no promised order, so each is matched to its object by ``key``."""
    if not objs:
        return set()
    table = objs[0].__table__
    pk = table.primary_key.columns[0]
    dialect = session.get_bind().dialect.name
    by_key = {getattr(obj, key): obj for obj in objs}
    inserted = set()
    for start in range(0, len(objs), ROWS_PER_INSERT):
        chunk = objs[start:start + ROWS_PER_INSERT]
        params = {f"{name}_{i}": value for i, obj in enumerate(chunk) for name, value in row_values(obj).items()}
        for pk_value, key_value in _insert_rows(table, dialect, key, len(chunk)).in_session(session, params):
            obj = by_key[key_value]
            setattr(obj, pk.key, pk_value)
            attach_persistent(session, obj)
            inserted.add(key_value)
    return inserted


def persist(session: Session, obj: Base, stmt: Prepared, params: dict[str, Any] | None = None) -> tuple[Any, ...] | None:
    """Run ``stmt``, an INSERT of the new object ``obj`` whose parameters are its column values
    (and ``params``) and whose RETURNING starts with the primary key, in the session's transaction
    (:meth:`~core.prepared.Prepared.in_session`), and make ``obj`` persistent as
    :func:`insert_persistent` does: the statement's row, or None when it inserted nothing (a clash
    skipped, or a condition of the statement's own that refused the row)."""
    values = row_values(obj)
    rows = stmt.in_session(session, {**values, **params} if params else values)
    if not rows:
        return None
    setattr(obj, obj.__table__.primary_key.columns[0].key, rows[0][0])
    attach_persistent(session, obj)
    return rows[0]


def row_values(obj: Base) -> dict[str, Any]:
    """The column values of the new object ``obj`` for its INSERT (the primary key left to the
    database), unset columns given their scalar default (or NULL) on the object too."""
    table = obj.__table__
    pk = table.primary_key.columns[0]
    given = obj.__dict__
    for c in table.columns:
        if c is not pk and c.key not in given:
            if c.default is not None and not c.default.is_scalar:
                raise TypeError(f"{table.name}.{c.key} has a computed default: set it before insert_persistent")
            scalar = cast(ScalarElementColumnDefault | None, c.default)  # is_scalar, checked above
            setattr(obj, c.key, scalar.arg if scalar is not None else None)
    return {c.key: getattr(obj, c.key) for c in table.columns if c is not pk}


_B = TypeVar("_B", bound=Base)


def read_only(cls: type[_B], row: Sequence[Any]) -> _B:
    """An object of ``cls`` holding ``row`` (the values of its table's columns, in their order, as
    the driver gives them) as loaded values, outside any session: what the ORM's loading would
    make of the row, without its bookkeeping (several times the cost of a small read), for rows a
    caller reads and never changes. A change to it is not written."""
    keys, flags = _columns_of(cls)
    obj: _B = cls.__mapper__.class_manager.new_instance()
    values = obj.__dict__
    values.update(zip(keys, row, strict=True))
    for key in flags:  # SQLite's 0 or 1
        if values[key] is not None:
            values[key] = bool(values[key])
    return obj


def loaded(session: Session, cls: type[_B], stmt: Prepared, params: dict[str, Any]) -> list[_B]:
    """The rows of ``stmt``, a SELECT of the columns of ``cls``'s table in their order, run in the
    session's transaction (:meth:`~core.prepared.Prepared.in_session`: a locking read of rows the
    caller changes), as persistent objects of ``session`` (:func:`attached`) without the ORM's
    per-query set-up, which cost a job's read of two rows ~300 us."""
    return [attached(session, cls, row) for row in stmt.in_session(session, params)]


def attached(session: Session, cls: type[_B], row: Sequence[Any]) -> _B:
    """``row`` (the values of ``cls``'s table's columns, in their order) as a persistent object of
    ``session``: what the ORM's loading makes of it (an object the session holds already is kept
    as it is)."""
    keys, _ = _columns_of(cls)
    known = session.identity_map.get(identity_key(cls, row[keys.index(cls.__table__.primary_key.columns[0].key)]))
    if isinstance(known, cls):
        return known
    obj = read_only(cls, row)
    make_transient_to_detached(obj)
    session.add(obj)
    return obj


def parts_of(row: Sequence[Any], *classes: type[Base]) -> tuple[list[Sequence[Any] | None], Sequence[Any]]:
    """A row holding the columns of each of ``classes``' tables in turn (in their order), then
    others: each table's part (None where an outer join found no row: its first column is NULL)
    and what follows them."""
    parts: list[Sequence[Any] | None] = []
    at = 0
    for cls in classes:
        end = at + len(_columns_of(cls)[0])
        parts.append(row[at:end] if row[at] is not None else None)
        at = end
    return parts, row[at:]


@functools.cache
def _columns_of(cls: type[Base]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The keys of ``cls``'s table's columns, in order, and those of its Boolean ones."""
    columns = cls.__table__.columns
    return tuple(c.key for c in columns), tuple(c.key for c in columns if isinstance(c.type, Boolean))


def attach_persistent(session: Session, obj: Base) -> None:
    """Make ``obj``, whose row exists with the values it holds, a persistent object of ``session``
    without reading it: the columns it was not given are expired (read if asked for)."""
    make_transient_to_detached(obj)
    session.add(obj)
    session.info.setdefault(_ATTACHED, []).append(obj)  # forgotten if the transaction rolls back


ROWS_PER_INSERT = 100  # rows of one INSERT of insert_all_persistent: 1,600 parameters of 16 columns


def row_params(table: Table, suffix: str = "") -> dict[str, Any]:
    """A bound parameter for each column of ``table`` but its primary key, named after the column
    (and ``suffix``): the VALUES of an INSERT whose parameters are :func:`row_values`."""
    pk = table.primary_key.columns[0]
    return {c.key: bindparam(c.key + suffix, type_=c.type) for c in table.columns if c is not pk}


@functools.cache
def _insert_returning(table: Table, skipping_clashes_on: str | None) -> Prepared:
    stmt = insert_skipping_clashes(table, skipping_clashes_on) if skipping_clashes_on else insert(table)
    return Prepared(stmt.values(row_params(table)).returning(table.primary_key.columns[0]))


@functools.cache
def _insert_rows(table: Table, dialect: str, key: str, count: int) -> Prepared:
    """``count`` rows of ``table`` skipping clashes, RETURNING each one's primary key and ``key``;
    the parameters of row ``i`` are suffixed ``_i``."""
    stmt = insert_skipping_clashes(table, dialect).values([row_params(table, f"_{i}") for i in range(count)])
    return Prepared(stmt.returning(table.primary_key.columns[0], table.columns[key]))


def insert_skipping_clashes(table: Table, dialect: str) -> Insert:
    """``INSERT ... ON CONFLICT DO NOTHING`` in the dialect's spelling (both have it; Core has not)."""
    if dialect == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    return sqlite.insert(table).on_conflict_do_nothing()


_SYNC_OFF = text("SET LOCAL synchronous_commit = off")


def unflushed_commit(session: Session) -> None:
    """Let the session's write transaction commit without waiting for the disk (PostgreSQL's
    ``synchronous_commit = off`` for this transaction alone; nothing on SQLite, whose WAL commits
    do not wait for it either, ``synchronous=NORMAL``).

    Only for the job engine's own bookkeeping, never for a write a caller is told of: a claim's
    lease, a lease's heartbeat, a failed attempt's release. Such a commit is flushed with the next
    flushed commit (WAL is written in order), so what is lost in a crash of the server or of
    PostgreSQL is at most the last ~0.6 s of bookkeeping, and each loss is recovered: a lost lease
    or heartbeat lapses and the job is claimed and run again (handlers are safe to re-run), a lost
    release defers the retry until the lease lapses. A durable commit costs a WAL flush (2-3 ms on
    the test machine), more than the whole claim; a job's steps and its end, which record what a
    hypervisor did and what the caller sees, stay flushed.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(_SYNC_OFF)


@contextmanager
def sqlite_write(engine: Engine) -> Iterator[Any]:
    """A SQLite write transaction outside any Session (``BEGIN IMMEDIATE``, in the writers' queue
    like :func:`begin_write`'s), as a DBAPI cursor for :meth:`core.prepared.Prepared.on`: committed on success,
    rolled back on error.

    For the job engine's claim, a read and an update taken after every job: through a Session the
    two statements cost about four times their own work (the Session, the ORM's execution path,
    the connection's events), more than the rest of a small job's bookkeeping.
    """
    _acquire(engine)
    try:
        conn = engine.raw_connection()
        try:
            cursor = conn.cursor()
            cursor.execute("BEGIN IMMEDIATE")
            try:
                yield cursor
                cursor.execute("COMMIT")
            except BaseException:
                cursor.execute("ROLLBACK")
                raise
            finally:
                cursor.close()
        finally:
            conn.close()  # back to the pool
    finally:
        _release(engine)


@contextmanager
def writing(session: Session) -> Iterator[Session]:
    """A write transaction on an existing session, committed on success and rolled back on error."""
    begin_write(session)
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise


@contextmanager
def write_session(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A new session in a write transaction (see :func:`writing`)."""
    with factory() as session, writing(session):
        yield session


# Contention the database resolved by aborting the transaction: PostgreSQL's deadlock (40P01) and
# serialization failure (40001); SQLite busy or locked (a writer outside gstack's queue).
_PG_CONTENTION = ("40P01", "40001")
_SQLITE_CONTENTION = ("SQLITE_BUSY", "SQLITE_LOCKED")
RETRY_BUDGET = 30.0  # seconds a write keeps trying before its contention error goes to the caller

T = TypeVar("T")


def contention(exc: BaseException) -> bool:
    """Whether ``exc`` is a transaction the database aborted for contention alone: nothing of it
    was committed, and the same work run again from the start may well succeed."""
    if not isinstance(exc, DBAPIError):
        return False
    orig = exc.orig
    if getattr(orig, "sqlstate", None) in _PG_CONTENTION:
        return True
    if getattr(orig, "sqlite_errorname", None) in _SQLITE_CONTENTION:
        return True
    return "database is locked" in str(orig)  # SQLite builds without error names


def retrying(fn: Callable[[], T], rollback: Callable[[], None] | None = None, budget: float = RETRY_BUDGET) -> T:
    """``fn()``, run again while it fails for :func:`contention`, with a jittered back-off, for
    up to ``budget`` seconds; any other error, or contention past the budget, goes to the caller.

    Safe because the failed transaction is gone: ``rollback`` (the session's) ends it before the
    next attempt, which reads everything afresh. ``fn`` must do all of its transaction's work
    (begin, writes and commit) and nothing outside the database that it cannot do twice. This is
    how the server absorbs its own contention: a deadlock between two clients' writes is the
    server's affair, never a 500 for one of them.
    """
    deadline = time.monotonic() + budget
    delay = 0.005
    while True:
        try:
            return fn()
        except DBAPIError as exc:
            if not contention(exc) or time.monotonic() + delay > deadline:
                raise
            log.info("transaction aborted for contention, retrying: %s", str(exc.orig).splitlines()[0])
            if rollback is not None:
                rollback()
        time.sleep(delay * random.uniform(0.5, 1.5))
        delay = min(delay * 2, 0.5)
