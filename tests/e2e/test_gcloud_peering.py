"""gcloud: networks peerings create (both sides, so the peering is ACTIVE), list, list-routes and
delete; the networks are made and removed through the API, to keep the gcloud calls few."""

from __future__ import annotations

import json

from tests.conftest import PROJECT, unique, wait_op

REGION = "us-central1"


def test_peerings_create_list_delete(gcloud, server):
    gce = server.gce()
    a, b = unique("pa"), unique("pb")
    for net, block in ((a, "10.91.0.0/24"), (b, "10.92.0.0/24")):
        wait_op(gce, gce.networks().insert(project=PROJECT, body={"name": net, "autoCreateSubnetworks": False}).execute())
        wait_op(gce, gce.subnetworks().insert(project=PROJECT, region=REGION, body={
            "name": net, "network": f"global/networks/{net}", "ipCidrRange": block}).execute())
    try:
        gcloud("compute", "networks", "peerings", "create", "a-b", "--network", a, "--peer-network", b,
               "--export-custom-routes", "--import-custom-routes")
        gcloud("compute", "networks", "peerings", "create", "b-a", "--network", b, "--peer-network", a)
        listed = json.loads(gcloud("compute", "networks", "peerings", "list", "--network", a, "--format=json").stdout)
        (peering,) = listed[0]["peerings"]
        assert (peering["name"], peering["state"], peering["exportCustomRoutes"]) == ("a-b", "ACTIVE", True)
        assert peering["network"].endswith(f"/projects/{PROJECT}/global/networks/{b}")
        got = json.loads(gcloud("compute", "networks", "peerings", "list-routes", "a-b", "--network", a, "--region",
                                REGION, "--direction", "INCOMING", "--format=json").stdout)
        assert [(r["destRange"], r["type"], r["status"]) for r in got] == [
            ("10.92.0.0/24", "SUBNET_PEERING_ROUTE", "accepted")]
        gcloud("compute", "networks", "peerings", "delete", "a-b", "--network", a)
        other = gce.networks().get(project=PROJECT, network=b).execute()["peerings"][0]
        assert "peerings" not in gce.networks().get(project=PROJECT, network=a).execute()
        assert other["state"] == "INACTIVE"
    finally:
        for net in (a, b):
            for p in gce.networks().get(project=PROJECT, network=net).execute().get("peerings", []):
                wait_op(gce, gce.networks().removePeering(project=PROJECT, network=net,
                                                          body={"name": p["name"]}).execute())
            wait_op(gce, gce.subnetworks().delete(project=PROJECT, region=REGION, subnetwork=net).execute())
            wait_op(gce, gce.networks().delete(project=PROJECT, network=net).execute())
