"""subnetworks: end to end (SQLite and PostgreSQL), and IPAM under concurrent instance inserts."""

from __future__ import annotations

import contextlib
import ipaddress
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from googleapiclient.errors import HttpError

from tests.conftest import project_credentials, unique, wait_op
from tests.helpers.networks import custom, done, fails, routes_of

REGION, OTHER_REGION = "us-central1", "europe-west1"
ZONE = "us-central1-c"
IMAGE = "projects/debian-cloud/global/images/family/debian-12"
GCLOUD_TRACE = Path("/work/shared/clients/gcloud/networks-subnets-create.txt")


@pytest.fixture(scope="module")
def project(server):
    name = unique("sub")
    return name, server.gce(project_credentials(server, name))


@pytest.fixture
def net(project):
    """A custom-mode network of its own, deleted (with what the test left in it) afterwards."""
    name, gce = project
    net_name = custom(gce, name)
    yield net_name
    with contextlib.suppress(HttpError):
        for region, subnet in subnets_by_region(gce, name, net_name):
            gce.subnetworks().delete(project=name, region=region, subnetwork=subnet["name"]).execute()
        gce.networks().delete(project=name, network=net_name).execute()


def subnets_by_region(gce, project: str, network: str) -> list[tuple[str, dict]]:
    agg = gce.subnetworks().aggregatedList(project=project).execute()["items"]
    return [(scope.split("/")[1], s) for scope, v in agg.items() for s in v.get("subnetworks", [])
            if s["network"].endswith(f"/global/networks/{network}")]


def insert(gce, project: str, network: str, name: str, cidr: str, region: str = REGION, **extra):
    return gce.subnetworks().insert(project=project, region=region, body={
        "name": name, "network": f"global/networks/{network}", "ipCidrRange": cidr, **extra})


def get(gce, project: str, name: str, region: str = REGION) -> dict:
    return gce.subnetworks().get(project=project, region=region, subnetwork=name).execute()


def instance_body(name: str, network: str, subnet: str | None = None) -> dict:
    nic = {"network": f"global/networks/{network}"}
    if subnet:
        nic["subnetwork"] = f"regions/{REGION}/subnetworks/{subnet}"
    return {"name": name, "machineType": f"zones/{ZONE}/machineTypes/custom-1-1024",
            "disks": [{"boot": True, "autoDelete": True, "initializeParams": {"sourceImage": IMAGE}}],
            "networkInterfaces": [nic]}


# -- insert ----------------------------------------------------------------------------------------


def test_insert_as_gcloud_sends_it(server, project, net):
    name, gce = project
    sent = json.loads(GCLOUD_TRACE.read_text().split("--- request body (169 bytes) ---\n", 1)[1].split("\n", 1)[0])
    sent.update(name=unique("g"), network=f"{server.api}projects/{name}/global/networks/{net}")
    op = done(gce, gce.subnetworks().insert(project=name, region=REGION, body=sent), "insert")
    assert op["region"] == f"{server.api}projects/{name}/regions/{REGION}"
    assert op["selfLink"].startswith(f"{server.api}projects/{name}/regions/{REGION}/operations/")
    sub = get(gce, name, sent["name"])
    assert op["targetId"] == sub["id"]
    assert sub["kind"] == "compute#subnetwork" and sub["ipCidrRange"] == "10.10.0.0/24"
    assert sub["gatewayAddress"] == "10.10.0.1" and sub["privateIpGoogleAccess"] is False
    assert sub["network"] == sent["network"]
    assert sub["region"] == f"{server.api}projects/{name}/regions/{REGION}"
    assert sub["stackType"] == "IPV4_ONLY" and sub["purpose"] == "PRIVATE" and sub["fingerprint"]
    assert sub["selfLink"] == f"{server.api}projects/{name}/regions/{REGION}/subnetworks/{sent['name']}"
    # the network lists it, and a route leads to its range
    assert gce.networks().get(project=name, network=net).execute()["subnetworks"] == [sub["selfLink"]]
    [route] = [r for r in routes_of(gce, name, net) if r["destRange"] == "10.10.0.0/24"]
    assert route["nextHopNetwork"] == sent["network"] and route["priority"] == 0


