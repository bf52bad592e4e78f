"""Per-region and global quotas of a project, as GCE reports and enforces them."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any, NamedTuple, TypedDict

import orjson
from sqlalchemy import ColumnElement, bindparam, func, or_, select
from sqlalchemy.orm import Session

from core.catalog import DEFAULT_GLOBAL_QUOTAS, DEFAULT_REGION_QUOTAS, DISK_TYPES
from core.db import flushed_connection
from core.errors import QuotaExceeded
from core.models import Project, Resource, ResourceUsage
from core.usage import ADDRESSES


def limits(project: Project, region: str | None) -> dict[str, float]:
    """Defaults overlaid with the project's overrides (``{"regions": {R or "*": {...}}, "global": {...}}``)."""
    overrides = orjson.loads(project.quota_limits or "{}")
    if region is None:
        return {**DEFAULT_GLOBAL_QUOTAS, **overrides.get("global", {})}
    per_region = overrides.get("regions", {})
    return {**DEFAULT_REGION_QUOTAS, **per_region.get("*", {}), **per_region.get(region, {})}


_ADDRESS_METRICS = frozenset({"STATIC_ADDRESSES", "IN_USE_ADDRESSES"})


# Usage is counted as resources change (database triggers, see core.usage): a check reads a few rows.
_REGION_USAGE = select(ResourceUsage.collection, ResourceUsage.subtype, ResourceUsage.count, ResourceUsage.cpus,
                       ResourceUsage.size_gb).where(ResourceUsage.project == bindparam("project"),
                                                    ResourceUsage.region == bindparam("region"))
_ALL_REGIONS_CPUS = select(func.sum(ResourceUsage.cpus)).where(
    ResourceUsage.project == bindparam("project"), ResourceUsage.collection == "instances")
# What :func:`check_region` reads: the region's counters (region_usage's) and every region's instances'.
_CHECK_USAGE = select(ResourceUsage.region, *_REGION_USAGE.selected_columns).where(
    ResourceUsage.project == bindparam("project"),
    or_(ResourceUsage.region == bindparam("region"), ResourceUsage.collection == "instances"))


def region_usage(session: Session, project: str, region: str,
                 metrics: Collection[str] | None = None) -> dict[str, float]:
    """Usage of the regional metrics, from the project's usage counters in the region.

    ``metrics``: the ones the caller needs (all by default). The address counts take one more
    query (the static addresses'), so a check that needs none skips it.
    """
    rows = flushed_connection(session).execute(_REGION_USAGE, {"project": project, "region": region})
    return _region_usage_of(session, project, region, metrics, rows)


def _region_usage_of(session: Session, project: str, region: str, metrics: Collection[str] | None,
                     counters: Iterable[Sequence[Any]], statics: Mapping[str, int] | None = None) -> dict[str, float]:
    """:func:`region_usage` from the region's counters, as (collection, subtype, count, cpus, size_gb)."""
    usage = {"CPUS": 0.0, "INSTANCES": 0.0, "DISKS_TOTAL_GB": 0.0, "SSD_TOTAL_GB": 0.0,
             "STATIC_ADDRESSES": 0.0, "IN_USE_ADDRESSES": 0.0}
    ephemeral = 0.0
    for collection, subtype, count, cpus, size in counters:
        if collection == "instances":
            usage["INSTANCES"] += float(count)
            usage["CPUS"] += float(cpus or 0)
        elif collection == ADDRESSES:
            ephemeral += float(count)
        else:
            metric = DISK_TYPES[subtype].quota_metric if subtype in DISK_TYPES else "DISKS_TOTAL_GB"
            usage[metric] += float(size or 0)
    if metrics is None or not _ADDRESS_METRICS.isdisjoint(metrics):
        usage.update(_address_usage(session, project, region, ephemeral, statics))
    if metrics is None or not REGION_COUNTS.keys().isdisjoint(metrics):
        usage.update(_region_counts(session, project, region))
    return usage


def _address_usage(session: Session, project: str, region: str, ephemeral: float,
                   statics: Mapping[str, int] | None = None) -> dict[str, float]:
    """STATIC_ADDRESSES: reserved external addresses. IN_USE_ADDRESSES: external IPs in use, the
    ephemeral ones instances, forwarding rules and Cloud NATs hold (``ephemeral``, the region's
    counter: :mod:`core.usage`) plus the static addresses that are IN_USE (a count of the project's
    addresses: a few, unlike its instances). ``statics``: that count by status, when the caller
    read it along with something else (:data:`STATIC_ADDRESSES_COLUMN`)."""
    static = dict(flushed_connection(session).execute(_STATIC_ADDRESSES, {"project": project, "region": region}).all()) \
        if statics is None else statics
    return {"STATIC_ADDRESSES": float(sum(static.values())),
            "IN_USE_ADDRESSES": ephemeral + static.get("IN_USE", 0)}


