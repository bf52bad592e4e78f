"""Shared VPC (XPN) through googleapiclient, on both databases: a host project lends its subnetwork
to an attached service project's instance; the access checks; what may not be undone while in use;
and no reference to another project's network, subnetwork or disk without it."""

from __future__ import annotations

import ipaddress
import json
import os

from tests.conftest import project_credentials, unique, wait_op
from tests.helpers.compute import expect_error

ZONE, REGION = "us-central1-a", "us-central1"
IMAGE = "projects/debian-cloud/global/images/family/debian-12"


def ok(gce, request) -> dict:
    op = wait_op(gce, request.execute())
    assert op["status"] == "DONE" and "error" not in op, op
    return op


def instance(name: str, subnet: str | None = None, disks: list | None = None) -> dict:
    return {"name": name, "machineType": f"zones/{ZONE}/machineTypes/e2-micro",
            "disks": disks or [{"boot": True, "autoDelete": True, "initializeParams": {"sourceImage": IMAGE}}],
            "networkInterfaces": [{"subnetwork": subnet} if subnet else {}]}


def email_of(server, project: str) -> str:
    with open(os.path.join(server.data_dir, f"{project}-key.json")) as f:
        return json.load(f)["client_email"]


def test_shared_vpc(server):
    host, service, other = unique("xhost"), unique("xsvc"), unique("xother")
    h = server.gce(project_credentials(server, host))
    s = server.gce(project_credentials(server, service))
    o = server.gce(project_credentials(server, other))
    s_email, h_email = email_of(server, service), email_of(server, host)
    ok(h, h.networks().insert(project=host, body={"name": "shared", "autoCreateSubnetworks": False}))
    ok(h, h.subnetworks().insert(project=host, region=REGION, body={
        "name": "lent", "network": f"projects/{host}/global/networks/shared", "ipCidrRange": "10.77.0.0/24"}))
    subnet = f"projects/{host}/regions/{REGION}/subnetworks/lent"

    # Not attached: another project's subnetwork cannot be named.
    err = expect_error(s.instances().insert(project=service, zone=ZONE, body=instance(unique("vm"), subnet)),
                       400, "invalid")
    assert "is not a Shared VPC service project" in err["message"]
    assert h.projects().get(project=host).execute()["xpnProjectStatus"] == "UNSPECIFIED_XPN_PROJECT_STATUS"
    expect_error(h.projects().enableXpnResource(project=host, body={"xpnResource": {"id": service, "type": "PROJECT"}}),
                 400, "badRequest")  # not a host yet
    op = ok(h, h.projects().enableXpnHost(project=host))
    assert op["operationType"] == "enableXpnHost"
    assert h.projects().get(project=host).execute()["xpnProjectStatus"] == "HOST"
    # The host's owner has no role on the service project: it cannot attach it.
    expect_error(h.projects().enableXpnResource(project=host, body={"xpnResource": {"id": service, "type": "PROJECT"}}),
                 403, "forbidden")
    server.admin("project", "add-member", service, h_email, "--role", "owner")
    ok(h, h.projects().enableXpnResource(project=host, body={"xpnResource": {"id": service, "type": "PROJECT"}}))
    assert h.projects().getXpnResources(project=host).execute() == {
        "kind": "compute#projectsGetXpnResources", "resources": [{"id": service, "type": "PROJECT"}]}
    assert s.projects().getXpnHost(project=service).execute()["name"] == host
    assert o.projects().getXpnHost(project=other).execute() == {}
    assert [p["name"] for p in h.projects().listXpnHosts(project=host, body={}).execute()["items"]] == [host]
    assert "items" not in o.projects().listXpnHosts(project=other, body={}).execute()  # o reads no host

    # Attached, but the service project's account has no role on the host: refused.
    vm = unique("vm")
    expect_error(s.instances().insert(project=service, zone=ZONE, body=instance(vm, subnet)), 403, "forbidden")
    server.admin("project", "add-member", host, s_email, "--role", "viewer")
    ok(s, s.instances().insert(project=service, zone=ZONE, body=instance(vm, subnet)))
    got = s.instances().get(project=service, zone=ZONE, instance=vm).execute()
    nic = got["networkInterfaces"][0]
    assert nic["network"].endswith(f"/projects/{host}/global/networks/shared")
    assert nic["subnetwork"].endswith(f"/{subnet}")
    assert ipaddress.ip_address(nic["networkIP"]) in ipaddress.ip_network("10.77.0.0/24")

    # In use: the host's subnetwork and network stay, the service project stays attached, the host stays a host.
    expect_error(h.subnetworks().delete(project=host, region=REGION, subnetwork="lent"), 400,
                 "resourceInUseByAnotherResource")
    expect_error(h.projects().disableXpnResource(project=host, body={"xpnResource": {"id": service}}), 400,
                 "badRequest")
    expect_error(h.projects().disableXpnHost(project=host), 400, "badRequest")
    ok(s, s.instances().delete(project=service, zone=ZONE, instance=vm))
    ok(h, h.projects().disableXpnResource(project=host, body={"xpnResource": {"id": service, "type": "PROJECT"}}))
    assert s.projects().getXpnHost(project=service).execute() == {}
    ok(h, h.projects().disableXpnHost(project=host))
    assert h.projects().get(project=host).execute()["xpnProjectStatus"] == "UNSPECIFIED_XPN_PROJECT_STATUS"
    ok(h, h.subnetworks().delete(project=host, region=REGION, subnetwork="lent"))