def test_get_list_and_aggregated_list(project, net):
    name, gce = project
    a, b = unique("a"), unique("b")
    done(gce, insert(gce, name, net, a, "10.20.0.0/24", secondaryIpRanges=[
        {"rangeName": "pods", "ipCidrRange": "10.21.0.0/20"}]))
    done(gce, insert(gce, name, net, b, "10.30.0.0/24", region=OTHER_REGION))
    sub = get(gce, name, a)
    assert sub["secondaryIpRanges"] == [{"rangeName": "pods", "ipCidrRange": "10.21.0.0/20"}]
    assert get(gce, name, sub["id"])["name"] == a
    listed = gce.subnetworks().list(project=name, region=REGION).execute()
    assert listed["kind"] == "compute#subnetworkList" and a in [s["name"] for s in listed["items"]]
    assert b not in [s["name"] for s in listed["items"]]
    agg = gce.subnetworks().aggregatedList(project=name).execute()
    assert agg["kind"] == "compute#subnetworkAggregatedList"
    assert {s["name"] for s in agg["items"][f"regions/{OTHER_REGION}"]["subnetworks"]} >= {"default", b}
    fails(gce.subnetworks().get(project=name, region=REGION, subnetwork=b), 404, "notFound",
          f"The resource 'projects/{name}/regions/{REGION}/subnetworks/{b}' was not found")
    fails(gce.subnetworks().list(project=name, region="mars-north1"), 404, "notFound",
          f"The resource 'projects/{name}/regions/mars-north1' was not found")


@pytest.mark.parametrize("cidr, region, extra, field", [
    ("10.40.0.0/24", REGION, {}, "resource.ipCidrRange"),  # the same range
    ("10.40.0.128/25", OTHER_REGION, {}, "resource.ipCidrRange"),  # inside it, in another region
    ("10.0.0.0/8", REGION, {}, "resource.ipCidrRange"),  # around it
    ("10.41.0.0/24", REGION, {"secondaryIpRanges": [{"rangeName": "s", "ipCidrRange": "10.40.0.0/26"}]},
     "resource.secondaryIpRanges[0].ipCidrRange"),
    ("10.42.0.0/24", REGION, {}, None),  # overlaps the existing subnetwork's secondary range
])
def test_overlapping_ranges_are_refused(project, net, cidr, region, extra, field):
    name, gce = project
    existing = unique("ex")
    done(gce, insert(gce, name, net, existing, "10.40.0.0/24",
                     secondaryIpRanges=[{"rangeName": "sec", "ipCidrRange": "10.42.0.0/23"}]))
    before, routes_before = subnets_by_region(gce, name, net), routes_of(gce, name, net)
    new = unique("ov")
    err = fails(insert(gce, name, net, new, cidr, region=region, **extra), 400, "invalid")
    block = cidr if field != "resource.secondaryIpRanges[0].ipCidrRange" else "10.40.0.0/26"
    assert err["message"] == (f"Invalid value for field '{field or 'resource.ipCidrRange'}': '{block}'. Invalid "
                              f"IPCidrRange: {block} conflicts with existing subnetwork '{existing}' in region "
                              f"'{REGION}'.")
    assert subnets_by_region(gce, name, net) == before and routes_of(gce, name, net) == routes_before


def test_the_same_range_in_another_network_is_fine(project, net):
    name, gce = project
    other = custom(gce, name)
    done(gce, insert(gce, name, net, unique("x"), "10.50.0.0/24"))
    done(gce, insert(gce, name, other, unique("y"), "10.50.0.0/24"))
    for region, subnet in subnets_by_region(gce, name, other):
        done(gce, gce.subnetworks().delete(project=name, region=region, subnetwork=subnet["name"]))
    done(gce, gce.networks().delete(project=name, network=other))


