"""routes: system routes of networks and subnetworks, and static routes (SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest

from tests.conftest import project_credentials, unique
from tests.helpers.networks import ROUTE_NAME, custom, done, fails, names, routes_of

REGION = "us-central1"
ZONE = "us-central1-a"
IMAGE = "projects/debian-cloud/global/images/family/debian-12"
GATEWAY = "global/gateways/default-internet-gateway"


@pytest.fixture(scope="module")
def project(server):
    name = unique("rt")
    return name, server.gce(project_credentials(server, name))


@pytest.fixture(scope="module")
def net(project):
    """A custom network with one subnetwork, 10.5.0.0/24 in us-central1."""
    name, gce = project
    net_name = custom(gce, name)
    done(gce, gce.subnetworks().insert(project=name, region=REGION, body={
        "name": net_name, "network": f"global/networks/{net_name}", "ipCidrRange": "10.5.0.0/24"}))
    return net_name


def route_names(gce, project: str) -> list[str]:
    return names(gce.routes().list(project=project).execute())


def insert(gce, project: str, net: str, **fields):
    return gce.routes().insert(project=project, body={"name": unique("r"), "network": f"global/networks/{net}",
                                                      "destRange": "192.168.10.0/24", **fields})


def test_system_routes_of_a_network_and_its_subnetwork(server, project, net):
    name, gce = project
    routes = {r["destRange"]: r for r in routes_of(gce, name, net)}
    assert set(routes) == {"0.0.0.0/0", "10.5.0.0/24"}
    internet, local = routes["0.0.0.0/0"], routes["10.5.0.0/24"]
    assert ROUTE_NAME.match(internet["name"]) and ROUTE_NAME.match(local["name"])
    assert internet["kind"] == "compute#route" and internet["priority"] == 1000
    assert internet["nextHopGateway"] == f"{server.api}projects/{name}/{GATEWAY}"
    assert internet["description"] == "Default route to the Internet."
    assert local["nextHopNetwork"] == f"{server.api}projects/{name}/global/networks/{net}" and local["priority"] == 0
    assert local["description"] == "Default local route to the subnetwork 10.5.0.0/24."
    got = gce.routes().get(project=name, route=local["name"]).execute()
    assert got == local and gce.routes().get(project=name, route=local["id"]).execute() == local


def test_a_subnetwork_route_is_not_deletable_while_its_subnetwork_exists(project, net):
    name, gce = project
    [local] = [r for r in routes_of(gce, name, net) if r["destRange"] == "10.5.0.0/24"]
    fails(gce.routes().delete(project=name, route=local["name"]), 400, "resourceInUseByAnotherResource",
          f"The route resource 'projects/{name}/global/routes/{local['name']}' is already being used by "
          f"'projects/{name}/regions/{REGION}/subnetworks/{net}'")
    assert gce.routes().get(project=name, route=local["name"]).execute() == local


def test_static_routes(server, project, net):
    name, gce = project
    op = done(gce, insert(gce, name, net, nextHopGateway=GATEWAY, priority=100, tags=["egress"],
                          description="out"), "insert")
    assert "zone" not in op and "region" not in op
    route = gce.routes().get(project=name, route=op["targetLink"].rsplit("/", 1)[1]).execute()
    assert route["priority"] == 100 and route["tags"] == ["egress"] and route["description"] == "out"
    assert route["nextHopGateway"] == f"{server.api}projects/{name}/{GATEWAY}" and route["routeType"] == "STATIC"
    via_ip = done(gce, insert(gce, name, net, destRange="172.20.0.0/16", nextHopIp="10.5.0.10"))
    got = gce.routes().get(project=name, route=via_ip["targetLink"].rsplit("/", 1)[1]).execute()
    assert got["nextHopIp"] == "10.5.0.10" and got["priority"] == 1000
    for created in (op, via_ip):
        done(gce, gce.routes().delete(project=name, route=created["targetLink"].rsplit("/", 1)[1]), "delete")


def test_route_to_an_instance(project, net):
    name, gce = project
    vm = unique("hop")
    done(gce, gce.instances().insert(project=name, zone=ZONE, body={
        "name": vm, "machineType": f"zones/{ZONE}/machineTypes/e2-micro", "canIpForward": True,
        "disks": [{"boot": True, "autoDelete": True, "initializeParams": {"sourceImage": IMAGE}}],
        "networkInterfaces": [{"subnetwork": f"regions/{REGION}/subnetworks/{net}"}]}))
    op = done(gce, insert(gce, name, net, nextHopInstance=f"zones/{ZONE}/instances/{vm}"))
    route = gce.routes().get(project=name, route=op["targetLink"].rsplit("/", 1)[1]).execute()
    assert route["nextHopInstance"].endswith(f"/projects/{name}/zones/{ZONE}/instances/{vm}")
    # an instance on another network is not a next hop of this one
    fails(insert(gce, name, "default", nextHopInstance=f"zones/{ZONE}/instances/{vm}"), 400, "invalid")
    done(gce, gce.routes().delete(project=name, route=route["name"]))
    done(gce, gce.instances().delete(project=name, zone=ZONE, instance=vm))


@pytest.mark.parametrize("fields, status, reason, field", [
    ({"nextHopGateway": GATEWAY, "nextHopIp": "10.5.0.9"}, 400, "invalid", "resource"),
    ({}, 400, "invalid", "resource"),
    ({"nextHopGateway": "global/gateways/other-gateway"}, 400, "invalid", "resource.nextHopGateway"),
    ({"nextHopIp": "10.9.0.9"}, 400, "invalid", "resource.nextHopIp"),
    ({"nextHopVpnTunnel": "regions/us-central1/vpnTunnels/t"}, 400, "invalid", "resource.nextHopVpnTunnel"),
    ({"nextHopGateway": GATEWAY, "destRange": "10.5.0.128/25"}, 400, "invalid", "resource.destRange"),
    ({"nextHopGateway": GATEWAY, "destRange": "10.5.0.1/24"}, 400, "invalid", "resource.destRange"),
    ({"nextHopGateway": GATEWAY, "priority": 70000}, 400, "invalid", "resource.priority"),
    ({"nextHopInstance": f"zones/{ZONE}/instances/no-such-vm"}, 404, "notFound", None),
])
def test_insert_refusals_create_nothing(project, net, fields, status, reason, field):
    name, gce = project
    before = route_names(gce, name)
    err = fails(insert(gce, name, net, **fields), status, reason)
    if field:
        assert err["message"].startswith(f"Invalid value for field '{field}'"), err
    assert route_names(gce, name) == before


def test_route_on_a_missing_network(project):
    name, gce = project
    missing = unique("nonet")
    fails(insert(gce, name, missing, nextHopGateway=GATEWAY), 404, "notFound",
          f"The resource 'projects/{name}/global/networks/{missing}' was not found")


def test_the_default_route_may_be_deleted(project):
    name, gce = project
    net_name = custom(gce, name)
    [internet] = routes_of(gce, name, net_name)
    done(gce, gce.routes().delete(project=name, route=internet["name"]))
    assert routes_of(gce, name, net_name) == []
    done(gce, gce.networks().delete(project=name, network=net_name))
