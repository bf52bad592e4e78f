"""Processes sharing a database hear of each other's jobs without polling for them: PostgreSQL's
NOTIFY, and on SQLite a watch on the database's commit counter (PRAGMA data_version).

"Another process" here is a second engine on a connection pool of its own, as a process has."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from core.db import make_engine
from core.jobs import JobEngine
from core.models import Operation

NEVER = 3600.0  # a poll interval and timeouts no test outlives: only a notification can end a wait


@pytest.fixture
def other_process(cloud):
    bind = make_engine(cloud.factory.kw["bind"].url.render_as_string(hide_password=False))
    engines: list[JobEngine] = []

    def engine(workers: int = 0) -> JobEngine:
        e = JobEngine(sessionmaker(bind=bind, expire_on_commit=False), cloud.drivers, workers=workers,
                      poll_interval=NEVER)
        engines.append(e)
        return e

    yield engine
    for e in engines:
        e.stop()
    bind.dispose()


def insert_op(cloud, name: str) -> Operation:
    cloud.instance(name, run=False)
    with cloud.factory() as s:
        return s.scalar(select(Operation).where(Operation.project == cloud.project, Operation.job == "instances.run")
                        .order_by(Operation.pk.desc()).limit(1))


def test_a_listening_process_wakes_when_another_finishes_the_job(cloud, other_process):
    api = other_process()
    api.listen()
    op = insert_op(cloud, "heard")
    waiter = threading.Thread(target=api.wait, args=(op.pk, NEVER), daemon=True)
    waiter.start()
    cloud.run_jobs()  # this "process" runs the job
    waiter.join(30)
    assert not waiter.is_alive(), "wait() was not woken when another process finished the job"
    with cloud.factory() as s:
        assert s.get(Operation, op.pk).status == "DONE"


def test_a_worker_process_picks_up_a_job_committed_elsewhere(cloud, other_process):
    worker = other_process(workers=1)
    worker.start()
    # committed by this "process", which kicks only its own workers: the other hears of it through the
    # INSERT's own NOTIFY (PostgreSQL), or the database's commit counter (SQLite)
    op = insert_op(cloud, "picked")
    waiter = threading.Thread(target=worker.wait, args=(op.pk, NEVER), daemon=True)
    waiter.start()
    waiter.join(30)
    assert not waiter.is_alive(), "the other process's worker never ran the job"
    with cloud.factory() as s:
        done = s.get(Operation, op.pk)
        assert done.status == "DONE" and done.error is None
