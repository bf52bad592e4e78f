"""Migrations (core.migrations) on real databases: a database made by release 5b7c533, with
instances, disks and an address in it (the SQL dumps in tests/core/data), upgrades to head on
SQLite and on PostgreSQL losing no row, and ends with the very schema a fresh database gets; the
baseline revision makes exactly that release's schema; ``gstack serve`` refuses the old database
until ``gstack db upgrade`` has run, and then serves its instances (googleapiclient)."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, Engine, insert, inspect, update

from core import migrations
from core.db import create_schema, make_engine
from core.models import Base, Resource
from tests.conftest import (
    PROJECT,
    ZONE,
    Server,
    create_pg_database,
    drop_pg_database,
    free_port,
    pg_available,
)

DATA = os.path.join(os.path.dirname(__file__), "data")


def _dump(backend: str) -> str:
    with open(os.path.join(DATA, f"release-5b7c533.{backend}.sql")) as f:
        return f.read()


@pytest.fixture(params=["sqlite", "postgresql"])
def databases(request) -> Iterator[Callable[[bool], Engine]]:
    """Makes empty databases of one backend (or, with True, the release's database loaded from
    its dump), all removed afterwards."""
    made: list[tuple[Engine, Callable[[], None]]] = []
    if request.param == "postgresql" and not pg_available():
        pytest.fail("PostgreSQL is not reachable at 127.0.0.1:5432 (.ci/run starts it)")

    def make(release: bool = False) -> Engine:
        if request.param == "postgresql":
            name, url = create_pg_database()
            if release:
                with psycopg.connect(url.replace("+psycopg", ""), autocommit=True) as conn:
                    conn.execute(_dump("postgresql"))  # type: ignore[call-overload]  # a script, no parameters
            drop: Callable[[], None] = lambda: drop_pg_database(name)  # noqa: E731
        else:
            folder = tempfile.mkdtemp(prefix="gstack-migrations-")
            path = os.path.join(folder, "gstack.sqlite3")
            if release:
                with sqlite3.connect(path) as conn:
                    conn.executescript(_dump("sqlite"))
            url, drop = "sqlite:///" + path, lambda: shutil.rmtree(folder, ignore_errors=True)
        engine = make_engine(url)
        made.append((engine, drop))
        return engine

    yield make
    for engine, drop in made:
        engine.dispose()
        drop()


def schema(engine: Engine) -> dict[str, list[tuple]]:
    """Everything the database says about its schema: tables and columns with their types,
    indexes, constraints, triggers and trigger functions, as the catalog states them."""
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            # A table's clauses as a set: create_all and Alembic order its constraints differently,
            # and SQLite's own indexes of UNIQUE clauses (sqlite_autoindex_*, no SQL) are numbered
            # in that order; the UNIQUE clauses say the same.
            return {"sqlite_master": sorted(
                (kind, name, table, tuple(sorted(line.strip().rstrip(",") for line in sql.splitlines())))
                for kind, name, table, sql in conn.exec_driver_sql("SELECT type, name, tbl_name, sql FROM sqlite_master")
                if sql is not None)}
        return {
            "columns": _rows(conn, "SELECT table_name, column_name, data_type, character_maximum_length, is_nullable, "
                                   "column_default, collation_name FROM information_schema.columns "
                                   "WHERE table_schema = 'public'"),
            "indexes": _rows(conn, "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'"),
            "constraints": _rows(conn, "SELECT c.conrelid::regclass::text, c.conname, pg_get_constraintdef(c.oid) "
                                       "FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace "
                                       "WHERE n.nspname = 'public'"),
            "triggers": _rows(conn, "SELECT tgname, pg_get_triggerdef(oid) FROM pg_trigger WHERE NOT tgisinternal"),
            "functions": _rows(conn, "SELECT p.proname, p.prosrc FROM pg_proc p JOIN pg_namespace n "
                                     "ON n.oid = p.pronamespace WHERE n.nspname = 'public'"),
        }


def _rows(conn: Connection, sql: str) -> list[tuple]:
    return sorted(tuple(row) for row in conn.exec_driver_sql(sql))


def without_version(snapshot: dict[str, list[tuple]]) -> dict[str, list[tuple]]:
    return {kind: [row for row in rows if not any("alembic_version" in str(v) for v in row)]
            for kind, rows in snapshot.items()}


def columns(engine: Engine, tables: tuple[str, ...]) -> dict[str, str]:
    """Each table's columns, as a select list: what a later revision adds is left out of :func:`contents`."""
    with engine.connect() as conn:
        return {t: ", ".join(f'"{c[0]}"' for c in conn.exec_driver_sql(f'SELECT * FROM "{t}" WHERE 1 = 0').cursor.description)
                for t in tables}


