"""The reads every instances.insert makes walk an index to the rows they want, whatever the size of
the project: on SQLite an OR of two collections in one WHERE read every resource of the project
(42 ms at 54,000 instances, twice per insert), so they are UNION ALLs of index seeks, one per
collection, and the first read of an insert (its names with its network, the region's subnetworks
and its boot image's family's images, core.services.instances.reads) is up to five of them,
joined to the project's row.
Checked with SQLite's own EXPLAIN QUERY PLAN; PostgreSQL plans by statistics and is measured by
bench.scale."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, and_, bindparam, event, insert, or_, select, text, update
from sqlalchemy.orm import Session

from core.ipam import _take_next
from core.models import Operation, Resource
from core.prepared import json_ids
from core.quotas import _GLOBAL_COUNTS, USAGE_COLUMNS
from core.resources.narrowing import operation_condition
from core.resources.queries import operation_page, operation_rows, resource_rows
from core.resources.store import new_resource
from core.services.images import _FEW_READY_IMAGES, _FEW_READY_PUBLIC_IMAGES, _READY_IMAGES, public_images
from core.services.instances.reads import NETWORK, SUBNETWORKS, _names_read, _with_project
from core.services.instances.spec import _NETWORK_AND_SUBNETS
from core.systemvms.guests import _HELD_OF, holders_in
from core.systemvms.sync import NETWORK_OR_INSTANCES
from gstack.gce.narrowing import narrowing_of

_NAMES = {"project": "demo-project", "zone": "zones/us-central1-a", "name": "vm", "disk_0": "vm", "disk_1": "data"}
_NETWORK = {"network_project": "demo-project", "network": "default", "region_scope": "regions/us-central1"}
_BY_NAME = "(project=? AND collection=? AND scope=? AND name=?)"
# The newest images of the family its terms name, each looked up by its rowid, then read by
# rowid (core.services.images.public_images)
_BY_FAMILY = ["(rowid=?)", "(collection=? AND scope=? AND rowid=?)"]


def _explained(engine: Engine, stmt, params: dict, explain_as: str) -> list[tuple]:
    """The rows of SQLite's ``explain_as`` (EXPLAIN, or EXPLAIN QUERY PLAN) of ``stmt`` as
    SQLAlchemy sends it (expanded IN lists and all)."""

    def explain(conn, cursor, statement, parameters, context, executemany):
        return f"{explain_as} {statement}", parameters

    with engine.connect() as conn:
        event.listen(conn, "before_cursor_execute", explain, retval=True)
        try:
            return [tuple(row) for row in conn.execute(stmt, params)]
        finally:
            event.remove(conn, "before_cursor_execute", explain)


def _plan(engine: Engine, stmt, params: dict) -> list[str]:
    """SQLite's plan of ``stmt``, a line per step."""
    return [row[3] for row in _explained(engine, stmt, params, "EXPLAIN QUERY PLAN")]


def _seeks(engine: Engine, stmt, params: dict) -> list[str]:
    """How SQLite searches resources for ``stmt``: each search's index columns, as its plan says them."""
    return ["(" + line.split(" (", 1)[-1] for line in _plan(engine, stmt, params) if "resources" in line]


@pytest.mark.parametrize("stmt, params, seeks", [
    (_names_read(NETWORK, False, 2), {**_NAMES, **_NETWORK}, [_BY_NAME] * 4 + ["(project=? AND collection=? AND scope=?)"]),
    (_names_read(None, False, 2), _NAMES, [_BY_NAME] * 3),
    (_names_read(SUBNETWORKS, False, 2), {**_NAMES, **_NETWORK},
     [_BY_NAME] * 3 + ["(project=? AND collection=? AND scope=?)"]),
    (_names_read(NETWORK, True, 2), {**_NAMES, **_NETWORK, "image_project": "debian-cloud", "image_family": "debian-12"},
     [_BY_NAME] * 4 + ["(project=? AND collection=? AND scope=?)", *_BY_FAMILY]),
    # the same joined to the project's row (by its unique name) and its quota counters
    (_with_project(NETWORK, True, USAGE_COLUMNS["sqlite"], 2),
     {**_NAMES, **_NETWORK, "image_project": "debian-cloud", "image_family": "debian-12", "region": "us-central1"},
     [_BY_NAME] * 4 + ["(project=? AND collection=? AND scope=?)", *_BY_FAMILY]),
    (_NETWORK_AND_SUBNETS, {"project": "demo-project", "name": "default", "scope": "regions/us-central1"},
     [_BY_NAME, "(project=? AND collection=? AND scope=?)"]),
])
def test_the_inserts_reads_seek_by_collection_not_by_project_alone(engine, stmt, params, seeks):
    if engine.dialect.name != "sqlite":
        pytest.skip("SQLite's plans; PostgreSQL's depend on its statistics")
    assert _seeks(engine, stmt, params) == seeks  # one seek per branch, by its collection


