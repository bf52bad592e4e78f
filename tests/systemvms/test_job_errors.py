"""What a job's exception does to its Operation, through the real job engine on both databases:
a user's error (every ComputeError) ends it at once with its own code, message and HTTP status; a
transient fault is retried and the job then succeeds; a bug ends INTERNAL_ERROR at once."""

from __future__ import annotations

import inspect
import sqlite3
import uuid

import orjson
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from core import errors
from core.db import write_session
from core.errors import ComputeError, OperationFailure
from core.hypervisors.base import DriverError
from core.jobs import JobContext, faults, job
from core.models import Operation
from core.resources import operations
from core.resources.context import Call
from tests.conftest import pg_available

# One instance of every ComputeError the core defines, with the op_code each must carry.
USER_ERRORS: list[tuple[ComputeError, str, int]] = [
    (errors.Invalid("resource.sizeGb", 3, "Too small."), "INVALID_FIELD_VALUE", 400),
    (errors.Required("resource.name"), "INVALID_FIELD_VALUE", 400),
    (errors.BadRequest("The IP range 10.0.0.0/29 has no free address left."), "INVALID_FIELD_VALUE", 400),
    (errors.NotFound("projects/p/global/images/gone"), "RESOURCE_NOT_FOUND", 404),
    (errors.AlreadyExists("projects/p/global/images/twice"), "RESOURCE_ALREADY_EXISTS", 409),
    (errors.ResourceInUse("disk", "projects/p/zones/z/disks/d", "projects/p/zones/z/instances/i"),
     "RESOURCE_IN_USE_BY_ANOTHER_RESOURCE", 400),
    (errors.ResourceNotReady("The resource 'projects/p/zones/z/disks/d' is not ready"), "RESOURCE_NOT_READY", 400),
    (errors.ResourceExhausted("No room."), "ZONE_RESOURCE_POOL_EXHAUSTED", 503),
    (errors.ConditionNotMet("Invalid fingerprint."), "CONDITION_NOT_MET", 412),
    (errors.QuotaExceeded("CPUS", 8, "us-central1"), "QUOTA_EXCEEDED", 403),
    (errors.Forbidden("Required 'compute.disks.create' permission"), "PERMISSIONS_ERROR", 403),
    (errors.InsufficientPermissions(), "PERMISSIONS_ERROR", 403),
    (errors.Unauthenticated("Login Required."), "PERMISSIONS_ERROR", 401),
    (errors.RateLimited("Too many requests."), "RATE_LIMIT_EXCEEDED", 429),
    (errors.ProjectRateLimited(1234), "RATE_LIMIT_EXCEEDED", 403),
    (errors.NotImplementedMethod("Not implemented."), "UNSUPPORTED_OPERATION", 501),
]
HTTP_MESSAGES = {400: "BAD REQUEST", 401: "UNAUTHORIZED", 403: "FORBIDDEN", 404: "NOT FOUND", 409: "CONFLICT",
                 412: "PRECONDITION FAILED", 429: "TOO MANY REQUESTS", 500: "INTERNAL SERVER ERROR",
                 501: "NOT IMPLEMENTED", 503: "SERVICE UNAVAILABLE"}

# What a job raises on its first attempt, by name; later attempts succeed.
FIRST_ATTEMPT: dict[str, Exception] = {
    **{f"user-{i}": exc for i, (exc, _code, _status) in enumerate(USER_ERRORS)},
    "timeout": TimeoutError("timed out talking to the host"),
    "connection": ConnectionResetError("connection reset by peer"),
    "host-down": DriverError("host h1 is not reachable"),
    "refused": DriverError("the sim driver cannot push configuration into VMs", retry_elsewhere=False),
    "bug": ZeroDivisionError("division by zero"),
    "bug-key": KeyError("uid"),
}
CLEANED: set[str] = set()  # tokens of the Operations whose handler's on_fail ran


def _run(ctx: JobContext) -> None:
    if ctx.attempt == 1:
        raise FIRST_ATTEMPT[ctx.params["raise"]]
    with ctx.write() as s:
        ctx.complete(s)


def _on_fail(ctx: JobContext, failure: OperationFailure) -> None:
    CLEANED.add(ctx.params["token"])


job("tests.job_errors", on_fail=_on_fail)(_run)


def enqueue(cloud, what: str) -> tuple[int, str]:
    """A job that raises ``what`` on its first attempt: its Operation, and the token its cleanup records."""
    token = uuid.uuid4().hex
    with write_session(cloud.factory) as s:
        op = operations.begin(Call(s, cloud.project, "test"), scope="global", op_type="test",
                              target_path=f"projects/{cloud.project}/global/tests/{what}",
                              target_id=uuid.uuid4().int >> 65, job="tests.job_errors",
                              params={"raise": what, "token": token})
        return op.pk, token


