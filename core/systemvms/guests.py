"""A router's per-instance configuration: one file per instance, so one instance's change renders
and pushes one file.

Everything a router knows of one instance NIC is a few lines that depend only on that instance's row
and on the network's context (its firewall rules' tag and service account sets, its subnetworks and
Cloud NATs): its DHCP host entry, its DNS record, and its nftables entries (the address in the
``vm_addrs`` set, in the sets of the firewall rules whose tags or service accounts it carries, in its
Cloud NAT's set or ``no_egress``; its 1:1 NAT rules). They go to one file per instance that the
router's main files include (dnsmasq's ``dhcp-hostsdir`` and ``hostsdir``, nftables' ``include``),
named by the instance's uid; a removed instance's files are removed (pushed as None): emptied, they
would pile up in the router with every instance it ever served, each read again at every reload.

The main files name the sets; a change of the context renames or refills them, so it renders every
instance again (see :mod:`core.systemvms.sync`).
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Select, bindparam, delete, insert, select, text, update
from sqlalchemy.orm import Session

from core import ipam
from core.db import loaded, read_only
from core.errors import NAME_REGEX
from core.links import parse_ref, url_of
from core.models import IpAllocation, Resource
from core.models.systemvm import RouterGuest
from core.prepared import Prepared, among, json_ids, write_back
from core.resources import store

DHCP_DIR = "/etc/gstack/dhcp-hosts"  # dnsmasq dhcp-hostsdir: one dhcp-host per line, re-read on change
DNS_DIR = "/etc/gstack/dns-hosts"  # dnsmasq hostsdir: /etc/hosts lines, re-read on change
NFT_DIR = "/etc/gstack/nft.d"  # included by the main nftables file
FILTER, NAT = "gstack_filter", "gstack_nat"  # the main file's nftables tables

_NAME = re.compile(NAME_REGEX + r"\Z")
_HOSTNAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?\Z")


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

    @property
    def domain(self) -> str:
        """Its DNS domain's key (also its DHCP tag's suffix): zone and project."""
        return f"{self.zone} {self.project}"


def domain_tag(domain: str) -> str:
    """The dnsmasq tag of a domain: named after it, so it stays put as instances come and go."""
    return "dom." + domain.replace(" ", ".")


@dataclass(frozen=True)
class GuestSet:
    """An nftables set the main file declares and instances fill: a firewall rule's targets or
    sources (instances with one of the tags or service accounts). ``name`` is "TABLE SET"."""

    name: str
    tags: frozenset[str]
    accounts: frozenset[str]


@dataclass(frozen=True)
class Context:
    """What an instance's file depends on besides the instance: the network's side of it."""

    public_iface: str
    subnets: tuple[tuple[str, str], ...]  # (name, CIDR)
    gateways: tuple[tuple[str, frozenset[str] | None], ...]  # ("TABLE SET", covered subnets or None: all)
    sets: tuple[GuestSet, ...]

    def digest(self) -> str:
        return hashlib.sha256(repr(self).encode()).hexdigest()


def _ip(value: object) -> str | None:
    try:
        return str(ipaddress.IPv4Address(value)) if isinstance(value, str) else None
    except ValueError:
        return None


def nics_of(name: str, project: str, scope: str, body: dict[str, Any], network_url: str) -> list[GuestNic]:
    """An instance's NICs on the network (a pure function of its row), by address."""
    zone = scope.split("/", 1)[1]
    out = []
    for nic in body.get("networkInterfaces", []):
        ip = _ip(nic.get("networkIP"))
        if nic.get("network") != network_url or ip is None or not _NAME.match(name):
            continue
        nat = next((_ip(ac.get("natIP")) for ac in nic.get("accessConfigs") or [] if _ip(ac.get("natIP"))), None)
        fqdns = [f"{name}.{zone}.c.{project}.internal", f"{name}.c.{project}.internal"]  # zonal, then global DNS
        custom = body.get("hostname")
        if isinstance(custom, str) and _HOSTNAME.match(custom) and custom not in fqdns:
            fqdns.append(custom)
        tags = {t for t in (body.get("tags") or {}).get("items") or [] if isinstance(t, str) and _NAME.match(t)}
        accounts = {sa.get("email") for sa in body.get("serviceAccounts") or [] if isinstance(sa, dict)}
        out.append(GuestNic(name, url_of(project, scope, "instances", name), project, zone, ip, ipam.mac_for(ip),
                            frozenset(tags), frozenset(a for a in accounts if isinstance(a, str) and a), nat,
                            tuple(fqdns)))
    return sorted(out, key=lambda n: ipaddress.IPv4Address(n.ip))


