"""Workers claim jobs (Operations) from the database, run them, and finish them DONE.

Several processes may share one database: a claim is a single UPDATE (``FOR UPDATE SKIP LOCKED``
on PostgreSQL) that takes a lease. A worker that dies leaves an expired lease, and another worker
resumes the job; handlers are written so that running them again from the start is safe.

What a job's exception does depends on its kind (:mod:`core.jobs.faults`):

- a user's error (:class:`~core.errors.ComputeError`, :class:`~core.errors.OperationFailure`)
  ends the Operation at once with its own code, message and HTTP status;
- a transient fault (the database or the network faltered) is retried with back-off, and given up
  as INTERNAL_ERROR after ``MAX_ATTEMPTS``;
- any other exception is a bug and ends INTERNAL_ERROR at once, its traceback logged. Bugs are not
  retried: a bug fails the same way every time, so retries would only hold the caller's Operation
  (and the jobs queued behind it on its target) through half a minute of back-off and run the
  handler's side effects again before the same answer. A worker that dies is another matter: its
  lease lapses and another worker resumes the job (also at most ``MAX_ATTEMPTS`` times).

Whenever a job ends with an error, its handler's ``on_fail`` first undoes what it made, so
nothing is left half-made or hung.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import traceback
import uuid
from collections.abc import Sequence
from typing import Any

import orjson
from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session, sessionmaker

from core.db import sqlite_write, unflushed_commit, write_session
from core.errors import OperationFailure
from core.jobs import claims, faults
from core.jobs.claims import UNFINISHED
from core.jobs.handlers import (
    BATCH_SIZE,
    DONE_CHANNEL,
    END_ONE,
    HANDLERS,
    LEASE_SECONDS,
    Ending,
    JobContext,
    JobHandler,
    ending,
    job,
)
from core.jobs.watch import CommitWatch
from core.models import Operation
from core.prepared import Prepared, json_ids

__all__ = ["HANDLERS", "UNFINISHED", "JobContext", "JobEngine", "JobHandler", "job",
           "local_owner_id"]

log = logging.getLogger("gstack.jobs")

MAX_ATTEMPTS = 5
NEW_CHANNEL = "gstack_jobs_new"
# SQLite has no NOTIFY: a process looks whether another connection committed (PRAGMA data_version,
# see .watch), to pick up jobs and completions written by other processes; it wakes every waiter for
# those at most this often.
DONE_SWEEP = 0.25
# A worker started beyond the engine's standing ``workers`` (the pool grew under load) retires
# after this long without a job.
SPARE_IDLE_SECONDS = 10.0
# A batch of a coalescing kind during which more jobs of its kind came (a stream: a client's burst
# of inserts) holds its kind when it ends, so that the next batch gathers what the stream brings
# meanwhile instead of one or two jobs: for as long as a job of the kind keeps coming at least
# every QUIET_SECONDS, up to LINGER_SECONDS in all. Each batch has a fixed cost (its claim, its
# transactions, a router sync request) that a stream of small batches pays per job. A lone job, or
# one a client sends after waiting for the last, is claimed at once; a job that came during a batch
# and was followed by no other waits QUIET_SECONDS.
LINGER_SECONDS = 0.15
QUIET_SECONDS = 0.015

# A waiter's re-read and the worker's look for deferred jobs: one statement each, outside a Session.
_STATUS = Prepared(select(Operation.status).where(Operation.pk == bindparam("pk")))


def local_owner_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class JobEngine:
    """Runs jobs in worker threads of this process: ``workers`` always, and more under load, up to
    ``max_workers`` (each job mostly waits on a hypervisor, so a thread per job in flight, not per
    core, keeps the queue short; the spare threads retire when idle)."""

    def __init__(self, factory: sessionmaker[Session], drivers: Any, *, workers: int = 4, poll_interval: float = 1.0,
                 max_workers: int | None = None):
        self.factory = factory
        self.drivers = drivers
        self.workers = workers
        self.max_workers = max(workers, max_workers or workers)
        self.poll_interval = poll_interval
        self.owner = local_owner_id()
        self._wake = threading.Condition()
        self._pending_kicks = 0
        self._waiters: dict[int, set[threading.Event]] = {}  # Operation -> the waits on it in this process
        self._waiters_lock = threading.Lock()
        self._swept = 0.0  # when the SQLite watch last woke every waiter (see _watch_loop)
        self._commits: CommitWatch | None = None
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._spares: list[threading.Thread] = []
        self._running: set[int] = set()
        self._running_lock = threading.Lock()
        self._working = False  # worker threads run here (a listening-only engine kicks nobody)
        self._rotation = claims.Rotation()
        self._batches: dict[str, int] = {}  # coalesced kind -> batches of it running here
        self._arrived: set[str] = set()  # coalesced kinds whose jobs came while a batch of them ran
        self._pool = 0  # worker threads alive
        self._busy = 0  # ... of which running jobs
        bind = factory.kw.get("bind")
        self.postgres = bind is not None and bind.dialect.name == "postgresql"

    # -- lifecycle -------------------------------------------------------------------------

    def listen(self) -> None:
        """Hear of jobs committed and finished by other processes (the API process whose jobs run in
        ``gstack worker`` processes listens only: its ``wait`` must wake when they finish a job)."""
        loop = self._listen_loop if self.postgres else self._watch_loop
        t = threading.Thread(target=loop, name="job-listener", daemon=True)
        t.start()
        self._threads.append(t)

    def start(self) -> None:
        self.reclaim_dead_local_leases()
        self._working = True
        self.listen()
        for _ in range(self.workers):
            self._reserve()
            self._threads.append(self._start_worker(spare=False))
        t = threading.Thread(target=self._heartbeat_loop, name="job-heartbeat", daemon=True)
        t.start()
        self._threads.append(t)

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._commits is not None:
            self._commits.interrupt()
        with self._wake:
            self._wake.notify_all()
        for t in [*self._threads, *self._spares]:
            t.join(timeout)
        self._threads.clear()
        self._spares.clear()

    def alive(self) -> bool:
        """Are this engine's threads (listener; workers and heartbeat when it runs jobs) all running?
        False before it started, after it stopped or once one died: what a readiness probe asks.
        Spare workers come and go and are not counted."""
        return bool(self._threads) and not self._stop.is_set() and all(t.is_alive() for t in self._threads)

    def pool_size(self) -> int:
        """Worker threads alive now (the standing ones and the spares the load called for)."""
        with self._running_lock:
            return self._pool

    def kick(self, kind: str | None = None) -> None:
        """A job (of ``kind``, when the caller knows) was committed: wake a worker now. A job whose
        kind coalesces while a batch of it runs here needs none: that batch's worker takes it as
        soon as the batch ends."""
        if not self._working:
            return
        if kind is not None:
            with self._running_lock:
                if self._batches.get(kind):  # held (see _held)
                    self._arrived.add(kind)  # a stream: the batch lingers when it ends (_run_claimed)
                    return
        with self._wake:
            self._pending_kicks += 1
            self._wake.notify()

    def end_jobs(self, session: Session, stmt: Ending, params: dict[str, Any]) -> None:
        """Run ``stmt``, an UPDATE that ends Operations, in the session's transaction, and wake the
        waiters of every process at commit. On PostgreSQL the wake-up is a NOTIFY in the statement's
        RETURNING (the same round trip; one per transaction, however many rows, as PostgreSQL folds
        equal notifications); on SQLite other processes see the commit in the database's commit
        counter."""
        if self.postgres:
            stmt.notifying.in_session(session, {**params, "owner": self.owner})
        else:
            stmt.plain.in_session(session, params)

    # -- waiting ---------------------------------------------------------------------------

    def wait(self, op_pk: int, timeout: float) -> None:
        """Block until the operation is DONE or ``timeout`` passes.

        Jobs finished in this process notify at once, and jobs finished by another process sharing
        the database as soon as this one hears of it (:meth:`listen`); the periodic re-read is the
        fallback while the listener reconnects. A job finished here wakes only its own waiters (under
        load, waking every waiter at every job's end made each of them re-read the database dozens
        of times a second). A job that ends between the read and the sleep is not missed: the
        waiter's event is cleared before it reads.
        """
        deadline = time.monotonic() + timeout
        event = threading.Event()
        with self._waiters_lock:
            self._waiters.setdefault(op_pk, set()).add(event)
        try:
            while True:
                event.clear()
                status = _STATUS.scalar(self.factory.kw["bind"], {"pk": op_pk})
                if status in (None, "DONE"):
                    return
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                event.wait(min(remaining, self.poll_interval))
        finally:
            with self._waiters_lock:
                waits = self._waiters.get(op_pk, set())
                waits.discard(event)
                if not waits:
                    self._waiters.pop(op_pk, None)

    def _wake_waiters(self, pk: int | None = None) -> None:
        """Wake the waits on Operation ``pk`` (every wait when None: a job ended elsewhere, which one unknown)."""
        with self._waiters_lock:
            events = [e for pks in ([self._waiters.get(pk, set())] if pk is not None else self._waiters.values())
                      for e in pks]
        for event in events:
            event.set()

    # -- recovery --------------------------------------------------------------------------

    def reclaim_dead_local_leases(self) -> int:
        """Release leases held by processes of this host that no longer exist (a crash)."""
        host = socket.gethostname()
        released = 0
        with write_session(self.factory) as session:
            rows = session.execute(
                select(Operation.pk, Operation.lease_owner).where(
                    Operation.status.in_(UNFINISHED), Operation.lease_owner.is_not(None))
            ).all()
            for pk, owner in rows:
                parts = (owner or "").split(":")
                if len(parts) == 3 and parts[0] == host and parts[1].isdigit() and not _pid_alive(int(parts[1])):
                    session.execute(update(Operation).where(Operation.pk == pk)
                                    .values(lease_owner=None, lease_expiry=None))
                    released += 1
        if released:
            log.info("released %d job lease(s) of crashed processes", released)
        return released

    # -- the worker pool -------------------------------------------------------------------

    def _held(self) -> list[str]:
        """Kinds whose jobs gather behind a batch of theirs running here (:attr:`JobHandler.coalesce`)."""
        with self._running_lock:
            return [kind for kind, count in self._batches.items() if count]

    def _start_worker(self, spare: bool) -> threading.Thread:
        """A worker thread, its place in the pool reserved beforehand (:meth:`_reserve`)."""
        t = threading.Thread(target=self._worker_loop, args=(spare,), name="job-worker" + ("-spare" if spare else ""),
                             daemon=True)
        t.start()
        return t

    def _reserve(self) -> None:
        with self._running_lock:
            self._pool += 1

    def _grow(self) -> None:
        """Every worker is busy and there was work: start a spare, within ``max_workers``, to look
        for more. The place is reserved under the lock, so busy workers racing here never overshoot."""
        with self._running_lock:
            if self._busy < self._pool or self._pool >= self.max_workers or self._stop.is_set():
                return
            self._pool += 1
            self._spares = [t for t in self._spares if t.is_alive()]
        spare = self._start_worker(spare=True)
        with self._running_lock:
            self._spares.append(spare)

    def _worker_loop(self, spare: bool = False) -> None:
        idle_since = time.monotonic()
        try:
            while not self._stop.is_set():
                try:
                    claimed, due = self._claim(self._held())
                except Exception:  # database briefly unavailable: back off, never die
                    log.exception("claiming a job failed")
                    claimed, due = [], None
                    time.sleep(0.5)
                if claimed:
                    with self._running_lock:
                        self._busy += 1
                    self._grow()
                    try:
                        self._run_claimed(claimed)
                    finally:
                        with self._running_lock:
                            self._busy -= 1
                    idle_since = time.monotonic()
                    continue
                if spare and time.monotonic() - idle_since > SPARE_IDLE_SECONDS:
                    return
                self._sleep(due)
        finally:
            with self._running_lock:
                self._pool -= 1

    def _sleep(self, due: float | None) -> None:
        """Until a kick, the next deferred job (``due``, as the claim that found nothing read it;
        None: read now), or the poll interval."""
        wait = self.poll_interval
        try:
            wait = min(wait, max(0.0, (self.next_due() if due is None else due) - time.time()))
        except Exception:
            log.exception("reading the next deferred job failed")
        with self._wake:
            if self._pending_kicks == 0 and not self._stop.is_set():
                self._wake.wait(wait)
            self._pending_kicks = max(0, self._pending_kicks - 1)

    def next_due(self, first_attempts_only: bool = False) -> float:
        """When the earliest deferred job becomes claimable (infinity if none is deferred)."""
        query = claims.NEXT_FIRST_DUE if first_attempts_only else claims.NEXT_DUE
        return claims.due_time(query.scalar(self.factory.kw["bind"], {"now": time.time()}))

    def run_until_idle(self, timeout: float = 30.0) -> None:
        """Run jobs in the calling thread until none is left (tests, benchmarks, CLI).

        Deferred jobs (a coalesced router sync) are waited for; a failed job's retry is left to the
        workers.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            claimed, _ = self._claim()
            if not claimed:
                delay = self.next_due(first_attempts_only=True) - time.time()
                if delay == float("inf"):
                    return
                time.sleep(max(0.0, min(delay, deadline - time.monotonic())) + 0.001)
                continue
            self._run_claimed(claimed)

    def _claim(self, held: list[str] | None = None) -> tuple[list[JobContext], float | None]:
        """Claim the next job in fair order (:mod:`core.jobs.claims`), and with it the other queued
        jobs of its kind when its handler runs batches. Jobs of the ``held`` kinds are left for
        later. A claimed batch of a coalescing kind holds that kind until :meth:`_run_claimed`
        ends it. With the jobs: when it claimed none, when the next deferred job comes due, if the
        claim's reads said (None otherwise), so that a worker going to sleep need not ask again."""
        now = time.time()
        params: dict[str, Any] = {"now": now, "limit": BATCH_SIZE, "held": list(held or ())}
        rows: Sequence[claims.Taken]
        due: float | None
        if self.postgres:  # two autocommit statements, see core.jobs.claims
            rows, due = claims.claim_postgres(
                self.factory.kw["bind"], {**params, "owner": self.owner, "expiry": now + LEASE_SECONDS},
                self._rotation, self._batches_kind)
        else:
            rows, due = self._claim_sqlite(params)
        if not rows:
            return [], due
        kind = rows[0].job
        handler = HANDLERS.get(kind)
        self._rotation.served({r.project for r in rows})
        with self._running_lock:
            self._running.update(r.pk for r in rows)
            if handler is not None and handler.coalesce:
                self._batches[kind] = self._batches.get(kind, 0) + 1
        ctxs = [self._context(r.pk, r.project, orjson.loads(r.params), r.attempts, r.job)
                for r in sorted(rows, key=lambda r: r.pk)]
        return ctxs, None

    @staticmethod
    def _batches_kind(kind: str) -> bool:
        handler = HANDLERS.get(kind)
        return handler is not None and handler.batch is not None

    def _claim_sqlite(self, params: dict[str, Any]) -> tuple[list[claims.Taken], float | None]:
        """SQLite's claim: look first without the write lock (:data:`claims.LOOK`, which reads the
        next due time too), so that idle workers do not queue behind API writes; then read and take
        the candidates in one write transaction."""
        bind = self.factory.kw["bind"]
        params = {**params, "held": orjson.dumps(params["held"]).decode()}
        found_any, due = claims.LOOK.all(bind, {**params, "limit": 1})[0]
        if found_any is None:
            return [], claims.due_time(due)
        with sqlite_write(bind) as cursor:
            found = self._rotation.fair_order([claims.Candidate(*r) for r in claims.CLAIMABLE.on(cursor, bind, params)])
            if not found:
                return [], None
            pks = claims.batch_of(found, self._batches_kind(found[0][1]))
            now = params["now"]
            taken = claims.TAKE.on(cursor, bind, {"pks": json_ids(pks), "owner": self.owner,
                                                  "expiry": now + LEASE_SECONDS, "now": now})
        return [claims.Taken(*r) for r in taken], None

    def _context(self, pk: int, project: str, params: dict[str, Any], attempts: int, job_name: str) -> JobContext:
        """A job's context. Warnings decided when the request was taken (``params["warnings"]``) are
        the Operation's from the start."""
        return JobContext(self, pk, project, params, attempts, job_name=job_name,
                          warnings=list(params.get("warnings", [])))

    def _run_claimed(self, ctxs: list[JobContext]) -> None:
        """Run claimed jobs (:meth:`_run_jobs`), then release their kind's hold (after
        :meth:`_linger` when jobs of that kind came meanwhile): the jobs of that kind queued by
        then are the next batch, which this worker claims at once."""
        try:
            self._run_jobs(ctxs)
        finally:
            kind = ctxs[0].job_name
            handler = HANDLERS.get(kind)
            if handler is not None and handler.coalesce:
                self._linger(kind)
                with self._running_lock:
                    self._batches[kind] -= 1

    def _linger(self, kind: str) -> None:
        """Hold ``kind`` (its batch ended) while its stream goes on: as long as a job of it came in
        the last :data:`QUIET_SECONDS`, up to :data:`LINGER_SECONDS` in all; not at all when none
        came during the batch. A fixed hold was either too short for a stream (1,000 inserts on
        PostgreSQL ran in batches of two or three at 20 ms, their jobs' statements and CPU taking
        the requests' core) or too long for a job followed by no other."""
        deadline = time.monotonic() + LINGER_SECONDS
        while True:
            with self._running_lock:
                came = kind in self._arrived
                self._arrived.discard(kind)
            left = deadline - time.monotonic()
            if not came or left <= 0 or self._stop.wait(min(QUIET_SECONDS, left)):
                return

    def _run_jobs(self, ctxs: list[JobContext]) -> None:
        """Run claimed jobs: first attempts together through their handler's ``batch`` (even one:
        the batch path is the cheaper one), and one by one for whatever the batch leaves (or when
        it breaks)."""
        handler = HANDLERS.get(ctxs[0].job_name)
        if handler is not None and handler.batch is not None and all(c.attempt == 1 for c in ctxs):
            try:
                handler.batch(ctxs)
            except Exception:  # every job stays resumable: each runs again on its own below
                log.exception("batch of %d %s jobs failed; running them one by one", len(ctxs), ctxs[0].job_name)
                for ctx in ctxs:  # a completion whose commit failed did not happen
                    ctx.completed = False
            for ctx in ctxs:
                if ctx.completed:
                    self._finish(ctx, None)
                else:
                    ctx.warnings = list(ctx.params.get("warnings", []))
        for ctx in ctxs:
            if not ctx.completed:
                self._run(ctx)

    def _run(self, ctx: JobContext) -> None:
        pk, job_name, attempts = ctx.op_pk, ctx.job_name, ctx.attempt
        handler = HANDLERS.get(job_name)
        failure: OperationFailure | None = None
        try:
            if handler is None:
                raise OperationFailure("INTERNAL_ERROR", f"No handler for job '{job_name}'.", 500)
            if attempts > MAX_ATTEMPTS:
                raise OperationFailure("INTERNAL_ERROR",
                                       f"The operation was abandoned after {MAX_ATTEMPTS} attempts.", 500)
            handler.run(ctx)
        except Exception as exc:  # see the module's docstring: the user's error, a passing fault or a bug
            failure = faults.verdict(exc)
            if failure is None or failure.code == "INTERNAL_ERROR":
                log.error("job %s (%s) attempt %d failed: %s", pk, job_name, attempts, traceback.format_exc())
            if failure is None:
                if attempts < MAX_ATTEMPTS:
                    self._release(pk, delay=min(2.0 ** attempts, 30.0))
                    return
                failure = faults.internal_error(exc)
        if failure is not None and handler is not None and handler.on_fail is not None:
            try:
                handler.on_fail(ctx, failure)
            except Exception:
                log.exception("cleanup of failed job %s (%s) failed; it will be retried", pk, job_name)
                self._release(pk, delay=2.0)
                return
        self._finish(ctx, failure)

    def _release(self, pk: int, delay: float) -> None:
        with write_session(self.factory) as session:
            unflushed_commit(session)  # lost in a crash, the lease lapses later: the retry comes later
            session.execute(update(Operation).where(Operation.pk == pk)
                            .values(lease_owner=None, lease_expiry=time.time() + delay))
        with self._running_lock:
            self._running.discard(pk)

    def _finish(self, ctx: JobContext, failure: OperationFailure | None) -> None:
        """End the Operation DONE (with ``failure`` as its error), unless its handler's last
        transaction did already (:meth:`JobContext.complete`)."""
        if ctx.completed and failure is None:
            self._finished(ctx.op_pk)
            return
        with write_session(self.factory) as session:
            self.end_jobs(session, END_ONE, ending(ctx.op_pk, ctx.warnings, failure=failure))
        self._finished(ctx.op_pk)

    def _finished(self, pk: int) -> None:
        with self._running_lock:
            self._running.discard(pk)
        self._wake_waiters(pk)

    def _heard(self, *, new: bool, done: bool, kind: str | None = None) -> None:
        """Another process committed a job (``new``, of ``kind`` when known) or finished one (``done``)."""
        if new:
            self.kick(kind)
        if done:
            self._wake_waiters()

    def _listen_loop(self) -> None:
        """PostgreSQL: LISTEN for jobs committed and finished by any process (API or worker)."""
        import psycopg

        url = self.factory.kw["bind"].url.set(drivername="postgresql").render_as_string(hide_password=False)
        while not self._stop.is_set():
            try:
                with psycopg.connect(url, autocommit=True) as conn:
                    conn.execute(f"LISTEN {NEW_CHANNEL}")
                    conn.execute(f"LISTEN {DONE_CHANNEL}")
                    self._heard(new=True, done=True)  # what was sent before this LISTEN went unheard
                    while not self._stop.is_set():
                        for note in conn.notifies(timeout=1.0):
                            # this process's own ends woke their waiters already (_finished)
                            done = note.channel == DONE_CHANNEL and note.payload != self.owner
                            self._heard(new=note.channel == NEW_CHANNEL, done=done,
                                        kind=note.payload if note.channel == NEW_CHANNEL and note.payload else None)
            except Exception:
                log.exception("job listener lost its connection; reconnecting")
                self._stop.wait(1.0)

    def _watch_loop(self) -> None:
        """SQLite: at each look of the commit watch (:mod:`.watch`: every 50 ms while the database
        is busy), whether any other connection (of this process or another) committed; if so, wake a
        worker and the waiters. In one process the kicks are redundant but bounded: at most one per
        look, however many commits it saw. A process that runs jobs wakes its own waiters as its jobs
        end, and every waiter (for jobs a ``gstack worker`` ended) at most every ``DONE_SWEEP``
        seconds, so that waiters do not all re-read at every commit."""
        self._commits = CommitWatch(self.factory.kw["bind"], self._stop)
        seen = None
        unswept = False  # commits seen whose waiters were not woken yet
        for version in self._commits.looks():
            unswept = unswept or version != seen  # the first look, too: what was committed before it went unseen
            now = time.monotonic()
            sweep = unswept and (not self._working or now - self._swept >= DONE_SWEEP)
            if version != seen or sweep:
                self._heard(new=version != seen, done=sweep)
            if sweep:
                self._swept, unswept = now, False
            seen = version

    def _heartbeat_loop(self) -> None:
        """Extend the leases of running jobs: a lease that lapses lets another worker take the job over."""
        while not self._stop.wait(LEASE_SECONDS / 3):
            with self._running_lock:
                running = list(self._running)
            if running:
                try:
                    with write_session(self.factory) as session:
                        unflushed_commit(session)  # the next beat, or a crash, makes it moot
                        session.execute(update(Operation).where(Operation.pk.in_(running),
                                                                Operation.lease_owner == self.owner)
                                        .values(lease_expiry=time.time() + LEASE_SECONDS))
                except Exception:
                    log.exception("lease heartbeat failed")
