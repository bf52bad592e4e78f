"""The real gcloud CLI against gstack, configured exactly as the server's banner says."""

from __future__ import annotations

import json

from tests.conftest import PROJECT, unique
from tests.e2e.conftest import describe


def test_zones_and_images(gcloud):
    zones = [z["name"] for z in json.loads(gcloud("compute", "zones", "list", "--format=json").stdout)]
    assert zones == ["europe-west1-b", "us-central1-a", "us-central1-b", "us-central1-c"]
    images = json.loads(gcloud("compute", "images", "list", "--format=json").stdout)
    assert "debian-12-bookworm-v20241009" in {i["name"] for i in images}
    family = describe(gcloud, "compute", "images", "describe-from-family", "debian-12", "--project", "debian-cloud")
    assert family["name"] == "debian-12-bookworm-v20241009"


def test_instance_lifecycle(gcloud):
    a, b = unique("gc"), unique("gc")
    out = gcloud("compute", "instances", "create", a, b, "--machine-type", "e2-small", "--image-family", "debian-12",
                 "--image-project", "debian-cloud")
    assert f"instances/{a}]" in out.stderr
    inst = describe(gcloud, "compute", "instances", "describe", a)
    assert inst["status"] == "RUNNING"
    assert inst["networkInterfaces"][0]["networkIP"].startswith("10.128.0.")
    assert inst["networkInterfaces"][0]["accessConfigs"][0]["natIP"]
    gcloud("compute", "instances", "add-metadata", a, "--metadata", "foo=bar")
    gcloud("compute", "instances", "add-labels", a, "--labels", "env=prod")
    inst = describe(gcloud, "compute", "instances", "describe", a)
    assert inst["metadata"]["items"] == [{"key": "foo", "value": "bar"}]
    assert inst["labels"] == {"env": "prod"}
    gcloud("compute", "instances", "stop", b)
    assert describe(gcloud, "compute", "instances", "describe", b)["status"] == "TERMINATED"
    gcloud("compute", "instances", "start", b)
    assert describe(gcloud, "compute", "instances", "describe", b)["status"] == "RUNNING"
    serial = gcloud("compute", "instances", "get-serial-port-output", a)
    assert f"{a} login:" in serial.stdout
    assert "Specify --start=" in serial.stderr
    listed = json.loads(gcloud("compute", "instances", "list", f"--filter=name={a}", "--format=json").stdout)
    assert [i["name"] for i in listed] == [a]
    gcloud("compute", "instances", "delete", a, b, "-q")
    missing = gcloud("compute", "instances", "describe", a, check=False)
    assert missing.returncode == 1
    assert f"The resource 'projects/{PROJECT}/zones/us-central1-a/instances/{a}' was not found" in missing.stderr


def test_disks_snapshots_images(gcloud):
    d, s, i = unique("gd"), unique("gs"), unique("gi")
    gcloud("compute", "disks", "create", d, "--size", "20GB")
    assert describe(gcloud, "compute", "disks", "describe", d)["sizeGb"] == "20"
    gcloud("compute", "disks", "snapshot", d, "--snapshot-names", s)
    assert describe(gcloud, "compute", "snapshots", "describe", s)["status"] == "READY"
    gcloud("compute", "images", "create", i, "--source-disk", d, "--family", "gfam")
    assert describe(gcloud, "compute", "images", "describe", i)["family"] == "gfam"
    dup = gcloud("compute", "disks", "create", d, "--size", "20GB", check=False)
    assert dup.returncode == 1 and "already exists" in dup.stderr


def test_operations_list_uses_server_filter(gcloud):
    ops = json.loads(gcloud("compute", "operations", "list", "--filter=operationType=insert", "--limit", "2",
                            "--format=json").stdout)
    assert 1 <= len(ops) <= 2
    assert all(op["operationType"] == "insert" for op in ops)
