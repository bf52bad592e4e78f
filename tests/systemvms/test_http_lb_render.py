"""HTTP(S) load balancers as the router renders them: made through the core services (backend services,
url maps, proxies, certificates, forwarding rules), checked by ``haproxy -c`` with the certificate files
in place, and for what they mean: which backend a request goes to (the frontend's ACLs and
use_backend lines evaluated as HAProxy does), which servers a backend has, how TLS is terminated."""

from __future__ import annotations

import os
import tempfile

import pytest

from core.db import write_session
from core.resources import store
from core.resources.context import Call
from core.services import (
    addresses,
    backend_services,
    instance_groups,
    instance_health,
    load_balancing,
    network_endpoint_groups,
    proxy_forwarding_rules,
    ssl_certificates,
    ssl_policies,
    target_proxies,
    url_maps,
)
from core.services.topology import zone as zone_info
from core.systemvms import http_lb, router
from tests.helpers.certificates import self_signed
from tests.systemvms.conftest import backend_servers, chain, check_with

ZONE = "us-central1-a"
pytestmark = pytest.mark.xdist_group("systemvms-render")


def run(cloud, fn, *args):
    """A core use case in a transaction of its own, as a request would run it."""
    with write_session(cloud.factory) as s:
        return fn(Call(s, cloud.project, "test"), *args)


def zone(cloud):
    with cloud.factory() as s:
        return zone_info(s, cloud.project, ZONE)


def group(cloud, name: str, port: int, *members: str) -> None:
    run(cloud, instance_groups.insert, zone(cloud), {"name": name, "namedPorts": [{"name": "http", "port": port}]})
    if members:
        run(cloud, instance_groups.add_instances, zone(cloud), name,
            {"instances": [{"instance": f"zones/{ZONE}/instances/{m}"} for m in members]})


def service(cloud, name: str, *groups: str, **fields) -> None:
    run(cloud, backend_services.insert, None, {
        "name": name, "healthChecks": ["global/healthChecks/hc"], **fields,
        "backends": [{"group": f"zones/{ZONE}/instanceGroups/{g}"} for g in groups]})


def rule_ip(cloud, name: str) -> str:
    with cloud.factory() as s:
        return store.body_of(store.find(s, cloud.project, "forwardingRules", "global", name))["IPAddress"]


def check_haproxy(files: dict[str, str]) -> None:
    """``haproxy -c`` of the configuration with the certificate files it names in place."""
    with tempfile.TemporaryDirectory() as d:
        for path, content in files.items():
            if path.startswith(http_lb.CERT_DIR + "/"):
                with open(os.path.join(d, os.path.basename(path)), "w") as f:
                    f.write(content)
        check_with("haproxy", files[router.HAPROXY].replace(f"crt-base {http_lb.CERT_DIR}", f"crt-base {d}"))


def section(cfg: str, header: str) -> list[str]:
    lines = cfg.splitlines()
    start = lines.index(header)
    out = []
    for line in lines[start + 1:]:
        if not line.startswith("    "):
            break
        out.append(line.strip())
    return out


def route(cfg: str, frontend: str, host: str, path: str) -> str:
    """The backend HAProxy picks for a request: the first use_backend whose ACLs all match (ACLs of one
    name OR their lines), else the default backend. Only the matchers the router renders are known."""
    lines = section(cfg, f"frontend {frontend}")
    acls: dict[str, list[tuple[str, str, str]]] = {}  # name -> (fetch, matcher, value) of each line
    for line in lines:
        if line.startswith("acl "):
            _, name, fetch, flag, kind, value = line.split()
            assert flag == "-m" and fetch in ("path", "req.hdr(host),field(1,:),lower"), line
            acls.setdefault(name, []).append((fetch, kind, value))
    matchers = {"str": str.__eq__, "beg": str.startswith, "end": str.endswith}

    def holds(name: str) -> bool:
        return any(matchers[kind](path if fetch == "path" else host.lower().split(":")[0], value)
                   for fetch, kind, value in acls[name])

    for line in lines:
        if line.startswith("use_backend "):
            words = line.split()
            if all(holds(c) for c in words[3:]):
                return words[1]
    return next(line.split()[1] for line in lines if line.startswith("default_backend "))


