"""Usage counters kept by database triggers on ``resources``: quota usage (``resource_usage``)
and the capacity placed on each host and storage pool (``capacity_usage``, see below); and on
``ip_allocations``: the external addresses in use (IN_USE_ADDRESSES, see the end).

Every instance and disk adds to the row of its (project, region, collection, subtype): one to
``count``, its vCPUs to ``cpus`` unless it is TERMINATED, its size to ``size_gb``. A change of any
of those columns moves its share from the old row to the new one; a delete takes it away. The
triggers run in the transaction that changes the resource, so usage is exact at every commit, and
no code path (a job, an admin command, a crash and restart) can forget to count: what CloudStack's
``resource_count`` table promises with code, the database guarantees here.

A quota check then reads a few rows instead of summing every resource of the project: with the
sum, each insert cost O(resources), and a burst of N inserts O(N²).

On PostgreSQL the function takes a per-project advisory lock before any counter row, so that the
rows are always locked in one order (see ``_LOCK_PREFIX``), and two transactions adding to one
project's usage take turns. A check made before the write reads the usage as it was when its
statement began, so two inserts checked at once could both pass it: an insert checks again once it
holds the lock (:func:`core.quotas.recheck_region`), or, written in one statement, its statement
goes on only while the usage it was checked on has not grown (:func:`usage_unchanged`).
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Boolean, Connection, Engine, String, bindparam, cast, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.sql.elements import ColumnElement

from core import triggers

_COUNTED = "('instances', 'disks')"
# The PostgreSQL function takes an advisory lock per project (class 2, see core.ipam) before it
# changes a counter row. A transaction that changes an instance and a disk touches two counter
# rows, and another one may touch them in the other order (an insert makes the instance first, a
# delete removes the disk first): each waited for the other's row, a deadlock. Under one lock per
# project, taken before any of its counter rows, counter rows are always locked in one order. A
# function of an older build (without the prefix, or the lock of an address going IN_USE below) is
# not the current one (:func:`_installed` compares its source), and :func:`install` replaces it.
_LOCK_PREFIX = "gstack_usage:"
# One resource row's share of its counter row, from the row as the trigger sees it (OLD or NEW).
_SHARE = ("{r}.project, COALESCE({r}.region, ''), {r}.collection, {r}.subtype, {sign}1, "
          "{sign}(CASE WHEN {r}.status <> 'TERMINATED' THEN {r}.vcpus ELSE 0 END), {sign}{r}.size_gb")
_ADD = ("INSERT INTO resource_usage (project, region, collection, subtype, count, cpus, size_gb) "
        "SELECT {share} WHERE {r}.collection IN " + _COUNTED + " "
        "ON CONFLICT (project, region, collection, subtype) DO UPDATE SET "
        "count = resource_usage.count + excluded.count, cpus = resource_usage.cpus + excluded.cpus, "
        "size_gb = resource_usage.size_gb + excluded.size_gb")
# An UPDATE that leaves every counted column (and TERMINATED-or-not) alone changes no share.
_CHANGED = ("OLD.project IS NOT NEW.project OR OLD.region IS NOT NEW.region OR OLD.collection IS NOT NEW.collection "
            "OR OLD.subtype IS NOT NEW.subtype OR OLD.vcpus IS NOT NEW.vcpus OR OLD.size_gb IS NOT NEW.size_gb "
            "OR (OLD.status = 'TERMINATED') IS NOT (NEW.status = 'TERMINATED')")


def _add(row: str, sign: str = "") -> str:
    return _ADD.format(share=_SHARE.format(r=row, sign=sign), r=row)


def _sqlite_triggers(name: str, table: str, changed: str, share: Callable[[str, str], str],
                     held: Callable[[str], str] | None = None) -> list[str]:
    """SQLite's three triggers of a counter on ``table``: a new row adds its ``share(row, sign)``, a
    deleted row takes it away, and an UPDATE that ``changed`` moves it (``held``: the condition
    under which a row holds a share at all, None: always)."""
    when = {row: f"WHEN {held(row)} " if held else "" for row in ("NEW", "OLD")}
    return [f"CREATE TRIGGER {name}_insert AFTER INSERT ON {table} {when['NEW']}BEGIN {share('NEW', '')}; END",
            f"CREATE TRIGGER {name}_delete AFTER DELETE ON {table} {when['OLD']}BEGIN {share('OLD', '-')}; END",
            f"CREATE TRIGGER {name}_update AFTER UPDATE ON {table} WHEN {changed} "
            f"BEGIN {share('OLD', '-')}; {share('NEW', '')}; END"]


def _postgresql_triggers(name: str, table: str, changed: str, share: Callable[[str, str], str],
                         lock: Callable[[str], str]) -> list[str]:
    """PostgreSQL's function ``gstack_NAME`` and its trigger ``NAME`` on ``table``, doing what
    :func:`_sqlite_triggers` does, each row's ``lock(row)`` statements taken first."""
    return [f"""CREATE OR REPLACE FUNCTION gstack_{name}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'UPDATE' AND NOT ({changed.replace(" IS NOT ", " IS DISTINCT FROM ")}) THEN
    RETURN NULL;
  END IF;
  IF TG_OP IN ('UPDATE', 'DELETE') THEN {lock('OLD')} {share('OLD', '-')}; END IF;
  IF TG_OP IN ('UPDATE', 'INSERT') THEN {lock('NEW')} {share('NEW', '')}; END IF;
  RETURN NULL;
END $$""", f"CREATE TRIGGER {name} AFTER INSERT OR UPDATE OR DELETE ON {table} FOR EACH ROW EXECUTE FUNCTION gstack_{name}()"]