def contents(engine: Engine, tables: dict[str, str]) -> dict[str, list[str]]:
    with engine.connect() as conn:
        return {t: sorted(repr(tuple(row)) for row in conn.exec_driver_sql(f'SELECT {cols} FROM "{t}"'))
                for t, cols in tables.items()}


def _of_dialect(dialect: str):
    """Autogenerate's ``include_object``: leave out what the models make on another dialect only
    (an index with ``ddl_if(dialect=...)``), which autogenerate would report as missing."""
    def include(obj, _name, _type, _reflected, _compare_to) -> bool:
        made_on = getattr(getattr(obj, "_ddl_if", None), "dialect", None)
        return made_on is None or made_on == dialect
    return include


def test_the_release_database_upgrades_to_the_fresh_schema_losing_nothing(databases):
    """Also: the baseline run on an empty database is the release's schema, and the revisions run
    one by one end where create_schema (a fresh data directory, stamped) does."""
    release, stepped, fresh = databases(True), databases(), databases()
    migrations.upgrade(stepped, migrations.BASELINE)
    assert without_version(schema(stepped)) == schema(release)
    with release.begin() as conn:  # an index a build before the release made; 0002 retires it
        conn.exec_driver_sql("CREATE INDEX ix_resource_list ON resources (project, collection, scope, name)")
    with release.begin() as conn:  # an instance's ephemeral external address: 0013 counts it
        uid = conn.exec_driver_sql("SELECT uid FROM resources WHERE collection = 'instances' ORDER BY name").first()[0]
        conn.exec_driver_sql("INSERT INTO ip_allocations (pool, address, owner_uid) "
                             f"VALUES ('external:us-central1', 3323199300, {uid})")
        # a router's files of a removed instance (emptied: 0014 removes them) and of a live one
        for path, content in (("/etc/gstack/dhcp-hosts/17", ""), ("/etc/gstack/nft.d/17.nft", ""),
                              ("/etc/gstack/dhcp-hosts/18", "aa:bb,10.128.0.9\n"), ("/etc/gstack/empty.conf", "")):
            conn.exec_driver_sql("INSERT INTO sim_vm_files (vm_uid, host_id, path, content, checksum, writes, written) "
                                 f"VALUES (1, 1, '{path}', '{content}', 'c', 1, 0)")
    tables = columns(release, migrations.scripts().get_revision(migrations.BASELINE).module.TABLES)
    before = contents(release, tables)
    assert len(before["resources"]) > 20 and before["resource_usage"]
    with pytest.raises(migrations.SchemaNotCurrent, match="run `gstack db upgrade`"):
        migrations.prepare(release)  # start-up writes nothing to it
    assert migrations.current(release) is None

    assert migrations.upgrade(release) is None
    assert migrations.current(release) == migrations.head()
    migrations.prepare(release)
    after = contents(release, tables)
    after["resource_usage"] = [row for row in after["resource_usage"] if "'ipAllocations'" not in row]  # 0013's, below
    gone = [row for row in before["sim_vm_files"] if "'/etc/gstack/dhcp-hosts/17'" in row or "'/etc/gstack/nft.d/17.nft'" in row]  # 0014's
    assert len(gone) == 2 and sorted(after["sim_vm_files"] + gone) == before["sim_vm_files"]
    after["sim_vm_files"] = before["sim_vm_files"]
    assert after == before
    migrations.upgrade(stepped)
    migrations.prepare(fresh)
    assert migrations.current(fresh) == migrations.current(stepped) == migrations.head()
    assert schema(release) == schema(fresh) == schema(stepped)
    with stepped.connect() as conn:  # and the models say no more: what autogenerate would add
        context = MigrationContext.configure(conn, opts={"include_object": _of_dialect(conn.dialect.name)})
        assert compare_metadata(context, Base.metadata) == []
    with release.connect() as conn:  # 0002 derived the terms of the rows the release wrote
        terms = _rows(conn, "SELECT r.name, t.value FROM resource_terms t JOIN resources r ON r.pk = t.resource_pk "
                            "WHERE t.field = 'labels.env'")
        words = _rows(conn, "SELECT DISTINCT r.name, t.value FROM resource_terms t JOIN resources r ON r.pk = t.resource_pk "
                            "WHERE t.field = 'nameword' AND r.name IN ('vm-1', 'data-1')")
    assert terms == [("data-1", "prod"), ("vm-1", "prod")]
    assert words == [("data-1", "1"), ("data-1", "data"), ("vm-1", "1"), ("vm-1", "vm")]  # and 0005 the words
    with release.connect() as conn:  # 0007 gave every row a revision, each its own
        revisions = _rows(conn, "SELECT r.pk, v.rev FROM resources r LEFT JOIN resource_revisions v ON v.resource_pk = r.pk")
    assert len(revisions) == len(before["resources"]) and None not in {rev for _, rev in revisions}
    assert len({rev for _, rev in revisions}) == len(revisions)
    with release.connect() as conn:  # 0013 gave the instance's address its project, and counted it
        held = _rows(conn, "SELECT pool, project FROM ip_allocations WHERE substr(pool, 1, 9) = 'external:'")
        counted = _rows(conn, "SELECT project, region, count FROM resource_usage WHERE collection = 'ipAllocations'")
    assert held == [("external:global", None), ("external:us-central1", PROJECT)]
    assert counted == [(PROJECT, "us-central1", 1)]
    assert migrations.upgrade(release) == migrations.head()  # a second upgrade does nothing


