"""Workers share the queue fairly between projects, and start a queued job without a pause.

Fairness is asserted on the order jobs run in (job counts), never on wall-clock time; "no pause"
on an engine whose clock stands still: a job that starts there started on its kick, not on a timer.
"""

from __future__ import annotations

import threading
import time
import types
import uuid

import pytest
from sqlalchemy import select

from core.db import write_session
from core.jobs import JobContext, JobEngine, job
from core.jobs import engine as engine_module
from core.jobs.engine import HANDLERS
from core.models import Operation, Zone
from core.resources import operations
from core.resources.context import Call
from core.services import instances
from core.services.seed import ensure_project
from tests.systemvms.conftest import Cloud

pytestmark = pytest.mark.xdist_group("systemvms-fairness")

NEVER = 3600.0  # a poll interval no test outlives: only a kick can wake a worker
MEETING = threading.Barrier(3)  # the jobs of the pool test meet here: all three must run at once
IN_FLIGHT = {"now": 0, "most": 0}
_IN_FLIGHT_LOCK = threading.Lock()


def _meet(ctx: JobContext) -> None:
    with _IN_FLIGHT_LOCK:
        IN_FLIGHT["now"] += 1
        IN_FLIGHT["most"] = max(IN_FLIGHT["most"], IN_FLIGHT["now"])
    try:
        if ctx.params["meet"]:
            MEETING.wait(30)  # breaks (and the job fails) unless the pool grew to three
    finally:
        with _IN_FLIGHT_LOCK:
            IN_FLIGHT["now"] -= 1
    with ctx.write() as s:
        ctx.complete(s)


job("tests.meet")(_meet)
STARTED: dict[int, float] = {}  # a deferred job's Operation -> when it started


def _started(ctx: JobContext) -> None:
    STARTED[ctx.op_pk] = time.time()
    with ctx.write() as s:
        ctx.complete(s)


job("tests.started")(_started)


@pytest.fixture
def neighbour(cloud) -> Cloud:
    """A second project in the same cloud, sharing its job queue."""
    project = f"svm-{uuid.uuid4().hex[:8]}"
    with write_session(cloud.factory) as s:
        ensure_project(s, project)
    return Cloud(cloud.factory, cloud.drivers, cloud.engine, project)


def _stop(cloud: Cloud, name: str) -> None:
    """Queue instances.stop without running its job."""
    with write_session(cloud.factory) as s:
        instances.stop(Call(s, cloud.project, "test"), s.scalar(select(Zone).where(Zone.name == "us-central1-a")), name)


def _recorded(monkeypatch, kind: str, attr: str, log: list) -> None:
    """Record the project of every job of ``kind`` as its handler's ``attr`` (run or batch) gets it."""
    handler = HANDLERS[kind]
    inner = getattr(handler, attr)
    if attr == "batch":
        monkeypatch.setattr(handler, attr, lambda ctxs: (log.append([c.project for c in ctxs]), inner(ctxs)))
    else:
        monkeypatch.setattr(handler, attr, lambda ctx: (log.append(ctx.project), inner(ctx)))


def test_a_burst_in_one_project_does_not_hold_back_another_projects_job(cloud, neighbour, monkeypatch):
    """Seven inserts of project A are queued before B's one; claims of three jobs each take B's in
    the first claim (one A job ahead of it: round-robin), not after A's burst. The same for jobs
    that run one at a time (stops): at most one of A's four stops runs before B's."""
    monkeypatch.setattr(engine_module, "BATCH_SIZE", 3)
    batches: list[list[str]] = []
    _recorded(monkeypatch, "instances.run", "batch", batches)
    burst = [f"burst-{i}" for i in range(7)]
    for name in burst:
        cloud.instance(name, run=False)
    neighbour.instance("single", run=False)
    cloud.run_jobs()
    runs = [b for b in batches if b]
    assert neighbour.project in runs[0], runs
    assert runs[0].count(cloud.project) == 2 and sum(len(b) for b in runs) == 8

    stops: list[str] = []
    _recorded(monkeypatch, "instances.stop", "run", stops)
    for name in burst[:4]:
        _stop(cloud, name)
    _stop(neighbour, "single")
    cloud.run_jobs()
    assert sorted(stops) == sorted([cloud.project] * 4 + [neighbour.project])
    assert stops.index(neighbour.project) <= 1, stops  # at most one of A's four ahead of it
    for name in burst:
        cloud.delete_instance(name)
    neighbour.delete_instance("single")


