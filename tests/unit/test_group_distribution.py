"""Which zone a managed instance goes to (core.services.instance_group_managers.distribution): the
shapes' arithmetic, on states built in memory."""

from __future__ import annotations

from collections import Counter

import pytest

from core.errors import Invalid
from core.models import Resource
from core.services.instance_group_managers import distribution
from core.services.instance_group_managers.location import Location
from core.services.instance_group_managers.state import CREATING, NONE, Member, State
from core.services.topology import RegionInfo, ZoneInfo

URL = "https://www.googleapis.com/compute/v1/projects/p/zones/"
ZONES = ["r-a", "r-b", "r-c"]


def regional(shape: str = "EVEN", zones: list[str] = ZONES) -> dict:
    return {"region": "https://www.googleapis.com/compute/v1/projects/p/regions/r",
            "distributionPolicy": {"zones": [{"zone": URL + z} for z in zones], "targetShape": shape}}


def grow(group: dict, st: State, n: int, now: float = 100.0) -> Counter:
    for i in range(n):
        st.members.append(Member(f"m{len(st.members)}-{i}", NONE, "t", zone=distribution.place(group, st, now)))
    return Counter(m.zone for m in st.members)


def test_even_fills_the_emptiest_zone_and_shrinks_the_fullest():
    group, st = regional(), State(Resource())
    assert grow(group, st, 4) == {"r-a": 2, "r-b": 1, "r-c": 1}
    assert grow(group, st, 2) == {"r-a": 2, "r-b": 2, "r-c": 2}
    gone = distribution.surplus(st.members, 3)
    assert Counter(m.zone for m in gone) == {"r-a": 1, "r-b": 1, "r-c": 1}


def test_surplus_takes_what_is_not_made_yet_first():
    made, waiting = Member("a", NONE, "t", zone="z"), Member("b", CREATING, "t", zone="z")
    assert distribution.surplus([made, waiting], 1) == [waiting]


def test_even_keeps_a_refused_instance_in_its_zone():
    group, st = regional(), State(Resource())
    m = Member("x", CREATING, "t", zone="r-a")
    st.members.append(m)
    distribution.after_no_room(group, st, m, 100.0)
    assert m.zone == "r-a" and st.exhausted == {"r-a": 100.0}


@pytest.mark.parametrize("shape", ["BALANCED", "ANY"])
def test_moving_shapes_take_a_refused_instance_elsewhere_and_avoid_the_zone(shape):
    group, st = regional(shape), State(Resource())
    m = Member("x", CREATING, "t", zone="r-a", retry_at=130.0)
    st.members.append(m)
    distribution.after_no_room(group, st, m, 100.0)
    assert m.zone == "r-b" and m.retry_at == 100.0
    assert "r-a" not in grow(group, st, 3, now=110.0)
    # the refusal is forgotten after a while
    assert distribution.place(group, st, 100.0 + distribution.AVOID_FOR + 1) == "r-a"


def test_any_single_zone_keeps_one_zone():
    group, st = regional("ANY_SINGLE_ZONE"), State(Resource())
    assert grow(group, st, 3) == {"r-a": 3}
    # r-a refuses: the instance still being made there does not hold the group in r-a
    refused = Member("v", CREATING, "t", zone="r-a")
    st = State(Resource(), members=[Member("w", CREATING, "t", zone="r-a", op="op-1"), refused])
    distribution.after_no_room(group, st, refused, 100.0)
    assert refused.zone == "r-b"


def test_a_zonal_group_has_its_zone():
    group, st = {"zone": URL + "z-1"}, State(Resource())
    assert grow(group, st, 2) == {"z-1": 2}


def location() -> Location:
    region = RegionInfo(1, 1, "r", "UP")
    return Location("regions/r", "r", tuple(ZoneInfo(i, i, z, "UP", region) for i, z in enumerate(ZONES)))


def test_policy_defaults_and_refusals():
    out = distribution.fields("p", location(), {})
    assert [z["zone"] for z in out["distributionPolicy"]["zones"]] == [URL + z for z in ZONES]
    assert out["updatePolicy"]["maxSurge"] == {"fixed": 3, "calculated": 3}
    out = distribution.fields("p", location(), {"distributionPolicy": {"zones": [{"zone": "r-b"}],
                                                                       "targetShape": "ANY"}})
    assert out["distributionPolicy"] == {"zones": [{"zone": URL + "r-b"}], "targetShape": "ANY"}
    assert out["updatePolicy"]["instanceRedistributionType"] == "NONE"
    for zones in ([{"zone": "zones/q-a"}], [{"zone": "r-a"}, {"zone": URL + "r-a"}], [{"zone": "a/b/c/d"}]):
        with pytest.raises(Invalid):
            distribution.fields("p", location(), {"distributionPolicy": {"zones": zones}})


def test_proactive_redistribution_evens_a_drifted_group():
    group = regional()
    group["updatePolicy"] = {"instanceRedistributionType": "PROACTIVE"}
    active = [Member(f"m{i}", NONE, "t", zone=z) for i, z in enumerate(["r-a", "r-a", "r-a", "r-a", "r-b"])]
    moved = distribution.drifted(group, active)
    assert [m.name for m in moved] == ["m3", "m2"]  # the newest of the fullest zone
    st = State(Resource(), members=[m for m in active if m not in moved])
    assert grow(group, st, 2) == {"r-a": 2, "r-b": 2, "r-c": 1}
    # not while an instance is being made, nor when the group does not redistribute
    assert distribution.drifted(group, [*active, Member("n", CREATING, "t", zone="r-c")]) == []
    group["updatePolicy"] = {"instanceRedistributionType": "NONE"}
    assert distribution.drifted(group, active) == []
