"""The regional network load balancer: forwardingRules, targetPools, httpHealthChecks and healthChecks
(SQLite and PostgreSQL)."""

from __future__ import annotations

import contextlib

import pytest
from googleapiclient.errors import HttpError

from tests.conftest import project_credentials, unique
from tests.helpers.networks import done, fails, names

REGION, OTHER_REGION = "us-central1", "europe-west1"
ZONE = "us-central1-c"
IMAGE = "projects/debian-cloud/global/images/family/debian-12"


@pytest.fixture(scope="module")
def project(server):
    name = unique("lb")
    return name, server.gce(project_credentials(server, name))


@pytest.fixture(scope="module")
def backends(project):
    """Two running instances for the pools."""
    name, gce = project
    vms = [unique("be") for _ in range(2)]
    for vm in vms:
        done(gce, gce.instances().insert(project=name, zone=ZONE, body={
            "name": vm, "machineType": f"zones/{ZONE}/machineTypes/e2-micro",
            "disks": [{"boot": True, "autoDelete": True, "initializeParams": {"sourceImage": IMAGE}}],
            "networkInterfaces": [{"network": "global/networks/default"}]}))
    yield vms
    for vm in vms:
        with contextlib.suppress(HttpError):
            gce.instances().delete(project=name, zone=ZONE, instance=vm).execute()


def instance_url(server, project: str, vm: str) -> str:
    return f"{server.api}projects/{project}/zones/{ZONE}/instances/{vm}"


def http_check(gce, project: str, **fields) -> dict:
    name = unique("hc")
    done(gce, gce.httpHealthChecks().insert(project=project, body={"name": name, **fields}), "insert")
    return gce.httpHealthChecks().get(project=project, httpHealthCheck=name).execute()


def pool(gce, project: str, **fields) -> dict:
    name = unique("tp")
    done(gce, gce.targetPools().insert(project=project, region=REGION, body={"name": name, **fields}), "insert")
    return gce.targetPools().get(project=project, region=REGION, targetPool=name).execute()


def rule(gce, project: str, target: dict, **fields) -> dict:
    name = unique("fr")
    done(gce, gce.forwardingRules().insert(project=project, region=REGION, body={
        "name": name, "target": target["selfLink"], **fields}), "insert")
    return gce.forwardingRules().get(project=project, region=REGION, forwardingRule=name).execute()


def address(gce, project: str) -> dict:
    name = unique("vip")
    done(gce, gce.addresses().insert(project=project, region=REGION, body={"name": name}))
    return gce.addresses().get(project=project, region=REGION, address=name).execute()


# -- health checks ---------------------------------------------------------------------------------


def test_http_health_checks(server, project):
    name, gce = project
    hc = http_check(gce, name)
    assert hc["kind"] == "compute#httpHealthCheck"
    assert (hc["port"], hc["requestPath"], hc["checkIntervalSec"], hc["timeoutSec"]) == (80, "/", 5, 5)
    assert (hc["healthyThreshold"], hc["unhealthyThreshold"]) == (2, 2)
    assert hc["selfLink"] == f"{server.api}projects/{name}/global/httpHealthChecks/{hc['name']}"
    assert hc["name"] in names(gce.httpHealthChecks().list(project=name).execute())
    done(gce, gce.httpHealthChecks().patch(project=name, httpHealthCheck=hc["name"], body={
        "requestPath": "/healthz", "port": 8080}), "patch")
    got = gce.httpHealthChecks().get(project=name, httpHealthCheck=hc["name"]).execute()
    assert (got["port"], got["requestPath"], got["checkIntervalSec"]) == (8080, "/healthz", 5)
    done(gce, gce.httpHealthChecks().update(project=name, httpHealthCheck=hc["name"], body={
        "name": hc["name"], "checkIntervalSec": 10}), "update")
    got = gce.httpHealthChecks().get(project=name, httpHealthCheck=hc["name"]).execute()
    assert (got["port"], got["requestPath"], got["checkIntervalSec"]) == (80, "/", 10)
    for body in ({"timeoutSec": 20}, {"port": 0}, {"requestPath": "healthz"}, {"healthyThreshold": 11}):
        fails(gce.httpHealthChecks().patch(project=name, httpHealthCheck=hc["name"], body=body), 400, "invalid")
    assert gce.httpHealthChecks().get(project=name, httpHealthCheck=hc["name"]).execute() == got
    done(gce, gce.httpHealthChecks().delete(project=name, httpHealthCheck=hc["name"]), "delete")
    fails(gce.httpHealthChecks().get(project=name, httpHealthCheck=hc["name"]), 404, "notFound",
          f"The resource 'projects/{name}/global/httpHealthChecks/{hc['name']}' was not found")


