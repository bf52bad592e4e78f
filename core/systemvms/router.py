"""The virtual router (CloudStack's VR): its whole configuration rendered from the database, and pushed.

One router serves one network in one region. From the rows of the database it renders:

* dnsmasq: a static DHCP lease per NIC of the network in the region (GCE's MAC for the address,
  the instance name as host name) and DNS for ``NAME.ZONE.c.PROJECT.internal``;
* nftables: the network's GCE firewall rules in the order they take effect (priority, then deny
  before allow), tags and service accounts resolved to instance addresses, the implied rules
  (deny all ingress, allow all egress), 1:1 NAT for access configs and source NAT for the rest;
* HAProxy: a frontend per TCP forwarding rule and a backend per target pool, with the pool's
  legacy HTTP health check (other forwarding rules are DNAT in nftables, spread by ``numgen``); and
  the HTTP(S) load balancers this router is home to (``core.systemvms.http_lb``), with their
  certificates' PEM files;
* sysctl: forwarding, and the connection tracking limit of the system VM template;
* routes (an ``ip -batch`` file): the ranges of peered networks, through their routers
  (``core.systemvms.peering``).

Rendering is a pure function of the database, so a file's checksum tells whether it changed: a
push sends only the files whose checksum differs from what the router holds.

Every value taken from a resource body is checked again here (addresses parsed, names matched,
paths restricted), so no field can inject lines into a configuration file.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from functools import cache, lru_cache
from typing import Any

import orjson
from jinja2 import Environment, PackageLoader, StrictUndefined
from sqlalchemy import select
from sqlalchemy.orm import Session

from core import ipam
from core.errors import NAME_REGEX
from core.hypervisors.base import DriverError
from core.jobs import JobContext
from core.links import parse_ref, url_of
from core.models import Resource, SystemVm
from core.resources import store
from core.resources.store import Body
from core.systemvms import http_lb, nat, peering, vms

DNSMASQ = "/etc/dnsmasq.d/gstack.conf"
NFTABLES = "/etc/nftables.conf"
HAPROXY = "/etc/haproxy/haproxy.cfg"
SYSCTL = "/etc/sysctl.d/90-gstack.conf"
ROUTES = "/etc/gstack/routes.batch"
UPSTREAM_DNS = ("8.8.8.8", "8.8.4.4")  # the zone's public resolvers (CloudStack's dns1/dns2)

_NAME = re.compile(NAME_REGEX + r"\Z")
_PORTS = re.compile(r"(\d{1,5})(?:-(\d{1,5}))?\Z")
_HTTP_PATH = re.compile(r"/[A-Za-z0-9._~!$&'()*+,;=:@%/?-]{0,1023}\Z")
_HOSTNAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?\Z")
_PROTOCOLS = {"tcp": 6, "udp": 17, "icmp": 1, "esp": 50, "ah": 51, "sctp": 132, "ipip": 4}
_PORTED = ("tcp", "udp", "sctp")
MAX_PROXIED_PORTS = 100


# -- what a router is rendered from --------------------------------------------------------------


@dataclass(frozen=True)
class GuestNic:
    instance: str
    url: str
    project: str
    zone: str
    ip: str
    mac: str
    tags: frozenset[str]
    service_accounts: frozenset[str]
    nat_ip: str | None
    fqdns: tuple[str, ...]
    domain_tag: str = ""


@dataclass(frozen=True)
class Subnet:
    name: str
    iface: str
    network: str
    netmask: str
    gateway: str
    cidr: str
    tag: str


@dataclass
class RouterView:
    """Everything a router's configuration depends on, read from the database."""

    name: str
    arch: str
    network_url: str
    project: str
    region: str
    mtu: int
    public_ip: str | None
    conntrack_max: int
    subnets: list[Subnet] = field(default_factory=list)
    nics: list[GuestNic] = field(default_factory=list)
    firewalls: list[Body] = field(default_factory=list)
    # (forwarding rule, target pool or None, http health check or None), by rule name
    balancers: list[tuple[Body, Body | None, Body | None]] = field(default_factory=list)
    http: http_lb.HttpBalancers = field(default_factory=http_lb.HttpBalancers)
    nat_gateways: list[nat.Gateway] = field(default_factory=list)
    peer_ranges: list[str] = field(default_factory=list)  # imported over peerings


