"""addresses, globalAddresses and static addresses on instances' access configs (SQLite and PostgreSQL)."""

from __future__ import annotations

import ipaddress

import pytest

from tests.conftest import project_credentials, unique
from tests.helpers.networks import custom, done, fails, names

REGION = "us-central1"
ZONE = "us-central1-b"
IMAGE = "projects/debian-cloud/global/images/family/debian-12"
EXTERNAL = ipaddress.ip_network("198.18.0.0/15")


@pytest.fixture(scope="module")
def project(server):
    name = unique("addr")
    return name, server.gce(project_credentials(server, name))


def reserve(gce, project: str, region: str | None = REGION, **fields) -> dict:
    """Reserve an address; the address resource."""
    name = unique("ip")
    if region:
        done(gce, gce.addresses().insert(project=project, region=region, body={"name": name, **fields}), "insert")
        return gce.addresses().get(project=project, region=region, address=name).execute()
    done(gce, gce.globalAddresses().insert(project=project, body={"name": name, **fields}), "insert")
    return gce.globalAddresses().get(project=project, address=name).execute()


def get(gce, project: str, name: str) -> dict:
    return gce.addresses().get(project=project, region=REGION, address=name).execute()


def address_names(gce, project: str) -> list[str]:
    return names(gce.addresses().list(project=project, region=REGION).execute())


def create_vm(gce, project: str, nat_ip: str | None = None, nat: bool = True, **nic) -> str:
    vm = unique("vm")
    configs = [{"name": "External NAT", "type": "ONE_TO_ONE_NAT", **({"natIP": nat_ip} if nat_ip else {})}]
    done(gce, gce.instances().insert(project=project, zone=ZONE, body={
        "name": vm, "machineType": f"zones/{ZONE}/machineTypes/e2-micro",
        "disks": [{"boot": True, "autoDelete": True, "initializeParams": {"sourceImage": IMAGE}}],
        "networkInterfaces": [{"network": "global/networks/default", **({"accessConfigs": configs} if nat else {}),
                               **nic}]}))
    return vm


def nat_of(gce, project: str, vm: str) -> str | None:
    nic = gce.instances().get(project=project, zone=ZONE, instance=vm).execute()["networkInterfaces"][0]
    return nic["accessConfigs"][0]["natIP"] if nic.get("accessConfigs") else None


def delete_vm(gce, project: str, vm: str) -> None:
    done(gce, gce.instances().delete(project=project, zone=ZONE, instance=vm))


# -- regional external addresses -------------------------------------------------------------------


def test_reserve_an_external_address(server, project):
    name, gce = project
    addr_name = unique("ip")
    op = done(gce, gce.addresses().insert(project=name, region=REGION, body={"name": addr_name, "description": "d"}))
    assert op["region"] == f"{server.api}projects/{name}/regions/{REGION}"
    assert op["targetLink"] == f"{server.api}projects/{name}/regions/{REGION}/addresses/{addr_name}"
    addr = get(gce, name, addr_name)
    assert op["targetId"] == addr["id"]
    assert addr["kind"] == "compute#address" and addr["status"] == "RESERVED" and "users" not in addr
    assert addr["addressType"] == "EXTERNAL" and addr["networkTier"] == "PREMIUM" and addr["description"] == "d"
    assert ipaddress.ip_address(addr["address"]) in EXTERNAL
    assert addr["region"] == f"{server.api}projects/{name}/regions/{REGION}"
    assert get(gce, name, addr["id"]) == addr
    listed = gce.addresses().list(project=name, region=REGION).execute()
    assert listed["kind"] == "compute#addressList" and addr_name in names(listed)
    done(gce, gce.addresses().delete(project=name, region=REGION, address=addr_name), "delete")
    fails(gce.addresses().get(project=name, region=REGION, address=addr_name), 404, "notFound",
          f"The resource 'projects/{name}/regions/{REGION}/addresses/{addr_name}' was not found")


def test_reserve_a_given_address_and_one_already_in_use(project):
    name, gce = project
    first = reserve(gce, name)
    ip = str(ipaddress.ip_address(first["address"]) + 100)
    chosen = reserve(gce, name, address=ip)
    assert chosen["address"] == ip and chosen["status"] == "RESERVED"
    before = address_names(gce, name)
    for taken in (ip, first["address"]):
        fails(gce.addresses().insert(project=name, region=REGION, body={"name": unique("dup"), "address": taken}),
              409, "alreadyExists", f"IP_IN_USE_BY_ANOTHER_RESOURCE - IP '{taken}' is already being used by "
                                    "another resource.")
    fails(gce.addresses().insert(project=name, region=REGION, body={"name": unique("far"), "address": "8.8.8.8"}),
          400, "invalid")
    fails(gce.addresses().insert(project=name, region=REGION, body={"name": first["name"]}), 409, "alreadyExists",
          f"The resource 'projects/{name}/regions/{REGION}/addresses/{first['name']}' already exists")
    assert address_names(gce, name) == before
    for a in (first, chosen):
        done(gce, gce.addresses().delete(project=name, region=REGION, address=a["name"]))


