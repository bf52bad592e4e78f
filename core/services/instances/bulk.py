"""instances.bulkInsert: many instances from one set of properties, as GCE's bulk API makes them.

The request is validated whole first (counts, names, properties); then each instance is made by
:func:`.lifecycle.insert`, in the request's transaction, each with its own ``insert`` Operation
whose ``instances.run`` job places and starts it (bursts start through the job's batch path).
Every Operation of the request carries one ``operationGroupId``, which gcloud lists to count
what was made.

Why one transaction: a refused request leaves nothing. Quota is the only failure known before
the instances exist: an instance past the quota is skipped when ``minCount`` are made already
(partial success, as GCE), and refuses the whole request (GCE's 403 ``quotaExceeded``) otherwise.
Capacity is known only when the run jobs place the VMs: the request's own ``bulkInsert``
Operation waits for its instances' Operations, records the counts in its
``instancesBulkInsertOperationMetadata``, and when fewer than ``minCount`` run, deletes those that
did and ends with the error that stopped the others (GCE's rollback).
"""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

import orjson
from sqlalchemy import select, update

from core.errors import AlreadyExists, Invalid, OperationFailure, QuotaExceeded, Required
from core.jobs import JobContext, job
from core.links import path_of
from core.models import Operation, Resource
from core.resources import operations, store
from core.resources.context import Call
from core.services import topology
from core.services.instances import lifecycle
from core.services.topology import ZoneInfo

JOB = "instances.bulkInsert"
_FIELD = "bulkInsertInstanceResource"
_PATTERN = re.compile(r"^([^#]*)(#+)([^#]*)$")
_MAX_HASHES = 18
# How long one attempt of the bulk job waits for its instances; past it the job is tried again
# later (a transient fault), which frees the worker for the instances' own run jobs.
_WAIT_SECONDS = 60.0


def bulk_insert(call: Call, zone: ZoneInfo, body: dict[str, Any]) -> Operation:
    """Validate the request, make its instances and begin the ``bulkInsert`` Operation."""
    count, min_count = counts(body)
    per = per_instance(body)
    check_properties(body)
    if body.get("locationPolicy"):
        raise Invalid(f"{_FIELD}.locationPolicy", None, message=(
            "Location policy is supported only for regional bulkInsert requests."))
    names = instance_names(call, [zone], body.get("namePattern"), per, count)
    return begin(call, f"zones/{zone.name}", body, [(zone, name) for name in names], per, min_count)


def begin(call: Call, scope: str, body: dict[str, Any], placed: list[tuple[ZoneInfo, str]],
          per: dict[str, dict[str, Any]], min_count: int) -> Operation:
    """Make the instances, each in the zone it was given, and begin the ``bulkInsert`` Operation in
    ``scope`` (the zone, or the region of a regional request) with a status per zone."""
    group = str(uuid.uuid4())
    children: list[Operation] = []
    skipped: list[tuple[ZoneInfo, str]] = []
    for i, (zone, name) in enumerate(placed):
        try:
            with call.session.begin_nested():
                children.append(_insert_one(call, zone, body, name, per.get(name) or {}))
        except QuotaExceeded:
            if len(children) < min_count:
                raise
            skipped = placed[i:]
            break
    for child in children:
        child.params = orjson.dumps({**orjson.loads(child.params), "operationGroupId": group}).decode()
    statuses: dict[str, dict[str, Any]] = {}
    for zone, _name in placed:
        key = f"zones/{zone.name}"
        statuses[key] = _status(statuses.get(key, {}).get("targetVmCount", 0) + 1, created=0,
                                failed=sum(1 for z, _ in skipped if z.name == zone.name), state="CREATING")
    first_zone, first = placed[0]
    target_scope = scope if scope.startswith("regions/") else f"zones/{first_zone.name}"
    return operations.begin(
        call, scope=scope, op_type="bulkInsert", target_path=path_of(call.project, target_scope, "instances", first),
        target_id=None, job=JOB,
        params={"operationGroupId": group, "bulkStatus": statuses, "children": [c.pk for c in children],
                "minCount": min_count, "user": call.user})


