"""Cloud Routers (``routers``, regional): BGP settings and peers, kept and reported, and Cloud NAT
gateways, which mean something: the virtual router of the router's network SNATs the chosen
subnetwork ranges of its region to the NAT's addresses, for instances without an external address
(:mod:`core.systemvms.nat` renders it). Instances without an external address and without a NAT
have no way out, as on GCE.

A NAT's addresses are static external addresses of the region (``MANUAL_ONLY``, which they then
serve as users) or one address gstack allocates for it (``AUTO_ONLY``: GCE adds addresses as VMs
need ports; one serves 64512 / minPortsPerVm VMs, 1008 at the default). The allocated ones are held
in the region's external pool by the router and named in its private state row (:data:`STATE`);
``getRouterStatus`` reports them.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from core import ipam, quotas
from core.errors import AlreadyExists, Invalid, Required
from core.links import path_of, scope_url, url_of
from core.models import Operation, Resource
from core.resources import operations, store
from core.resources.context import Call
from core.resources.store import Body
from core.services import addresses, projects, vpc
from core.systemvms import guests

STATE = "routerStates"  # private: the NATs' allocated addresses; never routed, never listed
RANGE_CHOICES = ("ALL_SUBNETWORKS_ALL_IP_RANGES", "ALL_SUBNETWORKS_ALL_PRIMARY_IP_RANGES", "LIST_OF_SUBNETWORKS")
SUBNET_RANGES = ("ALL_IP_RANGES", "PRIMARY_IP_RANGE", "LIST_OF_SECONDARY_IP_RANGES")
LOG_FILTERS = ("ALL", "ERRORS_ONLY", "TRANSLATIONS_ONLY")
PORTS_PER_ADDRESS = 64512
_TIMEOUTS = {"udpIdleTimeoutSec": 30, "icmpIdleTimeoutSec": 30, "tcpEstablishedIdleTimeoutSec": 1200,
             "tcpTransitoryIdleTimeoutSec": 30, "tcpTimeWaitTimeoutSec": 120}
_PASSED_NAT = ("enableEndpointIndependentMapping", "type", "endpointTypes", "autoNetworkTier")


def _int(value: object, field: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).lstrip("-").isdigit():
        raise Invalid(field, value)
    n = int(value)
    if not lo <= n <= hi:
        raise Invalid(field, value, f"Must be between {lo} and {hi}.")
    return n


def _bgp(value: object) -> Body | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise Invalid("resource.bgp", value)
    out: Body = {"advertiseMode": value.get("advertiseMode") or "DEFAULT",
                 "keepaliveInterval": _int(value.get("keepaliveInterval", 20), "resource.bgp.keepaliveInterval", 20, 60)}
    if value.get("asn") is not None:
        asn = _int(value["asn"], "resource.bgp.asn", 1, 4294967295)
        if not (64512 <= asn <= 65534 or 4200000000 <= asn <= 4294967294 or asn == 16550):
            raise Invalid("resource.bgp.asn", asn, "The ASN must be a private ASN (64512-65534 or "
                                                   "4200000000-4294967294) or 16550.")
        out["asn"] = asn
    if out["advertiseMode"] == "CUSTOM":
        out.update({k: value[k] for k in ("advertisedGroups", "advertisedIpRanges") if value.get(k)})
    return out


def _peers(value: object, interfaces: list[Body]) -> list[Body]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise Invalid("resource.bgpPeers", value, "Must be a list.")
    names = {i.get("name") for i in interfaces}
    out: list[Body] = []
    for i, peer in enumerate(value):
        field = f"resource.bgpPeers[{i}]"
        if not isinstance(peer, dict):
            raise Invalid(field, peer)
        name = store.validate_name(peer.get("name"), f"{field}.name")
        if any(p["name"] == name for p in out):
            raise Invalid(f"{field}.name", name, "BGP peer names must be unique in a router.")
        if peer.get("interfaceName") and peer["interfaceName"] not in names:
            raise Invalid(f"{field}.interfaceName", peer["interfaceName"], "No interface of the router has "
                                                                         "that name.")
        if peer.get("peerAsn") is None:
            raise Required(f"{field}.peerAsn")
        _int(peer["peerAsn"], f"{field}.peerAsn", 1, 4294967295)
        out.append({**peer, "name": name, "enable": peer.get("enable") or "TRUE",
                    "advertiseMode": peer.get("advertiseMode") or "DEFAULT"})
    return out


def _subnets(call: Call, nat: Body, region: str, network_url: str, field: str) -> list[Body]:
    items = nat.get("subnetworks")
    if not isinstance(items, list) or not items:
        raise Invalid(f"{field}.subnetworks", items, "LIST_OF_SUBNETWORKS needs at least one subnetwork.")
    out: list[Body] = []
    for j, item in enumerate(items):
        f = f"{field}.subnetworks[{j}]"
        if not isinstance(item, dict):
            raise Invalid(f, item)
        ref = vpc.reference(call, item.get("name"), f"{f}.name", "subnetworks", f"regions/{region}")
        sub = store.find(call.session, ref.project, "subnetworks", ref.scope, ref.name)
        if ref.scope != f"regions/{region}" or store.body_of(sub)["network"] != network_url:
            raise Invalid(f"{f}.name", item.get("name"), "The subnetwork must be in the router's region and network.")
        ranges = item.get("sourceIpRangesToNat") or ["ALL_IP_RANGES"]
        if not isinstance(ranges, list) or any(r not in SUBNET_RANGES for r in ranges):
            raise Invalid(f"{f}.sourceIpRangesToNat", ranges, f"Must be a list of {', '.join(SUBNET_RANGES)}.")
        entry: Body = {"name": vpc.url(sub), "sourceIpRangesToNat": ranges}
        if "LIST_OF_SECONDARY_IP_RANGES" in ranges:
            known = {r["rangeName"] for r in store.body_of(sub).get("secondaryIpRanges", [])}
            wanted = item.get("secondaryIpRangeNames") or []
            if not wanted or any(n not in known for n in wanted):
                raise Invalid(f"{f}.secondaryIpRangeNames", wanted, "Name secondary ranges of the subnetwork.")
            entry["secondaryIpRangeNames"] = wanted
        out.append(entry)
    return out


def _nat(call: Call, nat: object, i: int, region: str, network_url: str) -> Body:
    field = f"resource.nats[{i}]"
    if not isinstance(nat, dict):
        raise Invalid(field, nat)
    out: Body = {"name": store.validate_name(nat.get("name"), f"{field}.name")}
    option = nat.get("natIpAllocateOption")
    if option not in ("AUTO_ONLY", "MANUAL_ONLY"):
        raise Required(f"{field}.natIpAllocateOption") if option is None else Invalid(
            f"{field}.natIpAllocateOption", option, "Must be AUTO_ONLY or MANUAL_ONLY.")
    out["natIpAllocateOption"] = option
    ips = nat.get("natIps") or []
    if option == "AUTO_ONLY" and ips:
        raise Invalid(f"{field}.natIps", ips, "natIps must be empty when natIpAllocateOption is AUTO_ONLY.")
    if option == "MANUAL_ONLY":
        if not isinstance(ips, list) or not ips:
            raise Invalid(f"{field}.natIps", ips, "MANUAL_ONLY needs at least one static external address.")
        out["natIps"] = [_nat_address(call, value, region, f"{field}.natIps[{j}]") for j, value in enumerate(ips)]
    source = nat.get("sourceSubnetworkIpRangesToNat")
    if source not in RANGE_CHOICES:
        raise Required(f"{field}.sourceSubnetworkIpRangesToNat") if source is None else Invalid(
            f"{field}.sourceSubnetworkIpRangesToNat", source, f"Must be one of {', '.join(RANGE_CHOICES)}.")
    out["sourceSubnetworkIpRangesToNat"] = source
    if source == "LIST_OF_SUBNETWORKS":
        out["subnetworks"] = _subnets(call, nat, region, network_url, field)
    elif nat.get("subnetworks"):
        raise Invalid(f"{field}.subnetworks", nat["subnetworks"], "Subnetworks are listed only with "
                                                                  "LIST_OF_SUBNETWORKS.")
    dynamic = bool(nat.get("enableDynamicPortAllocation"))
    low = _int(nat.get("minPortsPerVm", 32 if dynamic else 64), f"{field}.minPortsPerVm", 2, 65536)
    if dynamic:
        if low & (low - 1):
            raise Invalid(f"{field}.minPortsPerVm", low, "With dynamic port allocation it must be a power of 2.")
        high = _int(nat.get("maxPortsPerVm", 65536), f"{field}.maxPortsPerVm", low, 65536)
        out.update(enableDynamicPortAllocation=True, maxPortsPerVm=high)
    out["minPortsPerVm"] = low
    for key, default in _TIMEOUTS.items():
        out[key] = _int(nat.get(key, default), f"{field}.{key}", 1, 86400)
    log = nat.get("logConfig") or {}
    if not isinstance(log, dict) or log.get("filter", "ALL") not in LOG_FILTERS:
        raise Invalid(f"{field}.logConfig", log, f"The filter must be one of {', '.join(LOG_FILTERS)}.")
    out["logConfig"] = {"enable": bool(log.get("enable")), "filter": log.get("filter", "ALL")}
    out.update({k: nat[k] for k in _PASSED_NAT if k in nat})
    return out


def _nat_address(call: Call, value: object, region: str, field: str) -> str:
    ref = vpc.reference(call, value, field, "addresses", f"regions/{region}")
    addr = store.find(call.session, ref.project, "addresses", ref.scope, ref.name)
    if ref.scope != f"regions/{region}" or store.body_of(addr).get("addressType") != "EXTERNAL":
        raise Invalid(field, value, f"NAT addresses must be static external addresses of region '{region}'.")
    return vpc.url(addr)


def _check_overlap(call: Call, region: str, network_url: str, nats: list[Body], own_uid: int | None) -> None:
    """A subnetwork is translated by one NAT: an ALL_SUBNETWORKS_* NAT is the only one of its network
    in its region, and listed subnetworks appear in one NAT only (across the network's routers)."""
    others = [n for r in _routers_of(call.session, network_url, region) if r.uid != own_uid
              for n in store.body_of(r).get("nats", [])]
    every = others + nats
    if len(every) > 1 and any(n["sourceSubnetworkIpRangesToNat"] != "LIST_OF_SUBNETWORKS" for n in every):
        raise Invalid("resource.nats", [n["name"] for n in nats], "A NAT that translates all subnetworks must be "
                                                                  "the only NAT of the network in its region.")
    seen: set[str] = set()
    for n in every:
        for s in n.get("subnetworks", []):
            if s["name"] in seen:
                raise Invalid("resource.nats", n["name"], f"Subnetwork '{vpc.relative(s['name'])}' is already "
                                                          "translated by another NAT.")
            seen.add(s["name"])


def _routers_of(session: Session, network_url: str, region: str) -> list[Resource]:
    return list(session.scalars(select(Resource).where(
        Resource.collection == "routers", Resource.region == region,
        Resource.body.contains(f'"network":"{network_url}"', autoescape=True))))


def _fields(call: Call, region: str, body: Body, network_url: str, own_uid: int | None) -> Body:
    interfaces = body.get("interfaces") or []
    if not isinstance(interfaces, list):
        raise Invalid("resource.interfaces", interfaces, "Must be a list.")
    nats_in = body.get("nats") or []
    if not isinstance(nats_in, list):
        raise Invalid("resource.nats", nats_in, "Must be a list.")
    nats = [_nat(call, n, i, region, network_url) for i, n in enumerate(nats_in)]
    if len({n["name"] for n in nats}) != len(nats):
        raise Invalid("resource.nats", [n["name"] for n in nats], "NAT names must be unique in a router.")
    _check_overlap(call, region, network_url, nats, own_uid)
    out: Body = {"network": network_url, "region": scope_url(call.project, f"regions/{region}")}
    if body.get("description"):
        out["description"] = body["description"]
    bgp = _bgp(body.get("bgp"))
    if bgp is not None:
        out["bgp"] = bgp
    peers = _peers(body.get("bgpPeers"), interfaces)
    out.update({k: v for k, v in (("interfaces", interfaces), ("bgpPeers", peers), ("nats", nats)) if v})
    if body.get("encryptedInterconnectRouter"):
        out["encryptedInterconnectRouter"] = True
    return out


# -- the NATs' addresses --------------------------------------------------------------------------


def _state(session: Session, router: Resource) -> tuple[Resource, Body]:
    row = store.find_optional(session, router.project, STATE, router.scope, router.name)
    if row is None:
        row = store.new_resource(session, project=router.project, collection=STATE, scope=router.scope,
                                 name=router.name, kind="gstack#routerState", body={"auto": {}})
    return row, store.body_of(row)


def auto_addresses(session: Session, router: Resource) -> dict[str, list[str]]:
    """The addresses gstack allocated for each AUTO_ONLY NAT of the router, by NAT name."""
    row = store.find_optional(session, router.project, STATE, router.scope, router.name)
    return dict(store.body_of(row).get("auto", {})) if row is not None else {}


def _apply_addresses(call: Call, router: Resource, old: list[Body], new: list[Body]) -> None:
    """Make the addresses follow the NATs: static ones the router starts or stops using, one
    allocated address per AUTO_ONLY NAT (released when the NAT goes or turns MANUAL_ONLY)."""
    region = str(router.region)
    url = vpc.url(router)
    before = {ip for n in old for ip in n.get("natIps", [])}
    after = {ip for n in new for ip in n.get("natIps", [])}
    row, state = _state(call.session, router)
    auto: dict[str, list[str]] = state.get("auto", {})
    wanted = {n["name"] for n in new if n["natIpAllocateOption"] == "AUTO_ONLY"}
    demand = len(after - before) + len(wanted - set(auto))
    project = projects.get(call.session, call.project, lock=True)
    quotas.check_region(call.session, project, region, {"IN_USE_ADDRESSES": demand})
    for link in sorted(before - after):
        addresses.detach(call.session, _address(call, link), url)
    for link in sorted(after - before):
        addresses.attach(call.session, _address(call, link), url)
    # New addresses first: an allocation takes the pool's lock, then (PostgreSQL, core.usage) the
    # project's usage lock, which a release takes too; the other way round it would wait on an insert
    # that holds the pool and waits for the project.
    for name in sorted(wanted - set(auto)):
        auto[name] = [ipam.allocate(call.session, ipam.external_pool(region), ipam.EXTERNAL_RANGE, router.uid,
                                    project=call.project)]
    for name in sorted(set(auto) - wanted):
        for ip in auto.pop(name):
            ipam.release(call.session, ipam.external_pool(region), ip)
    if demand:
        quotas.recheck_region(call.session, project, region, ["IN_USE_ADDRESSES"])  # an instance's at once
    store.save(row, {**state, "auto": auto})


def _address(call: Call, link: str) -> Resource:
    ref = vpc.reference(call, link, "resource.nats.natIps", "addresses")
    return store.find(call.session, ref.project, "addresses", ref.scope, ref.name)


# -- use cases -----------------------------------------------------------------------------------


def insert(call: Call, region: str, body: Body) -> Operation:
    if body.get("name") in (None, ""):
        raise Required("resource.name")
    name = store.validate_name(body.get("name"))
    scope = vpc.region_scope(call.session, call.project, region)
    region = scope.split("/", 1)[1]
    project = projects.get(call.session, call.project, lock=True)
    if body.get("network") in (None, ""):
        raise Required("resource.network")
    net = vpc.network(call, body["network"], lock=True)
    if store.exists(call.session, call.project, "routers", scope, name):
        raise AlreadyExists(path_of(call.project, scope, "routers", name))
    quotas.check_global(call.session, project, "ROUTERS")
    fields = _fields(call, region, body, vpc.network_url(net), None)
    router = store.new_resource(call.session, project=call.project, collection="routers", scope=scope, name=name,
                                kind="compute#router", region=region, body=fields)
    _apply_addresses(call, router, [], fields.get("nats", []))
    vpc.notify_router(call.session, call.project, fields["network"])
    return operations.begin(call, scope=scope, op_type="insert", target_path=vpc.path(router), target_id=router.uid)


def _locked(call: Call, region: str, name: str) -> Resource:
    scope = vpc.region_scope(call.session, call.project, region)
    return projects.find_for_update(call.session, call.project, "routers", scope, name)


def replace(call: Call, region: str, name: str, body: Body, merge: bool) -> Operation:
    """routers.patch (``merge``: the fields given replace the stored ones, lists whole) and
    routers.update (the body is the whole router). The network cannot change."""
    router = _locked(call, region, name)
    current = store.body_of(router)
    given = {**current, **body} if merge else {**body, "name": current["name"]}
    if body.get("name") not in (None, current["name"]):
        raise Invalid("resource.name", body["name"], "The name of a router cannot be changed.")
    if given.get("network") and vpc.network(call, given["network"]).uid != vpc.network(call, current["network"]).uid:
        raise Invalid("resource.network", given["network"], "The network of a router cannot be changed.")
    fields = _fields(call, str(router.region), given, current["network"], router.uid)
    _apply_addresses(call, router, current.get("nats", []), fields.get("nats", []))
    keep = {k: current[k] for k in ("kind", "id", "creationTimestamp", "name", "selfLink")}
    store.save(router, {**keep, **fields})
    vpc.notify_router(call.session, call.project, current["network"])
    return operations.begin(call, scope=router.scope, op_type="patch" if merge else "update",
                            target_path=vpc.path(router), target_id=router.uid)


def delete(call: Call, region: str, name: str) -> Operation:
    router = _locked(call, region, name)
    body = store.body_of(router)
    _apply_addresses(call, router, body.get("nats", []), [])
    state = store.find_optional(call.session, router.project, STATE, router.scope, router.name)
    if state is not None:
        call.session.delete(state)
    op = operations.begin(call, scope=router.scope, op_type="delete", target_path=vpc.path(router),
                          target_id=router.uid)
    call.session.delete(router)
    vpc.notify_router(call.session, call.project, body["network"])
    return op


def status(call: Call, region: str, name: str) -> Body:
    """getRouterStatus: the NATs' addresses and how many VMs each translates; BGP peers are DOWN
    (gstack speaks no BGP), and the best routes are the network's subnet routes of the region."""
    scope = vpc.region_scope(call.session, call.project, region)
    router = store.find(call.session, call.project, "routers", scope, name)
    body = store.body_of(router)
    auto = auto_addresses(call.session, router)
    nats = []
    for nat in body.get("nats", []):
        item: Body = {"name": nat["name"], "minExtraNatIpsNeeded": 0,
                      "numVmEndpointsWithNatMappings": len(translated(call.session, router, nat))}
        if nat["natIpAllocateOption"] == "AUTO_ONLY":
            item["autoAllocatedNatIps"] = auto.get(nat["name"], [])
        else:
            item["userAllocatedNatIpResources"] = nat["natIps"]
            item["userAllocatedNatIps"] = [store.body_of(_address(call, u))["address"] for u in nat["natIps"]]
        nats.append(item)
    peers = [{"name": p["name"], "ipAddress": p.get("ipAddress", ""), "peerIpAddress": p.get("peerIpAddress", ""),
              "status": "DOWN", "state": "Idle", "numLearnedRoutes": 0} for p in body.get("bgpPeers", [])]
    result: Body = {"network": body["network"]}
    result.update({k: v for k, v in (("bgpPeerStatus", peers), ("natStatus", nats)) if v})
    return {"kind": "compute#routerStatusResponse", "result": result}


def translated(session: Session, router: Resource, nat: Body) -> list[str]:
    """The instances (URLs) a NAT gives a way out: in its subnetworks, with no external address."""
    body = store.body_of(router)
    network = body["network"]
    subnets = ({s["name"] for s in nat.get("subnetworks", [])}
               if nat["sourceSubnetworkIpRangesToNat"] == "LIST_OF_SUBNETWORKS" else None)
    out = []
    for inst in guests.network_instances(session, network, router.region):  # the network's, not the region's
        for nic in store.body_of(inst).get("networkInterfaces", []):
            if nic.get("network") == network and not nic.get("accessConfigs") and (
                    subnets is None or nic.get("subnetwork") in subnets):
                out.append(url_of(inst.project, inst.scope, "instances", inst.name))
                break
    return sorted(out)