def test_set_labels(project):
    name, gce = project
    addr = reserve(gce, name)
    done(gce, gce.addresses().setLabels(project=name, region=REGION, resource=addr["name"], body={
        "labels": {"env": "prod"}, "labelFingerprint": addr["labelFingerprint"]}), "setLabels")
    labelled = get(gce, name, addr["name"])
    assert labelled["labels"] == {"env": "prod"} and labelled["labelFingerprint"] != addr["labelFingerprint"]
    fails(gce.addresses().setLabels(project=name, region=REGION, resource=addr["name"], body={
        "labels": {}, "labelFingerprint": addr["labelFingerprint"]}), 412, "conditionNotMet", "Invalid fingerprint.")
    assert get(gce, name, addr["name"]) == labelled
    done(gce, gce.addresses().delete(project=name, region=REGION, address=addr["name"]))


# -- internal addresses ----------------------------------------------------------------------------


def test_internal_addresses(server, project):
    name, gce = project
    net = custom(gce, name)
    subnet = unique("s")
    done(gce, gce.subnetworks().insert(project=name, region=REGION, body={
        "name": subnet, "network": f"global/networks/{net}", "ipCidrRange": "10.9.0.0/24"}))
    sub_ref = f"regions/{REGION}/subnetworks/{subnet}"
    auto = reserve(gce, name, addressType="INTERNAL", subnetwork=sub_ref)
    assert auto["address"] == "10.9.0.2" and auto["purpose"] == "GCE_ENDPOINT"
    assert auto["subnetwork"] == f"{server.api}projects/{name}/{sub_ref}"
    given = reserve(gce, name, addressType="INTERNAL", subnetwork=sub_ref, address="10.9.0.50")
    assert given["address"] == "10.9.0.50"
    fails(gce.addresses().insert(project=name, region=REGION, body={
        "name": unique("dup"), "addressType": "INTERNAL", "subnetwork": sub_ref, "address": "10.9.0.50"}),
        409, "alreadyExists")
    for bad in ("10.9.0.1", "10.9.0.255", "10.8.0.5"):
        fails(gce.addresses().insert(project=name, region=REGION, body={
            "name": unique("bad"), "addressType": "INTERNAL", "subnetwork": sub_ref, "address": bad}), 400, "invalid")
    fails(gce.addresses().insert(project=name, region=REGION, body={"name": unique("x"), "addressType": "INTERNAL"}),
          400, "required", "Required field 'resource.subnetwork' not specified")
    # the subnetwork (and its network) cannot go while the address holds one of its IPs
    fails(gce.subnetworks().delete(project=name, region=REGION, subnetwork=subnet), 400,
          "resourceInUseByAnotherResource")
    for a in (auto, given):
        done(gce, gce.addresses().delete(project=name, region=REGION, address=a["name"]))
    done(gce, gce.subnetworks().delete(project=name, region=REGION, subnetwork=subnet))
    done(gce, gce.networks().delete(project=name, network=net))


def test_a_static_internal_address_on_an_instance(server, project):
    name, gce = project
    sub_ref = f"regions/{REGION}/subnetworks/default"
    addr = reserve(gce, name, addressType="INTERNAL", subnetwork=sub_ref)
    vm = create_vm(gce, name, nat=False, networkIP=addr["address"])
    vm_url = f"{server.api}projects/{name}/zones/{ZONE}/instances/{vm}"
    nic = gce.instances().get(project=name, zone=ZONE, instance=vm).execute()["networkInterfaces"][0]
    assert nic["networkIP"] == addr["address"]
    used = get(gce, name, addr["name"])
    assert used["status"] == "IN_USE" and used["users"] == [vm_url]
    fails(gce.addresses().delete(project=name, region=REGION, address=addr["name"]), 400,
          "resourceInUseByAnotherResource")
    fails(gce.instances().insert(project=name, zone=ZONE, body={
        "name": unique("vm"), "machineType": f"zones/{ZONE}/machineTypes/e2-micro",
        "disks": [{"boot": True, "autoDelete": True, "initializeParams": {"sourceImage": IMAGE}}],
        "networkInterfaces": [{"networkIP": addr["address"]}]}), 400, "resourceInUseByAnotherResource")
    delete_vm(gce, name, vm)
    released = get(gce, name, addr["name"])
    assert released["status"] == "RESERVED" and "users" not in released
    # the address keeps its IP: an instance asking for it now gets it again
    again = create_vm(gce, name, nat=False, networkIP=addr["address"])
    assert get(gce, name, addr["name"])["users"] == [f"{server.api}projects/{name}/zones/{ZONE}/instances/{again}"]
    delete_vm(gce, name, again)
    done(gce, gce.addresses().delete(project=name, region=REGION, address=addr["name"]))


