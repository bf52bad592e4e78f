"""The real gcloud CLI against gstack, configured exactly as the server's banner says."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from tests.conftest import PROJECT, unique

pytestmark = pytest.mark.skipif(shutil.which("gcloud") is None, reason="the gcloud CLI is not installed here")


@pytest.fixture(scope="module")
def gcloud(server, tmp_path_factory):
    if server.backend != "sqlite":
        pytest.skip("the gcloud flows test the wire, not the database: they run once, on SQLite")
    config = str(tmp_path_factory.mktemp("gcloud"))
    env = {**os.environ, "CLOUDSDK_CONFIG": config, "CLOUDSDK_CORE_DISABLE_PROMPTS": "1"}

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run(["gcloud", *args], env=env, capture_output=True, text=True, timeout=120)
        if check and proc.returncode != 0:
            raise AssertionError(f"gcloud {' '.join(args)} failed:\n{proc.stderr}")
        return proc

    for prop, value in (("core/project", PROJECT), ("component_manager/disable_update_check", "true"),
                        ("core/check_gce_metadata", "false"),
                        ("api_endpoint_overrides/compute", server.api), ("auth/token_host", server.base + "/token")):
        run("config", "set", prop, value)
    run("auth", "activate-service-account", "--key-file", server.key_path)
    run("config", "set", "compute/zone", "us-central1-a")
    return run


def describe(gcloud, *args: str) -> dict:
    return json.loads(gcloud(*args, "--format=json").stdout)


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