def _ip(value: object) -> str | None:
    try:
        return str(ipaddress.IPv4Address(value)) if isinstance(value, str) else None
    except ValueError:
        return None


def _name(value: object) -> str | None:
    return value if isinstance(value, str) and _NAME.match(value) else None


def _instance_nics(session: Session, network_url: str, region: str) -> list[GuestNic]:
    rows = session.execute(select(Resource.name, Resource.project, Resource.scope, Resource.body).where(
        Resource.collection == "instances", Resource.region == region, Resource.body.contains(network_url)))
    keyed = [nic for row in rows for nic in _guest_nics(*row, network_url)]
    return [nic for _, nic in sorted(keyed, key=lambda kn: kn[0])]


@lru_cache(maxsize=1 << 16)
def _guest_nics(name: str, project: str, scope: str, body_json: str, network_url: str) -> tuple[tuple[int, GuestNic], ...]:
    """An instance's NICs on the network, each with its address as a sort key. A pure function of
    the stored row, cached: a render reads every instance of the network, and between two renders
    of a big network few of them change."""
    body = orjson.loads(body_json)
    zone = scope.split("/", 1)[1]
    out = []
    for nic in body.get("networkInterfaces", []):
        ip = _ip(nic.get("networkIP"))
        if nic.get("network") != network_url or ip is None or _name(name) is None:
            continue
        nat = next((_ip(ac.get("natIP")) for ac in nic.get("accessConfigs") or [] if _ip(ac.get("natIP"))), None)
        fqdns = [f"{name}.{zone}.c.{project}.internal"]
        custom = body.get("hostname")
        if isinstance(custom, str) and _HOSTNAME.match(custom) and custom not in fqdns:
            fqdns.append(custom)
        tags = {t for t in (body.get("tags") or {}).get("items") or [] if _name(t)}
        accounts = {sa.get("email") for sa in body.get("serviceAccounts") or [] if isinstance(sa, dict)}
        out.append((int(ipaddress.IPv4Address(ip)), GuestNic(
            name, url_of(project, scope, "instances", name), project, zone, ip, ipam.mac_for(ip), frozenset(tags),
            frozenset(a for a in accounts if a), nat, tuple(fqdns))))
    return tuple(out)


def _by_url(session: Session, url: object, collection: str, project: str) -> Body | None:
    ref = parse_ref(url, project=project) if isinstance(url, str) else None
    if ref is None or ref.collection != collection:
        return None
    row = store.find_optional(session, ref.project, collection, ref.scope, ref.name)
    return store.body_of(row) if row is not None else None


def _balancers(session: Session, project: str, region: str, network_url: str,
               nics: list[GuestNic]) -> list[tuple[Body, Body | None, Body | None]]:
    by_url = {n.url: n for n in nics}
    out = []
    for row in session.scalars(select(Resource).where(
            Resource.project == project, Resource.collection == "forwardingRules",
            Resource.scope == f"regions/{region}").order_by(Resource.name)):
        rule = store.body_of(row)
        pool = _by_url(session, rule.get("target"), "targetPools", project)
        check = _by_url(session, ((pool or {}).get("healthChecks") or [None])[0], "httpHealthChecks", project)
        ours = rule.get("network") == network_url or any(u in by_url for u in (pool or {}).get("instances") or [])
        if ours:
            out.append((rule, pool, check))
    return out


def view(session: Session, vm: SystemVm) -> RouterView:
    ref = parse_ref(vm.network_url or "", project=vm.project or "")
    network = store.find_optional(session, ref.project, "networks", "global", ref.name) if ref else None
    net_body = store.body_of(network) if network is not None else {}
    v = RouterView(vm.name, vm.arch, vm.network_url or "", vm.project or "", vm.region, int(net_body.get("mtu") or 1460),
                   vm.public_ip, vm.conntrack_max or vms.TEMPLATES[vm.arch].conntrack_max)
    for i, sub in enumerate(vms.guest_subnets(session, vm), start=1):
        body = store.body_of(sub)
        net = ipaddress.IPv4Network(body["ipCidrRange"])
        v.subnets.append(Subnet(sub.name, f"eth{i}", str(net.network_address), str(net.netmask),
                                vms.gateway_of(body), str(net), f"subnet{i}"))
    nics = _instance_nics(session, v.network_url, v.region)
    domains = sorted({(n.zone, n.project) for n in nics})
    v.nics = [replace(n, domain_tag=f"dom{domains.index((n.zone, n.project))}") for n in nics]
    v.firewalls = [store.body_of(r) for r in session.scalars(select(Resource).where(
        Resource.project == v.project, Resource.collection == "firewalls", Resource.scope == "global",
        Resource.body.contains(v.network_url)).order_by(Resource.name))]
    v.firewalls = [f for f in v.firewalls if f.get("network") == v.network_url]
    v.balancers = _balancers(session, v.project, v.region, v.network_url, v.nics)
    v.http = http_lb.balancers(session, v.project, v.network_url, v.region)
    v.nat_gateways = nat.gateways(session, v.network_url, v.region)
    v.peer_ranges = [block for block, _ in peering.imported(session, v.network_url)]
    return v