@pytest.fixture
def chain_of_two(cloud):
    """Service A (group ga: a-1, a-2 on port 8080) takes /api/*, service B (gb: b-1 on 80) the rest,
    behind an HTTP rule on :80 and an HTTPS rule on :443 of one global address."""
    for vm in ("a-1", "a-2", "b-1"):
        cloud.instance(vm)
    run(cloud, load_balancing.insert_health_check, "healthChecks", {
        "name": "hc", "type": "HTTP", "httpHealthCheck": {"port": 8080, "requestPath": "/healthz"},
        "checkIntervalSec": 3, "timeoutSec": 2, "unhealthyThreshold": 4})
    group(cloud, "ga", 8080, "a-1", "a-2")
    group(cloud, "gb", 80, "b-1")
    service(cloud, "svc-a", "ga", timeoutSec=45)
    service(cloud, "svc-b", "gb", sessionAffinity="GENERATED_COOKIE")
    run(cloud, url_maps.insert, None, {
        "name": "web", "defaultService": "global/backendServices/svc-b",
        "hostRules": [{"hosts": ["*"], "pathMatcher": "paths"}],
        "pathMatchers": [{"name": "paths", "defaultService": "global/backendServices/svc-b",
                          "pathRules": [{"paths": ["/api/*"], "service": "global/backendServices/svc-a"},
                                        {"paths": ["/api/login"], "service": "global/backendServices/svc-b"}]}]})
    run(cloud, target_proxies.insert, "targetHttpProxies", None, {"name": "http", "urlMap": "global/urlMaps/web"})
    cert, key, _ = self_signed("www.example.com")
    run(cloud, ssl_certificates.insert, None, {"name": "cert", "certificate": cert, "privateKey": key})
    run(cloud, ssl_policies.insert, None, {"name": "modern", "profile": "MODERN", "minTlsVersion": "TLS_1_2"})
    run(cloud, target_proxies.insert, "targetHttpsProxies", None, {
        "name": "https", "urlMap": "global/urlMaps/web", "sslCertificates": ["global/sslCertificates/cert"],
        "sslPolicy": "global/sslPolicies/modern"})
    run(cloud, addresses.insert, "global", {"name": "vip"})  # two rules share a reserved address only
    run(cloud, proxy_forwarding_rules.insert, None, {"name": "www", "target": "global/targetHttpProxies/http",
                                                     "portRange": "80", "IPAddress": "global/addresses/vip"})
    ip = rule_ip(cloud, "www")
    run(cloud, proxy_forwarding_rules.insert, None, {"name": "secure", "target": "global/targetHttpsProxies/https",
                                                     "portRange": "443", "IPAddress": ip})
    cloud.run_jobs()
    return ip, cert, key


def test_paths_go_to_their_service_and_tls_terminates_with_the_certificate(cloud, chain_of_two):
    ip, cert, key = chain_of_two
    files = cloud.rendered()
    check_haproxy(files)
    check_with("nft", files[router.NFTABLES])
    cfg = files[router.HAPROXY]
    for frontend in ("gfr-www", "gfr-secure"):
        assert route(cfg, frontend, "www.example.com", "/api/users") == "bs-svc-a"
        assert route(cfg, frontend, "www.example.com", "/api/") == "bs-svc-a"
        assert route(cfg, frontend, "x.test", "/api/login") == "bs-svc-b"  # the exact path beats the prefix
        assert route(cfg, frontend, "www.example.com", "/") == "bs-svc-b"
        assert route(cfg, frontend, "www.example.com", "/apix") == "bs-svc-b"
    assert f"bind {ip}:80" in section(cfg, "frontend gfr-www")
    bind = next(line for line in section(cfg, "frontend gfr-secure") if line.startswith("bind "))
    assert bind.startswith(f"bind {ip}:443 ssl crt global-cert.pem ssl-min-ver TLSv1.2 ciphers ")
    ciphers = set(bind.rsplit(" ", 1)[1].split(":"))  # MODERN: ECDHE only
    assert len(ciphers) == 10 and "ECDHE-RSA-AES128-GCM-SHA256" in ciphers and "AES128-SHA" not in ciphers
    assert files[f"{http_lb.CERT_DIR}/global-cert.pem"].startswith(cert)
    assert "PRIVATE KEY" in files[f"{http_lb.CERT_DIR}/global-cert.pem"]
    assert backend_servers(cfg, "bs-svc-a") == ["a-1", "a-2"]
    assert backend_servers(cfg, "bs-svc-b") == ["b-1"]
    svc_a = section(cfg, "backend bs-svc-a")
    assert f"server a-1 {cloud.ip_of('a-1')}:8080 weight 100 check port 8080" in svc_a
    assert "timeout server 45s" in svc_a and "http-check send meth GET uri /healthz ver HTTP/1.0" in svc_a
    assert "default-server inter 3s rise 2 fall 4" in svc_a
    svc_b = section(cfg, "backend bs-svc-b")
    assert "cookie GCLB insert indirect nocache" in svc_b
    assert f"server b-1 {cloud.ip_of('b-1')}:80 weight 100 cookie b-1 check port 8080" in svc_b
    inputs = chain(files[router.NFTABLES], "input")
    assert f'ip daddr {ip} tcp dport 80 accept comment "forwarding rule www"' in inputs
    assert f'ip daddr {ip} tcp dport 443 accept comment "forwarding rule secure"' in inputs


