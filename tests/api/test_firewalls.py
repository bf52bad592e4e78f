"""firewalls: end to end (SQLite and PostgreSQL) with google-api-python-client."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import project_credentials, unique
from tests.helpers.networks import custom, done, fails, names

GCLOUD_TRACE = Path("/work/shared/clients/gcloud/firewall-rules-create.txt")
ZONE = "us-central1-b"
IMAGE = "projects/debian-cloud/global/images/family/debian-12"


@pytest.fixture(scope="module")
def project(server):
    name = unique("fw")
    return name, server.gce(project_credentials(server, name))


@pytest.fixture(scope="module")
def net(project):
    name, gce = project
    return custom(gce, name)


def firewall_names(gce, project: str) -> list[str]:
    return names(gce.firewalls().list(project=project).execute())


def get(gce, project: str, name: str) -> dict:
    return gce.firewalls().get(project=project, firewall=name).execute()


def create(gce, project: str, net: str, **fields) -> str:
    name = unique("r")
    body = {"name": name, "network": f"global/networks/{net}", **fields}
    if "allowed" not in body and "denied" not in body:
        body["allowed"] = [{"IPProtocol": "tcp", "ports": ["22"]}]
    done(gce, gce.firewalls().insert(project=project, body=body), "insert")
    return name


# -- insert ----------------------------------------------------------------------------------------


def test_insert_as_gcloud_sends_it(server, project, net):
    name, gce = project
    sent = json.loads(GCLOUD_TRACE.read_text().split("--- request body (182 bytes) ---\n", 1)[1].split("\n", 1)[0])
    sent.update(name=unique("g"), network=f"{server.api}projects/{name}/global/networks/{net}")
    op = done(gce, gce.firewalls().insert(project=name, body=sent), "insert")
    assert "zone" not in op and "region" not in op
    assert op["targetLink"] == f"{server.api}projects/{name}/global/firewalls/{sent['name']}"
    fw = get(gce, name, sent["name"])
    assert op["targetId"] == fw["id"]
    expected = {"allowed": [{"IPProtocol": "tcp", "ports": ["22"]}], "direction": "INGRESS", "name": sent["name"],
                "network": sent["network"], "kind": "compute#firewall", "priority": 1000,
                "sourceRanges": ["0.0.0.0/0"], "disabled": False, "logConfig": {"enable": False},
                "selfLink": op["targetLink"]}
    assert {k: fw[k] for k in expected} == expected
    assert set(fw) == set(expected) | {"id", "creationTimestamp"}
    done(gce, gce.firewalls().delete(project=name, firewall=sent["name"]), "delete")
    fails(gce.firewalls().get(project=name, firewall=sent["name"]), 404, "notFound",
          f"The resource 'projects/{name}/global/firewalls/{sent['name']}' was not found")


def test_insert_every_field(project, net):
    name, gce = project
    fw = create(gce, name, net, description="web", priority=0, denied=[{"IPProtocol": "udp", "ports": ["53", "5000-5010"]},
                                                                      {"IPProtocol": "17"}],
                sourceRanges=["192.168.0.0/16", "10.1.2.3"], sourceTags=["front"], targetTags=["web", "api"],
                disabled=True, logConfig={"enable": True, "metadata": "INCLUDE_ALL_METADATA"},
                destinationRanges=["10.0.0.0/8"])
    got = get(gce, name, fw)
    assert got["priority"] == 0 and got["description"] == "web" and got["disabled"] is True
    assert got["denied"] == [{"IPProtocol": "udp", "ports": ["53", "5000-5010"]}, {"IPProtocol": "17"}]
    assert "allowed" not in got
    assert got["sourceRanges"] == ["192.168.0.0/16", "10.1.2.3"] and got["sourceTags"] == ["front"]
    assert got["targetTags"] == ["api", "web"]
    assert got["logConfig"] == {"enable": True, "metadata": "INCLUDE_ALL_METADATA"}
    egress = create(gce, name, net, direction="EGRESS", targetServiceAccounts=["sa@p.iam.gserviceaccount.com"])
    got = get(gce, name, egress)
    assert got["direction"] == "EGRESS" and got["destinationRanges"] == ["0.0.0.0/0"] and "sourceRanges" not in got
    # an ingress rule with source tags only gets no default source range
    assert "sourceRanges" not in get(gce, name, create(gce, name, net, sourceTags=["a"]))
    # without a network: the default network
    default = unique("d")
    done(gce, gce.firewalls().insert(project=name, body={"name": default, "allowed": [{"IPProtocol": "icmp"}]}))
    assert get(gce, name, default)["network"].endswith(f"/projects/{name}/global/networks/default")
    done(gce, gce.firewalls().delete(project=name, firewall=default))


def test_firewall_on_a_missing_network(project):
    name, gce = project
    before = firewall_names(gce, name)
    missing = unique("nonet")
    fails(gce.firewalls().insert(project=name, body={"name": unique("r"), "network": f"global/networks/{missing}",
                                                     "allowed": [{"IPProtocol": "tcp"}]}),
          404, "notFound", f"The resource 'projects/{name}/global/networks/{missing}' was not found")
    assert firewall_names(gce, name) == before


@pytest.mark.parametrize("fields, field, why", [
    ({"allowed": [{"IPProtocol": "tcp"}], "denied": [{"IPProtocol": "udp"}]}, "resource",
     "Exactly one of 'allowed' or 'denied' must be specified."),
    ({"allowed": []}, "resource", "Exactly one of 'allowed' or 'denied' must be specified."),
    ({"allowed": [{"IPProtocol": "http"}]}, "resource.allowed[0].IPProtocol", "Must be one of tcp, udp"),
    ({"allowed": [{"IPProtocol": "300"}]}, "resource.allowed[0].IPProtocol", "Must be one of tcp, udp"),
    ({"allowed": [{"IPProtocol": "icmp", "ports": ["22"]}]}, "resource.allowed[0].ports", "Ports may only"),
    ({"allowed": [{"IPProtocol": "tcp", "ports": ["70000"]}]}, "resource.allowed[0].ports[0]", "between 0 and 65535"),
    ({"allowed": [{"IPProtocol": "tcp", "ports": ["90-80"]}]}, "resource.allowed[0].ports[0]", "between 0 and 65535"),
    ({"allowed": [{"IPProtocol": "tcp", "ports": ["http"]}]}, "resource.allowed[0].ports[0]", "a port number"),
    ({"priority": 65536}, "resource.priority", "Must be between 0 and 65535."),
    ({"priority": -1}, "resource.priority", "Must be between 0 and 65535."),
    ({"sourceRanges": ["10.0.0.0/33"]}, "resource.sourceRanges[0]", "Must be an IP address or a CIDR range."),
    ({"direction": "EGRESS", "sourceTags": ["a"]}, "resource.sourceTags", "may not be specified for an EGRESS rule"),
    ({"sourceTags": ["a"], "sourceServiceAccounts": ["x@y.com"]}, "resource.sourceServiceAccounts", "together"),
    ({"targetTags": ["a"], "targetServiceAccounts": ["x@y.com"]}, "resource.targetServiceAccounts", "together"),
    ({"targetTags": ["Bad_Tag"]}, "resource.targetTags[0]", "Must be a match of regex"),
    ({"targetServiceAccounts": ["not-an-email"]}, "resource.targetServiceAccounts[0]", "service account email"),
    ({"logConfig": {"enable": False, "metadata": "INCLUDE_ALL_METADATA"}}, "resource.logConfig.metadata",
     "only be set when logging is enabled"),
])
def test_invalid_rules_are_refused(project, net, fields, field, why):
    name, gce = project
    before = firewall_names(gce, name)
    body = {"name": unique("bad"), "network": f"global/networks/{net}", "allowed": [{"IPProtocol": "tcp"}], **fields}
    if "denied" in fields and "allowed" not in fields:
        body.pop("allowed")
    err = fails(gce.firewalls().insert(project=name, body=body), 400, "invalid")
    assert err["message"].startswith(f"Invalid value for field '{field}'") and why in err["message"], err
    assert firewall_names(gce, name) == before


def test_insert_refusals_name_and_protocol(project, net):
    name, gce = project
    fails(gce.firewalls().insert(project=name, body={"network": f"global/networks/{net}",
                                                     "allowed": [{"IPProtocol": "tcp"}]}),
          400, "required", "Required field 'resource.name' not specified")
    fails(gce.firewalls().insert(project=name, body={"name": unique("r"), "allowed": [{"ports": ["22"]}]}),
          400, "required", "Required field 'resource.allowed[0].IPProtocol' not specified")
    fails(gce.firewalls().insert(project=name, body={"name": "default-allow-ssh", "allowed": [{"IPProtocol": "tcp"}]}),
          409, "alreadyExists", f"The resource 'projects/{name}/global/firewalls/default-allow-ssh' already exists")


# -- patch, update ---------------------------------------------------------------------------------


def test_patch_merges(project, net):
    name, gce = project
    fw = create(gce, name, net, sourceRanges=["10.0.0.0/8"], targetTags=["web"], description="d")
    done(gce, gce.firewalls().patch(project=name, firewall=fw, body={
        "allowed": [{"IPProtocol": "tcp", "ports": ["443"]}], "priority": 900}), "patch")
    got = get(gce, name, fw)
    assert got["allowed"] == [{"IPProtocol": "tcp", "ports": ["443"]}] and got["priority"] == 900
    assert got["sourceRanges"] == ["10.0.0.0/8"] and got["targetTags"] == ["web"] and got["description"] == "d"
    done(gce, gce.firewalls().patch(project=name, firewall=fw, body={"disabled": True, "sourceRanges": ["1.2.3.0/24"]}))
    got = get(gce, name, fw)
    assert got["disabled"] is True and got["sourceRanges"] == ["1.2.3.0/24"] and got["priority"] == 900


def test_update_replaces(project, net):
    name, gce = project
    fw = create(gce, name, net, sourceRanges=["10.0.0.0/8"], targetTags=["web"], priority=10)
    done(gce, gce.firewalls().update(project=name, firewall=fw, body={
        "name": fw, "allowed": [{"IPProtocol": "udp"}]}), "update")
    got = get(gce, name, fw)
    assert got["allowed"] == [{"IPProtocol": "udp"}] and got["priority"] == 1000
    assert got["sourceRanges"] == ["0.0.0.0/0"] and "targetTags" not in got
    assert got["network"].endswith(f"/global/networks/{net}")


def test_patch_and_update_refusals_change_nothing(project, net):
    name, gce = project
    fw = create(gce, name, net)
    before = get(gce, name, fw)
    fails(gce.firewalls().patch(project=name, firewall=fw, body={"direction": "EGRESS"}), 400, "invalid")
    fails(gce.firewalls().patch(project=name, firewall=fw, body={"denied": [{"IPProtocol": "tcp"}]}), 400, "invalid")
    fails(gce.firewalls().patch(project=name, firewall=fw, body={"network": "global/networks/default"}), 400, "invalid")
    fails(gce.firewalls().patch(project=name, firewall=fw, body={"priority": 70000}), 400, "invalid")
    fails(gce.firewalls().update(project=name, firewall=fw, body={"name": "other", "allowed": [{"IPProtocol": "tcp"}]}),
          400, "invalid")
    fails(gce.firewalls().update(project=name, firewall=fw, body={"sourceTags": ["a"]}), 400, "invalid")
    assert get(gce, name, fw) == before
    fails(gce.firewalls().patch(project=name, firewall=unique("none"), body={"priority": 1}), 404, "notFound")
    fails(gce.firewalls().delete(project=name, firewall=unique("none")), 404, "notFound")


# -- effective firewalls of an instance ------------------------------------------------------------


def test_instance_effective_firewalls_match_its_tags_and_service_account(project):
    name, gce = project
    tagged = create(gce, name, "default", targetTags=["web"])
    other_tag = create(gce, name, "default", targetTags=["db"])
    by_account = create(gce, name, "default", targetServiceAccounts=["runner@example.iam.gserviceaccount.com"])
    disabled = create(gce, name, "default", disabled=True)
    vm = unique("vm")
    done(gce, gce.instances().insert(project=name, zone=ZONE, body={
        "name": vm, "machineType": f"zones/{ZONE}/machineTypes/e2-micro", "tags": {"items": ["web"]},
        "serviceAccounts": [{"email": "runner@example.iam.gserviceaccount.com", "scopes": ["cloud-platform"]}],
        "disks": [{"boot": True, "autoDelete": True, "initializeParams": {"sourceImage": IMAGE}}],
        "networkInterfaces": [{"network": "global/networks/default"}]}))
    eff = gce.instances().getEffectiveFirewalls(project=name, zone=ZONE, instance=vm, networkInterface="nic0").execute()
    got = {f["name"] for f in eff["firewalls"]}
    assert {tagged, by_account} <= got and not {other_tag, disabled} & got
    assert {"default-allow-ssh", "default-allow-internal"} <= got
    fails(gce.instances().getEffectiveFirewalls(project=name, zone=ZONE, instance=vm, networkInterface="nic7"),
          400, "invalid")
    fails(gce.instances().getEffectiveFirewalls(project=name, zone=ZONE, instance=unique("no"), networkInterface="nic0"),
          404, "notFound")
    done(gce, gce.instances().delete(project=name, zone=ZONE, instance=vm))
    for fw in (tagged, other_tag, by_account, disabled):
        done(gce, gce.firewalls().delete(project=name, firewall=fw))


def test_firewalls_quota(server, project, net):
    name, gce = project
    count = len(firewall_names(gce, name))
    server.admin("project", "set-quota", "--project", name, "--metric", "FIREWALLS", "--limit", str(count))
    try:
        fails(gce.firewalls().insert(project=name, body={"name": unique("q"), "network": f"global/networks/{net}",
                                                         "allowed": [{"IPProtocol": "icmp"}]}),
              403, "quotaExceeded", f"Quota 'FIREWALLS' exceeded.  Limit: {float(count)} globally.")
    finally:
        server.admin("project", "set-quota", "--project", name, "--metric", "FIREWALLS", "--limit", "200")
    assert len(firewall_names(gce, name)) == count
