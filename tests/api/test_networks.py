"""networks: end to end against ``gstack serve`` (SQLite and PostgreSQL) with google-api-python-client.

Tests that count resources run in a project of their own; the others name what they create uniquely.
"""

from __future__ import annotations

import uuid

import pytest

from tests.conftest import project_credentials, unique
from tests.helpers.networks import (
    ROUTE_NAME,
    custom,
    done,
    fails,
    names,
    network_names,
    routes_of,
    subnets_of,
)

AUTO_RANGES = {"us-central1": "10.128.0.0/20", "europe-west1": "10.132.0.0/20"}


@pytest.fixture(scope="module")
def project(server):
    """(name, client) of a project of this module's own: it counts networks, routes and firewalls."""
    name = unique("net")
    return name, server.gce(project_credentials(server, name))


# -- the default VPC -------------------------------------------------------------------------------


def test_default_network_of_a_new_project(server, project):
    name, gce = project
    net = gce.networks().get(project=name, network="default").execute()
    assert net["kind"] == "compute#network" and net["autoCreateSubnetworks"] is True
    assert net["mtu"] == 1460 and net["routingConfig"]["routingMode"] == "REGIONAL"
    assert net["selfLink"] == f"{server.api}projects/{name}/global/networks/default"
    assert net["selfLinkWithId"] == f"{server.api}projects/{name}/global/networks/{net['id']}"
    assert net["id"].isdigit()
    assert sorted(net["subnetworks"]) == sorted(
        f"{server.api}projects/{name}/regions/{r}/subnetworks/default" for r in AUTO_RANGES)
    subnets = subnets_of(gce, name, "default")
    assert {r: s["ipCidrRange"] for r, s in subnets.items()} == AUTO_RANGES
    assert subnets["us-central1"]["gatewayAddress"] == "10.128.0.1"
    routes = routes_of(gce, name, "default")
    assert all(ROUTE_NAME.match(r["name"]) for r in routes)
    [internet] = [r for r in routes if r["destRange"] == "0.0.0.0/0"]
    assert internet["priority"] == 1000
    assert internet["nextHopGateway"] == f"{server.api}projects/{name}/global/gateways/default-internet-gateway"
    local = {r["destRange"]: r for r in routes if r["destRange"] != "0.0.0.0/0"}
    assert set(local) == set(AUTO_RANGES.values())
    assert all(r["nextHopNetwork"] == net["selfLink"] and r["priority"] == 0 for r in local.values())
    firewalls = names(gce.firewalls().list(project=name).execute())
    assert firewalls == ["default-allow-icmp", "default-allow-internal", "default-allow-rdp", "default-allow-ssh"]


# -- insert, get, list -----------------------------------------------------------------------------


def test_insert_custom_network_as_gcloud_sends_it(server, project):
    name, gce = project
    net_name = unique("gnet")
    body = {"autoCreateSubnetworks": False, "name": net_name, "routingConfig": {"routingMode": "REGIONAL"}}
    op = done(gce, gce.networks().insert(project=name, body=body), "insert")
    assert "zone" not in op and "region" not in op
    assert op["selfLink"].startswith(f"{server.api}projects/{name}/global/operations/")
    assert op["targetLink"] == f"{server.api}projects/{name}/global/networks/{net_name}"
    net = gce.networks().get(project=name, network=net_name).execute()
    assert op["targetId"] == net["id"]
    assert net["autoCreateSubnetworks"] is False and "subnetworks" not in net
    assert net["routingConfig"]["routingMode"] == "REGIONAL"
    assert net["networkFirewallPolicyEnforcementOrder"] == "AFTER_CLASSIC_FIREWALL"
    assert net["mtu"] == 1460
    # a custom network gets its default route, and no subnetwork
    [route] = routes_of(gce, name, net_name)
    assert route["destRange"] == "0.0.0.0/0" and ROUTE_NAME.match(route["name"])
    assert subnets_of(gce, name, net_name) == {}
    # by numeric id too
    assert gce.networks().get(project=name, network=net["id"]).execute()["name"] == net_name
    listed = gce.networks().list(project=name, filter=f"name = {net_name}").execute()
    assert names(listed) == [net_name] and listed["kind"] == "compute#networkList"
    done(gce, gce.networks().delete(project=name, network=net_name), "delete")
    assert routes_of(gce, name, net_name) == []


