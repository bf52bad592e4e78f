"""PostgreSQL: the API's instances.insert in two statements, each a transaction of its own (its read,
then its rows, Operation and predicted address: core.services.instances.lifecycle.insert with
``alone``), and the way back to the usual transaction whenever that second statement cannot make
everything: its address taken meanwhile (by another process, or above it), a name taken between
the read and the write, the project's queue full. Each time nothing of the try is left, and the
call is answered as the usual insert answers it."""

from __future__ import annotations

import contextlib
import ipaddress
import threading
import time
import uuid
from collections.abc import Callable, Iterator

import orjson
import pytest
from sqlalchemy import Engine, delete, event, func, insert, select, update
from sqlalchemy.orm import Session

from core import quotas
from core.errors import AlreadyExists, ProjectRateLimited, QuotaExceeded
from core.jobs.claims import UNFINISHED
from core.models import IpAllocation, Operation, Project, Resource
from core.resources import store
from core.resources.context import Call
from core.services import calls, instances, projects, topology
from tests.helpers.core import left_by, remove_made
from tests.helpers.databases import statements_sent

PROJECT = "demo-project"
ZONE = "us-central1-a"
IMAGE = "projects/debian-cloud/global/images/family/debian-12"


@pytest.fixture
def engine(engine: Engine) -> Engine:
    if engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL's round trips: SQLite's insert is one transaction of its own process")
    return engine


@pytest.fixture
def made(engine: Engine) -> Iterator[list[str]]:
    """Name prefixes of what a test committed: its instances and disks, their addresses and Operations."""
    prefixes: list[str] = []
    yield prefixes
    remove_made(engine, prefixes)


# gcloud's default NIC: an ephemeral external address (../shared/clients/gcloud/instances-create-image.txt)
EXTERNAL_NIC = {"network": "global/networks/default", "accessConfigs": [{"name": "external-nat", "type": "ONE_TO_ONE_NAT"}]}
EXTERNAL_POOL = "external:us-central1"


def _insert(engine: Engine, name: str, bound: int = 0, nic: dict | None = None) -> tuple[dict, int]:
    """The API's instances.insert of ``name`` (a session of its own, as each request has), with
    ``nic`` as its one NIC if given: its Operation, and psycopg's transaction status once the
    handler returned, before the call's commit."""
    status = []
    with Session(engine, expire_on_commit=False) as s:
        call = Call(s, PROJECT, "test", max_queued=bound)

        def handler():
            op = instances.insert(call, topology.zone(s, PROJECT, ZONE), {
                "name": name, "machineType": f"zones/{ZONE}/machineTypes/e2-micro",
                "disks": [{"boot": True, "autoDelete": True, "initializeParams": {"sourceImage": IMAGE}}],
                **({"networkInterfaces": [nic]} if nic else {})}, alone=True)
            status.append(s.connection().connection.driver_connection.info.transaction_status)
            return op

        outcome = calls.run(call, True, handler)
    assert outcome.operation is not None
    return outcome.operation, status[-1]


def _address(engine: Engine, name: str) -> tuple[int, list[int]]:
    """The instance's networkIP, and every address its uid holds."""
    with Session(engine) as s:
        row = s.execute(select(Resource.uid, Resource.body).where(
            Resource.project == PROJECT, Resource.collection == "instances", Resource.name == name)).one()
        held = s.scalars(select(IpAllocation.address).where(IpAllocation.owner_uid == row.uid)).all()
    ip = orjson.loads(row.body)["networkInterfaces"][0]["networkIP"]
    return int(ipaddress.ip_address(ip)), sorted(held)


def _nat(engine: Engine, name: str) -> tuple[int, str]:
    """The instance's external address and its tier."""
    with Session(engine) as s:
        body = s.scalar(select(Resource.body).where(Resource.project == PROJECT, Resource.collection == "instances",
                                                    Resource.name == name))
    config = orjson.loads(body)["networkInterfaces"][0]["accessConfigs"][0]
    return int(ipaddress.ip_address(config["natIP"])), config["networkTier"]


def _pool_of(engine: Engine, name: str) -> str:
    with Session(engine) as s:
        uid = s.scalar(select(Resource.uid).where(Resource.project == PROJECT, Resource.collection == "instances",
                                                  Resource.name == name))
        return s.scalar(select(IpAllocation.pool).where(IpAllocation.owner_uid == uid))


def _take_elsewhere(engine: Engine, pool: str, address: int) -> None:
    """What another process's allocation in the pool commits meanwhile."""
    with Session(engine) as s, s.begin():
        s.execute(insert(IpAllocation).values(pool=pool, address=address, owner_uid=-1, project=None))


