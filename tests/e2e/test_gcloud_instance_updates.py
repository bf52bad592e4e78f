"""The real gcloud against gstack's in-place instance updates: ``instances set-name``,
``instances update --min-cpu-platform`` / ``--shielded-*`` and ``instances get-guest-attributes``."""

from __future__ import annotations

import json

from tests.conftest import PROJECT, unique
from tests.e2e.conftest import describe


def test_rename_cpu_platform_shielded_and_guest_attributes(gcloud):
    name, new = unique("gu"), unique("gu-new")
    gcloud("compute", "instances", "create", name, "--machine-type", "e2-small", "--image-family", "debian-12",
           "--image-project", "debian-cloud")
    # integrity monitoring may change while the VM runs; secure boot may not
    gcloud("compute", "instances", "update", name, "--no-shielded-integrity-monitoring")
    shielded = describe(gcloud, "compute", "instances", "describe", name)["shieldedInstanceConfig"]
    assert shielded["enableIntegrityMonitoring"] is False
    refused = gcloud("compute", "instances", "update", name, "--shielded-secure-boot", check=False)
    assert refused.returncode == 1
    assert f"Instance '{name}' must be stopped before changing its Shielded VM secure boot" in refused.stderr
    refused = gcloud("compute", "instances", "set-name", name, "--new-name", new, check=False)
    assert refused.returncode == 1 and f"Instance '{name}' must be stopped before it can be renamed." in refused.stderr

    attrs = gcloud("compute", "instances", "get-guest-attributes", name, "--query-path", "hostkeys/",
                   "--format=json")
    assert json.loads(attrs.stdout or "[]") == []

    gcloud("compute", "instances", "stop", name)
    platform = describe(gcloud, "compute", "zones", "describe", "us-central1-a")["availableCpuPlatforms"][0]
    gcloud("compute", "instances", "update", name, "--min-cpu-platform", platform, "--shielded-secure-boot")
    inst = describe(gcloud, "compute", "instances", "describe", name)
    assert inst["minCpuPlatform"] == platform and inst["shieldedInstanceConfig"]["enableSecureBoot"] is True

    gcloud("compute", "instances", "set-name", name, "--new-name", new)
    renamed = describe(gcloud, "compute", "instances", "describe", new)
    assert renamed["id"] == inst["id"] and renamed["hostname"].startswith(f"{new}.")
    missing = gcloud("compute", "instances", "describe", name, check=False)
    assert f"The resource 'projects/{PROJECT}/zones/us-central1-a/instances/{name}' was not found" in missing.stderr
    gcloud("compute", "instances", "start", new)
    assert describe(gcloud, "compute", "instances", "describe", new)["status"] == "RUNNING"
    gcloud("compute", "instances", "delete", new, "-q")
