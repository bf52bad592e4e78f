"""Zonal network endpoint groups (GCE_VM_IP_PORT) through google-api-python-client (SQLite and
PostgreSQL): the group and its endpoints, a backend service balancing to it and what getHealth and
listNetworkEndpoints report, GCE's refusals (changing nothing), and deletion in dependency order."""

from __future__ import annotations

import pytest

from tests.conftest import project_credentials, unique
from tests.helpers.networks import custom, done, fails, names

REGION, ZONE = "us-central1", "us-central1-c"
IMAGE = "projects/debian-cloud/global/images/family/debian-12"


@pytest.fixture(scope="module")
def project(server):
    name = unique("neg")
    gce = server.gce(project_credentials(server, name))
    vms = [unique("ep") for _ in range(2)]
    for vm in vms:
        done(gce, gce.instances().insert(project=name, zone=ZONE, body={
            "name": vm, "machineType": f"zones/{ZONE}/machineTypes/e2-micro",
            "disks": [{"boot": True, "autoDelete": True, "initializeParams": {"sourceImage": IMAGE}}],
            "networkInterfaces": [{"network": "global/networks/default"}]}))
    done(gce, gce.healthChecks().insert(project=name, body={"name": "hc", "type": "HTTP",
                                                            "httpHealthCheck": {"port": 8080}}))
    return name, gce, vms


def test_endpoints_behind_a_backend_service(server, project):
    name, gce, vms = project
    negs, g = gce.networkEndpointGroups(), unique("neg")
    done(gce, negs.insert(project=name, zone=ZONE, body={
        "name": g, "networkEndpointType": "GCE_VM_IP_PORT", "defaultPort": 8080,
        "network": "global/networks/default"}), "insert")
    got = negs.get(project=name, zone=ZONE, networkEndpointGroup=g).execute()
    base = f"{server.api}projects/{name}"
    assert got["kind"] == "compute#networkEndpointGroup" and got["size"] == 0 and got["defaultPort"] == 8080
    assert got["zone"] == f"{base}/zones/{ZONE}" and got["network"] == f"{base}/global/networks/default"
    assert got["selfLink"] == f"{base}/zones/{ZONE}/networkEndpointGroups/{g}"
    assert g in names(negs.list(project=name, zone=ZONE).execute())
    agg = negs.aggregatedList(project=name).execute()
    assert [n["name"] for n in agg["items"][f"zones/{ZONE}"]["networkEndpointGroups"]] == [g]
    done(gce, negs.attachNetworkEndpoints(project=name, zone=ZONE, networkEndpointGroup=g, body={
        "networkEndpoints": [{"instance": vms[0]}, {"instance": vms[1], "port": 9090}]}), "attachNetworkEndpoints")
    assert negs.get(project=name, zone=ZONE, networkEndpointGroup=g).execute()["size"] == 2
    ip0 = gce.instances().get(project=name, zone=ZONE, instance=vms[0]).execute()["networkInterfaces"][0]["networkIP"]
    listed = negs.listNetworkEndpoints(project=name, zone=ZONE, networkEndpointGroup=g).execute()
    assert listed["kind"] == "compute#networkEndpointGroupsListNetworkEndpoints"
    assert listed["items"][0] == {"networkEndpoint": {"instance": vms[0], "ipAddress": ip0, "port": 8080}}
    assert [i["networkEndpoint"]["port"] for i in listed["items"]] == [8080, 9090]
    request = negs.listNetworkEndpoints(project=name, zone=ZONE, networkEndpointGroup=g, maxResults=1)
    first = request.execute()
    rest = negs.listNetworkEndpoints_next(request, first)
    assert first["items"] == listed["items"][:1] and rest.execute()["items"] == listed["items"][1:]
    filtered = negs.listNetworkEndpoints(project=name, zone=ZONE, networkEndpointGroup=g,
                                         filter="networkEndpoint.port = 9090").execute()
    assert [i["networkEndpoint"]["instance"] for i in filtered["items"]] == [vms[1]]
    # a backend service balances to it: RATE with a per-endpoint limit
    bs = unique("bs")
    fails(gce.backendServices().insert(project=name, body={
        "name": bs, "healthChecks": ["global/healthChecks/hc"],
        "backends": [{"group": f"zones/{ZONE}/networkEndpointGroups/{g}", "balancingMode": "UTILIZATION"}]}),
        400, "invalid")
    done(gce, gce.backendServices().insert(project=name, body={
        "name": bs, "healthChecks": ["global/healthChecks/hc"],
        "backends": [{"group": f"zones/{ZONE}/networkEndpointGroups/{g}", "balancingMode": "RATE",
                      "maxRatePerEndpoint": 100}]}))
    ig = unique("ig")
    done(gce, gce.instanceGroups().insert(project=name, zone=ZONE, body={"name": ig}))
    fails(gce.backendServices().patch(project=name, backendService=bs, body={"backends": [
        {"group": f"zones/{ZONE}/networkEndpointGroups/{g}", "balancingMode": "RATE", "maxRatePerEndpoint": 100},
        {"group": f"zones/{ZONE}/instanceGroups/{ig}"}]}), 400, "invalid",
        "Invalid value for field 'resource.backends': ''. A backend service cannot mix instance group and network "
        "endpoint group backends.")
    backend = gce.backendServices().get(project=name, backendService=bs).execute()["backends"][0]
    assert backend == {"group": f"{base}/zones/{ZONE}/networkEndpointGroups/{g}", "balancingMode": "RATE",
                       "capacityScaler": 1.0, "maxRatePerEndpoint": 100}
    server.admin("health", "set", "--project", name, "--zone", ZONE, vms[1], "UNHEALTHY")
    try:
        health = gce.backendServices().getHealth(project=name, backendService=bs, body={
            "group": backend["group"]}).execute()
        shown = negs.listNetworkEndpoints(project=name, zone=ZONE, networkEndpointGroup=g, body={
            "healthStatus": "SHOW"}).execute()
    finally:
        server.admin("health", "set", "--project", name, "--zone", ZONE, vms[1], "HEALTHY")
    assert [(h["instance"].rsplit("/", 1)[1], h["port"], h["healthState"]) for h in health["healthStatus"]] == [
        (vms[0], 8080, "HEALTHY"), (vms[1], 9090, "UNHEALTHY")]
    assert [i["healths"][0]["healthState"] for i in shown["items"]] == ["HEALTHY", "UNHEALTHY"]
    assert shown["items"][0]["healths"][0]["backendService"] == {
        "backendService": f"{base}/global/backendServices/{bs}"}
    # deleted in dependency order: not while the service uses it
    fails(negs.delete(project=name, zone=ZONE, networkEndpointGroup=g), 400, "resourceInUseByAnotherResource",
          f"The network_endpoint_group resource 'projects/{name}/zones/{ZONE}/networkEndpointGroups/{g}' is "
          f"already being used by 'projects/{name}/global/backendServices/{bs}'")
    done(gce, negs.detachNetworkEndpoints(project=name, zone=ZONE, networkEndpointGroup=g, body={
        "networkEndpoints": [{"instance": vms[0]}]}), "detachNetworkEndpoints")
    listed = negs.listNetworkEndpoints(project=name, zone=ZONE, networkEndpointGroup=g).execute()
    assert [i["networkEndpoint"]["instance"] for i in listed["items"]] == [vms[1]]
    done(gce, gce.backendServices().delete(project=name, backendService=bs))
    done(gce, negs.delete(project=name, zone=ZONE, networkEndpointGroup=g), "delete")
    fails(negs.get(project=name, zone=ZONE, networkEndpointGroup=g), 404, "notFound")


