"""Regional disks for the tests that need one (made through googleapiclient, waited for)."""

from __future__ import annotations

from tests.conftest import PROJECT, wait_op

REGION = "us-central1"
ZONES = ("us-central1-a", "us-central1-b")
FAMILY = "projects/debian-cloud/global/images/family/debian-12"


def make_region_disk(gce, name: str, **fields) -> dict:
    body = {"name": name, "sizeGb": "20", "replicaZones": [f"projects/{PROJECT}/zones/{z}" for z in ZONES],
            "type": f"projects/{PROJECT}/regions/{REGION}/diskTypes/pd-balanced", **fields}
    op = gce.regionDisks().insert(project=PROJECT, region=REGION, body=body).execute()
    assert op["operationType"] == "insert" and op["region"].endswith(f"/regions/{REGION}"), op
    done = wait_op(gce, op)
    assert "error" not in done, done
    return gce.regionDisks().get(project=PROJECT, region=REGION, disk=name).execute()
