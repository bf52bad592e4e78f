"""Forwarding rules of HTTP(S) load balancers: globalForwardingRules, and regional forwardingRules whose
target is a regional target HTTP(S) proxy (loadBalancingScheme EXTERNAL_MANAGED or INTERNAL_MANAGED).

A rule is an IP and one port in front of a target proxy: the IP an external one (a global address,
by URL or by IP, or one allocated from the global range), or for INTERNAL_MANAGED one of its
subnetwork. Rules may share an IP on distinct ports (HTTP on 80 and HTTPS on 443, as GCE allows).
The virtual router of the backends' network renders the rule as an HAProxy frontend on IP:port.

The regional collection also holds the network load balancer's rules (target pools, in
``core.services.load_balancing``): :func:`insert`, :func:`delete` and :func:`set_target` send those
there, so one API view serves both.
"""

from __future__ import annotations

from core import ipam, quotas
from core.errors import Invalid, Required
from core.links import parse_ref, scope_url
from core.models import Operation, Resource
from core.resources import store
from core.resources.context import Call
from core.resources.store import Body
from core.services import addresses, lb_common, load_balancing, projects, vpc
from core.services.metadata import label_fingerprint, set_labels, validate_labels

COLLECTION = "forwardingRules"
PROXIES = ("targetHttpProxies", "targetHttpsProxies")
GLOBAL_SCHEMES = ("EXTERNAL", "EXTERNAL_MANAGED")
REGIONAL_SCHEMES = ("EXTERNAL_MANAGED", "INTERNAL_MANAGED")
# The classic external HTTP(S) load balancer listens on these ports only; the managed ones on any.
CLASSIC_PORTS = {"targetHttpProxies": (80, 8080), "targetHttpsProxies": (443,)}
DEFAULT_PORTS = {"targetHttpProxies": 80, "targetHttpsProxies": 443}


def _proxy_target(value: object) -> bool:
    ref = parse_ref(value, project="") if isinstance(value, str) else None
    return ref is not None and ref.collection in PROXIES


def _proxy(call: Call, scope: str, value: object, field: str) -> Resource:
    collection = "targetHttpProxies" if isinstance(value, str) and "/targetHttpProxies/" in value \
        else "targetHttpsProxies"
    return lb_common.referenced(call, value, field, collection, scope)


def _port(body: Body, proxy: Resource, scheme: str, field: str = "resource.portRange") -> int:
    given = body.get("ports") or ([body["portRange"]] if body.get("portRange") else [])
    if body.get("allPorts"):
        raise Invalid("resource.allPorts", True, "A forwarding rule of a target proxy takes one port.")
    if not isinstance(given, list) or len(given) > 1:
        raise Invalid("resource.ports", given, "A forwarding rule of a target proxy takes one port.")
    if not given:
        port = DEFAULT_PORTS[proxy.collection]
    else:
        low, high = load_balancing.port_range(given[0], field)
        if low != high:
            raise Invalid(field, given[0], "A forwarding rule of a target proxy takes one port.")
        port = low
    allowed = CLASSIC_PORTS[proxy.collection]
    if scheme == "EXTERNAL" and port not in allowed:
        kind = "TargetHttpProxy" if proxy.collection == "targetHttpProxies" else "TargetHttpsProxy"
        raise Invalid(field, given[0] if given else port, f"Invalid port specified for {kind}. Allowed ports are: "
                                                          f"{', '.join(str(p) for p in allowed)}.")
    return port


def _services_of(session_call: Call, proxy: Resource) -> list[Body]:
    """The backend services the proxy's url map routes to."""
    body = store.body_of(proxy)
    ref = parse_ref(body["urlMap"], project="")
    url_map = store.find_optional(session_call.session, ref.project, ref.collection, ref.scope, ref.name) \
        if ref else None
    if url_map is None:
        return []
    m = store.body_of(url_map)
    urls = {m["defaultService"], *(pm["defaultService"] for pm in m.get("pathMatchers") or []),
            *(r["service"] for pm in m.get("pathMatchers") or [] for r in pm.get("pathRules") or [])}
    out = []
    for url in sorted(urls):
        r = parse_ref(url, project="")
        row = store.find_optional(session_call.session, r.project, r.collection, r.scope, r.name) if r else None
        if row is not None:
            out.append(store.body_of(row))
    return out


