"""The parts of a managed group's body a user may change after insert: its ``versions``, its
``updatePolicy`` and its ``autoHealingPolicies``, validated as GCE validates them and stored with
GCE's defaults and ``calculated`` values, so GET shows what the reconciler will do.

One parser serves insert, patch and setInstanceTemplate; a refused body raises before anything is
written.
"""

from __future__ import annotations

from core.errors import Invalid
from core.links import parse_ref, url_of
from core.resources import store
from core.resources.context import Call
from core.resources.store import Body
from core.services import projects
from core.services.instance_group_managers.state import calculated

ACTIONS = ("NONE", "REFRESH", "RESTART", "REPLACE")  # least to most disruptive
TYPES = ("OPPORTUNISTIC", "PROACTIVE")
METHODS = ("SUBSTITUTE", "RECREATE")
HEALTH_CHECKS = ("healthChecks", "httpHealthChecks", "httpsHealthChecks")
DEFAULT_POLICY: Body = {"type": "OPPORTUNISTIC", "minimalAction": "REPLACE", "mostDisruptiveAllowedAction": "REPLACE",
                        "maxSurge": {"fixed": 1}, "maxUnavailable": {"fixed": 1}, "replacementMethod": "SUBSTITUTE"}
REDISTRIBUTION = "instanceRedistributionType"
PERCENT_MIN_SIZE = 10  # a percent maxSurge/maxUnavailable needs a group of at least 10


def template(call: Call, region: str, value: object, field: str) -> tuple[str, Body]:
    """The canonical URL of the template a group names (global, or regional in the group's region),
    and its stored body."""
    ref = parse_ref(value, project=call.project, scope="global") if isinstance(value, str) else None
    if ref is None or ref.collection != "instanceTemplates" or not (
            ref.scope == "global" or ref.scope.startswith("regions/")):
        raise Invalid(field, value, "The URL is malformed.")
    if ref.scope not in ("global", f"regions/{region}"):
        raise Invalid(field, value, f"The regional instance template must be in region '{region}'.")
    projects.own(call, ref)
    res = store.find(call.session, ref.project, "instanceTemplates", ref.scope, ref.name)
    return url_of(res.project, res.scope, "instanceTemplates", res.name), store.body_of(res)


def _fixed_or_percent(value: object, field: str) -> Body:
    if not isinstance(value, dict) or ("fixed" in value) == ("percent" in value):
        raise Invalid(field, value, "Exactly one of fixed or percent must be set.")
    key = "fixed" if "fixed" in value else "percent"
    try:
        number = int(str(value[key]))
    except ValueError:
        raise Invalid(f"{field}.{key}", value[key]) from None
    if number < 0 or (key == "percent" and number > 100):
        raise Invalid(f"{field}.{key}", number, "Must be between 0 and 100." if key == "percent"
                      else "Must be greater than or equal to 0")
    return {key: number}


def versions(call: Call, region: str, value: object, field: str = "resource.versions") -> list[Body]:
    """The versions of a body: each a template, an optional unique name, and a targetSize for all
    but one of them (GCE allows at most two versions)."""
    if not isinstance(value, list) or not value:
        raise Invalid(field, value, "At least one version must be specified.")
    if len(value) > 2:
        raise Invalid(field, value, "At most two versions can be specified.")
    out: list[Body] = []
    for i, v in enumerate(value):
        f = f"{field}[{i}]"
        if not isinstance(v, dict) or not v.get("instanceTemplate"):
            raise Invalid(f"{f}.instanceTemplate", None, "Instance template must be specified.")
        url, _ = template(call, region, v["instanceTemplate"], f"{f}.instanceTemplate")
        item: Body = {"instanceTemplate": url}
        if v.get("name"):
            item["name"] = str(v["name"])  # free text: gcloud names them "0/<timestamp>"
        if v.get("targetSize") is not None:
            item["targetSize"] = _fixed_or_percent(v["targetSize"], f"{f}.targetSize")
        out.append(item)
    if sum(1 for v in out if "targetSize" not in v) != 1:
        raise Invalid(field, value, "Exactly one version must leave targetSize unset.")
    names = [v["name"] for v in out if v.get("name")]
    if len(names) != len(set(names)):
        raise Invalid(field, value, "Version names must be unique.")
    return out


def _choice(value: object, field: str, allowed: tuple[str, ...], default: str) -> str:
    if value in (None, ""):
        return default
    if value not in allowed:
        raise Invalid(field, value, f"Must be one of {list(allowed)}.")
    return str(value)


