"""instances.updateNetworkInterface (SQLite and PostgreSQL) with google-api-python-client: alias IP
ranges on a running instance (held in IPAM), moving a stopped instance's interface to another
network, GCE's refusals (running instance, stale fingerprint, bad ranges, access configs) with
nothing changed."""

from __future__ import annotations

from tests.conftest import PROJECT, ZONE, unique, wait_op
from tests.helpers.compute import expect_error
from tests.helpers.networks import custom, done

REGION = "us-central1"
FAMILY = "projects/debian-cloud/global/images/family/debian-12"


def _create(gce, name: str, **nic) -> dict:
    body = {"name": name, "machineType": f"zones/{ZONE}/machineTypes/e2-micro",
            "disks": [{"boot": True, "autoDelete": True, "initializeParams": {"sourceImage": FAMILY}}],
            "networkInterfaces": [{"network": "global/networks/default", **nic}]}
    op = wait_op(gce, gce.instances().insert(project=PROJECT, zone=ZONE, body=body).execute())
    assert "error" not in op, op
    return _get(gce, name)


def _get(gce, name: str) -> dict:
    return gce.instances().get(project=PROJECT, zone=ZONE, instance=name).execute()


def _update(gce, name: str, body: dict, nic: str = "nic0"):
    return gce.instances().updateNetworkInterface(project=PROJECT, zone=ZONE, instance=name, networkInterface=nic,
                                                  body=body)


def _updated(gce, name: str, body: dict) -> dict:
    op = _update(gce, name, body).execute()
    assert op["operationType"] == "updateNetworkInterface"
    op = wait_op(gce, op)
    assert op["status"] == "DONE" and "error" not in op, op
    return _get(gce, name)["networkInterfaces"][0]


def _subnet(gce, network: str, cidr: str, secondary: list | None = None) -> str:
    name = unique("sub")
    body = {"name": name, "network": f"global/networks/{network}", "ipCidrRange": cidr,
            "secondaryIpRanges": secondary or []}
    done(gce, gce.subnetworks().insert(project=PROJECT, region=REGION, body=body))
    return name


def test_alias_ranges_on_a_running_instance(server, gce):
    name, other = unique("alias"), unique("alias")
    nic = _create(gce, name)["networkInterfaces"][0]
    _create(gce, other)
    subnet_cidr = gce.subnetworks().get(project=PROJECT, region=REGION, subnetwork="default").execute()["ipCidrRange"]
    assert subnet_cidr == "10.128.0.0/20"
    changed = _updated(gce, name, {"fingerprint": nic["fingerprint"],
                                   "aliasIpRanges": [{"ipCidrRange": "10.128.15.0/30"}, {"ipCidrRange": "10.128.15.9"}]})
    assert changed["aliasIpRanges"] == [{"ipCidrRange": "10.128.15.0/30"}, {"ipCidrRange": "10.128.15.9/32"}]
    assert changed["fingerprint"] != nic["fingerprint"] and changed["networkIP"] == nic["networkIP"]
    # A range another instance holds is refused, the other instance's interface unchanged.
    other_nic = _get(gce, other)["networkInterfaces"][0]
    expect_error(_update(gce, other, {"fingerprint": other_nic["fingerprint"],
                                      "aliasIpRanges": [{"ipCidrRange": "10.128.15.8/29"}]}),
                 400, "resourceInUseByAnotherResource")
    assert _get(gce, other)["networkInterfaces"][0] == other_nic
    # Stale fingerprint: 412, nothing changed.
    expect_error(_update(gce, name, {"fingerprint": nic["fingerprint"], "aliasIpRanges": []}), 412,
                 "conditionNotMet", "Invalid fingerprint.")
    # Bad ranges: outside the subnetwork, overlapping, malformed, an unknown secondary range.
    for ranges, message in (
            ([{"ipCidrRange": "192.168.0.0/30"}], "The alias IP range must be within the primary range 10.128.0.0/20 "
                                                  "of the subnetwork."),
            ([{"ipCidrRange": "10.128.14.0/30"}, {"ipCidrRange": "10.128.14.2"}], "Alias IP ranges must not overlap."),
            ([{"ipCidrRange": "/30"}], "Must be an IPv4 range in CIDR notation, or one IPv4 address."),
            ([{"ipCidrRange": "10.128.14.0/30", "subnetworkRangeName": "pods"}],
             "The subnetwork has no secondary range named 'pods'.")):
        err = expect_error(_update(gce, name, {"fingerprint": changed["fingerprint"], "aliasIpRanges": ranges}),
                           400, "invalid")
        assert err["message"].endswith(message), err["message"]
    expect_error(_update(gce, name, {"fingerprint": changed["fingerprint"], "stackType": "IPV4_IPV6"}), 400,
                 "invalid")
    expect_error(_update(gce, name, {"fingerprint": changed["fingerprint"], "accessConfigs": [
        {"name": "External NAT", "type": "ONE_TO_ONE_NAT"}]}), 400, "invalid")
    expect_error(_update(gce, name, {"fingerprint": changed["fingerprint"], "aliasIpRanges": []}, nic="nic7"),
                 400, "invalid")
    assert _get(gce, name)["networkInterfaces"][0] == changed
    # Removing the ranges frees their addresses: the other instance may take them now.
    cleared = _updated(gce, name, {"fingerprint": changed["fingerprint"], "aliasIpRanges": []})
    assert "aliasIpRanges" not in cleared
    taken = _updated(gce, other, {"fingerprint": other_nic["fingerprint"],
                                  "aliasIpRanges": [{"ipCidrRange": "10.128.15.8/29"}]})
    assert taken["aliasIpRanges"] == [{"ipCidrRange": "10.128.15.8/29"}]
    for vm in (name, other):
        wait_op(gce, gce.instances().delete(project=PROJECT, zone=ZONE, instance=vm).execute())


