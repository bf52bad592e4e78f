"""gcloud compute instance-groups unmanaged: the whole flow with the real CLI."""

from __future__ import annotations

import json

from tests.conftest import unique
from tests.e2e.conftest import describe

ZONE = "us-central1-a"


def test_unmanaged_instance_group_flow(gcloud):
    a, b, group = unique("igc"), unique("igc"), unique("igc")
    gcloud("compute", "instances", "create", a, b, "--zone", ZONE, "--machine-type", "e2-small",
           "--image-family", "debian-12", "--image-project", "debian-cloud")
    gcloud("compute", "instance-groups", "unmanaged", "create", group, "--zone", ZONE)
    gcloud("compute", "instance-groups", "unmanaged", "add-instances", group, "--zone", ZONE, "--instances", f"{a},{b}")
    listed = json.loads(gcloud("compute", "instance-groups", "unmanaged", "list-instances", group, "--zone", ZONE,
                               "--format=json").stdout)
    assert sorted(i["instance"].rsplit("/", 1)[-1] for i in listed) == sorted([a, b])
    assert {i["status"] for i in listed} == {"RUNNING"}
    gcloud("compute", "instance-groups", "unmanaged", "set-named-ports", group, "--zone", ZONE,
           "--named-ports", "http:80,https:443")
    ports = json.loads(gcloud("compute", "instance-groups", "unmanaged", "get-named-ports", group, "--zone", ZONE,
                              "--format=json").stdout)
    assert ports == [{"name": "http", "port": 80}, {"name": "https", "port": 443}]
    gcloud("compute", "instance-groups", "unmanaged", "remove-instances", group, "--zone", ZONE, "--instances", a)
    listed = json.loads(gcloud("compute", "instance-groups", "unmanaged", "list-instances", group, "--zone", ZONE,
                               "--format=json").stdout)
    assert [i["instance"].rsplit("/", 1)[-1] for i in listed] == [b]
    refused = gcloud("compute", "instance-groups", "unmanaged", "add-instances", group, "--zone", ZONE,
                     "--instances", b, check=False)
    assert refused.returncode != 0 and "is already a member of" in refused.stderr
    gcloud("compute", "instance-groups", "unmanaged", "delete", group, "--zone", ZONE)
    gone = gcloud("compute", "instance-groups", "unmanaged", "list-instances", group, "--zone", ZONE, check=False)
    assert gone.returncode != 0 and "was not found" in gone.stderr
    assert describe(gcloud, "compute", "instances", "describe", a, "--zone", ZONE)["status"] == "RUNNING"
    gcloud("compute", "instances", "delete", a, b, "--zone", ZONE)


def test_describe_and_list(gcloud):
    group = unique("igc")
    gcloud("compute", "instance-groups", "unmanaged", "create", group, "--zone", ZONE)
    try:
        got = describe(gcloud, "compute", "instance-groups", "unmanaged", "describe", group, "--zone", ZONE)
        assert (got["name"], got["size"]) == (group, 0)
        names = [g["name"] for g in json.loads(gcloud("compute", "instance-groups", "unmanaged", "list",
                                                      "--format=json").stdout)]
        assert group in names
    finally:
        gcloud("compute", "instance-groups", "unmanaged", "delete", group, "--zone", ZONE)
