"""gcloud compute project-info update --default-network-tier, project-info set-usage-bucket, and
snapshots create --source-disk (snapshots.insert) with the real CLI."""

from __future__ import annotations

import json

from tests.conftest import unique
from tests.e2e.conftest import describe

ZONE = "us-central1-a"


def test_default_network_tier_and_usage_bucket(gcloud):
    try:
        gcloud("compute", "project-info", "update", "--default-network-tier", "STANDARD")
        assert describe(gcloud, "compute", "project-info", "describe")["defaultNetworkTier"] == "STANDARD"
        name = unique("addr")
        gcloud("compute", "addresses", "create", name, "--region", "us-central1")
        assert describe(gcloud, "compute", "addresses", "describe", name, "--region",
                        "us-central1")["networkTier"] == "STANDARD"
        gcloud("compute", "addresses", "delete", name, "--region", "us-central1")
    finally:
        gcloud("compute", "project-info", "update", "--default-network-tier", "PREMIUM")
    assert describe(gcloud, "compute", "project-info", "describe")["defaultNetworkTier"] == "PREMIUM"
    try:
        gcloud("compute", "project-info", "set-usage-bucket", "--bucket", "gs://usage-bucket", "--prefix", "gce")
        got = describe(gcloud, "compute", "project-info", "describe")["usageExportLocation"]
        # gcloud sends the bucket's JSON API link, and GCE reports what it was given
        assert got == {"bucketName": "https://storage.googleapis.com/storage/v1/b/usage-bucket",
                       "reportNamePrefix": "gce"}
    finally:
        gcloud("compute", "project-info", "set-usage-bucket", "--no-bucket")
    assert "usageExportLocation" not in describe(gcloud, "compute", "project-info", "describe")


def test_snapshots_create(gcloud):
    disk, snap = unique("sdisk"), unique("snap")
    gcloud("compute", "disks", "create", disk, "--zone", ZONE, "--size", "10GB")
    gcloud("compute", "snapshots", "create", snap, "--source-disk", disk, "--source-disk-zone", ZONE)
    got = describe(gcloud, "compute", "snapshots", "describe", snap)
    assert (got["status"], got["sourceDisk"].rsplit("/", 1)[-1], got["diskSizeGb"]) == ("READY", disk, "10")
    names = [s["name"] for s in json.loads(gcloud("compute", "snapshots", "list", "--format=json").stdout)]
    assert snap in names
    refused = gcloud("compute", "snapshots", "create", snap, "--source-disk", disk, "--source-disk-zone", ZONE,
                     check=False)
    assert refused.returncode != 0 and "already exists" in refused.stderr
    gcloud("compute", "snapshots", "delete", snap)
    gcloud("compute", "disks", "delete", disk, "--zone", ZONE)
