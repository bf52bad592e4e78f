"""An HTTP(S) load balancer built and torn down with the real gcloud CLI: backend services (one on an
instance group, one on a network endpoint group), url map with a path matcher, target HTTP and HTTPS
proxies, an SSL certificate, global forwarding rules; deleted out of order (refused with GCE's error)
and in dependency order. And a Cloud Router with a NAT, as ``routers create`` and ``routers nats
create`` make them."""

from __future__ import annotations

import json

from tests.conftest import unique
from tests.e2e.conftest import describe
from tests.helpers.certificates import self_signed

REGION, ZONE = "us-central1", "us-central1-a"


def test_http_load_balancer_flow(gcloud, tmp_path):
    vm, group, neg, hc, web, api, um, http, https, cert, fr80, fr443 = (unique(p) for p in (
        "lbvm", "lbig", "lbneg", "lbhc", "lbweb", "lbapi", "lbum", "lbhttp", "lbhttps", "lbcert", "lbfr", "lbfrs"))
    gcloud("compute", "instances", "create", vm, "--zone", ZONE, "--machine-type", "e2-small",
           "--image-family", "debian-12", "--image-project", "debian-cloud")
    gcloud("compute", "instance-groups", "unmanaged", "create", group, "--zone", ZONE)
    gcloud("compute", "instance-groups", "unmanaged", "add-instances", group, "--zone", ZONE, "--instances", vm)
    gcloud("compute", "instance-groups", "unmanaged", "set-named-ports", group, "--zone", ZONE,
           "--named-ports", "http:80")
    gcloud("compute", "health-checks", "create", "http", hc, "--port", "80", "--request-path", "/healthz")
    gcloud("compute", "network-endpoint-groups", "create", neg, "--zone", ZONE, "--network-endpoint-type",
           "gce-vm-ip-port", "--default-port", "8080", "--network", "default")
    gcloud("compute", "network-endpoint-groups", "update", neg, "--zone", ZONE, "--add-endpoint", f"instance={vm}")
    for service in (web, api):
        gcloud("compute", "backend-services", "create", service, "--global", "--protocol", "HTTP",
               "--health-checks", hc)
    gcloud("compute", "backend-services", "add-backend", web, "--instance-group", group,
           "--instance-group-zone", ZONE, "--global")
    gcloud("compute", "backend-services", "add-backend", api, "--network-endpoint-group", neg,
           "--network-endpoint-group-zone", ZONE, "--balancing-mode", "RATE", "--max-rate-per-endpoint", "50",
           "--global")
    got = describe(gcloud, "compute", "backend-services", "describe", web, "--global")
    assert got["backends"][0]["group"].endswith(f"/zones/{ZONE}/instanceGroups/{group}")
    assert (got["protocol"], got["portName"], got["backends"][0]["balancingMode"]) == ("HTTP", "http", "UTILIZATION")
    health = describe(gcloud, "compute", "backend-services", "get-health", web, "--global")
    assert health[0]["status"]["healthStatus"][0]["healthState"] == "HEALTHY"

    gcloud("compute", "url-maps", "create", um, "--default-service", web)
    gcloud("compute", "url-maps", "add-path-matcher", um, "--path-matcher-name", "apis", "--default-service", web,
           "--path-rules", f"/api/*={api}", "--new-hosts", "example.com")
    got = describe(gcloud, "compute", "url-maps", "describe", um)
    assert got["hostRules"] == [{"hosts": ["example.com"], "pathMatcher": "apis"}]
    assert got["pathMatchers"][0]["pathRules"][0]["paths"] == ["/api/*"]
    assert got["pathMatchers"][0]["pathRules"][0]["service"].endswith(f"/global/backendServices/{api}")

    gcloud("compute", "target-http-proxies", "create", http, "--url-map", um)
    pem, key, _ = self_signed("www.example.com")
    (tmp_path / "cert.pem").write_text(pem)
    (tmp_path / "key.pem").write_text(key)
    gcloud("compute", "ssl-certificates", "create", cert, "--certificate", str(tmp_path / "cert.pem"),
           "--private-key", str(tmp_path / "key.pem"), "--global")
    got = describe(gcloud, "compute", "ssl-certificates", "describe", cert, "--global")
    assert got["subjectAlternativeNames"] == ["www.example.com"] and "privateKey" not in got
    gcloud("compute", "target-https-proxies", "create", https, "--url-map", um, "--ssl-certificates", cert)
    gcloud("compute", "forwarding-rules", "create", fr80, "--global", "--target-http-proxy", http, "--ports", "80")
    gcloud("compute", "forwarding-rules", "create", fr443, "--global", "--target-https-proxy", https, "--ports", "443")
    rule = describe(gcloud, "compute", "forwarding-rules", "describe", fr80, "--global")
    assert rule["portRange"] == "80-80" and rule["target"].endswith(f"/global/targetHttpProxies/{http}")
    listed = json.loads(gcloud("compute", "forwarding-rules", "list", "--global", "--format=json").stdout)
    assert {fr80, fr443} <= {r["name"] for r in listed}

    # out of order: refused with GCE's error, naming the user
    for args, user in ((("url-maps", "delete", um), http),
                       (("target-http-proxies", "delete", http), fr80),
                       (("ssl-certificates", "delete", cert, "--global"), https),
                       (("backend-services", "delete", api, "--global"), um),
                       (("instance-groups", "unmanaged", "delete", group, "--zone", ZONE), web),
                       (("network-endpoint-groups", "delete", neg, "--zone", ZONE), api)):
        refused = gcloud("compute", *args, check=False)
        assert refused.returncode != 0 and "is already being used by" in refused.stderr and user in refused.stderr, \
            refused.stderr

    # in dependency order they go
    gcloud("compute", "forwarding-rules", "delete", fr80, fr443, "--global")
    gcloud("compute", "target-http-proxies", "delete", http)
    gcloud("compute", "target-https-proxies", "delete", https)
    gcloud("compute", "ssl-certificates", "delete", cert, "--global")
    gcloud("compute", "url-maps", "delete", um)
    gcloud("compute", "backend-services", "delete", web, api, "--global")
    gcloud("compute", "health-checks", "delete", hc)
    gcloud("compute", "instance-groups", "unmanaged", "delete", group, "--zone", ZONE)
    gcloud("compute", "network-endpoint-groups", "delete", neg, "--zone", ZONE)
    gcloud("compute", "instances", "delete", vm, "--zone", ZONE)


def test_router_with_nat(gcloud):
    router, nat = unique("rt"), unique("nat")
    gcloud("compute", "routers", "create", router, "--network", "default", "--region", REGION, "--asn", "64512")
    gcloud("compute", "routers", "nats", "create", nat, "--router", router, "--region", REGION,
           "--auto-allocate-nat-external-ips", "--nat-all-subnet-ip-ranges", "--min-ports-per-vm", "128")
    got = describe(gcloud, "compute", "routers", "describe", router, "--region", REGION)
    assert got["bgp"]["asn"] == 64512 and got["network"].endswith("/global/networks/default")
    assert [(n["name"], n["natIpAllocateOption"], n["sourceSubnetworkIpRangesToNat"], n["minPortsPerVm"])
            for n in got["nats"]] == [(nat, "AUTO_ONLY", "ALL_SUBNETWORKS_ALL_IP_RANGES", 128)]
    gcloud("compute", "routers", "delete", router, "--region", REGION)