def _insert_one(call: Call, zone: ZoneInfo, body: dict[str, Any], name: str, per: dict[str, Any]) -> Operation:
    one = {**lifecycle.in_zone(zone, body.get("instanceProperties") or {}), "name": name}
    if per.get("hostname"):
        one["hostname"] = per["hostname"]
    return lifecycle.insert(call, zone, one, body.get("sourceInstanceTemplate"))


def counts(body: dict[str, Any]) -> tuple[int, int]:
    """``count`` (required, at least 1) and ``minCount`` (``count`` when absent, at most ``count``)."""
    if body.get("count") in (None, ""):
        raise Required(f"{_FIELD}.count")
    count = _integer("count", body["count"])
    if count < 1:
        raise Invalid(f"{_FIELD}.count", body["count"], "Count must be greater than 0.")
    if body.get("minCount") in (None, ""):
        return count, count
    min_count = _integer("minCount", body["minCount"])
    if min_count < 1:
        raise Invalid(f"{_FIELD}.minCount", body["minCount"], "Min count must be greater than 0.")
    if min_count > count:
        raise Invalid(f"{_FIELD}.minCount", body["minCount"], "Min count must be less than or equal to count.")
    return count, min_count


def _integer(name: str, value: object) -> int:
    try:
        return int(str(value))
    except ValueError:
        raise Invalid(f"{_FIELD}.{name}", value, "Must be an integer.") from None