@pytest.mark.parametrize("cidr, why", [
    ("10.60.0.1/24", "is not a valid IPv4 CIDR range"),
    ("10.60.0.0", "is not a valid IPv4 CIDR range"),
    ("8.8.8.0/24", "is not in a private address range"),
    ("198.18.5.0/24", "is not in a private address range"),
    ("10.60.0.0/30", "The prefix length must be between /8 and /29."),
    ("fd00::/64", "is not a valid IPv4 CIDR range"),
])
def test_bad_ranges_are_refused(project, net, cidr, why):
    name, gce = project
    err = fails(insert(gce, name, net, unique("bad"), cidr), 400, "invalid")
    assert err["message"].startswith(f"Invalid value for field 'resource.ipCidrRange': '{cidr}'. Invalid IPCidrRange")
    assert why in err["message"]
    assert subnets_by_region(gce, name, net) == []


def test_auto_mode_network_reserves_its_range(project):
    name, gce = project
    fails(insert(gce, name, "default", unique("ext"), "10.200.0.0/16"), 400, "invalid",
          "Invalid value for field 'resource.ipCidrRange': '10.200.0.0/16'. Extended subnetworks in auto subnet mode "
          "networks cannot overlap with 10.128.0.0/9.")
    sub = unique("ext")
    done(gce, insert(gce, name, "default", sub, "10.100.0.0/24"))  # outside 10.128.0.0/9: fine
    done(gce, gce.subnetworks().delete(project=name, region=REGION, subnetwork=sub))


def test_insert_refusals(project, net):
    name, gce = project
    missing = unique("nonet")
    fails(insert(gce, name, missing, unique("s"), "10.70.0.0/24"), 404, "notFound",
          f"The resource 'projects/{name}/global/networks/{missing}' was not found")
    fails(gce.subnetworks().insert(project=name, region=REGION, body={"name": unique("s"), "ipCidrRange": "10.70.0.0/24"}),
          400, "required", "Required field 'resource.network' not specified")
    fails(gce.subnetworks().insert(project=name, region=REGION, body={
        "name": unique("s"), "network": f"global/networks/{net}"}), 400, "required",
        "Required field 'resource.ipCidrRange' not specified")
    fails(insert(gce, name, net, unique("s"), "10.70.0.0/24", region="mars-north1"), 404, "notFound")
    fails(insert(gce, name, net, "default", "10.70.0.0/24"), 409, "alreadyExists",
          f"The resource 'projects/{name}/regions/{REGION}/subnetworks/default' already exists")
    assert subnets_by_region(gce, name, net) == []


# -- patch, expand, private access -----------------------------------------------------------------


def test_patch_needs_the_current_fingerprint(project, net):
    name, gce = project
    sub_name = unique("p")
    done(gce, insert(gce, name, net, sub_name, "10.80.0.0/24"))
    sub = get(gce, name, sub_name)
    fails(gce.subnetworks().patch(project=name, region=REGION, subnetwork=sub_name, body={
        "description": "x", "fingerprint": "AAAAAAAAAAA="}), 412, "conditionNotMet", "Invalid fingerprint.")
    fails(gce.subnetworks().patch(project=name, region=REGION, subnetwork=sub_name, body={"description": "x"}),
          412, "conditionNotMet")
    assert get(gce, name, sub_name) == sub
    done(gce, gce.subnetworks().patch(project=name, region=REGION, subnetwork=sub_name, body={
        "description": "patched", "privateIpGoogleAccess": True, "fingerprint": sub["fingerprint"],
        "secondaryIpRanges": [{"rangeName": "svc", "ipCidrRange": "10.81.0.0/24"}]}), "patch")
    patched = get(gce, name, sub_name)
    assert patched["description"] == "patched" and patched["privateIpGoogleAccess"] is True
    assert patched["secondaryIpRanges"] == [{"rangeName": "svc", "ipCidrRange": "10.81.0.0/24"}]
    assert patched["fingerprint"] != sub["fingerprint"]
    # the old fingerprint is stale now; the range is not changed by patch
    fails(gce.subnetworks().patch(project=name, region=REGION, subnetwork=sub_name, body={
        "description": "late", "fingerprint": sub["fingerprint"]}), 412, "conditionNotMet")
    fails(gce.subnetworks().patch(project=name, region=REGION, subnetwork=sub_name, body={
        "ipCidrRange": "10.80.0.0/23", "fingerprint": patched["fingerprint"]}), 400, "invalid")
    assert get(gce, name, sub_name) == patched


