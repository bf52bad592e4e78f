"""machineTypes through googleapiclient: GCE's catalog per zone, custom shapes, the zone that lacks a
family, and instances.insert naming such types."""

from __future__ import annotations

import pytest

from tests.conftest import PROJECT, ZONE, unique, wait_op
from tests.helpers.compute import expect_error, link

ZONES = ["europe-west1-b", "us-central1-a", "us-central1-b", "us-central1-c"]
SPARSE_ZONE = "europe-west1-b"  # the seeded zone without c3, n4 and m1
FAMILY_IMAGE = "projects/debian-cloud/global/images/family/debian-12"


def names(items: list[dict]) -> list[str]:
    return [m["name"] for m in items]


def list_all(gce, zone: str, **kw) -> list[dict]:
    items, token = [], None
    while True:
        page = gce.machineTypes().list(project=PROJECT, zone=zone, pageToken=token, **kw).execute()
        items += page.get("items", [])
        token = page.get("nextPageToken")
        if not token:
            return items


def instance_body(name: str, machine_type: str, zone: str = ZONE) -> dict:
    return {"name": name, "machineType": machine_type,
            "disks": [{"boot": True, "autoDelete": True, "initializeParams": {"sourceImage": FAMILY_IMAGE}}],
            "networkInterfaces": [{"network": "global/networks/default"}]}


# -- get -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name, cpus, memory, description", [
    ("n1-standard-1", 1, 3840, "1 vCPU, 3.75 GB RAM"),
    ("n1-highcpu-16", 16, 14746, "16 vCPUs, 14.4 GB RAM"),
    ("n2-standard-4", 4, 16384, "4 vCPUs 16 GB RAM"),
    ("c2-standard-30", 30, 122880, "Compute Optimized: 30 vCPUs, 120 GB RAM"),
    ("e2-standard-2", 2, 8192, "Efficient Instance, 2 vCPUs, 8 GB RAM"),
])
def test_get_predefined(server, gce, name, cpus, memory, description):
    mt = gce.machineTypes().get(project=PROJECT, zone=ZONE, machineType=name).execute()
    assert mt == {
        "kind": "compute#machineType", "id": mt["id"], "creationTimestamp": "1969-12-31T16:00:00.000-08:00",
        "name": name, "description": description, "guestCpus": cpus, "memoryMb": memory, "imageSpaceGb": 0,
        "maximumPersistentDisks": 128, "maximumPersistentDisksSizeGb": "263168", "zone": ZONE,
        "selfLink": link(server, f"projects/{PROJECT}/zones/{ZONE}/machineTypes/{name}"), "isSharedCpu": False,
    }
    assert mt["id"].isdigit()
    other = gce.machineTypes().get(project=PROJECT, zone="us-central1-b", machineType=name).execute()
    assert other["id"] == mt["id"] and other["zone"] == "us-central1-b"


def test_get_shared_core(gce):
    mt = gce.machineTypes().get(project=PROJECT, zone=ZONE, machineType="e2-small").execute()
    assert (mt["guestCpus"], mt["memoryMb"], mt["isSharedCpu"]) == (2, 2048, True)
    assert (mt["maximumPersistentDisks"], mt["maximumPersistentDisksSizeGb"]) == (16, "3072")
    assert mt["description"] == "Efficient Instance, 2 vCPU (1/2 shared physical core) and 2 GB RAM"
    f1 = gce.machineTypes().get(project=PROJECT, zone=ZONE, machineType="f1-micro").execute()
    assert (f1["guestCpus"], f1["memoryMb"], f1["isSharedCpu"]) == (1, 614, True)


def test_get_custom(server, gce):
    mt = gce.machineTypes().get(project=PROJECT, zone=ZONE, machineType="n2-custom-8-32768").execute()
    assert (mt["name"], mt["guestCpus"], mt["memoryMb"], mt["isSharedCpu"]) == ("n2-custom-8-32768", 8, 32768,
                                                                                   False)
    assert mt["selfLink"] == link(server, f"projects/{PROJECT}/zones/{ZONE}/machineTypes/n2-custom-8-32768")
    ext = gce.machineTypes().get(project=PROJECT, zone=ZONE, machineType="custom-2-20480-ext").execute()
    assert (ext["guestCpus"], ext["memoryMb"]) == (2, 20480)