_STATIC_ADDRESSES = (select(Resource.status, func.count().label("count"))
                     .where(Resource.project == bindparam("project"), Resource.collection == "addresses",
                            Resource.region == bindparam("region"), Resource.subtype == "EXTERNAL")
                     .group_by(Resource.status))
_STATICS = _STATIC_ADDRESSES.subquery("statics")
# What _address_usage reads, as one column of PostgreSQL's (a JSON object of counts by status; NULL:
# none) for the caller to select along with a statement of its own, as USAGE_COLUMNS.
STATIC_ADDRESSES_COLUMN = (select(func.json_object_agg(_STATICS.c.status, _STATICS.c["count"])).select_from(_STATICS)
                           .scalar_subquery().label("static_addresses"))


_GLOBAL_COLLECTIONS = {"SNAPSHOTS": "snapshots", "NETWORKS": "networks", "FIREWALLS": "firewalls",
                       "IMAGES": "images", "ROUTES": "routes", "SUBNETWORKS": "subnetworks", "ROUTERS": "routers",
                       "MACHINE_IMAGES": "machineImages"}
# Global metrics of collections that also have regional rows (counted by REGION_COUNTS).
_GLOBAL_SCOPED = {"INSTANCE_TEMPLATES": "instanceTemplates"}


# The count of the project's resources of each global metric's collection: a seek per collection
# (the resources index starts (project, collection)). Counting every resource of the project, as
# it did, walked its instances and disks too, which no global metric counts: projects.get, which
# gcloud calls before every instance it creates, grew with the project.
_GLOBAL_COUNTS = (select(Resource.collection, func.count())
                  .where(Resource.project == bindparam("project"),
                         Resource.collection.in_(list(_GLOBAL_COLLECTIONS.values())))
                  .group_by(Resource.collection))


def global_usage(session: Session, project: str) -> dict[str, float]:
    counts = dict(session.execute(_GLOBAL_COUNTS, {"project": project}).all())
    usage = {metric: float(counts.get(coll, 0)) for metric, coll in _GLOBAL_COLLECTIONS.items()}
    scoped = dict(session.execute(
        select(Resource.collection, func.count())
        .where(Resource.project == project, Resource.scope == "global",
               Resource.collection.in_(list(_GLOBAL_SCOPED.values())))
        .group_by(Resource.collection)).all())
    usage.update({metric: float(scoped.get(coll, 0)) for metric, coll in _GLOBAL_SCOPED.items()})
    usage["CPUS_ALL_REGIONS"] = all_regions_cpus(session, project)
    return usage


def all_regions_cpus(session: Session, project: str) -> float:
    return float(flushed_connection(session).execute(_ALL_REGIONS_CPUS, {"project": project}).scalar() or 0)


class Counter(NamedTuple):
    """A row of :data:`_CHECK_USAGE`."""

    region: str
    collection: str
    subtype: str
    number: float  # (its column is "count", which a tuple has as a method)
    cpus: float | None
    size_gb: float | None


_USAGE_ROWS = _CHECK_USAGE.subquery("usage")
# What check_region reads, as one column (a JSON array of its rows) for the caller to select along
# with a statement of its own that returns one row, before the check: one round trip less. By
# dialect: PostgreSQL's json_agg (NULL over no rows) and SQLite's json_group_array ('[]'), each
# array a row. Its parameters are ``project`` (the name) and ``region``; counters_of reads its value.
USAGE_COLUMNS: dict[str, ColumnElement[Any]] = {
    "postgresql": (select(func.json_agg(func.json_build_array(*_USAGE_ROWS.c))).select_from(_USAGE_ROWS)
                   .scalar_subquery().label("usage_counters")),
    "sqlite": (select(func.json_group_array(func.json_array(*_USAGE_ROWS.c))).select_from(_USAGE_ROWS)
               .scalar_subquery().label("usage_counters"))}


def counters_of(value: Any) -> list[Counter]:
    """The rows of a :data:`USAGE_COLUMNS` value: PostgreSQL's driver hands the JSON parsed (NULL:
    none), SQLite's as text."""
    return [Counter(*row) for row in (orjson.loads(value) if isinstance(value, str) else value or ())]


def check_region(session: Session, project: Project, region: str, demand: dict[str, float],
                 counters: Sequence[Counter] | None = None, statics: Mapping[str, int] | None = None) -> None:
    """Refuse (403 quotaExceeded) if adding ``demand`` would pass a regional limit.

    The region's counters and, for CPUS_ALL_REGIONS, every region's instance counters are one read
    (:data:`_CHECK_USAGE`): an insert checks its quotas in one round trip, not two. ``counters``:
    that read's rows, when the caller read them along with something else (:data:`USAGE_COLUMNS`);
    ``statics``, the static external addresses by status, likewise (:data:`STATIC_ADDRESSES_COLUMN`)."""
    demand = {k: v for k, v in demand.items() if v > 0}
    if demand:
        _refuse_past(session, project, region, demand, counters, statics)