def test_expand_ip_cidr_range(project, net):
    name, gce = project
    sub_name, neighbour = unique("e"), unique("n")
    done(gce, insert(gce, name, net, sub_name, "10.90.1.0/24"))
    done(gce, insert(gce, name, net, neighbour, "10.90.4.0/24", region=OTHER_REGION))
    before = get(gce, name, sub_name)

    def expand(cidr):
        return gce.subnetworks().expandIpCidrRange(project=name, region=REGION, subnetwork=sub_name,
                                                   body={"ipCidrRange": cidr})

    for cidr in ("10.90.1.0/25", "10.90.1.0/24", "10.91.0.0/16", "10.90.2.0/23"):
        fails(expand(cidr), 400, "invalid")
    err = fails(expand("10.90.0.0/21"), 400, "invalid")
    assert err["message"].endswith(f"conflicts with existing subnetwork '{neighbour}' in region '{OTHER_REGION}'.")
    assert get(gce, name, sub_name) == before
    done(gce, expand("10.90.0.0/22"), "expandIpCidrRange")
    after = get(gce, name, sub_name)
    assert after["ipCidrRange"] == "10.90.0.0/22" and after["gatewayAddress"] == "10.90.0.1"
    assert after["fingerprint"] != before["fingerprint"]
    dests = {r["destRange"] for r in routes_of(gce, name, net)}
    assert "10.90.0.0/22" in dests and "10.90.1.0/24" not in dests


def test_set_private_ip_google_access(project, net):
    name, gce = project
    sub_name = unique("g")
    done(gce, insert(gce, name, net, sub_name, "10.95.0.0/24"))
    done(gce, gce.subnetworks().setPrivateIpGoogleAccess(project=name, region=REGION, subnetwork=sub_name,
                                                         body={"privateIpGoogleAccess": True}),
         "setPrivateIpGoogleAccess")
    assert get(gce, name, sub_name)["privateIpGoogleAccess"] is True


# -- delete, and instances on custom networks ------------------------------------------------------


def test_instances_on_a_custom_network_and_delete_refused_while_they_use_it(project, net):
    name, gce = project
    sub_name = unique("vm")
    done(gce, insert(gce, name, net, sub_name, "172.16.5.0/24"))
    vm = unique("vm")
    err = fails(gce.instances().insert(project=name, zone=ZONE, body=instance_body(vm, net)), 400, "invalid")
    assert err["message"] == ("Invalid value for field 'resource.networkInterfaces[0].subnetwork': ''. "
                              "Subnetwork should be specified for custom subnetmode network")
    done(gce, gce.instances().insert(project=name, zone=ZONE, body=instance_body(vm, net, sub_name)))
    inst = gce.instances().get(project=name, zone=ZONE, instance=vm).execute()
    assert ipaddress.ip_address(inst["networkInterfaces"][0]["networkIP"]) in ipaddress.ip_network("172.16.5.0/24")
    path = f"projects/{name}/regions/{REGION}/subnetworks/{sub_name}"
    fails(gce.subnetworks().delete(project=name, region=REGION, subnetwork=sub_name), 400,
          "resourceInUseByAnotherResource",
          f"The subnetwork resource '{path}' is already being used by 'projects/{name}/zones/{ZONE}/instances/{vm}'")
    fails(gce.networks().delete(project=name, network=net), 400, "resourceInUseByAnotherResource")
    assert get(gce, name, sub_name)["ipCidrRange"] == "172.16.5.0/24"
    done(gce, gce.instances().delete(project=name, zone=ZONE, instance=vm))
    done(gce, gce.subnetworks().delete(project=name, region=REGION, subnetwork=sub_name), "delete")
    assert not [r for r in routes_of(gce, name, net) if r["destRange"] == "172.16.5.0/24"]
    assert "subnetworks" not in gce.networks().get(project=name, network=net).execute()