@pytest.mark.parametrize("name, why", [
    ("custom-3-4096", "Number of vCPUs of N1 custom machine types should be 1 or an even number, "
                      "while 3 is requested"),
    ("custom-2-1000", "Memory should be a multiple of 256MiB, while 1000MiB is requested"),
    ("custom-124-819200", "Custom Machine type with name 'custom-124-819200' does not exist."),
    ("e2-custom-4-65536", "Memory should be between 2048MiB and 32768MiB for 4 vCPUs, while 65536MiB is requested"),
])
def test_get_custom_refused(gce, name, why):
    expect_error(gce.machineTypes().get(project=PROJECT, zone=ZONE, machineType=name), 400, "invalid",
                 f"Invalid value for field 'machineType': '{name}'. {why}")


def test_get_unknown_or_not_in_zone(gce):
    expect_error(gce.machineTypes().get(project=PROJECT, zone=ZONE, machineType="n9-mega-1"), 404, "notFound",
                 f"The resource 'projects/{PROJECT}/zones/{ZONE}/machineTypes/n9-mega-1' was not found")
    assert gce.machineTypes().get(project=PROJECT, zone=ZONE, machineType="c3-standard-4").execute()
    for name in ("c3-standard-4", "n4-custom-4-16384"):
        expect_error(gce.machineTypes().get(project=PROJECT, zone=SPARSE_ZONE, machineType=name), 404, "notFound",
                     f"The resource 'projects/{PROJECT}/zones/{SPARSE_ZONE}/machineTypes/{name}' was not found")
    expect_error(gce.machineTypes().list(project=PROJECT, zone="nowhere-a"), 404, "notFound",
                 f"The resource 'projects/{PROJECT}/zones/nowhere-a' was not found")


# -- list ------------------------------------------------------------------------------------------


def test_list_holds_the_families(server, gce):
    out = gce.machineTypes().list(project=PROJECT, zone=ZONE).execute()
    assert out["kind"] == "compute#machineTypeList"
    assert out["selfLink"] == link(server, f"projects/{PROJECT}/zones/{ZONE}/machineTypes")
    assert "nextPageToken" not in out  # the whole zone fits GCE's default page of 500
    listed = names(out["items"])
    assert listed == sorted(listed) and len(listed) > 150
    assert all(m["zone"] == ZONE for m in out["items"])
    families = {n.split("-")[0] for n in listed}
    assert families == {"c2", "c2d", "c3", "e2", "f1", "g1", "m1", "n1", "n2", "n2d", "n4", "t2d"}
    assert not any("custom" in n for n in listed)

    sparse = names(gce.machineTypes().list(project=PROJECT, zone=SPARSE_ZONE).execute()["items"])
    assert set(sparse) < set(listed)
    assert {n.split("-")[0] for n in set(listed) - set(sparse)} == {"c3", "n4", "m1"}


def test_list_filter_and_paging(gce):
    n1 = gce.machineTypes().list(project=PROJECT, zone=ZONE, filter="name eq n1-standard-.*").execute()
    assert names(n1["items"]) == [f"n1-standard-{n}" for n in (1, 16, 2, 32, 4, 64, 8, 96)]
    big = gce.machineTypes().list(project=PROJECT, zone=ZONE, filter="guestCpus > 100").execute()
    assert big["items"] and all(m["guestCpus"] > 100 for m in big["items"])
    shared = gce.machineTypes().list(project=PROJECT, zone=ZONE, filter="isSharedCpu = true").execute()
    assert names(shared["items"]) == ["e2-medium", "e2-micro", "e2-small", "f1-micro", "g1-small"]

    everything = names(gce.machineTypes().list(project=PROJECT, zone=ZONE).execute()["items"])
    first = gce.machineTypes().list(project=PROJECT, zone=ZONE, maxResults=50).execute()
    assert names(first["items"]) == everything[:50] and first["nextPageToken"]
    assert names(list_all(gce, ZONE, maxResults=50)) == everything
    e2 = list_all(gce, ZONE, maxResults=4, filter="name eq e2-.*")
    assert names(e2) == [n for n in everything if n.startswith("e2-")]


