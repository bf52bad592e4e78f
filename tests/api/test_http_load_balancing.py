"""HTTP(S) load balancing through google-api-python-client (SQLite and PostgreSQL): backend services,
url maps, target HTTP(S) proxies, SSL certificates and policies, global and regional forwarding rules;
GCE's defaults, its errors (changing nothing), and the chain deleted in dependency order."""

from __future__ import annotations

import datetime
import time

import pytest

from tests.conftest import project_credentials, unique
from tests.helpers.certificates import self_signed
from tests.helpers.networks import custom, done, fails, names

REGION, ZONE = "us-central1", "us-central1-c"
IMAGE = "projects/debian-cloud/global/images/family/debian-12"


@pytest.fixture(scope="module")
def project(server):
    name = unique("hlb")
    return name, server.gce(project_credentials(server, name))


@pytest.fixture(scope="module")
def group(project):
    """An unmanaged group of two running instances, named port http:8080, and an HTTP health check."""
    name, gce = project
    vms = [unique("web") for _ in range(2)]
    for vm in vms:
        done(gce, gce.instances().insert(project=name, zone=ZONE, body={
            "name": vm, "machineType": f"zones/{ZONE}/machineTypes/e2-micro",
            "disks": [{"boot": True, "autoDelete": True, "initializeParams": {"sourceImage": IMAGE}}],
            "networkInterfaces": [{"network": "global/networks/default"}]}))
    g = unique("ig")
    done(gce, gce.instanceGroups().insert(project=name, zone=ZONE, body={
        "name": g, "namedPorts": [{"name": "http", "port": 8080}]}))
    done(gce, gce.instanceGroups().addInstances(project=name, zone=ZONE, instanceGroup=g, body={
        "instances": [{"instance": f"zones/{ZONE}/instances/{vm}"} for vm in vms]}))
    done(gce, gce.healthChecks().insert(project=name, body={"name": "hc", "type": "HTTP",
                                                            "httpHealthCheck": {"port": 8080}}))
    return g, vms


def group_url(server, project: str, g: str) -> str:
    return f"{server.api}projects/{project}/zones/{ZONE}/instanceGroups/{g}"


def service(gce, project: str, g: str, **fields) -> dict:
    name = unique("bs")
    done(gce, gce.backendServices().insert(project=project, body={
        "name": name, "healthChecks": ["global/healthChecks/hc"],
        "backends": [{"group": f"zones/{ZONE}/instanceGroups/{g}"}], **fields}), "insert")
    return gce.backendServices().get(project=project, backendService=name).execute()


