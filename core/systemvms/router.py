"""The virtual router (CloudStack's VR): its whole configuration rendered from the database, and pushed.

One router serves one network in one region. From the rows of the database it renders:

* dnsmasq: a static DHCP lease per NIC of the network in the region (GCE's MAC for the address,
  the instance name as host name) and DNS for ``NAME.ZONE.c.PROJECT.internal``, in one file per
  instance (:mod:`core.systemvms.guests`) the main file points dnsmasq at;
* nftables: the network's GCE firewall rules in the order they take effect (priority, then deny
  before allow), tags and service accounts as named sets the instances' files fill, the implied
  rules (deny all ingress, allow all egress), 1:1 NAT for access configs (in the instances' files)
  and Cloud NAT for the rest;
* HAProxy: a frontend per TCP forwarding rule and a backend per target pool, with the pool's
  legacy HTTP health check (other forwarding rules are DNAT in nftables, spread by ``numgen``); and
  the HTTP(S) load balancers this router is home to (``core.systemvms.http_lb``), with their
  certificates' PEM files;
* sysctl: forwarding, and the connection tracking limit of the system VM template;
* routes (an ``ip -batch`` file): the ranges of peered networks, through their routers
  (``core.systemvms.peering``).

Rendering is a pure function of the database, so a file's checksum tells whether it changed: a
push sends only the files whose checksum differs from what the router holds. The main files read
no instance (but a target pool's), so a sync of one instance's change renders them and that
instance's files only (see :func:`push`).

Every value taken from a resource body is checked again here (addresses parsed, names matched,
paths restricted), so no field can inject lines into a configuration file.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined
from sqlalchemy import and_, bindparam, literal, or_, select
from sqlalchemy.orm import Session

from core.db import read_only
from core.errors import NAME_REGEX
from core.links import parse_ref
from core.models import Resource, SystemVm
from core.prepared import Prepared
from core.resources import store
from core.resources.store import Body
from core.systemvms import guests, http_lb, nat, peering, vms
from core.systemvms.guests import GuestNic

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
    domains: list[str] = field(default_factory=list)  # "ZONE PROJECT" of the guests' NICs
    pool_members: dict[str, GuestNic] = field(default_factory=dict)  # target pools' instances here, by URL
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


def _by_url(session: Session, url: object, collection: str, project: str) -> Body | None:
    ref = parse_ref(url, project=project) if isinstance(url, str) else None
    if ref is None or ref.collection != collection:
        return None
    row = store.find_optional(session, ref.project, collection, ref.scope, ref.name)
    return store.body_of(row) if row is not None else None


def _pool_members(session: Session, pool: Body | None, network_url: str, region: str) -> dict[str, GuestNic]:
    """A target pool's instances with a NIC on the network in this region, by URL (looked up by name)."""
    out: dict[str, GuestNic] = {}
    for url in (pool or {}).get("instances") or []:
        ref = parse_ref(url, project="") if isinstance(url, str) else None
        if ref is None or ref.collection != "instances":
            continue
        row = store.find_optional(session, ref.project, "instances", ref.scope, ref.name)
        for nic in guests.nics_of_row(row, network_url) if row is not None and row.region == region else []:
            if nic.url == url:  # a pool names its instances by URL
                out[url] = nic
    return out


def _balancers(session: Session, v: RouterView, rules: list[Resource]) -> list[tuple[Body, Body | None, Body | None]]:
    """The TCP/UDP balancers among the region's forwarding ``rules`` (by name) this router serves."""
    out = []
    for row in rules:
        rule = store.body_of(row)
        pool = _by_url(session, rule.get("target"), "targetPools", v.project)
        check = _by_url(session, ((pool or {}).get("healthChecks") or [None])[0], "httpHealthChecks", v.project)
        members = _pool_members(session, pool, v.network_url, v.region)
        if rule.get("network") == v.network_url or members:
            out.append((rule, pool, check))
            v.pool_members.update(members)
    return out


_VIEW_ROWS = ("subnetworks", "firewalls", "forwardingRules", "routers")


_NETWORK_ROWS = Prepared(select(*Resource.__table__.columns).where(or_(
    and_(Resource.collection == "subnetworks", Resource.scope == bindparam("region_scope"),
         Resource.body.contains(bindparam("network_url"))),
    and_(Resource.project == bindparam("project"), Resource.collection == "firewalls", Resource.scope == "global",
         Resource.body.contains(bindparam("network_url"))),
    and_(Resource.project == bindparam("project"), Resource.collection == "forwardingRules",
         Resource.scope.in_([literal("global"), bindparam("region_scope")])),
    nat.ROUTERS_ON,
)).order_by(Resource.collection, Resource.scope, Resource.name))