def test_the_or_of_collections_they_replaced_is_a_search_by_project_alone(engine):
    """What the check above refuses: the names read as it was, one WHERE with an OR of the collections."""
    if engine.dialect.name != "sqlite":
        pytest.skip("SQLite's plans")
    either = select(Resource.collection, Resource.name).where(
        Resource.project == bindparam("project"), Resource.scope == bindparam("zone"),
        or_(and_(Resource.collection == "instances", Resource.name == bindparam("name")),
            and_(Resource.collection == "disks", Resource.name.in_([bindparam("disk_0"), bindparam("disk_1")]))))
    assert _seeks(engine, either, _NAMES) == ["(project=?)"]


def _reads(engine: Engine, stmt, params: dict) -> list[str]:
    """The opcodes of SQLite's bytecode for ``stmt`` (EXPLAIN) that move its read cursors (those
    of OpenRead): how it walks a table or index, which the query plan does not say (a seek that
    stops at one entry and one that scans on from it plan alike)."""
    program = [(row[1], row[2]) for row in _explained(engine, stmt, params, "EXPLAIN")]
    readers = {cursor for op, cursor in program if op == "OpenRead"}
    return [op for op, cursor in program if cursor in readers and op != "OpenRead"]


def test_an_address_is_found_from_the_top_of_its_pool_not_by_walking_the_pool(engine):
    """The next address of a subnetwork is one past its highest: read as one step down the pool's
    index from the top (SeekLE), never a walk up through every address handed out (SeekGE, then Next
    over each), which cost 0.6 ms per insert at 10,000 instances in a subnetwork and grew with it."""
    if engine.dialect.name != "sqlite":
        pytest.skip("SQLite's bytecode")
    reads = _reads(engine, _take_next("sqlite").stmt, {"pool": "subnet:1", "owner_uid": 1, "first": 2, "last": 9,
                                                        "project": None})
    assert "SeekLE" in reads
    assert "SeekGE" not in reads and "Next" not in reads


@pytest.mark.parametrize("stmt", [_READY_IMAGES, _FEW_READY_IMAGES, _FEW_READY_PUBLIC_IMAGES, public_images("project", "family")],
                         ids=["family", "its newest", "another project's newest", "read ahead"])
def test_a_familys_images_are_read_by_its_terms_not_by_walking_the_projects_images(engine, stmt):
    """images.getFromFamily and a boot image of a family read the family's terms (one range of
    ix_resource_term_list) and each of its images by rowid. Newest first, SQLite preferred walking
    the project's every image by the index of that order (ix_resource_created) and testing each
    against the family: an insert cost more the more images the project's other families held."""
    if engine.dialect.name != "sqlite":
        pytest.skip("SQLite's plans")
    plan = _plan(engine, stmt, {"project": "debian-cloud", "family": "debian-12"})
    assert ("SEARCH resource_terms USING INDEX ix_resource_term_list "
            "(project=? AND collection=? AND scope=? AND field=? AND value=?)") in plan, plan
    assert _BY_FAMILY[-1] in _seeks(engine, stmt, {"project": "debian-cloud", "family": "debian-12"}), plan
    assert not any("ix_resource_created" in line for line in plan), plan


def test_a_syncs_instances_are_read_by_uid_not_by_collection(engine):
    """A router sync reads its network by name and the instances it names by uid, in one statement.
    With ``collection = 'instances'`` in the uids' branch SQLite took the collection's index for a
    list of a dozen uids and read every instance of the cloud (140 ms at 100,000, once per sync)."""
    if engine.dialect.name != "sqlite":
        pytest.skip("SQLite's plans")
    uids = list(range(1, 19))  # a burst's sync names a dozen or more
    params = {"net_project": "demo-project", "net_name": "default", "uids": json_ids(uids)}
    assert _seeks(engine, NETWORK_OR_INSTANCES.stmt, params) == [_BY_NAME, "(uid=?)"]