def test_reserving_an_instance_ephemeral_internal_address_promotes_it(server, project):
    name, gce = project
    sub_ref = f"regions/{REGION}/subnetworks/default"
    vm = create_vm(gce, name, nat=False)
    ip = gce.instances().get(project=name, zone=ZONE, instance=vm).execute()["networkInterfaces"][0]["networkIP"]
    promoted = reserve(gce, name, addressType="INTERNAL", subnetwork=sub_ref, address=ip)
    assert promoted["address"] == ip
    assert promoted["status"] == "IN_USE"
    assert promoted["users"] == [f"{server.api}projects/{name}/zones/{ZONE}/instances/{vm}"]
    delete_vm(gce, name, vm)
    assert get(gce, name, promoted["name"])["status"] == "RESERVED"  # the IP stays with the address
    fails(gce.addresses().insert(project=name, region=REGION, body={
        "name": unique("dup"), "addressType": "INTERNAL", "subnetwork": sub_ref, "address": ip}), 409, "alreadyExists")
    done(gce, gce.addresses().delete(project=name, region=REGION, address=promoted["name"]))


# -- global addresses ------------------------------------------------------------------------------


def test_global_addresses(server, project):
    name, gce = project
    addr = reserve(gce, name, region=None)
    assert addr["status"] == "RESERVED" and "region" not in addr
    assert addr["selfLink"] == f"{server.api}projects/{name}/global/addresses/{addr['name']}"
    assert ipaddress.ip_address(addr["address"]) in ipaddress.ip_network("198.19.255.0/24")
    assert addr["name"] in names(gce.globalAddresses().list(project=name).execute())
    assert addr["name"] not in address_names(gce, name)
    agg = gce.addresses().aggregatedList(project=name).execute()
    assert agg["kind"] == "compute#addressAggregatedList"
    assert [a["name"] for a in agg["items"]["global"]["addresses"]] == [addr["name"]]
    assert f"regions/{REGION}" in agg["items"]
    done(gce, gce.globalAddresses().setLabels(project=name, resource=addr["name"], body={
        "labels": {"a": "b"}, "labelFingerprint": addr["labelFingerprint"]}), "setLabels")
    assert gce.globalAddresses().get(project=name, address=addr["name"]).execute()["labels"] == {"a": "b"}
    fails(gce.globalAddresses().insert(project=name, body={"name": unique("i"), "addressType": "INTERNAL"}),
          400, "invalid")
    op = done(gce, gce.globalAddresses().delete(project=name, address=addr["name"]), "delete")
    assert "region" not in op and "zone" not in op


# -- static addresses on instances -----------------------------------------------------------------


def test_a_static_address_on_an_instance(server, project):
    name, gce = project
    addr = reserve(gce, name)
    vm = create_vm(gce, name, nat_ip=addr["address"])
    vm_url = f"{server.api}projects/{name}/zones/{ZONE}/instances/{vm}"
    assert nat_of(gce, name, vm) == addr["address"]
    used = get(gce, name, addr["name"])
    assert used["status"] == "IN_USE" and used["users"] == [vm_url]
    path = f"projects/{name}/regions/{REGION}/addresses/{addr['name']}"
    fails(gce.addresses().delete(project=name, region=REGION, address=addr["name"]), 400,
          "resourceInUseByAnotherResource",
          f"The address resource '{path}' is already being used by 'projects/{name}/zones/{ZONE}/instances/{vm}'")
    # another instance cannot take it
    fails(gce.instances().insert(project=name, zone=ZONE, body={
        "name": unique("vm"), "machineType": f"zones/{ZONE}/machineTypes/e2-micro",
        "disks": [{"boot": True, "autoDelete": True, "initializeParams": {"sourceImage": IMAGE}}],
        "networkInterfaces": [{"accessConfigs": [{"natIP": addr["address"]}]}]}), 400,
        "resourceInUseByAnotherResource")
    # deleteAccessConfig gives it back, addAccessConfig takes it again
    done(gce, gce.instances().deleteAccessConfig(project=name, zone=ZONE, instance=vm, networkInterface="nic0",
                                                 accessConfig="External NAT"))
    released = get(gce, name, addr["name"])
    assert released["status"] == "RESERVED" and "users" not in released
    done(gce, gce.instances().addAccessConfig(project=name, zone=ZONE, instance=vm, networkInterface="nic0",
                                              body={"name": "static", "natIP": addr["address"]}))
    assert get(gce, name, addr["name"])["users"] == [vm_url]
    # updateAccessConfig changes the PTR settings, not the address
    done(gce, gce.instances().updateAccessConfig(project=name, zone=ZONE, instance=vm, networkInterface="nic0", body={
        "type": "ONE_TO_ONE_NAT", "setPublicPtr": True, "publicPtrDomainName": "vm.example.com."}),
        "updateAccessConfig")
    ac = gce.instances().get(project=name, zone=ZONE, instance=vm).execute()["networkInterfaces"][0]["accessConfigs"][0]
    assert ac["setPublicPtr"] is True and ac["publicPtrDomainName"] == "vm.example.com."
    assert ac["natIP"] == addr["address"]
    fails(gce.instances().updateAccessConfig(project=name, zone=ZONE, instance=vm, networkInterface="nic0", body={
        "natIP": str(ipaddress.ip_address(addr["address"]) + 1)}), 400, "invalid")
    # once the instance is gone the address can be released
    delete_vm(gce, name, vm)
    done(gce, gce.addresses().delete(project=name, region=REGION, address=addr["name"]))


