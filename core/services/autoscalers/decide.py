"""The autoscaler's decision, a pure function of the policy, the group's size, its members' CPU
utilisation and the recent recommendations (kept by the caller, :mod:`.rounds`).

As GCE's CPU autoscaling: the group needs ``ceil(sum of utilisations / target)`` instances (VMs
still in their initialisation period, ``coolDownPeriodSec``, are left out of the sum), clamped to
[min, max]. Scaling out is at once; scaling in takes the largest recommendation of the
stabilisation window (``stabilizationPeriodSec``), so a short dip does not shed instances, and
with ``scaleInControl`` never goes more than ``maxScaledInReplicas`` below the peak recommendation
of its ``timeWindowSec`` (so a long fall is a staircase, one step per window). The mode decides what is done with the recommendation: ON resizes, the
scale-out-only modes only grow the group, OFF leaves it alone; the recommendation is reported in
every mode.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from core.services.autoscalers.policy import SCALE_OUT_ONLY, Policy

# (when, what the signal asked for clamped to [min, max], the larger of the recommendation made and the
# group's size then: the peak scale-in control counts down from), oldest first
History = list[tuple[float, int, int]]


@dataclass(frozen=True)
class Decision:
    recommended: int
    resize_to: int | None  # None: leave the group's size as it is
    capped: bool  # the signal asked for more than maxNumReplicas
    history: History


def needed(policy: Policy, current: int, utilisations: list[float]) -> int:
    """The size the signal asks for (unclamped); without a signal (every VM still initialising, or
    none running), the current size."""
    if not utilisations:
        return current
    # A hair under an integer is that integer: 0.6 * 3 / 0.6 must not ask for a fourth VM.
    return max(0, math.ceil(sum(utilisations) / policy.target - 1e-9))


def decide(policy: Policy, current: int, utilisations: list[float], history: History, now: float) -> Decision:
    raw = needed(policy, current, utilisations)
    clamped = min(max(raw, policy.min), policy.max)
    keep = max(policy.stabilization, policy.scale_in_window if policy.scale_in_controlled else 0.0)
    recent = [entry for entry in history if entry[0] >= now - keep]
    recommended = max([clamped] + [asked for t, asked, _ in recent if t >= now - policy.stabilization])
    if policy.scale_in_controlled:
        peak = max([current] + [made for t, _, made in recent if t >= now - policy.scale_in_window])
        allowed = (policy.scale_in_fixed if policy.scale_in_fixed is not None
                   else round((policy.scale_in_percent or 0) * peak / 100))
        recommended = max(recommended, peak - allowed)
    recommended = min(max(recommended, policy.min), policy.max)
    recent.append((now, clamped, max(recommended, current)))
    if policy.mode == "OFF" or recommended == current or (policy.mode in SCALE_OUT_ONLY and recommended < current):
        resize_to = None
    else:
        resize_to = recommended
    return Decision(recommended, resize_to, raw > policy.max, recent)
