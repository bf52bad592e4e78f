"""VPC Network Peering through googleapiclient, on both databases: a peering is INACTIVE until the
peer adds the matching one, then both are ACTIVE; the routes each side exchanges (subnetworks always,
custom static routes by the import/export switches); GCE's refusals; a peering to another project's
network needs no role there; a network with peerings cannot be deleted."""

from __future__ import annotations

from tests.conftest import PROJECT, project_credentials, unique
from tests.helpers.networks import custom, done, fails

REGION = "us-central1"


def subnet(gce, project: str, network: str, block: str, region: str = REGION) -> None:
    done(gce, gce.subnetworks().insert(project=project, region=region, body={
        "name": unique("sub"), "network": f"global/networks/{network}", "ipCidrRange": block}))


def peer(gce, project: str, network: str, name: str, peer_network: str, **switches) -> dict:
    return done(gce, gce.networks().addPeering(project=project, network=network, body={"networkPeering": {
        "name": name, "network": peer_network, "exchangeSubnetRoutes": True, **switches}}), "addPeering")


def peerings(gce, project: str, network: str) -> dict[str, dict]:
    return {p["name"]: p for p in gce.networks().get(project=project, network=network).execute().get("peerings", [])}


def routes(gce, project: str, network: str, peering: str, direction: str, region: str = REGION) -> list[tuple]:
    got = gce.networks().listPeeringRoutes(project=project, network=network, peeringName=peering,
                                           direction=direction, region=region).execute()
    assert got["kind"] == "compute#exchangedPeeringRoutesList"
    return sorted((r["destRange"], r["type"], r["imported"]) for r in got.get("items", []))


def test_peering_goes_active_when_both_sides_exist_and_exchanges_routes(gce):
    project = PROJECT
    a, b = custom(gce, project), custom(gce, project)
    subnet(gce, project, a, "10.61.0.0/24")
    subnet(gce, project, b, "10.62.0.0/24")
    subnet(gce, project, b, "10.63.0.0/24", region="europe-west1")
    done(gce, gce.routes().insert(project=project, body={
        "name": unique("rt"), "network": f"global/networks/{b}", "destRange": "192.168.50.0/24",
        "nextHopIp": "10.62.0.9", "priority": 700}))
    peer(gce, project, a, "a-to-b", f"projects/{project}/global/networks/{b}", importCustomRoutes=True)
    one = peerings(gce, project, a)["a-to-b"]
    assert one["state"] == "INACTIVE" and one["stateDetails"].endswith("]: Waiting for peer network to connect.")
    assert (one["exchangeSubnetRoutes"], one["exportCustomRoutes"], one["importCustomRoutes"],
            one["exportSubnetRoutesWithPublicIp"], one["importSubnetRoutesWithPublicIp"], one["stackType"]) == \
        (True, False, True, True, False, "IPV4_ONLY")
    assert routes(gce, project, a, "a-to-b", "INCOMING") == []  # nothing goes over an INACTIVE peering

    # The legacy request form (name, peerNetwork) makes the other side: both are ACTIVE.
    done(gce, gce.networks().addPeering(project=project, network=b, body={
        "name": "b-to-a", "peerNetwork": f"global/networks/{a}", "autoCreateRoutes": True}))
    for net, name, other in ((a, "a-to-b", b), (b, "b-to-a", a)):
        p = peerings(gce, project, net)[name]
        assert p["state"] == "ACTIVE" and p["stateDetails"].endswith("]: Connected."), p
        assert p["network"].endswith(f"/projects/{project}/global/networks/{other}") and p["peerMtu"] == 1460
    assert routes(gce, project, a, "a-to-b", "INCOMING") == [("10.62.0.0/24", "SUBNET_PEERING_ROUTE", True)]
    assert routes(gce, project, a, "a-to-b", "INCOMING", "europe-west1") == [
        ("10.63.0.0/24", "SUBNET_PEERING_ROUTE", True)]
    assert routes(gce, project, b, "b-to-a", "OUTGOING") == [("10.62.0.0/24", "SUBNET_PEERING_ROUTE", True)]
    # b does not export its custom route until its peering says so; then a, which imports, takes it.
    done(gce, gce.networks().updatePeering(project=project, network=b, body={"networkPeering": {
        "name": "b-to-a", "exportCustomRoutes": True}}), "updatePeering")
    assert routes(gce, project, a, "a-to-b", "INCOMING") == [
        ("10.62.0.0/24", "SUBNET_PEERING_ROUTE", True), ("192.168.50.0/24", "STATIC_PEERING_ROUTE", True)]
    done(gce, gce.networks().updatePeering(project=project, network=a, body={"networkPeering": {
        "name": "a-to-b", "importCustomRoutes": False}}))
    assert ("192.168.50.0/24", "STATIC_PEERING_ROUTE", False) in routes(gce, project, b, "b-to-a", "OUTGOING")
    # The network's own route list does not show what it imports, as on GCE.
    listed = gce.routes().list(project=project).execute()["items"]
    assert not [r for r in listed if r["network"].endswith(f"/{a}") and r["destRange"] == "10.62.0.0/24"]

    # A network with peerings stays; removing one side leaves the other INACTIVE.
    fails(gce.networks().delete(project=project, network=a), 400, "resourceInUseByAnotherResource",
          f"The network resource 'projects/{project}/global/networks/{a}' is already being used by "
          f"'projects/{project}/global/networks/{a}/peerings/a-to-b'")
    done(gce, gce.networks().removePeering(project=project, network=b, body={"name": "b-to-a"}), "removePeering")
    assert "peerings" not in gce.networks().get(project=project, network=b).execute()
    left = peerings(gce, project, a)["a-to-b"]
    assert left["state"] == "INACTIVE" and "peerMtu" not in left
    done(gce, gce.networks().removePeering(project=project, network=a, body={"name": "a-to-b"}))
    err = fails(gce.networks().delete(project=project, network=a), 400, "resourceInUseByAnotherResource")
    assert "/subnetworks/" in err["message"]  # no peering holds it any more: its subnetwork does