def test_reserving_an_instance_ephemeral_address_promotes_it(server, project):
    name, gce = project
    vm = create_vm(gce, name)
    ip = nat_of(gce, name, vm)
    addr = reserve(gce, name, address=ip)
    assert addr["address"] == ip and addr["status"] == "IN_USE"
    assert addr["users"] == [f"{server.api}projects/{name}/zones/{ZONE}/instances/{vm}"]
    done(gce, gce.instances().deleteAccessConfig(project=name, zone=ZONE, instance=vm, networkInterface="nic0",
                                                 accessConfig="External NAT"))
    assert get(gce, name, addr["name"])["status"] == "RESERVED"
    # the promoted address stayed reserved: a new access config gets another ephemeral IP
    done(gce, gce.instances().addAccessConfig(project=name, zone=ZONE, instance=vm, networkInterface="nic0", body={}))
    assert nat_of(gce, name, vm) != ip
    delete_vm(gce, name, vm)
    done(gce, gce.addresses().delete(project=name, region=REGION, address=addr["name"]))


# -- quotas ----------------------------------------------------------------------------------------


def region_quota(gce, project: str, metric: str) -> tuple[float, float]:
    quotas = {q["metric"]: q for q in gce.regions().get(project=project, region=REGION).execute()["quotas"]}
    return quotas[metric]["limit"], quotas[metric]["usage"]


def test_static_and_in_use_address_quotas(server):
    name = unique("quota")
    gce = server.gce(project_credentials(server, name))
    assert region_quota(gce, name, "STATIC_ADDRESSES") == (8.0, 0.0)
    assert region_quota(gce, name, "IN_USE_ADDRESSES")[1] == 0.0
    server.admin("project", "set-quota", "--project", name, "--region", REGION, "--metric", "STATIC_ADDRESSES",
                 "--limit", "1")
    addr = reserve(gce, name)
    assert region_quota(gce, name, "STATIC_ADDRESSES") == (1.0, 1.0)
    fails(gce.addresses().insert(project=name, region=REGION, body={"name": unique("ip")}), 403, "quotaExceeded",
          f"Quota 'STATIC_ADDRESSES' exceeded.  Limit: 1.0 in region {REGION}.")
    # in use: an ephemeral IP and a static one in use count, a reserved one does not
    ephemeral = create_vm(gce, name)
    assert region_quota(gce, name, "IN_USE_ADDRESSES")[1] == 1.0
    static = create_vm(gce, name, nat_ip=addr["address"])
    assert region_quota(gce, name, "IN_USE_ADDRESSES")[1] == 2.0
    server.admin("project", "set-quota", "--project", name, "--region", REGION, "--metric", "IN_USE_ADDRESSES",
                 "--limit", "2")
    plain = create_vm(gce, name, nat=False)
    fails(gce.instances().addAccessConfig(project=name, zone=ZONE, instance=plain, networkInterface="nic0", body={}),
          403, "quotaExceeded", f"Quota 'IN_USE_ADDRESSES' exceeded.  Limit: 2.0 in region {REGION}.")
    assert nat_of(gce, name, plain) is None
    done(gce, gce.instances().deleteAccessConfig(project=name, zone=ZONE, instance=static, networkInterface="nic0",
                                                 accessConfig="External NAT"))
    assert region_quota(gce, name, "IN_USE_ADDRESSES")[1] == 1.0
    for vm in (ephemeral, static, plain):
        delete_vm(gce, name, vm)
    assert region_quota(gce, name, "IN_USE_ADDRESSES")[1] == 0.0
