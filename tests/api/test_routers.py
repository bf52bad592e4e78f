"""Cloud Routers and Cloud NAT through googleapiclient, on both databases: the router's fields and
defaults, NAT addresses (an allocated one for AUTO_ONLY, static ones used for MANUAL_ONLY),
getRouterStatus, GCE's refusals changing nothing, and what delete gives back."""

from __future__ import annotations

import pytest

from tests.conftest import project_credentials, unique, wait_op
from tests.helpers.compute import expect_error

REGION, ZONE = "us-central1", "us-central1-a"
IMAGE = "projects/debian-cloud/global/images/family/debian-12"


@pytest.fixture(scope="module")
def project(server):
    name = unique("rtr")
    return name, server.gce(project_credentials(server, name))


def ok(gce, request) -> dict:
    op = wait_op(gce, request.execute())
    assert op["status"] == "DONE" and "error" not in op, op
    return op


def in_use(gce, project: str) -> float:
    quotas = gce.regions().get(project=project, region=REGION).execute()["quotas"]
    return next(q["usage"] for q in quotas if q["metric"] == "IN_USE_ADDRESSES")


def auto_nat(name: str = "egress", **extra) -> dict:
    return {"name": name, "natIpAllocateOption": "AUTO_ONLY",
            "sourceSubnetworkIpRangesToNat": "ALL_SUBNETWORKS_ALL_IP_RANGES", **extra}


def test_router_with_auto_nat(project):
    name, gce = project
    vm = unique("priv")
    ok(gce, gce.instances().insert(project=name, zone=ZONE, body={
        "name": vm, "machineType": f"zones/{ZONE}/machineTypes/e2-micro", "networkInterfaces": [{}],
        "disks": [{"boot": True, "autoDelete": True, "initializeParams": {"sourceImage": IMAGE}}]}))
    before = in_use(gce, name)
    router = unique("cr")
    op = ok(gce, gce.routers().insert(project=name, region=REGION, body={
        "name": router, "network": "global/networks/default", "bgp": {"asn": 64514},
        "nats": [auto_nat(logConfig={"enable": True, "filter": "ERRORS_ONLY"})]}))
    assert op["operationType"] == "insert" and op["region"].endswith(f"/regions/{REGION}")
    got = gce.routers().get(project=name, region=REGION, router=router).execute()
    assert got["kind"] == "compute#router" and got["network"].endswith(f"/projects/{name}/global/networks/default")
    assert got["bgp"] == {"asn": 64514, "advertiseMode": "DEFAULT", "keepaliveInterval": 20}
    nat = got["nats"][0]
    assert (nat["minPortsPerVm"], nat["udpIdleTimeoutSec"], nat["tcpEstablishedIdleTimeoutSec"]) == (64, 30, 1200)
    assert nat["logConfig"] == {"enable": True, "filter": "ERRORS_ONLY"}
    status = gce.routers().getRouterStatus(project=name, region=REGION, router=router).execute()
    assert status["kind"] == "compute#routerStatusResponse"
    nat_status = status["result"]["natStatus"][0]
    assert len(nat_status["autoAllocatedNatIps"]) == 1 and nat_status["numVmEndpointsWithNatMappings"] >= 1
    assert in_use(gce, name) == before + 1
    listed = gce.routers().list(project=name, region=REGION).execute()
    assert [r["name"] for r in listed["items"]] == [router]
    agg = gce.routers().aggregatedList(project=name).execute()
    assert [r["name"] for r in agg["items"][f"regions/{REGION}"]["routers"]] == [router]
    # A second NAT translating every subnetwork of the network in the region is refused.
    expect_error(gce.routers().insert(project=name, region=REGION, body={
        "name": unique("cr"), "network": "global/networks/default", "nats": [auto_nat("other")]}), 400, "invalid")
    ok(gce, gce.routers().patch(project=name, region=REGION, router=router, body={"nats": []}))
    assert "nats" not in gce.routers().get(project=name, region=REGION, router=router).execute()
    assert in_use(gce, name) == before
    ok(gce, gce.routers().delete(project=name, region=REGION, router=router))
    ok(gce, gce.instances().delete(project=name, zone=ZONE, instance=vm))


