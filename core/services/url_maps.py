"""urlMaps and regionUrlMaps: which backend service a request goes to, by its host (``hostRules``
naming a ``pathMatcher``) and its path (``pathRules``: ``/api/*`` a prefix, ``/login`` one path),
else the matcher's or the map's ``defaultService``.

The virtual router renders a url map as the ACLs and ``use_backend`` lines of an HAProxy frontend
(``core.systemvms.http_lb``); :func:`route` here is the same decision in Python, used by ``validate``
to run the map's ``tests``. Changes touch only the database: Operations are born DONE.
"""

from __future__ import annotations

import re

from core.errors import ComputeError, Invalid, Required
from core.links import scope_url
from core.models import Operation, Resource
from core.resources import store
from core.resources.context import Call
from core.resources.store import Body
from core.services import backend_services, lb_common, vpc

COLLECTION = "urlMaps"
KIND = "compute#urlMap"
_HOST = re.compile(r"(\*|(\*[.-])?[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?)(:\d{1,5})?\Z")
_PATH = re.compile(r"/[A-Za-z0-9._~!$&'()+,;=:@%/-]{0,1022}(/\*)?\Z|/\*\Z")
_WRITABLE = ("description", "hostRules", "pathMatchers", "defaultService", "tests")
_ORDER = ("kind", "id", "creationTimestamp", "name", "description", "selfLink", "hostRules", "pathMatchers",
          "tests", "defaultService", "fingerprint", "region")


def _list(value: object, field: str) -> list[object]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise Invalid(field, value, "Must be a list.")
    return value


def _service(call: Call, scope: str, value: object, field: str, schemes: set[str]) -> str:
    if isinstance(value, str) and "/backendBuckets/" in value:
        raise Invalid(field, value, "Backend buckets are not supported by gstack: use a backend service.")
    res = lb_common.referenced(call, value, field, backend_services.COLLECTION, scope)
    body = store.body_of(res)
    if body["protocol"] not in backend_services.HTTP_PROTOCOLS:
        raise Invalid(field, value, f"Backend service with protocol {body['protocol']} cannot be used by a URL map: "
                                    "it must be HTTP, HTTPS or HTTP2.")
    schemes.add(body["loadBalancingScheme"])
    if len(schemes) > 1:
        raise Invalid(field, value, "All backend services of a URL map must have the same load balancing scheme.")
    return vpc.url(res)


def _path_rules(call: Call, scope: str, value: object, field: str, schemes: set[str]) -> list[Body]:
    out: list[Body] = []
    seen: set[str] = set()
    for j, rule in enumerate(_list(value, field)):
        here = f"{field}[{j}]"
        if not isinstance(rule, dict):
            raise Invalid(here, rule, "Must be an object.")
        paths = _list(rule.get("paths"), f"{here}.paths")
        if not paths:
            raise Required(f"{here}.paths")
        for k, path in enumerate(paths):
            if not isinstance(path, str) or not _PATH.match(path):
                raise Invalid(f"{here}.paths[{k}]", path, "A path must start with '/' and may end with '/*' (a "
                                                          "prefix); '*' is allowed nowhere else.")
            if path in seen:
                raise Invalid(f"{here}.paths[{k}]", path, "Duplicate path in the path matcher.")
            seen.add(path)
        if rule.get("service") in (None, ""):
            raise Required(f"{here}.service")
        out.append({"service": _service(call, scope, rule["service"], f"{here}.service", schemes), "paths": paths})
    return out