_SQLITE = _sqlite_triggers("resource_usage", "resources", _CHANGED, _add)
# A row becoming a static external address IN_USE takes its project's lock too. IN_USE_ADDRESSES
# counts those addresses beside the counters (core.quotas._address_usage: a few rows of the
# project, counted when checked), and their change took no lock: a forwarding rule on a static
# address, which checks again once written, and an instance insert at once each read the usage
# without the other's, and both were made past the limit. Going out of use takes none (a decrease
# passes every check, as in the gate below). Here, in the function every row runs anyway, it cost
# nothing measurable per UPDATE of an instance on PostgreSQL; as a trigger of its own, with a WHEN
# false for the row, 55 us at the median (9 alternating rounds of 2,000 UPDATEs each).
_IN_USE_LOCK = f"""  IF TG_OP <> 'DELETE' AND NEW.status = 'IN_USE' AND NEW.collection = 'addresses' AND NEW.subtype = 'EXTERNAL'
     AND (TG_OP = 'INSERT' OR OLD.status IS DISTINCT FROM 'IN_USE') THEN
    PERFORM pg_advisory_xact_lock(2, hashtext('{_LOCK_PREFIX}' || NEW.project));
  END IF;
"""
_POSTGRESQL = [
    f"""CREATE OR REPLACE FUNCTION gstack_resource_usage() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
{_IN_USE_LOCK}  IF TG_OP = 'UPDATE' AND NOT ({_CHANGED.replace(" IS NOT ", " IS DISTINCT FROM ")}) THEN
    RETURN NULL;
  END IF;
  IF COALESCE(NEW.collection, OLD.collection) IN {_COUNTED} THEN
    PERFORM pg_advisory_xact_lock(2, hashtext('{_LOCK_PREFIX}' || COALESCE(NEW.project, OLD.project)));
  END IF;
  IF TG_OP IN ('UPDATE', 'DELETE') THEN {_add('OLD', '-')}; END IF;
  IF TG_OP IN ('UPDATE', 'INSERT') THEN {_add('NEW')}; END IF;
  RETURN NULL;
END $$""",
    "DROP TRIGGER IF EXISTS resource_usage ON resources",  # made by a build whose function was older
    "CREATE TRIGGER resource_usage AFTER INSERT OR UPDATE OR DELETE ON resources "
    "FOR EACH ROW EXECUTE FUNCTION gstack_resource_usage()",
]
_BACKFILL = [
    f"DELETE FROM resource_usage WHERE collection IN {_COUNTED}",
    "INSERT INTO resource_usage (project, region, collection, subtype, count, cpus, size_gb) "
    "SELECT project, COALESCE(region, ''), collection, subtype, count(*), "
    "COALESCE(sum(CASE WHEN status <> 'TERMINATED' THEN vcpus ELSE 0 END), 0), COALESCE(sum(size_gb), 0) "
    f"FROM resources WHERE collection IN {_COUNTED} GROUP BY project, COALESCE(region, ''), collection, subtype",
]


