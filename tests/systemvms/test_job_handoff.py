"""A new target's job taken at birth (core.resources.operations.begin, core.jobs.engine.JobEngine.hand):
the Operation goes in RUNNING, leased to the engine of the process that served the call, which runs
it after the commit without claiming it; no other process's worker takes it meanwhile; with no idle
worker it is queued for the claims as before; an engine that stops gives its unrun jobs back."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from core.db import make_engine, write_session
from core.jobs import JobEngine
from core.models import Operation, Resource, Zone
from core.resources.context import Call
from core.services import instances
from tests.systemvms.conftest import IMAGE

NEVER = 3600.0


def _insert(cloud, name: str, desk: JobEngine | None) -> tuple[Operation, Call]:
    with write_session(cloud.factory) as s:
        call = Call(s, cloud.project, "test", desk=desk)
        zone = s.scalar(select(Zone).where(Zone.name == "us-central1-a"))
        op = instances.insert(call, zone, {
            "name": name, "machineType": "zones/us-central1-a/machineTypes/e2-micro",
            "disks": [{"boot": True, "autoDelete": True, "initializeParams": {"sourceImage": IMAGE}}]})
    return op, call


def _row(cloud, pk: int) -> Operation:
    with cloud.factory() as s:
        return s.get(Operation, pk)


def _status_of_instance(cloud, name: str) -> str:
    with cloud.factory() as s:
        return s.scalar(select(Resource.status).where(Resource.project == cloud.project, Resource.collection == "instances",
                                                     Resource.name == name))


@pytest.fixture
def engines(cloud):
    """Engines of "other processes": each on a connection pool of its own."""
    bind = make_engine(cloud.factory.kw["bind"].url.render_as_string(hide_password=False))
    made: list[JobEngine] = []

    def engine(workers: int = 1) -> JobEngine:
        e = JobEngine(sessionmaker(bind=bind, expire_on_commit=False), cloud.drivers, workers=workers,
                      poll_interval=0.2)
        made.append(e)
        return e

    yield engine
    for e in made:
        e.stop()
    bind.dispose()


def test_a_new_instance_job_is_leased_at_birth_and_run_by_its_engine_alone(cloud, engines):
    mine, other = engines(), engines()
    mine.start()
    other.start()
    op, call = _insert(cloud, "born-leased", desk=mine)
    row = _row(cloud, op.pk)
    assert (row.status, row.lease_owner, row.attempts) == ("RUNNING", mine.owner, 1)
    assert [h.op_pk for h in call.handed] == [op.pk]
    other.kick()  # another process's worker looks: the job is leased, it is not its to take
    other.wait(op.pk, 1.0)
    assert _row(cloud, op.pk).status == "RUNNING" and _status_of_instance(cloud, "born-leased") == "PROVISIONING"
    mine.hand(call.handed)
    mine.wait(op.pk, 30)
    done = _row(cloud, op.pk)
    assert (done.status, done.error, done.attempts, done.lease_owner) == ("DONE", None, 1, None)
    assert _status_of_instance(cloud, "born-leased") == "RUNNING"


def test_without_an_idle_worker_the_job_is_queued_for_any_worker(cloud, engines):
    idle = engines()  # not started: no worker of its own runs
    op, call = _insert(cloud, "queued", desk=idle)
    row = _row(cloud, op.pk)
    assert (row.status, row.lease_owner, row.attempts, call.handed) == ("PENDING", None, 0, [])
    cloud.run_jobs()
    assert _row(cloud, op.pk).status == "DONE" and _status_of_instance(cloud, "queued") == "RUNNING"


def test_a_job_handed_to_an_engine_that_stopped_is_given_back(cloud, engines):
    mine, other = engines(), engines()
    mine.start()
    op, call = _insert(cloud, "given-back", desk=mine)
    assert _row(cloud, op.pk).lease_owner == mine.owner
    mine.stop()
    mine.hand(call.handed)  # the commit came as the process stopped: the job is released, not lost
    assert _row(cloud, op.pk).lease_owner is None
    other.start()
    other.wait(op.pk, 30)
    assert _row(cloud, op.pk).status == "DONE" and _status_of_instance(cloud, "given-back") == "RUNNING"