def nics_of_row(row: Resource, network_url: str) -> list[GuestNic]:
    return nics_of(row.name, row.project, row.scope, orjson.loads(row.body), network_url)


# The resources holding an address of the pool named by the parameter ``pool``: instances, and the
# static addresses and forwarding rules among them, told apart after. The pool's range of its
# index, then each holder by uid (with the collection beside the uid, SQLite would walk the
# collection instead: see core.systemvms.sync).
_HOLDERS = Prepared(select(*Resource.__table__.columns).select_from(IpAllocation)
                    .join(Resource, Resource.uid == IpAllocation.owner_uid).where(IpAllocation.pool == bindparam("pool")))


def network_instances(session: Session, network_url: str, region: str | None = None) -> list[Resource]:
    """Every instance with a NIC on the network (in ``region``, when given), by pk: the holders of
    the addresses of the network's subnetworks (there), and the users of the static internal
    addresses among them. Read-only copies. A full render and a sync that names no instance read
    them; they read every instance of the region (of the cloud, for the sync) and tested its body
    for the network's URL: a firewall rule's change cost more the more instances other networks held."""
    ref = parse_ref(network_url, project="")
    if ref is None or ref.collection != "networks":
        return []
    rows: dict[int, Resource] = {}
    for subnet, _ in store.on_network(session, "subnetworks", network_url, project=ref.project, region=region):
        for found in _HOLDERS.in_session(session, {"pool": ipam.subnet_pool(subnet.uid)}):
            rows.update((row.pk, row) for row in instances_holding(session, read_only(Resource, found)))
    return [rows[pk] for pk in sorted(rows)]


def instances_holding(session: Session, holder: Resource | None) -> list[Resource]:
    """The instances a holder of a subnetwork's address stands for: itself if it is an instance,
    the instances among its users if it is a static internal address, none otherwise (a
    forwarding rule's address, or no one's)."""
    if holder is None or holder.collection not in ("instances", "addresses"):
        return []
    return [holder] if holder.collection == "instances" else instances_using(session, holder)


def instances_using(session: Session, address: Resource) -> list[Resource]:
    """The instances among a static address's ``users`` that are still there."""
    found = []
    for user in orjson.loads(address.body).get("users", []):
        ref = parse_ref(user, project="")
        row = (store.find_optional(session, ref.project, "instances", ref.scope, ref.name)
               if ref is not None and ref.collection == "instances" else None)
        if row is not None:
            found.append(row)
    return found


def holders_in(pool: str, collection: str) -> Select[Resource]:
    """The resources of ``collection`` holding an address of ``pool``, by address: the pool's range
    of its index, then each holder by uid (SQLite's plan: tests/core/test_query_plans.py)."""
    return (select(Resource).select_from(IpAllocation).join(Resource, Resource.uid == IpAllocation.owner_uid)
            .where(IpAllocation.pool == pool, Resource.collection == collection).order_by(IpAllocation.address))


def instance_on(session: Session, subnets: Iterable[Resource]) -> Resource | None:
    """An instance with a NIC on one of ``subnets`` (in their order; on one subnetwork, the one with
    the lowest address), or None: what keeps a subnetwork or its network from being deleted.

    The subnetwork's pool says it, as it says a router's guests: the instance holds the NIC's
    address, or a static internal address it uses does. That covers a Shared VPC service project's
    instances too, and costs an index step, where testing the text of every instance body of the
    project cost as much as the project held (200 ms to refuse a delete at 10,000 instances)."""
    for subnet in subnets:
        pool = ipam.subnet_pool(subnet.uid)
        found = session.scalar(holders_in(pool, "instances").limit(1))
        if found is not None:
            return found
        for address in session.scalars(holders_in(pool, "addresses")):
            users = instances_using(session, address)
            if users:
                return users[0]
    return None


