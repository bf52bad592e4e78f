"""PostgreSQL: a static external address going IN_USE counts in IN_USE_ADDRESSES beside the
ephemeral addresses' counter, and takes the project's usage lock as a counter's change does
(core.usage): a forwarding rule on a static address, or an instance's new access config, checks
the usage again after its write, and sees the ephemeral address another transaction was taking
meanwhile. It took no lock before, and read the usage without that address (addAccessConfig did
not check again at all): both were made, one past the limit. (The other way round, an instance
insert's gate waiting for the address: tests/core/test_one_statement_insert.py.)"""

from __future__ import annotations

import threading
import time

import orjson
import pytest
from sqlalchemy import Engine, delete, func, insert, select
from sqlalchemy.orm import Session

from core import quotas
from core.errors import QuotaExceeded
from core.models import IpAllocation, Project, Resource
from core.resources.context import Call
from core.services import addresses, calls, instances, load_balancing, topology
from tests.helpers.core import new_instance

PROJECT = "demo-project"
REGION = "us-central1"
ZONE = "us-central1-a"


@pytest.fixture
def engine(engine: Engine) -> Engine:
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite has one writer at a time: no transaction reads before another's commit and writes after it")
    return engine


def _run(engine: Engine, handler) -> None:
    with Session(engine, expire_on_commit=False) as s:
        call = Call(s, PROJECT, "test")
        calls.run(call, True, lambda: handler(call))


def _in_use(engine: Engine) -> float:
    with Session(engine) as s:
        return quotas.region_usage(s, PROJECT, REGION, ["IN_USE_ADDRESSES"])["IN_USE_ADDRESSES"]


def _rule(call: Call, static: str, ip: str, vm: str) -> None:
    scope = f"regions/{REGION}"
    load_balancing.insert_forwarding_rule(call, REGION, {
        "name": f"{static}-user", "IPAddress": f"{scope}/addresses/{static}", "IPProtocol": "TCP", "portRange": "80",
        "target": f"{scope}/targetPools/pool-1"})


def _access_config(call: Call, static: str, ip: str, vm: str) -> None:
    instances.add_access_config(call, topology.zone(call.session, PROJECT, ZONE), vm, "nic0",
                                {"type": "ONE_TO_ONE_NAT", "natIP": ip})


def _exists(engine: Engine, name: str) -> bool:
    with Session(engine) as s:
        return bool(s.scalar(select(func.count()).select_from(Resource).where(Resource.name == name)))


def _body(engine: Engine, name: str) -> dict:
    with Session(engine) as s:
        return orjson.loads(s.scalar(select(Resource.body).where(Resource.name == name)))


@pytest.mark.parametrize("user", [_rule, _access_config], ids=["forwarding-rule", "access-config"])
def test_a_static_address_going_in_use_sees_an_ephemeral_address_taken_meanwhile(engine, user):
    """With room for one more address in use, another transaction has written an ephemeral address
    (its usage lock held) and commits it half a second later; meanwhile a forwarding rule, or an
    instance's new access config, starts using a static address. Its check after the write waits
    for the other, sees its address and refuses; nothing of it is left."""
    scope = f"regions/{REGION}"
    static = f"static-{user.__name__.strip('_').replace('_', '-')}"
    _run(engine, lambda call: addresses.insert(call, scope, {"name": static}))
    with Session(engine) as s, s.begin():
        vm = new_instance(s, zone=ZONE)
    if not _exists(engine, "pool-1"):
        _run(engine, lambda call: load_balancing.insert_target_pool(call, REGION, {"name": "pool-1"}))
    in_use = _in_use(engine)
    with Session(engine) as s, s.begin():
        project = s.scalar(select(Project).where(Project.name == PROJECT))
        project.quota_limits = orjson.dumps({**orjson.loads(project.quota_limits or "{}"), "regions": {
            REGION: {"IN_USE_ADDRESSES": in_use + 1}}}).decode()
    written = threading.Event()

    def other() -> None:  # an instance's ephemeral address, committed half a second after it is written
        with Session(engine) as s, s.begin():
            s.execute(insert(IpAllocation).values(pool=f"external:{REGION}", address=3405803777, owner_uid=-1,
                                                  project=PROJECT))
            written.set()
            time.sleep(0.5)

    thread = threading.Thread(target=other)
    thread.start()
    try:
        assert written.wait(10)
        with pytest.raises(QuotaExceeded):
            _run(engine, lambda call: user(call, static, _body(engine, static)["address"], vm))
        thread.join()
        assert _in_use(engine) == in_use + 1
        assert not _exists(engine, f"{static}-user") and _body(engine, static)["status"] == "RESERVED"
        assert "accessConfigs" not in _body(engine, vm)["networkInterfaces"][0]
    finally:
        thread.join()
        with Session(engine) as s, s.begin():
            s.execute(delete(IpAllocation).where(IpAllocation.owner_uid == -1))
