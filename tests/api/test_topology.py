"""Zones, regions, machine types, disk types and the seeded default VPC, read through googleapiclient."""

from __future__ import annotations

from tests.conftest import PROJECT, ZONE
from tests.helpers.compute import expect_error, link

ZONES = ["europe-west1-b", "us-central1-a", "us-central1-b", "us-central1-c"]
REGIONS = ["europe-west1", "us-central1"]


# -- zones and regions ------------------------------------------------------------------------------


def test_zone_get(server, gce):
    z = gce.zones().get(project=PROJECT, zone=ZONE).execute()
    assert z["kind"] == "compute#zone"
    assert z["id"] == "2000"
    assert z["name"] == ZONE
    assert z["status"] == "UP"
    assert z["region"] == link(server, f"projects/{PROJECT}/regions/us-central1")
    assert z["selfLink"] == link(server, f"projects/{PROJECT}/zones/{ZONE}")
    assert z["creationTimestamp"] == "1969-12-31T16:00:00.000-08:00"
    assert z["availableCpuPlatforms"] == sorted(z["availableCpuPlatforms"]) and z["availableCpuPlatforms"]


def test_zone_list_and_paging(server, gce):
    out = gce.zones().list(project=PROJECT).execute()
    assert out["kind"] == "compute#zoneList"
    assert [z["name"] for z in out["items"]] == ZONES
    assert out["selfLink"] == link(server, f"projects/{PROJECT}/zones")
    assert "nextPageToken" not in out
    assert {z["region"].rsplit("/", 1)[1] for z in out["items"]} == set(REGIONS)

    first = gce.zones().list(project=PROJECT, maxResults=3).execute()
    assert [z["name"] for z in first["items"]] == ZONES[:3]
    rest = gce.zones().list(project=PROJECT, maxResults=3, pageToken=first["nextPageToken"]).execute()
    assert [z["name"] for z in rest["items"]] == ZONES[3:]
    assert "nextPageToken" not in rest

    central = gce.zones().list(project=PROJECT, filter='name eq "us-central1-.*"').execute()
    assert [z["name"] for z in central["items"]] == ZONES[1:]


def test_zone_unknown(gce):
    expect_error(gce.zones().get(project=PROJECT, zone="mars-north1-a"), 404, "notFound",
                 f"The resource 'projects/{PROJECT}/zones/mars-north1-a' was not found")


def test_region_get(server, gce):
    r = gce.regions().get(project=PROJECT, region="us-central1").execute()
    assert r["kind"] == "compute#region"
    assert r["id"] == "1000"
    assert r["status"] == "UP"
    assert r["selfLink"] == link(server, f"projects/{PROJECT}/regions/us-central1")
    assert r["zones"] == [link(server, f"projects/{PROJECT}/zones/us-central1-{z}") for z in "abc"]
    quotas = {q["metric"]: q for q in r["quotas"]}
    assert {"CPUS", "INSTANCES", "DISKS_TOTAL_GB", "SSD_TOTAL_GB", "STATIC_ADDRESSES",
            "IN_USE_ADDRESSES"} <= set(quotas)
    for q in r["quotas"]:
        assert isinstance(q["limit"], float) and isinstance(q["usage"], float)
        assert 0 <= q["usage"] <= q["limit"]
    assert quotas["CPUS"]["limit"] == 96.0
    assert quotas["DISKS_TOTAL_GB"]["limit"] == 20480.0


def test_region_list(server, gce):
    out = gce.regions().list(project=PROJECT).execute()
    assert out["kind"] == "compute#regionList"
    assert [r["name"] for r in out["items"]] == REGIONS
    europe = out["items"][0]
    assert europe["zones"] == [link(server, f"projects/{PROJECT}/zones/europe-west1-b")]
    assert all(r["quotas"] for r in out["items"])
    expect_error(gce.regions().get(project=PROJECT, region="nowhere1"), 404, "notFound",
                 f"The resource 'projects/{PROJECT}/regions/nowhere1' was not found")


# -- machine types: tests/api/test_machine_types.py ------------------------------------------------


# -- disk types -------------------------------------------------------------------------------------