def _check_scheme(call: Call, proxy: Resource, scheme: str) -> None:
    for service in _services_of(call, proxy):
        if service["loadBalancingScheme"] != scheme:
            raise Invalid("resource.loadBalancingScheme", scheme, f"The url map of '{vpc.path(proxy)}' routes to "
                                                                  f"backend service '{service['name']}' of load "
                                                                  f"balancing scheme {service['loadBalancingScheme']}.")


def _check_proxy_subnet(call: Call, scope: str, network: str) -> None:
    """A regional managed balancer's proxies take their addresses from the network's ACTIVE proxy-only
    subnetwork of the region, which GCE requires before the rule."""
    for sub in vpc.mentioning(call.session, call.project, network, ["subnetworks"]):
        body = store.body_of(sub)
        if sub.scope == scope and body.get("network") == network and body.get("role") == "ACTIVE" and \
                body.get("purpose") in ("REGIONAL_MANAGED_PROXY", "INTERNAL_HTTPS_LOAD_BALANCER"):
            return
    raise Invalid("resource.network", network, "An active proxy-only subnetwork is required in the same region "
                                               "and VPC as the forwarding rule.")


def _internal_ip(call: Call, rule: Resource, scope: str, body: Body) -> tuple[str, str, str]:
    """(IP, subnetwork URL, network URL) of an INTERNAL_MANAGED rule: from a subnetwork that holds VMs."""
    if body.get("subnetwork") in (None, ""):
        raise Required("resource.subnetwork")
    subnet = lb_common.referenced(call, body["subnetwork"], "resource.subnetwork", "subnetworks", scope)
    sub = store.body_of(subnet)
    if sub.get("purpose", "PRIVATE") != "PRIVATE":
        raise Invalid("resource.subnetwork", body["subnetwork"], f"The subnetwork has purpose {sub['purpose']}: "
                                                                 "the forwarding rule's address comes from a "
                                                                 "PRIVATE subnetwork.")
    _check_proxy_subnet(call, scope, sub["network"])
    pool = addresses.subnet_pool(subnet)
    requested = body.get("IPAddress")
    if requested in (None, ""):
        ip = ipam.allocate(call.session, pool, sub["ipCidrRange"], rule.uid)
    else:
        ip = vpc.host_address(requested, sub["ipCidrRange"], "resource.IPAddress")
        if not ipam.reserve(call.session, pool, ip, rule.uid):
            raise Invalid("resource.IPAddress", ip, "Specified IP address is in-use and would result in a conflict.")
    return ip, vpc.url(subnet), sub["network"]


