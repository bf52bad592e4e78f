"""The arithmetic of rolling updates, as GCE defines it: FixedOrPercent values (maxSurge and a
canary's targetSize rounded up, maxUnavailable down), how many members each version gets, and
which members a canary moves."""

from __future__ import annotations

from core.models import Resource
from core.services.instance_group_managers.rollout import assign, next_version
from core.services.instance_group_managers.state import Member, State, calculated, intended, version_counts

T1, T2 = "https://x/global/instanceTemplates/t1", "https://x/global/instanceTemplates/t2"


def test_fixed_or_percent():
    assert calculated({"fixed": 3}, 10, "up") == 3
    assert calculated({"percent": 25}, 10, "up") == 3 and calculated({"percent": 25}, 10, "down") == 2
    assert calculated({"percent": 25}, 12, "up") == calculated({"percent": 25}, 12, "down") == 3
    assert calculated({"percent": 0}, 10, "up") == 0 and calculated({"percent": 100}, 7, "down") == 7
    assert calculated(None, 10, "up") == 0


def canary(target: int, size: dict) -> dict:
    return {"targetSize": target, "instanceTemplate": T1, "versions": [
        {"instanceTemplate": T1, "name": "stable"}, {"instanceTemplate": T2, "name": "canary", "targetSize": size}]}


def test_version_counts():
    assert version_counts(canary(10, {"fixed": 1})) == [(T1, "stable", 9), (T2, "canary", 1)]
    assert version_counts(canary(5, {"percent": 50})) == [(T1, "stable", 2), (T2, "canary", 3)]
    # a fixed canary is at most the group
    assert version_counts(canary(2, {"fixed": 5})) == [(T1, "stable", 0), (T2, "canary", 2)]
    assert version_counts({"targetSize": 3, "instanceTemplate": T1, "versions": [{"instanceTemplate": T1}]}) == [
        (T1, "", 3)]
    assert sorted(intended(canary(3, {"fixed": 1}))) == [(T1, "stable"), (T1, "stable"), (T2, "canary")]


def test_assign_moves_only_what_the_canary_needs():
    st = State(Resource(), [Member(n, "NONE", T1, version="stable") for n in ("a", "b", "c", "d")])
    goals = assign(canary(4, {"fixed": 1}), st)
    assert sorted(goals.values()).count((T2, "canary")) == 1 and sorted(goals.values()).count((T1, "stable")) == 3
    assert goals["a"] == (T1, "stable")  # running members keep their version first, in name order
    # a member already on the canary keeps it; the new member goes where a member is missing
    st.members[3].template, st.members[3].version = T2, "canary"
    assert assign(canary(4, {"fixed": 1}), st)["d"] == (T2, "canary")
    st.members.pop(0)
    assert next_version(canary(4, {"fixed": 1}), st) == (T1, "stable")
    st.members[0].template, st.members[0].version = T2, "canary"
    assert next_version(canary(4, {"fixed": 1}), st) == (T1, "stable")