def test_refusals(gce):
    project = PROJECT
    a, b, c = custom(gce, project), custom(gce, project), custom(gce, project)
    subnet(gce, project, a, "10.71.0.0/24")
    subnet(gce, project, b, "10.71.0.128/25")  # overlaps a
    subnet(gce, project, c, "10.72.0.0/24")
    url = f"projects/{project}/global/networks/"
    body = {"name": "p", "network": url + a, "exchangeSubnetRoutes": True}
    fails(gce.networks().addPeering(project=project, network=a, body={"networkPeering": body}), 400, "invalid",
          f"Invalid value for field 'networkPeering.network': '{url}{a}'. A network cannot be peered with itself.")
    fails(gce.networks().addPeering(project=project, network=a, body={"networkPeering": {**body, "network": url + b}}),
          400, "invalid", f"An IP range in the peer network (10.71.0.128/25) overlaps with an IP range in the local "
                          f"network (10.71.0.0/24) allocated by resource (projects/{project}/regions/{REGION}/"
                          f"subnetworks/{subnet_name(gce, project, a)}).")
    fails(gce.networks().addPeering(project=project, network=a, body={"networkPeering": {
        **body, "network": url + c, "updateStrategy": "CONSENSUS"}}), 400, "invalid",
        "Invalid value for field 'networkPeering.updateStrategy': 'CONSENSUS'. The CONSENSUS update strategy is "
        "not supported: use INDEPENDENT.")
    fails(gce.networks().addPeering(project=project, network=a, body={"networkPeering": {
        **body, "network": url + "nowhere"}}), 404, "notFound",
        f"The resource 'projects/{project}/global/networks/nowhere' was not found")
    peer(gce, project, a, "a-c", url + c)
    fails(gce.networks().addPeering(project=project, network=a, body={"networkPeering": {**body, "name": "a-c",
                                                                                          "network": url + b}}),
          400, "invalid", f"Invalid value for field 'networkPeering.name': 'a-c'. There is already a peering named "
                          f"'a-c' on network 'projects/{project}/global/networks/{a}'.")
    fails(gce.networks().addPeering(project=project, network=a, body={"networkPeering": {**body, "name": "again",
                                                                                          "network": url + c}}),
          400, "invalid", f"Invalid value for field 'networkPeering.network': '{url}{c}'. There is already a peering "
                          f"'a-c' from network '{url}{a}' to '{url}{c}'.")
    # c is ACTIVE with a, so c may not also peer with b, whose range overlaps a's (c would import both).
    peer(gce, project, c, "c-a", url + a)
    fails(gce.networks().addPeering(project=project, network=c, body={"networkPeering": {**body, "name": "c-b",
                                                                                          "network": url + b}}),
          400, "invalid", f"An IP range in the peer network (10.71.0.128/25) overlaps with an IP range (10.71.0.0/24) "
                          f"in an active peer ({url}{a}) of the local network.")
    # Nor may c take a range that it imports from a.
    fails(gce.subnetworks().insert(project=project, region=REGION, body={
        "name": unique("sub"), "network": f"global/networks/{c}", "ipCidrRange": "10.71.0.0/26"}), 400, "invalid",
        "Invalid value for field 'resource.ipCidrRange': '10.71.0.0/26'. Invalid IPCidrRange: 10.71.0.0/26 conflicts "
        "with peer network in active peering 'c-a'.")
    fails(gce.networks().removePeering(project=project, network=a, body={"name": "none"}), 400, "invalid",
          f"Invalid value for field 'name': 'none'. There is no peering named 'none' on network '{url}{a}'.")
    fails(gce.networks().updatePeering(project=project, network=a, body={"networkPeering": {
        "name": "a-c", "network": url + b}}), 400, "invalid")
    fails(gce.networks().listPeeringRoutes(project=project, network=a, peeringName="a-c", direction="INCOMING"),
          400, "required", "Required field 'region' not specified")


