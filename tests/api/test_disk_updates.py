"""disks.update and regionDisks.update through google-api-python-client (SQLite and PostgreSQL), with
the requests ``gcloud compute disks update`` makes (the disk's name in the body, the fields in
``paths``; ``updateMask`` works as well): the masked fields change, a masked field the body lacks is
cleared, and fields gstack cannot update are refused with the disk unchanged."""

from __future__ import annotations

from tests.conftest import PROJECT, unique
from tests.helpers.disks import REGION, make_region_disk
from tests.helpers.networks import done, fails

ZONE = "us-central1-a"
LICENSE = "projects/debian-cloud/global/licenses/debian-12-bookworm"


def test_update_changes_the_masked_fields(gce):
    name = unique("upd")
    done(gce, gce.disks().insert(project=PROJECT, zone=ZONE, body={"name": name, "sizeGb": "10"}))
    disks = gce.disks()
    done(gce, disks.update(project=PROJECT, zone=ZONE, disk=name, paths=["architecture", "sizeGb"], body={
        "name": name, "architecture": "ARM64", "sizeGb": "20"}), "update")
    got = disks.get(project=PROJECT, zone=ZONE, disk=name).execute()
    assert (got["architecture"], got["sizeGb"]) == ("ARM64", "20")
    done(gce, disks.update(project=PROJECT, zone=ZONE, disk=name, updateMask="guestOsFeatures,licenses", body={
        "name": name, "guestOsFeatures": [{"type": "UEFI_COMPATIBLE"}], "licenses": [LICENSE]}))
    done(gce, disks.update(project=PROJECT, zone=ZONE, disk=name, paths=["architecture"], body={"name": name}))
    got = disks.get(project=PROJECT, zone=ZONE, disk=name).execute()
    assert "architecture" not in got and got["guestOsFeatures"] == [{"type": "UEFI_COMPATIBLE"}]
    assert [u.split("/compute/v1/")[1] for u in got["licenses"]] == [LICENSE]
    for paths, body, reason in ((["provisionedIops"], {"provisionedIops": "5000"}, "invalid"),
                                (["description"], {"description": "x"}, "invalid"),
                                (["sizeGb"], {"sizeGb": "5"}, "invalid"),
                                (["architecture"], {"architecture": "MIPS"}, "invalid"),
                                ([], {"architecture": "ARM64"}, "required")):
        fails(disks.update(project=PROJECT, zone=ZONE, disk=name, paths=paths, body={"name": name, **body}), 400,
              reason)
    fails(disks.update(project=PROJECT, zone=ZONE, disk=name, paths=["provisionedIops"], body={
        "name": name, "provisionedIops": "5000"}), 400, "invalid", "Invalid value for field 'provisionedIops': "
        f"'5000'. provisionedIops can only be set on Extreme and Hyperdisk disks; disk '{name}' is of type "
        "pd-standard.")
    assert disks.get(project=PROJECT, zone=ZONE, disk=name).execute() == got
    fails(disks.update(project=PROJECT, zone=ZONE, disk=unique("nope"), paths=["sizeGb"], body={"sizeGb": "30"}),
          404, "notFound")
    done(gce, disks.delete(project=PROJECT, zone=ZONE, disk=name))


def test_region_disk_update(gce):
    name = unique("rupd")
    make_region_disk(gce, name)
    done(gce, gce.regionDisks().update(project=PROJECT, region=REGION, disk=name, paths=["sizeGb"], body={
        "name": name, "sizeGb": "40"}), "update")
    assert gce.regionDisks().get(project=PROJECT, region=REGION, disk=name).execute()["sizeGb"] == "40"
    done(gce, gce.regionDisks().delete(project=PROJECT, region=REGION, disk=name))
