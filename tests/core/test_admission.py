"""A job's Operation enters the queue with its own INSERT (core.jobs.admission): the project's bound
is checked by that statement, a call past it is refused with GCE's rate-limit answer and leaves
nothing behind (its instance, disks, addresses and other Operations rolled back), and on
PostgreSQL every Operation a call queues announces its own kind at commit, a refused call none."""

from __future__ import annotations

import select as selectors
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy import Engine, delete, func, select
from sqlalchemy.orm import Session

from core.errors import ProjectRateLimited
from core.jobs.claims import UNFINISHED
from core.jobs.engine import NEW_CHANNEL
from core.models import Operation, Project
from core.resources import operations
from core.resources.context import Call
from core.services import calls, instances, topology
from tests.helpers.core import left_by, remove_made
from tests.helpers.databases import statements_sent

PROJECT = "demo-project"
ZONE = "us-central1-a"
IMAGE = "projects/debian-cloud/global/images/family/debian-12"


def _body(name: str) -> dict:
    return {"name": name, "machineType": f"zones/{ZONE}/machineTypes/e2-micro",
            "disks": [{"boot": True, "autoDelete": True, "initializeParams": {"sourceImage": IMAGE}},
                      {"initializeParams": {"diskSizeGb": "10"}}]}


def _unfinished(s: Session) -> int:
    return s.scalar(select(func.count()).select_from(Operation)
                    .where(Operation.project == PROJECT, Operation.status.in_(UNFINISHED))) or 0


@pytest.fixture
def cleanup(engine: Engine) -> Iterator[list[str]]:
    """Names of instances (and of their disks) a test committed, removed afterwards with their Operations."""
    names: list[str] = []
    yield names
    remove_made(engine, names)


def _insert(engine: Engine, name: str, bound: int) -> dict:
    """instances.insert of ``name`` as the API runs it (a session of its own, as each request has)."""
    with Session(engine, expire_on_commit=False) as s:
        call = Call(s, PROJECT, "test", max_queued=bound)
        outcome = calls.run(call, True, lambda: instances.insert(call, topology.zone(s, PROJECT, ZONE), _body(name)))
    assert outcome.operation is not None
    return outcome.operation


def test_a_call_past_its_projects_bound_is_refused_and_leaves_nothing(engine, cleanup):
    name = f"bound-{uuid.uuid4().hex[:6]}"
    cleanup += [f"{name}-a", f"{name}-b"]
    with Session(engine) as s:
        bound = _unfinished(s) + 1
    assert _insert(engine, f"{name}-a", bound)["status"] == "PENDING"  # the last place in the queue
    with pytest.raises(ProjectRateLimited) as refused:
        _insert(engine, f"{name}-b", bound)
    with Session(engine) as s:
        assert left_by(s, f"{name}-a") == {"resources": 3, "addresses": 1, "operations": 1}
        number = s.scalar(select(Project.number).where(Project.name == PROJECT))
        assert refused.value.message == (
            "Quota exceeded for quota metric 'Queries' and limit 'Queries per minute' of service "
            f"'compute.googleapis.com' for consumer 'project_number:{number}'.")
        assert left_by(s, f"{name}-b") == {"resources": 0, "addresses": 0, "operations": 0}
        assert _unfinished(s) == bound
    assert _insert(engine, f"{name}-b", bound + 1)["status"] == "PENDING"  # room again: served


def test_a_refused_call_undoes_its_other_operations(engine):
    """A call that queues several jobs is refused as a whole at the first that does not fit."""
    with Session(engine, expire_on_commit=False) as s:
        call = Call(s, PROJECT, "test", max_queued=_unfinished(s) + 1)
        s.rollback()
        target = f"projects/{PROJECT}/zones/{ZONE}/instances/two-{uuid.uuid4().hex[:6]}"

        def two_jobs() -> Operation:
            for _ in range(2):
                op = operations.begin(call, scope=f"zones/{ZONE}", op_type="test", target_path=target,
                                      target_id=None, job="test.nothing")
            return op

        with pytest.raises(ProjectRateLimited):
            calls.run(call, True, two_jobs)
        assert s.scalar(select(func.count()).select_from(Operation).where(Operation.target_link == target)) == 0


def test_the_bound_is_one_statement_with_the_operations_insert(engine, cleanup):
    """No count of the queue of its own: the INSERT of the Operation holds it (and the NOTIFY)."""
    name = f"one-{uuid.uuid4().hex[:6]}"
    cleanup.append(name)
    with statements_sent(engine) as sent:
        _insert(engine, name, 1000)
    touching = [q for q in sent if "FROM operations" in q or "INTO operations" in q]
    assert len(touching) == 1, touching
    assert "INSERT INTO operations" in touching[0] and "count(*)" in touching[0]
    if engine.dialect.name == "postgresql":
        assert "pg_notify" in touching[0]


@pytest.fixture
def listener(engine: Engine) -> Iterator[psycopg.Connection]:
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite has no NOTIFY")
    url = engine.url.set(drivername="postgresql")
    with psycopg.connect(url.render_as_string(hide_password=False), autocommit=True) as conn:
        conn.execute(f"LISTEN {NEW_CHANNEL}")
        yield conn


def _heard(conn: psycopg.Connection) -> set[str]:
    selectors.select([conn.fileno()], [], [], 1.0)
    return {n.payload for n in conn.notifies(timeout=0.5, stop_after=None)}


@pytest.mark.parametrize("bound", [0, 1000])
def test_every_operation_a_call_queues_announces_its_kind(engine, listener, bound):
    target = f"projects/{PROJECT}/zones/{ZONE}/instances/heard-{uuid.uuid4().hex[:6]}"
    with Session(engine, expire_on_commit=False) as s:
        call = Call(s, PROJECT, "test", max_queued=bound)

        def two_kinds() -> Operation:
            operations.begin(call, scope=f"zones/{ZONE}", op_type="test", target_path=target, target_id=None,
                             job="test.first")
            return operations.begin(call, scope=f"zones/{ZONE}", op_type="test", target_path=target,
                                    target_id=None, job="test.second")

        try:
            calls.run(call, True, two_kinds)
            assert _heard(listener) == {"test.first", "test.second"}
            with pytest.raises(ProjectRateLimited):  # refused: rolled back, so nothing is sent
                full = Call(s, PROJECT, "test", max_queued=1)
                calls.run(full, True, lambda: operations.begin(full, scope=f"zones/{ZONE}", op_type="test",
                                                               target_path=target, target_id=None, job="test.third"))
            assert _heard(listener) == set()
        finally:
            s.rollback()
            with s.begin():
                s.execute(delete(Operation).where(Operation.target_link == target))
