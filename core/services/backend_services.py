"""backendServices and regionBackendServices: the instance groups an HTTP(S) load balancer sends to,
how it shares requests among them (balancing mode, capacity scaler), how it checks them (a health
check) and on which port (the groups' named port ``portName``).

A backend service only stores; what it means shows in the virtual router of its backends' network,
which renders it as an HAProxy backend of the groups' RUNNING members once a url map, a target
proxy and a forwarding rule lead to it (``core.systemvms.http_lb``). Its Operations are born DONE:
nothing but the database changes, and the router's render follows as a sync job.

Where GCE's behaviour is not documented, gstack chose (see docs/architecture.rst):

* backends are zonal instance groups (unmanaged groups, or a managed group's group) or zonal network
  endpoint groups of type GCE_VM_IP_PORT (balancing mode RATE for HTTP(S), CONNECTION for TCP/SSL,
  with ``maxRate``/``maxRatePerEndpoint`` or ``maxConnections``/``maxConnectionsPerEndpoint``);
* protocols HTTP, HTTPS and HTTP2 serve url maps; TCP and SSL are stored (for target TCP/SSL proxies,
  which gstack does not have) with the CONNECTION balancing mode GCE requires there;
* ``getHealth`` reports a member as the health model finds it (:mod:`core.resources.health`:
  RUNNING and its guest answering), and UNHEALTHY while its group lacks the named port, since no
  probe reaches it then; the router renders the same members out of the HAProxy backend.
"""

from __future__ import annotations

from core.errors import Invalid, Required
from core.links import scope_url
from core.models import Operation, Resource
from core.resources import health, store
from core.resources.context import Call
from core.resources.store import Body
from core.services import instance_groups, lb_common, network_endpoint_groups, vpc
from core.services.topology import zone as find_zone

COLLECTION = "backendServices"
KIND = "compute#backendService"
HTTP_PROTOCOLS = ("HTTP", "HTTPS", "HTTP2")
PROTOCOLS = (*HTTP_PROTOCOLS, "TCP", "SSL")
SCHEMES = ("EXTERNAL", "EXTERNAL_MANAGED", "INTERNAL_MANAGED")
AFFINITIES = ("NONE", "CLIENT_IP", "GENERATED_COOKIE")
MODES = ("UTILIZATION", "RATE", "CONNECTION")
CHECK_COLLECTIONS = ("healthChecks", "httpHealthChecks")
_DEFAULT_PORTS = {"HTTP": 80, "HTTPS": 443, "HTTP2": 443, "TCP": 80, "SSL": 443}
_RATE_LIMITS = ("maxRate", "maxRatePerInstance")
_CONNECTION_LIMITS = ("maxConnections", "maxConnectionsPerInstance")
_ENDPOINT_LIMITS = ("maxRatePerEndpoint", "maxConnectionsPerEndpoint")
_WRITABLE = ("description", "backends", "healthChecks", "timeoutSec", "port", "protocol", "portName",
             "enableCDN", "sessionAffinity", "affinityCookieTtlSec", "loadBalancingScheme", "connectionDraining")
_ORDER = ("kind", "id", "creationTimestamp", "name", "description", "selfLink", "backends", "healthChecks",
          "timeoutSec", "port", "protocol", "fingerprint", "portName", "enableCDN", "sessionAffinity",
          "affinityCookieTtlSec", "region", "loadBalancingScheme", "connectionDraining")


def _number(value: object, field: str, low: float, high: float, default: float) -> float:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise Invalid(field, value, f"Must be a number between {low} and {high}.")
    try:
        number = float(value)
    except ValueError:
        raise Invalid(field, value, f"Must be a number between {low} and {high}.") from None
    if not low <= number <= high:
        raise Invalid(field, value, f"Must be between {low} and {high}.")
    return number


def _group(call: Call, scope: str, value: object, field: str) -> Resource:
    """A backend's instance group: zonal, or a regional managed group's (``regions/R``), in the
    service's region when the service is regional."""
    collection = network_endpoint_groups.COLLECTION if isinstance(value, str) and \
        "/networkEndpointGroups/" in value else instance_groups.COLLECTION
    ref = vpc.reference(call, value, field, collection)
    if ref.scope.startswith("zones/"):
        region = find_zone(call.session, call.project, ref.scope.split("/", 1)[1]).region.name
    elif ref.scope.startswith("regions/"):
        region = ref.scope.split("/", 1)[1]
    else:
        raise Invalid(field, value, "The URL is malformed.")
    if scope != "global" and f"regions/{region}" != scope:
        raise Invalid(field, value, f"The instance group must be in a zone of region '{scope.split('/', 1)[1]}'.")
    if collection == network_endpoint_groups.COLLECTION and not ref.scope.startswith("zones/"):
        raise Invalid(field, value, "gstack supports zonal network endpoint groups only.")
    return lb_common.referenced(call, value, field, collection, scope, same_scope=False)