def test_disk_types(server, gce):
    dt = gce.diskTypes().get(project=PROJECT, zone=ZONE, diskType="pd-balanced").execute()
    assert dt["kind"] == "compute#diskType"
    assert dt["validDiskSize"] == "10GB-65536GB"
    assert dt["defaultDiskSizeGb"] == "100"
    assert dt["zone"] == link(server, f"projects/{PROJECT}/zones/{ZONE}")
    assert dt["selfLink"] == link(server, f"projects/{PROJECT}/zones/{ZONE}/diskTypes/pd-balanced")
    std = gce.diskTypes().get(project=PROJECT, zone=ZONE, diskType="pd-standard").execute()
    assert std["defaultDiskSizeGb"] == "500"

    out = gce.diskTypes().list(project=PROJECT, zone=ZONE).execute()
    assert out["kind"] == "compute#diskTypeList"
    assert [d["name"] for d in out["items"]] == ["pd-balanced", "pd-ssd", "pd-standard"]

    agg = gce.diskTypes().aggregatedList(project=PROJECT).execute()
    assert agg["kind"] == "compute#diskTypeAggregatedList"
    assert sorted(agg["items"]) == [f"zones/{z}" for z in ZONES]
    assert [d["name"] for d in agg["items"]["zones/europe-west1-b"]["diskTypes"]] == [
        "pd-balanced", "pd-ssd", "pd-standard"]
    assert agg["items"]["zones/us-central1-c"]["diskTypes"][0]["zone"] == link(
        server, f"projects/{PROJECT}/zones/us-central1-c")

    expect_error(gce.diskTypes().get(project=PROJECT, zone=ZONE, diskType="pd-floppy"), 404, "notFound",
                 f"The resource 'projects/{PROJECT}/zones/{ZONE}/diskTypes/pd-floppy' was not found")


# -- the default VPC --------------------------------------------------------------------------------


def test_default_network(server, gce):
    net = gce.networks().get(project=PROJECT, network="default").execute()
    assert net["kind"] == "compute#network"
    assert net["autoCreateSubnetworks"] is True
    assert net["routingConfig"]["routingMode"] == "REGIONAL"
    assert net["mtu"] == 1460
    assert net["id"].isdigit()
    assert net["selfLink"] == link(server, f"projects/{PROJECT}/global/networks/default")
    assert sorted(net["subnetworks"]) == [link(server, f"projects/{PROJECT}/regions/{r}/subnetworks/default")
                                          for r in REGIONS]
    listed = gce.networks().list(project=PROJECT).execute()
    assert listed["kind"] == "compute#networkList"
    assert "default" in {n["name"] for n in listed["items"]}
    expect_error(gce.networks().get(project=PROJECT, network="nope"), 404, "notFound",
                 f"The resource 'projects/{PROJECT}/global/networks/nope' was not found")


def test_default_subnetworks(server, gce):
    sub = gce.subnetworks().get(project=PROJECT, region="us-central1", subnetwork="default").execute()
    assert sub["kind"] == "compute#subnetwork"
    assert sub["ipCidrRange"] == "10.128.0.0/20"
    assert sub["gatewayAddress"] == "10.128.0.1"
    assert sub["region"] == link(server, f"projects/{PROJECT}/regions/us-central1")
    assert sub["network"] == link(server, f"projects/{PROJECT}/global/networks/default")
    assert sub["selfLink"] == link(server, f"projects/{PROJECT}/regions/us-central1/subnetworks/default")
    assert sub["fingerprint"]

    europe = gce.subnetworks().list(project=PROJECT, region="europe-west1").execute()
    assert europe["kind"] == "compute#subnetworkList"
    default = next(s for s in europe["items"] if s["name"] == "default")
    assert (default["ipCidrRange"], default["gatewayAddress"]) == ("10.132.0.0/20", "10.132.0.1")

    agg = gce.subnetworks().aggregatedList(project=PROJECT).execute()
    assert agg["kind"] == "compute#subnetworkAggregatedList"
    assert sorted(agg["items"]) == [f"regions/{r}" for r in REGIONS]
    ranges = {scope: {s["name"]: s["ipCidrRange"] for s in v["subnetworks"]}["default"]
              for scope, v in agg["items"].items()}
    assert ranges == {"regions/europe-west1": "10.132.0.0/20", "regions/us-central1": "10.128.0.0/20"}
    expect_error(gce.subnetworks().get(project=PROJECT, region="nowhere1", subnetwork="default"), 404, "notFound",
                 f"The resource 'projects/{PROJECT}/regions/nowhere1' was not found")


def test_default_firewalls(server, gce):
    out = gce.firewalls().list(project=PROJECT).execute()
    assert out["kind"] == "compute#firewallList"
    rules = {f["name"]: f for f in out["items"] if f["name"].startswith("default-allow-")}
    assert sorted(rules) == ["default-allow-icmp", "default-allow-internal", "default-allow-rdp",
                             "default-allow-ssh"]
    for rule in rules.values():
        assert rule["priority"] == 65534
        assert rule["direction"] == "INGRESS"
        assert rule["network"] == link(server, f"projects/{PROJECT}/global/networks/default")
    assert rules["default-allow-internal"]["sourceRanges"] == ["10.128.0.0/9"]
    ssh = gce.firewalls().get(project=PROJECT, firewall="default-allow-ssh").execute()
    assert ssh["kind"] == "compute#firewall"
    assert ssh["allowed"] == [{"IPProtocol": "tcp", "ports": ["22"]}]
    assert ssh["sourceRanges"] == ["0.0.0.0/0"]
    assert ssh["selfLink"] == link(server, f"projects/{PROJECT}/global/firewalls/default-allow-ssh")
    expect_error(gce.firewalls().get(project=PROJECT, firewall="nope"), 404, "notFound",
                 f"The resource 'projects/{PROJECT}/global/firewalls/nope' was not found")
