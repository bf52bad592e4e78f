"""Quota usage counters: database triggers keep them equal to what the resources hold, whatever
changes the rows, and a database made before them is counted when they are installed."""

from __future__ import annotations

import pytest
from sqlalchemy import case, delete, func, select, update

from core import usage
from core.db import write_session
from core.models import Resource, ResourceUsage

pytestmark = pytest.mark.xdist_group("systemvms-usage")


def counted(cloud) -> dict[tuple, tuple]:
    with cloud.factory() as s:
        return {(r.region, r.collection, r.subtype): (r.count, r.cpus, r.size_gb)
                for r in s.scalars(select(ResourceUsage).where(ResourceUsage.project == cloud.project))
                if (r.count, r.cpus, r.size_gb) != (0, 0, 0)}


def summed(cloud) -> dict[tuple, tuple]:
    """What the counters must say: the sums over the resource rows."""
    with cloud.factory() as s:
        rows = s.execute(select(
            Resource.region, Resource.collection, Resource.subtype, func.count(),
            func.sum(case((Resource.status != "TERMINATED", Resource.vcpus), else_=0)), func.sum(Resource.size_gb))
            .where(Resource.project == cloud.project, Resource.collection.in_(("instances", "disks")))
            .group_by(Resource.region, Resource.collection, Resource.subtype))
        return {(region, coll, sub): (n, int(cpus), int(size)) for region, coll, sub, n, cpus, size in rows}


def test_counters_follow_every_change(cloud):
    for name in ("u-1", "u-2", "u-3"):
        cloud.instance(name)
    assert counted(cloud) == summed(cloud)
    assert counted(cloud)[("us-central1", "instances", "e2-micro")] == (3, 6, 0)
    cloud.power("u-1", "stop")  # a TERMINATED VM holds no CPUs
    assert counted(cloud)[("us-central1", "instances", "e2-micro")] == (3, 4, 0)
    cloud.delete_instance("u-2")  # its boot disk goes with it
    assert counted(cloud) == summed(cloud)
    with write_session(cloud.factory) as s:  # any path that changes a row counts, raw SQL included
        s.execute(update(Resource).where(Resource.project == cloud.project, Resource.collection == "disks")
                  .values(size_gb=Resource.size_gb + 5))
        s.execute(update(Resource).where(Resource.project == cloud.project, Resource.name == "u-3",
                                         Resource.collection == "instances").values(subtype="e2-small", vcpus=2))
    assert counted(cloud) == summed(cloud)
    assert counted(cloud)[("us-central1", "instances", "e2-small")] == (1, 2, 0)
    with write_session(cloud.factory) as s:
        s.execute(update(Resource).where(Resource.project == cloud.project, Resource.collection == "instances")
                  .values(status="RUNNING"))
    assert counted(cloud) == summed(cloud)
    for name in ("u-1", "u-3"):
        cloud.delete_instance(name)
    assert counted(cloud) == summed(cloud) == {}


def test_a_database_made_before_the_counters_is_counted(cloud):
    cloud.instance("old-1")
    cloud.instance("old-2")
    engine = cloud.factory.kw["bind"]
    postgres = engine.dialect.name == "postgresql"
    with engine.begin() as conn:  # as a database of an earlier build: no triggers, no counts
        if postgres:
            conn.exec_driver_sql("DROP TRIGGER resource_usage ON resources")
        else:
            for name in ("insert", "update", "delete"):
                conn.exec_driver_sql(f"DROP TRIGGER resource_usage_{name}")
        conn.execute(delete(ResourceUsage))
    usage.install(engine)
    usage.install(engine)  # a second start finds them installed and counts nothing twice
    assert counted(cloud) == summed(cloud) != {}
    for name in ("old-1", "old-2"):
        cloud.delete_instance(name)
    assert counted(cloud) == {}