def _installed(conn: Connection, postgres: bool) -> bool:
    if postgres:
        return conn.execute(text(
            "SELECT 1 FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid WHERE t.tgname = 'resource_usage' "
            "AND p.prosrc = :current"), {"current": _POSTGRESQL[0].split("$$")[1]}).first() is not None
    return conn.exec_driver_sql(
        "SELECT 1 FROM sqlite_master WHERE type = 'trigger' AND name = 'resource_usage_update'").first() is not None


def install(engine: Engine) -> None:
    """Create the triggers where they are missing, and count what the database holds already
    (a database made before the counters), in one transaction: no change slips between."""
    triggers.install_once(engine, "resource_usage", _installed,
                          lambda postgres: (_POSTGRESQL if postgres else _SQLITE) + _BACKFILL)
    triggers.install_once(engine, "ip_allocations", _addresses_installed,
                          lambda postgres: (ADDRESS_POSTGRESQL if postgres else ADDRESS_SQLITE) + ADDRESS_BACKFILL)
    triggers.install_once(engine, "capacity_usage", _capacity_installed,
                          lambda postgres: (CAPACITY_POSTGRESQL if postgres else CAPACITY_SQLITE) + CAPACITY_BACKFILL)
    triggers.install_once(engine, "usage_unchanged", _gate_installed, lambda postgres: [_GATE] if postgres else [])


# -- capacity: what is placed on each host (vCPUs, memory) and storage pool (GB) ------------------
#
# A row's share goes to its host's counter when ``host_id`` is set and to its pool's when ``pool_id``
# is (a VM holds a host, a disk a pool). An UPDATE that moves neither and changes no amount it holds
# (a status or body change: almost every UPDATE) runs nothing. On PostgreSQL the function first takes
# an advisory lock per zone (class 3, the holder's zone): a transaction that changes a host's counter
# and a pool's (a VM and its disk) and another that changes them in the other order would each wait
# for the other's row; under the zone's lock they take turns.
_HOLDERS = (("host", "host_id", "hosts", "COALESCE({r}.vcpus, 0)", "COALESCE({r}.memory_mb, 0)", "0"),
            ("pool", "pool_id", "storage_pools", "0", "0", "COALESCE({r}.size_gb, 0)"))
_CAPACITY_ADD = ("INSERT INTO capacity_usage (holder, holder_id, count, vcpus, memory_mb, size_gb) "
                 "SELECT '{holder}', {r}.{column}, {sign}1, {sign}{vcpus}, {sign}{memory}, {sign}{size} WHERE {r}.{column} IS NOT NULL "
                 "ON CONFLICT (holder, holder_id) DO UPDATE SET count = capacity_usage.count + excluded.count, "
                 "vcpus = capacity_usage.vcpus + excluded.vcpus, memory_mb = capacity_usage.memory_mb + excluded.memory_mb, "
                 "size_gb = capacity_usage.size_gb + excluded.size_gb")
_CAPACITY_CHANGED = ("OLD.host_id IS NOT NEW.host_id OR OLD.pool_id IS NOT NEW.pool_id OR OLD.vcpus IS NOT NEW.vcpus "
                     "OR OLD.memory_mb IS NOT NEW.memory_mb OR OLD.size_gb IS NOT NEW.size_gb")


def _capacity(row: str, sign: str = "") -> str:
    return "; ".join(_CAPACITY_ADD.format(holder=holder, column=column, r=row, sign=sign, vcpus=vcpus.format(r=row),
                                          memory=memory.format(r=row), size=size.format(r=row))
                     for holder, column, _, vcpus, memory, size in _HOLDERS)


def _zone_lock(row: str) -> str:
    return " ".join(f"IF {row}.{column} IS NOT NULL THEN PERFORM pg_advisory_xact_lock(3, "
                    f"(SELECT zone_id FROM {table} WHERE id = {row}.{column})); END IF;"
                    for _, column, table, *_ in _HOLDERS)