def subnet_name(gce, project: str, network: str) -> str:
    items = gce.subnetworks().list(project=project, region=REGION).execute()["items"]
    return next(s["name"] for s in items if s["network"].endswith(f"/global/networks/{network}"))


def test_cross_project_peering_needs_no_role_on_the_peer(server, gce):
    mine, theirs = unique("peer-a"), PROJECT
    m, t = server.gce(project_credentials(server, mine)), gce
    a, b = custom(m, mine), custom(t, theirs)
    subnet(m, mine, a, "10.81.0.0/24")
    subnet(t, theirs, b, "10.82.0.0/24")
    # The owner of one project cannot add a peering to the other's network (no access to it) ...
    fails(m.networks().addPeering(project=theirs, network=b, body={"networkPeering": {
        "name": "x", "network": f"projects/{mine}/global/networks/{a}"}}), 403, "forbidden")
    # ... but peers its own network with it, and the peering is ACTIVE once the other side consents.
    peer(m, mine, a, "to-theirs", f"projects/{theirs}/global/networks/{b}")
    assert peerings(m, mine, a)["to-theirs"]["state"] == "INACTIVE"
    peer(t, theirs, b, "to-mine", f"projects/{mine}/global/networks/{a}")
    assert peerings(m, mine, a)["to-theirs"]["state"] == "ACTIVE"
    assert routes(m, mine, a, "to-theirs", "INCOMING") == [("10.82.0.0/24", "SUBNET_PEERING_ROUTE", True)]
    # The other owner withdraws and deletes the network: this side stays INACTIVE and can still be removed.
    done(t, t.networks().removePeering(project=theirs, network=b, body={"name": "to-mine"}))
    done(t, t.subnetworks().delete(project=theirs, region=REGION, subnetwork=subnet_name(t, theirs, b)))
    done(t, t.networks().delete(project=theirs, network=b))
    assert peerings(m, mine, a)["to-theirs"]["state"] == "INACTIVE"
    done(m, m.networks().removePeering(project=mine, network=a, body={"name": "to-theirs"}))
    assert "peerings" not in m.networks().get(project=mine, network=a).execute()