def seen(region: str, counters: Sequence[Counter], statics: Mapping[str, int] | None) -> dict[str, Any]:
    """The parameters of :func:`core.usage.usage_unchanged` (but ``project``) for a check made on
    ``counters`` (and ``statics``, when IN_USE_ADDRESSES was checked) read outside the transaction
    that writes: what the write's statement tests before it goes on."""
    return {"gate_region": region, "gate_usage": orjson.dumps([list(c) for c in counters]).decode(),
            "gate_statics": None if statics is None else orjson.dumps(statics).decode()}


def recheck_region(session: Session, project: Project, region: str, metrics: Iterable[str]) -> None:
    """Refuse (403 quotaExceeded) if the usage of ``metrics`` passes its limit, read after the
    caller's write: on PostgreSQL that write holds the project's usage lock (:mod:`core.usage`)
    until the transaction ends, so the usage read now holds every concurrent insert that committed
    and none that can still commit beside it. A check before the write (:func:`check_region`)
    reads the usage as it was when the statement began: two inserts checked at once could both pass.
    Nothing on SQLite: a transaction that read before another's commit cannot write after it."""
    if session.get_bind().dialect.name == "postgresql":
        _refuse_past(session, project, region, dict.fromkeys(metrics, 0.0), None, None)


def _refuse_past(session: Session, project: Project, region: str, demand: dict[str, float],
                 counters: Sequence[Counter] | None, statics: Mapping[str, int] | None) -> None:
    lim = limits(project, region)
    if counters is None:
        counters = [Counter(*row) for row in flushed_connection(session).execute(
            _CHECK_USAGE, {"project": project.name, "region": region})]
    usage = _region_usage_of(session, project.name, region, demand,
                             (row[1:] for row in counters if row.region == region), statics)
    for metric, amount in demand.items():
        if usage.get(metric, 0.0) + amount > lim.get(metric, float("inf")):
            raise QuotaExceeded(metric, lim[metric], region)
    if "CPUS" in demand:
        glim = limits(project, None)
        all_regions = sum(float(row.cpus or 0) for row in counters if row.collection == "instances")
        if all_regions + demand["CPUS"] > glim["CPUS_ALL_REGIONS"]:
            raise QuotaExceeded("CPUS_ALL_REGIONS", glim["CPUS_ALL_REGIONS"], None)


def check_global(session: Session, project: Project, metric: str, amount: float = 1) -> None:
    lim = limits(project, None)
    if global_usage(session, project.name).get(metric, 0.0) + amount > lim.get(metric, float("inf")):
        raise QuotaExceeded(metric, lim[metric], None)


# Regional limits on how many resources of a collection a project has in a region, counted from
# the rows (groups and regional templates are made rarely, unlike instances and disks): the
# collection and whether the metric counts the zonal rows of the region (True) or its regional ones.
REGION_COUNTS = {"INSTANCE_GROUPS": ("instanceGroups", True),
                 "INSTANCE_GROUP_MANAGERS": ("instanceGroupManagers", True),
                 "REGIONAL_INSTANCE_GROUP_MANAGERS": ("instanceGroupManagers", False),
                 "INSTANCE_TEMPLATES": ("instanceTemplates", False)}
_REGION_ROWS = (select(Resource.collection, Resource.scope, func.count())
                .where(Resource.project == bindparam("project"),
                       Resource.collection.in_(sorted({c for c, _ in REGION_COUNTS.values()})),
                       or_(Resource.region == bindparam("region"), Resource.scope == bindparam("scope")))
                .group_by(Resource.collection, Resource.scope))


def _region_counts(session: Session, project: str, region: str) -> dict[str, float]:
    rows = flushed_connection(session).execute(_REGION_ROWS, {"project": project, "region": region,
                                                              "scope": f"regions/{region}"})
    found: dict[tuple[str, bool], float] = {}
    for collection, scope, count in rows:
        if scope.startswith("zones/") or scope == f"regions/{region}":
            key = (collection, scope.startswith("zones/"))
            found[key] = found.get(key, 0.0) + float(count)
    return {metric: found.get(key, 0.0) for metric, key in REGION_COUNTS.items()}


def check_region_count(session: Session, project: Project, region: str, metric: str) -> None:
    """Refuse (403 quotaExceeded) one more resource of ``metric``'s collection in ``region``; a
    project's override of the limit (``quota_limits``) applies as for every regional metric."""
    limit = limits(project, region)[metric]
    if _region_counts(session, project.name, region)[metric] + 1 > limit:
        raise QuotaExceeded(metric, limit, region)


class Quota(TypedDict):
    """One entry of a project's or region's ``quotas`` (GCE's Quota message)."""

    metric: str
    limit: float
    usage: float


def quota_list(usage: dict[str, float], lim: dict[str, float]) -> list[Quota]:
    return [{"metric": m, "limit": float(lim[m]), "usage": float(usage.get(m, 0.0))} for m in sorted(lim)]