def _backend(call: Call, scope: str, protocol: str, item: object, i: int) -> Body:
    here = f"resource.backends[{i}]"
    if not isinstance(item, dict):
        raise Invalid(here, item, "Must be an object.")
    if item.get("group") in (None, ""):
        raise Required(f"{here}.group")
    out: Body = {"description": item["description"]} if item.get("description") else {}
    group = _group(call, scope, item["group"], f"{here}.group")
    out["group"] = vpc.url(group)
    if group.collection == network_endpoint_groups.COLLECTION:
        return _neg_backend(item, here, protocol, out)
    mode = item.get("balancingMode") or ("UTILIZATION" if protocol in HTTP_PROTOCOLS else "CONNECTION")
    if mode not in MODES:
        raise Invalid(f"{here}.balancingMode", mode, f"Must be one of {', '.join(MODES)}.")
    allowed = ("UTILIZATION", "RATE") if protocol in HTTP_PROTOCOLS else ("UTILIZATION", "CONNECTION")
    if mode not in allowed:
        raise Invalid(f"{here}.balancingMode", mode, f"Balancing mode must be {' or '.join(allowed)} for a backend "
                                                     f"service with protocol {protocol}.")
    for key in _ENDPOINT_LIMITS:
        if item.get(key) is not None:
            raise Invalid(f"{here}.{key}", item[key], f"{key} is for network endpoint group backends.")
    out["balancingMode"] = mode
    out["capacityScaler"] = _capacity_scaler(item, here)
    limits = {"RATE": _RATE_LIMITS, "CONNECTION": _CONNECTION_LIMITS}.get(mode, ())
    for key in (*_RATE_LIMITS, *_CONNECTION_LIMITS):
        if item.get(key) is None:
            continue
        if key not in limits and mode != "UTILIZATION":
            raise Invalid(f"{here}.{key}", item[key], f"{key} cannot be set with balancing mode {mode}.")
        if mode == "UTILIZATION" and key in _CONNECTION_LIMITS and protocol in HTTP_PROTOCOLS:
            raise Invalid(f"{here}.{key}", item[key], f"{key} cannot be set for protocol {protocol}.")
        out[key] = int(_number(item[key], f"{here}.{key}", 1, 10**9, 0))
    if limits and sum(k in out for k in limits) != 1:
        raise Invalid(here, "", f"Exactly one of {' or '.join(limits)} must be set for balancing mode {mode}.")
    if mode == "UTILIZATION" or item.get("maxUtilization") is not None:
        out["maxUtilization"] = _number(item.get("maxUtilization"), f"{here}.maxUtilization", 0.0, 1.0, 0.8)
    return out


def _capacity_scaler(item: Body, here: str) -> float:
    """A backend's capacityScaler: 0 (drained) or within [0.1, 1.0], 1.0 when absent."""
    scaler = _number(item.get("capacityScaler"), f"{here}.capacityScaler", 0.0, 1.0, 1.0)
    if 0 < scaler < 0.1:
        raise Invalid(f"{here}.capacityScaler", item.get("capacityScaler"), "capacityScaler must be 0 or in the "
                                                                            "range [0.1, 1.0].")
    return scaler


def _neg_backend(item: Body, here: str, protocol: str, out: Body) -> Body:
    """A network endpoint group's backend: RATE (HTTP(S)) or CONNECTION (TCP, SSL), one limit of the
    mode (per endpoint or for the group), no utilization."""
    mode = item.get("balancingMode") or ("RATE" if protocol in HTTP_PROTOCOLS else "CONNECTION")
    allowed = "RATE" if protocol in HTTP_PROTOCOLS else "CONNECTION"
    if mode != allowed:
        raise Invalid(f"{here}.balancingMode", mode, f"Balancing mode must be {allowed} for a network endpoint "
                                                     f"group backend of a backend service with protocol {protocol}.")
    out["balancingMode"] = mode
    out["capacityScaler"] = _capacity_scaler(item, here)
    limits = ("maxRate", "maxRatePerEndpoint") if mode == "RATE" else ("maxConnections", "maxConnectionsPerEndpoint")
    for key in (*_RATE_LIMITS, *_CONNECTION_LIMITS, *_ENDPOINT_LIMITS, "maxUtilization"):
        if item.get(key) is None:
            continue
        if key not in limits:
            raise Invalid(f"{here}.{key}", item[key], f"{key} cannot be set for a network endpoint group backend "
                                                      f"with balancing mode {mode}.")
        out[key] = int(_number(item[key], f"{here}.{key}", 1, 10**9, 0))
    if sum(k in out for k in limits) != 1:
        raise Invalid(here, "", f"Exactly one of {' or '.join(limits)} must be set for balancing mode {mode}.")
    return out


