"""The regional network load balancer: forwarding rules (an external IP, a protocol and ports) that
send traffic to a target pool of instances, checked by legacy HTTP health checks; and the
``healthChecks`` collection. The virtual router of the backends' network renders the balancer
(HAProxy), so every change that moves traffic is pushed to it.
"""

from __future__ import annotations

import re

from sqlalchemy.orm import Session

from core import ipam, quotas
from core.errors import AlreadyExists, Invalid, Required, ResourceInUse
from core.ids import fingerprint
from core.links import parse_ref, path_of, scope_url
from core.models import Operation, Resource
from core.resources import health, operations, store
from core.resources.context import Call
from core.resources.store import Body
from core.services import addresses, projects, vpc
from core.services.metadata import label_fingerprint, set_labels, validate_labels

PROTOCOLS = ("TCP", "UDP", "ESP", "AH", "SCTP", "ICMP")
PORT_PROTOCOLS = ("TCP", "UDP", "SCTP")
AFFINITIES = ("NONE", "CLIENT_IP", "CLIENT_IP_PROTO")
_PORTS = re.compile(r"^(\d{1,5})(?:-(\d{1,5}))?$")
# Target pools take legacy HTTP health checks; the healthChecks collection has a type per protocol.
LEGACY = "httpHealthChecks"
CHECK_TYPES = {"TCP": "tcpHealthCheck", "SSL": "sslHealthCheck", "HTTP": "httpHealthCheck",
               "HTTPS": "httpsHealthCheck", "HTTP2": "http2HealthCheck", "GRPC": "grpcHealthCheck"}
_TIMING = ("checkIntervalSec", "timeoutSec", "healthyThreshold", "unhealthyThreshold")
_KINDS = {LEGACY: "compute#httpHealthCheck", "healthChecks": "compute#healthCheck"}


def _new_name(call: Call, collection: str, scope: str, body: Body) -> str:
    if body.get("name") in (None, ""):
        raise Required("resource.name")
    name = store.validate_name(body.get("name"))
    if store.find_optional(call.session, call.project, collection, scope, name):
        raise AlreadyExists(path_of(call.project, scope, collection, name))
    return name


def _op(call: Call, res: Resource, op_type: str) -> Operation:
    return operations.begin(call, scope=res.scope, op_type=op_type, target_path=vpc.path(res), target_id=res.uid)


def _notify(session: Session, project: str, instance_urls: list[str]) -> None:
    for network in sorted(addresses.instance_networks(session, instance_urls)):
        vpc.notify_router(session, project, network)


def _pool_instances(session: Session, pool_url: str) -> list[str]:
    ref = parse_ref(pool_url, project="")
    pool = store.find_optional(session, ref.project, "targetPools", ref.scope, ref.name) if ref else None
    return store.body_of(pool).get("instances", []) if pool is not None else []


# -- forwarding rules --------------------------------------------------------------------------------


def port_range(value: object, field: str) -> tuple[int, int]:
    m = _PORTS.match(value) if isinstance(value, str) else None
    low, high = (int(m.group(1)), int(m.group(2) or m.group(1))) if m else (0, 0)
    if m is None or not 1 <= low <= high <= 65535:
        raise Invalid(field, value, "Must be a port or a range of ports (e.g. 80 or 8000-8080) between 1 and 65535.")
    return low, high


def _ports(body: Body, protocol: str) -> Body:
    given = [k for k in ("portRange", "ports", "allPorts") if body.get(k)]
    if len(given) > 1:
        raise Invalid(f"resource.{given[1]}", body[given[1]], "Only one of portRange, ports and allPorts may be given.")
    if given and protocol not in PORT_PROTOCOLS:
        raise Invalid(f"resource.{given[0]}", body[given[0]], "Ports may only be given for TCP, UDP and SCTP.")
    if protocol not in PORT_PROTOCOLS:
        return {}
    if body.get("ports"):
        ports = body["ports"]
        if not isinstance(ports, list) or len(ports) > 5:
            raise Invalid("resource.ports", ports, "At most 5 ports may be given.")
        for i, p in enumerate(ports):
            low, high = port_range(p, f"resource.ports[{i}]")
            if low != high:
                raise Invalid(f"resource.ports[{i}]", p, "Must be a single port; use portRange for a range.")
        return {"ports": [str(int(p)) for p in ports]}
    if body.get("portRange"):
        low, high = port_range(body["portRange"], "resource.portRange")
        return {"portRange": f"{low}-{high}"}
    return {"portRange": "1-65535"}


