"""The real gcloud CLI: regional disks (create with replica zones, describe, list, resize, snapshot,
attach to an instance of a replica zone, delete) and ``images update`` (images.patch)."""

from __future__ import annotations

from tests.conftest import PROJECT, unique
from tests.e2e.conftest import describe

REGION = "us-central1"


def test_region_disk_flow(gcloud):
    disk, vm, snap = unique("grd"), unique("grdvm"), unique("grdsnap")
    gcloud("compute", "disks", "create", disk, "--region", REGION, "--replica-zones",
           "us-central1-a,us-central1-b", "--size", "200GB", "--type", "pd-standard")
    got = describe(gcloud, "compute", "disks", "describe", disk, "--region", REGION)
    assert got["status"] == "READY" and got["sizeGb"] == "200"
    assert [z.rsplit("/", 1)[1] for z in got["replicaZones"]] == ["us-central1-a", "us-central1-b"]
    assert got["type"].endswith(f"/regions/{REGION}/diskTypes/pd-standard")
    listed = describe(gcloud, "compute", "disks", "list", "--filter", f"name={disk}")
    assert [d["name"] for d in listed] == [disk] and listed[0]["region"].endswith(f"/regions/{REGION}")
    gcloud("compute", "disks", "resize", disk, "--region", REGION, "--size", "250GB", "-q")
    assert describe(gcloud, "compute", "disks", "describe", disk, "--region", REGION)["sizeGb"] == "250"
    gcloud("compute", "snapshots", "create", snap, "--source-disk", disk, "--source-disk-region", REGION)
    assert describe(gcloud, "compute", "snapshots", "describe", snap)["sourceDisk"].endswith(
        f"/regions/{REGION}/disks/{disk}")

    gcloud("compute", "instances", "create", vm, "--zone", "us-central1-b", "--machine-type", "e2-micro",
           "--image-family", "debian-12", "--image-project", "debian-cloud")
    gcloud("compute", "instances", "attach-disk", vm, "--zone", "us-central1-b", "--disk", disk,
           "--disk-scope", "regional")
    inst = describe(gcloud, "compute", "instances", "describe", vm, "--zone", "us-central1-b")
    assert inst["disks"][1]["source"].endswith(f"projects/{PROJECT}/regions/{REGION}/disks/{disk}")
    refused = gcloud("compute", "disks", "delete", disk, "--region", REGION, "-q", check=False)
    assert refused.returncode == 1 and "is already being used by" in refused.stderr
    gcloud("compute", "instances", "delete", vm, "--zone", "us-central1-b", "-q")
    gcloud("compute", "snapshots", "delete", snap, "-q")
    gcloud("compute", "disks", "delete", disk, "--region", REGION, "-q")


def test_images_update(gcloud):
    disk, image, family = unique("giud"), unique("giu"), unique("giufam")
    gcloud("compute", "disks", "create", disk, "--size", "10GB", "--zone", "us-central1-a")
    gcloud("compute", "images", "create", image, "--source-disk", disk, "--source-disk-zone", "us-central1-a")
    gcloud("compute", "images", "update", image, "--family", family, "--description", "patched")
    got = describe(gcloud, "compute", "images", "describe", image)
    assert got["family"] == family and got["description"] == "patched"
    assert describe(gcloud, "compute", "images", "describe-from-family", family)["name"] == image
    gcloud("compute", "images", "delete", image, "-q")
    gcloud("compute", "disks", "delete", disk, "--zone", "us-central1-a", "-q")