def _backends(call: Call, scope: str, protocol: str, value: object) -> list[Body]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise Invalid("resource.backends", value, "Must be a list of backends.")
    out: list[Body] = []
    for i, item in enumerate(value):
        backend = _backend(call, scope, protocol, item, i)
        if any(b["group"] == backend["group"] for b in out):
            raise Invalid(f"resource.backends[{i}].group", item.get("group"), "Duplicate backend group: a group "
                                                                              "can be a backend of a service once.")
        out.append(backend)
    if len({network_endpoint_groups.is_group_url(b["group"]) for b in out}) > 1:
        raise Invalid("resource.backends", "", "A backend service cannot mix instance group and network endpoint "
                                               "group backends.")
    return out


def _health_checks(call: Call, scope: str, value: object) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise Invalid("resource.healthChecks", value, "Must be a list of health checks.")
    if len(value) > 1:
        raise Invalid("resource.healthChecks", value, "A backend service can have at most one health check.")
    out = []
    for i, item in enumerate(value):
        field = f"resource.healthChecks[{i}]"
        collection = "httpHealthChecks" if isinstance(item, str) and "/httpHealthChecks/" in item else "healthChecks"
        if collection == "httpHealthChecks" and scope != "global":
            raise Invalid(field, item, "Regional backend services take regional health checks (healthChecks).")
        out.append(vpc.url(lb_common.referenced(call, item, field, collection, scope)))
    return out


def _fields(call: Call, scope: str, body: Body) -> Body:
    protocol = body.get("protocol") or "HTTP"
    if protocol not in PROTOCOLS:
        raise Invalid("resource.protocol", protocol, f"Must be one of {', '.join(PROTOCOLS)}: gstack balances "
                                                     "HTTP(S) through url maps and target proxies.")
    scheme = body.get("loadBalancingScheme") or "EXTERNAL"
    if scheme not in SCHEMES:
        raise Invalid("resource.loadBalancingScheme", scheme, f"Must be one of {', '.join(SCHEMES)}: passthrough "
                                                              "load balancers use target pools in gstack.")
    if scheme == "EXTERNAL" and scope != "global":
        raise Invalid("resource.loadBalancingScheme", scheme, "Regional backend services of an HTTP(S) load "
                                                              "balancer are EXTERNAL_MANAGED or INTERNAL_MANAGED.")
    affinity = body.get("sessionAffinity") or "NONE"
    if affinity not in AFFINITIES:
        raise Invalid("resource.sessionAffinity", affinity, f"Must be one of {', '.join(AFFINITIES)}.")
    backends = _backends(call, scope, protocol, body.get("backends"))
    checks = _health_checks(call, scope, body.get("healthChecks"))
    if backends and not checks:
        raise Invalid("resource.healthChecks", "", "Backend services with instance group or network endpoint "
                                                   "group backends require a health check.")
    draining = body.get("connectionDraining") or {}
    out: Body = {"description": body.get("description") or ""}
    if backends:
        out["backends"] = backends
    if checks:
        out["healthChecks"] = checks
    out.update(timeoutSec=vpc.integer(body.get("timeoutSec"), "resource.timeoutSec", 1, 86400, 30),
               port=vpc.integer(body.get("port"), "resource.port", 1, 65535, _DEFAULT_PORTS[protocol]),
               protocol=protocol,
               portName=store.validate_name(body.get("portName") or protocol.lower(), "resource.portName"),
               enableCDN=bool(body.get("enableCDN")), sessionAffinity=affinity,
               affinityCookieTtlSec=vpc.integer(body.get("affinityCookieTtlSec"), "resource.affinityCookieTtlSec",
                                                0, 1209600, 0),
               loadBalancingScheme=scheme,
               connectionDraining={"drainingTimeoutSec": vpc.integer(
                   draining.get("drainingTimeoutSec") if isinstance(draining, dict) else draining,
                   "resource.connectionDraining.drainingTimeoutSec", 0, 3600, 300)})
    if out["enableCDN"]:
        raise Invalid("resource.enableCDN", True, "Cloud CDN is not available in gstack.")
    return out


def _save(res: Resource, body: Body) -> None:
    lb_common.save(res, body, _ORDER, KIND)