def _port_set(rule: Body) -> set[int] | range:
    if rule.get("ports"):
        return {int(p) for p in rule["ports"]}
    low, high = (int(x) for x in rule.get("portRange", "1-65535").split("-"))
    return range(low, high + 1)


def ports_conflict(a: Body, b: Body) -> bool:
    """Two rules on one IP conflict when they take the same protocol on a common port."""
    if a["IPProtocol"] != b["IPProtocol"]:
        return False
    pa, pb = _port_set(a), _port_set(b)
    if isinstance(pa, range) and isinstance(pb, range):
        return pa.start < pb.stop and pb.start < pa.stop
    small, other = (pa, pb) if not isinstance(pa, range) else (pb, pa)
    return any(p in other for p in small)


def _target(call: Call, value: object, scope: str, field: str = "resource.target") -> Resource:
    """The target pool a body names, row-locked: it cannot be deleted while a rule starts using it."""
    ref = vpc.reference(call, value, field, "targetPools", scope)
    if ref.scope != scope:
        raise Invalid(field, value, f"The target pool must be in region '{scope.split('/', 1)[1]}'.")
    return projects.find_for_update(call.session, ref.project, "targetPools", ref.scope, ref.name)


def _save_rule(res: Resource, body: Body) -> None:
    body["fingerprint"] = fingerprint(["forwardingRule", {k: v for k, v in body.items() if k != "fingerprint"}])
    store.save(res, body)


def take_ip(call: Call, rule: Resource, rule_body: Body, requested: object) -> str:
    """The rule's IP: an ephemeral one, a static address (by URL or by IP), or a free IP asked for
    (a global rule's from the global addresses' range)."""
    pool = addresses.external_pool(rule.scope)
    url = vpc.url(rule)

    def shareable(users: list[str]) -> bool:
        for user in users:
            ref = parse_ref(user, project="")
            other = store.find_optional(call.session, ref.project, ref.collection, ref.scope, ref.name) if ref else None
            if ref is None or ref.collection != "forwardingRules" or other is None:
                return False
            if ports_conflict(rule_body, store.body_of(other)):
                return False
        return True

    if requested in (None, ""):
        cidr = addresses.GLOBAL_RANGE if rule.scope == "global" else ipam.EXTERNAL_RANGE
        return ipam.allocate(call.session, pool, cidr, rule.uid, project=call.project)
    if isinstance(requested, str) and "/" in requested:
        ref = vpc.reference(call, requested, "resource.IPAddress", "addresses", rule.scope)
        if ref.scope != rule.scope:
            raise Invalid("resource.IPAddress", requested, "The address must be in the forwarding rule's scope.")
        addr = store.find(call.session, ref.project, "addresses", ref.scope, ref.name)
        if addr.subtype != "EXTERNAL":
            raise Invalid("resource.IPAddress", requested, "The address must be an EXTERNAL address.")
        addresses.attach(call.session, addr, url, shareable)
        address: str = store.body_of(addr)["address"]
        return address
    ip = vpc.external_address(requested, "resource.IPAddress")
    static = addresses.static_at(call.session, pool, ip)
    if static is not None and static.project == call.project:
        addresses.attach(call.session, static, url, shareable)
        return ip
    if static is not None or not ipam.reserve(call.session, pool, ip, rule.uid, call.project):
        raise Invalid("resource.IPAddress", ip, "Specified IP address is in-use and would result in a conflict.")
    return ip


