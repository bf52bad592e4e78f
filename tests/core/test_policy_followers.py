"""A resource policy's followers (core.services.resource_policies.policies.followers), as the
scheduler's rounds, a placement policy's room and a policy's delete read them, on both databases:
the disks (in any zone of the policy's region, or regional) and instances whose ``resourcePolicies``
name it, by collection and name, and no other; and, on SQLite's own plans, by reads of the policy's
terms that never walk the project's disks or instances. They tested every disk and instance body
of the project for the policy's link. The same for the snapshots a snapshot schedule's retention
reads (scheduler.policy_snapshots): those whose ``sourceSnapshotSchedulePolicyId`` is its id."""

from __future__ import annotations

import uuid

import pytest

from core.resources import store
from core.resources.context import Call
from core.services import disks, region_disks, resource_policies, topology
from core.services.resource_policies.policies import COLLECTION, followers
from core.services.resource_policies.scheduler import policy_snapshots
from tests.helpers.core import new_instance
from tests.helpers.databases import sqlite_reads

PROJECT = "demo-project"
REGION = "us-central1"
SCHEDULE = {"schedule": {"dailySchedule": {"daysInCycle": 1, "startTime": "04:00"}},
            "retentionPolicy": {"maxRetentionDays": 3}}


def _call(session) -> Call:
    return Call(session, PROJECT, "test")


def _policy(session, region: str = REGION, **kind) -> tuple[object, str]:
    name = f"pol-{uuid.uuid4().hex[:8]}"
    resource_policies.insert(_call(session), region, {"name": name, **(kind or {"snapshotSchedulePolicy": SCHEDULE})})
    session.flush()
    res = store.find(session, PROJECT, COLLECTION, f"regions/{region}", name)
    return res, f"regions/{region}/resourcePolicies/{name}"


def _disk(session, zone: str, *policies: str) -> str:
    name = f"disk-{uuid.uuid4().hex[:8]}"
    disks.insert(_call(session), topology.zone(session, PROJECT, zone),
                 {"name": name, "sizeGb": "10", **({"resourcePolicies": list(policies)} if policies else {})})
    session.flush()
    return name


def _instance(session, zone: str, *policies: str) -> str:
    return new_instance(session, zone=zone, resourcePolicies=list(policies))


def _named(rows) -> list[tuple[str, str]]:
    return [(row.collection, row.name) for row in rows]


def test_a_policys_followers_in_its_regions_zones_and_the_region(session):
    policy, link = _policy(session)
    other, other_link = _policy(session)
    a, b = _disk(session, "us-central1-a", link), _disk(session, "us-central1-b", link)
    _disk(session, "us-central1-a")  # follows none
    only_other = _disk(session, "us-central1-c", other_link)
    regional = f"rdisk-{uuid.uuid4().hex[:8]}"
    region_disks.insert(_call(session), REGION, {
        "name": regional, "sizeGb": "200", "resourcePolicies": [link],
        "replicaZones": [f"zones/{REGION}-a", f"zones/{REGION}-b"]})
    session.flush()
    assert _named(followers(session, policy)) == sorted([("disks", a), ("disks", b), ("disks", regional)])
    assert _named(followers(session, other, ("disks",))) == [("disks", only_other)]

    resource_policies.remove(_call(session), "disks", "zones/us-central1-b", b, {"resourcePolicies": [link]})
    resource_policies.add(_call(session), "disks", "zones/us-central1-b", REGION, b, {"resourcePolicies": [other_link]})
    session.flush()  # each update moves the disk's terms: it follows the other policy now
    assert _named(followers(session, policy)) == sorted([("disks", a), ("disks", regional)])
    assert _named(followers(session, other)) == sorted([("disks", b), ("disks", only_other)])


def test_instances_follow_an_instance_schedule(session):
    stop = {"instanceSchedulePolicy": {"vmStopSchedule": {"schedule": "0 19 * * *"}, "timeZone": "UTC"}}
    policy, link = _policy(session, **stop)
    vms = [_instance(session, "us-central1-a", link), _instance(session, "us-central1-b", link)]
    _instance(session, "us-central1-a")
    assert _named(followers(session, policy, ("instances",))) == sorted(("instances", vm) for vm in vms)
    assert followers(session, policy, ("disks",)) == []  # their boot disks follow nothing


def test_the_reads_never_walk_the_projects_disks(engine, session):
    if engine.dialect.name != "sqlite":
        pytest.skip("SQLite's plans")
    policy, link = _policy(session)
    _disk(session, "us-central1-a", link)
    _disk(session, "us-central1-b")
    found: list = []
    plans, reads = sqlite_reads(session, lambda: found.extend(followers(session, policy)))
    assert len(found) == 1 and reads, plans
    # the followers by primary key; their terms by the terms index, one range per (collection, scope)
    assert all(line.startswith("SEARCH resources USING INTEGER PRIMARY KEY") for line in reads), plans
    assert any(line.startswith("SEARCH resource_terms USING ") and "ix_resource_term_list" in line
               and "field=? AND value=?" in line for plan in plans for line in plan), plans


def _snapshot(session, **body) -> str:
    name = f"snap-{uuid.uuid4().hex[:8]}"
    store.new_resource(session, project=PROJECT, collection="snapshots", scope="global", name=name,
                       kind="compute#snapshot", body={"name": name, "status": "READY", **body})
    session.flush()
    return name


def test_a_schedules_snapshots_are_those_of_its_id(engine, session):
    policy, _ = _policy(session)
    other, _ = _policy(session)
    mine = [_snapshot(session, autoCreated=True, sourceSnapshotSchedulePolicyId=str(policy.uid)) for _ in range(2)]
    _snapshot(session, autoCreated=True, sourceSnapshotSchedulePolicyId=str(other.uid))
    _snapshot(session, description=f"made by hand, like {policy.uid}")
    assert [s.name for s in policy_snapshots(session, policy)] == mine  # in the order they were made
    if engine.dialect.name != "sqlite":
        return
    plans, reads = sqlite_reads(session, lambda: policy_snapshots(session, policy))
    assert reads and all(line.startswith("SEARCH resources USING INTEGER PRIMARY KEY") for line in reads), plans