@pytest.mark.parametrize("collection, first", [("instances", True), ("addresses", False)])
def test_what_holds_a_subnetworks_addresses_is_read_from_its_pool_not_by_collection(engine, collection, first):
    """What keeps a subnetwork or its network from being deleted (guests.instance_on): the pool's
    range of the allocations, in address order, then each holder by uid; never the project's or the
    cloud's every instance, which the collection's index would walk."""
    if engine.dialect.name != "sqlite":
        pytest.skip("SQLite's plans")
    stmt = holders_in("subnet:1", collection)
    plan = _plan(engine, stmt.limit(1) if first else stmt, {})
    assert plan[0].startswith("SEARCH ip_allocations USING INDEX sqlite_autoindex_") and plan[0].endswith("(pool=?)"), plan
    assert _seeks(engine, stmt, {}) == ["(uid=?)"]
    assert not any("TEMP B-TREE" in line for line in plan), plan  # the address order is the index's


def test_a_syncs_guests_are_read_by_router_and_instance_not_by_router_alone(engine):
    """The router's rows of the instances a sync names: a seek of both columns of the unique index,
    not the router's every guest (its other index also starts with the router)."""
    if engine.dialect.name != "sqlite":
        pytest.skip("SQLite's plans")
    plan = _plan(engine, _HELD_OF.stmt, {"vm": 1, "uids": json_ids([5, 9])})
    # (SQLite's name of the unique constraint's index: sqlite_autoindex_router_guests_1)
    assert any(line.startswith("SEARCH router_guests USING INDEX sqlite_autoindex_")
               and line.endswith("(vm_uid=? AND instance_uid=?)") for line in plan), plan


def test_a_projects_global_counts_seek_their_collections_not_every_resource(engine):
    """projects.get (gcloud reads it before every instance it creates) counts the project's global
    resources by collection: a seek per collection. It counted every resource of the project, its
    instances and disks too, and grew with them."""
    if engine.dialect.name != "sqlite":
        pytest.skip("SQLite's plans")
    assert set(_seeks(engine, _GLOBAL_COUNTS, {"project": "demo-project"})) == {"(project=? AND collection=?)"}


def _walked(session: Session, stmt, params: dict) -> int:
    """How many rows PostgreSQL's plan of ``stmt`` read and threw away (``Rows Removed by
    Filter`` of every node, EXPLAIN ANALYZE in the session's transaction)."""

    def explain(conn, cursor, statement, parameters, context, executemany):
        return f"EXPLAIN (ANALYZE, FORMAT JSON) {statement}", parameters

    def removed(node: dict) -> int:
        return node.get("Rows Removed by Filter", 0) + sum(removed(n) for n in node.get("Plans", []))

    conn = session.connection()
    event.listen(conn, "before_cursor_execute", explain, retval=True)
    try:
        plan = conn.execute(stmt, params).scalar_one()
    finally:
        event.remove(conn, "before_cursor_execute", explain)
    return removed(plan[0]["Plan"])


def test_an_inserts_names_are_not_found_by_walking_the_zone_through_the_collections_index(session):
    """PostgreSQL: a zone that grew by 1,000 instances and disks since the planner's statistics were
    gathered (a new cloud before autovacuum's next look). Each of an insert's lookups by name
    walked every instance or disk of the zone: the planner took ix_resource_collection_scope, the
    smaller index, the name a filter. It holds the name now (migration 0019), and each disk's name
    is an equality of its own (an IN list was a filter too).

    ix_resource_created, which the planner may take for the same reason (a walk of the zone by
    creation time), is dropped in this test's transaction: that choice is left as it was."""
    if session.get_bind().dialect.name != "postgresql":
        pytest.skip("PostgreSQL's plans from stale statistics")
    with session.get_bind().connect() as conn:  # statistics of the seeded cloud, whether autovacuum took them yet or not
        conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("ANALYZE resources")
    session.execute(text("DROP INDEX ix_resource_created"))  # rolled back with the session
    session.execute(insert(Resource), [
        {"uid": 10_000_000 + 2 * i + k, "project": "demo-project", "collection": collection, "scope": "zones/us-central1-a",
         "region": "us-central1", "name": f"grown-{i}", "status": "RUNNING", "subtype": "", "created": 0.0,
         "body": "{}"} for i in range(1000) for k, collection in enumerate(("instances", "disks"))])
    assert _walked(session, _names_read(None, False, 2), _NAMES) < 10


@pytest.mark.parametrize("order, index", [("name", "ix_operation_scope"), ("creationTimestamp", "ix_operation_list")])
def test_a_page_of_operations_walks_the_index_in_its_order(engine, order, index):
    """A page of a zone's Operations, the first or one after a page token, is a walk of the index
    in its order: by name (the default order, ix_operation_scope) or newest first (walked backwards,
    ix_operation_list). No sort of the zone's whole history, which a page paid without it: 135 ms
    newest first at 100,000 Operations, 21 ms by name (0015 to 0016)."""
    if engine.dialect.name != "sqlite":
        pytest.skip("SQLite's plans")
    for after in (None, [1.7e9, 5000] if order != "name" else ["operation-1"]):
        stmt, _ = operation_page("demo-project", ["zones/us-central1-a"], order, after, 501)
        plan = _plan(engine, stmt, {})
        assert plan and all(index in line for line in plan), plan