def test_health_checks(server, project):
    name, gce = project
    hc_name = unique("hc")
    done(gce, gce.healthChecks().insert(project=name, body={
        "name": hc_name, "type": "TCP", "tcpHealthCheck": {"port": 5432}}), "insert")
    hc = gce.healthChecks().get(project=name, healthCheck=hc_name).execute()
    assert hc["kind"] == "compute#healthCheck" and hc["type"] == "TCP"
    assert hc["tcpHealthCheck"] == {"port": 5432, "portSpecification": "USE_FIXED_PORT", "proxyHeader": "NONE"}
    done(gce, gce.healthChecks().patch(project=name, healthCheck=hc_name, body={
        "type": "HTTPS", "httpsHealthCheck": {"requestPath": "/ok"}}), "patch")
    hc = gce.healthChecks().get(project=name, healthCheck=hc_name).execute()
    assert "tcpHealthCheck" not in hc and hc["httpsHealthCheck"]["port"] == 443
    assert hc["httpsHealthCheck"]["requestPath"] == "/ok"
    done(gce, gce.healthChecks().update(project=name, healthCheck=hc_name, body={
        "name": hc_name, "type": "HTTP"}), "update")
    assert gce.healthChecks().get(project=name, healthCheck=hc_name).execute()["httpHealthCheck"]["port"] == 80
    agg = gce.healthChecks().aggregatedList(project=name).execute()
    assert agg["kind"] == "compute#healthChecksAggregatedList"
    assert [h["name"] for h in agg["items"]["global"]["healthChecks"]] == [hc_name]
    assert "warning" in agg["items"][f"regions/{REGION}"]
    assert hc_name in names(gce.healthChecks().list(project=name).execute())
    for body in ({"name": unique("x"), "type": "FTP"}, {"name": unique("x"), "type": "TCP", "httpHealthCheck": {}}):
        fails(gce.healthChecks().insert(project=name, body=body), 400, "invalid")
    done(gce, gce.healthChecks().delete(project=name, healthCheck=hc_name))


# -- target pools ----------------------------------------------------------------------------------


def test_target_pools(server, project, backends):
    name, gce = project
    hc = http_check(gce, name)
    a, b = backends
    tp = pool(gce, name, instances=[f"zones/{ZONE}/instances/{a}"], healthChecks=[hc["selfLink"]],
              sessionAffinity="CLIENT_IP")
    assert tp["kind"] == "compute#targetPool" and tp["sessionAffinity"] == "CLIENT_IP"
    assert tp["instances"] == [instance_url(server, name, a)] and tp["healthChecks"] == [hc["selfLink"]]
    assert tp["region"] == f"{server.api}projects/{name}/regions/{REGION}"
    assert tp["name"] in names(gce.targetPools().list(project=name, region=REGION).execute())
    agg = gce.targetPools().aggregatedList(project=name).execute()
    assert [p["name"] for p in agg["items"][f"regions/{REGION}"]["targetPools"]] == [tp["name"]]

    def pools():
        return gce.targetPools()

    done(gce, pools().addInstance(project=name, region=REGION, targetPool=tp["name"], body={
        "instances": [{"instance": f"zones/{ZONE}/instances/{b}"}]}), "addInstance")
    got = pools().get(project=name, region=REGION, targetPool=tp["name"]).execute()
    assert got["instances"] == [instance_url(server, name, a), instance_url(server, name, b)]
    fails(pools().addInstance(project=name, region=REGION, targetPool=tp["name"], body={
        "instances": [{"instance": f"zones/{ZONE}/instances/{b}"}]}), 400, "invalid")
    fails(pools().addInstance(project=name, region=REGION, targetPool=tp["name"], body={
        "instances": [{"instance": f"zones/{ZONE}/instances/{unique('none')}"}]}), 404, "notFound")
    done(gce, pools().removeInstance(project=name, region=REGION, targetPool=tp["name"], body={
        "instances": [{"instance": instance_url(server, name, a)}]}), "removeInstance")
    assert pools().get(project=name, region=REGION, targetPool=tp["name"]).execute()["instances"] == [
        instance_url(server, name, b)]
    fails(pools().removeInstance(project=name, region=REGION, targetPool=tp["name"], body={
        "instances": [{"instance": instance_url(server, name, a)}]}), 400, "invalid")
    # health checks: at most one
    other = http_check(gce, name)
    fails(pools().addHealthCheck(project=name, region=REGION, targetPool=tp["name"], body={
        "healthChecks": [{"healthCheck": other["selfLink"]}]}), 400, "invalid")
    done(gce, pools().removeHealthCheck(project=name, region=REGION, targetPool=tp["name"], body={
        "healthChecks": [{"healthCheck": hc["selfLink"]}]}), "removeHealthCheck")
    done(gce, pools().addHealthCheck(project=name, region=REGION, targetPool=tp["name"], body={
        "healthChecks": [{"healthCheck": other["selfLink"]}]}), "addHealthCheck")
    assert pools().get(project=name, region=REGION, targetPool=tp["name"]).execute()["healthChecks"] == [
        other["selfLink"]]
    # a health check a pool uses cannot be deleted; an unused one can
    fails(gce.httpHealthChecks().delete(project=name, httpHealthCheck=other["name"]), 400,
          "resourceInUseByAnotherResource",
          f"The httpHealthCheck resource 'projects/{name}/global/httpHealthChecks/{other['name']}' is already being "
          f"used by 'projects/{name}/regions/{REGION}/targetPools/{tp['name']}'")
    done(gce, gce.httpHealthChecks().delete(project=name, httpHealthCheck=hc["name"]))
    done(gce, pools().delete(project=name, region=REGION, targetPool=tp["name"]), "delete")
    done(gce, gce.httpHealthChecks().delete(project=name, httpHealthCheck=other["name"]))


