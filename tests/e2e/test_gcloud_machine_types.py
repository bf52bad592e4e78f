"""gcloud over the machine type catalog: listing a zone, describing a type, and creating instances
with gcloud's default machine type (n1-standard-1) and with --custom-cpu/--custom-memory."""

from __future__ import annotations

import json

from tests.conftest import PROJECT, unique
from tests.e2e.conftest import describe


def test_list_and_describe(gcloud):
    listed = json.loads(gcloud("compute", "machine-types", "list", "--zones", "us-central1-a",
                               "--format=json").stdout)
    names = {m["name"] for m in listed}
    assert {"n1-standard-1", "e2-micro", "n2-standard-4", "c3-standard-4", "t2d-standard-1"} <= names
    assert {m["zone"] for m in listed} == {"us-central1-a"}
    table = gcloud("compute", "machine-types", "list", "--zones", "us-central1-a",
                   "--filter=name=n1-standard-1").stdout
    assert "n1-standard-1" in table and "us-central1-a" in table and "3.75" in table

    mt = describe(gcloud, "compute", "machine-types", "describe", "n2-standard-4")
    assert (mt["name"], mt["guestCpus"], mt["memoryMb"], mt["zone"]) == ("n2-standard-4", 4, 16384,
                                                                         "us-central1-a")
    missing = gcloud("compute", "machine-types", "describe", "c3-standard-4", "--zone", "europe-west1-b",
                     check=False)
    assert missing.returncode == 1
    assert (f"The resource 'projects/{PROJECT}/zones/europe-west1-b/machineTypes/c3-standard-4' was not found"
            in missing.stderr)


def test_create_with_default_and_custom_types(gcloud):
    plain, custom = unique("gmt"), unique("gmt")
    gcloud("compute", "instances", "create", plain, "--image-family", "debian-12", "--image-project",
           "debian-cloud")
    inst = describe(gcloud, "compute", "instances", "describe", plain)
    assert inst["status"] == "RUNNING"
    assert inst["machineType"].endswith("/zones/us-central1-a/machineTypes/n1-standard-1")

    gcloud("compute", "instances", "create", custom, "--custom-cpu", "4", "--custom-memory", "8GB",
           "--image-family", "debian-12", "--image-project", "debian-cloud")
    inst = describe(gcloud, "compute", "instances", "describe", custom)
    assert inst["status"] == "RUNNING"
    assert inst["machineType"].endswith("/machineTypes/custom-4-8192")

    refused = gcloud("compute", "instances", "create", unique("gmt"), "--custom-cpu", "3", "--custom-memory",
                     "8GB", "--image-family", "debian-12", "--image-project", "debian-cloud", check=False)
    assert refused.returncode == 1
    assert "should be 1 or an even number, while 3 is requested" in refused.stderr
    gcloud("compute", "instances", "delete", plain, custom, "-q")