@contextlib.contextmanager
def _meanwhile(engine: Engine, action: Callable[[], None]) -> Iterator[list[str]]:
    """Run ``action`` once, just before the one statement's write is sent (as another process
    would commit between the read and the write); yields that statement, once sent."""
    raced: list[str] = []

    def before_the_write(conn, cursor, statement, parameters, context, executemany):
        if statement.startswith("WITH ") and "INSERT INTO operations" in statement and not raced:
            raced.append(statement)
            action()
        return statement, parameters

    event.listen(engine, "before_cursor_execute", before_the_write, retval=True)
    try:
        yield raced
    finally:
        event.remove(engine, "before_cursor_execute", before_the_write)


def _commit_instance(engine: Engine, name: str, **columns: object) -> None:
    """What another process's insert of instance ``name`` commits."""
    with Session(engine) as other, other.begin():
        other.execute(insert(Resource).values(
            uid=int(uuid.uuid4().int >> 66), project=PROJECT, collection="instances", scope=f"zones/{ZONE}",
            region="us-central1", name=name, status="RUNNING", created=0.0,
            body=orjson.dumps({"name": name}).decode(), **{"subtype": "", **columns}))


def _left(engine: Engine, prefix: str) -> dict[str, int]:
    with Session(engine) as s:
        return left_by(s, prefix)


def test_an_insert_is_two_statements_of_their_own_its_address_predicted(engine, made):
    name = f"alone-{uuid.uuid4().hex[:6]}"
    made.append(name)
    _insert(engine, f"{name}-a")
    with statements_sent(engine) as sent:
        op, status = _insert(engine, f"{name}-b")
    assert op["status"] == "PENDING"
    assert status == 0  # libpq's PQTRANS_IDLE: no transaction was open when the call came to commit
    assert [q.split(" ", 2)[:2] for q in sent] == [["SELECT", "projects.id,"], ["WITH", "claimed"]], sent
    first, held_a = _address(engine, f"{name}-a")
    second, held_b = _address(engine, f"{name}-b")
    assert (held_a, held_b) == ([first], [first + 1])  # the address the usual allocation takes next


@pytest.mark.parametrize("taken_at", [1, 5], ids=["the predicted address", "one above it"])
def test_an_address_taken_meanwhile_sends_the_insert_the_usual_way(engine, made, taken_at):
    """Another process took the predicted address, or one above it, between the read and the
    write (here: before the write's statement): the one-statement try makes nothing, and the usual
    insert takes the next address above the pool's highest, as it always does."""
    name = f"taken-{uuid.uuid4().hex[:6]}"
    made.append(name)
    _insert(engine, f"{name}-a")
    first, _ = _address(engine, f"{name}-a")
    pool = _pool_of(engine, f"{name}-a")

    try:
        with _meanwhile(engine, lambda: _take_elsewhere(engine, pool, first + taken_at)) as raced, \
                statements_sent(engine) as sent:
            op, status = _insert(engine, f"{name}-b")
        assert op["status"] == "PENDING" and status != 0  # the usual transaction
        assert raced and any(q.startswith("WITH claimed") for q in sent)  # tried first
        assert _address(engine, f"{name}-b") == (first + taken_at + 1, [first + taken_at + 1])
        assert _left(engine, f"{name}-b") == {"resources": 2, "addresses": 1, "operations": 1}
        op, status = _insert(engine, f"{name}-c")  # predicted from the pool as it is now
        assert status == 0 and _address(engine, f"{name}-c") == (first + taken_at + 2, [first + taken_at + 2])
    finally:
        with Session(engine) as s, s.begin():
            s.execute(delete(IpAllocation).where(IpAllocation.owner_uid == -1))


def test_a_name_taken_between_the_read_and_the_write_is_answered_as_before(engine, made):
    """A concurrent insert of the same name commits after the read: the one statement fails as a
    whole (nothing of it stays), and the usual insert answers that the instance exists."""
    name = f"race-{uuid.uuid4().hex[:6]}"
    made.append(name)
    _insert(engine, f"{name}-a")
    with _meanwhile(engine, lambda: _commit_instance(engine, f"{name}-b")) as raced, pytest.raises(AlreadyExists):
        _insert(engine, f"{name}-b")
    assert raced  # the one statement was tried, and met the other insert's name
    # what is left is the other insert's instance alone: no boot disk, address or Operation of this one
    assert _left(engine, f"{name}-b") == {"resources": 1, "addresses": 0, "operations": 0}