def insert_forwarding_rule(call: Call, region: str, body: Body) -> Operation:
    scope = vpc.region_scope(call.session, call.project, region)
    name = _new_name(call, "forwardingRules", scope, body)
    scheme = body.get("loadBalancingScheme") or "EXTERNAL"
    if scheme != "EXTERNAL":
        raise Invalid("resource.loadBalancingScheme", scheme, "Only EXTERNAL forwarding rules (to target pools) "
                                                              "are supported.")
    if body.get("backendService"):
        raise Invalid("resource.backendService", body["backendService"], "Backend services are not supported: "
                                                                         "use a target pool as the target.")
    target = _target(call, body.get("target"), scope)
    protocol = (body.get("IPProtocol") or "TCP").upper()
    if protocol not in PROTOCOLS:
        raise Invalid("resource.IPProtocol", body.get("IPProtocol"), f"Must be one of {', '.join(PROTOCOLS)}.")
    tier = body.get("networkTier") or "PREMIUM"
    if tier not in addresses.TIERS:
        raise Invalid("resource.networkTier", tier, "Must be PREMIUM or STANDARD.")
    labels = validate_labels(body.get("labels"))
    project = projects.get(call.session, call.project, lock=True)
    quotas.check_region(call.session, project, region, {"IN_USE_ADDRESSES": 1})
    fields: Body = {"description": body["description"]} if body.get("description") else {}
    fields.update({"region": scope_url(call.project, scope), "IPAddress": "", "IPProtocol": protocol,
                   **_ports(body, protocol), "target": vpc.url(target), "loadBalancingScheme": "EXTERNAL",
                   "networkTier": tier, "ipVersion": "IPV4", "labels": labels,
                   "labelFingerprint": label_fingerprint(labels)})
    rule = store.new_resource(call.session, project=call.project, collection="forwardingRules", scope=scope,
                              name=name, kind="compute#forwardingRule", region=region, body=fields)
    stored = store.body_of(rule)
    stored["IPAddress"] = take_ip(call, rule, stored, body.get("IPAddress"))
    quotas.recheck_region(call.session, project, region, ["IN_USE_ADDRESSES"])  # an instance's at once
    _save_rule(rule, stored)
    _notify(call.session, call.project, store.body_of(target).get("instances", []))
    return _op(call, rule, "insert")


def _find_rule(call: Call, region: str, name: str) -> Resource:
    scope = vpc.region_scope(call.session, call.project, region)
    return projects.find_for_update(call.session, call.project, "forwardingRules", scope, name)


def delete_forwarding_rule(call: Call, region: str, name: str) -> Operation:
    rule = _find_rule(call, region, name)
    body = store.body_of(rule)
    op = _op(call, rule, "delete")
    addr = addresses.static_at(call.session, addresses.external_pool(rule.scope), body["IPAddress"])
    if addr is not None:
        addresses.detach(call.session, addr, vpc.url(rule))
    ipam.release_owner(call.session, rule.uid)
    _notify(call.session, call.project, _pool_instances(call.session, body["target"]))
    call.session.delete(rule)
    return op


def set_forwarding_rule_target(call: Call, region: str, name: str, body: Body) -> Operation:
    rule = _find_rule(call, region, name)
    stored = store.body_of(rule)
    target = _target(call, body.get("target"), rule.scope, "target")
    before = _pool_instances(call.session, stored["target"])
    stored["target"] = vpc.url(target)
    _save_rule(rule, stored)
    _notify(call.session, call.project, before + store.body_of(target).get("instances", []))
    return _op(call, rule, "setTarget")


def set_forwarding_rule_labels(call: Call, region: str, name: str, body: Body) -> Operation:
    rule = _find_rule(call, region, name)
    stored = store.body_of(rule)
    set_labels(stored, body)
    _save_rule(rule, stored)
    return _op(call, rule, "setLabels")


# -- target pools ------------------------------------------------------------------------------------


def _instance_refs(call: Call, items: object, region: str, field: str, key: str | None) -> list[str]:
    """Instance URLs from ``["url", ...]`` (``key`` None) or ``[{"instance": "url"}, ...]``; each must
    exist in a zone of ``region``."""
    if items is None:
        return []
    if not isinstance(items, list):
        raise Invalid(field, items, "Must be a list.")
    out: list[str] = []
    for i, item in enumerate(items):
        value = item.get(key) if key and isinstance(item, dict) else item
        item_field = f"{field}[{i}]" + (f".{key}" if key else "")
        ref = vpc.reference(call, value, item_field, "instances")
        if not ref.scope.startswith(f"zones/{region}-"):
            raise Invalid(item_field, value, f"The instance must be in a zone of region '{region}'.")
        row = store.find(call.session, ref.project, "instances", ref.scope, ref.name)
        if vpc.url(row) not in out:
            out.append(vpc.url(row))
    return out