def test_backend_service_defaults_and_health(server, project, group):
    name, gce = project
    g, vms = group
    bs = service(gce, name, g)
    assert bs["kind"] == "compute#backendService"
    assert bs["backends"] == [{"group": group_url(server, name, g), "balancingMode": "UTILIZATION",
                               "capacityScaler": 1.0, "maxUtilization": 0.8}]
    assert bs["healthChecks"] == [f"{server.api}projects/{name}/global/healthChecks/hc"]
    assert (bs["protocol"], bs["port"], bs["portName"], bs["timeoutSec"]) == ("HTTP", 80, "http", 30)
    assert (bs["sessionAffinity"], bs["loadBalancingScheme"], bs["enableCDN"]) == ("NONE", "EXTERNAL", False)
    assert bs["connectionDraining"] == {"drainingTimeoutSec": 300} and bs["fingerprint"]
    assert bs["selfLink"] == f"{server.api}projects/{name}/global/backendServices/{bs['name']}"
    health = gce.backendServices().getHealth(project=name, backendService=bs["name"], body={
        "group": group_url(server, name, g)}).execute()
    assert health["kind"] == "compute#backendServiceGroupHealth"
    assert sorted(h["instance"].rsplit("/", 1)[1] for h in health["healthStatus"]) == sorted(vms)
    assert {(h["healthState"], h["port"]) for h in health["healthStatus"]} == {("HEALTHY", 8080)}
    # the health model's answer: a guest that stops answering its checks is UNHEALTHY, the others stay
    server.admin("health", "set", "--project", name, "--zone", ZONE, vms[0], "UNHEALTHY")
    try:
        health = gce.backendServices().getHealth(project=name, backendService=bs["name"], body={
            "group": group_url(server, name, g)}).execute()
    finally:
        server.admin("health", "set", "--project", name, "--zone", ZONE, vms[0], "HEALTHY")
    assert {h["instance"].rsplit("/", 1)[1]: h["healthState"] for h in health["healthStatus"]} == {
        vms[0]: "UNHEALTHY", vms[1]: "HEALTHY"}
    # patch: RATE with a per-instance rate, a longer timeout; the fingerprint moves
    done(gce, gce.backendServices().patch(project=name, backendService=bs["name"], body={
        "timeoutSec": 60, "backends": [{"group": f"zones/{ZONE}/instanceGroups/{g}", "balancingMode": "RATE",
                                        "maxRatePerInstance": 100, "capacityScaler": 0.5}]}), "patch")
    got = gce.backendServices().get(project=name, backendService=bs["name"]).execute()
    assert got["timeoutSec"] == 60 and got["fingerprint"] != bs["fingerprint"]
    assert got["backends"] == [{"group": group_url(server, name, g), "balancingMode": "RATE", "capacityScaler": 0.5,
                                "maxRatePerInstance": 100}]
    fails(gce.backendServices().update(project=name, backendService=bs["name"], body={
        "name": bs["name"], "fingerprint": bs["fingerprint"], "timeoutSec": 10}), 412, "conditionNotMet")
    done(gce, gce.backendServices().update(project=name, backendService=bs["name"], body={
        "name": bs["name"], "fingerprint": got["fingerprint"], "healthChecks": ["global/healthChecks/hc"],
        "sessionAffinity": "CLIENT_IP"}), "update")
    got = gce.backendServices().get(project=name, backendService=bs["name"]).execute()
    assert "backends" not in got and got["timeoutSec"] == 30 and got["sessionAffinity"] == "CLIENT_IP"
    agg = gce.backendServices().aggregatedList(project=name).execute()
    assert bs["name"] in [s["name"] for s in agg["items"]["global"]["backendServices"]]
    done(gce, gce.backendServices().delete(project=name, backendService=bs["name"]), "delete")


def test_backend_service_refusals_change_nothing(project, group):
    name, gce = project
    g, _ = group
    before = names(gce.backendServices().list(project=name).execute())
    backend = {"group": f"zones/{ZONE}/instanceGroups/{g}"}
    for body, status, reason in (
            ({"backends": [{**backend, "balancingMode": "CONNECTION", "maxConnections": 5}]}, 400, "invalid"),
            ({"backends": [{**backend, "balancingMode": "RATE"}]}, 400, "invalid"),
            ({"backends": [{**backend, "capacityScaler": 0.05}]}, 400, "invalid"),
            ({"backends": [{**backend, "maxUtilization": 1.5}]}, 400, "invalid"),
            ({"backends": [backend, backend]}, 400, "invalid"),
            ({"backends": [{"group": f"zones/{ZONE}/instanceGroups/{unique('none')}"}]}, 404, "notFound"),
            ({"healthChecks": [f"global/healthChecks/{unique('none')}"]}, 404, "notFound"),
            ({"healthChecks": [], "backends": [backend]}, 400, "invalid"),
            ({"protocol": "UDP"}, 400, "invalid"),
            ({"loadBalancingScheme": "INTERNAL"}, 400, "invalid"),
            ({"sessionAffinity": "SOMETIMES"}, 400, "invalid")):
        fails(gce.backendServices().insert(project=name, body={
            "name": unique("bs"), "healthChecks": ["global/healthChecks/hc"], **body}), status, reason)
    fails(gce.backendServices().insert(project=name, body={"healthChecks": ["global/healthChecks/hc"]}), 400,
          "required", "Required field 'resource.name' not specified")
    assert names(gce.backendServices().list(project=name).execute()) == before


def _cert(gce, project: str, *hosts: str) -> dict:
    cert, key, _ = self_signed(*hosts)
    name = unique("cert")
    done(gce, gce.sslCertificates().insert(project=project, body={"name": name, "certificate": cert,
                                                                   "privateKey": key}), "insert")
    return gce.sslCertificates().get(project=project, sslCertificate=name).execute()


