"""Address allocation on the real databases: upward from the highest address, gaps filled only when
the top is reached, a clear refusal when the range is full, and concurrent transactions
(PostgreSQL) never handed the same address."""

from __future__ import annotations

import threading
import uuid

import pytest

from core import ipam
from core.db import write_session
from core.errors import BadRequest
from tests.helpers.databases import statements_sent

CIDR = "10.9.8.0/29"  # .2 to .5: .0 network, .1 gateway, .6 kept by GCE, .7 broadcast


@pytest.fixture
def pool(database) -> str:
    return f"test-{uuid.uuid4().hex[:8]}"


def allocate(factory, pool: str, owner: int) -> str:
    with write_session(factory) as s:
        return ipam.allocate(s, pool, CIDR, owner)


def test_addresses_go_up_then_fill_gaps_then_refuse(database, pool):
    assert [allocate(database, pool, owner) for owner in (1, 2, 3)] == ["10.9.8.2", "10.9.8.3", "10.9.8.4"]
    with write_session(database) as s:
        ipam.release_owner(s, 2)
    assert allocate(database, pool, 4) == "10.9.8.5"  # the top has room: .3 waits
    assert allocate(database, pool, 5) == "10.9.8.3"  # the top is reached: the gap is filled
    with pytest.raises(BadRequest, match="IP space of .10.9.8.0.29. is exhausted"):
        allocate(database, pool, 6)
    with write_session(database) as s:  # the refusal took nothing
        ipam.release_owner(s, 1)
    assert allocate(database, pool, 7) == "10.9.8.2"


def test_an_allocation_is_one_statement_with_the_pools_lock(database, pool):
    """PostgreSQL: the pool's lock is taken in the statement that takes the address (the lock's
    own round trip is gone); a second address of the pool in the same transaction asks no lock."""
    if database.kw["bind"].dialect.name != "postgresql":
        pytest.skip("SQLite's writers take turns without a lock")
    with write_session(database) as s, statements_sent(database.kw["bind"]) as sent:
        assert ipam.allocate(s, pool, CIDR, 1) == "10.9.8.2"
        assert ipam.allocate(s, pool, CIDR, 2) == "10.9.8.3"
    assert len(sent) == 2 and all(q.startswith("WITH pool_lock AS") == (i == 0) for i, q in enumerate(sent)), sent
    assert "pg_advisory_xact_lock" in sent[0] and "INSERT INTO ip_allocations" in sent[0]


def test_several_pools_are_locked_at_once_in_one_order(database, pool):
    """PostgreSQL: an instance taking addresses in two pools locks both first, sorted, in one
    statement; its allocations then ask no lock."""
    if database.kw["bind"].dialect.name != "postgresql":
        pytest.skip("SQLite's writers take turns without a lock")
    other = pool + "-b"
    with write_session(database) as s, statements_sent(database.kw["bind"]) as sent:
        ipam.lock_pools(s, [other, pool, pool])
        assert ipam.allocate(s, other, CIDR, 1) == "10.9.8.2" and ipam.allocate(s, pool, CIDR, 2) == "10.9.8.2"
        ipam.lock_pools(s, [pool, other])  # held already: nothing
    assert len(sent) == 3 and sent[0].count("hashtext(") == 2, sent
    assert not any("advisory" in q for q in sent[1:]), sent


def test_concurrent_transactions_get_different_addresses(database, pool):
    """The first transaction holds its address uncommitted while the second allocates (on
    PostgreSQL the second waits on the pool's lock in the statement that takes its address, whose
    snapshot predates the first's commit: that take clashes and skips, and the take made again,
    the lock held, finds the next; SQLite's writers take turns)."""
    first_took = threading.Event()
    results: dict[str, str] = {}

    def first() -> None:
        with write_session(database) as s:
            results["first"] = ipam.allocate(s, pool, CIDR, 1)
            first_took.set()
            threading.Event().wait(0.3)  # commit a moment after the second one started

    t = threading.Thread(target=first)
    t.start()
    assert first_took.wait(10)
    with statements_sent(database.kw["bind"]) as sent:
        results["second"] = allocate(database, pool, 2)
    t.join(10)
    assert sorted(results.values()) == ["10.9.8.2", "10.9.8.3"]
    if database.kw["bind"].dialect.name == "postgresql":  # the stale take, then the lock and the take
        assert [q.split()[0] for q in sent if "ip_allocations" in q or "advisory" in q] == ["WITH", "SELECT", "INSERT"]


def test_a_given_address_is_reserved_once(database, pool):
    with write_session(database) as s:
        assert ipam.reserve(s, pool, "10.9.8.4", 1)
        assert not ipam.reserve(s, pool, "10.9.8.4", 2)  # the transaction stays usable after the clash
        assert ipam.allocate(s, pool, CIDR, 3) == "10.9.8.5"
    with write_session(database) as s:
        assert not ipam.reserve(s, pool, "10.9.8.4", 4)
        ipam.release_owner(s, 1)
        assert ipam.reserve(s, pool, "10.9.8.4", 4)
