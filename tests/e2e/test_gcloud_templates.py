"""The real gcloud CLI: instance templates, and instances made from them."""

from __future__ import annotations

import json

from tests.conftest import PROJECT, unique
from tests.e2e.conftest import describe

IMAGE = ("--image-family", "debian-12", "--image-project", "debian-cloud")


def test_instance_template_lifecycle(gcloud):
    t, vm = unique("gt"), unique("gv")
    gcloud("compute", "instance-templates", "create", t, "--machine-type", "e2-small", *IMAGE)
    listed = json.loads(gcloud("compute", "instance-templates", "list", "--format=json").stdout)
    assert t in [x["name"] for x in listed]
    got = describe(gcloud, "compute", "instance-templates", "describe", t)
    assert got["properties"]["machineType"] == "e2-small"
    gcloud("compute", "instances", "create", vm, "--source-instance-template", t)
    inst = describe(gcloud, "compute", "instances", "describe", vm)
    assert inst["status"] == "RUNNING" and inst["machineType"].endswith("/machineTypes/e2-small")
    gcloud("compute", "instances", "delete", vm, "-q")
    gcloud("compute", "instance-templates", "delete", t, "-q")
    missing = gcloud("compute", "instance-templates", "describe", t, check=False)
    assert missing.returncode == 1
    assert f"The resource 'projects/{PROJECT}/global/instanceTemplates/{t}' was not found" in missing.stderr


def test_regional_instance_template(gcloud):
    t, vm = unique("grt"), unique("grv")
    gcloud("compute", "instance-templates", "create", t, "--instance-template-region", "us-central1",
           "--machine-type", "e2-micro", *IMAGE)
    got = describe(gcloud, "compute", "instance-templates", "describe", t, "--region", "us-central1")
    assert got["region"].endswith("/regions/us-central1")
    gcloud("compute", "instances", "create", vm, "--source-instance-template",
           f"projects/{PROJECT}/regions/us-central1/instanceTemplates/{t}")
    inst = describe(gcloud, "compute", "instances", "describe", vm)
    assert inst["status"] == "RUNNING" and inst["machineType"].endswith("/machineTypes/e2-micro")
    gcloud("compute", "instances", "delete", vm, "-q")
    gcloud("compute", "instance-templates", "delete", t, "--region", "us-central1", "-q")