def test_a_database_at_0015_gets_the_operations_name_order_index_back(databases):
    """0015 dropped the index of the Operations' default (name) order, so that each page sorted the
    zone's whole history; 0016 makes it again."""
    engine = databases()
    migrations.upgrade(engine, "0015")
    assert "ix_operation_scope" not in {ix["name"] for ix in inspect(engine).get_indexes("operations")}
    migrations.upgrade(engine)
    index = {ix["name"]: ix["column_names"] for ix in inspect(engine).get_indexes("operations")}
    assert index["ix_operation_scope"] == ["project", "scope", "name"]


def _family_terms(engine: Engine) -> list[tuple]:
    with engine.connect() as conn:
        return _rows(conn, "SELECT r.name, t.value FROM resource_terms t JOIN resources r ON r.pk = t.resource_pk "
                           "WHERE t.field = 'family'")


def _add(engine: Engine, pk: int, collection: str, name: str, body: str) -> None:
    with engine.begin() as conn:
        conn.execute(insert(Resource).values(pk=pk, uid=pk, project=PROJECT, collection=collection, scope="global",
                                             name=name, status="READY", created=float(pk), body=body))


def test_a_database_at_0016_gets_the_family_terms_of_its_images(databases):
    """0017 makes an image's family a filter term: the rows a database holds get theirs in the
    upgrade (only a top-level string family is a term), and the triggers keep them from then on."""
    engine = databases()
    migrations.upgrade(engine, "0016")
    _add(engine, 1, "images", "img-1", '{"name": "img-1", "family": "fam-a", "status": "READY"}')
    _add(engine, 2, "images", "img-2", '{"name": "img-2", "family": 7}')
    _add(engine, 3, "networks", "net-1", '{"name": "net-1", "labels": {"family": "x"}}')  # a label, not a family
    assert _family_terms(engine) == []  # 0016's triggers keep no family
    migrations.upgrade(engine)
    assert _family_terms(engine) == [("img-1", "fam-a")]
    _add(engine, 4, "images", "img-3", '{"name": "img-3", "family": "fam-b"}')
    with engine.begin() as conn:  # a family changed (images.patch) moves its term
        conn.execute(update(Resource).where(Resource.pk == 1).values(body='{"name": "img-1", "family": "fam-c"}'))
    assert _family_terms(engine) == [("img-1", "fam-c"), ("img-3", "fam-b")]


SCHEDULED = "sourceSnapshotSchedulePolicyId"


def _policy_terms(engine: Engine, field: str = "resourcePolicies") -> list[tuple]:
    with engine.connect() as conn:
        return _rows(conn, "SELECT r.name, t.value FROM resource_terms t JOIN resources r ON r.pk = t.resource_pk "
                           f"WHERE t.field = '{field}'")


