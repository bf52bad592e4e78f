"""Which queued jobs a worker takes next, fairly: the queries behind :meth:`JobEngine._claim`.

Jobs on one target run in order (CloudStack's per-VM sync queue): a stop waits for the insert
before it, a delete for the stop, so each target offers at most one job at a time. Between
projects the queue is round-robin: a project's n-th unfinished job (counting its running ones) goes
before any project's (n+1)-th, and among projects at the same turn the one a worker process served
longest ago goes first (:func:`fair_order`; ties go to the older job). A burst of a thousand
inserts in one project so delays another project's single job by about one job per project ahead
of it, not by the burst.

On SQLite a claim is one write transaction outside any Session (:func:`core.db.sqlite_write`,
which serialises claims): it reads the candidates and takes them with a lease. On PostgreSQL it
is two statements, each its own transaction (autocommit, :func:`claim_postgres`): the candidates
are read without a lock, and the take locks and re-checks them (``FOR UPDATE SKIP LOCKED`` inside
the UPDATE), so workers of several processes never take the same job or wait for each other's rows.
No BEGIN and no COMMIT: a claim that finds nothing costs one round trip, not three, and one that
finds a job two, not four.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, cast

from sqlalchemy import (
    ARRAY,
    ColumnElement,
    Engine,
    Integer,
    Row,
    String,
    all_,
    any_,
    bindparam,
    exists,
    func,
    literal,
    literal_column,
    select,
    true,
    update,
)
from sqlalchemy.orm import aliased
from sqlalchemy.sql import Select

from core.models import Operation
from core.prepared import Prepared, among

# Spelled as a list (not "!= DONE") so the claim query walks the status index, not every Operation.
UNFINISHED = ("PENDING", "RUNNING")


# The unfinished statuses as SQL constants: every claim statement, and the bounded INSERT of an
# Operation, is a core.prepared.Prepared one, which takes no expanding parameter (an IN list).
UNFINISHED_SQL: tuple[ColumnElement[Any], ...] = tuple(literal_column(f"'{s}'") for s in UNFINISHED)


# A job no worker holds: never leased, or its lease lapsed (or, unclaimed, its not-before time passed).
_LEASE_FREE = (Operation.lease_expiry.is_(None)) | (Operation.lease_expiry < bindparam("now"))
# What a claim writes of each job it takes, and reads back (the constants spelled in the SQL: the
# PostgreSQL take is a Prepared statement, whose parameters are all named ones given at each run).
_LEASE = {"lease_owner": bindparam("owner"), "lease_expiry": bindparam("expiry"),
          "attempts": Operation.attempts + literal_column("1"), "status": literal_column("'RUNNING'"),
          "start_time": func.coalesce(Operation.start_time, bindparam("now"))}
_TAKEN = (Operation.pk, Operation.job, Operation.project, Operation.params, Operation.attempts)


def _not_held(held: str) -> ColumnElement[bool]:
    """Not of the kinds ``held``, given as an array (``"array"``, PostgreSQL's) or as a JSON array
    (``"json"``, SQLite's)."""
    if held == "array":
        return Operation.job != all_(bindparam("held", type_=ARRAY(String)))
    kinds = func.json_each(bindparam("held", type_=String)).table_valued("value")
    return Operation.job.not_in(select(kinds.c.value))


def _claimable(fair: bool, held: str) -> Select[tuple[int, str, str, int]]:
    """Jobs a worker may take now: unfinished, not leased (or their lease lapsed), first on their
    target, and not of the kinds ``held`` (a batch of that kind runs, see
    :attr:`~core.jobs.handlers.JobHandler.coalesce`; spelled as :func:`_not_held`). ``fair``
    orders them round-robin by project (see the module's docstring); unfair, by age only (enough
    to ask whether there is any)."""
    earlier = aliased(Operation)
    query = (
        select(Operation.pk, Operation.job, Operation.project)
        .where(Operation.status.in_(UNFINISHED_SQL), _not_held(held),
               _LEASE_FREE,
               ~exists().where(earlier.target_id == Operation.target_id, earlier.pk < Operation.pk,
                               earlier.status.in_(UNFINISHED_SQL)))
        .limit(bindparam("limit"))
    )
    if not fair:
        return query.add_columns(literal(0).label("turn")).order_by(Operation.pk)
    turns = (select(Operation.pk, func.row_number().over(partition_by=Operation.project, order_by=Operation.pk)
                    .label("turn"))
             .where(Operation.status.in_(UNFINISHED_SQL)).subquery("turns"))
    return (query.add_columns(turns.c.turn).join(turns, turns.c.pk == Operation.pk)
            .order_by(turns.c.turn, Operation.pk))


# A PENDING job nobody holds whose lease lies ahead is deferred (a retry's back-off, a coalesced
# router sync): it becomes claimable then.
_NEXT_DUE = select(func.min(Operation.lease_expiry).label("due")).where(
    Operation.status == literal_column("'PENDING'"), Operation.lease_owner.is_(None),
    Operation.lease_expiry >= bindparam("now"))
# One statement outside a Session (core.prepared.Prepared, whose statements take named parameters only,
# hence the constants spelled in the SQL): run_until_idle's wait for deferred jobs, and a worker's
# when the claim that found nothing could not say (see LOOK and _CANDIDATES).
NEXT_DUE = Prepared(_NEXT_DUE)
NEXT_FIRST_DUE = Prepared(_NEXT_DUE.where(Operation.attempts == literal_column("0")))  # not backing off after a failure

# SQLite's look before a claim, without the write lock (idle workers must not queue behind API
# writes): whether any job is claimable, and when the next deferred one comes due, which is what
# a worker that finds nothing sleeps until. One statement outside a Session: no BEGIN, no
# ROLLBACK, no Session (a worker looks after every job and at every kick). ``held`` is a JSON array.
LOOK = Prepared(select(_claimable(fair=False, held="json").with_only_columns(Operation.pk)
                       .offset(literal_column("0"))  # SQLite spells a LIMIT with an OFFSET: a constant, not a parameter
                       .scalar_subquery().label("found"),
                       _NEXT_DUE.scalar_subquery().label("due")))
# SQLite's claim, after the look found a job: the candidates and the take, two statements of one
# write transaction outside any Session (core.db.sqlite_write); ``held`` and the taken ``pks`` are
# JSON arrays.
CLAIMABLE = Prepared(_claimable(fair=True, held="json").offset(literal_column("0")))  # as LOOK's
TAKE = Prepared(update(Operation).where(among(Operation.pk, "pks")).values(**_LEASE).returning(*_TAKEN))
# PostgreSQL (see the module's docstring): the candidates, read without a lock, with the next
# deferred job's due time (a row with no candidate when there is none: a worker that finds nothing
# sleeps until then without asking again); and the take, which locks those still free (skipping
# any another transaction holds: a worker taking it, or a request joining a pending router sync,
# core.systemvms.sync) and leases them, in one statement. The lease is committed without waiting
# for the disk (see core.db.unflushed_commit): set_config(..., is_local) lasts until the
# statement's own transaction commits.
_FOUND = _claimable(fair=True, held="array").subquery("found")
_DUE = _NEXT_DUE.subquery("due")
_CANDIDATES = Prepared(select(_FOUND.c.pk, _FOUND.c.job, _FOUND.c.project, _FOUND.c.turn, _DUE.c.due)
                       .select_from(_DUE.outerjoin(_FOUND, true())))
_FREE = (select(Operation.pk)
         .where(Operation.pk == any_(bindparam("pks", type_=ARRAY(Integer))), Operation.status.in_(UNFINISHED_SQL),
                _LEASE_FREE)
         .with_for_update(skip_locked=True))
_TAKE_FREE = Prepared(update(Operation).where(Operation.pk.in_(_FREE.scalar_subquery())).values(**_LEASE).returning(
    *_TAKEN, func.set_config(literal_column("'synchronous_commit'"), literal_column("'off'"), literal_column("true"))))


class Rotation:
    """Which project a worker process served last (a claim counter per project), to break ties
    between projects at the same turn in favour of the one served longest ago: without it, a
    project whose jobs end as fast as they are claimed would stay at turn 1 and keep winning on age."""

    LIMIT = 10_000  # projects remembered; past it the memory starts afresh (fairness, not correctness)

    def __init__(self) -> None:
        self._served: dict[str, int] = {}
        self._claims = 0
        self._lock = threading.Lock()

    def fair_order(self, found: Sequence[Candidate | Row[tuple[int, str, str, int]]]) -> list[tuple[int, str]]:
        """The candidates (pk, kind) in the order to take them: by turn, then by when this process
        last served their project, then by age."""
        with self._lock:
            served = dict(self._served)
        ranked = sorted(found, key=lambda r: (r.turn, served.get(r.project, -1), r.pk))
        return [(r.pk, r.job) for r in ranked]

    def served(self, projects: set[str]) -> None:
        with self._lock:
            if len(self._served) > self.LIMIT:
                self._served.clear()
            self._claims += 1
            for project in projects:
                self._served[project] = self._claims


def batch_of(found: list[tuple[int, str]], batches: bool) -> list[int]:
    """The jobs one claim takes from the fair-ordered candidates: the first, and when its kind runs
    in batches every candidate of that kind (each is first on its own target, so they are
    independent of each other)."""
    first = found[0][1]
    if not batches:
        return [found[0][0]]
    return [pk for pk, kind in found if kind == first]


class Candidate(NamedTuple):
    pk: int
    job: str
    project: str
    turn: int


class Taken(NamedTuple):
    pk: int
    job: str
    project: str
    params: str
    attempts: int


TRIES = 3  # candidate reads a PostgreSQL claim makes when others took every job it found first


def due_time(due: object) -> float:
    """A due time read (NULL: no job is deferred) as a time to sleep until."""
    return float("inf") if due is None else float(cast(float, due))


def claim_postgres(bind: Engine, params: dict[str, Any], rotation: Rotation,
                   batches: Callable[[str], bool]) -> tuple[list[Taken], float | None]:
    """A claim on PostgreSQL (see the module's docstring): the jobs taken, in no order, all of one
    kind, and when it took none, when the next deferred job comes due (None: not known, as others
    took what it found). ``batches(kind)``: whether that kind's handler runs batches
    (:func:`batch_of`). When other workers took every job this one found first, it looks again (at
    most ``TRIES`` times), so that the jobs behind those are not left waiting for the next wake-up."""
    for _ in range(TRIES):
        rows = _CANDIDATES.all(bind, params)
        found = rotation.fair_order([Candidate(*r[:4]) for r in rows if r[0] is not None])
        if not found:
            return [], due_time(rows[0][4]) if rows else None
        pks = batch_of(found, batches(found[0][1]))
        taken = [Taken(*r[:5]) for r in _TAKE_FREE.all(bind, {
            "pks": pks, "owner": params["owner"], "expiry": params["expiry"], "now": params["now"]})]
        if taken:
            return taken, None
    return [], None