def test_secondary_range_alias(server, gce):
    network = custom(gce, PROJECT)
    subnet = _subnet(gce, network, "10.60.0.0/24", [{"rangeName": "pods", "ipCidrRange": "10.61.0.0/24"}])
    name = unique("pods")
    nic = _create(gce, name, network=f"global/networks/{network}",
                  subnetwork=f"regions/{REGION}/subnetworks/{subnet}")["networkInterfaces"][0]
    changed = _updated(gce, name, {"fingerprint": nic["fingerprint"], "aliasIpRanges": [
        {"ipCidrRange": "10.61.0.16/28", "subnetworkRangeName": "pods"}]})
    assert changed["aliasIpRanges"] == [{"ipCidrRange": "10.61.0.16/28", "subnetworkRangeName": "pods"}]
    wait_op(gce, gce.instances().delete(project=PROJECT, zone=ZONE, instance=name).execute())


def test_moving_an_interface_to_another_network(server, gce):
    network = custom(gce, PROJECT)
    subnet = _subnet(gce, network, "10.70.0.0/24")
    name = unique("move")
    nic = _create(gce, name, accessConfigs=[{"name": "External NAT", "type": "ONE_TO_ONE_NAT"}])["networkInterfaces"][0]
    move = {"fingerprint": nic["fingerprint"], "network": f"global/networks/{network}",
            "subnetwork": f"regions/{REGION}/subnetworks/{subnet}"}
    expect_error(_update(gce, name, move), 400, "invalid",
                 f"Invalid value for field 'resource.network': 'global/networks/{network}'. Instance '{name}' must be "
                 "stopped before changing the network, subnetwork or internal IP address of its network interface.")
    assert _get(gce, name)["networkInterfaces"][0] == nic
    wait_op(gce, gce.instances().stop(project=PROJECT, zone=ZONE, instance=name).execute())
    moved = _updated(gce, name, {**move, "networkIP": "10.70.0.20"})
    assert moved["network"].endswith(f"/global/networks/{network}")
    assert moved["subnetwork"].endswith(f"/regions/{REGION}/subnetworks/{subnet}")
    assert moved["networkIP"] == "10.70.0.20"
    assert moved["accessConfigs"][0]["natIP"] == nic["accessConfigs"][0]["natIP"]  # kept
    # Its old address is free again: a new instance asking for it gets it.
    again = unique("move")
    assert _create(gce, again, networkIP=nic["networkIP"])["networkInterfaces"][0]["networkIP"] == nic["networkIP"]
    # An address outside the subnetwork is refused, nothing changed.
    expect_error(_update(gce, name, {"fingerprint": moved["fingerprint"], "networkIP": "10.71.0.5"}), 400, "invalid")
    assert _get(gce, name)["networkInterfaces"][0] == moved
    wait_op(gce, gce.instances().start(project=PROJECT, zone=ZONE, instance=name).execute())
    assert _get(gce, name)["status"] == "RUNNING"
    for vm in (name, again):
        wait_op(gce, gce.instances().delete(project=PROJECT, zone=ZONE, instance=vm).execute())
