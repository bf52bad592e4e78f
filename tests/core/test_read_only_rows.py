"""Rows read outside the ORM's loading (``core.db.read_only``): the insert's first read and the
router render's network rows are run as ``Prepared`` statements and made objects from the driver's
row. The objects must hold what the ORM would load, in the right attributes, and stay out of the
session; the statements' columns must be their tables', in order; the render's Cloud Router match
must take a network URL's LIKE wildcards literally, as ``contains(..., autoescape=True)`` did."""

from __future__ import annotations

import itertools

import orjson
import pytest
from sqlalchemy import select

from core import db
from core.models import Project, Resource
from core.prepared import Prepared
from core.quotas import USAGE_COLUMNS
from core.services.instances.reads import NETWORK, SUBNETWORKS, _with_project
from core.systemvms import nat

_UIDS = itertools.count(7_100_000_001)


def test_a_copy_holds_what_the_orm_loads_and_stays_out_of_the_session(session):
    loaded = session.scalars(select(Project).where(Project.name == "demo-project")).one()
    row = session.execute(select(*Project.__table__.columns).where(Project.name == "demo-project")).one()
    copy = db.read_only(Project, tuple(row))
    assert copy is not loaded and copy not in session
    for column in Project.__table__.columns:
        assert getattr(copy, column.key) == getattr(loaded, column.key), column.key
    assert copy.public is loaded.public  # a bool on both databases, not SQLite's 0
    copy.quota_limits = '{"changed": true}'
    session.flush()
    assert copy not in session.dirty
    session.expire(loaded)
    assert loaded.quota_limits != copy.quota_limits


@pytest.mark.parametrize("network", [None, NETWORK, SUBNETWORKS])
@pytest.mark.parametrize("image", [False, True])
@pytest.mark.parametrize("dialect", sorted(USAGE_COLUMNS))
def test_the_names_reads_columns_are_the_tables_in_order(network, image, dialect):
    """reads.names_taken slices its rows by these positions: the project's columns, the quota
    counters, the resource's."""
    stmt = _with_project(network, image, USAGE_COLUMNS[dialect], 2)
    assert [c.key for c in stmt.selected_columns] == [
        *(c.key for c in Project.__table__.columns), "usage_counters", *(c.key for c in Resource.__table__.columns)]


def _router(network_url: str) -> Resource:
    body = {"name": "r", "network": network_url}
    return Resource(uid=next(_UIDS), project="demo-project", collection="routers", scope="regions/us-central1",
                    region="us-central1", name=f"r{next(_UIDS)}", created=0.0, body=orjson.dumps(body).decode())


def test_the_routers_on_a_network_are_matched_by_its_url_literally(session):
    """A ``_`` of a URL is a LIKE wildcard unless escaped: the router of ``net_1`` must not match
    ``netx1``'s, nor a ``%`` any network."""
    base = "https://www.googleapis.com/compute/v1/projects/demo-project/global/networks/"
    db.begin_write(session)
    mine, other, wild = _router(base + "net_1"), _router(base + "netx1"), _router(base + "n%")
    for row in (mine, other, wild):
        db.insert_persistent(session, row)
    found = Prepared(select(Resource.name).where(nat.ROUTERS_ON))
    assert [name for (name,) in found.in_session(session, nat.routers_on(base + "net_1", "us-central1"))] == [mine.name]
    assert [name for (name,) in found.in_session(session, nat.routers_on(base + "n%", "us-central1"))] == [wild.name]
    assert found.in_session(session, nat.routers_on(base + "net_1", "europe-west1")) == []
