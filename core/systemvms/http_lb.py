"""HTTP(S) load balancers as the virtual router renders them (HAProxy in ``mode http``).

A forwarding rule in front of a target HTTP(S) proxy becomes a frontend on the rule's IP:port; the
proxy's url map becomes ACLs on the Host header and the path, and ``use_backend`` lines in the order
GCE decides (an exact host before a wildcard before ``*``; within a path matcher the longest path,
an exact path before a prefix); each backend service becomes a backend whose servers are the RUNNING
members of its instance groups, on the port the groups name ``portName``, checked as its health
check says. An HTTPS proxy terminates TLS with its certificates, written as PEM files beside the
configuration (``/etc/haproxy/certs``), and its SSL policy's minimum version and ciphers.

Which router renders a load balancer: the router of its backends' network, in the region of its
backends. Every instance group its url map reaches is a (network, region) pair; the smallest of them
(by network URL, then region) is the balancer's home, so exactly one router serves the rule's IP,
and groups of another network are not its servers (a router reaches its own network only). A
global balancer whose backends span regions is served from one region's router, which reaches the
other regions' instances through the network.

Every value taken from a resource body is checked again here (addresses parsed, names matched,
hosts and paths restricted), so no field can inject lines into the configuration.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

import orjson
from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from core.errors import NAME_REGEX
from core.links import parse_ref
from core.models import InstanceGroupMember, Resource
from core.resources import health, store
from core.resources.store import Body

CERT_DIR = "/etc/haproxy/certs"
KEYS = "sslCertificateKeys"  # the private rows core.services.ssl_certificates keeps the PEM in
PROXIES = ("targetHttpProxies", "targetHttpsProxies")
_NAME = re.compile(NAME_REGEX + r"\Z")
_HOST = re.compile(r"(\*|(\*[.-])?[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?)(:\d{1,5})?\Z")
_PATH = re.compile(r"/[A-Za-z0-9._~!$&'()+,;=:@%/-]{0,1022}(/\*)?\Z|/\*\Z")
_PEM = re.compile(r"(-----BEGIN [A-Z ]+-----\n[A-Za-z0-9+/=\n]+-----END [A-Z ]+-----\n?)+\Z")
TLS_VERSIONS = {"TLS_1_0": "TLSv1.0", "TLS_1_1": "TLSv1.1", "TLS_1_2": "TLSv1.2", "TLS_1_3": "TLSv1.3"}
CIPHERS = {  # GCE's SSL policy features -> OpenSSL's names (TLS 1.3 suites are OpenSSL's defaults)
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
    "TLS_RSA_WITH_AES_128_GCM_SHA256": "AES128-GCM-SHA256", "TLS_RSA_WITH_AES_256_GCM_SHA384": "AES256-GCM-SHA384",
    "TLS_RSA_WITH_AES_128_CBC_SHA": "AES128-SHA", "TLS_RSA_WITH_AES_256_CBC_SHA": "AES256-SHA",
    "TLS_RSA_WITH_3DES_EDE_CBC_SHA": "DES-CBC3-SHA"}


@dataclass
class HttpBalancers:
    """What a router renders for the HTTP(S) balancers it is home to."""

    frontends: list[Body] = field(default_factory=list)
    backends: list[Body] = field(default_factory=list)
    inputs: list[str] = field(default_factory=list)  # nft input rules that let the frontends' traffic in
    files: dict[str, str] = field(default_factory=dict)  # certificate PEM files


def _ip(value: object) -> str | None:
    try:
        return str(ipaddress.IPv4Address(value)) if isinstance(value, str) else None
    except ValueError:
        return None


def _ok(value: object) -> str | None:
    return value if isinstance(value, str) and _NAME.match(value) else None


class _Reader:
    """Rows by URL, each read once per render."""

    def __init__(self, session: Session):
        self.session = session
        self.cache: dict[str, Body | None] = {}
        self.rows: dict[str, Resource | None] = {}

    def row(self, url: object) -> Resource | None:
        if not isinstance(url, str):
            return None
        if url not in self.rows:
            ref = parse_ref(url, project="")
            self.rows[url] = store.find_optional(self.session, ref.project, ref.collection, ref.scope, ref.name) \
                if ref else None
        return self.rows[url]

    def body(self, url: object) -> Body | None:
        row = self.row(url)
        if not isinstance(url, str) or row is None:
            return None
        if url not in self.cache:
            self.cache[url] = store.body_of(row)
        return self.cache[url]


def _services(url_map: Body) -> list[str]:
    matchers = url_map.get("pathMatchers") or []
    urls = [url_map.get("defaultService"), *(m.get("defaultService") for m in matchers),
            *(r.get("service") for m in matchers for r in m.get("pathRules") or [])]
    return sorted({u for u in urls if isinstance(u, str)})


def _groups(reader: _Reader, url_map: Body) -> list[str]:
    return sorted({b["group"] for s in _services(url_map) for b in (reader.body(s) or {}).get("backends") or []
                   if isinstance(b, dict) and isinstance(b.get("group"), str)})


def _home(reader: _Reader, url_map: Body) -> tuple[str, str] | None:
    """(network URL, region) of the router that serves the balancer (see the module's docstring)."""
    homes = []
    for url in _groups(reader, url_map):
        row, body = reader.row(url), reader.body(url)
        if row is not None and body is not None and body.get("network") and row.region:
            homes.append((str(body["network"]), row.region))
    return min(homes) if homes else None


_MEMBERS = (select(Resource.uid, Resource.name, Resource.body).join(InstanceGroupMember, InstanceGroupMember.instance_uid == Resource.uid)
            .where(InstanceGroupMember.group_uid == bindparam("group"), Resource.status == "RUNNING")
            .order_by(Resource.name))


def _members(session: Session, group: Resource) -> list[tuple[str, str]]:
    """(name, address of the first interface) of the group's RUNNING members that answer their health
    checks (:mod:`core.resources.health`): the balancer sends nothing to an unhealthy one."""
    rows = session.execute(_MEMBERS, {"group": group.uid}).all()
    down = health.not_serving(session, [uid for uid, _, _ in rows])
    out = []
    for uid, name, body in rows:
        if uid in down:
            continue
        nics = orjson.loads(body).get("networkInterfaces") or [{}]
        ip = _ip(nics[0].get("networkIP"))
        if ip and _ok(name):
            out.append((name, ip))
    return out


def _servers(session: Session, group: Resource, body: Body, service: Body) -> list[tuple[str, str, int]]:
    """(server name, address, port) of a backend: an instance group's members on the port it names
    ``portName`` (none without it: GCE sends nothing there), or a network endpoint group's endpoints
    of RUNNING instances answering their checks, each on its own address and port."""
    if group.collection == health.NEG_COLLECTION:
        pairs = health.members(session, group)
        out = []
        for (e, inst), ok in zip(pairs, health.healthy(session, pairs), strict=True):
            ip, port = _ip(e.get("ipAddress")), e.get("port")
            if ok and ip and _ok(inst.name) and isinstance(port, int) and 1 <= port <= 65535:
                primary = (orjson.loads(inst.body).get("networkInterfaces") or [{}])[0].get("networkIP")
                name = f"{inst.name}-{port}" if ip == primary else f"{inst.name}-{ip.replace('.', '-')}-{port}"
                out.append((name, ip, port))
        return out
    port = next((p.get("port") for p in body.get("namedPorts") or [] if p.get("name") == service.get("portName")),
                None)
    if not isinstance(port, int) or not 1 <= port <= 65535:
        return []
    return [(member, ip, port) for member, ip in _members(session, group)]


def _number(check: Body, key: str, default: int, low: int, high: int) -> int:
    try:
        return min(max(int(check.get(key, default)), low), high)
    except (TypeError, ValueError):
        return default


def _check(check: Body | None) -> Body | None:
    """A health check resource as the backend's check: HTTP(S) checks send a request and expect 200,
    TCP and SSL checks connect; a fixed port, or the serving port (``port`` None)."""
    if check is None:
        return None
    if "type" not in check:  # a legacy httpHealthCheck
        sub, kind, ssl = {**check, "portSpecification": "USE_FIXED_PORT"}, "http", False
    else:
        key = {"HTTP": "httpHealthCheck", "HTTPS": "httpsHealthCheck", "HTTP2": "http2HealthCheck",
               "TCP": "tcpHealthCheck", "SSL": "sslHealthCheck", "GRPC": "grpcHealthCheck"}.get(check["type"], "")
        sub = check.get(key) or {}
        kind = "http" if check["type"] in ("HTTP", "HTTPS", "HTTP2") else "tcp"
        ssl = check["type"] in ("HTTPS", "HTTP2", "SSL")
    path, host = sub.get("requestPath") or "/", sub.get("host") or ""
    if not _PATH.match(path) or "*" in path or (host and not _HOST.match(host.lower())) or "*" in host:
        return None
    port = _number(sub, "port", 80, 1, 65535) if sub.get("portSpecification", "USE_FIXED_PORT") == \
        "USE_FIXED_PORT" else None
    return {"kind": kind, "ssl": ssl, "path": path, "host": host, "version": "HTTP/1.1" if host else "HTTP/1.0",
            "port": port, "interval": _number(check, "checkIntervalSec", 5, 1, 300),
            "timeout": _number(check, "timeoutSec", 5, 1, 300), "rise": _number(check, "healthyThreshold", 2, 1, 10),
            "fall": _number(check, "unhealthyThreshold", 2, 1, 10)}


def backend_name(url: str) -> str | None:
    ref = parse_ref(url, project="")
    if ref is None or not _ok(ref.name):
        return None
    return f"bs-{ref.name}" if ref.scope == "global" else f"rbs-{ref.scope.split('/', 1)[1]}-{ref.name}"


def _backend(session: Session, reader: _Reader, url: str, network: str) -> Body | None:
    service, name = reader.body(url), backend_name(url)
    if service is None or name is None:
        return None
    check = _check(reader.body((service.get("healthChecks") or [None])[0]))
    affinity = service.get("sessionAffinity")
    servers, seen = [], set()
    for b in service.get("backends") or []:
        group, body = reader.row(b.get("group")), reader.body(b.get("group"))
        if group is None or body is None or body.get("network") != network:
            continue  # another network's instances are out of this router's reach
        try:
            weight = round(min(max(float(b.get("capacityScaler", 1.0)), 0.0), 1.0) * 100)
        except (TypeError, ValueError):
            weight = 100
        for member, ip, port in _servers(session, group, body, service):
            if (ip, port) in seen:
                continue
            seen.add((ip, port))
            options = f" weight {weight}"
            if affinity == "GENERATED_COOKIE":
                options += f" cookie {member}"
            if check is not None:
                options += " check" + (f" port {check['port']}" if check["port"] else "") + \
                    (" check-ssl verify none" if check["ssl"] else "")
            servers.append({"name": member, "address": f"{ip}:{port}", "options": options})
    try:
        timeout = min(max(int(service.get("timeoutSec", 30)), 1), 86400)
    except (TypeError, ValueError):
        timeout = 30
    return {"name": name, "mode": "http", "balance": "source" if affinity == "CLIENT_IP" else "roundrobin",
            "cookie": affinity == "GENERATED_COOKIE", "timeout": timeout, "check": check, "servers": servers}


def _host_acl(pattern: str) -> tuple[int, str] | None:
    """(precedence, ACL criterion) of a host pattern; precedence sorts exact names first."""
    host = pattern.lower().split(":", 1)[0]
    if not _HOST.match(pattern.lower()) or host == "*":
        return None
    if host.startswith("*"):
        return 1, f"req.hdr(host),field(1,:),lower -m end {host[1:]}"
    return 0, f"req.hdr(host),field(1,:),lower -m str {host}"


def _path_acl(path: str) -> tuple[tuple[int, int], str] | None:
    if not isinstance(path, str) or not _PATH.match(path):
        return None
    if path.endswith("*"):
        return (-(len(path) - 1), 1), f"path -m beg {path[:-1]}"
    return (-len(path), 0), f"path -m str {path}"


def _routing(url_map: Body) -> tuple[list[str], list[tuple[str, list[str]]]]:
    """(ACL lines, [(service URL, ACL names), ...] in the order HAProxy must try them)."""
    acls: list[str] = []
    blocks: list[tuple[tuple[int, int], str | None, Body]] = []  # (precedence, host ACL name, matcher)
    matchers = {m.get("name"): m for m in url_map.get("pathMatchers") or [] if isinstance(m, dict)}
    for i, rule in enumerate(url_map.get("hostRules") or []):
        matcher = matchers.get(rule.get("pathMatcher"))
        if matcher is None:
            continue
        by_kind: dict[int, list[str]] = {}
        for host in rule.get("hosts") or []:
            acl = _host_acl(host) if isinstance(host, str) else None
            if acl is None and host == "*":
                blocks.append(((2, 0), None, matcher))
            elif acl is not None:
                by_kind.setdefault(acl[0], []).append(acl[1])
        for kind, criteria in sorted(by_kind.items()):
            for criterion in criteria:
                acls.append(f"acl host{i}_{kind} {criterion}")
            blocks.append(((kind, -max(len(c) for c in criteria)), f"host{i}_{kind}", matcher))
    rules: list[tuple[str, list[str]]] = []
    for n, (_, host_acl, matcher) in enumerate(sorted(blocks, key=lambda b: b[0])):
        paths = []
        for j, path_rule in enumerate(matcher.get("pathRules") or []):
            for k, path in enumerate(path_rule.get("paths") or []):
                path_acl = _path_acl(path)
                if path_acl is not None and isinstance(path_rule.get("service"), str):
                    paths.append((path_acl[0], f"path{n}_{j}_{k}", path_acl[1], path_rule["service"]))
        for _, name, criterion, service in sorted(paths):
            acls.append(f"acl {name} {criterion}")
            rules.append((service, [a for a in (host_acl, name) if a]))
        if isinstance(matcher.get("defaultService"), str):
            rules.append((matcher["defaultService"], [host_acl] if host_acl else []))
    return acls, rules


def _tls(reader: _Reader, proxy: Body, out: HttpBalancers) -> str | None:
    """The bind options of an HTTPS proxy (certificates written to ``out.files``); None without a
    usable certificate (a managed one still PROVISIONING)."""
    names = []
    for url in proxy.get("sslCertificates") or []:
        row = reader.row(url)
        key = store.find_optional(reader.session, row.project, KEYS, row.scope, row.name) if row else None
        pem = store.body_of(key) if key is not None else {}
        cert, private = pem.get("certificate", ""), pem.get("privateKey", "")
        if row is None or not _ok(row.name) or not _PEM.match(cert) or not _PEM.match(private):
            continue
        name = f"{'global' if row.scope == 'global' else row.scope.split('/', 1)[1]}-{row.name}.pem"
        out.files[f"{CERT_DIR}/{name}"] = cert + private
        names.append(name)
    if not names:
        return None
    options = " ssl " + " ".join(f"crt {n}" for n in names)
    policy = reader.body(proxy.get("sslPolicy"))
    if policy is not None:
        version = TLS_VERSIONS.get(policy.get("minTlsVersion", ""))
        options += f" ssl-min-ver {version}" if version else ""
        ciphers = [CIPHERS[f] for f in policy.get("enabledFeatures") or [] if f in CIPHERS]
        options += f" ciphers {':'.join(ciphers)}" if ciphers else ""
    return options


def _frontend(session: Session, reader: _Reader, rule: Resource, network: str, region: str,
              out: HttpBalancers, backends: dict[str, Body]) -> None:
    body = store.body_of(rule)
    proxy_row = reader.row(body.get("target"))
    proxy, url_map = reader.body(body.get("target")), reader.body((reader.body(body.get("target")) or {}).get("urlMap"))
    address, name = _ip(body.get("IPAddress")), _ok(rule.name)
    port = str(body.get("portRange", "")).split("-", 1)[0]
    if proxy_row is None or proxy is None or url_map is None or address is None or name is None or \
            not port.isdigit() or not 1 <= int(port) <= 65535 or _home(reader, url_map) != (network, region):
        return
    bind = f"{address}:{int(port)}"
    if proxy_row.collection == "targetHttpsProxies":
        tls = _tls(reader, proxy, out)
        if tls is None:
            return
        bind += tls
    default = backend_name(str(url_map.get("defaultService")))
    acls, rules = _routing(url_map)
    for service in sorted({str(url_map.get("defaultService")), *(s for s, _ in rules)}):
        bname = backend_name(str(service))
        if bname and bname not in backends:
            built = _backend(session, reader, str(service), network)
            if built is not None:
                backends[bname] = built
    use = [f"use_backend {backend_name(s)} if {' '.join(c)}" if c else f"use_backend {backend_name(s)}"
           for s, c in rules if backend_name(s) in backends]
    if default not in backends:
        return
    prefix = "gfr" if rule.scope == "global" else "fr"
    out.frontends.append({"name": f"{prefix}-{name}", "binds": [bind], "backend": default, "mode": "http",
                          "acls": acls, "rules": use})
    out.inputs.append(f'ip daddr {address} tcp dport {int(port)} accept comment "forwarding rule {name}"')


def balancers(session: Session, network: str, region: str, rules: list[Resource]) -> HttpBalancers:
    """The HTTP(S) balancers whose home is this router: among the project's global and regional
    forwarding ``rules`` (by scope, then name; the router's view reads them once for both kinds of
    balancer), those whose target is a target HTTP(S) proxy."""
    out = HttpBalancers()
    reader = _Reader(session)
    backends: dict[str, Body] = {}
    for rule in rules:
        target = parse_ref(str(store.body_of(rule).get("target", "")), project="")
        if target is not None and target.collection in PROXIES:
            _frontend(session, reader, rule, network, region, out, backends)
    out.backends = [backends[k] for k in sorted(backends)]
    return out
