"""resourcePolicies: regional policies a disk or an instance follows (snapshot schedules, instance
schedules, group placement). This module validates and stores them; :mod:`.attach` ties them to
disks and instances, :mod:`.scheduler` carries the schedules out.

A policy is READY as soon as it is stored (GCE's CREATING lasts a moment); it holds exactly one
kind of policy. A policy that a disk or an instance names cannot be deleted
(``resourceInUseByAnotherResource``), and its kind cannot be changed by a patch.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from zoneinfo import ZoneInfo as TimeZone
from zoneinfo import ZoneInfoNotFoundError

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.errors import Invalid, Required, ResourceInUse
from core.links import path_of, scope_url
from core.models import Operation, Resource
from core.resources import operations, store
from core.resources.context import Call
from core.resources.queries import with_term
from core.resources.store import Body
from core.services import projects, topology, vpc
from core.services.metadata import validate_labels
from core.services.resource_policies import timing
from core.terms import RESOURCE_POLICIES

COLLECTION = "resourcePolicies"
KIND = "compute#resourcePolicy"
STATE = "resourcePolicyStates"  # private (never routed): when each follower last acted, see .attach
SNAPSHOT, INSTANCE, PLACEMENT = "snapshotSchedulePolicy", "instanceSchedulePolicy", "groupPlacementPolicy"
POLICY_KINDS = (SNAPSHOT, INSTANCE, PLACEMENT)
UNSUPPORTED_KINDS = ("diskConsistencyGroupPolicy", "workloadPolicy")
ON_DISK_DELETE = ("KEEP_AUTO_SNAPSHOTS", "APPLY_RETENTION_POLICY")
# Who may follow which kind of policy (GCE: snapshot schedules are for disks, the others for VMs).
FOLLOWERS = {SNAPSHOT: "disks", INSTANCE: "instances", PLACEMENT: "instances"}
MAX_RETENTION_DAYS = 65536
MAX_VM_COUNT, MAX_DOMAINS = 1500, 8


def policy_kind(body: Body) -> str:
    return next(kind for kind in POLICY_KINDS if kind in body)


def _object(value: object, field: str) -> Body:
    if not isinstance(value, dict):
        raise Invalid(field, value, "Must be an object.")
    return value


def _start_time(value: object, field: str) -> str:
    if value in (None, ""):
        raise Required(field)
    if not isinstance(value, str) or timing.start_hour(value) is None or not value.endswith(":00"):
        raise Invalid(field, value, 'The start time must be a full hour in UTC, "HH:00" (00:00 to 23:00).')
    return value


def _schedule(given: object, field: str) -> Body:
    schedule = _object(given, field)
    cycles = [key for key in ("hourlySchedule", "dailySchedule", "weeklySchedule") if schedule.get(key) is not None]
    if len(cycles) != 1:
        raise Invalid(field, "", message=f"Invalid value for field '{field}': ''. Exactly one of hourlySchedule, "
                                         "dailySchedule or weeklySchedule must be specified.")
    key = cycles[0]
    cycle = _object(schedule[key], f"{field}.{key}")
    at = f"{field}.{key}"
    if key == "hourlySchedule":
        hours = vpc.integer(cycle.get("hoursInCycle"), f"{at}.hoursInCycle", 1, 23, 0)
        if hours == 0:
            raise Invalid(f"{at}.hoursInCycle", cycle.get("hoursInCycle"), "Must be between 1 and 23.")
        return {key: {"hoursInCycle": hours, "startTime": _start_time(cycle.get("startTime"), f"{at}.startTime"),
                      "duration": "PT3600S"}}
    if key == "dailySchedule":
        days = vpc.integer(cycle.get("daysInCycle"), f"{at}.daysInCycle", 1, 1, 1)
        return {key: {"daysInCycle": days, "startTime": _start_time(cycle.get("startTime"), f"{at}.startTime"),
                      "duration": "PT14400S"}}
    entries = cycle.get("dayOfWeeks")
    if not isinstance(entries, list) or not 1 <= len(entries) <= 7:
        raise Invalid(f"{at}.dayOfWeeks", entries, "Must list one to seven days of the week.")
    days_out: list[Body] = []
    for i, entry in enumerate(entries):
        item = _object(entry, f"{at}.dayOfWeeks[{i}]")
        day = item.get("day")
        if day not in timing.WEEKDAYS:
            raise Invalid(f"{at}.dayOfWeeks[{i}].day", day, "Must be a day of the week, MONDAY to SUNDAY.")
        if any(d["day"] == day for d in days_out):
            raise Invalid(f"{at}.dayOfWeeks[{i}].day", day, "Each day of the week may be given once.")
        days_out.append({"day": day, "startTime": _start_time(item.get("startTime"), f"{at}.dayOfWeeks[{i}].startTime"),
                         "duration": "PT14400S"})
    return {key: {"dayOfWeeks": days_out}}


def _snapshot_policy(given: object) -> Body:
    field = f"resource.{SNAPSHOT}"
    policy = _object(given, field)
    out: Body = {"schedule": _schedule(policy.get("schedule"), f"{field}.schedule")}
    retention = policy.get("retentionPolicy")
    if retention is not None:
        retention = _object(retention, f"{field}.retentionPolicy")
        days = vpc.integer(retention.get("maxRetentionDays"), f"{field}.retentionPolicy.maxRetentionDays", 1,
                           MAX_RETENTION_DAYS, 0)
        if days == 0:
            raise Invalid(f"{field}.retentionPolicy.maxRetentionDays", retention.get("maxRetentionDays"),
                          f"Must be between 1 and {MAX_RETENTION_DAYS}.")
        on_delete = retention.get("onSourceDiskDelete") or "KEEP_AUTO_SNAPSHOTS"
        if on_delete == "UNSPECIFIED_ON_SOURCE_DISK_DELETE":
            on_delete = "KEEP_AUTO_SNAPSHOTS"
        if on_delete not in ON_DISK_DELETE:
            raise Invalid(f"{field}.retentionPolicy.onSourceDiskDelete", on_delete,
                          "Must be KEEP_AUTO_SNAPSHOTS or APPLY_RETENTION_POLICY.")
        out["retentionPolicy"] = {"maxRetentionDays": days, "onSourceDiskDelete": on_delete}
    props = policy.get("snapshotProperties")
    if props is not None:
        props = _object(props, f"{field}.snapshotProperties")
        kept: Body = {}
        if props.get("labels"):
            kept["labels"] = validate_labels(props["labels"], f"{field}.snapshotProperties.labels")
        locations = props.get("storageLocations")
        if locations:
            if not isinstance(locations, list) or len(locations) != 1 or not isinstance(locations[0], str):
                raise Invalid(f"{field}.snapshotProperties.storageLocations", locations,
                              "Exactly one storage location may be given.")
            kept["storageLocations"] = list(locations)
        if props.get("guestFlush") is not None:
            kept["guestFlush"] = bool(props["guestFlush"])
        if props.get("chainName"):
            kept["chainName"] = str(props["chainName"])
        out["snapshotProperties"] = kept
    return out


def _cron(given: object, field: str) -> Body | None:
    if given is None:
        return None
    expr = _object(given, field).get("schedule")
    try:
        if not isinstance(expr, str):
            raise ValueError(expr)
        timing.parse_cron(expr)
    except ValueError:
        raise Invalid(f"{field}.schedule", expr, "Must be a unix-cron expression of five fields "
                                                "(minute hour day-of-month month day-of-week).") from None
    return {"schedule": expr}


def _instance_policy(given: object) -> Body:
    field = f"resource.{INSTANCE}"
    policy = _object(given, field)
    out: Body = {}
    for key in ("vmStartSchedule", "vmStopSchedule"):
        cron = _cron(policy.get(key), f"{field}.{key}")
        if cron is not None:
            out[key] = cron
    if not out:
        raise Invalid(field, "", message=f"Invalid value for field '{field}': ''. At least one of vmStartSchedule "
                                         "and vmStopSchedule must be specified.")
    zone_name = policy.get("timeZone") or "UTC"
    try:
        if not isinstance(zone_name, str):
            raise ValueError(zone_name)
        TimeZone(zone_name)
    except (ValueError, ZoneInfoNotFoundError):
        raise Invalid(f"{field}.timeZone", zone_name, "Must be a time zone name of the tz database, "
                                                     "e.g. UTC or Europe/Paris.") from None
    out["timeZone"] = zone_name
    bounds: dict[str, float] = {}
    for key in ("startTime", "expirationTime"):
        value = policy.get(key)
        if value in (None, ""):
            continue
        try:
            bounds[key] = timing.parse_rfc3339(value) if isinstance(value, str) else float("nan")
        except ValueError:
            bounds[key] = float("nan")
        if bounds[key] != bounds[key]:
            raise Invalid(f"{field}.{key}", value, "Must be an RFC 3339 timestamp.")
        out[key] = value
    if "startTime" in bounds and "expirationTime" in bounds and bounds["expirationTime"] <= bounds["startTime"]:
        raise Invalid(f"{field}.expirationTime", out["expirationTime"], "The expiration time must be after the "
                                                                       "start time.")
    return out


def _placement_policy(given: object) -> Body:
    field = f"resource.{PLACEMENT}"
    policy = _object(given, field)
    out: Body = {}
    if policy.get("vmCount") is not None:
        out["vmCount"] = vpc.integer(policy["vmCount"], f"{field}.vmCount", 1, MAX_VM_COUNT, 1)
    if policy.get("availabilityDomainCount") is not None:
        out["availabilityDomainCount"] = vpc.integer(policy["availabilityDomainCount"],
                                                     f"{field}.availabilityDomainCount", 1, MAX_DOMAINS, 1)
    collocation = policy.get("collocation") or "UNSPECIFIED_COLLOCATION"
    if collocation not in ("COLLOCATED", "UNSPECIFIED_COLLOCATION"):
        raise Invalid(f"{field}.collocation", collocation, "Must be COLLOCATED or UNSPECIFIED_COLLOCATION.")
    if collocation == "COLLOCATED":
        if "availabilityDomainCount" in out:
            raise Invalid(f"{field}.availabilityDomainCount", out["availabilityDomainCount"],
                          "A COLLOCATED placement policy cannot spread instances across availability domains.")
        out["collocation"] = collocation
    if not out:
        raise Invalid(field, "", message=f"Invalid value for field '{field}': ''. One of vmCount, "
                                         "availabilityDomainCount or collocation must be specified.")
    return out


_VALIDATORS = {SNAPSHOT: _snapshot_policy, INSTANCE: _instance_policy, PLACEMENT: _placement_policy}


def validated(body: Body) -> Body:
    """The one policy of a request body, validated, with GCE's defaults (``{kind: policy}``)."""
    for key in UNSUPPORTED_KINDS:
        if body.get(key) is not None:
            raise Invalid(f"resource.{key}", "", message=f"Invalid value for field 'resource.{key}': ''. "
                                                         f"{key} is not supported by gstack.")
    given = [key for key in POLICY_KINDS if body.get(key) is not None]
    if len(given) != 1:
        raise Invalid("resource", "", message="Invalid value for field 'resource': ''. Exactly one of "
                                              "snapshotSchedulePolicy, instanceSchedulePolicy or "
                                              "groupPlacementPolicy must be specified.")
    return {given[0]: _VALIDATORS[given[0]](body[given[0]])}