def test_a_queued_job_starts_on_its_kick_and_a_burst_gathers_behind_the_running_batch(cloud, monkeypatch):
    """The engine's clock stands still, so no hold that lasts a while can ever end: the lone insert,
    the burst queued while its batch runs (all in the next batch) and the insert after them all
    start on their kicks, each as soon as the batch before it ends."""
    frozen = time.time()
    monkeypatch.setattr(engine_module, "time", types.SimpleNamespace(
        time=lambda: frozen, monotonic=time.monotonic, sleep=time.sleep))
    sizes: list[int] = []
    running, release = threading.Event(), threading.Event()
    handler = HANDLERS["instances.run"]

    def batch(ctxs, inner=handler.batch):
        sizes.append(len(ctxs))
        running.set()
        release.wait(30)
        inner(ctxs)

    monkeypatch.setattr(handler, "batch", batch)
    engine = JobEngine(cloud.factory, cloud.drivers, workers=1, poll_interval=NEVER)
    engine.start()
    try:
        cloud.instance("lone", run=False)
        engine.kick("instances.run")
        assert running.wait(30), "the lone insert did not start on its kick"
        burst = [f"gathered-{i}" for i in range(3)]
        for name in burst:
            cloud.instance(name, run=False)
            engine.kick("instances.run")
        release.set()
        for name in ["lone", *burst]:
            engine.wait(_insert_op(cloud, name), timeout=30)
        cloud.instance("after", run=False)
        engine.kick("instances.run")
        engine.wait(_insert_op(cloud, "after"), timeout=30)
    finally:
        release.set()
        engine.stop()
    assert sizes == [1, 3, 1]
    with cloud.factory() as s:
        ops = s.scalars(select(Operation.status).where(Operation.project == cloud.project,
                                                       Operation.operation_type == "insert"))
        assert set(ops) == {"DONE"}
    monkeypatch.undo()  # the clock runs again for the clean-up's deferred jobs
    for name in ["lone", *burst, "after"]:
        cloud.delete_instance(name)


def _held_batches(cloud: Cloud, monkeypatch, quiet: float, linger: float, later: list[float]) -> tuple[list[int], float]:
    """One insert's batch held running while a second insert comes, then inserts ``later`` seconds
    after that batch ended; the batches' sizes, and how long after the first batch ended the
    second insert (queued during it) was claimed."""
    monkeypatch.setattr(engine_module, "QUIET_SECONDS", quiet)
    monkeypatch.setattr(engine_module, "LINGER_SECONDS", linger)
    sizes: list[int] = []
    first_runs, release_first, first_ended = threading.Event(), threading.Event(), threading.Event()
    claimed: dict[str, float] = {}
    handler = HANDLERS["instances.run"]

    def batch(ctxs, inner=handler.batch):
        sizes.append(len(ctxs))
        claimed.setdefault("second", time.monotonic()) if len(sizes) == 2 else None
        if len(sizes) == 1:
            first_runs.set()
            release_first.wait(30)
        inner(ctxs)
        if len(sizes) == 1:
            claimed["ended"] = time.monotonic()
            first_ended.set()

    monkeypatch.setattr(handler, "batch", batch)
    engine = JobEngine(cloud.factory, cloud.drivers, workers=1, poll_interval=NEVER)
    engine.start()
    tag = uuid.uuid4().hex[:6]  # the Operations are found by their instance's name
    names = [f"first-{tag}", f"during-{tag}", *(f"later-{i}-{tag}" for i in range(len(later)))]
    try:
        cloud.instance(names[0], run=False)
        engine.kick("instances.run")
        assert first_runs.wait(30), "the first insert did not start on its kick"
        cloud.instance(names[1], run=False)
        engine.kick("instances.run")
        release_first.set()
        assert first_ended.wait(30)
        for i, at in enumerate(later):
            time.sleep(max(0.0, claimed["ended"] + at - time.monotonic()))
            cloud.instance(names[2 + i], run=False)
            engine.kick("instances.run")
        for name in names:
            engine.wait(_insert_op(cloud, name), timeout=30)
    finally:
        release_first.set()
        engine.stop()
    monkeypatch.undo()
    for name in names:
        cloud.delete_instance(name)
    assert "second" in claimed, sizes
    return sizes, claimed["second"] - claimed["ended"]