def insert(call: Call, region: str | None, body: Body) -> Operation:
    scope = lb_common.scope_of(call, region)
    name = lb_common.new_name(call, COLLECTION, scope, body)
    before = lb_common.networks_in_use(call.session, call.project)
    fields = _fields(call, scope, body)
    if region is not None:
        fields["region"] = scope_url(call.project, scope)
    res = store.new_resource(call.session, project=call.project, collection=COLLECTION, scope=scope, name=name,
                             kind=KIND, region=region, body=fields,
                             finish=lambda full: lb_common.set_fingerprint(full, KIND))
    lb_common.notify(call.session, call.project, before)
    return lb_common.begin(call, res, "insert")


def replace(call: Call, region: str | None, name: str, body: Body, merge: bool) -> Operation:
    """patch (JSON merge patch of the writable fields) and update (the body replaces them; omitted
    fields take their defaults)."""
    scope = lb_common.scope_of(call, region)
    res = lb_common.find(call, COLLECTION, scope, name)
    current = store.body_of(res)
    if body.get("name") not in (None, res.name):
        raise Invalid("resource.name", body["name"], "The name of a backend service cannot be changed.")
    lb_common.check_fingerprint(body.get("fingerprint"), current)
    given = {k: v for k, v in body.items() if k in _WRITABLE}
    mine = {k: v for k, v in current.items() if k in _WRITABLE}
    fields = _fields(call, scope, vpc.merge_patch(mine, given) if merge else given)
    if fields["loadBalancingScheme"] != current["loadBalancingScheme"]:
        raise Invalid("resource.loadBalancingScheme", fields["loadBalancingScheme"], "The load balancing scheme of a "
                                                                                     "backend service cannot be changed.")
    _check_users(call, res, fields)
    before = lb_common.networks_in_use(call.session, call.project)
    _save(res, {**{k: v for k, v in current.items() if k not in _WRITABLE}, **fields})
    lb_common.notify(call.session, call.project, before)
    return lb_common.begin(call, res, "patch" if merge else "update")


def _check_users(call: Call, res: Resource, fields: Body) -> None:
    """A service a url map uses must stay an HTTP(S) one."""
    if fields["protocol"] not in HTTP_PROTOCOLS:
        maps = lb_common.users(call.session, call.project, res, ("urlMaps",))
        if maps:
            raise Invalid("resource.protocol", fields["protocol"], f"The backend service is used by url map "
                                                                   f"'{vpc.path(maps[0])}', which needs HTTP, "
                                                                   "HTTPS or HTTP2.")


def delete(call: Call, region: str | None, name: str) -> Operation:
    scope = lb_common.scope_of(call, region)
    res = lb_common.find(call, COLLECTION, scope, name)
    lb_common.refuse_if_used(call.session, "backend_service", res, ("urlMaps",))
    before = lb_common.networks_in_use(call.session, call.project)
    op = lb_common.begin(call, res, "delete")
    call.session.delete(res)
    call.session.flush()
    lb_common.notify(call.session, call.project, before)
    return op


def group_health(call: Call, region: str | None, name: str, body: Body) -> Body:
    """getHealth of one backend group: each member with its address and the named port."""
    scope = lb_common.scope_of(call, region)
    res = store.find(call.session, call.project, COLLECTION, scope, name)
    service = store.body_of(res)
    neg = network_endpoint_groups.is_group_url(body.get("group"))
    ref = vpc.reference(call, body.get("group"), "resourceGroupReference.group",
                        network_endpoint_groups.COLLECTION if neg else instance_groups.COLLECTION)
    if ref.url not in [b["group"] for b in service.get("backends") or []]:
        raise Invalid("resourceGroupReference.group", body.get("group"), f"The instance group is not a backend of "
                                                                         f"'{vpc.path(res)}'.")
    group = store.find(call.session, ref.project, ref.collection, ref.scope, ref.name)
    if neg:
        found = network_endpoint_groups.endpoint_health(call.session, group)
        return {"kind": "compute#backendServiceGroupHealth", **({"healthStatus": found} if found else {})}
    port = next((p["port"] for p in store.body_of(group).get("namedPorts") or [] if p["name"] == service["portName"]),
                None)
    members = lb_common.member_addresses(call.session, group)
    down = health.not_serving(call.session, [m.uid for m in members])
    statuses = []
    for m in members:
        healthy = m.status == "RUNNING" and port is not None and m.uid not in down
        item: Body = {"healthState": health.HEALTHY if healthy else health.UNHEALTHY,
                      "instance": m.url}
        ip = m.ip
        if ip:
            item["ipAddress"] = ip
        if port is not None:
            item["port"] = port
        statuses.append(item)
    out: Body = {"kind": "compute#backendServiceGroupHealth"}
    if statuses:
        out["healthStatus"] = statuses
    return out
