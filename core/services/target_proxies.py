"""targetHttpProxies and targetHttpsProxies, global and regional: what a forwarding rule of an HTTP(S)
load balancer points at. A proxy names the url map that routes its requests; an HTTPS proxy also the
certificates it terminates TLS with and, optionally, an SSL policy.

The virtual router renders a proxy as the mode of its frontend (plain HTTP, or TLS terminated with
the certificates' PEM files and the policy's versions and ciphers). Changes touch only the database.
"""

from __future__ import annotations

from core.errors import Invalid, Required
from core.links import scope_url
from core.models import Operation, Resource
from core.resources import store
from core.resources.context import Call
from core.resources.store import Body
from core.services import lb_common, vpc

HTTP, HTTPS = "targetHttpProxies", "targetHttpsProxies"
KINDS = {HTTP: "compute#targetHttpProxy", HTTPS: "compute#targetHttpsProxy"}
USE_KINDS = {HTTP: "target_http_proxy", HTTPS: "target_https_proxy"}
MAX_CERTIFICATES = 15
_ORDER = ("kind", "id", "creationTimestamp", "name", "description", "selfLink", "urlMap", "sslCertificates",
          "quicOverride", "sslPolicy", "fingerprint", "region")


def _url_map(call: Call, scope: str, value: object, field: str) -> str:
    if value in (None, ""):
        raise Required(field)
    return vpc.url(lb_common.referenced(call, value, field, "urlMaps", scope))


def _certificates(call: Call, scope: str, value: object, field: str) -> list[str]:
    if not value:
        raise Invalid(field, "", "At least one SSL certificate must be specified.")
    if not isinstance(value, list) or len(value) > MAX_CERTIFICATES:
        raise Invalid(field, value, f"At most {MAX_CERTIFICATES} SSL certificates may be specified.")
    out: list[str] = []
    for i, item in enumerate(value):
        url = vpc.url(lb_common.referenced(call, item, f"{field}[{i}]", "sslCertificates", scope))
        if url not in out:
            out.append(url)
    return out


def _policy(call: Call, scope: str, value: object, field: str) -> str | None:
    if value in (None, ""):
        return None
    return vpc.url(lb_common.referenced(call, value, field, "sslPolicies", scope))


def _save(res: Resource, body: Body) -> None:
    lb_common.save(res, body, _ORDER, KINDS[res.collection])


def insert(call: Call, collection: str, region: str | None, body: Body) -> Operation:
    scope = lb_common.scope_of(call, region)
    name = lb_common.new_name(call, collection, scope, body)
    fields: Body = {"description": body["description"]} if body.get("description") else {}
    fields["urlMap"] = _url_map(call, scope, body.get("urlMap"), "resource.urlMap")
    if collection == HTTPS:
        fields["sslCertificates"] = _certificates(call, scope, body.get("sslCertificates"),
                                                  "resource.sslCertificates")
        quic = body.get("quicOverride") or "NONE"
        if quic not in ("NONE", "ENABLE", "DISABLE"):
            raise Invalid("resource.quicOverride", quic, "Must be NONE, ENABLE or DISABLE.")
        fields["quicOverride"] = quic
        policy = _policy(call, scope, body.get("sslPolicy"), "resource.sslPolicy")
        if policy:
            fields["sslPolicy"] = policy
    if region is not None:
        fields["region"] = scope_url(call.project, scope)
    res = store.new_resource(call.session, project=call.project, collection=collection, scope=scope, name=name,
                             kind=KINDS[collection], region=region, body=fields,
                             finish=lambda full: lb_common.set_fingerprint(full, KINDS[collection]))
    return lb_common.begin(call, res, "insert")


def _change(call: Call, collection: str, region: str | None, name: str, op_type: str, **changes: object) -> Operation:
    """Set (or with None, remove) fields of a proxy; the routers render again."""
    scope = lb_common.scope_of(call, region)
    res = lb_common.find(call, collection, scope, name)
    body = store.body_of(res)
    before = lb_common.networks_in_use(call.session, call.project)
    for key, value in changes.items():
        if value is None:
            body.pop(key, None)
        else:
            body[key] = value
    _save(res, body)
    lb_common.notify(call.session, call.project, before)
    return lb_common.begin(call, res, op_type)


def set_url_map(call: Call, collection: str, region: str | None, name: str, body: Body) -> Operation:
    scope = lb_common.scope_of(call, region)
    lb_common.find(call, collection, scope, name)
    return _change(call, collection, region, name, "setUrlMap", urlMap=_url_map(call, scope, body.get("urlMap"),
                                                                                 "urlMap"))


def set_certificates(call: Call, region: str | None, name: str, body: Body) -> Operation:
    scope = lb_common.scope_of(call, region)
    lb_common.find(call, HTTPS, scope, name)
    return _change(call, HTTPS, region, name, "setSslCertificates",
                   sslCertificates=_certificates(call, scope, body.get("sslCertificates"), "sslCertificates"))


def set_policy(call: Call, name: str, body: Body) -> Operation:
    lb_common.find(call, HTTPS, "global", name)
    return _change(call, HTTPS, None, name, "setSslPolicy",
                   sslPolicy=_policy(call, "global", body.get("sslPolicy"), "sslPolicy"))


def patch(call: Call, collection: str, region: str | None, name: str, body: Body) -> Operation:
    """patch: description, urlMap and (HTTPS) sslCertificates, sslPolicy, quicOverride."""
    scope = lb_common.scope_of(call, region)
    current = store.body_of(lb_common.find(call, collection, scope, name))
    lb_common.check_fingerprint(body.get("fingerprint"), current)
    if body.get("name") not in (None, name):
        raise Invalid("resource.name", body["name"], "The name of a target proxy cannot be changed.")
    changes: dict[str, object] = {}
    if "description" in body:
        changes["description"] = body["description"] or None
    if body.get("urlMap") is not None:
        changes["urlMap"] = _url_map(call, scope, body["urlMap"], "resource.urlMap")
    if collection == HTTPS:
        if body.get("sslCertificates") is not None:
            changes["sslCertificates"] = _certificates(call, scope, body["sslCertificates"], "resource.sslCertificates")
        if "sslPolicy" in body:
            changes["sslPolicy"] = _policy(call, scope, body["sslPolicy"], "resource.sslPolicy")
        if body.get("quicOverride") is not None:
            if body["quicOverride"] not in ("NONE", "ENABLE", "DISABLE"):
                raise Invalid("resource.quicOverride", body["quicOverride"], "Must be NONE, ENABLE or DISABLE.")
            changes["quicOverride"] = body["quicOverride"]
    return _change(call, collection, region, name, "patch", **changes)


def delete(call: Call, collection: str, region: str | None, name: str) -> Operation:
    scope = lb_common.scope_of(call, region)
    res = lb_common.find(call, collection, scope, name)
    lb_common.refuse_if_used(call.session, USE_KINDS[collection], res, ("forwardingRules",))
    op = lb_common.begin(call, res, "delete")
    call.session.delete(res)
    return op