def test_ssl_certificates(server, project):
    name, gce = project
    cert, key, expiry = self_signed("www.example.com", "example.com", rsa_bits=2048)
    c = unique("cert")
    done(gce, gce.sslCertificates().insert(project=name, body={"name": c, "certificate": cert, "privateKey": key}))
    got = gce.sslCertificates().get(project=name, sslCertificate=c).execute()
    assert got["kind"] == "compute#sslCertificate" and got["type"] == "SELF_MANAGED"
    assert got["certificate"] == cert and "privateKey" not in got and "selfManaged" not in got
    assert got["subjectAlternativeNames"] == ["www.example.com", "example.com"]
    assert datetime.datetime.fromisoformat(got["expireTime"]) == expiry
    listed = gce.sslCertificates().list(project=name).execute()
    assert all("privateKey" not in i for i in listed["items"]) and c in names(listed)
    other_cert, other_key, _ = self_signed("other.example.com")
    for body, field in (({"certificate": "not a pem", "privateKey": key}, "certificate"),
                        ({"certificate": cert, "privateKey": "-----BEGIN PRIVATE KEY-----\nxx\n"}, "privateKey"),
                        ({"certificate": cert, "privateKey": other_key}, "privateKey"),
                        ({"certificate": cert}, "privateKey")):
        err = fails(gce.sslCertificates().insert(project=name, body={"name": unique("cert"), **body}), 400,
                    "required" if len(body) == 1 else "invalid")
        assert f"resource.{field}" in err["message"] and "PRIVATE KEY" not in err["message"]
    # a managed certificate is PROVISIONING, then ACTIVE
    m = unique("managed")
    done(gce, gce.sslCertificates().insert(project=name, body={"name": m, "type": "MANAGED",
                                                               "managed": {"domains": ["lb.example.com"]}}))
    got = gce.sslCertificates().get(project=name, sslCertificate=m).execute()
    assert got["managed"]["status"] in ("PROVISIONING", "ACTIVE") and got["type"] == "MANAGED"
    deadline = time.time() + 30
    while got["managed"]["status"] != "ACTIVE" and time.time() < deadline:
        time.sleep(0.2)
        got = gce.sslCertificates().get(project=name, sslCertificate=m).execute()
    assert got["managed"] == {"domains": ["lb.example.com"], "status": "ACTIVE",
                              "domainStatus": {"lb.example.com": "ACTIVE"}}
    assert "expireTime" in got and "privateKey" not in got
    agg = gce.sslCertificates().aggregatedList(project=name).execute()["items"]["global"]["sslCertificates"]
    assert {c, m} <= {i["name"] for i in agg}
    for cert_name in (c, m):
        done(gce, gce.sslCertificates().delete(project=name, sslCertificate=cert_name), "delete")


def test_ssl_policies(project):
    name, gce = project
    p = unique("pol")
    done(gce, gce.sslPolicies().insert(project=name, body={"name": p, "profile": "RESTRICTED",
                                                           "minTlsVersion": "TLS_1_2"}))
    got = gce.sslPolicies().get(project=name, sslPolicy=p).execute()
    assert (got["kind"], got["profile"], got["minTlsVersion"]) == ("compute#sslPolicy", "RESTRICTED", "TLS_1_2")
    assert "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256" in got["enabledFeatures"] and len(got["enabledFeatures"]) == 6
    fails(gce.sslPolicies().insert(project=name, body={"name": unique("pol"), "profile": "CUSTOM"}), 400, "required")
    fails(gce.sslPolicies().insert(project=name, body={"name": unique("pol"), "minTlsVersion": "TLS_9"}), 400,
          "invalid")
    done(gce, gce.sslPolicies().patch(project=name, sslPolicy=p, body={
        "profile": "CUSTOM", "customFeatures": ["TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"]}), "patch")
    got = gce.sslPolicies().get(project=name, sslPolicy=p).execute()
    assert got["enabledFeatures"] == got["customFeatures"] == ["TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"]
    features = gce.sslPolicies().listAvailableFeatures(project=name).execute()["features"]
    assert len(features) == 15 and "TLS_RSA_WITH_3DES_EDE_CBC_SHA" in features
    done(gce, gce.sslPolicies().delete(project=name, sslPolicy=p))


