"""forwardingRules.patch and globalForwardingRules.patch through google-api-python-client (SQLite and
PostgreSQL), with the bodies ``gcloud compute forwarding-rules update`` sends (the rule's name and the
changed field): networkTier and allowGlobalAccess change where GCE lets them, every other field, and a
tier the rule's static address does not have, are refused with the rule unchanged."""

from __future__ import annotations

import pytest

from tests.conftest import project_credentials, unique
from tests.helpers.networks import done, fails

REGION = "us-central1"


@pytest.fixture(scope="module")
def project(server):
    name = unique("frp")
    return name, server.gce(project_credentials(server, name))


def regional(gce, project: str, **fields) -> dict:
    pool = unique("tp")
    done(gce, gce.targetPools().insert(project=project, region=REGION, body={"name": pool}))
    name = unique("fr")
    done(gce, gce.forwardingRules().insert(project=project, region=REGION, body={
        "name": name, "target": f"regions/{REGION}/targetPools/{pool}", "portRange": "80", **fields}))
    return gce.forwardingRules().get(project=project, region=REGION, forwardingRule=name).execute()


def test_a_regional_rule_changes_its_tier_and_refuses_the_rest(project):
    name, gce = project
    fr = regional(gce, name)
    rules = gce.forwardingRules()
    done(gce, rules.patch(project=name, region=REGION, forwardingRule=fr["name"], body={
        "name": fr["name"], "networkTier": "STANDARD"}), "patch")
    got = rules.get(project=name, region=REGION, forwardingRule=fr["name"]).execute()
    assert got["networkTier"] == "STANDARD" and got["fingerprint"] != fr["fingerprint"]
    assert {k: v for k, v in got.items() if k not in ("networkTier", "fingerprint")} == \
        {k: v for k, v in fr.items() if k not in ("networkTier", "fingerprint")}
    # the whole resource sent back, its fields unchanged, is accepted
    done(gce, rules.patch(project=name, region=REGION, forwardingRule=fr["name"], body={
        **got, "networkTier": "PREMIUM"}), "patch")
    fails(rules.patch(project=name, region=REGION, forwardingRule=fr["name"], body={"portRange": "81"}), 400,
          "invalid", "Invalid value for field 'resource.portRange': '81'. Field 'portRange' cannot be patched: only "
                     "networkTier and allowGlobalAccess of a forwarding rule can be changed.")
    fails(rules.patch(project=name, region=REGION, forwardingRule=fr["name"], body={"labels": {"a": "b"}}), 400,
          "invalid")
    fails(rules.patch(project=name, region=REGION, forwardingRule=fr["name"], body={"networkTier": "GOLD"}), 400,
          "invalid")
    fails(rules.patch(project=name, region=REGION, forwardingRule=fr["name"], body={"allowGlobalAccess": True}),
          400, "invalid", "Invalid value for field 'resource.allowGlobalAccess': 'True'. Global access is only "
                          "supported for internal forwarding rules (loadBalancingScheme INTERNAL or "
                          "INTERNAL_MANAGED).")
    fails(rules.patch(project=name, region=REGION, forwardingRule=fr["name"], body={
        "networkTier": "STANDARD", "fingerprint": got["fingerprint"]}), 412, "conditionNotMet")  # stale
    after = rules.get(project=name, region=REGION, forwardingRule=fr["name"]).execute()
    assert after["networkTier"] == "PREMIUM" and after["portRange"] == "80-80" and "allowGlobalAccess" not in after
    fails(rules.patch(project=name, region=REGION, forwardingRule=unique("nope"), body={"networkTier": "PREMIUM"}),
          404, "notFound")


def test_a_rule_keeps_the_tier_of_its_static_address(project):
    name, gce = project
    vip = unique("vip")
    done(gce, gce.addresses().insert(project=name, region=REGION, body={"name": vip, "networkTier": "STANDARD"}))
    fr = regional(gce, name, IPAddress=f"regions/{REGION}/addresses/{vip}", networkTier="STANDARD")
    fails(gce.forwardingRules().patch(project=name, region=REGION, forwardingRule=fr["name"], body={
        "name": fr["name"], "networkTier": "PREMIUM"}), 400, "invalid",
        "Invalid value for field 'resource.networkTier': 'PREMIUM'. The network tier of specified IP address is "
        "STANDARD, that of Forwarding Rule must be the same.")


def test_a_global_rule_stays_premium(project):
    name, gce = project
    bs, um, proxy, fr = (unique(p) for p in ("bs", "um", "px", "gfr"))
    done(gce, gce.backendServices().insert(project=name, body={"name": bs}))
    done(gce, gce.urlMaps().insert(project=name, body={"name": um, "defaultService": f"global/backendServices/{bs}"}))
    done(gce, gce.targetHttpProxies().insert(project=name, body={"name": proxy, "urlMap": f"global/urlMaps/{um}"}))
    done(gce, gce.globalForwardingRules().insert(project=name, body={
        "name": fr, "target": f"global/targetHttpProxies/{proxy}", "portRange": "80"}))
    rules = gce.globalForwardingRules()
    done(gce, rules.patch(project=name, forwardingRule=fr, body={"name": fr, "networkTier": "PREMIUM"}), "patch")
    fails(rules.patch(project=name, forwardingRule=fr, body={"name": fr, "networkTier": "STANDARD"}), 400, "invalid",
          "Invalid value for field 'resource.networkTier': 'STANDARD'. Global and internal forwarding rules are "
          "PREMIUM.")
    fails(rules.patch(project=name, forwardingRule=fr, body={"name": "other"}), 400, "invalid")
    assert rules.get(project=name, forwardingRule=fr).execute()["networkTier"] == "PREMIUM"