CAPACITY_SQLITE = _sqlite_triggers("capacity_usage", "resources", _CAPACITY_CHANGED, _capacity,
                                   lambda r: f"{r}.host_id IS NOT NULL OR {r}.pool_id IS NOT NULL")
CAPACITY_POSTGRESQL = _postgresql_triggers("capacity_usage", "resources", _CAPACITY_CHANGED, _capacity, _zone_lock)
CAPACITY_BACKFILL = [
    "DELETE FROM capacity_usage",
    *(f"INSERT INTO capacity_usage (holder, holder_id, count, vcpus, memory_mb, size_gb) "
      f"SELECT '{holder}', {column}, count(*), sum({vcpus.format(r='resources')}), "
      f"sum({memory.format(r='resources')}), sum({size.format(r='resources')}) "
      f"FROM resources WHERE {column} IS NOT NULL GROUP BY {column}"
      for holder, column, _, vcpus, memory, size in _HOLDERS),
]


def _capacity_installed(conn: Connection, postgres: bool) -> bool:
    if postgres:
        return conn.exec_driver_sql("SELECT 1 FROM pg_trigger WHERE tgname = 'capacity_usage'").first() is not None
    return conn.exec_driver_sql(
        "SELECT 1 FROM sqlite_master WHERE type = 'trigger' AND name = 'capacity_usage_update'").first() is not None


# -- external addresses in use (IN_USE_ADDRESSES) ----------------------------------------------------
#
# An address of ``ip_allocations`` whose ``project`` is set (an ephemeral external address of an
# instance, a forwarding rule or a Cloud NAT: core.ipam.allocate) adds one to that project's counter
# row (ADDRESSES, EXTERNAL) of ``resource_usage`` in the region its pool names (``external:REGION``).
# A quota check counted them by walking every instance, forwarding rule and Cloud Router of the
# project: at 100,000 instances, 120 ms on every regions.get and every insert with an access config
# (gcloud's default). On PostgreSQL the function takes the project's usage lock first, as the
# resources' does: an insert takes its address before its rows, a delete frees it after them.
ADDRESSES = "ipAllocations"  # the counter rows' collection (their subtype: EXTERNAL)
_ADDRESS_ADD = ("INSERT INTO resource_usage (project, region, collection, subtype, count, cpus, size_gb) "
                "SELECT {r}.project, substr({r}.pool, 10), '" + ADDRESSES + "', 'EXTERNAL', {sign}1, 0, 0 "
                "WHERE {r}.project IS NOT NULL AND substr({r}.pool, 1, 9) = 'external:' "
                "ON CONFLICT (project, region, collection, subtype) DO UPDATE SET "
                "count = resource_usage.count + excluded.count")
_ADDRESS_CHANGED = "OLD.project IS NOT NEW.project OR OLD.pool IS NOT NEW.pool"


def _address(row: str, sign: str = "") -> str:
    return _ADDRESS_ADD.format(r=row, sign=sign)


ADDRESS_SQLITE = _sqlite_triggers("address_usage", "ip_allocations", _ADDRESS_CHANGED, _address,
                                  lambda r: f"{r}.project IS NOT NULL")
ADDRESS_POSTGRESQL = _postgresql_triggers(
    "address_usage", "ip_allocations", _ADDRESS_CHANGED, _address,
    lambda r: f"IF {r}.project IS NOT NULL THEN PERFORM pg_advisory_xact_lock(2, hashtext('{_LOCK_PREFIX}' || {r}.project)); END IF;")
ADDRESS_BACKFILL = [
    f"DELETE FROM resource_usage WHERE collection = '{ADDRESSES}'",
    "INSERT INTO resource_usage (project, region, collection, subtype, count, cpus, size_gb) "
    f"SELECT project, substr(pool, 10), '{ADDRESSES}', 'EXTERNAL', count(*), 0, 0 FROM ip_allocations "
    "WHERE project IS NOT NULL AND substr(pool, 1, 9) = 'external:' GROUP BY project, substr(pool, 10)",
]


