"""The autoscaler's decision (core.services.autoscalers.decide), cell by cell: the arithmetic GCE
documents, without a server."""

from __future__ import annotations

import pytest

from core.errors import Invalid, Required
from core.services.autoscalers import policy
from core.services.autoscalers.decide import decide


def pol(**given) -> policy.Policy:
    return policy.read(policy.normalized({"maxNumReplicas": 10, "coolDownPeriodSec": 0, **given}), 600)


def test_the_signal_sum_over_the_target_clamped() -> None:
    p = pol(minNumReplicas=2, maxNumReplicas=5, cpuUtilization={"utilizationTarget": 0.5})
    assert decide(p, 2, [0.9, 0.9], [], 0).resize_to == 4  # ceil(1.8 / 0.5)
    assert decide(p, 2, [0.5, 0.5], [], 0).resize_to is None  # exactly at target: 2
    capped = decide(p, 2, [1.0, 1.0, 1.0], [], 0)
    assert (capped.recommended, capped.capped) == (5, True)
    assert decide(p, 1, [], [], 0).resize_to == 2  # below min, with no signal
    assert decide(p, 3, [], [], 0).recommended == 3  # no signal: no change


def test_scale_in_waits_for_the_stabilisation_window() -> None:
    p = pol(maxNumReplicas=4, stabilizationPeriodSec=60)
    high = decide(p, 1, [1.0], [], 0)  # ceil(1 / 0.6) = 2
    assert high.resize_to == 2
    low = decide(p, 2, [0.0, 0.0], high.history, 30)
    assert (low.recommended, low.resize_to) == (2, None)  # the high of 30 s ago still counts
    later = decide(p, 2, [0.0, 0.0], low.history, 61)
    assert later.resize_to == 1  # min 1


def test_modes() -> None:
    for mode in ("ONLY_SCALE_OUT", "ONLY_UP"):
        p = pol(mode=mode, stabilizationPeriodSec=0)
        assert decide(p, 1, [1.0], [], 0).resize_to == 2
        down = decide(p, 3, [0.0, 0.0, 0.0], [], 0)
        assert (down.recommended, down.resize_to) == (1, None)
    off = decide(pol(mode="OFF"), 1, [1.0, 1.0], [], 0)
    assert (off.recommended, off.resize_to) == (4, None)


def test_scale_in_control_steps_down_one_window_at_a_time() -> None:
    p = pol(stabilizationPeriodSec=0, scaleInControl={"maxScaledInReplicas": {"fixed": 1}, "timeWindowSec": 60})
    first = decide(p, 4, [0.0] * 4, [], 0)
    assert first.resize_to == 3
    second = decide(p, 3, [0.0] * 3, first.history, 30)
    assert second.resize_to is None  # 4 was the peak 30 s ago
    third = decide(p, 3, [0.0] * 3, second.history, 61)
    assert third.resize_to == 2
    percent = pol(stabilizationPeriodSec=0, scaleInControl={"maxScaledInReplicas": {"percent": 50}, "timeWindowSec": 60})
    assert decide(percent, 8, [0.0] * 8, [], 0).resize_to == 4


def test_policy_defaults_and_refusals() -> None:
    assert policy.normalized({"maxNumReplicas": 5}) == {
        "minNumReplicas": 1, "maxNumReplicas": 5, "coolDownPeriodSec": 60, "mode": "ON",
        "cpuUtilization": {"utilizationTarget": 0.6, "predictiveMethod": "NONE"}}
    with pytest.raises(Required):
        policy.normalized({"minNumReplicas": 1})
    with pytest.raises(Invalid, match="greater than or equal to minimum"):
        policy.normalized({"minNumReplicas": 3, "maxNumReplicas": 2})
    for target in (0, 1.5, -0.1):
        with pytest.raises(Invalid, match="utilizationTarget"):
            policy.normalized({"maxNumReplicas": 2, "cpuUtilization": {"utilizationTarget": target}})
    with pytest.raises(Invalid, match="mode"):
        policy.normalized({"maxNumReplicas": 2, "mode": "SOMETIMES"})
