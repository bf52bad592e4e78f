"""The real gcloud CLI: machine images made from an instance, and instances made from them."""

from __future__ import annotations

import json

from tests.conftest import PROJECT, ZONE, unique
from tests.e2e.conftest import describe

IMAGE = ("--image-family", "debian-12", "--image-project", "debian-cloud")


def test_machine_image_lifecycle(gcloud):
    vm, mi, clone = unique("gmv"), unique("gmi"), unique("gmc")
    gcloud("compute", "instances", "create", vm, "--zone", ZONE, "--machine-type", "e2-small",
           "--labels", "team=web", *IMAGE)
    gcloud("compute", "machine-images", "create", mi, "--source-instance", vm, "--source-instance-zone", ZONE)
    listed = json.loads(gcloud("compute", "machine-images", "list", "--format=json").stdout)
    assert mi in [x["name"] for x in listed]
    got = describe(gcloud, "compute", "machine-images", "describe", mi)
    assert got["status"] == "READY" and got["sourceInstance"].endswith(f"/zones/{ZONE}/instances/{vm}")
    assert got["instanceProperties"]["machineType"] == "e2-small"
    assert got["instanceProperties"]["labels"] == {"team": "web"}
    assert int(got["totalStorageBytes"]) > 0
    gcloud("compute", "instances", "delete", vm, "--zone", ZONE, "-q")  # the image outlives its instance
    gcloud("compute", "instances", "create", clone, "--source-machine-image", mi, "--zone", ZONE)
    inst = describe(gcloud, "compute", "instances", "describe", clone, "--zone", ZONE)
    assert inst["status"] == "RUNNING" and inst["machineType"].endswith("/machineTypes/e2-small")
    assert inst["labels"] == {"team": "web"} and inst["sourceMachineImage"].endswith(f"/machineImages/{mi}")
    gcloud("compute", "instances", "delete", clone, "--zone", ZONE, "-q")
    gcloud("compute", "machine-images", "delete", mi, "-q")
    missing = gcloud("compute", "machine-images", "describe", mi, check=False)
    assert missing.returncode == 1
    assert f"The resource 'projects/{PROJECT}/global/machineImages/{mi}' was not found" in missing.stderr
