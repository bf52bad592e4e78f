"""Minimum CPU platforms: GCE's order of platforms (per vendor, oldest first), and the planner
placing a VM only on a host at or above its minimum, on a real database (both backends).

The seeded zone us-central1-a has hosts of two platforms; each test sets them explicitly."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from core import planner
from core.catalog import platforms
from core.models import Host
from tests.helpers.core import add_resource, zone_id

ZONE = "us-central1-a"


@pytest.mark.parametrize(("host", "minimum", "ok"), [
    ("Intel Cascade Lake", None, True),
    ("Intel Cascade Lake", "Intel Cascade Lake", True),
    ("Intel Cascade Lake", "Intel Sandy Bridge", True),
    ("Intel Cascade Lake", "Intel Skylake", True),
    ("Intel Cascade Lake", "Intel Ice Lake", False),
    ("Intel Sapphire Rapids", "Intel Ice Lake", True),
    ("AMD Milan", "AMD Rome", True),
    ("AMD Milan", "AMD Genoa", False),
    ("AMD Genoa", "Intel Sandy Bridge", False),  # vendors do not mix
    ("Intel Sapphire Rapids", "AMD Rome", False),
])
def test_platform_order(host, minimum, ok):
    assert platforms.satisfies(host, minimum) is ok


def test_minimums_offered_newest_first_per_vendor():
    assert platforms.minimums_offered({"Intel Haswell", "AMD Rome"}) == [
        "Intel Haswell", "Intel Ivy Bridge", "Intel Sandy Bridge", "AMD Rome"]


def _set_platforms(session: Session, names: list[str]) -> list[Host]:
    hosts = list(session.scalars(select(Host).where(Host.zone_id == zone_id(session, ZONE)).order_by(Host.id)))
    for host, name in zip(hosts, names, strict=True):
        host.cpu_platform = name
    session.flush()
    return hosts


def test_placement_honours_the_minimum(session):
    hosts = _set_platforms(session, ["Intel Broadwell", "Intel Cascade Lake", "AMD Milan", "Intel Ice Lake"])
    zid = zone_id(session, ZONE)

    def place(minimum: str | None, vcpus: int = 1) -> str | None:
        found = planner.place_vm(session, zid, vcpus, 1024, min_platform=minimum)
        return found.name if found is not None else None

    assert place(None) == hosts[0].name
    assert place("Intel Haswell") == hosts[0].name
    assert place("Intel Skylake") == hosts[1].name
    assert place("Intel Ice Lake") == hosts[3].name
    assert place("AMD Rome") == hosts[2].name
    assert place("Intel Sapphire Rapids") is None
    assert place("AMD Genoa") is None
    # A full qualifying host sends the VM to the next one that qualifies, never below the minimum.
    add_resource(session, "instances", host_id=hosts[1].id, vcpus=32 * 4)
    assert place("Intel Skylake") == hosts[3].name
    add_resource(session, "instances", host_id=hosts[3].id, vcpus=32 * 4)
    assert place("Intel Skylake") is None
    assert place("Intel Broadwell") == hosts[0].name