def test_an_auto_networks_instances_keep_it_stopped_or_through_a_static_address(project):
    """An auto-mode network's own subnetworks do not keep it; its instances do, found through the
    addresses of its subnetworks: one holding its address (also while stopped), one using a static
    internal address (named before the address, as instances come first), then the address."""
    name, gce = project
    net = unique("auto")
    done(gce, gce.networks().insert(project=name, body={"name": net, "autoCreateSubnetworks": True}))
    path = f"projects/{name}/global/networks/{net}"

    def refused_for(user: str) -> None:
        fails(gce.networks().delete(project=name, network=net), 400, "resourceInUseByAnotherResource",
              f"The network resource '{path}' is already being used by '{user}'")

    first, second, static = unique("vm"), unique("vm"), unique("ip")
    done(gce, gce.instances().insert(project=name, zone=ZONE, body=instance_body(first, net)))
    refused_for(f"projects/{name}/zones/{ZONE}/instances/{first}")
    done(gce, gce.instances().stop(project=name, zone=ZONE, instance=first), "stop")
    assert gce.instances().get(project=name, zone=ZONE, instance=first).execute()["status"] == "TERMINATED"
    refused_for(f"projects/{name}/zones/{ZONE}/instances/{first}")
    done(gce, gce.addresses().insert(project=name, region=REGION, body={
        "name": static, "addressType": "INTERNAL", "subnetwork": f"regions/{REGION}/subnetworks/{net}",
        "address": "10.128.0.77"}))
    body = instance_body(second, net)
    body["networkInterfaces"][0]["networkIP"] = "10.128.0.77"
    done(gce, gce.instances().insert(project=name, zone=ZONE, body=body))
    done(gce, gce.instances().delete(project=name, zone=ZONE, instance=first))
    refused_for(f"projects/{name}/zones/{ZONE}/instances/{second}")
    done(gce, gce.instances().delete(project=name, zone=ZONE, instance=second))
    refused_for(f"projects/{name}/regions/{REGION}/addresses/{static}")
    done(gce, gce.addresses().delete(project=name, region=REGION, address=static))
    done(gce, gce.networks().delete(project=name, network=net))


# -- IPAM: concurrent inserts ----------------------------------------------------------------------

CONCURRENT = 50


def test_concurrent_instance_inserts_get_distinct_addresses(server):
    """50 instances inserted at once into one /24 each get their own address (raw REST, one token)."""
    name = unique("ipam")
    gce = server.gce(project_credentials(server, name))
    net_name = custom(gce, name)
    sub_name = unique("ipam")
    done(gce, insert(gce, name, net_name, sub_name, "10.77.0.0/24"))
    headers = {"authorization": f"Bearer {server.token(project=name)}"}
    url = f"{server.api}projects/{name}/zones/{ZONE}/instances"
    vms = [f"ipam-{i:02d}" for i in range(CONCURRENT)]
    barrier = threading.Barrier(CONCURRENT)

    def post(vm):
        barrier.wait()
        return requests.post(url, json=instance_body(vm, net_name, sub_name), headers=headers, timeout=120)

    with ThreadPoolExecutor(CONCURRENT) as pool:
        replies = list(pool.map(post, vms))
    assert [r.status_code for r in replies] == [200] * CONCURRENT, [r.text for r in replies if r.status_code != 200]
    for r in replies:
        assert "error" not in wait_op(gce, r.json())
    ips = [gce.instances().get(project=name, zone=ZONE, instance=vm).execute()["networkInterfaces"][0]["networkIP"]
           for vm in vms]
    assert len(set(ips)) == CONCURRENT, sorted(ips)
    block = ipaddress.ip_network("10.77.0.0/24")
    assert all(ipaddress.ip_address(ip) in block and ip not in ("10.77.0.0", "10.77.0.1") for ip in ips)

    def delete(vm):
        return requests.delete(f"{url}/{vm}", headers=headers, timeout=120).json()

    with ThreadPoolExecutor(10) as pool:
        ops = list(pool.map(delete, vms))
    for op in ops:
        assert "error" not in wait_op(gce, op)
    done(gce, gce.subnetworks().delete(project=name, region=REGION, subnetwork=sub_name))
    done(gce, gce.networks().delete(project=name, network=net_name))