def insert(call: Call, region: str, body: Body) -> Operation:
    scope = vpc.region_scope(call.session, call.project, region)
    if body.get("name") in (None, ""):
        raise Required("resource.name")
    name = store.validate_name(body.get("name"))
    policy = validated(body)
    res = store.new_resource(
        call.session, project=call.project, collection=COLLECTION, scope=scope, name=name, kind=KIND,
        region=scope.split("/")[1], status="READY",
        body={**({"description": body["description"]} if body.get("description") else {}),
              "region": scope_url(call.project, scope), **policy})
    return operations.begin(call, scope=scope, op_type="insert", target_path=path_of(call.project, scope, COLLECTION, name),
                            target_id=res.uid)


def patch(call: Call, region: str, name: str, body: Body) -> Operation:
    """resourcePolicies.patch: the policy's settings and description; its kind stays."""
    scope = vpc.region_scope(call.session, call.project, region)
    res = projects.find_for_update(call.session, call.project, COLLECTION, scope, name)
    current = store.body_of(res)
    kind = policy_kind(current)
    if body.get("name") not in (None, res.name):
        raise Invalid("resource.name", body.get("name"), "The name of a resource policy cannot be changed.")
    merged = {kind: vpc.merge_patch(current[kind], body[kind]) if isinstance(body.get(kind), dict) else current[kind]}
    for other in (*POLICY_KINDS, *UNSUPPORTED_KINDS):
        if other != kind and body.get(other) is not None:
            raise Invalid(f"resource.{other}", "", message=f"Invalid value for field 'resource.{other}': ''. "
                                                           f"The policy is a {kind} and cannot become a {other}.")
    current.update(validated(merged))
    if "description" in body:
        current["description"] = body["description"] or ""
    store.save(res, current)
    return operations.begin(call, scope=scope, op_type="patch", target_path=path_of(call.project, scope, COLLECTION, res.name),
                            target_id=res.uid)