def _subnet_of(v: RouterView, ip: str) -> str | None:
    address = ipaddress.IPv4Address(ip)
    return next((s.name for s in v.subnets if address in ipaddress.IPv4Network(s.cidr)), None)


def stranded(v: RouterView) -> list[str]:
    """Instance addresses with neither an external address nor a Cloud NAT: no way out."""
    return nat.rules(v.nat_gateways, [(n.ip, _subnet_of(v, n.ip)) for n in v.nics if not n.nat_ip],
                     vms.PUBLIC_IFACE)[1]


# -- nftables ------------------------------------------------------------------------------------


def _set(items: list[str]) -> str:
    return items[0] if len(items) == 1 else "{ " + ", ".join(items) + " }"


def _addresses(values: list[Any]) -> list[str] | None:
    """Merged IPv4 ranges (nft refuses overlapping intervals); None when they cover everything."""
    nets: list[ipaddress.IPv4Network] = []
    for value in values:
        try:
            nets.append(ipaddress.IPv4Network(value, strict=False))
        except (ValueError, TypeError):
            continue  # IPv6 ranges apply to IPv6 traffic, which this router does not carry
    merged = list(ipaddress.collapse_addresses(nets))
    if any(n.prefixlen == 0 for n in merged):
        return None
    return [str(n.network_address) if n.prefixlen == 32 else str(n) for n in merged]


def _peer(direction: str, values: list[Any]) -> str | None:
    """``ip saddr|daddr {...} `` for the ranges; "" when they cover everything, None when none is IPv4."""
    nets = _addresses(values)
    if nets is None:
        return ""
    return f"ip {direction} {_set(nets)} " if nets else None


def _spans(values: Iterable[object] | None, lowest: int = 0) -> list[tuple[int, int]] | None:
    """GCE port specs ("22", "8000-8080") merged into sorted spans; None when one is malformed."""
    spans: list[tuple[int, int]] = []
    for value in values or []:
        m = _PORTS.match(str(value))
        if not m:
            return None
        lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
        if not lowest <= lo <= hi <= 65535:
            return None
        spans.append((lo, hi))
    merged: list[list[int]] = []
    for lo, hi in sorted(spans):
        if merged and lo <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], hi)
        else:
            merged.append([lo, hi])
    return [(lo, hi) for lo, hi in merged]


def _span_text(lo: int, hi: int) -> str:
    return f"{lo}" if lo == hi else f"{lo}-{hi}"


def _ports(values: Iterable[object] | None) -> str | None:
    """``tcp dport`` operand for GCE's port list; "" for every port, None when malformed."""
    spans = _spans(values)
    if spans is None:
        return None
    if not spans or spans[0][0] <= 1 and spans[-1][1] == 65535 and len(spans) == 1:
        return ""
    return _set([_span_text(lo, hi) for lo, hi in spans])


def _l4(entry: Body) -> str | None:
    """The match of one allowed/denied entry; "" matches every protocol, None is malformed."""
    proto = str(entry.get("IPProtocol", "")).lower()
    if proto == "all":
        return ""
    if proto in _PORTED:
        ports = _ports(entry.get("ports"))
        if ports is None:
            return None
        return f"{proto} dport {ports}" if ports else f"meta l4proto {proto}"
    if proto == "icmp":
        return "meta l4proto icmp"
    if proto in _PROTOCOLS:
        return f"meta l4proto {_PROTOCOLS[proto]}"
    if proto.isdigit() and int(proto) <= 255:
        return f"meta l4proto {int(proto)}"
    return None


