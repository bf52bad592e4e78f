"""gcloud compute project-info update --default-network-tier, project-info set-usage-bucket,
snapshots create --source-disk (snapshots.insert), accelerator-types list/describe and shared-vpc
(enable, associated-projects add/remove, get-host-project, list-associated-resources, an instance of
the service project on the host's subnetwork) with the real CLI."""

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


def test_accelerator_types_list(gcloud, server):
    assert json.loads(gcloud("compute", "accelerator-types", "list", "--format=json").stdout) == []
    server.admin("cluster", "add", "--zone", "us-central1-b", "--name", "gpu-e2e", "--hypervisor", "simulator")
    server.admin("host", "add", "--zone", "us-central1-b", "--cluster", "gpu-e2e", "--name", "gpu-e2e", "--cpus", "8",
                 "--memory-mb", "32768", "--option", 'gpus={"nvidia-tesla-t4": 4}')
    server.admin("host", "maintenance", "gpu-e2e", "on")
    try:
        listed = json.loads(gcloud("compute", "accelerator-types", "list", "--format=json").stdout)
        assert [(a["name"], a["zone"].rsplit("/", 1)[-1]) for a in listed] == [("nvidia-tesla-t4", "us-central1-b")]
        got = describe(gcloud, "compute", "accelerator-types", "describe", "nvidia-tesla-t4", "--zone", "us-central1-b")
        assert (got["description"], got["maximumCardsPerInstance"]) == ("NVIDIA T4", 4)
    finally:
        server.admin("host", "remove", "gpu-e2e")


def test_shared_vpc(gcloud, server):
    host, service = unique("gxh"), unique("gxs")
    with open(server.key_path) as f:
        email = json.load(f)["client_email"]
    for project in (host, service):
        server.admin("project", "create", project)
        server.admin("project", "add-member", project, email, "--role", "owner")
    gcloud("compute", "shared-vpc", "enable", host)
    gcloud("compute", "shared-vpc", "associated-projects", "add", service, "--host-project", host)
    got = json.loads(gcloud("compute", "shared-vpc", "get-host-project", service, "--format=json").stdout)
    assert got["name"] == host
    listed = json.loads(gcloud("compute", "shared-vpc", "list-associated-resources", host, "--format=json").stdout)
    assert listed == [{"id": service, "type": "PROJECT"}]
    vm = unique("xvm")
    gcloud("compute", "instances", "create", vm, "--project", service, "--zone", ZONE, "--machine-type", "e2-micro",
           "--subnet", f"projects/{host}/regions/us-central1/subnetworks/default")
    inst = describe(gcloud, "compute", "instances", "describe", vm, "--project", service, "--zone", ZONE)
    assert f"/projects/{host}/global/networks/default" in inst["networkInterfaces"][0]["network"]
    refused = gcloud("compute", "shared-vpc", "associated-projects", "remove", service, "--host-project", host,
                     check=False)
    assert refused.returncode != 0 and "still uses a network" in refused.stderr
    gcloud("compute", "instances", "delete", vm, "--project", service, "--zone", ZONE)
    gcloud("compute", "shared-vpc", "associated-projects", "remove", service, "--host-project", host)
    gcloud("compute", "shared-vpc", "disable", host)