def test_instances_with_two_nics_inserted_at_once_in_either_order(server):
    """Instances with a NIC in each of two subnetworks, half of them naming the two in the other
    order, inserted at once: each NIC takes its own address of its subnetwork (on PostgreSQL the two
    pools are locked first, in one order, whatever the NICs' order)."""
    name = unique("twonic")
    gce = server.gce(project_credentials(server, name))
    nets, subs, cidrs = [custom(gce, name), custom(gce, name)], [unique("nica"), unique("nicb")], \
        ["10.81.0.0/24", "10.82.0.0/24"]
    for net, sub, cidr in zip(nets, subs, cidrs, strict=True):
        done(gce, insert(gce, name, net, sub, cidr))
    headers = {"authorization": f"Bearer {server.token(project=name)}"}
    url = f"{server.api}projects/{name}/zones/{ZONE}/instances"
    vms = [f"two-{i:02d}" for i in range(10)]
    barrier = threading.Barrier(len(vms))

    def post(i_vm):
        i, vm = i_vm
        order = [0, 1] if i % 2 == 0 else [1, 0]
        body = instance_body(vm, nets[order[0]], subs[order[0]])
        body["networkInterfaces"].append({"network": f"global/networks/{nets[order[1]]}",
                                          "subnetwork": f"regions/{REGION}/subnetworks/{subs[order[1]]}"})
        barrier.wait()
        return requests.post(url, json=body, headers=headers, timeout=120)

    with ThreadPoolExecutor(len(vms)) as pool:
        replies = list(pool.map(post, enumerate(vms)))
    assert [r.status_code for r in replies] == [200] * len(vms), [r.text for r in replies if r.status_code != 200]
    for r in replies:
        assert "error" not in wait_op(gce, r.json())
    taken: dict[str, list[str]] = {sub: [] for sub in subs}
    for vm in vms:
        nics = gce.instances().get(project=name, zone=ZONE, instance=vm).execute()["networkInterfaces"]
        assert len(nics) == 2
        for nic in nics:
            sub = nic["subnetwork"].rsplit("/", 1)[1]
            assert ipaddress.ip_address(nic["networkIP"]) in ipaddress.ip_network(cidrs[subs.index(sub)])
            taken[sub].append(nic["networkIP"])
    assert all(len(set(ips)) == len(vms) for ips in taken.values()), taken
    for vm in vms:
        done(gce, gce.instances().delete(project=name, zone=ZONE, instance=vm))
    for net, sub in zip(nets, subs, strict=True):
        done(gce, gce.subnetworks().delete(project=name, region=REGION, subnetwork=sub))
        done(gce, gce.networks().delete(project=name, network=net))


# -- purposes --------------------------------------------------------------------------------------


