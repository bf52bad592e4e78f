"""Address allocation: the next free address of a pool, one writer of a pool at a time, guarded by a
unique constraint."""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Connection,
    Select,
    String,
    and_,
    bindparam,
    cast,
    delete,
    func,
    literal_column,
    or_,
    select,
    true,
    union_all,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import ReturningInsert

from core.db import flushed_connection, insert_skipping_clashes
from core.errors import BadRequest
from core.models import IpAllocation
from core.prepared import Prepared

# The range ephemeral external addresses come from (RFC 2544 benchmark space: never routed).
EXTERNAL_RANGE = "198.18.0.0/15"


_SUBNET = "subnet:"
_EXTERNAL = "external:"


def subnet_pool(subnet_uid: int) -> str:
    """The pool of a subnetwork's internal addresses (its primary range): every NIC's ``networkIP``
    comes from one, so its holders are the instances on the subnetwork (or the static addresses
    they use)."""
    return f"{_SUBNET}{subnet_uid}"


def allocate(session: Session, pool: str, cidr: str, owner_uid: int, reserved_head: int = 2,
             space: str | None = None, project: str | None = None) -> str:
    """Take the next free host address of ``cidr`` (skipping network, gateway and broadcast).

    Addresses go up from the highest one handed out, so a released address is not reused while
    the range has room (a DHCP-like rule that keeps stale ARP and DNS entries harmless): one
    statement finds and takes it. Writers of one pool take turns (:func:`_lock_pool`), so the
    address found is free when it is taken: no retry that could give up under load, and the only
    refusal is a full range (GCE's ``IP space of ... is exhausted``, naming ``space``, the
    subnetwork, when the caller gives it).

    ``project``: the project whose in-use external addresses (``IN_USE_ADDRESSES``) this one counts
    in: an external address an instance, a forwarding rule or a Cloud NAT holds without a static
    address. Triggers keep the count (:mod:`core.usage`); None for any other address.
    """
    first, last = _bounds(cidr, reserved_head)
    conn = flushed_connection(session)
    params = {"pool": pool, "owner_uid": owner_uid, "first": first, "last": last, "project": project}
    taken = _locked_take_next(session, conn, pool, params)
    if taken is None:  # the top of the range is taken: fill the lowest gap left by released addresses
        used = set(conn.execute(_USED, {"pool": pool}).scalars())
        for free in (a for a in range(first, last + 1) if a not in used):
            taken = conn.execute(_take(conn.dialect.name), {**params, "address": free}).scalar()
            if taken is not None:
                break
    if taken is None:
        raise BadRequest(f"IP space of '{space or cidr}' is exhausted.")
    return str(ipaddress.ip_address(taken))


def _bounds(cidr: str, reserved_head: int) -> tuple[int, int]:
    """The first and last address :func:`allocate` hands out in ``cidr``: after the network's own
    and ``reserved_head`` - 1 more (the gateway), before the broadcast address and the one below it,
    which GCE keeps too."""
    net = ipaddress.ip_network(cidr)
    return int(net.network_address) + reserved_head, int(net.broadcast_address) - 2


@dataclass(frozen=True)
class Predicted:
    """The address :func:`allocate` would take next in ``pool``, guessed from the pool's highest as
    a read found it (:func:`pool_top`). :func:`taking` takes it only if it is still the next (one
    past the pool's highest), in the statement that writes what holds it."""

    pool: str
    address: int
    first: int
    owner_uid: int
    project: str | None = None  # as allocate's

    @property
    def text(self) -> str:
        return str(ipaddress.ip_address(self.address))

    def params(self, i: int = 0) -> dict[str, Any]:
        """The parameters of the ``i``-th address :func:`taking` takes."""
        return {f"ip_pool_{i}": self.pool, f"ip_address_{i}": self.address, f"ip_first_{i}": self.first,
                f"ip_owner_uid_{i}": self.owner_uid, f"ip_project_{i}": self.project}


@dataclass
class Guesses:
    """Where an insert predicts its addresses instead of taking them: the highest address of each
    pool its read found (:func:`pool_top`, by pool; None: an empty pool: its subnetworks', and the
    region's external pool when it asks for an ephemeral external address), and the predictions made."""

    tops: dict[str, int | None]
    made: list[Predicted] = field(default_factory=list)

    def predict(self, pool: str, cidr: str, owner_uid: int, reserved_head: int = 2,
                project: str | None = None) -> Predicted | None:
        """The address :func:`allocate` would take next in ``pool`` for ``owner_uid`` (and
        ``project``, as allocate's), when the read found the pool and the range has room above its
        highest; None otherwise (the caller allocates).

        A PostgreSQL insert that takes its address by :func:`allocate` spends a round trip on it
        (and its transaction one more on BEGIN, ahead of it); a predicted address goes in with the
        instance's own rows, one statement. The guess is checked there: when another writer took
        the address, or any above it, since the read, nothing goes in and the caller allocates."""
        if pool not in self.tops:
            return None
        first, last = _bounds(cidr, reserved_head)
        top = self.tops[pool]
        if top is not None and not first <= top < last:
            return None  # the top of the range is taken (allocate fills a gap), or a stray address
        guess = Predicted(pool, first if top is None else top + 1, first, owner_uid, project)
        self.made.append(guess)
        return guess

    def params(self) -> dict[str, Any]:
        """The parameters of the statement of :func:`taking` the predictions made."""
        return {k: v for i, guess in enumerate(self.made) for k, v in guess.params(i).items()}