def test_refusals_change_nothing(project):
    name, gce, vms = project
    negs, g = gce.networkEndpointGroups(), unique("neg")
    fails(negs.insert(project=name, zone=ZONE, body={"name": g, "networkEndpointType": "INTERNET_IP_PORT"}), 400,
          "invalid")
    fails(negs.insert(project=name, zone=ZONE, body={"name": g, "network": "global/networks/nope"}), 404,
          "notFound")
    assert g not in names(negs.list(project=name, zone=ZONE).execute())
    done(gce, negs.insert(project=name, zone=ZONE, body={"name": g}))  # no defaultPort: each endpoint names one
    fails(negs.insert(project=name, zone=ZONE, body={"name": g}), 409, "alreadyExists")
    for endpoints, reason in (([{"instance": vms[0]}], "invalid"),  # no port
                              ([{"instance": vms[0], "port": 80}, {"instance": "nope", "port": 80}], "notFound"),
                              ([{"instance": vms[0], "port": 80, "ipAddress": "10.200.0.9"}], "invalid"),
                              ([{"instance": vms[0], "port": 70000}], "invalid")):
        fails(negs.attachNetworkEndpoints(project=name, zone=ZONE, networkEndpointGroup=g, body={
            "networkEndpoints": endpoints}), 400 if reason == "invalid" else 404, reason)
    assert negs.get(project=name, zone=ZONE, networkEndpointGroup=g).execute()["size"] == 0
    done(gce, negs.attachNetworkEndpoints(project=name, zone=ZONE, networkEndpointGroup=g, body={
        "networkEndpoints": [{"instance": vms[0], "port": 80}]}))
    fails(negs.attachNetworkEndpoints(project=name, zone=ZONE, networkEndpointGroup=g, body={
        "networkEndpoints": [{"instance": vms[0], "port": 80}]}), 400, "invalid")
    fails(negs.detachNetworkEndpoints(project=name, zone=ZONE, networkEndpointGroup=g, body={
        "networkEndpoints": [{"instance": vms[1], "port": 80}]}), 400, "invalid")
    assert negs.get(project=name, zone=ZONE, networkEndpointGroup=g).execute()["size"] == 1
    done(gce, negs.delete(project=name, zone=ZONE, networkEndpointGroup=g))


def test_a_group_holds_its_network_and_subnetwork(project):
    name, gce, _ = project
    net, sub, g = custom(gce, name), unique("sub"), unique("neg")
    done(gce, gce.subnetworks().insert(project=name, region=REGION, body={
        "name": sub, "network": f"global/networks/{net}", "ipCidrRange": "10.77.0.0/24"}))
    fails(gce.networkEndpointGroups().insert(project=name, zone=ZONE, body={
        "name": g, "network": "global/networks/default", "subnetwork": f"regions/{REGION}/subnetworks/{sub}"}),
        400, "invalid")
    done(gce, gce.networkEndpointGroups().insert(project=name, zone=ZONE, body={
        "name": g, "network": f"global/networks/{net}", "subnetwork": f"regions/{REGION}/subnetworks/{sub}"}))
    user = f"'projects/{name}/zones/{ZONE}/networkEndpointGroups/{g}'"
    assert user in fails(gce.subnetworks().delete(project=name, region=REGION, subnetwork=sub), 400,
                         "resourceInUseByAnotherResource")["message"]
    done(gce, gce.networkEndpointGroups().delete(project=name, zone=ZONE, networkEndpointGroup=g))
    done(gce, gce.subnetworks().delete(project=name, region=REGION, subnetwork=sub))
    done(gce, gce.networks().delete(project=name, network=net))
