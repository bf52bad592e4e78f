"""The zones every call looks up are cached briefly, apart for each database: a zone's row id is
its database's, and a process may serve several one after another (the suite's in-process
servers). Shared by name alone, a server placed VMs by the zone id another database gave the name."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.db import write_session
from core.ids import new_uid
from core.models import Region, Zone
from core.services import topology
from tests.helpers.databases import seeded_engine, sessions


def _add_zones(engine, names: list[str]) -> int:
    """Add zones of us-central1 in this order: the row id of the last one."""
    with write_session(sessions(engine)) as s:
        region = s.scalars(select(Region).where(Region.name == "us-central1")).one()
        for name in names:
            zone = Zone(uid=new_uid(), name=name, region_id=region.id)
            s.add(zone)
            s.flush()
        return zone.id


def test_each_database_has_its_own_zones():
    with seeded_engine("sqlite", "gstack-zones-a-") as a, seeded_engine("sqlite", "gstack-zones-b-") as b:
        in_a = _add_zones(a, ["us-central1-y"])
        in_b = _add_zones(b, ["us-central1-x", "us-central1-y"])  # the same name, another row id
        assert in_a != in_b
        with Session(a) as sa, Session(b) as sb:
            assert topology.zone(sa, "p", "us-central1-y").id == in_a
            assert topology.zone(sb, "p", "us-central1-y").id == in_b  # within the cache's life
            assert topology.zone(sa, "p", "us-central1-y").id == in_a
            assert topology.zone(sb, "p", "us-central1-x").name == "us-central1-x"