def update_policy(value: object, current: Body | None, target: int) -> Body:
    """The group's updatePolicy after a patch with ``value`` (a merge over ``current``), checked
    against GCE's rules, without ``calculated`` (see :func:`render_policy`)."""
    field = "resource.updatePolicy"
    if not isinstance(value, dict):
        raise Invalid(field, value)
    base = {k: v for k, v in (current or DEFAULT_POLICY).items() if k in DEFAULT_POLICY or k == REDISTRIBUTION}
    out: Body = {**DEFAULT_POLICY, **base}
    for key, allowed in (("type", TYPES), ("minimalAction", ACTIONS), ("mostDisruptiveAllowedAction", ACTIONS),
                         ("replacementMethod", METHODS)):
        if key in value:
            out[key] = _choice(value[key], f"{field}.{key}", allowed, DEFAULT_POLICY[key])
    if REDISTRIBUTION in base and value.get(REDISTRIBUTION):  # regional groups only
        out[REDISTRIBUTION] = _choice(value[REDISTRIBUTION], f"{field}.{REDISTRIBUTION}", ("PROACTIVE", "NONE"),
                                      base[REDISTRIBUTION])
    for key in ("maxSurge", "maxUnavailable"):
        if value.get(key) is not None:
            out[key] = _fixed_or_percent(value[key], f"{field}.{key}")
            if "percent" in out[key] and target < PERCENT_MIN_SIZE:
                raise Invalid(f"{field}.{key}.percent", out[key]["percent"], (
                    f"Percent value is only allowed for managed instance groups with size at least "
                    f"{PERCENT_MIN_SIZE}."))
    if ACTIONS.index(out["minimalAction"]) > ACTIONS.index(out["mostDisruptiveAllowedAction"]):
        raise Invalid(f"{field}.mostDisruptiveAllowedAction", out["mostDisruptiveAllowedAction"],
                      "Most disruptive allowed action cannot be less disruptive than minimal action.")
    surge, unavailable = (calculated(out[k], target, r) for k, r in (("maxSurge", "up"), ("maxUnavailable", "down")))
    if out["replacementMethod"] == "RECREATE" and surge:
        raise Invalid(f"{field}.maxSurge", out["maxSurge"],
                      "maxSurge must be equal to 0 when replacement method is set to RECREATE")
    if out["minimalAction"] == "REPLACE" and out["type"] == "PROACTIVE" and not surge and not unavailable:
        raise Invalid(f"{field}.maxUnavailable", out["maxUnavailable"],
                      "At least one of either maxSurge or maxUnavailable must be greater than 0.")
    return out


def render_policy(policy: Body, target: int) -> Body:
    """The stored policy with ``calculated`` set for the group's current targetSize."""
    out = dict(policy)
    for key, rounding in (("maxSurge", "up"), ("maxUnavailable", "down")):
        value = {k: v for k, v in policy[key].items() if k != "calculated"}
        out[key] = {**value, "calculated": calculated(value, target, rounding)}
    return out


def render_versions(items: list[Body], target: int) -> list[Body]:
    out = []
    for v in items:
        item = dict(v)
        if "targetSize" in v:
            value = {k: x for k, x in v["targetSize"].items() if k != "calculated"}
            item["targetSize"] = {**value, "calculated": min(target, calculated(value, target, "up"))}
        out.append(item)
    return out


def auto_healing(call: Call, region: str, value: object) -> list[Body]:
    """autoHealingPolicies: at most one, a health check of the project (global, or regional in the
    group's region) and an initialDelaySec in [0, 3600] (GCE's default 300). An empty list removes it."""
    field = "resource.autoHealingPolicies"
    if not isinstance(value, list):
        raise Invalid(field, value)
    if len(value) > 1:
        raise Invalid(field, value, "At most one autohealing policy can be specified.")
    out: list[Body] = []
    for i, p in enumerate(value):
        f = f"{field}[{i}]"
        if not isinstance(p, dict):
            raise Invalid(f, p)
        item: Body = {}
        if p.get("healthCheck"):
            hc = p["healthCheck"]
            ref = parse_ref(hc, project=call.project, scope="global") if isinstance(hc, str) else None
            if ref is None or not ((ref.scope == "global" and ref.collection in HEALTH_CHECKS) or (
                    ref.scope == f"regions/{region}" and ref.collection == "regionHealthChecks")):
                raise Invalid(f"{f}.healthCheck", hc, "The URL is malformed.")
            projects.own(call, ref)
            res = store.find(call.session, ref.project, ref.collection, ref.scope, ref.name)
            item["healthCheck"] = url_of(res.project, res.scope, ref.collection, res.name)
        delay = p.get("initialDelaySec", 300)
        try:
            delay = int(str(delay))
        except ValueError:
            raise Invalid(f"{f}.initialDelaySec", delay) from None
        if not 0 <= delay <= 3600:
            raise Invalid(f"{f}.initialDelaySec", delay, "Must be between 0 and 3600.")
        item["initialDelaySec"] = delay
        out.append(item)
    return out
