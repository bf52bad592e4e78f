"""regionInstances.bulkInsert: a bulk insert whose zones gstack picks in the region, per the
request's ``locationPolicy`` (GCE's semantics).

Zones: every UP zone of the region, less those the policy's ``locations`` DENY (a zone it does not
name is allowed, as GCE: "if you set a DENY preference for us-central1-a, Compute Engine will
consider us-central1-b and us-central1-c"). ``targetShape``:

* ``ANY`` (the default): the VMs go where there is room, filling the zone with the most free
  capacity first, then the next ("to fulfill the requested number of VMs within present resource
  constraints");
* ``ANY_SINGLE_ZONE``: every VM in one zone, the one with the most free capacity;
* ``BALANCED``: spread evenly over the allowed zones (their counts differ by at most one), in zone
  order.

Free capacity is read from the planner without locking hosts: it only chooses zones; the run
jobs place each VM as usual, and a VM a zone cannot hold fails there like any insert. Then the
request is the zonal one (:func:`.bulk.begin`): one ``bulkInsert`` Operation, in the region, with a
status per zone, and the instances' own ``insert`` Operations in their zones.
"""

from __future__ import annotations

from typing import Any

from core import catalog, planner
from core.errors import Invalid
from core.links import parse_ref
from core.models import Operation
from core.resources import store
from core.resources.context import Call
from core.services import topology
from core.services.instances import bulk
from core.services.topology import ZoneInfo

_FIELD = "bulkInsertInstanceResource.locationPolicy"
_SHAPES = ("ANY", "ANY_SINGLE_ZONE", "BALANCED")
_PREFERENCES = ("ALLOW", "DENY", "PREFERENCE_UNSPECIFIED")


def regional_bulk_insert(call: Call, region: str, body: dict[str, Any]) -> Operation:
    """Validate the request, choose each instance's zone, then make them as a zonal bulk does."""
    found = topology.region(call.session, call.project, region)
    count, min_count = bulk.counts(body)
    per = bulk.per_instance(body)
    bulk.check_properties(body)
    policy = body.get("locationPolicy") or {}
    if not isinstance(policy, dict):
        raise Invalid(_FIELD, policy, "Must be an object.")
    zones = _allowed_zones(call, found.name, policy.get("locations"))
    shape = policy.get("targetShape") or "ANY"
    if shape not in _SHAPES:
        raise Invalid(f"{_FIELD}.targetShape", shape, f"Must be one of {', '.join(_SHAPES)}.")
    names = bulk.instance_names(call, zones, body.get("namePattern"), per, count)
    placed = _distribute(call, zones, names, shape, _demand(call, body))
    return bulk.begin(call, f"regions/{found.name}", body, placed, per, min_count)


def _allowed_zones(call: Call, region: str, locations: object) -> list[ZoneInfo]:
    by_scope = {f"zones/{z.name}": z for z in topology.region_zones(call.session, region)}
    denied: set[str] = set()
    if locations is not None:
        if not isinstance(locations, dict):
            raise Invalid(f"{_FIELD}.locations", locations, "Must be a map of zones.")
        for key, location in locations.items():
            scope = f"zones/{key.rsplit('/zones/', 1)[-1]}" if "/zones/" in key else key
            if scope not in by_scope:
                raise Invalid(f"{_FIELD}.locations", key, f"Location '{key}' is not a zone of region '{region}': "
                              "locations are zones, written as zones/ZONE.")
            preference = (location or {}).get("preference", "ALLOW") if isinstance(location, dict) else location
            if preference not in _PREFERENCES:
                raise Invalid(f"{_FIELD}.locations[{key}].preference", preference,
                              f"Must be one of {', '.join(_PREFERENCES)}.")
            if preference == "DENY":
                denied.add(scope)
    allowed = [z for scope, z in by_scope.items() if scope not in denied and z.status == "UP"]
    if not allowed:
        raise Invalid(f"{_FIELD}.locations", None, message=(
            f"Invalid value for field '{_FIELD}.locations': ''. No zone of region '{region}' is allowed by the "
            "location policy."))
    return allowed


def _demand(call: Call, body: dict[str, Any]) -> tuple[int, int]:
    """The vCPUs and memory of one VM: its machine type's, from the properties or the template
    (1 vCPU and no memory when neither names one it knows: the insert itself will refuse it)."""
    name = (body.get("instanceProperties") or {}).get("machineType")
    if not name and body.get("sourceInstanceTemplate"):
        ref = parse_ref(body["sourceInstanceTemplate"], project=call.project)
        template = store.find_optional(call.session, ref.project, "instanceTemplates", ref.scope, ref.name) \
            if ref is not None else None
        name = (store.body_of(template).get("properties") or {}).get("machineType") if template is not None else None
    try:
        found = catalog.machine_type(str(name).rsplit("/", 1)[-1]) if name else None
    except Invalid:
        found = None
    return (found.guest_cpus, found.memory_mb) if found is not None else (1, 0)


def _distribute(call: Call, zones: list[ZoneInfo], names: list[str], shape: str,
                demand: tuple[int, int]) -> list[tuple[ZoneInfo, str]]:
    if shape == "BALANCED":
        return [(zones[i % len(zones)], name) for i, name in enumerate(names)]
    room = {z.name: list(planner.zone_room(call.session, z.id)) for z in zones}
    by_room = sorted(zones, key=lambda z: (-room[z.name][0], z.name))
    if shape == "ANY_SINGLE_ZONE":
        need = (demand[0] * len(names), demand[1] * len(names))
        fits = [z for z in by_room if room[z.name][0] >= need[0] and room[z.name][1] >= need[1]]
        zone = (fits or by_room)[0]
        return [(zone, name) for name in names]
    placed = []
    for name in names:
        zone = next((z for z in by_room if room[z.name][0] >= demand[0] and room[z.name][1] >= demand[1]),
                    by_room[0])
        room[zone.name][0] -= demand[0]
        room[zone.name][1] -= demand[1]
        placed.append((zone, name))
    return placed
