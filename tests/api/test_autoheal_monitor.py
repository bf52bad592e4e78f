"""The autohealing monitor's round (core.services.instance_group_managers.monitor), run by the test
against a ``gstack serve`` (SQLite and PostgreSQL) whose own monitor is off: what it queues, and
that the server's workers then heal the group.

A round reads only the suspects of each group's zones (stopped instances, failing checks): a
stopped VM of the zone that is no member, or a failing one too young for the group's
``initialDelaySec``, queues nothing; a member stopped behind the group's back, or failing its checks
once old enough, queues a reconcile that makes it again.
"""

from __future__ import annotations

import time

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import sessionmaker

from core.jobs.claims import UNFINISHED
from core.models import Operation
from core.services.instance_group_managers.monitor import AutohealMonitor
from core.services.instance_group_managers.reconcile import RECONCILE
from tests.conftest import BACKENDS, PROJECT, ZONE, running_server, unique, wait_op
from tests.helpers.managed_groups import create, delete, get, managed, managers, wait_stable
from tests.helpers.networks import done


@pytest.fixture(scope="module", params=BACKENDS)
def srv(request):
    with running_server(request.param, GSTACK_AUTOHEAL_INTERVAL="0") as server:
        yield server


@pytest.fixture
def monitor(srv):
    engine = srv.engine()
    yield AutohealMonitor(sessionmaker(bind=engine), 2.0)
    engine.dispose()


def _ids(gce, name: str) -> dict[str, str]:
    return {i["name"]: i.get("id", "") for i in managed(gce, name)}


def _healed(gce, name: str, member: str, old_id: str) -> None:
    """The server's workers run the queued reconcile: the member is made again, RUNNING."""
    deadline = time.monotonic() + 90
    while _ids(gce, name).get(member) in ("", old_id) or not get(gce, name)["status"]["isStable"]:
        assert time.monotonic() < deadline, (get(gce, name), managed(gce, name))
        time.sleep(0.2)
    assert gce.instances().get(project=PROJECT, zone=ZONE, instance=member).execute()["status"] == "RUNNING"


def _reconciled(srv, group_id: int, timeout: float = 60) -> None:
    """Until no reconcile of the group is queued or running (its Operations are the system's, never
    listed: read from the server's database)."""
    engine = srv.engine()
    try:
        deadline = time.monotonic() + timeout
        while True:
            with engine.connect() as conn:
                left = conn.scalar(select(func.count()).select_from(Operation).where(
                    Operation.target_id == group_id, Operation.job == RECONCILE, Operation.status.in_(UNFINISHED)))
            if not left:
                return
            assert time.monotonic() < deadline, f"{left} reconcile runs left"
            time.sleep(0.1)
    finally:
        engine.dispose()


def _stop(gce, instance: str) -> None:
    done = wait_op(gce, gce.instances().stop(project=PROJECT, zone=ZONE, instance=instance).execute())
    assert "error" not in done, done


def test_a_round_queues_only_groups_with_a_stopped_member(srv, monitor):
    gce = srv.gce()
    name, _ = create(gce, 2)
    wait_stable(gce, name)
    first = _ids(gce, name)
    outsider = unique("outsider")
    op = wait_op(gce, gce.instances().insert(project=PROJECT, zone=ZONE, body={
        "name": outsider, "machineType": f"zones/{ZONE}/machineTypes/e2-micro",
        "disks": [{"boot": True, "autoDelete": True, "initializeParams": {
            "sourceImage": "projects/debian-cloud/global/images/family/debian-12"}}],
        "networkInterfaces": [{"network": "global/networks/default"}]}).execute())
    assert "error" not in op, op
    _stop(gce, outsider)
    assert name not in monitor.run_once()  # a stopped VM of the zone, no member: nothing to heal

    member = sorted(first)[0]
    _stop(gce, member)
    assert name in monitor.run_once()
    _healed(gce, name, member, first[member])
    assert name not in monitor.run_once()
    wait_op(gce, gce.instances().delete(project=PROJECT, zone=ZONE, instance=outsider).execute())
    delete(gce, name)


def test_a_round_heals_a_member_failing_its_checks_once_old_enough(srv, monitor):
    gce = srv.gce()
    hc = unique("hc")
    done(gce, gce.healthChecks().insert(project=PROJECT, body={"name": hc, "type": "TCP", "tcpHealthCheck": {"port": 80}}))
    name, _ = create(gce, 2)
    wait_stable(gce, name)
    first = _ids(gce, name)
    member = sorted(first)[0]

    def health(state: str) -> None:
        srv.admin("health", "set", "--project", PROJECT, "--zone", ZONE, member, state)

    def policy(delay: int) -> None:
        """Set the policy, and let the reconcile its patch queued end before the member fails: that
        run would heal it itself, and no other comes (the server's monitor is off)."""
        op = managers(gce).patch(project=PROJECT, zone=ZONE, instanceGroupManager=name, body={
            "autoHealingPolicies": [{"healthCheck": f"global/healthChecks/{hc}", "initialDelaySec": delay}]}).execute()
        assert op["status"] == "DONE", op
        _reconciled(srv, int(get(gce, name)["id"]))

    health("UNHEALTHY")
    assert name not in monitor.run_once()  # no autohealing policy: a failing check is no reason
    health("HEALTHY")
    policy(3600)
    health("UNHEALTHY")
    assert name not in monitor.run_once()  # younger than initialDelaySec
    health("HEALTHY")
    policy(0)
    health("UNHEALTHY")
    assert name in monitor.run_once()
    _healed(gce, name, member, first[member])
    assert name not in monitor.run_once()  # the new instance serves
    delete(gce, name)