def test_a_full_queue_refuses_the_one_statement_insert_and_leaves_nothing(engine, made):
    name = f"full-{uuid.uuid4().hex[:6]}"
    made.append(name)
    _insert(engine, f"{name}-a")
    with Session(engine) as s:
        unfinished = s.scalar(select(func.count()).select_from(Operation).where(
            Operation.project == PROJECT, Operation.status.in_(UNFINISHED))) or 0
    with pytest.raises(ProjectRateLimited):
        _insert(engine, f"{name}-b", bound=unfinished)
    assert _left(engine, f"{name}-b") == {"resources": 0, "addresses": 0, "operations": 0}
    _insert(engine, f"{name}-b", bound=unfinished + 1)  # room: served, by one statement
    assert _left(engine, f"{name}-b") == {"resources": 2, "addresses": 1, "operations": 1}


# -- gcloud's default NIC: an ephemeral external address too -----------------------------------------


@pytest.fixture
def standard_tier(engine: Engine) -> Iterator[None]:
    """demo-project's default network tier STANDARD (an access config that names none takes it)."""
    with Session(engine) as s, s.begin():
        projects.update_settings(s, PROJECT, defaultNetworkTier="STANDARD")
    yield
    with Session(engine) as s, s.begin():
        projects.update_settings(s, PROJECT, defaultNetworkTier=None)


def _in_use(engine: Engine) -> float:
    with Session(engine) as s:
        return quotas.region_usage(s, PROJECT, "us-central1", ["IN_USE_ADDRESSES"])["IN_USE_ADDRESSES"]


def test_an_ephemeral_external_address_is_predicted_too_the_insert_still_two_statements(engine, made, standard_tier):
    """Its pool's highest address, the project's static addresses (for IN_USE_ADDRESSES) and its
    default tier come with the first read; the address goes in with the rows, as the internal one."""
    name = f"nat-{uuid.uuid4().hex[:6]}"
    made.append(name)
    _insert(engine, f"{name}-a", nic=EXTERNAL_NIC)
    in_use = _in_use(engine)
    with statements_sent(engine) as sent:
        op, status = _insert(engine, f"{name}-b", nic=EXTERNAL_NIC)
    assert op["status"] == "PENDING" and status == 0
    assert [q.split(" ", 2)[:2] for q in sent] == [["SELECT", "projects.id,"], ["WITH", "claimed"]], sent
    (internal_a, _), (nat_a, tier_a) = _address(engine, f"{name}-a"), _nat(engine, f"{name}-a")
    (internal_b, held_b), (nat_b, tier_b) = _address(engine, f"{name}-b"), _nat(engine, f"{name}-b")
    assert (internal_b, nat_b) == (internal_a + 1, nat_a + 1)  # what the usual allocations take next
    assert held_b == sorted([internal_b, nat_b])
    assert tier_a == tier_b == "STANDARD"
    assert _in_use(engine) == in_use + 1  # counted, as the usual allocation is


def test_an_external_address_taken_meanwhile_sends_the_insert_the_usual_way(engine, made):
    name = f"natx-{uuid.uuid4().hex[:6]}"
    made.append(name)
    _insert(engine, f"{name}-a", nic=EXTERNAL_NIC)
    internal, _ = _address(engine, f"{name}-a")
    nat, _ = _nat(engine, f"{name}-a")

    try:
        with _meanwhile(engine, lambda: _take_elsewhere(engine, EXTERNAL_POOL, nat + 1)) as raced:
            op, status = _insert(engine, f"{name}-b", nic=EXTERNAL_NIC)
        assert raced and status != 0  # tried first, answered by the usual transaction
        assert _address(engine, f"{name}-b")[0] == internal + 1  # the internal guess was right, but not taken alone
        assert _nat(engine, f"{name}-b") == (nat + 2, "PREMIUM")
        assert _left(engine, f"{name}-b") == {"resources": 2, "addresses": 2, "operations": 1}
        op, status = _insert(engine, f"{name}-c", nic=EXTERNAL_NIC)
        assert status == 0 and _nat(engine, f"{name}-c")[0] == nat + 3
    finally:
        with Session(engine) as s, s.begin():
            s.execute(delete(IpAllocation).where(IpAllocation.owner_uid == -1))


def _room_for_one_address(engine: Engine, static: str, status: str) -> tuple[float, str | None]:
    """IN_USE_ADDRESSES limited to the ephemeral addresses in use + 1, and a static external address
    ``static`` of the region in ``status``: the ephemeral count, and the limits to put back."""
    ephemeral = _in_use(engine)
    with Session(engine) as s, s.begin():
        project = s.scalar(select(Project).where(Project.name == PROJECT))
        before = project.quota_limits
        project.quota_limits = orjson.dumps({**orjson.loads(before or "{}"), "regions": {
            "us-central1": {"IN_USE_ADDRESSES": ephemeral + 1}}}).decode()
        store.new_resource(s, project=PROJECT, collection="addresses", scope="regions/us-central1",
                           name=static, kind="compute#address", subtype="EXTERNAL", status=status,
                           region="us-central1", body={"address": "203.0.113.9", "addressType": "EXTERNAL"})
    return ephemeral, before


