"""regionDisks against ``gstack serve`` (SQLite and PostgreSQL) with google-api-python-client: insert
with two replica zones, get/list, resize, setLabels, createSnapshot, attached to instances of either
replica zone (not of a third), delete refused while attached, and bad input refused with nothing made."""

from __future__ import annotations

from tests.conftest import PROJECT, unique, wait_op
from tests.helpers.compute import expect_error, link
from tests.helpers.disks import FAMILY, REGION, ZONES, make_region_disk


def rd_link(server, name: str) -> str:
    return link(server, f"projects/{PROJECT}/regions/{REGION}/disks/{name}")


def make_vm(gce, name: str, zone: str) -> dict:
    op = wait_op(gce, gce.instances().insert(project=PROJECT, zone=zone, body={
        "name": name, "machineType": f"zones/{zone}/machineTypes/e2-micro",
        "disks": [{"boot": True, "autoDelete": True, "initializeParams": {"sourceImage": FAMILY}}],
        "networkInterfaces": [{"network": "global/networks/default"}]}).execute())
    assert "error" not in op, op
    return gce.instances().get(project=PROJECT, zone=zone, instance=name).execute()


def test_region_disk_lifecycle(server, gce):
    name = unique("rdisk")
    disk = make_region_disk(gce, name, labels={"tier": "db"})
    assert disk["kind"] == "compute#disk" and disk["status"] == "READY"
    assert disk["selfLink"] == rd_link(server, name)
    assert disk["region"] == link(server, f"projects/{PROJECT}/regions/{REGION}") and "zone" not in disk
    assert disk["replicaZones"] == [link(server, f"projects/{PROJECT}/zones/{z}") for z in ZONES]
    assert disk["type"] == link(server, f"projects/{PROJECT}/regions/{REGION}/diskTypes/pd-balanced")
    assert disk["sizeGb"] == "20" and disk["labels"] == {"tier": "db"}
    listed = gce.regionDisks().list(project=PROJECT, region=REGION).execute()
    assert listed["kind"] == "compute#diskList" and name in [d["name"] for d in listed["items"]]
    assert listed["selfLink"] == link(server, f"projects/{PROJECT}/regions/{REGION}/disks")
    zonal = gce.disks().list(project=PROJECT, zone=ZONES[0]).execute().get("items", [])
    assert name not in [d["name"] for d in zonal]
    agg = gce.disks().aggregatedList(project=PROJECT, filter=f"name eq {name}").execute()["items"]
    assert [d["name"] for d in agg[f"regions/{REGION}"]["disks"]] == [name]  # gcloud disks list shows it
    assert "disks" not in agg[f"zones/{ZONES[0]}"]

    op = wait_op(gce, gce.regionDisks().resize(project=PROJECT, region=REGION, disk=name,
                                               body={"sizeGb": "30"}).execute())
    assert op["operationType"] == "resize" and "error" not in op
    expect_error(gce.regionDisks().resize(project=PROJECT, region=REGION, disk=name, body={"sizeGb": "25"}), 400,
                 "invalid")
    wait_op(gce, gce.regionDisks().setLabels(project=PROJECT, region=REGION, resource=name, body={
        "labels": {"tier": "web"}, "labelFingerprint": disk["labelFingerprint"]}).execute())
    disk = gce.regionDisks().get(project=PROJECT, region=REGION, disk=name).execute()
    assert disk["sizeGb"] == "30" and disk["labels"] == {"tier": "web"}

    snap = unique("rdsnap")
    op = wait_op(gce, gce.regionDisks().createSnapshot(project=PROJECT, region=REGION, disk=name,
                                                       body={"name": snap}).execute())
    assert op["operationType"] == "createSnapshot" and "error" not in op, op
    got = gce.snapshots().get(project=PROJECT, snapshot=snap).execute()
    assert got["status"] == "READY" and got["sourceDisk"] == rd_link(server, name) and got["diskSizeGb"] == "30"

    # Attachable in either replica zone; not in a third zone of the region.
    vm_b = make_vm(gce, unique("rdvm"), ZONES[1])
    op = wait_op(gce, gce.instances().attachDisk(project=PROJECT, zone=ZONES[1], instance=vm_b["name"], body={
        "source": rd_link(server, name)}).execute())
    assert "error" not in op, op
    disk = gce.regionDisks().get(project=PROJECT, region=REGION, disk=name).execute()
    assert disk["users"] == [link(server, f"projects/{PROJECT}/zones/{ZONES[1]}/instances/{vm_b['name']}")]
    expect_error(gce.regionDisks().delete(project=PROJECT, region=REGION, disk=name), 400,
                 "resourceInUseByAnotherResource")
    wait_op(gce, gce.instances().detachDisk(project=PROJECT, zone=ZONES[1], instance=vm_b["name"],
                                            deviceName=name).execute())
    vm_c = make_vm(gce, unique("rdvm"), "us-central1-c")
    expect_error(gce.instances().attachDisk(project=PROJECT, zone="us-central1-c", instance=vm_c["name"], body={
        "source": rd_link(server, name)}), 400, "invalid")
    vm_a = unique("rdvm")
    op = wait_op(gce, gce.instances().insert(project=PROJECT, zone=ZONES[0], body={
        "name": vm_a, "machineType": f"zones/{ZONES[0]}/machineTypes/e2-micro",
        "disks": [{"boot": True, "autoDelete": True, "initializeParams": {"sourceImage": FAMILY}},
                  {"source": rd_link(server, name)}],
        "networkInterfaces": [{"network": "global/networks/default"}]}).execute())
    assert "error" not in op, op
    assert gce.instances().get(project=PROJECT, zone=ZONES[0], instance=vm_a).execute()["disks"][1]["source"] == \
        rd_link(server, name)
    for zone, vm in ((ZONES[0], vm_a), (ZONES[1], vm_b["name"]), ("us-central1-c", vm_c["name"])):
        wait_op(gce, gce.instances().delete(project=PROJECT, zone=zone, instance=vm).execute())
    op = wait_op(gce, gce.regionDisks().delete(project=PROJECT, region=REGION, disk=name).execute())
    assert op["operationType"] == "delete"
    expect_error(gce.regionDisks().get(project=PROJECT, region=REGION, disk=name), 404, "notFound",
                 f"The resource 'projects/{PROJECT}/regions/{REGION}/disks/{name}' was not found")