def _health_check_refs(call: Call, items: object, field: str, key: str | None) -> list[str]:
    if items is None:
        return []
    if not isinstance(items, list):
        raise Invalid(field, items, "Must be a list.")
    out = []
    for i, item in enumerate(items):
        value = item.get(key) if key and isinstance(item, dict) else item
        item_field = f"{field}[{i}]" + (f".{key}" if key else "")
        ref = vpc.reference(call, value, item_field, "httpHealthChecks", "global")
        if ref.scope != "global":
            raise Invalid(item_field, value, "Target pools take legacy HTTP health checks (global/httpHealthChecks).")
        # locked: the check cannot be deleted while a pool starts using it
        out.append(vpc.url(projects.find_for_update(call.session, ref.project, LEGACY, "global", ref.name)))
    if len(set(out)) > 1:
        raise Invalid(field, items, "A target pool can have at most one health check.")
    return out[:1]


def insert_target_pool(call: Call, region: str, body: Body) -> Operation:
    scope = vpc.region_scope(call.session, call.project, region)
    name = _new_name(call, "targetPools", scope, body)
    instances = _instance_refs(call, body.get("instances"), region, "resource.instances", None)
    checks = _health_check_refs(call, body.get("healthChecks"), "resource.healthChecks", None)
    affinity = body.get("sessionAffinity") or "NONE"
    if affinity not in AFFINITIES:
        raise Invalid("resource.sessionAffinity", affinity, f"Must be one of {', '.join(AFFINITIES)}.")
    fields: Body = {"description": body["description"]} if body.get("description") else {}
    fields["region"] = scope_url(call.project, scope)
    if checks:
        fields["healthChecks"] = checks
    if instances:
        fields["instances"] = instances
    fields["sessionAffinity"] = affinity
    if body.get("backupPool"):
        fields["backupPool"] = vpc.url(_target(call, body["backupPool"], scope, "resource.backupPool"))
        ratio = body.get("failoverRatio")
        if not isinstance(ratio, int | float) or isinstance(ratio, bool) or not 0 <= ratio <= 1:
            raise Invalid("resource.failoverRatio", ratio, "Must be a number between 0 and 1 when a backup pool is set.")
        fields["failoverRatio"] = ratio
    elif body.get("failoverRatio") is not None:
        raise Invalid("resource.failoverRatio", body["failoverRatio"], "Only a pool with a backupPool has one.")
    pool = store.new_resource(call.session, project=call.project, collection="targetPools", scope=scope, name=name,
                              kind="compute#targetPool", region=region, body=fields)
    return _op(call, pool, "insert")


def _find_pool(call: Call, region: str, name: str) -> Resource:
    scope = vpc.region_scope(call.session, call.project, region)
    return projects.find_for_update(call.session, call.project, "targetPools", scope, name)


def delete_target_pool(call: Call, region: str, name: str) -> Operation:
    pool = _find_pool(call, region, name)
    url = vpc.url(pool)
    users = [*vpc.referring(call.session, call.project, "target", url, ["forwardingRules"]),
             *vpc.referring(call.session, call.project, "backupPool", url, ["targetPools"])]
    if users:
        raise ResourceInUse("targetPool", vpc.path(pool), vpc.path(users[0]))
    op = _op(call, pool, "delete")
    call.session.delete(pool)
    return op


def _served(call: Call, pool: Resource) -> bool:
    return bool(vpc.referring(call.session, call.project, "target", vpc.url(pool), ["forwardingRules"]))


def change_instances(call: Call, region: str, name: str, body: Body, add: bool) -> Operation:
    """targetPools.addInstance / removeInstance."""
    pool = _find_pool(call, region, name)
    stored = store.body_of(pool)
    current = stored.get("instances", [])
    if add:
        given = _instance_refs(call, body.get("instances"), region, "instances", "instance")
    else:  # a member deleted since may be removed: only its URL is checked
        given = [vpc.reference(call, i.get("instance") if isinstance(i, dict) else i, f"instances[{n}].instance",
                               "instances").url for n, i in enumerate(body.get("instances") or [])]
    if not given:
        raise Required("instances")
    for i, url in enumerate(given):
        if (url in current) == add:
            raise Invalid(f"instances[{i}].instance", url, "The instance is already a member of the target pool."
                          if add else "The instance is not a member of the target pool.")
    changed = current + given if add else [u for u in current if u not in given]
    stored.pop("instances", None)
    if changed:
        stored["instances"] = changed
    store.save(pool, stored)
    if _served(call, pool):
        _notify(call.session, call.project, given)
    return _op(call, pool, "addInstance" if add else "removeInstance")


