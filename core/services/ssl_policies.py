"""sslPolicies and regionSslPolicies: the TLS versions and cipher suites a target HTTPS proxy offers.

A profile names a set of features (GCE's lists, below); CUSTOM takes ``customFeatures``. The virtual
router renders the policy as the frontend's ``ssl-min-ver`` and cipher list.
"""

from __future__ import annotations

from core.errors import Invalid, Required
from core.links import scope_url
from core.models import Operation, Resource
from core.resources import store
from core.resources.context import Call
from core.resources.store import Body
from core.services import lb_common, vpc

COLLECTION = "sslPolicies"
KIND = "compute#sslPolicy"
PROFILES = ("COMPATIBLE", "MODERN", "RESTRICTED", "CUSTOM")
TLS_VERSIONS = ("TLS_1_0", "TLS_1_1", "TLS_1_2", "TLS_1_3")
_RESTRICTED = ("TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
               "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
               "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256")
_MODERN = (*_RESTRICTED, "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA", "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
           "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA")
_COMPATIBLE = (*_MODERN, "TLS_RSA_WITH_AES_128_GCM_SHA256", "TLS_RSA_WITH_AES_256_GCM_SHA384",
               "TLS_RSA_WITH_AES_128_CBC_SHA", "TLS_RSA_WITH_AES_256_CBC_SHA", "TLS_RSA_WITH_3DES_EDE_CBC_SHA")
FEATURES = {"COMPATIBLE": _COMPATIBLE, "MODERN": _MODERN, "RESTRICTED": _RESTRICTED}
_WRITABLE = ("description", "profile", "minTlsVersion", "customFeatures")
_ORDER = ("kind", "id", "creationTimestamp", "selfLink", "name", "description", "profile", "minTlsVersion",
          "enabledFeatures", "customFeatures", "fingerprint", "region")


def _fields(body: Body) -> Body:
    profile = body.get("profile") or "COMPATIBLE"
    if profile not in PROFILES:
        raise Invalid("resource.profile", profile, f"Must be one of {', '.join(PROFILES)}.")
    version = body.get("minTlsVersion") or "TLS_1_0"
    if version not in TLS_VERSIONS:
        raise Invalid("resource.minTlsVersion", version, f"Must be one of {', '.join(TLS_VERSIONS)}.")
    custom = body.get("customFeatures")
    out: Body = {"description": body["description"]} if body.get("description") else {}
    out.update(profile=profile, minTlsVersion=version)
    if profile == "CUSTOM":
        if not custom:
            raise Required("resource.customFeatures")
        if not isinstance(custom, list) or any(f not in _COMPATIBLE for f in custom):
            raise Invalid("resource.customFeatures", custom, "Must name features of listAvailableFeatures.")
        out["enabledFeatures"] = sorted(set(custom))
        out["customFeatures"] = sorted(set(custom))
    else:
        if custom:
            raise Invalid("resource.customFeatures", custom, "Custom features may only be given with the CUSTOM "
                                                             "profile.")
        out["enabledFeatures"] = sorted(FEATURES[profile])
    return out


def _save(res: Resource, body: Body) -> None:
    lb_common.save(res, body, _ORDER, KIND)


def insert(call: Call, region: str | None, body: Body) -> Operation:
    scope = lb_common.scope_of(call, region)
    name = lb_common.new_name(call, COLLECTION, scope, body)
    fields = _fields(body)
    if region is not None:
        fields["region"] = scope_url(call.project, scope)
    res = store.new_resource(call.session, project=call.project, collection=COLLECTION, scope=scope, name=name,
                             kind=KIND, region=region, body=fields,
                             finish=lambda full: lb_common.set_fingerprint(full, KIND))
    return lb_common.begin(call, res, "insert")


def patch(call: Call, region: str | None, name: str, body: Body) -> Operation:
    scope = lb_common.scope_of(call, region)
    res = lb_common.find(call, COLLECTION, scope, name)
    current = store.body_of(res)
    lb_common.check_fingerprint(body.get("fingerprint"), current)
    mine = {k: v for k, v in current.items() if k in _WRITABLE}
    merged = vpc.merge_patch(mine, {k: v for k, v in body.items() if k in _WRITABLE})
    if merged.get("profile") != "CUSTOM" and "customFeatures" not in body:
        merged.pop("customFeatures", None)  # leaving CUSTOM drops its features
    fields = _fields(merged)
    before = lb_common.networks_in_use(call.session, call.project)
    _save(res, {**{k: v for k, v in current.items() if k not in (*_WRITABLE, "enabledFeatures")}, **fields})
    lb_common.notify(call.session, call.project, before)
    return lb_common.begin(call, res, "patch")


def delete(call: Call, region: str | None, name: str) -> Operation:
    scope = lb_common.scope_of(call, region)
    res = lb_common.find(call, COLLECTION, scope, name)
    lb_common.refuse_if_used(call.session, "ssl_policy", res, ("targetHttpsProxies",))
    op = lb_common.begin(call, res, "delete")
    call.session.delete(res)
    return op


def available_features() -> Body:
    return {"features": sorted(_COMPATIBLE)}
