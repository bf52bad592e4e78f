"""acceleratorTypes through googleapiclient: none in a zone whose hosts declare no GPUs; the types a
host declares (``gstack admin host add --option gpus=...``) in its zone, with GCE's fields."""

from __future__ import annotations

import json

from tests.conftest import PROJECT, ZONE, unique
from tests.helpers.compute import expect_error, link

GPU_ZONE = "us-central1-c"


def test_accelerator_types(server, gce):
    assert "items" not in gce.acceleratorTypes().list(project=PROJECT, zone=GPU_ZONE).execute()
    expect_error(gce.acceleratorTypes().get(project=PROJECT, zone=ZONE, acceleratorType="nvidia-tesla-t4"), 404,
                 "notFound", f"The resource 'projects/{PROJECT}/zones/{ZONE}/acceleratorTypes/nvidia-tesla-t4' was "
                             "not found")
    server.admin("cluster", "add", "--zone", GPU_ZONE, "--name", "gpu", "--hypervisor", "simulator", check=False)
    bad = server.admin("host", "add", "--zone", GPU_ZONE, "--cluster", "gpu", "--name", "gpu-bad", "--cpus", "8",
                       "--memory-mb", "32768", "--option", 'gpus={"nvidia-geforce-9": 2}', check=False)
    assert bad.returncode == 1 and "unknown GPU type nvidia-geforce-9" in bad.stderr
    assert "gpu-bad" not in server.admin("host", "list").stdout
    server.admin("host", "add", "--zone", GPU_ZONE, "--cluster", "gpu", "--name", "gpu-host", "--cpus", "8",
                 "--memory-mb", "32768", "--option", "gpus=" + json.dumps({"nvidia-tesla-t4": 4, "nvidia-l4": 2}))
    server.admin("host", "maintenance", "gpu-host", "on")  # VMs of other tests stay on the zone's own hosts
    try:
        listed = gce.acceleratorTypes().list(project=PROJECT, zone=GPU_ZONE).execute()
        assert listed["kind"] == "compute#acceleratorTypeList"
        assert [a["name"] for a in listed["items"]] == ["nvidia-l4", "nvidia-tesla-t4"]
        t4 = gce.acceleratorTypes().get(project=PROJECT, zone=GPU_ZONE, acceleratorType="nvidia-tesla-t4").execute()
        assert t4 == {
            "kind": "compute#acceleratorType", "id": t4["id"], "creationTimestamp": t4["creationTimestamp"],
            "name": "nvidia-tesla-t4", "description": "NVIDIA T4", "zone": link(server, f"projects/{PROJECT}/zones/{GPU_ZONE}"),
            "selfLink": link(server, f"projects/{PROJECT}/zones/{GPU_ZONE}/acceleratorTypes/nvidia-tesla-t4"),
            "maximumCardsPerInstance": 4}
        assert t4["id"].isdigit()
        agg = gce.acceleratorTypes().aggregatedList(project=PROJECT).execute()
        assert agg["kind"] == "compute#acceleratorTypeAggregatedList"
        assert [a["name"] for a in agg["items"][f"zones/{GPU_ZONE}"]["acceleratorTypes"]] == ["nvidia-l4",
                                                                                             "nvidia-tesla-t4"]
        assert "acceleratorTypes" not in agg["items"][f"zones/{ZONE}"]  # a zone without GPU hosts
        one = gce.acceleratorTypes().list(project=PROJECT, zone=GPU_ZONE, filter="name eq nvidia-l4").execute()
        assert [a["name"] for a in one["items"]] == ["nvidia-l4"]
        # An instance asking for cards: of a type the zone lacks, not found; of an offered one,
        # refused (no driver passes GPUs through yet), never made without them.
        for kind, status in (("nvidia-tesla-v100", 404), ("nvidia-tesla-t4", 400)):
            name = unique("gpu")
            expect_error(gce.instances().insert(project=PROJECT, zone=GPU_ZONE, body={
                "name": name, "machineType": f"zones/{GPU_ZONE}/machineTypes/n1-standard-4",
                "guestAccelerators": [{"acceleratorType": f"zones/{GPU_ZONE}/acceleratorTypes/{kind}",
                                       "acceleratorCount": 1}],
                "disks": [{"boot": True, "autoDelete": True, "initializeParams": {
                    "sourceImage": "projects/debian-cloud/global/images/family/debian-12"}}]}),
                status, "notFound" if status == 404 else "invalid")
            assert not gce.instances().list(project=PROJECT, zone=GPU_ZONE, filter=f"name eq {name}").execute().get(
                "items")
    finally:
        server.admin("host", "remove", "gpu-host")
    assert "items" not in gce.acceleratorTypes().list(project=PROJECT, zone=GPU_ZONE).execute()