def paths(uid: int) -> tuple[str, str, str]:
    return f"{DHCP_DIR}/{uid}", f"{DNS_DIR}/{uid}", f"{NFT_DIR}/{uid}.nft"


def _subnet_of(ctx: Context, ip: str) -> str | None:
    address = ipaddress.IPv4Address(ip)
    return next((name for name, cidr in ctx.subnets if address in ipaddress.IPv4Network(cidr)), None)


def _nft_lines(ctx: Context, nic: GuestNic) -> list[str]:
    lines = [f"add element ip {FILTER} vm_addrs {{ {nic.ip} }}"]
    if nic.nat_ip:
        lines.append(f'add rule ip {NAT} prerouting ip daddr {nic.nat_ip} dnat to {nic.ip} '
                     f'comment "{nic.instance} 1:1 NAT"')
        lines.append(f'add rule ip {NAT} postrouting oifname "{ctx.public_iface}" ip saddr {nic.ip} '
                     f'snat to {nic.nat_ip} comment "{nic.instance} 1:1 NAT"')
    else:
        subnet = _subnet_of(ctx, nic.ip)
        way_out = next((name for name, covered in ctx.gateways if covered is None or subnet in covered), None)
        # the first NAT that covers the subnetwork translates it; with none, it has no way out
        lines.append(f"add element ip {way_out or FILTER + ' no_egress'} {{ {nic.ip} }}")
    lines += [f"add element ip {s.name} {{ {nic.ip} }}" for s in ctx.sets
              if nic.tags & s.tags or nic.service_accounts & s.accounts]
    return lines


def files(ctx: Context, uid: int, nics: list[GuestNic]) -> dict[str, str]:
    """The instance's files, from its NICs on the network."""
    dhcp, dns, nft = paths(uid)
    return {
        dhcp: "".join(f"{n.mac},set:{domain_tag(n.domain)},{n.ip},{n.instance},infinite\n" for n in nics),
        dns: "".join(f"{n.ip} {' '.join(n.fqdns)}\n" for n in nics),
        nft: "".join(line + "\n" for n in nics for line in _nft_lines(ctx, n)),
    }


def checksums(content: dict[str, str]) -> list[str]:
    """A short digest of each of the instance's files, in the order of :func:`paths`."""
    return [hashlib.sha256(text.encode()).hexdigest()[:20] for text in content.values()]


def _instances(session: Session, network_url: str, region: str, uids: Collection[int] | None,
               rows: Iterable[Resource] | None) -> Iterable[Resource]:
    if uids is None:
        return network_instances(session, network_url, region)
    if rows is not None:
        return [row for row in rows if row.region == region]
    # By uid alone (unique across collections): with the collection beside it, SQLite walks the
    # collection's index instead for more than a few uids (see core.systemvms.sync).
    return [row for row in session.scalars(select(Resource).where(Resource.uid.in_(list(uids))))
            if row.collection == "instances" and row.region == region]


# The router's rows of some instances (a JSON array of uids), read by core.db.loaded: the ORM's
# query cost a lone instance's sync ~0.1 ms more.
_HELD_OF = Prepared(select(*RouterGuest.__table__.columns).where(
    RouterGuest.vm_uid == bindparam("vm"), among(RouterGuest.instance_uid, "uids")))

# The rows of instances new to the router: one executemany for them all.
_ADD = Prepared(insert(RouterGuest.__table__).values(
    {c: bindparam(c) for c in ("vm_uid", "instance_uid", "domain", "checksum")}))