def ended(cloud, pk: int) -> Operation:
    with cloud.factory() as s:
        op = s.get(Operation, pk)
    assert op is not None and op.status == "DONE", op and op.status
    return op


def error_of(op: Operation) -> dict:
    assert op.error is not None
    found = orjson.loads(op.error)["errors"]
    assert len(found) == 1
    return found[0]


def test_every_compute_error_is_covered_and_names_its_own_op_code():
    defined = {cls for _name, cls in inspect.getmembers(errors, inspect.isclass)
               if issubclass(cls, ComputeError) and cls is not ComputeError}
    assert {type(exc) for exc, _code, _status in USER_ERRORS} == defined
    for cls in defined:
        assert "op_code" in vars(cls), f"{cls.__name__} inherits its op_code"


@pytest.mark.parametrize("index", range(len(USER_ERRORS)), ids=[type(e).__name__ for e, _c, _s in USER_ERRORS])
def test_a_user_error_ends_the_operation_at_once_with_its_op_code(cloud, index):
    exc, code, status = USER_ERRORS[index]
    pk, token = enqueue(cloud, f"user-{index}")
    cloud.run_jobs()  # runs first attempts only: a retry would leave the Operation RUNNING
    op = ended(cloud, pk)
    assert op.attempts == 1
    assert error_of(op) == {"code": code, "message": exc.message}
    assert (op.http_error_status, op.http_error_message) == (status, HTTP_MESSAGES[status])
    assert token in CLEANED


@pytest.mark.parametrize("what", ["bug", "bug-key"])
def test_a_bug_ends_internal_error_at_once(cloud, what):
    pk, token = enqueue(cloud, what)
    cloud.run_jobs()
    op = ended(cloud, pk)
    assert op.attempts == 1
    assert error_of(op) == {"code": "INTERNAL_ERROR", "message": f"Internal error: {FIRST_ATTEMPT[what]}"}
    assert (op.http_error_status, op.http_error_message) == (500, "INTERNAL SERVER ERROR")
    assert token in CLEANED


def test_a_driver_that_refuses_for_good_ends_the_operation_at_once(cloud):
    pk, token = enqueue(cloud, "refused")
    cloud.run_jobs()
    op = ended(cloud, pk)
    assert op.attempts == 1
    assert error_of(op) == {"code": "INTERNAL_ERROR", "message": "the sim driver cannot push configuration into VMs"}
    assert op.http_error_status == 500


@pytest.mark.parametrize("what", ["timeout", "connection", "host-down"])
def test_a_transient_fault_is_retried_and_the_job_then_succeeds(cloud, what):
    pk, token = enqueue(cloud, what)
    cloud.run_jobs()  # the first attempt fails and is deferred by the back-off
    with cloud.factory() as s:
        op = s.get(Operation, pk)
        assert (op.status, op.attempts, op.error) == ("RUNNING", 1, None)
    cloud.engine.start()
    try:
        cloud.engine.wait(pk, 30)
    finally:
        cloud.engine.stop()
    op = ended(cloud, pk)
    assert op.attempts == 2 and op.error is None and op.http_error_status is None
    assert token not in CLEANED


# -- which database errors are transient: real errors of real databases -------------------------------


def test_sqlite_busy_is_transient_and_a_missing_table_is_not(tmp_path):
    path = str(tmp_path / "db.sqlite3")
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (x INTEGER)")
    holder.execute("BEGIN IMMEDIATE")  # holds the write lock
    bind = create_engine(f"sqlite:///{path}", connect_args={"timeout": 0})
    try:
        with bind.connect() as conn:
            with pytest.raises(OperationalError) as busy:
                conn.execute(text("INSERT INTO t VALUES (1)"))
            conn.rollback()
            with pytest.raises(OperationalError) as missing:
                conn.execute(text("SELECT * FROM no_such_table"))
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        bind.dispose()
    assert faults.transient(busy.value) and faults.verdict(busy.value) is None
    assert not faults.transient(missing.value)
    assert faults.verdict(missing.value).code == "INTERNAL_ERROR"


def test_postgresql_lock_not_available_is_transient(cloud):
    if cloud.factory.kw["bind"].dialect.name != "postgresql":
        pytest.skip("PostgreSQL's own error; SQLite's is above")
    assert pg_available()
    with cloud.factory() as holder, cloud.factory() as other:
        # A seeded zone row: always there, whichever test of the module runs first.
        holder.execute(text("SELECT id FROM zones ORDER BY id LIMIT 1 FOR UPDATE"))
        with pytest.raises(OperationalError) as locked:
            other.execute(text("SELECT id FROM zones ORDER BY id LIMIT 1 FOR UPDATE NOWAIT"))
        assert faults.transient(locked.value)