@pytest.mark.parametrize("scopes", [["zones/us-central1-a"], ["global", "regions/us-central1", "zones/us-central1-a"]])
def test_a_list_of_unfinished_operations_reads_them_alone(engine, scopes):
    """A list whose filter only unfinished Operations can match (status = RUNNING, status != DONE)
    reads the project's unfinished ones by ix_operation_project_status, a few, and sorts them. The
    walk of ix_operation_list in page order, which SQLite's planner chose for its order, went
    through the zone's whole finished history to find them: 68 ms a page at 100,000."""
    if engine.dialect.name != "sqlite":
        pytest.skip("SQLite's plans")
    running = operation_condition(narrowing_of("status = RUNNING", "Operation"))
    assert running is not None and running.unfinished
    prefix = [] if len(scopes) == 1 else ["zones/us-central1-a"]
    for order, after in (("creationTimestamp", [*prefix, 1.7e9, 5000]), ("name", [*prefix, "operation-1"])):
        for key in (None, after):
            stmt, _ = operation_page("demo-project", scopes, order, key, 501, running)
            plan = _plan(engine, stmt, {})
            assert any("ix_operation_project_status (project=? AND status=?)" in line for line in plan), plan
            assert not any("ix_operation_list" in line or "ix_operation_scope" in line for line in plan), plan


_SCOPES = ["zones/us-central1-a", "zones/us-central1-b", "zones/us-central1-c"]


def _pages(read) -> list[list]:
    """Every key of every page of two of ``read(after, limit)``."""
    keys: list[list] = []
    after = None
    while True:
        page = read(after, 2)
        keys += [key for key, _ in page]
        if len(page) < 2:
            return keys
        after = page[-1][0]


def test_pages_over_several_scopes_newest_first_walk_each_scope(engine):
    """An aggregated list newest first is read scope after scope, each a backwards walk of its index
    range: one statement over every scope made SQLite sort each scope's whole collection (106 ms
    at 20,000 instances). The pages hold every row once, in (scope, newest first) order, resources
    and Operations alike; on SQLite no statement sorts."""
    statements: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    with Session(engine) as session:
        for i in range(7):
            for scope in _SCOPES[:2] if i % 3 else _SCOPES:
                new_resource(session, project="demo-project", collection="instances", scope=scope, name=f"vm-{i}",
                             kind="compute#instance", body={}, status="RUNNING")
                session.add(Operation(uid=10**12 + i + 10 * _SCOPES.index(scope),
                                      name=f"operation-{scope[-1]}-{i}", project="demo-project", scope=scope,
                                      operation_type="insert", target_link="x", status="DONE",
                                      insert_time=1.7e9 + (i * 7 % 5), job="none"))
        session.flush()
        session.execute(update(Resource).values(created=1.7e9 + (Resource.pk * 7 % 5)))
        rows = session.execute(select(Resource.scope, Resource.created, Resource.pk).where(
            Resource.project == "demo-project", Resource.collection == "instances", Resource.scope.in_(_SCOPES))).all()
        ops = session.execute(select(Operation.scope, Operation.insert_time, Operation.pk).where(
            Operation.project == "demo-project", Operation.scope.in_(_SCOPES))).all()
        event.listen(session.connection(), "before_cursor_execute", record)
        listed = _pages(lambda after, n: resource_rows(session, "demo-project", "instances", _SCOPES, "created",
                                                        after, n))
        listed_ops = _pages(lambda after, n: operation_rows(session, "demo-project", _SCOPES, "creationTimestamp",
                                                             after, n))
        for found, every in ((listed, rows), (listed_ops, ops)):
            assert found == sorted(([s, c, p] for s, c, p in every), key=lambda k: (k[0], -k[1], -k[2]))
        if engine.dialect.name == "sqlite":
            plans = [[row[3] for row in session.connection().exec_driver_sql("EXPLAIN QUERY PLAN " + sql,
                                                                               tuple([None] * sql.count("?")))]
                     for sql in set(statements) if "ORDER BY" in sql]
            assert plans and not any("TEMP B-TREE" in line for plan in plans for line in plan), plans
        session.rollback()