def test_region_disk_bad_input(server, gce):
    def refused(status: int, reason: str, **fields) -> None:
        name = unique("rbad")
        body = {"name": name, "sizeGb": "20", "replicaZones": [f"zones/{z}" for z in ZONES], **fields}
        expect_error(gce.regionDisks().insert(project=PROJECT, region=REGION, body=body), status, reason)
        expect_error(gce.regionDisks().get(project=PROJECT, region=REGION, disk=name), 404, "notFound")

    refused(400, "required", replicaZones=None)
    refused(400, "invalid", replicaZones=["zones/us-central1-a"])
    refused(400, "invalid", replicaZones=["zones/us-central1-a", "zones/us-central1-a"])
    refused(400, "invalid", replicaZones=["zones/us-central1-a", "zones/europe-west1-b"])
    refused(400, "invalid", replicaZones=["zones/us-central1-a", "zones/no-such-zone"])
    refused(400, "invalid", type=f"regions/{REGION}/diskTypes/pd-standard")  # under 200 GB
    refused(400, "invalid", type="regions/europe-west1/diskTypes/pd-ssd")
    refused(400, "invalid", sizeGb="5")
    name = unique("rdup")
    make_region_disk(gce, name)
    expect_error(gce.regionDisks().insert(project=PROJECT, region=REGION, body={
        "name": name, "sizeGb": "200", "replicaZones": [f"zones/{z}" for z in ZONES]}), 409, "alreadyExists",
        f"The resource 'projects/{PROJECT}/regions/{REGION}/disks/{name}' already exists")
    wait_op(gce, gce.regionDisks().delete(project=PROJECT, region=REGION, disk=name).execute())