def test_in_use_addresses_count_the_static_addresses_the_read_brought(engine, made):
    """IN_USE_ADDRESSES counts the project's static external addresses in use beside the ephemeral
    ones: with one in use and the limit at the ephemeral count + 1, the insert is refused and
    leaves nothing; without it, served in two statements."""
    name = f"natq-{uuid.uuid4().hex[:6]}"
    made.append(name)
    _, before = _room_for_one_address(engine, f"{name}-static", "IN_USE")
    try:
        with pytest.raises(QuotaExceeded):
            _insert(engine, f"{name}-b", nic=EXTERNAL_NIC)
        assert _left(engine, f"{name}-b") == {"resources": 0, "addresses": 0, "operations": 0}
        with Session(engine) as s, s.begin():
            s.execute(delete(Resource).where(Resource.name == f"{name}-static"))
        op, status = _insert(engine, f"{name}-b", nic=EXTERNAL_NIC)
        assert status == 0 and _left(engine, f"{name}-b") == {"resources": 2, "addresses": 2, "operations": 1}
    finally:
        with Session(engine) as s, s.begin():
            s.execute(delete(Resource).where(Resource.name == f"{name}-static"))
            s.scalar(select(Project).where(Project.name == PROJECT)).quota_limits = before


def test_usage_grown_since_the_read_sends_the_insert_the_usual_way_which_refuses_it(engine, made):
    """Another insert of the project commits between the read (which found room for one more
    instance) and the write: the write's gate finds the usage grown and fails the statement, the
    insert runs the usual way, and its check refuses. Without the gate both would be made, one
    past the limit."""
    name = f"gate-{uuid.uuid4().hex[:6]}"
    made.append(name)
    with Session(engine) as s, s.begin():
        now = quotas.region_usage(s, PROJECT, "us-central1", ["INSTANCES"])["INSTANCES"]
        project = s.scalar(select(Project).where(Project.name == PROJECT))
        before = project.quota_limits
        project.quota_limits = orjson.dumps({**orjson.loads(before or "{}"), "regions": {
            "us-central1": {"INSTANCES": now + 1}}}).decode()

    try:
        with _meanwhile(engine, lambda: _commit_instance(engine, f"{name}-other", subtype="e2-micro", vcpus=2)) \
                as raced, pytest.raises(QuotaExceeded):
            _insert(engine, f"{name}-b")
        assert raced  # the one statement was tried, after the other insert had committed
        assert _left(engine, f"{name}-b") == {"resources": 0, "addresses": 0, "operations": 0}
        with Session(engine) as s:
            assert quotas.region_usage(s, PROJECT, "us-central1", ["INSTANCES"])["INSTANCES"] == now + 1
    finally:
        with Session(engine) as s, s.begin():
            s.scalar(select(Project).where(Project.name == PROJECT)).quota_limits = before


def _in_use_meanwhile(engine: Engine, address: str) -> tuple[Callable[[], None], threading.Thread]:
    """An action for :func:`_meanwhile`: another transaction makes the static address ``address``
    IN_USE (a forwarding rule's) and returns once it is written; it commits half a second later."""
    written = threading.Event()

    def other() -> None:
        with Session(engine) as s, s.begin():
            s.execute(update(Resource).where(Resource.project == PROJECT, Resource.collection == "addresses",
                                             Resource.name == address).values(status="IN_USE"))
            written.set()
            time.sleep(0.5)

    thread = threading.Thread(target=other)

    def action() -> None:
        thread.start()
        assert written.wait(10)
    return action, thread


def test_a_static_address_going_in_use_meanwhile_is_seen_by_the_gate(engine, made):
    """A static external address goes IN_USE in another transaction, not yet committed, when the
    one statement is sent, with IN_USE_ADDRESSES room for one more: the gate waits for it (the
    address took the project's usage lock), finds it in use, and the usual way refuses. It took
    no lock before: the gate read the static addresses without it, and both were made."""
    name = f"natr-{uuid.uuid4().hex[:6]}"
    made.append(name)
    ephemeral, before = _room_for_one_address(engine, f"{name}-static", "RESERVED")
    action, other = _in_use_meanwhile(engine, f"{name}-static")
    try:
        with _meanwhile(engine, action) as raced, pytest.raises(QuotaExceeded):
            _insert(engine, f"{name}-b", nic=EXTERNAL_NIC)
        other.join()
        assert raced
        assert _left(engine, f"{name}-b") == {"resources": 0, "addresses": 0, "operations": 0}
        assert _in_use(engine) == ephemeral + 1
    finally:
        other.join()
        with Session(engine) as s, s.begin():
            s.execute(delete(Resource).where(Resource.name == f"{name}-static"))
            s.scalar(select(Project).where(Project.name == PROJECT)).quota_limits = before