def _matching(nics: list[GuestNic], tags: Iterable[str] | None, accounts: Iterable[str] | None) -> list[str]:
    tag_set, account_set = set(tags or []), set(accounts or [])
    ips = {n.ip for n in nics if n.tags & tag_set or n.service_accounts & account_set}
    return sorted(ips, key=ipaddress.IPv4Address)


def precedence(rule: Body) -> tuple[int, int, str]:
    """GCE: the lowest priority number wins; at equal priority a deny wins over an allow."""
    return int(rule.get("priority", 1000)), 0 if rule.get("denied") else 1, str(rule.get("name", ""))


def firewall_chains(v: RouterView) -> tuple[list[str], list[str]]:
    """(ingress, egress) nft rules, in the order the GCE rules take effect."""
    ingress: list[str] = []
    egress: list[str] = []
    for rule in sorted((f for f in v.firewalls if _name(f.get("name"))), key=precedence):
        name, priority = rule["name"], precedence(rule)[0]
        tag = f'comment "{name} p{priority}"'
        if rule.get("disabled"):
            continue
        inbound = rule.get("direction", "INGRESS") == "INGRESS"
        deny = bool(rule.get("denied"))
        verdict = "drop" if deny else ("accept" if inbound else "return")
        chain = ingress if inbound else egress
        # Targets: every instance of the network (the chain is only entered for them) or the tagged ones.
        here = "daddr" if inbound else "saddr"
        if rule.get("targetTags") or rule.get("targetServiceAccounts"):
            targets = _matching(v.nics, rule.get("targetTags"), rule.get("targetServiceAccounts"))
            if not targets:
                continue  # no instance carries the tag: the rule applies to nothing
            target = f"ip {here} {_set(targets)} "
        else:
            target = ""
        # Peers: GCE ORs source ranges and source tags, so each gives its own nft rule.
        peers: list[str | None] = []
        if inbound:
            ranges, tags = rule.get("sourceRanges"), rule.get("sourceTags") or rule.get("sourceServiceAccounts")
            if ranges or not tags:
                peers.append(_peer("saddr", ranges or ["0.0.0.0/0"]))
            if tags:
                ips = _matching(v.nics, rule.get("sourceTags"), rule.get("sourceServiceAccounts"))
                peers.append(f"ip saddr {_set(ips)} " if ips else None)
        else:
            peers.append(_peer("daddr", rule.get("destinationRanges") or ["0.0.0.0/0"]))
        entries = rule.get("denied") if deny else rule.get("allowed")
        for entry in entries or []:
            l4 = _l4(entry) if isinstance(entry, dict) else None
            if l4 is None:
                continue
            for peer in peers:
                if peer is not None:
                    chain.append(f"{peer}{target}{l4 + ' ' if l4 else ''}counter {verdict} {tag}")
    return ingress, egress


def _rule_ports(rule: Body) -> str | None:
    """A forwarding rule's ports as an nft operand ("" for all ports), None when malformed."""
    spans = _spans([rule["portRange"]] if rule.get("portRange") else rule.get("ports") or [], lowest=1)
    return None if spans is None else _ports([_span_text(lo, hi) for lo, hi in spans])


def _backends(v: RouterView, pool: Body | None) -> list[GuestNic]:
    by_url = {n.url: n for n in v.nics}
    return [by_url[u] for u in (pool or {}).get("instances") or [] if u in by_url]


def _proxied(rule: Body) -> bool:
    """TCP rules with a few ports go through HAProxy (a listener per port, health checked); the rest
    (UDP and other protocols, wide port ranges) are DNAT spread over the backends by nftables."""
    spans = _spans([rule["portRange"]] if rule.get("portRange") else rule.get("ports") or [], lowest=1)
    if not spans:
        return False
    return str(rule.get("IPProtocol", "TCP")).upper() == "TCP" and sum(hi - lo + 1 for lo, hi in spans) <= MAX_PROXIED_PORTS


