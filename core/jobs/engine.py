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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import bindparam, exists, func, select, text, update
from sqlalchemy.orm import Session, aliased, sessionmaker
from sqlalchemy.sql import Select
from sqlalchemy.sql.elements import BindParameter

from core.db import write_session
from core.errors import OperationFailure
from core.jobs import faults
from core.models import Operation

log = logging.getLogger("gstack.jobs")

MAX_ATTEMPTS = 5
NEW_CHANNEL = "gstack_jobs_new"
# Spelled as a list (not "!= DONE") so the claim query walks the status index, not every Operation.
UNFINISHED = ("PENDING", "RUNNING")
DONE_CHANNEL = "gstack_jobs_done"
LEASE_SECONDS = 30.0
# SQLite has no NOTIFY: a process looks this often whether another connection committed (PRAGMA
# data_version), to pick up jobs and completions written by other processes.
WATCH_INTERVAL = 0.05

_HTTP_MESSAGES = {400: "BAD REQUEST", 401: "UNAUTHORIZED", 403: "FORBIDDEN", 404: "NOT FOUND", 409: "CONFLICT",
                  412: "PRECONDITION FAILED", 429: "TOO MANY REQUESTS", 500: "INTERNAL SERVER ERROR",
                  501: "NOT IMPLEMENTED", 503: "SERVICE UNAVAILABLE"}


@dataclass
class JobHandler:
    run: Callable[[JobContext], None]
    on_fail: Callable[[JobContext, OperationFailure], None] | None = None
    # Runs several claimed jobs of this kind together (one transaction per step instead of one per
    # job and step); the jobs it does not complete run through :attr:`run`, one by one. Optional:
    # an optimisation for bursts, never a different outcome.
    batch: Callable[[list[JobContext]], None] | None = None
    # A worker process starts a batch of this kind at most this often (seconds): during a burst
    # the jobs queue up behind the batch that runs, and the next batch takes them together. The
    # first job after a quiet spell runs at once.
    spacing: float = 0.0


HANDLERS: dict[str, JobHandler] = {}
BATCH_SIZE = 100  # most jobs of one kind a worker claims at once (instances.run: a batch per 0.2 s keeps up with ~300 inserts/s)


def job(name: str, on_fail: Callable[[JobContext, OperationFailure], None] | None = None,
        batch: Callable[[list[JobContext]], None] | None = None,
        spacing: float = 0.0) -> Callable[[Callable[[JobContext], None]], Callable[[JobContext], None]]:
    """Register a job handler under ``name`` (the Operation's ``job`` column)."""

    def register(fn: Callable[[JobContext], None]) -> Callable[[JobContext], None]:
        HANDLERS[name] = JobHandler(fn, on_fail, batch, spacing)
        return fn

    return register


@dataclass
class JobContext:
    engine: JobEngine
    op_pk: int
    project: str
    params: dict[str, Any]
    attempt: int
    job_name: str = ""
    warnings: list[dict[str, Any]] = field(default_factory=list)
    completed: bool = False
    # What a batch run learnt that the single run it hands a job to must know (hosts that failed).
    scratch: dict[str, Any] = field(default_factory=dict)

    @property
    def drivers(self) -> Any:
        return self.engine.drivers

    @contextmanager
    def write(self) -> Iterator[Session]:
        with write_session(self.engine.factory) as session:
            yield session

    def progress(self, percent: int, message: str | None = None, session: Session | None = None) -> None:
        """Record progress (monotonic) and extend the lease: the job is alive.

        Given a session, the update joins that transaction instead of making its own.
        """
        stmt = (update(Operation).where(Operation.pk == self.op_pk, Operation.progress < percent)
                .values(progress=percent, status_message=message, lease_expiry=time.time() + LEASE_SECONDS))
        if session is not None:
            session.execute(stmt)
            return
        with self.write() as own:
            own.execute(stmt)

    @staticmethod
    def progress_all(session: Session, ctxs: list[JobContext], percent: int) -> None:
        """:meth:`progress` for a batch, in one UPDATE inside the batch's transaction."""
        if ctxs:
            session.execute(_PROGRESS_ALL, {"pks": [c.op_pk for c in ctxs], "percent": percent,
                                            "expiry": time.time() + LEASE_SECONDS})

    def complete(self, session: Session) -> None:
        """Mark the Operation DONE inside the handler's last transaction, so the resource's final
        state and the end of its Operation commit together (and one commit is saved)."""
        session.execute(update(Operation).where(Operation.pk == self.op_pk).values(**self.engine.done_values(self.warnings)))
        self.engine.announce_done(session)
        self.completed = True

    @staticmethod
    def complete_all(session: Session, ctxs: list[JobContext]) -> None:
        """:meth:`complete` for a batch: one UPDATE for the Operations that carry no warning."""
        plain = [c for c in ctxs if not c.warnings]
        for ctx in ctxs:
            if ctx.warnings:
                ctx.complete(session)
        if not plain:
            return
        engine = plain[0].engine
        session.execute(_DONE_ALL, {"pks": [c.op_pk for c in plain], "now": time.time()})
        engine.announce_done(session)
        for ctx in plain:
            ctx.completed = True

    def warn(self, code: str, message: str, data: list[dict[str, Any]] | None = None) -> None:
        w: dict[str, Any] = {"code": code, "message": message}
        if data:
            w["data"] = data
        self.warnings.append(w)


