"""The real gcloud CLI: snapshot schedules on disks, instance schedules on instances, and the
policies deleted in dependency order (refused while a disk or an instance follows them)."""

from __future__ import annotations

import datetime as dt

from tests.conftest import PROJECT, unique
from tests.e2e.conftest import describe

REGION = "us-central1"
ZONE = "us-central1-a"


def test_snapshot_schedule_flow(gcloud, server):
    policy, disk = unique("gsched"), unique("gsdisk")
    hour = (dt.datetime.now(dt.UTC).hour + 12) % 24
    gcloud("compute", "resource-policies", "create", "snapshot-schedule", policy, "--region", REGION,
           "--max-retention-days", "7", "--start-time", f"{hour:02d}:00", "--daily-schedule",
           "--on-source-disk-delete", "apply-retention-policy", "--snapshot-labels", "env=test",
           "--storage-location", REGION)
    got = describe(gcloud, "compute", "resource-policies", "describe", policy, "--region", REGION)
    snap = got["snapshotSchedulePolicy"]
    assert snap["schedule"]["dailySchedule"]["startTime"] == f"{hour:02d}:00"
    assert snap["retentionPolicy"] == {"maxRetentionDays": 7, "onSourceDiskDelete": "APPLY_RETENTION_POLICY"}
    assert snap["snapshotProperties"]["labels"] == {"env": "test"}
    listed = describe(gcloud, "compute", "resource-policies", "list")
    assert policy in [p["name"] for p in listed]

    gcloud("compute", "disks", "create", disk, "--size", "10GB", "--zone", ZONE)
    gcloud("compute", "disks", "add-resource-policies", disk, "--resource-policies", policy, "--zone", ZONE)
    got = describe(gcloud, "compute", "disks", "describe", disk, "--zone", ZONE)
    assert [p.rsplit("/", 1)[1] for p in got["resourcePolicies"]] == [policy]

    at = dt.datetime.now(dt.UTC).replace(hour=hour, minute=5, second=0, microsecond=0) + dt.timedelta(days=1)
    lines = server.admin("resource-policies", "run", "--at", at.isoformat()).stdout
    assert f"of projects/{PROJECT}/zones/{ZONE}/disks/{disk}" in lines, lines
    snaps = describe(gcloud, "compute", "snapshots", "list", "--filter", f"sourceDisk~/{disk}$")
    assert len(snaps) == 1 and snaps[0]["name"].startswith(f"{disk}-{ZONE}-") and snaps[0]["autoCreated"]

    refused = gcloud("compute", "resource-policies", "delete", policy, "--region", REGION, "-q", check=False)
    assert refused.returncode == 1
    assert (f"The resource_policy resource 'projects/{PROJECT}/regions/{REGION}/resourcePolicies/{policy}' is "
            f"already being used by 'projects/{PROJECT}/zones/{ZONE}/disks/{disk}'") in refused.stderr
    gcloud("compute", "disks", "remove-resource-policies", disk, "--resource-policies", policy, "--zone", ZONE)
    gcloud("compute", "resource-policies", "delete", policy, "--region", REGION, "-q")
    gcloud("compute", "snapshots", "delete", snaps[0]["name"], "-q")
    gcloud("compute", "disks", "delete", disk, "--zone", ZONE, "-q")


def test_instance_schedule_flow(gcloud, server):
    policy, vm = unique("gisched"), unique("gisvm")
    stop_hour = (dt.datetime.now(dt.UTC).hour + 6) % 24
    gcloud("compute", "resource-policies", "create", "instance-schedule", policy, "--region", REGION,
           "--vm-start-schedule", f"0 {(stop_hour + 2) % 24} * * *", "--vm-stop-schedule", f"0 {stop_hour} * * *",
           "--timezone", "UTC")
    got = describe(gcloud, "compute", "resource-policies", "describe", policy, "--region", REGION)
    assert got["instanceSchedulePolicy"]["vmStopSchedule"]["schedule"] == f"0 {stop_hour} * * *"
    assert got["instanceSchedulePolicy"]["timeZone"] == "UTC"

    gcloud("compute", "instances", "create", vm, "--zone", ZONE, "--machine-type", "e2-micro",
           "--image-family", "debian-12", "--image-project", "debian-cloud")
    gcloud("compute", "instances", "add-resource-policies", vm, "--resource-policies", policy, "--zone", ZONE)
    got = describe(gcloud, "compute", "instances", "describe", vm, "--zone", ZONE)
    assert [p.rsplit("/", 1)[1] for p in got["resourcePolicies"]] == [policy]

    at = dt.datetime.now(dt.UTC).replace(hour=stop_hour, minute=1, second=0, microsecond=0) + dt.timedelta(days=1)
    lines = server.admin("resource-policies", "run", "--at", at.isoformat()).stdout
    assert f"stop projects/{PROJECT}/zones/{ZONE}/instances/{vm}" in lines, lines

    refused = gcloud("compute", "resource-policies", "delete", policy, "--region", REGION, "-q", check=False)
    assert refused.returncode == 1
    assert f"is already being used by 'projects/{PROJECT}/zones/{ZONE}/instances/{vm}'" in refused.stderr
    gcloud("compute", "instances", "remove-resource-policies", vm, "--resource-policies", policy, "--zone", ZONE)
    gcloud("compute", "instances", "delete", vm, "--zone", ZONE, "-q")
    gcloud("compute", "resource-policies", "delete", policy, "--region", REGION, "-q")
    missing = gcloud("compute", "resource-policies", "describe", policy, "--region", REGION, check=False)
    assert f"resourcePolicies/{policy}' was not found" in missing.stderr