# -- aggregatedList ----------------------------------------------------------------------------------


def test_aggregated_list(server, gce):
    out = gce.machineTypes().aggregatedList(project=PROJECT, filter="name eq n1-standard-1").execute()
    assert out["kind"] == "compute#machineTypeAggregatedList"
    assert out["id"] == f"projects/{PROJECT}/aggregated/machineTypes"
    assert out["selfLink"] == link(server, f"projects/{PROJECT}/aggregated/machineTypes")
    assert out["unreachables"] == []
    assert {k: [(m["name"], m["zone"]) for m in v["machineTypes"]] for k, v in out["items"].items()} == {
        f"zones/{z}": [("n1-standard-1", z)] for z in ZONES}

    c3 = gce.machineTypes().aggregatedList(project=PROJECT, filter="name eq c3-standard-4").execute()
    assert "machineTypes" not in c3["items"][f"zones/{SPARSE_ZONE}"]
    assert c3["items"][f"zones/{SPARSE_ZONE}"]["warning"]["code"] == "NO_RESULTS_ON_PAGE"

    # GCE's default page is 500 items across zones; the token walks on through the zones in order.
    seen, token = [], None
    while True:
        page = gce.machineTypes().aggregatedList(project=PROJECT, pageToken=token).execute()
        for scope, entry in page["items"].items():
            seen += [(scope, m["name"]) for m in entry.get("machineTypes", [])]
        token = page.get("nextPageToken")
        if not token:
            break
    per_zone = {z: len(list_all(gce, z)) for z in ZONES}
    assert len(seen) == len(set(seen)) == sum(per_zone.values())
    assert [s for s, _ in seen] == sorted(s for s, _ in seen)


# -- instances.insert naming the catalog -------------------------------------------------------------


def test_insert_custom_and_predefined(server, gce):
    name = unique("mt-custom")
    op = gce.instances().insert(project=PROJECT, zone=ZONE, body=instance_body(
        name, f"zones/{ZONE}/machineTypes/n2-custom-4-10240")).execute()
    assert "error" not in wait_op(gce, op)
    inst = gce.instances().get(project=PROJECT, zone=ZONE, instance=name).execute()
    assert inst["machineType"] == link(server, f"projects/{PROJECT}/zones/{ZONE}/machineTypes/n2-custom-4-10240")
    assert inst["status"] == "RUNNING"
    wait_op(gce, gce.instances().delete(project=PROJECT, zone=ZONE, instance=name).execute())


def test_insert_refused(gce):
    before = names(gce.instances().list(project=PROJECT, zone=SPARSE_ZONE).execute().get("items", []))
    value = f"zones/{SPARSE_ZONE}/machineTypes/c3-standard-8"
    expect_error(gce.instances().insert(project=PROJECT, zone=SPARSE_ZONE,
                                        body=instance_body(unique("mt-c3"), value, SPARSE_ZONE)), 400, "invalid",
                 f"Invalid value for field 'resource.machineType': '{value}'. "
                 f"Machine type with name 'c3-standard-8' does not exist in zone '{SPARSE_ZONE}'.")
    odd = f"zones/{ZONE}/machineTypes/n2-custom-3-4096"
    expect_error(gce.instances().insert(project=PROJECT, zone=ZONE, body=instance_body(unique("mt-odd"), odd)),
                 400, "invalid", f"Invalid value for field 'resource.machineType': '{odd}'. Number of vCPUs of N2 "
                 "custom machine types should be a multiple of 2 up to 32, then a multiple of 4 up to 80, "
                 "while 3 is requested")
    after = names(gce.instances().list(project=PROJECT, zone=SPARSE_ZONE).execute().get("items", []))
    assert after == before
