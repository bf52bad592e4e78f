"""Which zone each managed instance goes to: a regional group's ``distributionPolicy`` (its zones and
``targetShape``), validated at insert and honoured by the reconciler.

A zonal group has one zone, and every function here answers it. For a regional group, as GCE
documents the shapes:

* ``EVEN`` (the default): a new instance goes to the zone with the fewest, so no two zones differ
  by more than one; scale-in takes from the zone with the most, and zones that drifted apart are
  evened (``PROACTIVE`` redistribution). A zone without room keeps its instances waiting
  (unstable, in ``listErrors``): GCE does not give up the even shape for capacity.
* ``BALANCED`` and ``ANY``: the same choice, but an instance refused for want of room moves to
  another zone of the distribution, avoiding for a while the zones that just refused.
* ``ANY_SINGLE_ZONE``: every instance in one zone, chosen when the group has none; a refusal for
  want of room moves the waiting instance to the next zone.
"""

from __future__ import annotations

import re
from collections import Counter

from core.errors import Invalid
from core.links import scope_url
from core.resources.store import Body
from core.services.instance_group_managers.location import Location
from core.services.instance_group_managers.state import CREATING, DELETING, NONE, Member, State

SHAPES = ("ANY", "ANY_SINGLE_ZONE", "BALANCED", "EVEN")
DEFAULT_ZONES = 3  # GCE spreads a regional group over three of its region's zones unless told
NO_ROOM = "ZONE_RESOURCE_POOL_EXHAUSTED"
AVOID_FOR = 60.0  # seconds a zone that had no room is passed over by the shapes that may move
_ZONE_REF = re.compile(r"^(?:[a-z][a-z0-9+.-]*://[^/]+/(?:compute/(?:v1|beta|alpha)/)?)?"
                       r"(?:projects/[^/]+/)?(?:zones/)?([a-z][-a-z0-9]*)$")


def fields(project: str, loc: Location, body: Body) -> Body:
    """The body fields a regional group adds (``distributionPolicy``, and the ``updatePolicy``
    defaults GCE gives regional groups); none for a zonal group. Invalid input raises first."""
    if not loc.regional:
        return {}
    policy = body.get("distributionPolicy") or {}
    if not isinstance(policy, dict):
        raise Invalid("resource.distributionPolicy", policy, "Must be an object.")
    shape = policy.get("targetShape") or "EVEN"
    if shape not in SHAPES:
        raise Invalid("resource.distributionPolicy.targetShape", shape, f"Must be one of {', '.join(SHAPES)}.")
    zones = _zones(loc, policy.get("zones"))
    n = len(zones)
    return {"distributionPolicy": {"zones": [{"zone": scope_url(project, f"zones/{z}")} for z in zones],
                                   "targetShape": shape},
            "updatePolicy": {"type": "OPPORTUNISTIC",
                             "instanceRedistributionType": "PROACTIVE" if shape == "EVEN" else "NONE",
                             "minimalAction": "REPLACE", "maxSurge": {"fixed": n, "calculated": n},
                             "maxUnavailable": {"fixed": n, "calculated": n}, "replacementMethod": "SUBSTITUTE"}}


def _zones(loc: Location, given: object) -> list[str]:
    """The names of the zones a policy lists (each once, each in the group's region), or by default
    the region's first three."""
    if not given:
        return [z.name for z in loc.zones[:DEFAULT_ZONES]]
    if not isinstance(given, list):
        raise Invalid("resource.distributionPolicy.zones", given, "Must be a list of zone configurations.")
    known = {z.name for z in loc.zones}
    out: list[str] = []
    for i, item in enumerate(given):
        field = f"resource.distributionPolicy.zones[{i}].zone"
        value = item.get("zone") if isinstance(item, dict) else None
        match = _ZONE_REF.match(value) if isinstance(value, str) else None
        if match is None:
            raise Invalid(field, value, "The URL is malformed.")
        if match.group(1) not in known:
            raise Invalid(field, value, f"Zone '{match.group(1)}' is not in region '{loc.region}', the region of "
                                        "the instance group manager.")
        if match.group(1) in out:
            raise Invalid(field, value, "Zones must be unique.")
        out.append(match.group(1))
    return out