def test_url_maps_and_validate(server, project, group):
    name, gce = project
    g, _ = group
    a, b = service(gce, name, g), service(gce, name, g)
    um = unique("um")
    body = {"name": um, "defaultService": b["selfLink"],
            "hostRules": [{"hosts": ["example.com"], "pathMatcher": "pm"}],
            "pathMatchers": [{"name": "pm", "defaultService": b["selfLink"],
                              "pathRules": [{"paths": ["/api/*"], "service": a["selfLink"]}]}]}
    for bad, status, reason in (
            ({"pathMatchers": [{**body["pathMatchers"][0], "pathRules": [{"paths": ["/a*b"], "service": a["selfLink"]}]}]},
             400, "invalid"),
            ({"hostRules": [{"hosts": ["example.com"], "pathMatcher": "nope"}]}, 400, "invalid"),
            ({"defaultService": f"global/backendServices/{unique('none')}"}, 404, "notFound"),
            ({"defaultService": None}, 400, "required")):
        fails(gce.urlMaps().insert(project=name, body={**body, **bad}), status, reason)
    assert um not in names(gce.urlMaps().list(project=name).execute())
    done(gce, gce.urlMaps().insert(project=name, body=body), "insert")
    got = gce.urlMaps().get(project=name, urlMap=um).execute()
    assert got["kind"] == "compute#urlMap" and got["defaultService"] == b["selfLink"] and got["fingerprint"]
    assert got["pathMatchers"][0]["pathRules"] == [{"service": a["selfLink"], "paths": ["/api/*"]}]
    tests = [{"host": "example.com", "path": "/api/v1", "service": a["selfLink"]},
             {"host": "example.com", "path": "/", "service": b["selfLink"]},
             {"host": "other.test", "path": "/api/v1", "service": b["selfLink"]}]
    result = gce.urlMaps().validate(project=name, urlMap=um, body={"resource": {**body, "tests": tests}}).execute()
    assert result["result"] == {"loadSucceeded": True, "testPassed": True}
    wrong = [{**tests[2], "service": a["selfLink"]}]
    result = gce.urlMaps().validate(project=name, urlMap=um, body={"resource": {**body, "tests": wrong}}).execute()
    assert result["result"]["testPassed"] is False
    assert result["result"]["testFailures"] == [{"host": "other.test", "path": "/api/v1",
                                                 "expectedService": a["selfLink"], "actualService": b["selfLink"]}]
    result = gce.urlMaps().validate(project=name, urlMap=um, body={"resource": {"name": um}}).execute()
    assert result["result"]["loadSucceeded"] is False and result["result"]["loadErrors"]
    done(gce, gce.urlMaps().patch(project=name, urlMap=um, body={"defaultService": a["selfLink"]}), "patch")
    assert gce.urlMaps().get(project=name, urlMap=um).execute()["defaultService"] == a["selfLink"]
    fails(gce.backendServices().delete(project=name, backendService=a["name"]), 400, "resourceInUseByAnotherResource",
          f"The backend_service resource 'projects/{name}/global/backendServices/{a['name']}' is already being used "
          f"by 'projects/{name}/global/urlMaps/{um}'")
    done(gce, gce.urlMaps().delete(project=name, urlMap=um), "delete")
    for s in (a, b):
        done(gce, gce.backendServices().delete(project=name, backendService=s["name"]))