def change_health_checks(call: Call, region: str, name: str, body: Body, add: bool) -> Operation:
    """targetPools.addHealthCheck / removeHealthCheck (a pool has at most one)."""
    pool = _find_pool(call, region, name)
    stored = store.body_of(pool)
    current = stored.get("healthChecks", [])
    given = _health_check_refs(call, body.get("healthChecks"), "healthChecks", "healthCheck")
    if not given:
        raise Required("healthChecks")
    if add and current and current != given:
        raise Invalid("healthChecks[0].healthCheck", given[0], "A target pool can have at most one health check.")
    if not add and given[0] not in current:
        raise Invalid("healthChecks[0].healthCheck", given[0], "The health check is not used by the target pool.")
    stored.pop("healthChecks", None)
    if add:
        stored["healthChecks"] = given
    store.save(pool, stored)
    if _served(call, pool):
        _notify(call.session, call.project, stored.get("instances", []))
    return _op(call, pool, "addHealthCheck" if add else "removeHealthCheck")


def get_health(call: Call, region: str, name: str, body: Body) -> Body:
    """A member's health as the health model says (:mod:`core.resources.health`)."""
    scope = vpc.region_scope(call.session, call.project, region)
    pool = store.find(call.session, call.project, "targetPools", scope, name)
    ref = vpc.reference(call, body.get("instance"), "resource.instance", "instances")
    url = ref.url
    if url not in store.body_of(pool).get("instances", []):
        raise Invalid("resource.instance", body.get("instance"), "The instance is not a member of the target pool.")
    row = store.find_optional(call.session, ref.project, "instances", ref.scope, ref.name)
    state = health.state(call.session, row)
    rules = vpc.referring(call.session, call.project, "target", vpc.url(pool), ["forwardingRules"])
    statuses = [{"healthState": state, "instance": url, "ipAddress": store.body_of(r)["IPAddress"]} for r in rules]
    return {"kind": "compute#targetPoolInstanceHealth", "healthStatus": statuses or [{"healthState": state,
                                                                                       "instance": url}]}


# -- health checks -----------------------------------------------------------------------------------


def _timing(body: Body) -> Body:
    out = {"checkIntervalSec": vpc.integer(body.get("checkIntervalSec"), "resource.checkIntervalSec", 1, 300, 5),
           "timeoutSec": vpc.integer(body.get("timeoutSec"), "resource.timeoutSec", 1, 300, 5),
           "unhealthyThreshold": vpc.integer(body.get("unhealthyThreshold"), "resource.unhealthyThreshold", 1, 10, 2),
           "healthyThreshold": vpc.integer(body.get("healthyThreshold"), "resource.healthyThreshold", 1, 10, 2)}
    if out["timeoutSec"] > out["checkIntervalSec"]:
        raise Invalid("resource.timeoutSec", out["timeoutSec"], "timeoutSec must be less than or equal to "
                                                                "checkIntervalSec.")
    return out


def _request_path(value: object, field: str) -> str:
    path = "/" if value in (None, "") else value
    if not isinstance(path, str) or not path.startswith("/"):
        raise Invalid(field, value, "The request path must start with '/'.")
    return path


def _legacy_fields(body: Body) -> Body:
    out = {"host": body.get("host") or "", "port": vpc.integer(body.get("port"), "resource.port", 1, 65535, 80),
           "requestPath": _request_path(body.get("requestPath"), "resource.requestPath")}
    return {**out, **_timing(body)}