def pool_top(pool: ColumnElement[str]) -> ColumnElement[int]:
    """The highest address of ``pool`` (NULL: none), as a column of a read (one step down the
    pool's index): what :class:`Guesses` predicts from."""
    return select(IpAllocation.address).where(IpAllocation.pool == pool) \
        .order_by(IpAllocation.address.desc()).limit(1).scalar_subquery()


def subnet_top(subnet_uid: ColumnElement[int]) -> ColumnElement[int]:
    """:func:`pool_top` of the subnetwork whose uid is ``subnet_uid``."""
    return pool_top(literal_column(f"'{_SUBNET}'", String) + cast(subnet_uid, String))


def external_pool(region: str) -> str:
    """The pool of a region's ephemeral external addresses (in :data:`EXTERNAL_RANGE`)."""
    return f"{_EXTERNAL}{region}"


@functools.cache
def taking(n: int) -> Callable[[ColumnElement[bool], bool], ReturningInsert[Any]]:
    """What builds the INSERT of ``n`` :class:`Predicted` addresses (the ``i``-th's parameters are its
    :meth:`~Predicted.params` of ``i``) where a condition holds and each address is still its pool's
    next one (one past its highest, or the range's first of an empty pool); RETURNING them. All or
    none: no row when one is not, as another writer took it or one above. ``atomic``: a clash with a
    concurrent insert of one of them fails the statement (else that one is skipped, and the
    caller, which finds fewer than ``n``, rolls back). Built once per ``n``: the statement that
    holds it is cached by this builder."""

    def build(condition: ColumnElement[bool], atomic: bool) -> ReturningInsert[Any]:
        def param(name: str, i: int, type_: Any) -> Any:
            return bindparam(f"ip_{name}_{i}", type_=type_)

        still_next = [func.coalesce(pool_top(param("pool", i, String)), param("first", i, BigInteger) - 1)
                      == param("address", i, BigInteger) - 1 for i in range(n)]
        rows = [select(param("pool", i, String), param("address", i, BigInteger), param("owner_uid", i, BigInteger),
                       param("project", i, String)).where(condition, *still_next) for i in range(n)]
        table = IpAllocation.__table__
        stmt = postgresql.insert(table) if atomic else insert_skipping_clashes(table, "postgresql")
        return stmt.from_select(_COLUMNS, rows[0] if n == 1 else union_all(*rows)).returning(IpAllocation.address)

    return build


def _lock_pool(session: Session, conn: Connection, pool: str) -> None:
    """Make this transaction the pool's only writer until it ends (PostgreSQL: a transaction-scoped
    advisory lock on the pool's name; SQLite has one writer at a time anyway). Without it two
    transactions read the same highest address and all but one clash, again and again under load.
    A lock the transaction took already is not asked for again."""
    if conn.dialect.name == "postgresql" and pool not in _held(session):
        conn.execute(_lock_pools(1), {"pool_0": pool})
        _held(session).add(pool)


def _locked_take_next(session: Session, conn: Connection, pool: str, params: dict[str, Any]) -> int | None:
    """:func:`_take_next` as this transaction the pool's writer (:func:`_lock_pool`). On PostgreSQL,
    when the transaction does not hold the lock yet, the lock and the take go first as one
    statement (:func:`_lock_and_take_next`): one round trip, where the lock's was one more per
    insert. That statement's snapshot is taken before it waits for the lock, so after a wait it
    may not see the address the previous holder took and committed: its INSERT then clashes and
    skips (no row), and the take is made again, the lock held, by a statement that sees it."""
    if conn.dialect.name == "postgresql" and pool not in _held(session):
        rows = _lock_and_take_next().in_session(session, params)
        if rows:  # a row came out of the join with the lock: it is held
            _held(session).add(pool)
            return int(rows[0][0])
    _lock_pool(session, conn, pool)
    rows = _take_next(conn.dialect.name).in_session(session, params)
    return int(rows[0][0]) if rows else None


def lock_pools(session: Session, pools: list[str]) -> None:
    """Before an instance takes addresses in several pools (NICs in different subnetworks): their
    locks at once, in one order, in one statement, so that two transactions taking addresses in
    the same pools never wait for each other in a cycle (each allocation would otherwise take its
    pool's lock in the NICs' order). Nothing for one pool, whose allocation takes its lock, nor on
    SQLite."""
    if session.get_bind().dialect.name != "postgresql":
        return
    wanted = sorted({p for p in pools if p not in _held(session)})
    if len(wanted) < 2:
        return
    session.execute(_lock_pools(len(wanted)), {f"pool_{i}": pool for i, pool in enumerate(wanted)})
    _held(session).update(wanted)