def _path_matchers(call: Call, scope: str, value: object, schemes: set[str]) -> list[Body]:
    out: list[Body] = []
    for i, pm in enumerate(_list(value, "resource.pathMatchers")):
        here = f"resource.pathMatchers[{i}]"
        if not isinstance(pm, dict):
            raise Invalid(here, pm, "Must be an object.")
        if pm.get("name") in (None, ""):
            raise Required(f"{here}.name")
        name = store.validate_name(pm["name"], f"{here}.name")
        if any(p["name"] == name for p in out):
            raise Invalid(f"{here}.name", name, "Duplicate path matcher name.")
        if pm.get("defaultService") in (None, ""):
            raise Required(f"{here}.defaultService")
        item: Body = {"name": name}
        if pm.get("description"):
            item["description"] = pm["description"]
        item["defaultService"] = _service(call, scope, pm["defaultService"], f"{here}.defaultService", schemes)
        rules = _path_rules(call, scope, pm.get("pathRules"), f"{here}.pathRules", schemes)
        if rules:
            item["pathRules"] = rules
        out.append(item)
    return out


def _host_rules(value: object, matchers: list[Body]) -> list[Body]:
    out: list[Body] = []
    seen: set[str] = set()
    for i, rule in enumerate(_list(value, "resource.hostRules")):
        here = f"resource.hostRules[{i}]"
        if not isinstance(rule, dict):
            raise Invalid(here, rule, "Must be an object.")
        hosts = _list(rule.get("hosts"), f"{here}.hosts")
        if not hosts:
            raise Required(f"{here}.hosts")
        for k, host in enumerate(hosts):
            if not isinstance(host, str) or not _HOST.match(host.lower()):
                raise Invalid(f"{here}.hosts[{k}]", host, "A host must be a host name, '*' or '*.' followed by a "
                                                          "domain, with an optional port.")
            if host.lower() in seen:
                raise Invalid(f"{here}.hosts[{k}]", host, f"Duplicate host '{host}' in the host rules.")
            seen.add(host.lower())
        if rule.get("pathMatcher") in (None, ""):
            raise Required(f"{here}.pathMatcher")
        if not any(m["name"] == rule["pathMatcher"] for m in matchers):
            raise Invalid(f"{here}.pathMatcher", rule["pathMatcher"], f"Path matcher '{rule['pathMatcher']}' "
                                                                      "does not exist in the URL map.")
        item: Body = {"hosts": [str(h).lower() for h in hosts], "pathMatcher": rule["pathMatcher"]}
        if rule.get("description"):
            item = {"description": rule["description"], **item}
        out.append(item)
    return out


def _tests(call: Call, scope: str, value: object, schemes: set[str]) -> list[Body]:
    out = []
    for i, test in enumerate(_list(value, "resource.tests")):
        here = f"resource.tests[{i}]"
        if not isinstance(test, dict) or not test.get("host") or not test.get("path") or not test.get("service"):
            raise Invalid(here, test, "A test needs a host, a path and the service expected.")
        out.append({"host": test["host"], "path": test["path"],
                    "service": _service(call, scope, test["service"], f"{here}.service", schemes)})
    return out


def _fields(call: Call, scope: str, body: Body) -> Body:
    schemes: set[str] = set()
    if body.get("defaultService") in (None, ""):
        raise Required("resource.defaultService")
    default = _service(call, scope, body["defaultService"], "resource.defaultService", schemes)
    matchers = _path_matchers(call, scope, body.get("pathMatchers"), schemes)
    hosts = _host_rules(body.get("hostRules"), matchers)
    out: Body = {"description": body["description"]} if body.get("description") else {}
    if hosts:
        out["hostRules"] = hosts
    if matchers:
        out["pathMatchers"] = matchers
    tests = _tests(call, scope, body.get("tests"), schemes)
    if tests:
        out["tests"] = tests
    out["defaultService"] = default
    return out


def _save(res: Resource, body: Body) -> None:
    lb_common.save(res, body, _ORDER, KIND)


def insert(call: Call, region: str | None, body: Body) -> Operation:
    scope = lb_common.scope_of(call, region)
    name = lb_common.new_name(call, COLLECTION, scope, body)
    fields = _fields(call, scope, body)
    if region is not None:
        fields["region"] = scope_url(call.project, scope)
    res = store.new_resource(call.session, project=call.project, collection=COLLECTION, scope=scope, name=name,
                             kind=KIND, region=region, body=fields,
                             finish=lambda full: lb_common.set_fingerprint(full, KIND))
    return lb_common.begin(call, res, "insert")