def test_a_database_at_0017_gets_the_policy_terms_of_its_disks_instances_and_snapshots(databases):
    """0018 makes each policy a disk or instance follows a term (each string of a top-level list),
    and a scheduled snapshot's policy id: the rows a database holds get theirs in the upgrade, and
    the triggers keep them after."""
    engine = databases()
    migrations.upgrade(engine, "0017")
    _add(engine, 1, "disks", "disk-1", '{"name": "disk-1", "resourcePolicies": ["pol/daily", "pol/weekly"]}')
    _add(engine, 2, "instances", "vm-1", '{"name": "vm-1", "resourcePolicies": [3]}')
    _add(engine, 3, "instances", "vm-2", '{"name": "vm-2", "metadata": {"resourcePolicies": ["pol/x"]}}')
    _add(engine, 5, "snapshots", "snap-1", '{"name": "snap-1", "sourceSnapshotSchedulePolicyId": "77"}')
    _add(engine, 6, "snapshots", "snap-2", '{"name": "snap-2", "sourceSnapshotSchedulePolicyId": 77}')
    assert _policy_terms(engine) == [] and _policy_terms(engine, SCHEDULED) == []  # 0017's triggers keep none
    migrations.upgrade(engine)
    assert _policy_terms(engine) == [("disk-1", "pol/daily"), ("disk-1", "pol/weekly")]
    assert _policy_terms(engine, SCHEDULED) == [("snap-1", "77")]
    _add(engine, 7, "snapshots", "snap-3", '{"name": "snap-3", "sourceSnapshotSchedulePolicyId": "78"}')
    assert _policy_terms(engine, SCHEDULED) == [("snap-1", "77"), ("snap-3", "78")]
    _add(engine, 4, "instances", "vm-3", '{"name": "vm-3", "resourcePolicies": ["pol/stop"]}')
    with engine.begin() as conn:  # a policy removed (disks.removeResourcePolicies) takes its term along
        conn.execute(update(Resource).where(Resource.pk == 1).values(body='{"name": "disk-1", "resourcePolicies": ["pol/weekly"]}'))
    assert _policy_terms(engine) == [("disk-1", "pol/weekly"), ("vm-3", "pol/stop")]


def test_a_schema_made_before_migrations_but_not_the_release_is_refused(databases):
    engine = databases(True)
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE sim_cpu_loads")
        conn.exec_driver_sql("DROP INDEX ix_resource_pool_usage")
        conn.exec_driver_sql("ALTER TABLE hosts DROP COLUMN last_error")  # as builds before host management
    with pytest.raises(migrations.SchemaNotCurrent,
                       match=r"missing: column hosts.last_error, index ix_resource_pool_usage, table sim_cpu_loads\)"):
        migrations.upgrade(engine)
    assert migrations.current(engine) is None


def test_serve_refuses_the_release_database_until_gstack_db_upgrade():
    data_dir = tempfile.mkdtemp(prefix="gstack-migrations-")
    url = "sqlite:///" + os.path.join(data_dir, "gstack.sqlite3")
    with sqlite3.connect(os.path.join(data_dir, "gstack.sqlite3")) as conn:
        conn.executescript(_dump("sqlite"))
    server = Server("sqlite", data_dir, url)
    try:
        refused = subprocess.run([sys.executable, "-m", "gstack.cli", "serve", "--port", str(free_port()),
                                  "--data-dir", data_dir], env=server.env(), capture_output=True, text=True,
                                 timeout=60)
        assert refused.returncode == 1
        assert "run `gstack db upgrade`" in refused.stderr
        upgraded = subprocess.run([sys.executable, "-m", "gstack.cli", "db", "upgrade", "--data-dir", data_dir],
                                  env=server.env(), capture_output=True, text=True, timeout=60)
        assert upgraded.returncode == 0, upgraded.stderr
        assert f"database at revision {migrations.head()} (was none)" in upgraded.stdout
        gce = server.start().gce()
        listed = gce.instances().list(project=PROJECT, zone=ZONE, filter="labels.env = prod").execute()
        assert [i["name"] for i in listed["items"]] == ["vm-1"]
        assert gce.instances().get(project=PROJECT, zone=ZONE, instance="vm-2").execute()["status"] == "TERMINATED"
    finally:
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


def test_a_database_of_a_build_between_the_release_and_migrations_is_upgraded(databases):
    """Made by create_schema without a revision (the builds after the release, before migrations):
    stamped at the baseline, and 0002 makes only what it finds missing, changing nothing."""
    engine = databases()
    create_schema(engine)
    before = schema(engine)
    assert migrations.upgrade(engine) is None
    assert migrations.current(engine) == migrations.head()
    assert without_version(schema(engine)) == before
    with engine.begin() as conn:  # as a newer build leaves it
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = '9999'")
    with pytest.raises(migrations.SchemaNotCurrent, match="revision 9999, which this gstack does not know"):
        migrations.prepare(engine)