@functools.cache
def _lock_pools(n: int) -> Select[Any]:
    """The locks of ``n`` pools (parameters ``pool_0`` ...), in the order given."""
    return select(*(_pool_lock(bindparam(f"pool_{i}", type_=String)) for i in range(n)))


def _pool_lock(pool: ColumnElement[str]) -> ColumnElement[Any]:
    """A pool's transaction-scoped advisory lock. Locks of two keys (class, hash) never meet the
    one-key ones; class 1 is IPAM's pools, class 2 the usage counters' projects (core.usage)."""
    return func.pg_advisory_xact_lock(literal_column("1"), func.hashtext(pool))


_HELD = "gstack.ipam.held_pools"


def _held(session: Session) -> set[str]:
    """The pools whose lock this transaction took, a set that lasts as long as the transaction.
    Inside a savepoint nothing counts as held (a new set each time): a savepoint that rolls back
    releases what it took."""
    if session.in_nested_transaction():
        return set()
    tx = session.get_transaction()
    memo: tuple[object, set[str]] | None = session.info.get(_HELD)
    if memo is None or memo[0] is not tx:
        memo = session.info[_HELD] = (tx, set())
    return memo[1]


_USED = select(IpAllocation.address).where(IpAllocation.pool == bindparam("pool"))
_POOL, _OWNER = bindparam("pool", type_=String), bindparam("owner_uid", type_=BigInteger)
_PROJECT = bindparam("project", type_=String)  # whose IN_USE_ADDRESSES the address counts in, if anyone's
_FIRST, _LAST = bindparam("first", type_=BigInteger), bindparam("last", type_=BigInteger)
# The pool's highest address, as a scalar subquery: one step down the index from its top. SQLite
# does not take that shortcut for ``max()`` in a FROM subquery: it walked every address of the pool
# (0.6 ms at 10,000 addresses, growing with the subnetwork: the largest cost that grew per insert).
_HIGHEST = select(IpAllocation.address).where(IpAllocation.pool == _POOL) \
    .order_by(IpAllocation.address.desc()).limit(1).scalar_subquery()
_TOP = select(_HIGHEST.label("hi")).subquery("top")
_COLUMNS = ["pool", "address", "owner_uid", "project"]


@functools.cache
def _take_next(dialect: str) -> Prepared:
    """The address after the highest one of the pool (the first one of an empty pool), unless the
    highest is the range's last; returns the address, or no row (no room at the top, or a clash)."""
    nxt = select(_POOL, func.coalesce(_TOP.c.hi + 1, _FIRST), _OWNER, _PROJECT).where(
        or_(_TOP.c.hi.is_(None), and_(_TOP.c.hi >= _FIRST, _TOP.c.hi < _LAST)))
    return Prepared(insert_skipping_clashes(IpAllocation.__table__, dialect).from_select(_COLUMNS, nxt)
                    .returning(IpAllocation.address))


@functools.cache
def _lock_and_take_next() -> Prepared:
    """PostgreSQL: :func:`_take_next` joined with the pool's lock, which is taken before any row
    goes in (the row to insert comes out of the join); no row if the take found none."""
    lock = select(_pool_lock(_POOL).label("held")).cte("pool_lock")
    nxt = select(_POOL, func.coalesce(_TOP.c.hi + 1, _FIRST), _OWNER, _PROJECT).select_from(lock).join(_TOP, true()).where(
        or_(_TOP.c.hi.is_(None), and_(_TOP.c.hi >= _FIRST, _TOP.c.hi < _LAST)))
    return Prepared(insert_skipping_clashes(IpAllocation.__table__, "postgresql").from_select(_COLUMNS, nxt)
                    .returning(IpAllocation.address))


@functools.cache
def _take(dialect: str) -> ReturningInsert[int]:
    """One given address; no row if it is taken."""
    return insert_skipping_clashes(IpAllocation.__table__, dialect).values(
        pool=_POOL, address=bindparam("address", type_=BigInteger), owner_uid=_OWNER, project=_PROJECT,
    ).returning(IpAllocation.address)


def reserve(session: Session, pool: str, address: str, owner_uid: int, project: str | None = None) -> bool:
    """Take one given address; False if it is taken (also by a concurrent transaction).
    ``project``: as :func:`allocate`'s."""
    conn = flushed_connection(session)
    _lock_pool(session, conn, pool)
    params = {"pool": pool, "address": int(ipaddress.ip_address(address)), "owner_uid": owner_uid, "project": project}
    return conn.execute(_take(conn.dialect.name), params).scalar() is not None


def release(session: Session, pool: str, address: str) -> None:
    """Give back one address of a pool (its owner keeps any others it holds)."""
    session.execute(delete(IpAllocation).where(IpAllocation.pool == pool,
                                               IpAllocation.address == int(ipaddress.ip_address(address))))


def release_owner(session: Session, owner_uid: int) -> None:
    session.execute(delete(IpAllocation).where(IpAllocation.owner_uid == owner_uid))


def mac_for(address: str) -> str:
    """GCE's MAC scheme: 42:01 followed by the four octets of the internal address."""
    octets = ipaddress.ip_address(address).packed
    return "42:01:" + ":".join(f"{b:02x}" for b in octets)