def nat_rules(v: RouterView) -> tuple[list[str], list[str], list[str]]:
    """(input, dnat, snat) nft rules: load balancer frontends, 1:1 NAT, source NAT."""
    inputs, dnat, snat = [], [], []
    for nic in v.nics:
        if nic.nat_ip:
            dnat.append(f'ip daddr {nic.nat_ip} dnat to {nic.ip} comment "{nic.instance} 1:1 NAT"')
            snat.append(f'oifname "{vms.PUBLIC_IFACE}" ip saddr {nic.ip} snat to {nic.nat_ip} '
                        f'comment "{nic.instance} 1:1 NAT"')
    hidden = [(n.ip, _subnet_of(v, n.ip)) for n in v.nics if not n.nat_ip]
    snat += nat.rules(v.nat_gateways, hidden, vms.PUBLIC_IFACE)[0]
    for rule, pool, _check in v.balancers:
        name, address, ports = _name(rule.get("name")), _ip(rule.get("IPAddress")), _rule_ports(rule)
        proto = str(rule.get("IPProtocol", "TCP")).lower()
        if name is None or address is None or ports is None or (proto not in _PROTOCOLS and proto != "l3_default"):
            continue
        if _proxied(rule):
            inputs.append(f'ip daddr {address} tcp dport {ports} accept comment "forwarding rule {name}"')
            continue
        backends = _backends(v, pool)
        if not backends:
            continue
        number = proto if proto in ("tcp", "udp", "icmp") else str(_PROTOCOLS.get(proto, ""))
        match = (f"{proto} dport {ports} " if ports and proto in _PORTED
                 else f"meta l4proto {number} " if number else "")
        spread = (f"numgen inc mod {len(backends)} map {{ "
                  + ", ".join(f"{i} : {b.ip}" for i, b in enumerate(backends)) + " }")
        dnat.append(f'ip daddr {address} {match}dnat to {spread} comment "forwarding rule {name}"')
    return inputs, dnat, snat


# -- HAProxy -------------------------------------------------------------------------------------


def _health_check(check: Body | None) -> Body | None:
    if check is None:
        return None
    path = check.get("requestPath") or "/"
    host = check.get("host") or ""
    if not _HTTP_PATH.match(path) or (host and not _HOSTNAME.match(host)):
        return None

    def number(key: str, default: int, lo: int, hi: int) -> int:
        try:
            return min(max(int(check.get(key, default)), lo), hi)
        except (TypeError, ValueError):
            return default

    return {"kind": "http", "path": path, "host": host, "version": "HTTP/1.1" if host else "HTTP/1.0",
            "port": number("port", 80, 1, 65535), "interval": number("checkIntervalSec", 5, 1, 300),
            "timeout": number("timeoutSec", 5, 1, 300), "rise": number("healthyThreshold", 2, 1, 10),
            "fall": number("unhealthyThreshold", 2, 1, 10)}


def haproxy_model(v: RouterView) -> tuple[list[Body], list[Body]]:
    frontends, backends = [], {}
    for rule, pool, check in v.balancers:
        name, address = _name(rule.get("name")), _ip(rule.get("IPAddress"))
        pool_name = _name((pool or {}).get("name"))
        if name is None or address is None or pool_name is None or not _proxied(rule):
            continue
        backend = f"tp-{pool_name}"
        spans = _spans([rule["portRange"]] if rule.get("portRange") else rule.get("ports"), lowest=1)  # _proxied: some
        frontends.append({"name": f"fr-{name}", "binds": [f"{address}:{_span_text(lo, hi)}" for lo, hi in spans or []],
                          "backend": backend, "mode": None, "acls": [], "rules": []})
        if backend not in backends:
            affinity = (pool or {}).get("sessionAffinity", "NONE")
            hc = _health_check(check)
            options = f" check port {hc['port']}" if hc else ""
            backends[backend] = {
                "name": backend, "mode": None, "balance": "roundrobin" if affinity == "NONE" else "source",
                "check": hc, "cookie": False, "timeout": None,
                "servers": [{"name": b.instance, "address": b.ip, "options": options} for b in _backends(v, pool)]}
    return frontends + v.http.frontends, [backends[k] for k in sorted(backends)] + v.http.backends


# -- rendering -----------------------------------------------------------------------------------


@cache
def _templates() -> Environment:
    return Environment(loader=PackageLoader("core.systemvms", "render"), autoescape=False, trim_blocks=True,
                       lstrip_blocks=True, keep_trailing_newline=True, undefined=StrictUndefined)


