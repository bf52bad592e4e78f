"""projects.get and projects.setCommonInstanceMetadata, end to end."""

from __future__ import annotations

import base64
import re

from tests.conftest import PROJECT, wait_op
from tests.helpers.compute import expect_error, fresh_project, link

METADATA_MISMATCH = "Supplied fingerprint does not match current metadata fingerprint."


def test_project_get(server, gce):
    p = gce.projects().get(project=PROJECT).execute()
    assert p["kind"] == "compute#project"
    assert p["name"] == PROJECT
    assert p["id"].isdigit()
    assert p["selfLink"] == link(server, f"projects/{PROJECT}")
    assert p["defaultServiceAccount"] == f"{p['id']}-compute@developer.gserviceaccount.com"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[-+]\d\d:\d\d", p["creationTimestamp"])
    md = p["commonInstanceMetadata"]
    assert md["kind"] == "compute#metadata"
    assert len(base64.urlsafe_b64decode(md["fingerprint"])) == 8
    quotas = {q["metric"]: q for q in p["quotas"]}
    assert {"SNAPSHOTS", "NETWORKS", "FIREWALLS", "IMAGES", "ROUTES", "SUBNETWORKS", "CPUS_ALL_REGIONS"} <= set(quotas)
    for q in p["quotas"]:
        assert isinstance(q["limit"], float) and isinstance(q["usage"], float)
    assert quotas["FIREWALLS"]["limit"] == 200.0 and quotas["FIREWALLS"]["usage"] >= 4.0
    assert quotas["NETWORKS"]["usage"] >= 1.0


def test_fresh_project_get(server):
    name, g = fresh_project(server)
    p = g.projects().get(project=name).execute()
    assert p["name"] == name
    assert "items" not in p["commonInstanceMetadata"]
    quotas = {q["metric"]: (q["limit"], q["usage"]) for q in p["quotas"]}
    assert quotas["NETWORKS"] == (15.0, 1.0)
    assert quotas["FIREWALLS"] == (200.0, 4.0)
    assert quotas["SUBNETWORKS"] == (175.0, 2.0)
    assert quotas["IMAGES"] == (2000.0, 0.0)
    assert quotas["SNAPSHOTS"] == (5000.0, 0.0)
    assert quotas["CPUS_ALL_REGIONS"] == (288.0, 0.0)
    # Its default VPC is there, and another project's resources are not visible with its key.
    assert g.networks().get(project=name, network="default").execute()["autoCreateSubnetworks"] is True
    expect_error(g.projects().get(project=PROJECT), 403, "forbidden")


def test_project_unknown(server, gce):
    # The caller is no member of a project that does not exist: 403, as GCE answers.
    expect_error(gce.projects().get(project="no-such-project-xyz"), 403, "forbidden")


def test_set_common_instance_metadata(server):
    name, g = fresh_project(server)
    before = g.projects().get(project=name).execute()["commonInstanceMetadata"]
    items = [{"key": "ssh-keys", "value": "user:ssh-ed25519 AAAA user"}, {"key": "startup-script", "value": "echo hi"}]
    op = g.projects().setCommonInstanceMetadata(project=name, body={"fingerprint": before["fingerprint"],
                                                                    "items": items}).execute()
    assert op["kind"] == "compute#operation"
    assert op["operationType"] == "setMetadata"
    assert op["targetLink"] == link(server, f"projects/{name}")
    assert op["selfLink"].startswith(link(server, f"projects/{name}/global/operations/"))
    assert "zone" not in op and "region" not in op
    assert op["id"].isdigit() and op["targetId"].isdigit()
    op = wait_op(g, op)
    assert op["status"] == "DONE" and "error" not in op
    fetched = g.globalOperations().get(project=name, operation=op["name"]).execute()
    assert fetched["operationType"] == "setMetadata" and fetched["status"] == "DONE"

    after = g.projects().get(project=name).execute()["commonInstanceMetadata"]
    assert after["items"] == items
    assert after["fingerprint"] != before["fingerprint"]

    # The old fingerprint no longer matches; neither does a missing one once there is content.
    expect_error(g.projects().setCommonInstanceMetadata(project=name, body={"fingerprint": before["fingerprint"],
                                                                            "items": []}),
                 412, "conditionNotMet", METADATA_MISMATCH)
    expect_error(g.projects().setCommonInstanceMetadata(project=name, body={"items": []}),
                 412, "conditionNotMet", METADATA_MISMATCH)
    assert g.projects().get(project=name).execute()["commonInstanceMetadata"]["items"] == items

    # gcloud re-encodes fingerprints URL-safe, others send standard base64: both name the same bytes.
    # Change the content until the fingerprint has a character the two alphabets spell differently.
    current = after
    for n in range(60):
        if re.search(r"[-_]", current["fingerprint"]):
            break
        wait_op(g, g.projects().setCommonInstanceMetadata(
            project=name, body={"fingerprint": current["fingerprint"], "items": [{"key": "n", "value": str(n)}]}
        ).execute())
        current = g.projects().get(project=name).execute()["commonInstanceMetadata"]
    standard = base64.b64encode(base64.urlsafe_b64decode(current["fingerprint"])).decode()
    assert standard != current["fingerprint"]
    wait_op(g, g.projects().setCommonInstanceMetadata(project=name, body={"fingerprint": standard,
                                                                          "items": items}).execute())
    current = g.projects().get(project=name).execute()["commonInstanceMetadata"]
    assert current["items"] == items
    unpadded = current["fingerprint"].rstrip("=")
    wait_op(g, g.projects().setCommonInstanceMetadata(project=name, body={"fingerprint": unpadded,
                                                                          "items": items[:1]}).execute())
    assert g.projects().get(project=name).execute()["commonInstanceMetadata"]["items"] == items[:1]

    # Full replacement back to empty.
    current = g.projects().get(project=name).execute()["commonInstanceMetadata"]
    wait_op(g, g.projects().setCommonInstanceMetadata(project=name, body={"fingerprint": current["fingerprint"],
                                                                          "items": []}).execute())
    emptied = g.projects().get(project=name).execute()["commonInstanceMetadata"]
    assert "items" not in emptied
    assert emptied["fingerprint"] == before["fingerprint"]