def test_the_whole_chain_and_its_deletion_order(server, project, group):
    name, gce = project
    g, _ = group
    bs = service(gce, name, g)
    um = unique("um")
    done(gce, gce.urlMaps().insert(project=name, body={"name": um, "defaultService": bs["selfLink"]}))
    http, https = unique("thp"), unique("thps")
    done(gce, gce.targetHttpProxies().insert(project=name, body={"name": http, "urlMap": f"global/urlMaps/{um}"}))
    proxy = gce.targetHttpProxies().get(project=name, targetHttpProxy=http).execute()
    assert proxy["kind"] == "compute#targetHttpProxy" and proxy["urlMap"].endswith(f"/global/urlMaps/{um}")
    fails(gce.targetHttpsProxies().insert(project=name, body={"name": https, "urlMap": f"global/urlMaps/{um}"}),
          400, "invalid")
    cert = _cert(gce, name, "www.example.com")
    done(gce, gce.targetHttpsProxies().insert(project=name, body={
        "name": https, "urlMap": f"global/urlMaps/{um}", "sslCertificates": [cert["selfLink"]]}))
    pol = unique("pol")
    done(gce, gce.sslPolicies().insert(project=name, body={"name": pol, "profile": "MODERN"}))
    done(gce, gce.targetHttpsProxies().setSslPolicy(project=name, targetHttpsProxy=https, body={
        "sslPolicy": f"global/sslPolicies/{pol}"}), "setSslPolicy")
    cert2 = _cert(gce, name, "api.example.com")
    done(gce, gce.targetHttpsProxies().setSslCertificates(project=name, targetHttpsProxy=https, body={
        "sslCertificates": [cert["selfLink"], cert2["selfLink"]]}), "setSslCertificates")
    got = gce.targetHttpsProxies().get(project=name, targetHttpsProxy=https).execute()
    assert got["sslCertificates"] == [cert["selfLink"], cert2["selfLink"]] and got["sslPolicy"].endswith(pol)
    assert got["quicOverride"] == "NONE"
    vip = unique("vip")
    done(gce, gce.globalAddresses().insert(project=name, body={"name": vip}))
    address = gce.globalAddresses().get(project=name, address=vip).execute()
    fr80, fr443 = unique("fr"), unique("fr")
    fails(gce.globalForwardingRules().insert(project=name, body={
        "name": fr80, "target": proxy["selfLink"], "portRange": "81", "IPAddress": address["selfLink"]}), 400,
        "invalid")
    fails(gce.globalForwardingRules().insert(project=name, body={
        "name": fr80, "target": proxy["selfLink"], "portRange": "80", "loadBalancingScheme": "EXTERNAL_MANAGED"}),
        400, "invalid")
    done(gce, gce.globalForwardingRules().insert(project=name, body={
        "name": fr80, "target": proxy["selfLink"], "portRange": "80", "IPAddress": address["selfLink"]}), "insert")
    done(gce, gce.globalForwardingRules().insert(project=name, body={
        "name": fr443, "target": got["selfLink"], "portRange": "443", "IPAddress": address["address"]}))
    rule = gce.globalForwardingRules().get(project=name, forwardingRule=fr80).execute()
    assert (rule["IPAddress"], rule["IPProtocol"], rule["portRange"]) == (address["address"], "TCP", "80-80")
    assert (rule["loadBalancingScheme"], rule["networkTier"]) == ("EXTERNAL", "PREMIUM") and "region" not in rule
    assert gce.globalAddresses().get(project=name, address=vip).execute()["status"] == "IN_USE"
    agg = gce.forwardingRules().aggregatedList(project=name).execute()
    assert sorted(r["name"] for r in agg["items"]["global"]["forwardingRules"]) == sorted([fr80, fr443])
    # out of order: refused, naming the user; nothing changes
    p = f"projects/{name}"
    for request, kind, path, user in (
            (gce.targetHttpProxies().delete(project=name, targetHttpProxy=http), "target_http_proxy",
             f"global/targetHttpProxies/{http}", f"global/forwardingRules/{fr80}"),
            (gce.urlMaps().delete(project=name, urlMap=um), "url_map", f"global/urlMaps/{um}",
             f"global/targetHttpProxies/{http}"),
            (gce.sslCertificates().delete(project=name, sslCertificate=cert["name"]), "ssl_certificate",
             f"global/sslCertificates/{cert['name']}", f"global/targetHttpsProxies/{https}"),
            (gce.sslPolicies().delete(project=name, sslPolicy=pol), "ssl_policy", f"global/sslPolicies/{pol}",
             f"global/targetHttpsProxies/{https}"),
            (gce.backendServices().delete(project=name, backendService=bs["name"]), "backend_service",
             f"global/backendServices/{bs['name']}", f"global/urlMaps/{um}"),
            (gce.instanceGroups().delete(project=name, zone=ZONE, instanceGroup=g), "instance_group",
             f"zones/{ZONE}/instanceGroups/{g}", f"global/backendServices/{bs['name']}")):
        fails(request, 400, "resourceInUseByAnotherResource",
              f"The {kind} resource '{p}/{path}' is already being used by '{p}/{user}'")
    assert gce.urlMaps().get(project=name, urlMap=um).execute()["name"] == um
    # in dependency order they go
    for request in (gce.globalForwardingRules().delete(project=name, forwardingRule=fr80),
                    gce.globalForwardingRules().delete(project=name, forwardingRule=fr443),
                    gce.targetHttpProxies().delete(project=name, targetHttpProxy=http),
                    gce.targetHttpsProxies().delete(project=name, targetHttpsProxy=https),
                    gce.sslCertificates().delete(project=name, sslCertificate=cert["name"]),
                    gce.sslCertificates().delete(project=name, sslCertificate=cert2["name"]),
                    gce.sslPolicies().delete(project=name, sslPolicy=pol),
                    gce.urlMaps().delete(project=name, urlMap=um),
                    gce.backendServices().delete(project=name, backendService=bs["name"])):
        done(gce, request, "delete")
    assert gce.globalAddresses().get(project=name, address=vip).execute()["status"] == "RESERVED"
    done(gce, gce.globalAddresses().delete(project=name, address=vip))


