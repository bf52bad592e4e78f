"""``gcloud compute instances bulk create`` against gstack: the bulkInsert, then gcloud's count of
the group's insert Operations (zoneOperations.list by operationGroupId)."""

from __future__ import annotations

import json

from tests.conftest import unique
from tests.e2e.conftest import describe

IMAGE = ("--machine-type", "e2-small", "--image-family", "debian-12", "--image-project", "debian-cloud")


def test_bulk_create_with_a_name_pattern(gcloud):
    prefix = unique("bk")
    out = gcloud("compute", "instances", "bulk", "create", "--name-pattern", f"{prefix}-####", "--count", "3",
                 "--zone", "us-central1-a", *IMAGE)
    assert "Bulk create request finished with status message: [VM instances created: 3, failed: 0.]" in out.stderr
    # more: numbered after the largest taken; --format=json shows what gcloud gathered from the group
    out = gcloud("compute", "instances", "bulk", "create", "--name-pattern", f"{prefix}-####", "--count", "2",
                 "--min-count", "1", "--zone", "us-central1-a", *IMAGE, "--format=json")
    result = json.loads(out.stdout)
    assert result["createdInstanceCount"] == 2 and result["failedInstanceCount"] == 0
    assert sorted(i["name"] for i in result["instances"]) == [f"{prefix}-0004", f"{prefix}-0005"]
    names = [f"{prefix}-000{n}" for n in range(1, 6)]
    for name in names:
        assert describe(gcloud, "compute", "instances", "describe", name)["status"] == "RUNNING"


def test_bulk_create_with_predefined_names(gcloud):
    a, b = unique("bkp"), unique("bkp")
    out = gcloud("compute", "instances", "bulk", "create", "--predefined-names", f"{a},{b}",
                 "--zone", "us-central1-a", *IMAGE)
    assert "VM instances created: 2, failed: 0." in out.stderr
    for name in (a, b):
        assert describe(gcloud, "compute", "instances", "describe", name)["status"] == "RUNNING"
    taken = gcloud("compute", "instances", "bulk", "create", "--predefined-names", a, "--zone", "us-central1-a",
                   *IMAGE, check=False)
    # gcloud reports the refused request's error and exits 0 (it collects the errors of the request)
    assert f"ERROR: The resource 'projects/demo-project/zones/us-central1-a/instances/{a}' already exists" \
        in taken.stderr, taken.stderr


def test_regional_bulk_create(gcloud):
    prefix = unique("rbk")
    out = gcloud("compute", "instances", "bulk", "create", "--name-pattern", f"{prefix}-##", "--count", "4",
                 "--region", "us-central1", "--target-distribution-shape", "balanced", *IMAGE, "--format=json")
    result = json.loads(out.stdout)
    assert result["createdInstanceCount"] == 4 and result["failedInstanceCount"] == 0
    zones = sorted(i["zone"].rsplit("/", 1)[-1] for i in result["instances"])
    assert set(zones) == {"us-central1-a", "us-central1-b", "us-central1-c"} and len(zones) == 4
    for inst in result["instances"]:
        got = describe(gcloud, "compute", "instances", "describe", inst["name"], "--zone",
                       inst["zone"].rsplit("/", 1)[-1])
        assert got["status"] == "RUNNING"
