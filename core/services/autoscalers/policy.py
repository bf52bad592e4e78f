"""An autoscaler's ``autoscalingPolicy``: validated, with GCE's defaults filled in, and read back as
the :class:`Policy` the decision (:mod:`.decide`) works with.

Defaults, as GCE documents them: the CPU signal at a 0.6 target when no signal is given
(``predictiveMethod`` NONE), ``coolDownPeriodSec`` 60, ``mode`` ON, ``minNumReplicas`` 1 (never above
``maxNumReplicas``), ``stabilizationPeriodSec`` 600 (the window of the scale-in stabilisation; the
server's default may be shortened for tests, see :data:`STABILIZATION_DEFAULT`). ``maxNumReplicas``
is required. Only the CPU signal is implemented: custom metrics, load balancing utilisation and
scaling schedules are refused rather than ignored.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.errors import Invalid, Required
from core.resources.store import Body

P = "resource.autoscalingPolicy"
MODES = ("ON", "OFF", "ONLY_SCALE_OUT", "ONLY_UP")  # ONLY_UP: the deprecated name of ONLY_SCALE_OUT
SCALE_OUT_ONLY = ("ONLY_SCALE_OUT", "ONLY_UP")
DEFAULT_TARGET = 0.6
DEFAULT_COOL_DOWN = 60
STABILIZATION_DEFAULT = 600  # seconds; GCE's, used when the policy names none
_UNSUPPORTED = ("customMetricUtilizations", "loadBalancingUtilization", "scalingSchedules")


@dataclass(frozen=True)
class Policy:
    min: int
    max: int
    target: float
    mode: str
    cool_down: float
    stabilization: float
    scale_in_fixed: int | None = None  # maxScaledInReplicas.fixed, or
    scale_in_percent: int | None = None  # ... its percent of the group's size
    scale_in_window: float = 0.0

    @property
    def scale_in_controlled(self) -> bool:
        return self.scale_in_fixed is not None or self.scale_in_percent is not None


def _int(policy: Body, key: str, field: str, minimum: int = 0) -> int | None:
    value = policy.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, str)) or not str(value).lstrip("-").isdigit():
        raise Invalid(field, value)
    if int(value) < minimum:
        raise Invalid(field, value, f"Must be greater than or equal to {minimum}")
    return int(value)


def _cpu(policy: Body) -> Body:
    cpu = policy.get("cpuUtilization")
    if cpu is None:
        cpu = {}
    if not isinstance(cpu, dict):
        raise Invalid(f"{P}.cpuUtilization", cpu)
    target = cpu.get("utilizationTarget", DEFAULT_TARGET)
    field = f"{P}.cpuUtilization.utilizationTarget"
    if isinstance(target, bool) or not isinstance(target, (int, float)):
        raise Invalid(field, target)
    if not 0 < target <= 1:
        raise Invalid(field, target, "CPU utilization target must be greater than 0.0 and less than or equal to 1.0.")
    method = cpu.get("predictiveMethod", "NONE")
    if method not in ("NONE", "OPTIMIZE_AVAILABILITY"):
        raise Invalid(f"{P}.cpuUtilization.predictiveMethod", method)
    return {"utilizationTarget": float(target), "predictiveMethod": method}


def _scale_in(policy: Body, max_replicas: int) -> Body | None:
    control = policy.get("scaleInControl")
    if control is None:
        return None
    if not isinstance(control, dict):
        raise Invalid(f"{P}.scaleInControl", control)
    field = f"{P}.scaleInControl.maxScaledInReplicas"
    limit = control.get("maxScaledInReplicas") or {}
    if not isinstance(limit, dict):
        raise Invalid(field, limit)
    fixed, percent = _int(limit, "fixed", f"{field}.fixed"), _int(limit, "percent", f"{field}.percent")
    if fixed is not None and percent is not None:
        raise Invalid(field, limit, "Only one of fixed and percent may be set.")
    if percent is not None and percent > 100:
        raise Invalid(f"{field}.percent", percent, "Must be less than or equal to 100")
    out: Body = {}
    if fixed is not None or percent is not None:
        out["maxScaledInReplicas"] = ({"fixed": fixed, "calculated": fixed} if fixed is not None
                                      else {"percent": percent, "calculated": round((percent or 0) * max_replicas / 100)})
    window = _int(control, "timeWindowSec", f"{P}.scaleInControl.timeWindowSec")
    out["timeWindowSec"] = window if window is not None else STABILIZATION_DEFAULT
    return out


def normalized(policy: object) -> Body:
    """The stored ``autoscalingPolicy`` of a request's: validated, defaults filled in. Raises GCE's
    errors; the caller has changed nothing yet."""
    if policy is None:
        raise Required(f"{P}.maxNumReplicas")
    if not isinstance(policy, dict):
        raise Invalid(P, policy)
    for key in _UNSUPPORTED:
        if policy.get(key):
            raise Invalid(f"{P}.{key}", policy[key], "Only the CPU utilization signal is supported.")
    max_replicas = _int(policy, "maxNumReplicas", f"{P}.maxNumReplicas")
    if max_replicas is None:
        raise Required(f"{P}.maxNumReplicas")
    min_replicas = _int(policy, "minNumReplicas", f"{P}.minNumReplicas")
    if min_replicas is None:
        min_replicas = min(1, max_replicas)
    if min_replicas > max_replicas:
        raise Invalid(f"{P}.maxNumReplicas", max_replicas,
                      "Maximum number of replicas must be greater than or equal to minimum number of replicas.")
    mode = policy.get("mode", "ON")
    if mode not in MODES:
        raise Invalid(f"{P}.mode", mode)
    cool_down = _int(policy, "coolDownPeriodSec", f"{P}.coolDownPeriodSec")
    out: Body = {"minNumReplicas": min_replicas, "maxNumReplicas": max_replicas,
                 "coolDownPeriodSec": DEFAULT_COOL_DOWN if cool_down is None else cool_down,
                 "cpuUtilization": _cpu(policy), "mode": mode}
    scale_in = _scale_in(policy, max_replicas)
    if scale_in is not None:
        out["scaleInControl"] = scale_in
    stabilization = _int(policy, "stabilizationPeriodSec", f"{P}.stabilizationPeriodSec")
    if stabilization is not None:
        out["stabilizationPeriodSec"] = stabilization
    return out


def read(policy: Body, default_stabilization: float = STABILIZATION_DEFAULT) -> Policy:
    """The stored policy as the decision uses it."""
    limit = (policy.get("scaleInControl") or {}).get("maxScaledInReplicas") or {}
    return Policy(
        min=policy["minNumReplicas"], max=policy["maxNumReplicas"],
        target=policy["cpuUtilization"]["utilizationTarget"], mode=policy["mode"],
        cool_down=float(policy["coolDownPeriodSec"]),
        stabilization=float(policy.get("stabilizationPeriodSec", default_stabilization)),
        scale_in_fixed=limit.get("fixed"), scale_in_percent=limit.get("percent"),
        scale_in_window=float((policy.get("scaleInControl") or {}).get("timeWindowSec", 0)))