def _addresses_installed(conn: Connection, postgres: bool) -> bool:
    if postgres:
        return conn.exec_driver_sql("SELECT 1 FROM pg_trigger WHERE tgname = 'address_usage'").first() is not None
    return conn.exec_driver_sql(
        "SELECT 1 FROM sqlite_master WHERE type = 'trigger' AND name = 'address_usage_update'").first() is not None


# -- the gate of a quota checked outside the writing transaction (PostgreSQL) ---------------------
#
# An instances.insert written in one statement (core.services.instances.lifecycle) checked its
# quotas on the counters its first read brought, in a transaction of their own. Its statement goes
# on only while none of those counters has grown since: the function takes the project's usage
# lock (the triggers' own), so no other writer of the project's usage is between its statements,
# then reads the counters again. A VOLATILE function reads with a snapshot of its own, taken after
# the lock: the usage committed by whoever held it is seen, where the statement's snapshot, taken
# before the wait, would not see it. When they grew it fails the statement (USAGE_GREW), and the
# insert runs the usual way, which checks the usage again once written (core.quotas.recheck_region):
# retried as it was, a burst of one project's inserts would keep changing each other's usage.
# ``seen``: the rows of core.quotas._CHECK_USAGE as the read gave them ([region, collection,
# subtype, count, cpus, size_gb] each); ``statics``: the static external addresses by status (NULL:
# not checked), of which those IN_USE count in IN_USE_ADDRESSES. ``made``: what the statement
# wrote before (its predicted addresses), unused but as an argument: they are written before the
# lock is taken. Written under it, an address could wait for an insert that holds the address's
# pool and waits for this lock (the usual insert: the pool's lock, its address, its rows), a deadlock.
USAGE_GREW = "GS001"  # the gate's SQLSTATE (class GS: gstack's own)
_GATE = f"""CREATE OR REPLACE FUNCTION gstack_usage_unchanged(p text, r text, seen jsonb, statics jsonb, made bigint)
RETURNS boolean LANGUAGE plpgsql VOLATILE AS $$
BEGIN
  PERFORM pg_advisory_xact_lock(2, hashtext('{_LOCK_PREFIX}' || p));
  IF EXISTS (SELECT 1 FROM resource_usage u
             LEFT JOIN jsonb_array_elements(COALESCE(seen, '[]')) s(e)
               ON s.e->>0 = u.region AND s.e->>1 = u.collection AND s.e->>2 = u.subtype
             WHERE u.project = p AND (u.region = r OR u.collection = 'instances')
               AND (u.count > COALESCE((s.e->>3)::numeric, 0) OR u.cpus > COALESCE((s.e->>4)::numeric, 0)
                    OR u.size_gb > COALESCE((s.e->>5)::numeric, 0)))
     OR (statics IS NOT NULL AND (SELECT count(*) FROM resources WHERE project = p AND collection = 'addresses'
                                  AND region = r AND subtype = 'EXTERNAL' AND status = 'IN_USE')
                                 > COALESCE((statics->>'IN_USE')::numeric, 0)) THEN
    RAISE EXCEPTION USING ERRCODE = '{USAGE_GREW}',
      MESSAGE = 'the usage of project ' || p || ' grew since its quota was checked';
  END IF;
  RETURN true;
END $$"""


def _gate_installed(conn: Connection, postgres: bool) -> bool:
    return not postgres or conn.exec_driver_sql(
        "SELECT 1 FROM pg_proc WHERE proname = 'gstack_usage_unchanged'").first() is not None


def usage_unchanged(made: ColumnElement[int]) -> ColumnElement[bool]:
    """True while the usage counters of project ``project`` in region ``gate_region`` have not
    grown since the read that gave ``gate_usage`` and ``gate_statics`` (JSON texts), taking the
    project's usage lock until the transaction ends; the error :data:`USAGE_GREW` when they grew
    (PostgreSQL; see ``_GATE``). ``made``: what the statement writes before (evaluated first)."""
    return func.gstack_usage_unchanged(
        bindparam("project", type_=String), bindparam("gate_region", type_=String),
        cast(bindparam("gate_usage", type_=String), JSONB), cast(bindparam("gate_statics", type_=String), JSONB),
        made, type_=Boolean)