def insert(call: Call, region: str | None, body: Body) -> Operation:
    if region is not None and not _proxy_target(body.get("target")):
        return load_balancing.insert_forwarding_rule(call, region, body)
    scope = lb_common.scope_of(call, region)
    name = lb_common.new_name(call, COLLECTION, scope, body)
    if body.get("target") in (None, ""):
        raise Required("resource.target")
    if not _proxy_target(body["target"]):
        raise Invalid("resource.target", body["target"], "A global forwarding rule's target must be a target HTTP "
                                                         "or HTTPS proxy.")
    proxy = _proxy(call, scope, body["target"], "resource.target")
    schemes = GLOBAL_SCHEMES if region is None else REGIONAL_SCHEMES
    scheme = body.get("loadBalancingScheme") or schemes[0]
    if scheme not in schemes:
        raise Invalid("resource.loadBalancingScheme", scheme, f"Must be one of {', '.join(schemes)} for a "
                                                              f"{'global' if region is None else 'regional'} "
                                                              "forwarding rule of a target proxy.")
    _check_scheme(call, proxy, scheme)
    protocol = (body.get("IPProtocol") or "TCP").upper()
    if protocol != "TCP":
        raise Invalid("resource.IPProtocol", body.get("IPProtocol"), "A forwarding rule of a target proxy is TCP.")
    port = _port(body, proxy, scheme)
    tier = body.get("networkTier") or "PREMIUM"
    if tier not in addresses.TIERS or (region is None and tier != "PREMIUM"):
        raise Invalid("resource.networkTier", tier, "Global forwarding rules are PREMIUM." if region is None
                      else "Must be PREMIUM or STANDARD.")
    labels = validate_labels(body.get("labels"))
    project = projects.get(call.session, call.project, lock=True)
    if region is not None and scheme != "INTERNAL_MANAGED":
        quotas.check_region(call.session, project, region, {"IN_USE_ADDRESSES": 1})
    fields: Body = {"description": body["description"]} if body.get("description") else {}
    if region is not None:
        fields["region"] = scope_url(call.project, scope)
    fields.update({"IPAddress": "", "IPProtocol": "TCP", "portRange": f"{port}-{port}", "target": vpc.url(proxy),
                   "loadBalancingScheme": scheme})
    if scheme != "INTERNAL_MANAGED" and body.get("network"):
        fields["network"] = vpc.network_url(vpc.network(call, body["network"]))
        if region is not None:
            _check_proxy_subnet(call, scope, fields["network"])
    fields.update({"networkTier": tier, "ipVersion": "IPV4", "labels": labels,
                   "labelFingerprint": label_fingerprint(labels)})
    before = lb_common.networks_in_use(call.session, call.project)
    rule = store.new_resource(call.session, project=call.project, collection=COLLECTION, scope=scope, name=name,
                              kind="compute#forwardingRule", region=region, body=fields)
    stored = store.body_of(rule)
    if scheme == "INTERNAL_MANAGED":
        stored["IPAddress"], subnet, network = _internal_ip(call, rule, scope, body)
        stored = {**{k: v for k, v in stored.items() if k not in ("networkTier", "ipVersion")}, "network": network,
                  "subnetwork": subnet, "networkTier": tier, "ipVersion": "IPV4"}
    else:
        stored["IPAddress"] = load_balancing.take_ip(call, rule, stored, body.get("IPAddress"))
        if region is not None:
            quotas.recheck_region(call.session, project, region, ["IN_USE_ADDRESSES"])  # an instance's at once
    _save(rule, stored)
    lb_common.notify(call.session, call.project, before)
    return lb_common.begin(call, rule, "insert")


def _save(rule: Resource, body: Body) -> None:
    lb_common.set_fingerprint(body, "forwardingRule")
    order = [k for k in body if k not in ("selfLink",)] + ["selfLink"]
    store.save(rule, {k: body[k] for k in order})


def delete(call: Call, region: str | None, name: str) -> Operation:
    scope = lb_common.scope_of(call, region)
    rule = lb_common.find(call, COLLECTION, scope, name)
    body = store.body_of(rule)
    if region is not None and not _proxy_target(body.get("target")):
        return load_balancing.delete_forwarding_rule(call, region, name)
    op = lb_common.begin(call, rule, "delete")
    addr = addresses.static_at(call.session, addresses.external_pool(scope), body["IPAddress"])
    if addr is not None:
        addresses.detach(call.session, addr, vpc.url(rule))
    ipam.release_owner(call.session, rule.uid)
    before = lb_common.networks_in_use(call.session, call.project)
    call.session.delete(rule)
    call.session.flush()
    lb_common.notify(call.session, call.project, before)
    return op


def set_target(call: Call, region: str | None, name: str, body: Body) -> Operation:
    scope = lb_common.scope_of(call, region)
    rule = lb_common.find(call, COLLECTION, scope, name)
    stored = store.body_of(rule)
    if region is not None and not _proxy_target(stored.get("target")):
        return load_balancing.set_forwarding_rule_target(call, region, name, body)
    if not _proxy_target(body.get("target")):
        raise Invalid("target", body.get("target"), "The target must be a target HTTP or HTTPS proxy.")
    proxy = _proxy(call, scope, body["target"], "target")
    _check_scheme(call, proxy, stored["loadBalancingScheme"])
    _port({"portRange": stored["portRange"]}, proxy, stored["loadBalancingScheme"], "target")
    before = lb_common.networks_in_use(call.session, call.project)
    stored["target"] = vpc.url(proxy)
    _save(rule, stored)
    lb_common.notify(call.session, call.project, before)
    return lb_common.begin(call, rule, "setTarget")