def test_insert_auto_network_gets_a_subnetwork_per_region(server, project):
    name, gce = project
    net_name = unique("anet")
    done(gce, gce.networks().insert(project=name, body={"name": net_name, "autoCreateSubnetworks": True,
                                                        "mtu": 1500, "description": "auto"}))
    net = gce.networks().get(project=name, network=net_name).execute()
    assert net["mtu"] == 1500 and net["description"] == "auto"
    subnets = subnets_of(gce, name, net_name)
    assert {r: s["ipCidrRange"] for r, s in subnets.items()} == AUTO_RANGES
    assert all(s["name"] == net_name for s in subnets.values())
    assert sorted(net["subnetworks"]) == sorted(s["selfLink"] for s in subnets.values())
    assert {r["destRange"] for r in routes_of(gce, name, net_name)} == {"0.0.0.0/0", *AUTO_RANGES.values()}
    # its own subnetworks cannot be deleted while it is in auto mode
    fails(gce.subnetworks().delete(project=name, region="us-central1", subnetwork=net_name), 400, "invalid")
    # deleting the network takes them and its routes along
    done(gce, gce.networks().delete(project=name, network=net_name))
    assert subnets_of(gce, name, net_name) == {} and routes_of(gce, name, net_name) == []
    fails(gce.networks().get(project=name, network=net_name), 404, "notFound",
          f"The resource 'projects/{name}/global/networks/{net_name}' was not found")


@pytest.mark.parametrize("body, start, why", [
    ({"IPv4Range": "10.0.0.0/16"}, "for field 'resource.IPv4Range'", "Legacy networks are not supported"),
    ({"IPv4Range": "10.0.0.0/16", "autoCreateSubnetworks": False}, "for field 'resource.IPv4Range'", "Legacy"),
    ({}, "for field 'resource.autoCreateSubnetworks'", "Legacy networks are not supported"),
    ({"autoCreateSubnetworks": False, "mtu": 1000}, "for field 'resource.mtu'", "Must be between 1300 and 8896."),
    ({"autoCreateSubnetworks": False, "routingConfig": {"routingMode": "WORLD"}},
     "at 'resource.routingConfig.routingMode'", "WORLD"),
])
def test_insert_refusals_create_nothing(project, body, start, why):
    name, gce = project
    before = network_names(gce, name)
    net_name = unique("bad")
    err = fails(gce.networks().insert(project=name, body={"name": net_name, **body}), 400, "invalid")
    assert err["message"].startswith(f"Invalid value {start}") and why in err["message"], err
    assert network_names(gce, name) == before


def test_insert_bad_name_missing_name_and_duplicate(project):
    name, gce = project
    before = network_names(gce, name)
    fails(gce.networks().insert(project=name, body={"name": "Bad_Name", "autoCreateSubnetworks": False}), 400,
          "invalid", "Invalid value for field 'resource.name': 'Bad_Name'. "
                     "Must be a match of regex '(?:[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?)'")
    fails(gce.networks().insert(project=name, body={"autoCreateSubnetworks": False}), 400, "required",
          "Required field 'resource.name' not specified")
    fails(gce.networks().insert(project=name, body={"name": "default", "autoCreateSubnetworks": False}), 409,
          "alreadyExists", f"The resource 'projects/{name}/global/networks/default' already exists")
    assert network_names(gce, name) == before


def test_networks_quota(server, project):
    name, gce = project
    count = len(network_names(gce, name))
    server.admin("project", "set-quota", "--project", name, "--metric", "NETWORKS", "--limit", str(count))
    try:
        fails(gce.networks().insert(project=name, body={"name": unique("over"), "autoCreateSubnetworks": False}),
              403, "quotaExceeded", f"Quota 'NETWORKS' exceeded.  Limit: {float(count)} globally.")
        assert len(network_names(gce, name)) == count
    finally:
        server.admin("project", "set-quota", "--project", name, "--metric", "NETWORKS", "--limit", "15")


# -- patch, switchToCustomMode ---------------------------------------------------------------------


def test_patch_is_a_json_merge_patch(project):
    name, gce = project
    net_name = custom(gce, name)
    done(gce, gce.networks().patch(project=name, network=net_name, body={
        "description": "patched", "mtu": 1500, "routingConfig": {"routingMode": "GLOBAL"}}), "patch")
    net = gce.networks().get(project=name, network=net_name).execute()
    assert net["description"] == "patched" and net["mtu"] == 1500
    assert net["routingConfig"]["routingMode"] == "GLOBAL"
    done(gce, gce.networks().patch(project=name, network=net_name, body={"description": "again"}))
    net = gce.networks().get(project=name, network=net_name).execute()
    assert net["description"] == "again" and net["mtu"] == 1500 and net["routingConfig"]["routingMode"] == "GLOBAL"
    # what patch cannot change, and bad values: refused, nothing changed
    fails(gce.networks().patch(project=name, network=net_name, body={"autoCreateSubnetworks": True}), 400,
          "invalid")
    fails(gce.networks().patch(project=name, network=net_name, body={"mtu": 9000}), 400, "invalid",
          "Invalid value for field 'resource.mtu': '9000'. Must be between 1300 and 8896.")
    assert gce.networks().get(project=name, network=net_name).execute() == net
    fails(gce.networks().patch(project=name, network=unique("nope"), body={"mtu": 1500}), 404, "notFound")
    done(gce, gce.networks().delete(project=name, network=net_name))