def zones_of(group: Body) -> list[str]:
    """The names of the zones a group places instances in: its own, or its distribution's."""
    policy = group.get("distributionPolicy")
    if policy:
        return [z["zone"].rsplit("/", 1)[-1] for z in policy["zones"]]
    return [group["zone"].rsplit("/", 1)[-1]]


def _shape(group: Body) -> str:
    return str((group.get("distributionPolicy") or {}).get("targetShape", "EVEN"))


def _counts(st: State, zones: list[str]) -> Counter[str]:
    counts: Counter[str] = Counter(dict.fromkeys(zones, 0))
    counts.update(m.zone for m in st.members if m.action != DELETING)
    return counts


def _avoided(st: State, zone: str, now: float) -> bool:
    return now - st.exhausted.get(zone, 0.0) < AVOID_FOR


def place(group: Body, st: State, now: float) -> str:
    """The zone of a new managed instance."""
    zones = zones_of(group)
    counts = _counts(st, zones)
    shape = _shape(group)
    if shape == "ANY_SINGLE_ZONE":
        # The group's zone is where its instances are (or are being made) in a zone that has not
        # just refused; when there is none, the first zone that has not.
        made = Counter(m.zone for m in st.members
                       if m.action != DELETING and (m.action == NONE or m.op) and not _avoided(st, m.zone, now))
        if made:
            return max(zones, key=lambda z: made[z])
        return min(zones, key=lambda z: (_avoided(st, z, now), zones.index(z)))
    moving = shape != "EVEN"
    return min(zones, key=lambda z: (moving and _avoided(st, z, now), counts[z], zones.index(z)))


def surplus(active: list[Member], count: int) -> list[Member]:
    """The ``count`` managed instances a shrinking group deletes: one at a time from the zone with
    the most, there the ones not made yet first (the even shape's scale-in; one zone: its order)."""
    left, out = list(active), []
    for _ in range(min(count, len(active))):
        per_zone = Counter(m.zone for m in left)
        fullest = max(per_zone, key=lambda z: per_zone[z])
        pick = min((m for m in left if m.zone == fullest), key=lambda m: (m.action == NONE, m.op is not None))
        left.remove(pick)
        out.append(pick)
    return out


def drifted(group: Body, active: list[Member]) -> list[Member]:
    """``PROACTIVE`` redistribution of an ``EVEN`` group whose zones drifted more than one apart
    (``deleteInstances`` or ``abandonInstances`` in one zone): the instances to delete from the
    fullest zones, newest first, so that making as many in the emptiest zones evens the group. Only
    a settled group is redistributed: instances still being made (or waiting for room) are not."""
    update = group.get("updatePolicy") or {}
    if (_shape(group) != "EVEN" or update.get("instanceRedistributionType") != "PROACTIVE"
            or any(m.action != NONE for m in active)):
        return []
    counts = Counter(dict.fromkeys(zones_of(group), 0))
    counts.update(m.zone for m in active)
    out: list[Member] = []
    while max(counts.values()) - min(counts.values()) > 1:
        fullest = max(counts, key=lambda z: counts[z])
        out.append([m for m in active if m.zone == fullest and m not in out][-1])
        counts[fullest] -= 1
        counts[min(counts, key=lambda z: counts[z])] += 1
    return out


def after_no_room(group: Body, st: State, m: Member, now: float) -> None:
    """A creation refused for want of room in ``m``'s zone: the zone is avoided for a while, and
    under a shape that may move the instance goes to another zone and is tried again at once."""
    st.exhausted[m.zone] = now
    if _shape(group) == "EVEN" or m.action != CREATING or len(zones_of(group)) == 1:
        return
    st.members.remove(m)
    zone = place(group, st, now)
    st.members.append(m)
    if zone != m.zone:
        m.zone, m.retry_at = zone, now
