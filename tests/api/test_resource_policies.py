"""resourcePolicies against ``gstack serve`` (SQLite and PostgreSQL) with google-api-python-client:
snapshot schedules that snapshot and retain on time, instance schedules that stop and start VMs,
group placement policies stored, disks/instances add/removeResourcePolicies, and bad input refused
with GCE's errors and nothing changed.

Time runs through ``gstack admin resource-policies run --at T`` (a scheduler round as if it were T),
so a week of schedules takes seconds. Schedules are set twelve hours (snapshots) or six hours
(instances) away from the wall clock, so the server's own round at the wall clock never acts on them
during a test.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import time

from sqlalchemy import select

from core.models import Resource
from core.services.resource_policies.policies import STATE
from tests.conftest import PROJECT, ZONE, unique, wait_op
from tests.helpers.compute import disk_link, expect_error, link, make_disk

REGION = "us-central1"
FAMILY = "projects/debian-cloud/global/images/family/debian-12"
DAY = 86400


def policy_link(server, name: str, region: str = REGION) -> str:
    return link(server, f"projects/{PROJECT}/regions/{region}/resourcePolicies/{name}")


def policy_path(name: str, region: str = REGION) -> str:
    return f"projects/{PROJECT}/regions/{region}/resourcePolicies/{name}"


def make_policy(gce, name: str, region: str = REGION, **fields) -> dict:
    op = gce.resourcePolicies().insert(project=PROJECT, region=region, body={"name": name, **fields}).execute()
    assert op["operationType"] == "insert" and op["status"] == "DONE", op
    return gce.resourcePolicies().get(project=PROJECT, region=region, resourcePolicy=name).execute()


def away_hour(hours: int) -> int:
    return (dt.datetime.now(dt.UTC).hour + hours) % 24


def next_at(hour: int, minute: int = 1) -> dt.datetime:
    """The next time it is hour:minute UTC."""
    now = dt.datetime.now(dt.UTC)
    at = now.replace(hour=hour, minute=minute, second=0, microsecond=0)
    return at if at > now else at + dt.timedelta(days=1)


def run_at(server, at: dt.datetime) -> list[str]:
    out = server.admin("resource-policies", "run", "--at", at.isoformat().replace("+00:00", "Z")).stdout
    return [line for line in out.splitlines() if line]


def taken(server, name: str) -> set[str]:
    """The ids of the policy's snapshots whose round's instant its private state records (rounds run
    ``--at`` a time other than the wall clock: retention ages those snapshots from it)."""
    engine = server.engine()
    try:
        with engine.connect() as conn:
            body = conn.scalar(select(Resource.body).where(
                Resource.project == PROJECT, Resource.collection == STATE, Resource.name == name))
    finally:
        engine.dispose()
    return set(json.loads(body).get("taken", {}))


def scheduled_snapshots(gce, policy: dict) -> list[dict]:
    items = gce.snapshots().list(project=PROJECT).execute().get("items", [])
    return [s for s in items if s.get("sourceSnapshotSchedulePolicyId") == policy["id"]]


def wait_ready(gce, names: list[str]) -> None:
    for _ in range(100):
        snaps = {s["name"]: s for s in gce.snapshots().list(project=PROJECT).execute().get("items", [])}
        if all(snaps.get(n, {}).get("status") == "READY" for n in names):
            return
        time.sleep(0.1)
    raise AssertionError(f"snapshots {names} never READY")


def daily_policy(hour: int, days: int = 2, **props) -> dict:
    return {"snapshotSchedulePolicy": {
        "schedule": {"dailySchedule": {"daysInCycle": 1, "startTime": f"{hour:02d}:00"}},
        "retentionPolicy": {"maxRetentionDays": days, "onSourceDiskDelete": "APPLY_RETENTION_POLICY"},
        **({"snapshotProperties": props} if props else {})}}


def test_snapshot_schedule_snapshots_and_retains(server, gce):
    hour = away_hour(12)
    name = unique("sched")
    policy = make_policy(gce, name, description="nightly", **daily_policy(
        hour, labels={"made-by": "schedule"}, storageLocations=["us-central1"], guestFlush=False))
    assert policy["kind"] == "compute#resourcePolicy" and policy["status"] == "READY"
    assert policy["selfLink"] == policy_link(server, name)
    assert policy["region"] == link(server, f"projects/{PROJECT}/regions/{REGION}")
    assert policy["description"] == "nightly"
    daily = policy["snapshotSchedulePolicy"]["schedule"]["dailySchedule"]
    assert daily == {"daysInCycle": 1, "startTime": f"{hour:02d}:00", "duration": "PT14400S"}

    disk = make_disk(gce, unique("scheddisk"), sizeGb="10")
    op = wait_op(gce, gce.disks().addResourcePolicies(project=PROJECT, zone=ZONE, disk=disk["name"], body={
        "resourcePolicies": [policy_link(server, name)]}).execute())
    assert op["operationType"] == "addResourcePolicies" and op["targetLink"] == disk_link(server, disk["name"])
    disk = gce.disks().get(project=PROJECT, zone=ZONE, disk=disk["name"]).execute()
    assert disk["resourcePolicies"] == [policy_link(server, name)]

    first_at = next_at(hour)
    assert run_at(server, first_at - dt.timedelta(minutes=2)) == [] or not scheduled_snapshots(gce, policy)
    assert scheduled_snapshots(gce, policy) == []  # the slot has not come yet
    lines = run_at(server, first_at)
    made = [s["name"] for s in scheduled_snapshots(gce, policy)]
    assert len(made) == 1 and any(made[0] in line for line in lines), lines
    stamp = first_at.strftime("%Y%m%d%H%M%S")
    assert re.fullmatch(rf"{disk['name']}-{ZONE}-{stamp}-[a-z0-9]{{8}}", made[0])
    wait_ready(gce, made)
    snap = gce.snapshots().get(project=PROJECT, snapshot=made[0]).execute()
    assert snap["autoCreated"] is True
    assert snap["sourceSnapshotSchedulePolicy"] == policy_link(server, name)
    assert snap["sourceDisk"] == disk_link(server, disk["name"])
    assert snap["labels"] == {"made-by": "schedule"} and snap["storageLocations"] == ["us-central1"]

    run_at(server, first_at + dt.timedelta(hours=1))  # the same slot: nothing more
    assert len(scheduled_snapshots(gce, policy)) == 1
    run_at(server, first_at + dt.timedelta(days=1))
    second = [s["name"] for s in scheduled_snapshots(gce, policy)]
    assert len(second) == 2 and made[0] in second
    wait_ready(gce, second)
    # Three days on, the first is older than the two days kept: retention deletes it (the second,
    # two days old, stays), and the day's snapshot is taken.
    lines = run_at(server, first_at + dt.timedelta(days=3))
    left = {s["name"] for s in scheduled_snapshots(gce, policy)}
    assert made[0] not in left and len(left) == 2 and set(second) - set(made) < left, lines
    assert any(f"snapshot {made[0]} deleted" in line for line in lines), lines

    # In use: the policy cannot be deleted until the disk lets it go.
    expect_error(gce.resourcePolicies().delete(project=PROJECT, region=REGION, resourcePolicy=name), 400,
                 "resourceInUseByAnotherResource",
                 f"The resource_policy resource '{policy_path(name)}' is already being used by "
                 f"'projects/{PROJECT}/zones/{ZONE}/disks/{disk['name']}'")
    wait_op(gce, gce.disks().removeResourcePolicies(project=PROJECT, zone=ZONE, disk=disk["name"], body={
        "resourcePolicies": [policy_link(server, name)]}).execute())
    assert "resourcePolicies" not in gce.disks().get(project=PROJECT, zone=ZONE, disk=disk["name"]).execute()
    run_at(server, first_at + dt.timedelta(days=4))  # not followed any more: no snapshot, retention goes on
    left = scheduled_snapshots(gce, policy)
    assert len(left) == 1 and taken(server, name) == {left[0]["id"]}  # the deleted ones' instants went too
    wait_op(gce, gce.snapshots().delete(project=PROJECT, snapshot=left[0]["name"]).execute())
    run_at(server, first_at + dt.timedelta(days=5))  # its owner deleted the last one: nothing left to age
    assert scheduled_snapshots(gce, policy) == [] and taken(server, name) == set()
    op = gce.resourcePolicies().delete(project=PROJECT, region=REGION, resourcePolicy=name).execute()
    assert op["operationType"] == "delete" and op["status"] == "DONE"
    expect_error(gce.resourcePolicies().get(project=PROJECT, region=REGION, resourcePolicy=name), 404, "notFound",
                 f"The resource '{policy_path(name)}' was not found")


def test_hourly_and_weekly_slots_and_disk_insert(server, gce):
    hour = away_hour(12)
    name = unique("hourly")
    make_policy(gce, name, snapshotSchedulePolicy={
        "schedule": {"hourlySchedule": {"hoursInCycle": 6, "startTime": f"{hour:02d}:00"}}})
    disk = make_disk(gce, unique("hdisk"), sizeGb="10", resourcePolicies=[f"regions/{REGION}/resourcePolicies/{name}"])
    assert disk["resourcePolicies"] == [policy_link(server, name)]
    policy = gce.resourcePolicies().get(project=PROJECT, region=REGION, resourcePolicy=name).execute()
    start = next_at(hour)
    run_at(server, start)
    run_at(server, start + dt.timedelta(hours=3))  # within the same six-hour cycle
    assert len(scheduled_snapshots(gce, policy)) == 1
    run_at(server, start + dt.timedelta(hours=6))
    assert len(scheduled_snapshots(gce, policy)) == 2

    weekly = unique("weekly")
    day = (dt.datetime.now(dt.UTC) + dt.timedelta(days=2)).strftime("%A").upper()
    make_policy(gce, weekly, snapshotSchedulePolicy={"schedule": {"weeklySchedule": {"dayOfWeeks": [
        {"day": day, "startTime": "10:00"}]}}})
    wdisk = make_disk(gce, unique("wdisk"), sizeGb="10", resourcePolicies=[weekly])
    wpolicy = gce.resourcePolicies().get(project=PROJECT, region=REGION, resourcePolicy=weekly).execute()
    the_day = (dt.datetime.now(dt.UTC) + dt.timedelta(days=2)).replace(hour=10, minute=5, second=0, microsecond=0)
    run_at(server, the_day - dt.timedelta(days=1))
    assert scheduled_snapshots(gce, wpolicy) == []
    run_at(server, the_day)
    assert [s["sourceDiskId"] for s in scheduled_snapshots(gce, wpolicy)] == [wdisk["id"]]


def test_instance_schedule_stops_and_starts(server, gce):
    stop_hour, start_hour = away_hour(6), away_hour(8)
    name = unique("isched")
    policy = make_policy(gce, name, instanceSchedulePolicy={
        "vmStartSchedule": {"schedule": f"0 {start_hour} * * *"},
        "vmStopSchedule": {"schedule": f"30 {stop_hour} * * *"}, "timeZone": "UTC"})
    assert policy["instanceSchedulePolicy"]["timeZone"] == "UTC"
    vm = make_vm(gce, unique("schedvm"))["name"]
    op = wait_op(gce, gce.instances().addResourcePolicies(project=PROJECT, zone=ZONE, instance=vm, body={
        "resourcePolicies": [policy_link(server, name)]}).execute())
    assert op["operationType"] == "addResourcePolicies"
    assert gce.instances().get(project=PROJECT, zone=ZONE, instance=vm).execute()["resourcePolicies"] == [
        policy_link(server, name)]

    stop_at = next_at(stop_hour, 31)
    lines = run_at(server, stop_at)
    assert any("stop" in line and vm in line for line in lines), lines
    wait_status(gce, vm, "TERMINATED")
    status = gce.resourcePolicies().get(project=PROJECT, region=REGION, resourcePolicy=name).execute()[
        "resourceStatus"]["instanceSchedulePolicy"]
    assert dt.datetime.fromisoformat(status["lastRunStartTime"]) == stop_at.replace(minute=30)
    assert "nextRunStartTime" in status
    run_at(server, stop_at + dt.timedelta(minutes=10))  # nothing fired since: it stays stopped
    wait_status(gce, vm, "TERMINATED")
    run_at(server, stop_at + dt.timedelta(hours=2))  # the start time came round
    wait_status(gce, vm, "RUNNING")

    expect_error(gce.instances().addResourcePolicies(project=PROJECT, zone=ZONE, instance=vm, body={
        "resourcePolicies": [policy_link(server, name)]}), 400, "invalid")
    expect_error(gce.resourcePolicies().delete(project=PROJECT, region=REGION, resourcePolicy=name), 400,
                 "resourceInUseByAnotherResource")
    wait_op(gce, gce.instances().removeResourcePolicies(project=PROJECT, zone=ZONE, instance=vm, body={
        "resourcePolicies": [policy_link(server, name)]}).execute())
    wait_op(gce, gce.instances().delete(project=PROJECT, zone=ZONE, instance=vm).execute())
    gce.resourcePolicies().delete(project=PROJECT, region=REGION, resourcePolicy=name).execute()


def vm_body(name: str) -> dict:
    return {"name": name, "machineType": f"zones/{ZONE}/machineTypes/e2-micro",
            "disks": [{"boot": True, "autoDelete": True, "initializeParams": {"sourceImage": FAMILY}}],
            "networkInterfaces": [{"network": "global/networks/default"}]}


def make_vm(gce, name: str, **fields) -> dict:
    op = wait_op(gce, gce.instances().insert(project=PROJECT, zone=ZONE, body={**vm_body(name), **fields}).execute())
    assert "error" not in op, op
    return gce.instances().get(project=PROJECT, zone=ZONE, instance=name).execute()


def wait_status(gce, vm: str, status: str) -> None:
    for _ in range(150):
        if gce.instances().get(project=PROJECT, zone=ZONE, instance=vm).execute()["status"] == status:
            return
        time.sleep(0.1)
    raise AssertionError(f"{vm} never {status}")


def test_placement_policy_list_patch_aggregated(server, gce):
    name = unique("spread")
    policy = make_policy(gce, name, groupPlacementPolicy={"availabilityDomainCount": 3, "vmCount": 6})
    assert policy["groupPlacementPolicy"] == {"availabilityDomainCount": 3, "vmCount": 6}
    listed = gce.resourcePolicies().list(project=PROJECT, region=REGION, filter=f"name eq {name}").execute()
    assert listed["kind"] == "compute#resourcePolicyList" and [p["name"] for p in listed["items"]] == [name]
    agg = gce.resourcePolicies().aggregatedList(project=PROJECT).execute()
    assert agg["kind"] == "compute#resourcePolicyAggregatedList"
    assert name in [p["name"] for p in agg["items"][f"regions/{REGION}"]["resourcePolicies"]]

    # vmCount is the most instances the policy takes: a third one is refused, at insert or added later.
    pair = unique("pair")
    make_policy(gce, pair, groupPlacementPolicy={"vmCount": 2, "collocation": "COLLOCATED"})
    vms = [make_vm(gce, unique("pvm"), resourcePolicies=[policy_link(server, pair)]) for _ in range(2)]
    assert all(vm["resourcePolicies"] == [policy_link(server, pair)] for vm in vms)
    third = unique("pvm")
    err = expect_error(gce.instances().insert(project=PROJECT, zone=ZONE, body={
        **vm_body(third), "resourcePolicies": [pair]}), 400, "invalid")
    assert "vmCount" in err["message"]
    expect_error(gce.instances().get(project=PROJECT, zone=ZONE, instance=third), 404, "notFound")
    loose = make_vm(gce, unique("pvm"))
    expect_error(gce.instances().addResourcePolicies(project=PROJECT, zone=ZONE, instance=loose["name"], body={
        "resourcePolicies": [policy_link(server, pair)]}), 400, "invalid")
    for vm in [*vms, loose]:
        wait_op(gce, gce.instances().delete(project=PROJECT, zone=ZONE, instance=vm["name"]).execute())
    gce.resourcePolicies().delete(project=PROJECT, region=REGION, resourcePolicy=pair).execute()

    sched = unique("patched")
    make_policy(gce, sched, **daily_policy(4, days=7))
    op = gce.resourcePolicies().patch(project=PROJECT, region=REGION, resourcePolicy=sched, body={
        "snapshotSchedulePolicy": {"retentionPolicy": {"maxRetentionDays": 14}}}).execute()
    assert op["operationType"] == "patch" and op["status"] == "DONE"
    after = gce.resourcePolicies().get(project=PROJECT, region=REGION, resourcePolicy=sched).execute()
    assert after["snapshotSchedulePolicy"]["retentionPolicy"]["maxRetentionDays"] == 14
    assert after["snapshotSchedulePolicy"]["schedule"]["dailySchedule"]["startTime"] == "04:00"
    expect_error(gce.resourcePolicies().patch(project=PROJECT, region=REGION, resourcePolicy=sched, body={
        "instanceSchedulePolicy": {"vmStopSchedule": {"schedule": "0 1 * * *"}}}), 400, "invalid")
    expect_error(gce.resourcePolicies().patch(project=PROJECT, region=REGION, resourcePolicy=sched, body={
        "snapshotSchedulePolicy": {"retentionPolicy": {"maxRetentionDays": 0}}}), 400, "invalid")
    assert gce.resourcePolicies().get(project=PROJECT, region=REGION, resourcePolicy=sched).execute() == after


def test_bad_input_changes_nothing(server, gce):
    def refused(body: dict, field_hint: str) -> None:
        name = unique("bad")
        err = expect_error(gce.resourcePolicies().insert(project=PROJECT, region=REGION, body={"name": name, **body}),
                           400, "invalid")
        assert field_hint in err["message"], err
        expect_error(gce.resourcePolicies().get(project=PROJECT, region=REGION, resourcePolicy=name), 404,
                     "notFound")

    refused({}, "Exactly one of")
    expect_error(gce.resourcePolicies().insert(project=PROJECT, region=REGION, body=daily_policy(4)), 400, "required",
                 "Required field 'resource.name' not specified")
    refused({"snapshotSchedulePolicy": {"schedule": {"dailySchedule": {"startTime": "04:30"}}}}, "startTime")
    refused({"snapshotSchedulePolicy": {"schedule": {"dailySchedule": {"startTime": "04:00"},
                                                     "hourlySchedule": {"hoursInCycle": 2, "startTime": "01:00"}}}},
            "Exactly one of hourlySchedule")
    refused({"snapshotSchedulePolicy": {"schedule": {"hourlySchedule": {"hoursInCycle": 30, "startTime": "01:00"}}}},
            "hoursInCycle")
    refused({"snapshotSchedulePolicy": {"schedule": {"weeklySchedule": {"dayOfWeeks": [
        {"day": "FUNDAY", "startTime": "01:00"}]}}}}, "day")
    refused({**daily_policy(4, days=0)}, "maxRetentionDays")
    refused({"instanceSchedulePolicy": {"vmStartSchedule": {"schedule": "61 * * * *"}}}, "vmStartSchedule")
    refused({"instanceSchedulePolicy": {"vmStartSchedule": {"schedule": "0 8 * * *"}, "timeZone": "Mars/Base"}},
            "timeZone")
    refused({"instanceSchedulePolicy": {}}, "At least one of")
    refused({"groupPlacementPolicy": {"collocation": "COLLOCATED", "availabilityDomainCount": 2}},
            "availabilityDomainCount")
    refused({**daily_policy(4), "groupPlacementPolicy": {"vmCount": 2}}, "Exactly one of")
    expect_error(gce.resourcePolicies().insert(project=PROJECT, region="no-such-region", body={
        "name": unique("r"), **daily_policy(4)}), 404, "notFound")

    name = unique("taken")
    make_policy(gce, name, **daily_policy(4))
    expect_error(gce.resourcePolicies().insert(project=PROJECT, region=REGION, body={"name": name, **daily_policy(8)}),
                 409, "alreadyExists", f"The resource '{policy_path(name)}' already exists")

    disk = make_disk(gce, unique("baddisk"), sizeGb="10")
    placement = unique("place")
    make_policy(gce, placement, groupPlacementPolicy={"vmCount": 2})
    other_region = unique("eu")
    make_policy(gce, other_region, region="europe-west1", **daily_policy(4))

    def attach(values: list, status: int, reason: str) -> dict:
        return expect_error(gce.disks().addResourcePolicies(project=PROJECT, zone=ZONE, disk=disk["name"], body={
            "resourcePolicies": values}), status, reason)

    attach([policy_link(server, "no-such-policy")], 404, "notFound")
    assert "same region" in attach([policy_link(server, other_region, "europe-west1")], 400, "invalid")["message"]
    assert "cannot be applied to a disk" in attach([policy_link(server, placement)], 400, "invalid")["message"]
    assert "only specify one" in attach([policy_link(server, name), policy_link(server, placement)], 400,
                                        "invalid")["message"]
    attach([], 400, "invalid")
    expect_error(gce.disks().removeResourcePolicies(project=PROJECT, zone=ZONE, disk=disk["name"], body={
        "resourcePolicies": [policy_link(server, name)]}), 400, "invalid")
    assert "resourcePolicies" not in gce.disks().get(project=PROJECT, zone=ZONE, disk=disk["name"]).execute()
    expect_error(gce.disks().insert(project=PROJECT, zone=ZONE, body={
        "name": unique("d"), "sizeGb": "10", "resourcePolicies": [policy_link(server, placement)]}), 400, "invalid")


def test_source_disk_delete_keeps_or_retires_snapshots(server, gce):
    hour = away_hour(12)
    start = next_at(hour)
    kept = {}
    for rule in ("KEEP_AUTO_SNAPSHOTS", "APPLY_RETENTION_POLICY"):
        name = unique("ondel")
        make_policy(gce, name, snapshotSchedulePolicy={
            "schedule": {"dailySchedule": {"daysInCycle": 1, "startTime": f"{hour:02d}:00"}},
            "retentionPolicy": {"maxRetentionDays": 1, "onSourceDiskDelete": rule}})
        disk = make_disk(gce, unique("ondisk"), sizeGb="10", resourcePolicies=[name])
        policy = gce.resourcePolicies().get(project=PROJECT, region=REGION, resourcePolicy=name).execute()
        run_at(server, start)
        snaps = [s["name"] for s in scheduled_snapshots(gce, policy)]
        assert len(snaps) == 1
        wait_ready(gce, snaps)
        wait_op(gce, gce.disks().delete(project=PROJECT, zone=ZONE, disk=disk["name"]).execute())
        run_at(server, start + dt.timedelta(days=3))
        kept[rule] = [s["name"] for s in scheduled_snapshots(gce, policy)]
    assert len(kept["KEEP_AUTO_SNAPSHOTS"]) == 1  # the disk is gone: its snapshots stay
    assert kept["APPLY_RETENTION_POLICY"] == []  # retention goes on without the disk