def delete(call: Call, region: str, name: str) -> Operation:
    scope = vpc.region_scope(call.session, call.project, region)
    res = projects.find_for_update(call.session, call.project, COLLECTION, scope, name)
    users = followers(call.session, res)
    if users:
        raise ResourceInUse("resource_policy", vpc.path(res), vpc.path(users[0]))
    op = operations.begin(call, scope=scope, op_type="delete", target_path=vpc.path(res), target_id=res.uid)
    state = store.find_optional(call.session, call.project, STATE, scope, res.name)
    if state is not None:
        call.session.delete(state)
    call.session.delete(res)
    return op


def followers(session: Session, policy: Resource, collections: Iterable[str] = ("disks", "instances")) -> list[Resource]:
    """The disks (zonal and regional) and instances that name the policy in their ``resourcePolicies``,
    by collection and name.

    Read by the policy's ``resourcePolicies`` terms (:mod:`core.terms`), not by a substring test of
    every disk and instance of the project: the scheduler asks each minute for each schedule, and a
    placement policy with ``vmCount`` at each insert. A follower is of the policy's project and
    region (:func:`.attach.resolve` takes no other), so the terms are read in the region's zones and
    the region itself: one index range each, whatever else the project holds.
    """
    scopes = [f"zones/{z.name}" for z in topology.region_zones(session, policy_region(policy))]
    pks = with_term(policy.project, tuple(collections), [*scopes, policy.scope], RESOURCE_POLICIES, vpc.url(policy))
    return list(session.scalars(select(Resource).where(Resource.pk.in_(pks)).order_by(Resource.collection, Resource.name)))


def policy_region(res: Resource) -> str:
    return res.scope.split("/", 1)[1]


def kind_of(res: Resource) -> str:
    body: dict[str, Any] = store.body_of(res)
    return policy_kind(body)