def test_switch_to_custom_mode(project):
    name, gce = project
    net_name = unique("sw")
    done(gce, gce.networks().insert(project=name, body={"name": net_name, "autoCreateSubnetworks": True}))
    done(gce, gce.networks().switchToCustomMode(project=name, network=net_name), "switchToCustomMode")
    net = gce.networks().get(project=name, network=net_name).execute()
    assert net["autoCreateSubnetworks"] is False and len(net["subnetworks"]) == len(AUTO_RANGES)
    fails(gce.networks().switchToCustomMode(project=name, network=net_name), 400, "invalid",
          f"Invalid resource usage: 'Network '{net_name}' is already a custom mode network.'.")
    # its subnetworks are ordinary ones now: they keep the network, and may be deleted
    err = fails(gce.networks().delete(project=name, network=net_name), 400, "resourceInUseByAnotherResource")
    assert "/subnetworks/" in err["message"]
    for region in AUTO_RANGES:
        done(gce, gce.subnetworks().delete(project=name, region=region, subnetwork=net_name))
    assert "subnetworks" not in gce.networks().get(project=name, network=net_name).execute()
    done(gce, gce.networks().delete(project=name, network=net_name))


# -- delete ----------------------------------------------------------------------------------------


def test_delete_refused_while_firewalls_subnetworks_or_routes_use_it(project):
    name, gce = project
    net_name = custom(gce, name)
    path = f"projects/{name}/global/networks/{net_name}"
    fw = unique("fw")
    done(gce, gce.firewalls().insert(project=name, body={"name": fw, "network": f"global/networks/{net_name}",
                                                         "allowed": [{"IPProtocol": "icmp"}]}))
    fails(gce.networks().delete(project=name, network=net_name), 400, "resourceInUseByAnotherResource",
          f"The network resource '{path}' is already being used by 'projects/{name}/global/firewalls/{fw}'")
    assert gce.firewalls().get(project=name, firewall=fw).execute()["network"].endswith(path)
    done(gce, gce.firewalls().delete(project=name, firewall=fw))
    done(gce, gce.subnetworks().insert(project=name, region="us-central1", body={
        "name": net_name, "network": f"global/networks/{net_name}", "ipCidrRange": "10.1.0.0/24"}))
    fails(gce.networks().delete(project=name, network=net_name), 400, "resourceInUseByAnotherResource",
          f"The network resource '{path}' is already being used by "
          f"'projects/{name}/regions/us-central1/subnetworks/{net_name}'")
    done(gce, gce.subnetworks().delete(project=name, region="us-central1", subnetwork=net_name))
    route = unique("rt")
    done(gce, gce.routes().insert(project=name, body={
        "name": route, "network": f"global/networks/{net_name}", "destRange": "192.168.7.0/24",
        "nextHopGateway": "global/gateways/default-internet-gateway"}))
    fails(gce.networks().delete(project=name, network=net_name), 400, "resourceInUseByAnotherResource",
          f"The network resource '{path}' is already being used by 'projects/{name}/global/routes/{route}'")
    done(gce, gce.routes().delete(project=name, route=route))
    done(gce, gce.networks().delete(project=name, network=net_name))
    assert net_name not in network_names(gce, name)


def test_get_effective_firewalls(server, project):
    name, gce = project
    net_name = custom(gce, name)
    for fw, priority in ((unique("b"), 10), (unique("a"), 500)):
        done(gce, gce.firewalls().insert(project=name, body={
            "name": fw, "network": f"global/networks/{net_name}", "priority": priority,
            "allowed": [{"IPProtocol": "tcp", "ports": ["80"]}]}))
    eff = gce.networks().getEffectiveFirewalls(project=name, network=net_name).execute()
    assert [f["priority"] for f in eff["firewalls"]] == [10, 500]
    assert all(f["network"] == f"{server.api}projects/{name}/global/networks/{net_name}" for f in eff["firewalls"])
    default = gce.networks().getEffectiveFirewalls(project=name, network="default").execute()
    assert [f["name"] for f in default["firewalls"]] == [
        "default-allow-icmp", "default-allow-internal", "default-allow-rdp", "default-allow-ssh"]
    fails(gce.networks().getEffectiveFirewalls(project=name, network=unique("nope")), 404, "notFound")
    for f in eff["firewalls"]:
        done(gce, gce.firewalls().delete(project=name, firewall=f["name"]))
    done(gce, gce.networks().delete(project=name, network=net_name))


def test_request_id_makes_insert_idempotent(project):
    name, gce = project
    net_name = unique("rid")
    body, request_id = {"name": net_name, "autoCreateSubnetworks": False}, str(uuid.uuid4())
    first = gce.networks().insert(project=name, body=body, requestId=request_id).execute()
    again = gce.networks().insert(project=name, body=body, requestId=request_id).execute()
    assert again["name"] == first["name"] and again["clientOperationId"] == request_id
    done(gce, gce.networks().delete(project=name, network=net_name))