def test_regional_external_managed_balancer(server, project, group):
    name, gce = project
    g, _ = group
    hc, bs, um, proxy, fr = (unique(p) for p in ("rhc", "rbs", "rum", "rthp", "rfr"))
    done(gce, gce.regionHealthChecks().insert(project=name, region=REGION, body={
        "name": hc, "type": "TCP", "tcpHealthCheck": {"port": 8080}}))
    fails(gce.regionBackendServices().insert(project=name, region=REGION, body={
        "name": bs, "healthChecks": [f"regions/{REGION}/healthChecks/{hc}"]}), 400, "invalid")  # EXTERNAL is global
    done(gce, gce.regionBackendServices().insert(project=name, region=REGION, body={
        "name": bs, "loadBalancingScheme": "EXTERNAL_MANAGED", "healthChecks": [f"regions/{REGION}/healthChecks/{hc}"],
        "backends": [{"group": f"zones/{ZONE}/instanceGroups/{g}"}]}))
    got = gce.regionBackendServices().get(project=name, region=REGION, backendService=bs).execute()
    assert got["region"] == f"{server.api}projects/{name}/regions/{REGION}"
    assert got["selfLink"] == f"{server.api}projects/{name}/regions/{REGION}/backendServices/{bs}"
    fails(gce.regionUrlMaps().insert(project=name, region=REGION, body={
        "name": um, "defaultService": f"global/backendServices/{bs}"}), 400, "invalid")  # a global one
    done(gce, gce.regionUrlMaps().insert(project=name, region=REGION, body={"name": um, "defaultService": got["selfLink"]}))
    done(gce, gce.regionTargetHttpProxies().insert(project=name, region=REGION, body={
        "name": proxy, "urlMap": f"regions/{REGION}/urlMaps/{um}"}))
    fails(gce.forwardingRules().insert(project=name, region=REGION, body={
        "name": fr, "target": f"regions/{REGION}/targetHttpProxies/{proxy}", "portRange": "8080",
        "loadBalancingScheme": "INTERNAL_MANAGED", "subnetwork": f"regions/{REGION}/subnetworks/default"}), 400,
        "invalid")  # the services are EXTERNAL_MANAGED
    done(gce, gce.forwardingRules().insert(project=name, region=REGION, body={
        "name": fr, "target": f"regions/{REGION}/targetHttpProxies/{proxy}", "portRange": "8080",
        "loadBalancingScheme": "EXTERNAL_MANAGED"}))
    rule = gce.forwardingRules().get(project=name, region=REGION, forwardingRule=fr).execute()
    assert rule["portRange"] == "8080-8080" and rule["loadBalancingScheme"] == "EXTERNAL_MANAGED"
    agg = gce.backendServices().aggregatedList(project=name).execute()["items"]
    assert bs in [s["name"] for s in agg[f"regions/{REGION}"]["backendServices"]]
    fails(gce.regionUrlMaps().delete(project=name, region=REGION, urlMap=um), 400, "resourceInUseByAnotherResource")
    done(gce, gce.forwardingRules().delete(project=name, region=REGION, forwardingRule=fr))
    done(gce, gce.regionTargetHttpProxies().delete(project=name, region=REGION, targetHttpProxy=proxy))
    done(gce, gce.regionUrlMaps().delete(project=name, region=REGION, urlMap=um))
    fails(gce.regionHealthChecks().delete(project=name, region=REGION, healthCheck=hc), 400,
          "resourceInUseByAnotherResource")
    done(gce, gce.regionBackendServices().delete(project=name, region=REGION, backendService=bs))
    done(gce, gce.regionHealthChecks().delete(project=name, region=REGION, healthCheck=hc))