def replace(call: Call, region: str | None, name: str, body: Body, merge: bool) -> Operation:
    """patch (merge patch of the writable fields; lists replace) and update (the body replaces them)."""
    scope = lb_common.scope_of(call, region)
    res = lb_common.find(call, COLLECTION, scope, name)
    current = store.body_of(res)
    if body.get("name") not in (None, res.name):
        raise Invalid("resource.name", body["name"], "The name of a URL map cannot be changed.")
    lb_common.check_fingerprint(body.get("fingerprint"), current)
    given = {k: v for k, v in body.items() if k in _WRITABLE}
    mine = {k: v for k, v in current.items() if k in _WRITABLE}
    fields = _fields(call, scope, vpc.merge_patch(mine, given) if merge else given)
    before = lb_common.networks_in_use(call.session, call.project)
    _save(res, {**{k: v for k, v in current.items() if k not in _WRITABLE}, **fields})
    lb_common.notify(call.session, call.project, before)
    return lb_common.begin(call, res, "patch" if merge else "update")


def delete(call: Call, region: str | None, name: str) -> Operation:
    scope = lb_common.scope_of(call, region)
    res = lb_common.find(call, COLLECTION, scope, name)
    lb_common.refuse_if_used(call.session, "url_map", res, ("targetHttpProxies", "targetHttpsProxies"))
    op = lb_common.begin(call, res, "delete")
    call.session.delete(res)
    return op


def _host_matches(pattern: str, host: str) -> bool:
    if pattern == "*":
        return True
    if pattern.startswith("*"):
        return host.endswith(pattern[1:])
    return host == pattern


def route(url_map: Body, host: str, path: str) -> str:
    """The service a request for ``host`` and ``path`` goes to: the host rule naming the host (an
    exact name before a wildcard), then its matcher's longest matching path (an exact path before a
    prefix of the same length), else the matcher's default; the map's default when no host rule
    matches."""
    host = host.lower()
    rules = [(h, r["pathMatcher"]) for r in url_map.get("hostRules") or [] for h in r["hosts"]]
    matching = sorted((h for h in rules if _host_matches(h[0], host)), key=lambda h: (h[0] == "*", -len(h[0])))
    if not matching:
        return str(url_map["defaultService"])
    matcher = next(m for m in url_map["pathMatchers"] if m["name"] == matching[0][1])
    best: tuple[int, int, str] | None = None
    for rule in matcher.get("pathRules") or []:
        for p in rule["paths"]:
            prefix = p.endswith("*")
            if (path.startswith(p[:-1]) if prefix else path == p):
                key = (len(p) - (1 if prefix else 0), 0 if prefix else 1, rule["service"])
                best = key if best is None or key[:2] > best[:2] else best
    return best[2] if best else str(matcher["defaultService"])


def validate(call: Call, region: str | None, body: Body) -> Body:
    """urlMaps.validate: whether the map in ``resource`` would load, and its tests' outcome. Nothing
    is stored."""
    scope = lb_common.scope_of(call, region)
    resource = body.get("resource") or {}
    if not isinstance(resource, dict):
        raise Invalid("resource", resource, "Must be a URL map.")
    try:
        fields = _fields(call, scope, resource)
    except ComputeError as exc:
        return {"result": {"loadSucceeded": False, "loadErrors": [exc.message], "testPassed": False}}
    failures = []
    for test in fields.get("tests") or []:
        actual = route(fields, test["host"], test["path"])
        if actual != test["service"]:
            failures.append({"host": test["host"], "path": test["path"], "expectedService": test["service"],
                             "actualService": actual})
    result: Body = {"loadSucceeded": True, "testPassed": not failures}
    if failures:
        result["testFailures"] = failures
    return {"result": result}