def test_set_common_instance_metadata_invalid(server):
    name, g = fresh_project(server, "projbad")
    fp = g.projects().get(project=name).execute()["commonInstanceMetadata"]["fingerprint"]

    def set_items(items):
        return g.projects().setCommonInstanceMetadata(project=name, body={"fingerprint": fp, "items": items})

    err = expect_error(set_items([{"key": "a", "value": "1"}, {"key": "a", "value": "2"}]), 400, "invalid")
    assert err["message"] == ("Invalid value for field 'resource.items[1].key': 'a'. "
                              "Duplicate keys are not allowed.")
    err = expect_error(set_items([{"key": "bad key", "value": "1"}]), 400, "invalid")
    assert err["message"].startswith("Invalid value for field 'resource.items[0].key': 'bad key'.")
    expect_error(set_items([{"key": "k:colon", "value": "1"}]), 400, "invalid")
    expect_error(set_items([{"key": "trailing-newline\n", "value": "1"}]), 400, "invalid")
    expect_error(set_items([{"key": "x" * 129, "value": "1"}]), 400, "invalid")
    expect_error(set_items([{"key": "big", "value": "x" * (256 * 1024 + 1)}]), 400, "invalid")
    expect_error(g.projects().setCommonInstanceMetadata(project=name, body={"fingerprint": "not base64 !!",
                                                                            "items": []}),
                 412, "conditionNotMet", METADATA_MISMATCH)
    # Nothing of that was stored.
    md = g.projects().get(project=name).execute()["commonInstanceMetadata"]
    assert md["fingerprint"] == fp and "items" not in md


def test_default_network_tier(server):
    """setDefaultNetworkTier is reported by projects.get and is the tier of what is made without one."""
    name, g = fresh_project(server, "tier")
    assert g.projects().get(project=name).execute()["defaultNetworkTier"] == "PREMIUM"
    expect_error(g.projects().setDefaultNetworkTier(project=name, body={"networkTier": "GOLD"}), 400, "invalid",
                 "Invalid value at 'resource.networkTier' (type.googleapis.com/google.cloud.compute.v1."
                 "ProjectsSetDefaultNetworkTierRequest.NetworkTier), \"GOLD\"")
    expect_error(g.projects().setDefaultNetworkTier(project=name, body={"networkTier": "FIXED_STANDARD"}), 400,
                 "invalid", "Invalid value for field 'networkTier': 'FIXED_STANDARD'. Must be PREMIUM or STANDARD.")
    assert g.projects().get(project=name).execute()["defaultNetworkTier"] == "PREMIUM"
    op = wait_op(g, g.projects().setDefaultNetworkTier(project=name, body={"networkTier": "STANDARD"}).execute())
    assert (op["operationType"], op["status"], op["targetLink"]) == (
        "setDefaultNetworkTier", "DONE", link(server, f"projects/{name}"))
    assert g.projects().get(project=name).execute()["defaultNetworkTier"] == "STANDARD"
    wait_op(g, g.addresses().insert(project=name, region="us-central1", body={"name": "std"}).execute())
    assert g.addresses().get(project=name, region="us-central1", address="std").execute()["networkTier"] == "STANDARD"
    wait_op(g, g.addresses().insert(project=name, region="us-central1",
                                    body={"name": "prem", "networkTier": "PREMIUM"}).execute())
    assert g.addresses().get(project=name, region="us-central1", address="prem").execute()["networkTier"] == "PREMIUM"
    wait_op(g, g.globalAddresses().insert(project=name, body={"name": "glob"}).execute())
    assert g.globalAddresses().get(project=name, address="glob").execute()["networkTier"] == "PREMIUM"
    wait_op(g, g.projects().setDefaultNetworkTier(project=name, body={"networkTier": "PREMIUM"}).execute())
    assert g.projects().get(project=name).execute()["defaultNetworkTier"] == "PREMIUM"


def test_usage_export_bucket(server):
    name, g = fresh_project(server, "usage")
    assert "usageExportLocation" not in g.projects().get(project=name).execute()
    expect_error(g.projects().setUsageExportBucket(project=name, body={"bucketName": "gs://Not A Bucket"}), 400,
                 "invalid")
    assert "usageExportLocation" not in g.projects().get(project=name).execute()
    op = wait_op(g, g.projects().setUsageExportBucket(project=name, body={
        "bucketName": "gs://usage-reports", "reportNamePrefix": "gce"}).execute())
    assert (op["operationType"], op["status"]) == ("setUsageExportBucket", "DONE")
    got = g.projects().get(project=name).execute()
    assert got["usageExportLocation"] == {"bucketName": "gs://usage-reports", "reportNamePrefix": "gce"}
    wait_op(g, g.projects().setUsageExportBucket(project=name, body={}).execute())  # an empty body turns it off
    assert "usageExportLocation" not in g.projects().get(project=name).execute()


def test_move_instance_is_deprecated(server, gce):
    err = expect_error(gce.projects().moveInstance(project=PROJECT, body={
        "targetInstance": "zones/us-central1-a/instances/x", "destinationZone": "zones/us-central1-b"}),
        400, "badRequest")
    assert err["message"].startswith("projects.moveInstance is deprecated and not supported: to move an instance")