def render_view(v: RouterView) -> dict[str, str]:
    """The router's files (path in the VM -> content), a pure function of the view."""
    env = _templates()
    common = {"router": v.name, "network": v.network_url.rsplit("/projects/", 1)[-1], "region": v.region,
              "public_iface": vms.PUBLIC_IFACE, "arch": v.arch}
    domains = sorted({(n.domain_tag, n.zone, n.project) for n in v.nics})
    ingress, egress = firewall_chains(v)
    inputs, dnat, snat = nat_rules(v)
    inputs += v.http.inputs
    frontends, backends = haproxy_model(v)
    peer_ranges = _addresses(v.peer_ranges) or []  # an imported 0.0.0.0/0 is not routed (None)
    return {**v.http.files,
        DNSMASQ: env.get_template("dnsmasq.conf.j2").render(
            **common, subnets=v.subnets, nics=v.nics, mtu=v.mtu, upstream_dns=UPSTREAM_DNS,
            lease_max=max(len(v.nics), 1) * 2,
            domains=[{"tag": t, "name": f"{z}.c.{p}.internal",
                      "search": [f"{z}.c.{p}.internal", f"c.{p}.internal", "google.internal"]}
                     for t, z, p in domains]),
        NFTABLES: env.get_template("nftables.conf.j2").render(
            **common, vm_addrs=[n.ip for n in v.nics], ingress=ingress, egress=egress, input=inputs,
            dnat=dnat, snat=snat, stranded=stranded(v), peer_ranges=peer_ranges,
            peer_set=_set(peer_ranges) if peer_ranges else ""),
        HAPROXY: env.get_template("haproxy.cfg.j2").render(
            **common, frontends=frontends, backends=backends, maxconn=min(v.conntrack_max // 64, 65536),
            cert_dir=http_lb.CERT_DIR),
        SYSCTL: env.get_template("sysctl.conf.j2").render(**common, conntrack_max=v.conntrack_max,
                                                          proxy_arp=bool(peer_ranges)),
        ROUTES: env.get_template("routes.batch.j2").render(**common, routes=peer_ranges),
    }


def render(session: Session, vm: SystemVm) -> dict[str, str]:
    return render_view(view(session, vm))


def digest(content: str) -> str:
    return hashlib.sha256(content.encode()).hexdigest()


# -- pushing -------------------------------------------------------------------------------------


def push(ctx: JobContext, uid: int, *, full: bool = False) -> list[str]:
    """Render the router's files and push those that changed (all of them with ``full``: a new VM).

    Records the rendered version (bumped when a checksum changes) and, once the driver took the
    files, what the router holds. A router that does not run is left to its deploy, which pushes
    everything; a failed push is recorded and retried by the next sync or the watchdog.
    """
    with ctx.write() as s:
        vm, res = vms.load(s, uid)
        if vm is None or vm.kind != vms.ROUTER:
            return []
        files = render(s, vm)
        desired = {path: digest(content) for path, content in files.items()}
        if desired != vms.checksums(vm.config_checksums):
            vm.config_version += 1
            vm.config_checksums = vms.dump(desired)
        if res is None or vm.state != vms.RUNNING or res.host_id is None:  # res: never None with a vm
            return []
        held = {} if full else vms.checksums(vm.pushed_checksums)
        changed = {path: content for path, content in files.items() if held.get(path) != desired[path]}
        version, host_id = vm.config_version, res.host_id
        if not changed:
            vm.pushed_version = version
            return []
        driver, ref = vms.driver_for(ctx.drivers, s, host_id)
    try:
        driver.push_config(ref, uid, changed)
    except DriverError as exc:
        with ctx.write() as s:
            vm, _ = vms.load(s, uid)
            if vm is not None:
                vm.last_error = f"configuration push failed: {exc}"[:400]
        ctx.warn("SYSTEM_VM_PUSH_FAILED", f"{ref.name}: {exc}")
        return []
    with ctx.write() as s:
        vm, res = vms.load(s, uid)
        if vm is None or res is None or res.host_id != host_id:
            return []
        held = {} if full else vms.checksums(vm.pushed_checksums)
        held.update({path: desired[path] for path in changed})
        vm.pushed_checksums = vms.dump({p: c for p, c in held.items() if p in desired})
        vm.pushed_version = version
        vm.pushed_at = time.time()
        vm.last_error = None
    return sorted(changed)