def _network_rows(session: Session, vm: SystemVm, v: RouterView) -> dict[str, list[Resource]]:
    """The rows of the network's side the main files are rendered from, by collection: its
    subnetworks in the region (those of ``vms.guest_subnets``, which a router's NICs are made of),
    its firewall rules, the project's global and regional forwarding rules, and the region's Cloud
    Routers on it (their NATs). One statement instead of four, each collection in the order its own
    read had (scope, then name: the database's collation, as the NICs' order was made with), built
    once; its rows are read-only copies (the render changes none), not the session's objects."""
    rows: dict[str, list[Resource]] = {c: [] for c in _VIEW_ROWS}
    params = {"region_scope": f"regions/{v.region}", "network_url": v.network_url, "project": v.project,
              **nat.routers_on(v.network_url, v.region)}
    for found in _NETWORK_ROWS.in_session(session, params):
        row = read_only(Resource, found)
        rows[row.collection].append(row)
    return rows


def view(session: Session, vm: SystemVm, *, domains: bool = True, network: Resource | None = None) -> RouterView:
    """What the router's main files are rendered from: the network's rows, none of its instances
    but the target pools' (the guests' DNS domains come from what the router was given; without
    ``domains`` they are left for the caller, who reads them after giving it more). ``network``:
    the network's row, when the caller read it in this transaction (it is not read again)."""
    ref = parse_ref(vm.network_url or "", project=vm.project or "")
    if network is None and ref is not None:
        network = store.find_optional(session, ref.project, "networks", "global", ref.name)
    net_body = store.body_of(network) if network is not None else {}
    v = RouterView(vm.name, vm.arch, vm.network_url or "", vm.project or "", vm.region, int(net_body.get("mtu") or 1460),
                   vm.public_ip, vm.conntrack_max or vms.TEMPLATES[vm.arch].conntrack_max)
    rows = _network_rows(session, vm, v)
    for i, sub in enumerate(vms.guest_subnets_among(vm, rows["subnetworks"]), start=1):
        body = store.body_of(sub)
        net = ipaddress.IPv4Network(body["ipCidrRange"])
        v.subnets.append(Subnet(sub.name, f"eth{i}", str(net.network_address), str(net.netmask),
                                vms.gateway_of(body), str(net), f"subnet{i}"))
    if domains:
        v.domains = guests.domains(session, vm.uid)
    v.firewalls = [f for f in map(store.body_of, rows["firewalls"]) if f.get("network") == v.network_url]
    rules = rows["forwardingRules"]  # read once for both kinds of balancer
    v.balancers = _balancers(session, v, [r for r in rules if r.scope == f"regions/{v.region}"])
    v.http = http_lb.balancers(session, v.network_url, v.region, rules)
    v.nat_gateways = nat.gateways(session, v.network_url, v.region, rows["routers"])
    v.peer_ranges = [block for block, _ in peering.imported(session, v.network_url,
                                                             net_body if network is not None else None)]
    return v


def _nat_sets(v: RouterView) -> list[tuple[str, nat.Gateway]]:
    return [(f"natgw{i}", gw) for i, gw in enumerate(v.nat_gateways)]


def _rule_sets(v: RouterView) -> list[tuple[Body, guests.GuestSet | None, guests.GuestSet | None]]:
    """The enabled firewall rules in the order they take effect, each with the sets of its targets and
    sources by tag or service account (None: the rule names none)."""
    out = []
    for i, rule in enumerate(sorted((f for f in v.firewalls if _name(f.get("name")) and not f.get("disabled")),
                                    key=precedence)):
        inbound = rule.get("direction", "INGRESS") == "INGRESS"
        sources = _guest_set(f"fw{i}_from", rule.get("sourceTags"), rule.get("sourceServiceAccounts")) if inbound else None
        out.append((rule, _guest_set(f"fw{i}_to", rule.get("targetTags"), rule.get("targetServiceAccounts")), sources))
    return out


def _guest_set(name: str, tags: object, accounts: object) -> guests.GuestSet | None:
    if not tags and not accounts:
        return None
    return guests.GuestSet(f"{guests.FILTER} {name}", frozenset(_strings(tags)), frozenset(_strings(accounts)))


def _strings(values: object) -> list[str]:
    return [x for x in values if isinstance(x, str)] if isinstance(values, list) else []


def context(v: RouterView) -> guests.Context:
    """The network's side of every instance's file."""
    sets = tuple(s for _, *pair in _rule_sets(v) for s in pair if s is not None)
    return guests.Context(vms.PUBLIC_IFACE, tuple((s.name, s.cidr) for s in v.subnets),
                          tuple((f"{guests.NAT} {name}", gw.subnets) for name, gw in _nat_sets(v)), sets)


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


def precedence(rule: Body) -> tuple[int, int, str]:
    """GCE: the lowest priority number wins; at equal priority a deny wins over an allow."""
    return int(rule.get("priority", 1000)), 0 if rule.get("denied") else 1, str(rule.get("name", ""))