def changes(session: Session, vm_uid: int, ctx: Context, network_url: str, region: str,
            uids: Collection[int] | None, *, force: bool = False,
            rows: Iterable[Resource] | None = None) -> tuple[dict[str, str | None], list[int], list[int]]:
    """The instance files the router must be given, whose they are, and the instances whose files
    it must drop: the files of ``uids`` (None: every instance of the network in the region, a scan)
    whose content changed since the router was given them (all of them with ``force``), and None
    for each file of an instance it holds files of that has none any more (their removal).

    Records what it returns in ``router_guests``. A removed instance's row stays, out of the DNS
    domains, until the push that removes its files succeeded (:func:`forget`): a push that fails
    is done again by the next full pass, which finds the row of an instance it does not see.
    ``rows``: the rows of ``uids`` that are instances, when the caller read them in this
    transaction (they are not read again)."""
    found = (session.scalars(select(RouterGuest).where(RouterGuest.vm_uid == vm_uid)) if uids is None
             else loaded(session, RouterGuest, _HELD_OF, {"vm": vm_uid, "uids": json_ids(uids)}))
    held = {g.instance_uid: g for g in found}
    out: dict[str, str | None] = {}
    touched: list[int] = []
    seen: set[int] = set()
    new: list[dict[str, Any]] = []  # rows of instances the router holds no files of yet
    for row in _instances(session, network_url, region, uids, rows):
        nics = nics_of_row(row, network_url)
        if not nics:
            continue
        seen.add(row.uid)
        content = files(ctx, row.uid, nics)
        digests, domain = checksums(content), nics[0].domain
        guest = held.get(row.uid)
        before = [] if guest is None or force else guest.checksum.split(":")
        if guest is None:
            new.append({"vm_uid": vm_uid, "instance_uid": row.uid, "domain": domain, "checksum": ":".join(digests)})
        else:
            guest.checksum, guest.domain = ":".join(digests), domain
        changed = {path: text for i, (path, text) in enumerate(content.items())
                   if i >= len(before) or before[i] != digests[i]}
        if changed:
            out.update(changed)
            touched.append(row.uid)
    removed = [uid for uid in held if uid not in seen]
    for uid in removed:
        out.update(dict.fromkeys(paths(uid)))
        held[uid].domain = ""
    write_back(session, held.values(), ("checksum", "domain"))
    if new:  # one INSERT for them all, no ORM object each (a burst's sync adds dozens)
        _ADD.many_in_session(session, new)
    return out, touched, removed


_FORGET = Prepared(delete(RouterGuest).where(RouterGuest.vm_uid == bindparam("vm"),
                                            among(RouterGuest.instance_uid, "uids"), RouterGuest.domain == ""))


def forget(session: Session, vm_uid: int, uids: Collection[int]) -> None:
    """The router no longer holds the files of these removed instances (:func:`changes`): their rows go."""
    if uids:
        _FORGET.in_session(session, {"vm": vm_uid, "uids": json_ids(uids)})


# The skip scan as one statement: each step seeks the next domain above the last one found.
_DOMAINS = Prepared(text(
    "WITH RECURSIVE found(domain) AS ("
    " SELECT min(domain) FROM router_guests WHERE vm_uid = :vm AND domain > ''"
    " UNION ALL"
    " SELECT (SELECT min(g.domain) FROM router_guests AS g WHERE g.vm_uid = :vm AND g.domain > found.domain)"
    " FROM found WHERE found.domain IS NOT NULL)"
    " SELECT domain FROM found WHERE domain IS NOT NULL ORDER BY domain"))


def domains(session: Session, vm_uid: int) -> list[str]:
    """The DNS domains of the instances the router holds files of: one index seek per domain (a
    skip scan of ``ix_router_guest_domain``), so the count of instances does not matter; all of
    them in one statement (a recursive query), one round trip however many domains."""
    return [domain for domain, in _DOMAINS.in_session(session, {"vm": vm_uid})]


def mark_stale(session: Session, vm_uid: int, uids: Collection[int]) -> None:
    """The router did not get these instances' files: the next full pass gives them again."""
    session.execute(update(RouterGuest).where(RouterGuest.vm_uid == vm_uid, RouterGuest.instance_uid.in_(list(uids)))
                    .values(checksum=""))