def test_a_removed_or_stopped_instance_leaves_the_backend(cloud, chain_of_two):
    run(cloud, instance_groups.remove_instances, zone(cloud), "ga", {"instances": [{"instance": f"zones/{ZONE}/instances/a-2"}]})
    cloud.run_jobs()
    cfg = cloud.rendered()[router.HAPROXY]
    assert backend_servers(cfg, "bs-svc-a") == ["a-1"]
    assert cloud.ip_of("a-2") + ":" not in cfg
    cloud.power("a-1", "stop")
    files = cloud.rendered()
    check_haproxy(files)
    assert backend_servers(files[router.HAPROXY], "bs-svc-a") == []
    cloud.power("a-1", "start")
    assert backend_servers(cloud.rendered()[router.HAPROXY], "bs-svc-a") == ["a-1"]


def test_an_unhealthy_instance_leaves_the_backend_and_get_health_says_so(cloud, chain_of_two):
    with write_session(cloud.factory) as s:
        instance_health.set_serving(s, cloud.project, ZONE, "a-1", False)
    cloud.run_jobs()
    files = cloud.rendered()
    check_haproxy(files)
    assert backend_servers(files[router.HAPROXY], "bs-svc-a") == ["a-2"]
    health = run(cloud, backend_services.group_health, None, "svc-a", {"group": f"zones/{ZONE}/instanceGroups/ga"})
    assert [(h["instance"].rsplit("/", 1)[1], h["healthState"], h["port"]) for h in health["healthStatus"]] == [
        ("a-1", "UNHEALTHY", 8080), ("a-2", "HEALTHY", 8080)]
    with write_session(cloud.factory) as s:
        instance_health.set_serving(s, cloud.project, ZONE, "a-1", True)
    cloud.run_jobs()
    assert backend_servers(cloud.rendered()[router.HAPROXY], "bs-svc-a") == ["a-1", "a-2"]


def test_hosts_choose_their_matcher_exact_before_wildcard(cloud, chain_of_two):
    run(cloud, url_maps.replace, None, "web", {
        "hostRules": [{"hosts": ["*.example.com"], "pathMatcher": "wild"},
                      {"hosts": ["api.example.com"], "pathMatcher": "api"}],
        "pathMatchers": [{"name": "wild", "defaultService": "global/backendServices/svc-b"},
                         {"name": "api", "defaultService": "global/backendServices/svc-a",
                          "pathRules": [{"paths": ["/static/*"], "service": "global/backendServices/svc-b"}]}]},
        True)
    cloud.run_jobs()
    files = cloud.rendered()
    check_haproxy(files)
    cfg = files[router.HAPROXY]
    assert route(cfg, "gfr-www", "api.example.com", "/v1") == "bs-svc-a"
    assert route(cfg, "gfr-www", "API.example.com:80", "/static/x.css") == "bs-svc-b"
    assert route(cfg, "gfr-www", "www.example.com", "/v1") == "bs-svc-b"
    assert route(cfg, "gfr-www", "other.test", "/v1") == "bs-svc-b"  # the map's default


def test_deleting_the_chain_empties_the_router(cloud, chain_of_two):
    with pytest.raises(Exception, match="is already being used by"):
        run(cloud, url_maps.delete, None, "web")
    for fn, args in ((proxy_forwarding_rules.delete, (None, "www")), (proxy_forwarding_rules.delete, (None, "secure")),
                     (target_proxies.delete, ("targetHttpProxies", None, "http")),
                     (target_proxies.delete, ("targetHttpsProxies", None, "https")),
                     (url_maps.delete, (None, "web"))):
        run(cloud, fn, *args)
    cloud.run_jobs()
    files = cloud.rendered()
    check_haproxy(files)
    assert "frontend gfr-" not in files[router.HAPROXY] and "backend bs-" not in files[router.HAPROXY]
    assert not [p for p in files if p.startswith(http_lb.CERT_DIR)]
    # the router itself no longer holds the certificate (and its private key) either
    held = cloud.files(cloud.router().uid)
    assert held[router.HAPROXY].content == files[router.HAPROXY]
    assert not [p for p in held if p.startswith(http_lb.CERT_DIR)]


def test_hostile_values_do_not_reach_the_configuration(cloud, chain_of_two):
    with write_session(cloud.factory) as s:
        um = store.find(s, cloud.project, "urlMaps", "global", "web")
        body = store.body_of(um)
        body["pathMatchers"][0]["pathRules"][0]["paths"] = ["/x\n    server evil 203.0.113.9:80"]
        body["hostRules"][0]["hosts"] = ["evil.test use_backend x"]
        store.save(um, body)
    files = cloud.rendered()
    check_haproxy(files)
    assert "evil" not in files[router.HAPROXY]