def test_no_reference_to_another_projects_disk_or_network(server):
    """Without Shared VPC, a body cannot reach into a project the caller does not own."""
    mine, theirs = unique("own"), unique("their")
    m = server.gce(project_credentials(server, mine))
    t = server.gce(project_credentials(server, theirs))
    ok(t, t.disks().insert(project=theirs, zone=ZONE, body={"name": "secret", "sizeGb": "10"}))
    body = instance(unique("vm"), disks=[
        {"boot": True, "autoDelete": True, "initializeParams": {"sourceImage": IMAGE}},
        {"source": f"projects/{theirs}/zones/{ZONE}/disks/secret"}])
    expect_error(m.instances().insert(project=mine, zone=ZONE, body=body), 404, "notFound",
                 f"The resource 'projects/{theirs}/zones/{ZONE}/disks/secret' was not found")
    body = instance(unique("vm"))
    body["networkInterfaces"] = [{"network": f"projects/{theirs}/global/networks/default"}]
    expect_error(m.instances().insert(project=mine, zone=ZONE, body=body), 400, "invalid")
    ok(t, t.instanceTemplates().insert(project=theirs, body={"name": "tmpl", "properties": {
        "machineType": "e2-micro", "networkInterfaces": [{}],
        "disks": [{"boot": True, "autoDelete": True, "initializeParams": {"sourceImage": IMAGE}}]}}))
    expect_error(m.instances().insert(project=mine, zone=ZONE, body={"name": unique("vm")},
                                      sourceInstanceTemplate=f"projects/{theirs}/global/instanceTemplates/tmpl"),
                 404, "notFound")
    expect_error(m.instanceGroupManagers().insert(project=mine, zone=ZONE, body={
        "name": unique("mig"), "targetSize": 1,
        "instanceTemplate": f"projects/{theirs}/global/instanceTemplates/tmpl"}), 404, "notFound")
    assert not m.instances().list(project=mine, zone=ZONE).execute().get("items")
    vm = unique("vm")
    ok(m, m.instances().insert(project=mine, zone=ZONE, body=instance(vm)))
    expect_error(m.instances().attachDisk(project=mine, zone=ZONE, instance=vm, body={
        "source": f"projects/{theirs}/zones/{ZONE}/disks/secret"}), 404, "notFound")
    assert "users" not in t.disks().get(project=theirs, zone=ZONE, disk="secret").execute()