def test_target_pool_refusals(project, backends):
    name, gce = project
    before = names(gce.targetPools().list(project=name, region=REGION).execute())
    fails(gce.targetPools().insert(project=name, region=REGION, body={
        "name": unique("tp"), "instances": [f"zones/{ZONE}/instances/{unique('none')}"]}), 404, "notFound")
    fails(gce.targetPools().insert(project=name, region=OTHER_REGION, body={
        "name": unique("tp"), "instances": [f"zones/{ZONE}/instances/{backends[0]}"]}), 400, "invalid")
    fails(gce.targetPools().insert(project=name, region=REGION, body={
        "name": unique("tp"), "healthChecks": ["global/healthChecks/x"]}), 400, "invalid")
    fails(gce.targetPools().insert(project=name, region=REGION, body={
        "name": unique("tp"), "sessionAffinity": "GENERATED_COOKIE"}), 400, "invalid")
    assert names(gce.targetPools().list(project=name, region=REGION).execute()) == before


def test_get_health_follows_the_instance_status(server, project, backends):
    name, gce = project
    a, b = backends
    tp = pool(gce, name, instances=[f"zones/{ZONE}/instances/{a}", f"zones/{ZONE}/instances/{b}"])
    fr = rule(gce, name, tp, portRange="80")

    def health(vm):
        return gce.targetPools().getHealth(project=name, region=REGION, targetPool=tp["name"], body={
            "instance": instance_url(server, name, vm)}).execute()

    got = health(a)
    assert got["kind"] == "compute#targetPoolInstanceHealth"
    assert got["healthStatus"] == [{"healthState": "HEALTHY", "instance": instance_url(server, name, a),
                                    "ipAddress": fr["IPAddress"]}]
    done(gce, gce.instances().stop(project=name, zone=ZONE, instance=b))
    assert health(b)["healthStatus"][0]["healthState"] == "UNHEALTHY"
    done(gce, gce.instances().start(project=name, zone=ZONE, instance=b))
    assert health(b)["healthStatus"][0]["healthState"] == "HEALTHY"
    fails(gce.targetPools().getHealth(project=name, region=REGION, targetPool=tp["name"], body={
        "instance": f"zones/{ZONE}/instances/{unique('other')}"}), 400, "invalid")
    done(gce, gce.forwardingRules().delete(project=name, region=REGION, forwardingRule=fr["name"]))
    done(gce, gce.targetPools().delete(project=name, region=REGION, targetPool=tp["name"]))


# -- forwarding rules ------------------------------------------------------------------------------