def test_a_regional_managed_balancer_renders_in_its_region(cloud):
    cloud.instance("r-1")
    region = "regions/us-central1"
    run(cloud, load_balancing.insert_health_check, "healthChecks", {
        "name": "rhc", "type": "TCP", "tcpHealthCheck": {"portSpecification": "USE_SERVING_PORT"}}, region)
    group(cloud, "gr", 8000, "r-1")
    run(cloud, backend_services.insert, "us-central1", {
        "name": "svc", "loadBalancingScheme": "EXTERNAL_MANAGED", "healthChecks": [f"{region}/healthChecks/rhc"],
        "backends": [{"group": f"zones/{ZONE}/instanceGroups/gr", "capacityScaler": 0.5}]})
    run(cloud, url_maps.insert, "us-central1", {"name": "map", "defaultService": f"{region}/backendServices/svc"})
    run(cloud, target_proxies.insert, "targetHttpProxies", "us-central1", {"name": "p", "urlMap": f"{region}/urlMaps/map"})
    run(cloud, proxy_forwarding_rules.insert, "us-central1", {
        "name": "edge", "target": f"{region}/targetHttpProxies/p", "portRange": "8080",
        "loadBalancingScheme": "EXTERNAL_MANAGED"})
    cloud.run_jobs()
    files = cloud.rendered()
    check_haproxy(files)
    cfg = files[router.HAPROXY]
    assert route(cfg, "fr-edge", "any.test", "/") == "rbs-us-central1-svc"
    backend = section(cfg, "backend rbs-us-central1-svc")
    # a TCP check on the serving port: no HTTP request, no port option
    assert f"server r-1 {cloud.ip_of('r-1')}:8000 weight 50 check" in backend and "option httpchk" not in backend


def test_network_endpoint_groups_serve_their_endpoints(cloud):
    """A zonal GCE_VM_IP_PORT group as the backend: each endpoint of a running, healthy instance is a
    server on its own port; detaching one or its instance failing its checks takes it out."""
    for vm in ("n-1", "n-2"):
        cloud.instance(vm)
    run(cloud, load_balancing.insert_health_check, "healthChecks", {
        "name": "nhc", "type": "TCP", "tcpHealthCheck": {"portSpecification": "USE_SERVING_PORT"}})
    run(cloud, network_endpoint_groups.insert, zone(cloud), {"name": "neg", "defaultPort": 9000})
    run(cloud, network_endpoint_groups.change, zone(cloud), "neg", {"networkEndpoints": [
        {"instance": "n-1"}, {"instance": f"zones/{ZONE}/instances/n-2", "port": 9001},
        {"instance": "n-2", "ipAddress": cloud.ip_of("n-2")}]}, True)
    run(cloud, backend_services.insert, None, {
        "name": "svc-n", "healthChecks": ["global/healthChecks/nhc"],
        "backends": [{"group": f"zones/{ZONE}/networkEndpointGroups/neg", "balancingMode": "RATE",
                      "maxRatePerEndpoint": 50}]})
    run(cloud, url_maps.insert, None, {"name": "nmap", "defaultService": "global/backendServices/svc-n"})
    run(cloud, target_proxies.insert, "targetHttpProxies", None, {"name": "np", "urlMap": "global/urlMaps/nmap"})
    run(cloud, proxy_forwarding_rules.insert, None, {"name": "nrule", "target": "global/targetHttpProxies/np"})
    cloud.run_jobs()
    files = cloud.rendered()
    check_haproxy(files)
    backend = section(files[router.HAPROXY], "backend bs-svc-n")
    assert backend_servers(files[router.HAPROXY], "bs-svc-n") == ["n-1-9000", "n-2-9001", "n-2-9000"]
    assert f"server n-2-9001 {cloud.ip_of('n-2')}:9001 weight 100 check" in backend
    with write_session(cloud.factory) as s:
        instance_health.set_serving(s, cloud.project, ZONE, "n-2", False)
    run(cloud, network_endpoint_groups.change, zone(cloud), "neg", {"networkEndpoints": [{"instance": "n-1"}]},
        False)
    cloud.run_jobs()
    files = cloud.rendered()
    check_haproxy(files)
    assert backend_servers(files[router.HAPROXY], "bs-svc-n") == []
    health = run(cloud, backend_services.group_health, None, "svc-n",
                 {"group": f"zones/{ZONE}/networkEndpointGroups/neg"})
    assert [(h["port"], h["healthState"]) for h in health["healthStatus"]] == [(9001, "UNHEALTHY"),
                                                                              (9000, "UNHEALTHY")]
    cloud.delete_instance("n-2")  # a deleted instance leaves the group, as in GCE
    with cloud.factory() as s:
        assert store.body_of(store.find(s, cloud.project, "networkEndpointGroups", f"zones/{ZONE}", "neg"))["size"] == 0
    assert run(cloud, network_endpoint_groups.list_endpoints, zone(cloud), "neg", {}) == []