def test_manual_nat_addresses(project):
    name, gce = project
    addr = unique("natip")
    ok(gce, gce.addresses().insert(project=name, region=REGION, body={"name": addr}))
    link = f"projects/{name}/regions/{REGION}/addresses/{addr}"
    router = unique("cr")
    ok(gce, gce.routers().insert(project=name, region=REGION, body={
        "name": router, "network": "global/networks/default",
        "nats": [{"name": "manual", "natIpAllocateOption": "MANUAL_ONLY", "natIps": [link],
                  "sourceSubnetworkIpRangesToNat": "LIST_OF_SUBNETWORKS",
                  "subnetworks": [{"name": f"regions/{REGION}/subnetworks/default",
                                   "sourceIpRangesToNat": ["PRIMARY_IP_RANGE"]}]}]}))
    got = gce.addresses().get(project=name, region=REGION, address=addr).execute()
    assert got["status"] == "IN_USE" and got["users"][0].endswith(f"/regions/{REGION}/routers/{router}")
    status = gce.routers().getRouterStatus(project=name, region=REGION, router=router).execute()["result"]
    assert status["natStatus"][0]["userAllocatedNatIps"] == [got["address"]]
    expect_error(gce.addresses().delete(project=name, region=REGION, address=addr), 400,
                 "resourceInUseByAnotherResource")
    ok(gce, gce.routers().delete(project=name, region=REGION, router=router))
    assert gce.addresses().get(project=name, region=REGION, address=addr).execute()["status"] == "RESERVED"
    ok(gce, gce.addresses().delete(project=name, region=REGION, address=addr))


@pytest.mark.parametrize("body,reason", [
    ({"network": "global/networks/default", "nats": [{"name": "n", "sourceSubnetworkIpRangesToNat":
                                                       "ALL_SUBNETWORKS_ALL_IP_RANGES"}]}, "required"),
    ({"network": "global/networks/default", "nats": [auto_nat(natIps=["regions/us-central1/addresses/x"])]},
     "invalid"),
    ({"network": "global/networks/default", "nats": [{"name": "n", "natIpAllocateOption": "MANUAL_ONLY",
                                                       "sourceSubnetworkIpRangesToNat": "ALL_SUBNETWORKS_ALL_IP_RANGES"}]},
     "invalid"),
    ({"network": "global/networks/default", "nats": [auto_nat(sourceSubnetworkIpRangesToNat="LIST_OF_SUBNETWORKS")]},
     "invalid"),
    ({"network": "global/networks/default", "nats": [auto_nat(), auto_nat()]}, "invalid"),
    ({"network": "global/networks/default", "bgp": {"asn": 15169}}, "invalid"),
    ({"network": "global/networks/default", "nats": [auto_nat(minPortsPerVm=1)]}, "invalid"),
    ({"nats": []}, "required"),
    ({"network": "global/networks/no-such-network"}, "notFound"),
])
def test_refusals_change_nothing(project, body, reason):
    name, gce = project
    router = unique("bad")
    expect_error(gce.routers().insert(project=name, region=REGION, body={"name": router, **body}),
                 404 if reason == "notFound" else 400, reason)
    expect_error(gce.routers().get(project=name, region=REGION, router=router), 404, "notFound")


def test_duplicate_and_immutable(project):
    name, gce = project
    router = unique("cr")
    ok(gce, gce.routers().insert(project=name, region=REGION, body={"name": router, "network": "global/networks/default"}))
    expect_error(gce.routers().insert(project=name, region=REGION, body={
        "name": router, "network": "global/networks/default"}), 409, "alreadyExists")
    other = unique("n")
    ok(gce, gce.networks().insert(project=name, body={"name": other, "autoCreateSubnetworks": False}))
    expect_error(gce.routers().patch(project=name, region=REGION, router=router, body={
        "network": f"global/networks/{other}"}), 400, "invalid")
    ok(gce, gce.routers().update(project=name, region=REGION, router=router, body={
        "name": router, "network": "global/networks/default", "description": "put"}))
    assert gce.routers().get(project=name, region=REGION, router=router).execute()["description"] == "put"
    ok(gce, gce.routers().delete(project=name, region=REGION, router=router))
    ok(gce, gce.networks().delete(project=name, network=other))