def test_proxy_only_and_psc_subnetworks(project, net):
    """REGIONAL_MANAGED_PROXY needs a role and is READY; one ACTIVE per region, promoting the BACKUP
    demotes it; neither it nor a PRIVATE_SERVICE_CONNECT subnetwork takes VMs."""
    name, gce = project
    fails(insert(gce, name, net, unique("p"), "10.90.0.0/23", purpose="REGIONAL_MANAGED_PROXY"), 400, "required",
          "Required field 'resource.role' not specified")
    fails(insert(gce, name, net, unique("p"), "10.90.0.0/23", role="ACTIVE"), 400, "invalid")
    fails(insert(gce, name, net, unique("p"), "10.90.0.0/23", purpose="REGIONAL_MANAGED_PROXY", role="ACTIVE",
                 privateIpGoogleAccess=True), 400, "invalid")
    assert subnets_by_region(gce, name, net) == []
    active, backup, psc = unique("proxy"), unique("proxy"), unique("psc")
    done(gce, insert(gce, name, net, active, "10.90.0.0/23", purpose="REGIONAL_MANAGED_PROXY", role="ACTIVE"))
    got = get(gce, name, active)
    assert (got["purpose"], got["role"], got["state"]) == ("REGIONAL_MANAGED_PROXY", "ACTIVE", "READY")
    err = fails(insert(gce, name, net, unique("p"), "10.91.0.0/23", purpose="REGIONAL_MANAGED_PROXY", role="ACTIVE"),
                400, "invalid")
    assert f"'{active}'" in err["message"]
    done(gce, insert(gce, name, net, backup, "10.91.0.0/23", purpose="REGIONAL_MANAGED_PROXY", role="BACKUP"))
    done(gce, gce.subnetworks().patch(project=name, region=REGION, subnetwork=backup, body={
        "role": "ACTIVE", "fingerprint": get(gce, name, backup)["fingerprint"]}), "patch")
    assert (get(gce, name, backup)["role"], get(gce, name, active)["role"]) == ("ACTIVE", "BACKUP")
    done(gce, insert(gce, name, net, psc, "10.92.0.0/24", purpose="PRIVATE_SERVICE_CONNECT"))
    assert get(gce, name, psc)["purpose"] == "PRIVATE_SERVICE_CONNECT" and "state" not in get(gce, name, psc)
    for sub in (active, psc):
        err = fails(gce.instances().insert(project=name, zone=ZONE, body=instance_body(unique("vm"), net, sub)),
                    400, "invalid")
        assert "cannot be used by VM instances" in err["message"]
    assert not gce.instances().list(project=name, zone=ZONE).execute().get("items")


def test_allocated_ranges_for_private_services_access(project, net):
    """Global INTERNAL addresses with purpose VPC_PEERING reserve a block of the network that no
    subnetwork and no other range may overlap; without an address the lowest free block is taken."""
    name, gce = project
    done(gce, insert(gce, name, net, unique("s"), "10.0.0.0/24"))
    rng = unique("psa")

    def allocate(body: dict):
        return gce.globalAddresses().insert(project=name, body={
            "name": body.pop("name", unique("psa")), "addressType": "INTERNAL", "purpose": "VPC_PEERING",
            "network": f"global/networks/{net}", **body})

    fails(allocate({}), 400, "required", "Required field 'resource.prefixLength' not specified")
    fails(allocate({"prefixLength": 28}), 400, "invalid")
    fails(allocate({"prefixLength": 24, "address": "10.0.0.0"}), 400, "invalid")  # the subnetwork's range
    fails(gce.addresses().insert(project=name, region=REGION, body={
        "name": unique("r"), "addressType": "INTERNAL", "purpose": "VPC_PEERING", "prefixLength": 24}), 400, "invalid")
    done(gce, allocate({"name": rng, "prefixLength": 20}))
    got = gce.globalAddresses().get(project=name, address=rng).execute()
    assert (got["purpose"], got["addressType"], got["prefixLength"], got["status"]) == (
        "VPC_PEERING", "INTERNAL", 20, "RESERVED")
    assert got["network"].endswith(f"/projects/{name}/global/networks/{net}")
    block = ipaddress.ip_network(f"{got['address']}/20")
    assert not block.overlaps(ipaddress.ip_network("10.0.0.0/24"))
    err = fails(insert(gce, name, net, unique("s"), str(block)), 400, "invalid")
    assert f"allocated range '{rng}'" in err["message"]
    fails(allocate({"prefixLength": 24, "address": str(block.network_address)}), 400, "invalid")
    fails(gce.networks().delete(project=name, network=net), 400, "resourceInUseByAnotherResource")
    done(gce, gce.globalAddresses().delete(project=name, address=rng), "delete")
    done(gce, insert(gce, name, net, unique("s"), str(block)))