def _claimable() -> Select[int, str]:
    """The next job a worker may take. Jobs on one target run in order (CloudStack's per-VM sync
    queue): a stop waits for the insert before it, a delete for the stop. Jobs of the kinds
    ``held`` (their batches are spaced, see :attr:`JobHandler.spacing`) wait."""
    earlier = aliased(Operation)
    now: BindParameter[float] = bindparam("now")
    return (
        select(Operation.pk, Operation.job)
        .where(Operation.status.in_(UNFINISHED), Operation.job.not_in(bindparam("held", expanding=True)),
               (Operation.lease_expiry.is_(None)) | (Operation.lease_expiry < now),
               ~exists().where(earlier.target_id == Operation.target_id, earlier.pk < Operation.pk,
                               earlier.status.in_(UNFINISHED)))
        .order_by(Operation.pk)
        .limit(bindparam("limit"))
    )


_CLAIMABLE = _claimable()
_CLAIMABLE_LOCKED = _claimable().with_for_update(skip_locked=True)
_TAKE = update(Operation).where(Operation.pk.in_(bindparam("pks", expanding=True))).values(
    lease_owner=bindparam("owner"), lease_expiry=bindparam("expiry"), attempts=Operation.attempts + 1,
    status="RUNNING", start_time=func.coalesce(Operation.start_time, bindparam("now")),
).returning(Operation.pk, Operation.job, Operation.project, Operation.params, Operation.attempts)
_PROGRESS_ALL = update(Operation).where(Operation.pk.in_(bindparam("pks", expanding=True)),
                                        Operation.progress < bindparam("percent")) \
    .values(progress=bindparam("percent"), lease_expiry=bindparam("expiry"))
# What an Operation that ended holds, besides its end time (and its error or warnings).
_DONE = {"status": "DONE", "progress": 100, "lease_owner": None, "lease_expiry": None}
_DONE_ALL = update(Operation).where(Operation.pk.in_(bindparam("pks", expanding=True))).values(
    **_DONE, end_time=bindparam("now"))
# A PENDING job nobody holds whose lease lies ahead is deferred (a retry's back-off, a coalesced
# router sync): it becomes claimable then.
_NEXT_DUE = select(func.min(Operation.lease_expiry)).where(
    Operation.status == "PENDING", Operation.lease_owner.is_(None), Operation.lease_expiry >= bindparam("now"))
_NEXT_FIRST_DUE = _NEXT_DUE.where(Operation.attempts == 0)  # deferred, not backing off after a failure


_NOTIFY_NEW = text("SELECT pg_notify(:channel, :kind)")
_NOTIFY_DONE = text(f"NOTIFY {DONE_CHANNEL}")


