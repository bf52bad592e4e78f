"""Minimum CPU platforms end to end (SQLite and PostgreSQL, a server of its own: the tests add a
host): a host declares its platform (``gstack admin host add --cpu-platform``), an instance asking
for a minimum lands only on a host at or above it and reports its host's platform; a minimum no
host of the zone meets is refused with GCE's error and nothing is made; one whose hosts are all
down fails at placement."""

from __future__ import annotations

import pytest

from tests.conftest import BACKENDS, PROJECT, running_server, unique, wait_op
from tests.helpers.compute import expect_error

ZONE = "europe-west1-b"
FAMILY = "projects/debian-cloud/global/images/family/debian-12"


@pytest.fixture(scope="module", params=BACKENDS)
def srv(request):
    with running_server(request.param) as server:
        yield server


def body(name: str, platform: str | None) -> dict:
    out = {"name": name, "machineType": f"zones/{ZONE}/machineTypes/e2-micro",
           "disks": [{"boot": True, "autoDelete": True, "initializeParams": {"sourceImage": FAMILY}}],
           "networkInterfaces": [{"network": "global/networks/default"}]}
    if platform:
        out["minCpuPlatform"] = platform
    return out


def insert(gce, name: str, platform: str | None) -> dict:
    return wait_op(gce, gce.instances().insert(project=PROJECT, zone=ZONE, body=body(name, platform)).execute())


def get(gce, name: str) -> dict:
    return gce.instances().get(project=PROJECT, zone=ZONE, instance=name).execute()


def test_instances_land_on_hosts_at_or_above_their_minimum(srv):
    gce = srv.gce()
    seeded = gce.zones().get(project=PROJECT, zone=ZONE).execute()["availableCpuPlatforms"]
    assert seeded == ["AMD Milan", "Intel Cascade Lake"]
    refused = unique("plat")
    expect_error(gce.instances().insert(project=PROJECT, zone=ZONE, body=body(refused, "Intel Sapphire Rapids")), 400,
                 "invalid", "Invalid value for field 'resource.minCpuPlatform': 'Intel Sapphire Rapids'. CPU platform "
                 "unavailable in requested zone. Valid options for this zone are: Intel Cascade Lake, Intel Skylake, "
                 "Intel Broadwell, Intel Haswell, Intel Ivy Bridge, Intel Sandy Bridge, AMD Milan, AMD Rome.")
    expect_error(gce.instances().get(project=PROJECT, zone=ZONE, instance=refused), 404, "notFound")

    bad = srv.admin("host", "add", "--zone", ZONE, "--name", "spr-bad", "--cpu-platform", "Intel Nehalem", check=False)
    assert bad.returncode != 0 and "unknown CPU platform Intel Nehalem" in bad.stderr + bad.stdout
    srv.admin("host", "add", "--zone", ZONE, "--name", "spr-1", "--cpu-platform", "Intel Sapphire Rapids")
    assert "Intel Sapphire Rapids" in gce.zones().get(project=PROJECT, zone=ZONE).execute()["availableCpuPlatforms"]

    newest, amd, older, anywhere = unique("plat"), unique("plat"), unique("plat"), unique("plat")
    for name, platform in ((newest, "Intel Ice Lake"), (amd, "AMD Rome"), (older, "Intel Skylake"),
                           (anywhere, None)):
        assert "error" not in insert(gce, name, platform)
    assert get(gce, newest)["cpuPlatform"] == "Intel Sapphire Rapids"
    assert get(gce, newest)["minCpuPlatform"] == "Intel Ice Lake"
    assert get(gce, amd)["cpuPlatform"] == "AMD Milan"
    assert get(gce, older)["cpuPlatform"] in ("Intel Cascade Lake", "Intel Sapphire Rapids")
    assert "minCpuPlatform" not in get(gce, anywhere)

    # The only host that qualifies is down: the insert fails at placement, nothing is left.
    srv.admin("host", "set-status", "spr-1", "Down")
    late = unique("plat")
    op = insert(gce, late, "Intel Ice Lake")
    assert op["error"]["errors"][0]["code"] == "ZONE_RESOURCE_POOL_EXHAUSTED"
    expect_error(gce.instances().get(project=PROJECT, zone=ZONE, instance=late), 404, "notFound")