def per_instance(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The named instances (keys are names); each name is checked as an instance name."""
    per = body.get("perInstanceProperties") or {}
    if not isinstance(per, dict):
        raise Invalid(f"{_FIELD}.perInstanceProperties", per, "Must be a map.")
    for name, props in per.items():
        store.validate_name(name, f"{_FIELD}.perInstanceProperties")
        if not isinstance(props, dict):
            raise Invalid(f"{_FIELD}.perInstanceProperties[{name}]", props, "Must be an object.")
        if props.get("name") not in (None, "", name):
            raise Invalid(f"{_FIELD}.perInstanceProperties[{name}].name", props["name"],
                          "The name must match the key of the map.")
    return per


def check_properties(body: dict[str, Any]) -> None:
    """``instanceProperties`` (an object) or ``sourceInstanceTemplate`` must be given; each instance's
    body is ``instanceProperties`` linked in its zone (the template's properties merged under it by
    :func:`.lifecycle.insert`)."""
    props = body.get("instanceProperties")
    if props is None and not body.get("sourceInstanceTemplate"):
        raise Invalid(f"{_FIELD}.instanceProperties", None, message=(
            "Either instanceProperties or sourceInstanceTemplate must be specified."))
    if props is not None and not isinstance(props, dict):
        raise Invalid(f"{_FIELD}.instanceProperties", props, "Must be an object.")


def instance_names(call: Call, zones: list[ZoneInfo], pattern: object, per: dict[str, dict[str, Any]],
                   count: int) -> list[str]:
    """The instances' names: the named ones first, then the pattern's, numbered after the largest
    number an instance of the zones already has under the pattern (GCE's rule, not the first gaps)."""
    if not pattern and not per:
        raise Invalid(f"{_FIELD}.namePattern", None, message=(
            "Either namePattern or perInstanceProperties must be specified."))
    if len(per) > count:
        raise Invalid(f"{_FIELD}.count", count, "Count must be greater than or equal to the number of "
                      "instances specified in perInstanceProperties.")
    for name in per:
        for zone in zones:
            if store.exists(call.session, call.project, "instances", f"zones/{zone.name}", name):
                raise AlreadyExists(path_of(call.project, f"zones/{zone.name}", "instances", name))
    names = list(per)
    missing = count - len(names)
    if not missing:
        return names
    if not pattern:
        raise Invalid(f"{_FIELD}.count", count, "Count must be equal to the number of instances specified "
                      "in perInstanceProperties when namePattern is not specified.")
    prefix, width, suffix = _pattern(pattern)
    number = max(_largest(call, zone, prefix, width, suffix) for zone in zones)
    while len(names) < count:
        number += 1
        if len(str(number)) > width:
            raise Invalid(f"{_FIELD}.namePattern", pattern,
                          f"The name pattern cannot generate {missing} more instance names.")
        name = f"{prefix}{number:0{width}d}{suffix}"
        if name not in per:
            names.append(name)
    return names


def _pattern(pattern: object) -> tuple[str, int, str]:
    """(prefix, number of digits, suffix) of a valid pattern; its names must be valid names."""
    found = _PATTERN.match(pattern) if isinstance(pattern, str) else None
    if found is None or len(found.group(2)) > _MAX_HASHES:
        raise Invalid(f"{_FIELD}.namePattern", pattern, (
            f"The name pattern must contain one continuous sequence of at most {_MAX_HASHES} '#' characters."))
    prefix, hashes, suffix = found.groups()
    store.validate_name(f"{prefix}{'1' * len(hashes)}{suffix}", f"{_FIELD}.namePattern")
    return prefix, len(hashes), suffix


def _largest(call: Call, zone: ZoneInfo, prefix: str, width: int, suffix: str) -> int:
    taken = re.compile(rf"^{re.escape(prefix)}(\d{{{width}}}){re.escape(suffix)}$")
    rows = call.session.scalars(select(Resource.name).where(
        Resource.project == call.project, Resource.collection == "instances",
        Resource.scope == f"zones/{zone.name}"))
    return max((int(m.group(1)) for m in map(taken.match, rows) if m), default=0)


def _status(target: int, *, created: int, failed: int, state: str, deleted: int = 0) -> dict[str, Any]:
    return {"createdVmCount": created, "deletedVmCount": deleted, "failedToCreateVmCount": failed,
            "status": state, "targetVmCount": target}


# -- the bulkInsert Operation's job -------------------------------------------------------------------


def _run_bulk(ctx: JobContext) -> None:
    """Wait for the instances' Operations, then record the counts of each zone; below ``minCount``
    (over all zones), roll back."""
    deadline = time.monotonic() + _WAIT_SECONDS
    for pk in ctx.params["children"]:
        ctx.engine.wait(pk, max(0.0, deadline - time.monotonic()))
    failure: OperationFailure | None = None
    with ctx.write() as s:
        children = list(s.scalars(select(Operation).where(Operation.pk.in_(ctx.params["children"]))))
        if any(op.status != "DONE" for op in children):
            raise TimeoutError("the instances of the bulkInsert are still being created")
        made = [op for op in children if not op.error]
        errors = [orjson.loads(op.error)["errors"][0] for op in children if op.error]
        rolled_back = len(made) < ctx.params["minCount"]
        statuses = {}
        for scope, status in ctx.params["bulkStatus"].items():
            here = [op for op in children if op.scope == scope]
            created = sum(1 for op in here if not op.error)
            failed = status["failedToCreateVmCount"] + sum(1 for op in here if op.error)
            statuses[scope] = _status(status["targetVmCount"], created=0 if rolled_back else created, failed=failed,
                                      state="DONE", deleted=created if rolled_back else 0)
        if rolled_back:
            _roll_back(ctx, s, made)
            first = errors[0] if errors else {"code": "ZONE_RESOURCE_POOL_EXHAUSTED", "message": ""}
            failure = OperationFailure(first["code"], first["message"], 503)
        s.execute(update(Operation).where(Operation.pk == ctx.op_pk).values(
            params=orjson.dumps({**ctx.params, "bulkStatus": statuses}).decode()))
        if failure is None:
            ctx.complete(s)
    if failure is not None:
        raise failure


def _roll_back(ctx: JobContext, s: Any, made: list[Operation]) -> None:
    """Delete the instances that were made (each through its own delete job)."""
    call = Call(s, ctx.project, user=ctx.params.get("user", ""))
    for op in made:
        zone = topology.zone(s, ctx.project, op.scope.split("/", 1)[1])
        name = op.target_link.rsplit("/", 1)[-1]
        if store.exists(s, ctx.project, "instances", f"zones/{zone.name}", name):
            lifecycle.delete(call, zone, name)


job(JOB)(_run_bulk)