def _typed_fields(body: Body) -> Body:
    kind = body.get("type")
    if kind not in CHECK_TYPES:
        raise Invalid("resource.type", kind, f"Must be one of {', '.join(CHECK_TYPES)}.")
    key = CHECK_TYPES[kind]
    for other in CHECK_TYPES.values():
        if other != key and body.get(other) is not None:
            raise Invalid(f"resource.{other}", "", f"A health check of type {kind} takes {key} only.")
    given = body.get(key) or {}
    if not isinstance(given, dict):
        raise Invalid(f"resource.{key}", given, "Must be an object.")
    spec = given.get("portSpecification") or "USE_FIXED_PORT"
    if spec not in ("USE_FIXED_PORT", "USE_NAMED_PORT", "USE_SERVING_PORT"):
        raise Invalid(f"resource.{key}.portSpecification", spec, "Must be USE_FIXED_PORT, USE_NAMED_PORT or "
                                                                 "USE_SERVING_PORT.")
    default_port = 443 if kind in ("HTTPS", "HTTP2", "SSL") else 80
    sub = {**given, "port": vpc.integer(given.get("port"), f"resource.{key}.port", 1, 65535, default_port),
           "portSpecification": spec}
    if kind in ("TCP", "SSL", "HTTP", "HTTPS", "HTTP2"):
        sub["proxyHeader"] = given.get("proxyHeader") or "NONE"
        if sub["proxyHeader"] not in ("NONE", "PROXY_V1"):
            raise Invalid(f"resource.{key}.proxyHeader", sub["proxyHeader"], "Must be NONE or PROXY_V1.")
    if kind in ("HTTP", "HTTPS", "HTTP2"):
        sub["requestPath"] = _request_path(given.get("requestPath"), f"resource.{key}.requestPath")
    return {"type": kind, key: sub, **_timing(body)}


def _check_fields(collection: str, body: Body) -> Body:
    fields = _legacy_fields(body) if collection == LEGACY else _typed_fields(body)
    if body.get("description"):
        fields = {"description": body["description"], **fields}
    return fields


def insert_health_check(call: Call, collection: str, body: Body, scope: str = "global") -> Operation:
    """healthChecks / httpHealthChecks, and regionHealthChecks (``scope`` ``regions/R``)."""
    name = _new_name(call, collection, scope, body)
    fields = _check_fields(collection, body)
    region = None if scope == "global" else scope.split("/", 1)[1]
    if region is not None:
        fields["region"] = scope_url(call.project, scope)
    res = store.new_resource(call.session, project=call.project, collection=collection, scope=scope, name=name,
                             kind=_KINDS[collection], body=fields, region=region)
    return _op(call, res, "insert")


def _writable(collection: str) -> set[str]:
    base = {"description", *_TIMING}
    return base | ({"host", "port", "requestPath"} if collection == LEGACY else {"type", *CHECK_TYPES.values()})


def replace_health_check(call: Call, collection: str, name: str, body: Body, merge: bool,
                         scope: str = "global") -> Operation:
    """patch (JSON merge patch) and update (the body replaces the check; omitted fields take defaults)."""
    res = projects.find_for_update(call.session, call.project, collection, scope, name)
    if body.get("name") not in (None, res.name):
        raise Invalid("resource.name", body["name"], "The name of a health check cannot be changed.")
    current = store.body_of(res)
    writable = _writable(collection)
    mine = {k: v for k, v in current.items() if k in writable}
    given = {k: v for k, v in body.items() if k in writable}
    if merge and collection != LEGACY and given.get("type") not in (None, current.get("type")):
        mine = {k: v for k, v in mine.items() if k not in CHECK_TYPES.values()}
    fields = _check_fields(collection, vpc.merge_patch(mine, given) if merge else given)
    store.save(res, {**{k: v for k, v in current.items() if k not in writable}, **fields})
    for pool in vpc.mentioning(call.session, call.project, vpc.url(res), ["targetPools"]):
        if _served(call, pool):
            _notify(call.session, call.project, store.body_of(pool).get("instances", []))
    for service in vpc.mentioning(call.session, call.project, vpc.url(res), ["backendServices"]):
        for network in _group_networks(call.session, store.body_of(service)):
            vpc.notify_router(call.session, call.project, network)
    return _op(call, res, "patch" if merge else "update")


def _group_networks(session: Session, service: Body) -> set[str]:
    """The networks of a backend service's instance groups (their routers render its health check)."""
    out = set()
    for backend in service.get("backends") or []:
        ref = parse_ref(backend["group"], project="")
        group = store.find_optional(session, ref.project, ref.collection, ref.scope, ref.name) if ref else None
        if group is not None and store.body_of(group).get("network"):
            out.add(store.body_of(group)["network"])
    return out


def delete_health_check(call: Call, collection: str, name: str, scope: str = "global") -> Operation:
    res = projects.find_for_update(call.session, call.project, collection, scope, name)
    pools = vpc.mentioning(call.session, call.project, vpc.url(res), ["targetPools", "backendServices"])
    if pools:
        raise ResourceInUse(collection[:-1], vpc.path(res), vpc.path(pools[0]))
    op = _op(call, res, "delete")
    call.session.delete(res)
    return op