def test_a_batch_during_which_more_came_holds_its_kind_while_the_stream_goes_on(cloud, monkeypatch):
    """Jobs of a coalescing kind that came while a batch of it ran (a stream) make that batch hold
    its kind when it ends, for as long as another comes within the quiet time (here 1 s; they come
    0.5 and 1.3 s after the batch ended): the next batch takes them all with the one queued during
    the batch. A fixed hold of the quiet time would have left the last for a batch of its own."""
    sizes, _ = _held_batches(cloud, monkeypatch, quiet=1.0, linger=30.0, later=[0.5, 1.3])
    assert sizes == [1, 3]


def test_the_hold_ends_when_the_stream_stops(cloud, monkeypatch):
    """The job queued during the batch, followed by no other, waits the quiet time (0.3 s), not
    the whole hold (30 s); and never longer than the whole hold (0.4 s, with a quiet time of 3 s)."""
    sizes, waited = _held_batches(cloud, monkeypatch, quiet=0.3, linger=30.0, later=[])
    assert sizes == [1, 1] and 0.25 < waited < 5, waited
    sizes, waited = _held_batches(cloud, monkeypatch, quiet=3.0, linger=0.4, later=[])
    assert sizes == [1, 1] and 0.35 < waited < 2.5, waited


def _insert_op(cloud: Cloud, name: str) -> int:
    with cloud.factory() as s:
        return s.scalar(select(Operation.pk).where(Operation.project == cloud.project,
                                                   Operation.operation_type == "insert",
                                                   Operation.target_link.endswith(f"/instances/{name}")))


def test_the_pool_grows_to_max_workers_under_load_and_no_further(cloud):
    """One standing worker, at most three: three jobs that each wait for the other two all finish
    (they ran at once), and a fourth queued with them never made a fourth thread."""
    MEETING.reset()
    IN_FLIGHT.update(now=0, most=0)
    with write_session(cloud.factory) as s:
        pks = [operations.begin(Call(s, cloud.project, "test"), scope="global", op_type="test",
                                target_path=f"projects/{cloud.project}/global/tests/meet-{i}",
                                target_id=uuid.uuid4().int >> 65, job="tests.meet", params={"meet": i < 3}).pk
               for i in range(4)]
    engine = JobEngine(cloud.factory, cloud.drivers, workers=1, max_workers=3, poll_interval=NEVER)
    engine.start()
    try:
        engine.kick("tests.meet")
        for pk in pks:
            engine.wait(pk, timeout=60)
        grown = engine.pool_size()
    finally:
        engine.stop()
    with cloud.factory() as s:
        ops = [s.get(Operation, pk) for pk in pks]
    assert [(op.status, op.error) for op in ops] == [("DONE", None)] * 4
    assert IN_FLIGHT["most"] == 3 and grown <= 3


def test_a_deferred_job_starts_when_due_without_a_kick(cloud):
    """A worker whose claim found nothing sleeps until the next deferred job comes due (the claim
    read when), never later and never before: no kick and no poll wakes it (the poll interval is an
    hour). A second job, deferred less, queued while the worker sleeps with its kick, starts first."""
    engine = JobEngine(cloud.factory, cloud.drivers, workers=1, poll_interval=NEVER)

    def deferred(seconds: float) -> tuple[int, float]:
        due = time.time() + seconds
        with write_session(cloud.factory) as s:
            pk = operations.begin(Call(s, cloud.project, "test"), scope="global", op_type="test",
                                  target_path=f"projects/{cloud.project}/global/tests/due-{seconds}",
                                  target_id=uuid.uuid4().int >> 65, job="tests.started", not_before=due).pk
        return pk, due

    late, late_due = deferred(1.5)
    engine.start()
    try:
        time.sleep(0.3)  # the worker claimed nothing and sleeps until the late job's due time
        early, early_due = deferred(0.4)
        engine.kick("tests.started")  # its claim finds nothing either: it sleeps until the early one
        engine.wait(early, timeout=10)
        engine.wait(late, timeout=10)
    finally:
        engine.stop()
    with cloud.factory() as s:
        assert [s.get(Operation, pk).status for pk in (early, late)] == ["DONE", "DONE"]
    assert early_due <= STARTED[early] < early_due + 0.5
    assert late_due <= STARTED[late] < late_due + 0.5