def test_forwarding_rule_with_an_ephemeral_address(server, project):
    name, gce = project
    tp = pool(gce, name)
    fr = rule(gce, name, tp, IPProtocol="TCP", portRange="80", description="web")
    assert fr["kind"] == "compute#forwardingRule" and fr["loadBalancingScheme"] == "EXTERNAL"
    assert fr["IPProtocol"] == "TCP" and fr["portRange"] == "80-80" and fr["target"] == tp["selfLink"]
    assert fr["IPAddress"].startswith("198.18.") and fr["networkTier"] == "PREMIUM" and fr["fingerprint"]
    assert fr["region"] == f"{server.api}projects/{name}/regions/{REGION}"
    # the pool serves a rule: it cannot be deleted
    fails(gce.targetPools().delete(project=name, region=REGION, targetPool=tp["name"]), 400,
          "resourceInUseByAnotherResource",
          f"The targetPool resource 'projects/{name}/regions/{REGION}/targetPools/{tp['name']}' is already being "
          f"used by 'projects/{name}/regions/{REGION}/forwardingRules/{fr['name']}'")
    agg = gce.forwardingRules().aggregatedList(project=name).execute()
    assert agg["kind"] == "compute#forwardingRuleAggregatedList"
    assert [r["name"] for r in agg["items"][f"regions/{REGION}"]["forwardingRules"]] == [fr["name"]]
    assert "global" in agg["items"]
    assert fr["name"] in names(gce.forwardingRules().list(project=name, region=REGION).execute())
    # its ephemeral IP is taken: another rule cannot ask for it
    fails(gce.forwardingRules().insert(project=name, region=REGION, body={
        "name": unique("fr"), "target": tp["selfLink"], "IPAddress": fr["IPAddress"]}), 400, "invalid",
        f"Invalid value for field 'resource.IPAddress': '{fr['IPAddress']}'. Specified IP address is in-use and "
        "would result in a conflict.")
    done(gce, gce.forwardingRules().setLabels(project=name, region=REGION, resource=fr["name"], body={
        "labels": {"app": "web"}, "labelFingerprint": fr["labelFingerprint"]}), "setLabels")
    other = pool(gce, name)
    done(gce, gce.forwardingRules().setTarget(project=name, region=REGION, forwardingRule=fr["name"], body={
        "target": other["selfLink"]}), "setTarget")
    got = gce.forwardingRules().get(project=name, region=REGION, forwardingRule=fr["name"]).execute()
    assert got["target"] == other["selfLink"] and got["labels"] == {"app": "web"}
    assert got["fingerprint"] != fr["fingerprint"]
    done(gce, gce.forwardingRules().delete(project=name, region=REGION, forwardingRule=fr["name"]), "delete")
    for p in (tp, other):
        done(gce, gce.targetPools().delete(project=name, region=REGION, targetPool=p["name"]))


def test_forwarding_rules_on_a_static_address(server, project):
    name, gce = project
    tp = pool(gce, name)
    vip = address(gce, name)
    web = rule(gce, name, tp, IPAddress=vip["selfLink"], portRange="80")
    assert web["IPAddress"] == vip["address"]
    used = gce.addresses().get(project=name, region=REGION, address=vip["name"]).execute()
    assert used["status"] == "IN_USE" and used["users"] == [web["selfLink"]]
    # another rule on other ports may share it (named by IP this time); on the same ports it may not
    tls = rule(gce, name, tp, IPAddress=vip["address"], portRange="443")
    assert gce.addresses().get(project=name, region=REGION, address=vip["name"]).execute()["users"] == [
        web["selfLink"], tls["selfLink"]]
    fails(gce.forwardingRules().insert(project=name, region=REGION, body={
        "name": unique("fr"), "target": tp["selfLink"], "IPAddress": vip["address"], "portRange": "80-90"}),
        400, "resourceInUseByAnotherResource")
    fails(gce.addresses().delete(project=name, region=REGION, address=vip["name"]), 400,
          "resourceInUseByAnotherResource")
    for fr in (web, tls):
        done(gce, gce.forwardingRules().delete(project=name, region=REGION, forwardingRule=fr["name"]))
    released = gce.addresses().get(project=name, region=REGION, address=vip["name"]).execute()
    assert released["status"] == "RESERVED" and "users" not in released
    done(gce, gce.addresses().delete(project=name, region=REGION, address=vip["name"]))
    done(gce, gce.targetPools().delete(project=name, region=REGION, targetPool=tp["name"]))


@pytest.mark.parametrize("fields, status, reason", [
    ({"target": "regions/us-central1/targetPools/no-such-pool"}, 404, "notFound"),
    ({"target": "regions/europe-west1/targetPools/x"}, 400, "invalid"),
    ({"loadBalancingScheme": "INTERNAL"}, 400, "invalid"),
    ({"IPProtocol": "ICMP", "portRange": "80"}, 400, "invalid"),
    ({"portRange": "80-70"}, 400, "invalid"),
    ({"portRange": "80", "ports": ["80"]}, 400, "invalid"),
    ({"IPAddress": "8.8.8.8"}, 400, "invalid"),
    ({"IPAddress": "regions/us-central1/addresses/no-such-address"}, 404, "notFound"),
])
def test_forwarding_rule_refusals_create_nothing(project, fields, status, reason):
    name, gce = project
    tp = pool(gce, name)
    before = names(gce.forwardingRules().list(project=name, region=REGION).execute())
    fails(gce.forwardingRules().insert(project=name, region=REGION, body={
        "name": unique("fr"), "target": tp["selfLink"], **fields}), status, reason)
    assert names(gce.forwardingRules().list(project=name, region=REGION).execute()) == before
    done(gce, gce.targetPools().delete(project=name, region=REGION, targetPool=tp["name"]))