def announce(session: Session, kind: str) -> None:
    """Tell workers of every process that a job of ``kind`` was committed (PostgreSQL NOTIFY, sent at
    commit; one per kind and transaction). The kind lets a worker holding back that kind's next
    batch sleep on (see :meth:`JobEngine.kick`).

    In-process workers are woken by :meth:`JobEngine.kick`; SQLite has no NOTIFY: other processes
    see the commit in the database's commit counter (:meth:`JobEngine._watch_loop`).
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(_NOTIFY_NEW, {"channel": NEW_CHANNEL, "kind": kind})


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
    def __init__(self, factory: sessionmaker[Session], drivers: Any, *, workers: int = 4, poll_interval: float = 1.0):
        self.factory = factory
        self.drivers = drivers
        self.workers = workers
        self.poll_interval = poll_interval
        self.owner = local_owner_id()
        self._wake = threading.Condition()
        self._pending_kicks = 0
        self._done = threading.Condition()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._running: set[int] = set()
        self._running_lock = threading.Lock()
        self._working = False  # worker threads run here (a listening-only engine kicks nobody)
        self._batch_started: dict[str, float] = {}  # kind of spaced job -> when its last batch began
        self._timekeeper: dict[str, int] = {}  # ... and the thread that wakes for its next one
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
        for i in range(self.workers):
            t = threading.Thread(target=self._worker_loop, name=f"job-worker-{i}", daemon=True)
            t.start()
            self._threads.append(t)
        t = threading.Thread(target=self._heartbeat_loop, name="job-heartbeat", daemon=True)
        t.start()
        self._threads.append(t)

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        with self._wake:
            self._wake.notify_all()
        for t in self._threads:
            t.join(timeout)
        self._threads.clear()

    def alive(self) -> bool:
        """Are this engine's threads (listener; workers and heartbeat when it runs jobs) all running?
        False before it started, after it stopped or once one died: what a readiness probe asks."""
        return bool(self._threads) and not self._stop.is_set() and all(t.is_alive() for t in self._threads)

    def kick(self, kind: str | None = None) -> None:
        """A job (of ``kind``, when the caller knows) was committed: wake a worker. A job whose kind
        is held (spaced batches) needs none: the worker wakes when the hold ends."""
        if not self._working or (kind is not None and kind in self._held(time.time())):
            return
        with self._wake:
            self._pending_kicks += 1
            self._wake.notify()

    def announce_done(self, session: Session) -> None:
        """Wake the waiters of every process at commit: a job ended in ``session`` (PostgreSQL
        NOTIFY; on SQLite other processes see the commit in the database's commit counter)."""
        if self.postgres:
            session.execute(_NOTIFY_DONE)

    # -- waiting ---------------------------------------------------------------------------

    def wait(self, op_pk: int, timeout: float) -> None:
        """Block until the operation is DONE or ``timeout`` passes.

        Jobs finished in this process notify at once, and jobs finished by another process sharing
        the database as soon as this one hears of it (:meth:`listen`); the periodic re-read is the
        fallback while the listener reconnects.
        """
        deadline = time.monotonic() + timeout
        while True:
            with self.factory() as session:
                status = session.scalar(select(Operation.status).where(Operation.pk == op_pk))
            if status in (None, "DONE"):
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            with self._done:
                self._done.wait(min(remaining, self.poll_interval))

    # -- recovery --------------------------------------------------------------------------

    def reclaim_dead_local_leases(self) -> int:
        """Release leases held by processes of this host that no longer exist (a crash)."""
        host = socket.gethostname()
        released = 0
        with write_session(self.factory) as session:
            rows = session.execute(
                select(Operation.pk, Operation.lease_owner).where(
                    Operation.status != "DONE", Operation.lease_owner.is_not(None))
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

    # -- the worker ------------------------------------------------------------------------

    def _held(self, now: float) -> dict[str, float]:
        """Kinds of spaced jobs whose next batch may not start yet, and when it may."""
        with self._running_lock:
            return {kind: started + HANDLERS[kind].spacing for kind, started in self._batch_started.items()
                    if started + HANDLERS[kind].spacing > now}

    def _worker_loop(self) -> None:
        while not self._stop.is_set():
            held = self._held(time.time())
            try:
                claimed = self._claim(held)
            except Exception:  # database briefly unavailable: back off, never die
                log.exception("claiming a job failed")
                claimed = []
                time.sleep(0.5)
            if not claimed:
                wait = self.poll_interval
                try:
                    mine = [until for kind, until in held.items() if self._timekeeper.get(kind) == threading.get_ident()]
                    wait = min(wait, max(0.0, min([self.next_due(), *mine]) - time.time()))
                except Exception:
                    log.exception("reading the next deferred job failed")
                with self._wake:
                    if self._pending_kicks == 0 and not self._stop.is_set():
                        self._wake.wait(wait)
                    self._pending_kicks = max(0, self._pending_kicks - 1)
                continue
            self._run_claimed(claimed)

    def next_due(self, first_attempts_only: bool = False) -> float:
        """When the earliest deferred job becomes claimable (infinity if none is deferred)."""
        with self.factory() as session:
            due = session.scalar(_NEXT_FIRST_DUE if first_attempts_only else _NEXT_DUE, {"now": time.time()})
        return float("inf") if due is None else due

    def run_until_idle(self, timeout: float = 30.0) -> None:
        """Run jobs in the calling thread until none is left (tests, benchmarks, CLI).

        Deferred jobs (a coalesced router sync) are waited for; a failed job's retry is left to the
        workers.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            claimed = self._claim()
            if not claimed:
                delay = self.next_due(first_attempts_only=True) - time.time()
                if delay == float("inf"):
                    return
                time.sleep(max(0.0, min(delay, deadline - time.monotonic())) + 0.001)
                continue
            self._run_claimed(claimed)

    def _claim(self, held: dict[str, float] | None = None) -> list[JobContext]:
        """Claim the next job, and the jobs of the same kind queued right behind it when its
        handler runs batches. Jobs of the ``held`` kinds are left for later."""
        now = time.time()
        params = {"now": now, "limit": BATCH_SIZE, "held": list(held or ())}
        # Look first without the write lock: idle workers must not queue behind API writes.
        with self.factory() as session:
            if session.execute(_CLAIMABLE, {**params, "limit": 1}).first() is None:
                return []
        with write_session(self.factory) as session:
            found = session.execute(_CLAIMABLE_LOCKED if self.postgres else _CLAIMABLE, params).all()
            if not found:
                return []
            first = found[0].job
            handler = HANDLERS.get(first)
            pks = [found[0].pk]
            if handler is not None and handler.batch is not None:
                for row in found[1:]:
                    if row.job != first:
                        break
                    pks.append(row.pk)
                if handler.spacing:
                    with self._running_lock:
                        self._batch_started[first] = now
                        self._timekeeper[first] = threading.get_ident()
            rows = session.execute(_TAKE, {"pks": pks, "owner": self.owner, "expiry": now + LEASE_SECONDS,
                                           "now": now}).all()
        with self._running_lock:
            self._running.update(pks)
        return [self._context(r.pk, r.project, orjson.loads(r.params), r.attempts, r.job)
                for r in sorted(rows, key=lambda r: r.pk)]

    def _context(self, pk: int, project: str, params: dict[str, Any], attempts: int, job_name: str) -> JobContext:
        """A job's context. Warnings decided when the request was taken (``params["warnings"]``) are
        the Operation's from the start."""
        return JobContext(self, pk, project, params, attempts, job_name=job_name,
                          warnings=list(params.get("warnings", [])))

    def _run_claimed(self, ctxs: list[JobContext]) -> None:
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
            session.execute(update(Operation).where(Operation.pk == pk)
                            .values(lease_owner=None, lease_expiry=time.time() + delay))
        with self._running_lock:
            self._running.discard(pk)

    @staticmethod
    def done_values(warnings: list[dict[str, Any]]) -> dict[str, Any]:
        values: dict[str, Any] = {**_DONE, "end_time": time.time()}
        if warnings:
            values["warnings"] = orjson.dumps(warnings).decode()
        return values

    def _finish(self, ctx: JobContext, failure: OperationFailure | None) -> None:
        """End the Operation DONE (with ``failure`` as its error), unless its handler's last
        transaction did already (:meth:`JobContext.complete`)."""
        if ctx.completed and failure is None:
            self._finished(ctx.op_pk)
            return
        values = self.done_values(ctx.warnings)
        if failure is not None:
            values["error"] = orjson.dumps({"errors": [{"code": failure.code, "message": failure.message}]}).decode()
            values["http_error_status"] = failure.http_status
            values["http_error_message"] = _HTTP_MESSAGES.get(failure.http_status, "BAD REQUEST")
        with write_session(self.factory) as session:
            session.execute(update(Operation).where(Operation.pk == ctx.op_pk).values(**values))
            self.announce_done(session)
        self._finished(ctx.op_pk)

    def _finished(self, pk: int) -> None:
        with self._running_lock:
            self._running.discard(pk)
        with self._done:
            self._done.notify_all()

    def _heard(self, *, new: bool, done: bool, kind: str | None = None) -> None:
        """Another process committed a job (``new``, of ``kind`` when known) or finished one (``done``)."""
        if new:
            self.kick(kind)
        if done:
            with self._done:
                self._done.notify_all()

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
                            self._heard(new=note.channel == NEW_CHANNEL, done=note.channel == DONE_CHANNEL,
                                        kind=note.payload or None)
            except Exception:
                log.exception("job listener lost its connection; reconnecting")
                self._stop.wait(1.0)

    def _watch_loop(self) -> None:
        """SQLite: every ``WATCH_INTERVAL``, whether any other connection (of this process or another)
        committed; if so, wake a worker and the waiters. In one process the kicks are redundant but
        bounded: at most one per interval, however many commits it saw."""
        conn = None
        seen = None
        while not self._stop.wait(WATCH_INTERVAL):
            try:
                if conn is None:
                    conn = self.factory.kw["bind"].raw_connection()
                cursor = conn.cursor()
                cursor.execute("PRAGMA data_version")
                version = cursor.fetchone()[0]
                cursor.close()
            except Exception:
                log.exception("watching the database for commits failed; retrying")
                if conn is not None:
                    conn.invalidate()
                conn = None
                self._stop.wait(1.0)
                continue
            if version != seen:  # the first look, too: what was committed before it went unseen
                self._heard(new=True, done=True)
            seen = version
        if conn is not None:
            conn.close()

    def _heartbeat_loop(self) -> None:
        """Extend the leases of running jobs: a lease that lapses lets another worker take the job over."""
        while not self._stop.wait(LEASE_SECONDS / 3):
            with self._running_lock:
                running = list(self._running)
            if running:
                try:
                    with write_session(self.factory) as session:
                        session.execute(update(Operation).where(Operation.pk.in_(running),
                                                                Operation.lease_owner == self.owner)
                                        .values(lease_expiry=time.time() + LEASE_SECONDS))
                except Exception:
                    log.exception("lease heartbeat failed")