def firewall_chains(v: RouterView) -> tuple[list[str], list[str]]:
    """(ingress, egress) nft rules, in the order the GCE rules take effect."""
    ingress: list[str] = []
    egress: list[str] = []
    for rule, targets, sources in _rule_sets(v):
        name, priority = rule["name"], precedence(rule)[0]
        tag = f'comment "{name} p{priority}"'
        inbound = rule.get("direction", "INGRESS") == "INGRESS"
        deny = bool(rule.get("denied"))
        verdict = "drop" if deny else ("accept" if inbound else "return")
        chain = ingress if inbound else egress
        # Targets: every instance of the network (the chain is only entered for them) or those in the
        # rule's set (filled by the instances' files; an empty set matches nothing).
        here = "daddr" if inbound else "saddr"
        target = f"ip {here} @{targets.name.split()[1]} " if targets else ""
        # Peers: GCE ORs source ranges and source tags, so each gives its own nft rule.
        peers: list[str | None] = []
        if inbound:
            ranges = rule.get("sourceRanges")
            if ranges or not sources:
                peers.append(_peer("saddr", ranges or ["0.0.0.0/0"]))
            if sources:
                peers.append(f"ip saddr @{sources.name.split()[1]} ")
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
    return [v.pool_members[u] for u in (pool or {}).get("instances") or [] if u in v.pool_members]


def _proxied(rule: Body) -> bool:
    """TCP rules with a few ports go through HAProxy (a listener per port, health checked); the rest
    (UDP and other protocols, wide port ranges) are DNAT spread over the backends by nftables."""
    spans = _spans([rule["portRange"]] if rule.get("portRange") else rule.get("ports") or [], lowest=1)
    if not spans:
        return False
    return str(rule.get("IPProtocol", "TCP")).upper() == "TCP" and sum(hi - lo + 1 for lo, hi in spans) <= MAX_PROXIED_PORTS


def nat_rules(v: RouterView) -> tuple[list[str], list[str], list[str]]:
    """(input, dnat, snat) nft rules: load balancer frontends, Cloud NAT (1:1 NAT is in the instances' files)."""
    inputs: list[str] = []
    dnat: list[str] = []
    snat = [nat.rule(name, gw, vms.PUBLIC_IFACE) for name, gw in _nat_sets(v)]
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
    ingress, egress = firewall_chains(v)
    inputs, dnat, snat = nat_rules(v)
    inputs += v.http.inputs
    frontends, backends = haproxy_model(v)
    peer_ranges = _addresses(v.peer_ranges) or []  # an imported 0.0.0.0/0 is not routed (None)
    return {**v.http.files,
        DNSMASQ: env.get_template("dnsmasq.conf.j2").render(
            **common, subnets=v.subnets, mtu=v.mtu, upstream_dns=UPSTREAM_DNS,
            lease_max=max(sum(ipaddress.IPv4Network(s.cidr).num_addresses for s in v.subnets), 1),
            dhcp_dir=guests.DHCP_DIR, dns_dir=guests.DNS_DIR,
            domains=[{"tag": guests.domain_tag(d), "name": f"{z}.c.{p}.internal",
                      "search": [f"{z}.c.{p}.internal", f"c.{p}.internal", "google.internal"]}
                     for d in v.domains for z, p in [d.split(" ", 1)]]),
        NFTABLES: env.get_template("nftables.conf.j2").render(
            **common, ingress=ingress, egress=egress, input=inputs, dnat=dnat, snat=snat,
            guest_sets=[s.name.split()[1] for _, *pair in _rule_sets(v) for s in pair if s is not None],
            nat_sets=[name for name, _ in _nat_sets(v)], guest_files=f"{guests.NFT_DIR}/*.nft", peer_ranges=peer_ranges,
            peer_set=_set(peer_ranges) if peer_ranges else ""),
        HAPROXY: env.get_template("haproxy.cfg.j2").render(
            **common, frontends=frontends, backends=backends, maxconn=min(v.conntrack_max // 64, 65536),
            cert_dir=http_lb.CERT_DIR),
        SYSCTL: env.get_template("sysctl.conf.j2").render(**common, conntrack_max=v.conntrack_max,
                                                          proxy_arp=bool(peer_ranges)),
        ROUTES: env.get_template("routes.batch.j2").render(**common, routes=peer_ranges),
    }


def guest_files(session: Session, v: RouterView) -> dict[int, dict[str, str]]:
    """Every instance's files (a scan of the network's instances in the region), by instance uid;
    sets ``v.domains`` from them."""
    gctx = context(v)
    out: dict[int, dict[str, str]] = {}
    domains: set[str] = set()
    for row in guests.network_instances(session, v.network_url, v.region):
        nics = guests.nics_of_row(row, v.network_url)
        if nics:
            out[row.uid] = guests.files(gctx, row.uid, nics)
            domains.update(n.domain for n in nics)
    v.domains = sorted(domains)
    return out


def render(session: Session, vm: SystemVm) -> dict[str, str]:
    """The router's whole configuration rendered afresh: main files and every instance's."""
    v = view(session, vm)
    files = {path: text for each in guest_files(session, v).values() for path, text in each.items()}
    return {**render_view(v), **files}


def digest(content: str) -> str:
    return hashlib.sha256(content.encode()).hexdigest()
