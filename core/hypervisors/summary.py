"""A host's domains in a few numbers, so the host monitor's routine round costs O(hosts), not O(VMs).

The monitor compares what a host runs with what the database says. Comparing VM by VM reads every
instance of the cloud each round (~0.9 s of CPU per round at 54,000 instances); a *digest* of a set
of VM uids is three numbers that both sides compute without handing the monitor one row per VM:
the database in SQL (an aggregate over the host's rows) and the driver from its list of domains
(the simulator, whose domains are rows too, in SQL as well). Two sets with equal digests are equal
but for a chance of about 2**-62 with gstack's random 63-bit uids (:func:`core.ids.new_uid`); the
monitor's full round on its slow cadence compares VM by VM anyway.

A digest is ``(count, sum of uid mod P1, sum of uid mod P2)``: plain integer arithmetic that SQLite
and PostgreSQL compute exactly as Python does (uids are positive; each sum stays below 2**53 for
millions of VMs), and that adds up, so SQL can aggregate it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func

P1 = 2_147_483_647  # 2**31 - 1
P2 = 2_147_483_629  # the largest prime below it

Digest = tuple[int, int, int]
EMPTY: Digest = (0, 0, 0)


def digest(uids: Iterable[int]) -> Digest:
    """The digest of a set of uids, as :func:`sql_digest` computes it in SQL."""
    n = s1 = s2 = 0
    for uid in uids:
        n, s1, s2 = n + 1, s1 + uid % P1, s2 + uid % P2
    return n, s1, s2


def sql_digest(uid: Any) -> tuple[Any, Any, Any]:
    """The aggregate columns of the digest of the uids in column ``uid`` (read with :func:`as_digest`)."""
    return func.count(uid), func.sum(uid % P1), func.sum(uid % P2)


def as_digest(n: Any, s1: Any, s2: Any) -> Digest:
    """A digest read from SQL: PostgreSQL's SUM of a bigint is a numeric (a Decimal here), an
    empty SUM is NULL."""
    return int(n or 0), int(s1 or 0), int(s2 or 0)


@dataclass(frozen=True)
class DomainSummary:
    """What a host runs, apart from the domains of ``aside`` uids: the digest of the uids of its
    domains in each state (running | shutoff | paused; a state with none is left out), and the
    state of each domain it has of the ``aside`` uids (the VMs whose state the monitor does not
    predict, e.g. one that is starting, given by the caller: few, so listed one by one)."""

    states: Mapping[str, Digest]
    aside: Mapping[int, str] = field(default_factory=dict)

    @classmethod
    def of(cls, domains: Mapping[int, str], aside: frozenset[int]) -> DomainSummary:
        """The summary of a driver's list of domains (uid -> state)."""
        by_state: dict[str, list[int]] = {}
        for uid, state in domains.items():
            if uid not in aside:
                by_state.setdefault(state, []).append(uid)
        return cls({state: digest(uids) for state, uids in by_state.items()},
                   {uid: domains[uid] for uid in aside if uid in domains})

    def key(self) -> tuple[object, ...]:
        """A value equal for equal summaries (a dict is not hashable)."""
        return tuple(sorted(self.states.items())), tuple(sorted(self.aside.items()))