def set_global_labels(call: Call, name: str, body: Body) -> Operation:
    rule = lb_common.find(call, COLLECTION, "global", name)
    stored = store.body_of(rule)
    set_labels(stored, body)
    _save(rule, stored)
    return lb_common.begin(call, rule, "setLabels")


# What forwardingRules.patch and globalForwardingRules.patch may change (GCE documents networkTier; it
# patches allowGlobalAccess of internal rules as well). Labels change through setLabels, with their
# fingerprint. A field the patch repeats with its current value is no change, and is accepted, as a
# client that sends the whole resource back does.
PATCHABLE = ("networkTier", "allowGlobalAccess")
INTERNAL_SCHEMES = ("INTERNAL", "INTERNAL_MANAGED")
_OUTPUT_ONLY = ("kind", "id", "creationTimestamp", "selfLink", "region", "fingerprint", "labelFingerprint")


def patch(call: Call, region: str | None, name: str, body: Body) -> Operation:
    """A JSON merge patch of the patchable fields of any forwarding rule (a target pool's or a proxy's)."""
    scope = lb_common.scope_of(call, region)
    rule = lb_common.find(call, COLLECTION, scope, name)
    stored = store.body_of(rule)
    lb_common.check_fingerprint(body.get("fingerprint"), stored)
    if body.get("name") not in (None, rule.name):
        raise Invalid("resource.name", body["name"], "The name of a forwarding rule cannot be changed.")
    for key, value in body.items():
        if key in PATCHABLE or key in _OUTPUT_ONLY or key == "name" or _same(value, stored.get(key)) or \
                (key == "labels" and not value and not stored.get("labels")):
            continue
        hint = " Use setLabels to change labels." if key == "labels" else ""
        raise Invalid(f"resource.{key}", value, f"Field '{key}' cannot be patched: only {' and '.join(PATCHABLE)} "
                                                f"of a forwarding rule can be changed.{hint}")
    scheme = stored.get("loadBalancingScheme", "EXTERNAL")
    if "networkTier" in body:
        stored["networkTier"] = _patched_tier(call, rule, stored, body["networkTier"], scheme)
    if "allowGlobalAccess" in body:
        allow = body["allowGlobalAccess"]
        if allow is not None and not isinstance(allow, bool):
            raise Invalid("resource.allowGlobalAccess", allow, "Must be true or false.")
        if allow and scheme not in INTERNAL_SCHEMES:
            raise Invalid("resource.allowGlobalAccess", allow, "Global access is only supported for internal "
                                                               "forwarding rules (loadBalancingScheme INTERNAL or "
                                                               "INTERNAL_MANAGED).")
        stored.pop("allowGlobalAccess", None)
        if allow:
            stored["allowGlobalAccess"] = True
    _save(rule, stored)
    return lb_common.begin(call, rule, "patch")


def _same(given: object, current: object) -> bool:
    """Equal values, URLs compared by their path (a client sends back the links it was given)."""
    if isinstance(given, str) and isinstance(current, str) and "/compute/v1/" in current:
        return vpc.relative(given) == vpc.relative(current)
    return given == current


def _patched_tier(call: Call, rule: Resource, stored: Body, tier: object, scheme: str) -> str:
    """The new network tier: PREMIUM or STANDARD for an external regional rule, PREMIUM elsewhere, and
    the tier of the static address the rule uses (GCE keeps the two equal)."""
    if tier in (None, ""):
        return "PREMIUM"
    if tier not in addresses.TIERS:
        raise Invalid("resource.networkTier", tier, f"Must be one of {', '.join(addresses.TIERS)}.")
    if tier != "PREMIUM" and (rule.scope == "global" or scheme in INTERNAL_SCHEMES):
        raise Invalid("resource.networkTier", tier, "Global and internal forwarding rules are PREMIUM.")
    if scheme not in INTERNAL_SCHEMES:
        addr = addresses.static_at(call.session, addresses.external_pool(rule.scope), stored["IPAddress"])
        addr_tier = store.body_of(addr).get("networkTier", "PREMIUM") if addr is not None else tier
        if addr_tier != tier:
            raise Invalid("resource.networkTier", tier, f"The network tier of specified IP address is {addr_tier}, "
                                                        "that of Forwarding Rule must be the same.")
    return str(tier)