def test_regional_internal_managed_balancer_needs_a_proxy_only_subnetwork(project, group):
    name, gce = project
    g, _ = group
    net = custom(gce, name)
    private, proxy_only = unique("sub"), unique("proxy")
    done(gce, gce.subnetworks().insert(project=name, region=REGION, body={
        "name": private, "network": f"global/networks/{net}", "ipCidrRange": "10.70.0.0/24"}))
    hc, bs, um, proxy, fr = (unique(p) for p in ("ihc", "ibs", "ium", "ithp", "ifr"))
    done(gce, gce.regionHealthChecks().insert(project=name, region=REGION, body={
        "name": hc, "type": "HTTP", "httpHealthCheck": {"port": 8080}}))
    done(gce, gce.regionBackendServices().insert(project=name, region=REGION, body={
        "name": bs, "loadBalancingScheme": "INTERNAL_MANAGED", "healthChecks": [f"regions/{REGION}/healthChecks/{hc}"],
        "backends": [{"group": f"zones/{ZONE}/instanceGroups/{g}"}]}))
    done(gce, gce.regionUrlMaps().insert(project=name, region=REGION, body={
        "name": um, "defaultService": f"regions/{REGION}/backendServices/{bs}"}))
    done(gce, gce.regionTargetHttpProxies().insert(project=name, region=REGION, body={
        "name": proxy, "urlMap": f"regions/{REGION}/urlMaps/{um}"}))
    rule = {"name": fr, "target": f"regions/{REGION}/targetHttpProxies/{proxy}", "portRange": "80",
            "loadBalancingScheme": "INTERNAL_MANAGED", "subnetwork": f"regions/{REGION}/subnetworks/{private}"}
    err = fails(gce.forwardingRules().insert(project=name, region=REGION, body=rule), 400, "invalid")
    assert err["message"].endswith("An active proxy-only subnetwork is required in the same region and VPC as the "
                                   "forwarding rule.")
    assert fr not in names(gce.forwardingRules().list(project=name, region=REGION).execute())
    done(gce, gce.subnetworks().insert(project=name, region=REGION, body={
        "name": proxy_only, "network": f"global/networks/{net}", "ipCidrRange": "10.71.0.0/23",
        "purpose": "REGIONAL_MANAGED_PROXY", "role": "ACTIVE"}))
    fails(gce.forwardingRules().insert(project=name, region=REGION, body={
        **rule, "subnetwork": f"regions/{REGION}/subnetworks/{proxy_only}"}), 400, "invalid")
    done(gce, gce.forwardingRules().insert(project=name, region=REGION, body=rule))
    got = gce.forwardingRules().get(project=name, region=REGION, forwardingRule=fr).execute()
    assert got["IPAddress"].startswith("10.70.0.") and got["loadBalancingScheme"] == "INTERNAL_MANAGED"
    assert got["network"].endswith(f"/global/networks/{net}") and got["subnetwork"].endswith(f"/subnetworks/{private}")
    for request in (gce.forwardingRules().delete(project=name, region=REGION, forwardingRule=fr),
                    gce.regionTargetHttpProxies().delete(project=name, region=REGION, targetHttpProxy=proxy),
                    gce.regionUrlMaps().delete(project=name, region=REGION, urlMap=um),
                    gce.regionBackendServices().delete(project=name, region=REGION, backendService=bs),
                    gce.regionHealthChecks().delete(project=name, region=REGION, healthCheck=hc),
                    gce.subnetworks().delete(project=name, region=REGION, subnetwork=proxy_only),
                    gce.subnetworks().delete(project=name, region=REGION, subnetwork=private),
                    gce.networks().delete(project=name, network=net)):
        done(gce, request)
