r"""The filter terms of resources (``resource_terms``), kept by database triggers on ``resources``.

A list filter such as ``labels.env = prod`` or ``networkInterfaces.networkIP = 10.0.0.7`` tests the
stored JSON body; without help the database could only hand every row of the collection to Python.
So each resource's string values in the fields below are also rows of ``resource_terms``
(resource, field, value, with its scope and name), indexed for a list's page order: a filtered list
walks the rows of one value instead of the collection (:mod:`core.resources.narrowing`).

The triggers derive the rows from the body in the transaction that writes it, whatever code path
writes it, so they can never disagree with the body a filter finally tests (both databases' move the
status term alone when nothing else with terms changed, most UPDATEs; tests/core/test_terms_updates.py
checks an updated row's terms against a new row's):

* ``name``, ``status``, ``zone``, ``region``, ``family``: the top-level string (an image's
  family: ``images.getFromFamily`` and an instance's boot disk of a family read the family's
  images, not every image of the project, :mod:`core.services.images`);
* ``labels.KEY``: each label whose value is a string;
* ``networkInterfaces.networkIP``: each interface's string IP;
* ``sourceSnapshotSchedulePolicyId``: a scheduled snapshot's policy, whose retention reads the
  policy's snapshots by it, not every snapshot of the project (no filter narrows by it; it comes
  with the top-level fields' parse, at no cost to any other row);
* ``resourcePolicies``: each policy a disk or instance follows (its canonical link): the scheduler's
  round and a placement policy's room read a policy's followers by it, not by a substring test of
  every disk or instance of the project (:func:`core.services.resource_policies.policies.followers`).
  Only a body holding the key is parsed for it (an ``instr`` first): most hold none;
* ``nameword``: each maximal ``\w`` run of the row's name (``web``, ``1`` of ``web-1``), for the
  word regex gcloud sends for ``--filter=name:WORD`` (``name eq ".*\bWORD\b.*"``): the runs of
  a name that matches it hold WORD's runs (:mod:`gstack.gce.narrowing`). The runs are cut at
  dashes, which is exact for names of ``[A-Za-z0-9_-]`` (every GCE name); any other name gets
  the one term :data:`IRREGULAR` instead, and a word narrowing walks it too. Two to three index
  rows per instance (``inst-000500``: ``inst``, ``000500``), from the name column, which
  :func:`core.resources.store.new_resource` writes equal to the body's name: no JSON parse.
"""

from __future__ import annotations

from sqlalchemy import Connection, Engine

from core import triggers

# Every field with terms; a narrowing on any other field is not possible.
TOP_LEVEL = ("name", "status", "zone", "region", "family")
# A scheduled snapshot's policy (its id): terms no filter narrows by, for the policy's retention.
SNAPSHOT_POLICY_ID = "sourceSnapshotSchedulePolicyId"
_TOP_LEVEL_TERMS = (*TOP_LEVEL, SNAPSHOT_POLICY_ID)
NETWORK_IP = "networkInterfaces.networkIP"
RESOURCE_POLICIES = "resourcePolicies"
LABEL_PREFIX = "labels."
NAME_WORD = "nameword"
# The nameword term of a name whose \w runs are not its dash-separated parts: never a \w run itself.
IRREGULAR = "-"

_COLUMNS = "resource_pk, project, collection, scope, name, field, value"

# SQLite: the body is parsed by the JSON1 functions; only JSON strings become terms. ``{r}`` is the
# row (NEW in a trigger), ``{rows_join}`` the table it comes from joined to the JSON walk.
_SQLITE_PARTS = [
    # One parse for the top-level fields: a json_extract apiece parsed the body once per field.
    "SELECT key, value {rows_join} json_each({r}.body) WHERE key IN ("
    + ", ".join(f"'{f}'" for f in _TOP_LEVEL_TERMS) + ") AND type = 'text'",
    "SELECT 'labels.' || key, value {rows_join} json_each({r}.body, '$.labels') WHERE type = 'text'",
    f"SELECT '{NETWORK_IP}', json_extract(value, '$.networkIP') {{rows_join}} json_each({{r}}.body, "
    "'$.networkInterfaces') WHERE json_type(value, '$.networkIP') = 'text'",
    # One more parse of the body, so only of a body that holds the key.
    f"SELECT '{RESOURCE_POLICIES}', value {{rows_join}} json_each(CASE WHEN instr({{r}}.body, '\"{RESOURCE_POLICIES}\"') "
    f"THEN {{r}}.body ELSE '{{{{}}}}' END, '$.{RESOURCE_POLICIES}') WHERE type = 'text'",
    # A name of [A-Za-z0-9_-] only (no quote nor backslash) is a JSON array once its dashes are
    # '","': its parts, the empty ones (double dashes) dropped.
    f"SELECT '{NAME_WORD}', value {{rows_join}} json_each(CASE WHEN {{r}}.name GLOB '*[^A-Za-z0-9_-]*' "
    f"THEN '[\"{IRREGULAR}\"]' ELSE '[\"' || replace({{r}}.name, '-', '\",\"') || '\"]' END) WHERE value <> ''",
]
_ROW = "SELECT {r}.pk, {r}.project, {r}.collection, {r}.scope, {r}.name, "
_SQLITE_ADD = ("INSERT OR IGNORE INTO resource_terms (" + _COLUMNS + ") "
               + " UNION ALL ".join(p.replace("SELECT ", _ROW, 1) for p in _SQLITE_PARTS))
_CHANGED = "OLD.body IS NOT NEW.body OR OLD.name IS NOT NEW.name OR OLD.scope IS NOT NEW.scope"
# The fields whose terms an UPDATE that changes the status alone keeps (PostgreSQL's below too).
_KEPT = (*(f for f in _TOP_LEVEL_TERMS if f != "status"), "labels", "networkInterfaces", RESOURCE_POLICIES)
# SQLite's short way, a trigger of its own (resource_terms_status): an UPDATE that keeps the row's
# place and name and none of whose kept fields changed (one json_extract of all of them per body,
# one parse each) moves the status term alone. Deleting and deriving every term again cost ~70 us
# per row, twice per instance and twice per disk an insert makes; this way ~30 us. Equal values
# written in another key order take the long way, which is exact too.
_PATHS = ", ".join(f"'$.{f}'" for f in _KEPT)
_SQLITE_SAME_BUT_STATUS = ("OLD.project IS NEW.project AND OLD.collection IS NEW.collection AND OLD.scope IS NEW.scope "
                           f"AND OLD.name IS NEW.name AND json_extract(OLD.body, {_PATHS}) IS json_extract(NEW.body, {_PATHS})")
_SQLITE = [
    f"CREATE TRIGGER resource_terms_insert AFTER INSERT ON resources BEGIN {_SQLITE_ADD.format(r='NEW', rows_join='FROM')}; END",
    "CREATE TRIGGER resource_terms_delete AFTER DELETE ON resources "
    "BEGIN DELETE FROM resource_terms WHERE resource_pk = OLD.pk; END",
    f"CREATE TRIGGER resource_terms_update AFTER UPDATE ON resources WHEN ({_CHANGED}) AND NOT ({_SQLITE_SAME_BUT_STATUS}) "
    "BEGIN DELETE FROM resource_terms WHERE resource_pk = OLD.pk; "
    f"{_SQLITE_ADD.format(r='NEW', rows_join='FROM')}; END",
    "CREATE TRIGGER resource_terms_status AFTER UPDATE ON resources "
    f"WHEN OLD.body IS NOT NEW.body AND {_SQLITE_SAME_BUT_STATUS} "
    "BEGIN DELETE FROM resource_terms WHERE resource_pk = OLD.pk AND field = 'status'; "
    f"INSERT OR IGNORE INTO resource_terms ({_COLUMNS}) {_ROW.format(r='NEW')}key, value FROM json_each(NEW.body) "
    "WHERE key = 'status' AND type = 'text'; END",
]

# PostgreSQL: the same terms from jsonb (``#>> '{}'`` is a JSON string's text).
_PG_TERMS = (
    "SELECT {r}.pk, {r}.project, {r}.collection, {r}.scope, {r}.name, f, v FROM ("
    + " UNION ALL ".join(
        f"SELECT '{f}' AS f, b->'{f}' #>> '{{{{}}}}' AS v WHERE jsonb_typeof(b->'{f}') = 'string'" for f in _TOP_LEVEL_TERMS)
    + " UNION ALL SELECT 'labels.' || l.key, l.value #>> '{{}}' FROM jsonb_each(CASE WHEN jsonb_typeof(b->'labels') "
    "= 'object' THEN b->'labels' ELSE '{{}}' END) l WHERE jsonb_typeof(l.value) = 'string'"
    " UNION ALL SELECT '" + NETWORK_IP + "', n->'networkIP' #>> '{{}}' FROM jsonb_array_elements(CASE WHEN "
    "jsonb_typeof(b->'networkInterfaces') = 'array' THEN b->'networkInterfaces' ELSE '[]' END) n "
    "WHERE jsonb_typeof(n->'networkIP') = 'string'"
    f" UNION ALL SELECT '{RESOURCE_POLICIES}', p #>> '{{{{}}}}' FROM jsonb_array_elements(CASE WHEN "
    f"jsonb_typeof(b->'{RESOURCE_POLICIES}') = 'array' THEN b->'{RESOURCE_POLICIES}' ELSE '[]' END) p "
    "WHERE jsonb_typeof(p) = 'string'"
    f" UNION ALL SELECT '{NAME_WORD}', w FROM unnest(CASE WHEN {{r}}.name ~ '^[A-Za-z0-9_-]*$' "
    f"THEN string_to_array({{r}}.name, '-') ELSE ARRAY['{IRREGULAR}'] END) w WHERE w <> '') t"
)
_PG_ADD = "INSERT INTO resource_terms (" + _COLUMNS + ") " + _PG_TERMS + " ON CONFLICT DO NOTHING"
# An UPDATE that keeps the row's place and name and changes none of the body's fields with terms
# but its status (a job's STAGING, RUNNING, READY: most UPDATEs) moves the status term alone. The
# whole set was deleted and derived again: about 0.4 ms per row, 3 rows per instances.insert.
_SAME_BUT_STATUS = " AND ".join(f"o->'{f}' IS NOT DISTINCT FROM b->'{f}'" for f in _KEPT)
_POSTGRESQL = [
    f"""CREATE OR REPLACE FUNCTION gstack_resource_terms() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE b jsonb; o jsonb;
BEGIN
  IF TG_OP = 'UPDATE' AND NOT ({_CHANGED.replace(" IS NOT ", " IS DISTINCT FROM ")}) THEN
    RETURN NULL;
  END IF;
  IF TG_OP IN ('UPDATE', 'INSERT') THEN b := NEW.body::jsonb; END IF;
  IF TG_OP = 'UPDATE' AND OLD.project = NEW.project AND OLD.collection = NEW.collection AND OLD.scope = NEW.scope
     AND OLD.name = NEW.name THEN
    o := OLD.body::jsonb;
    IF {_SAME_BUT_STATUS} THEN  -- only the status term can differ
      IF o->'status' IS DISTINCT FROM b->'status' THEN
        DELETE FROM resource_terms WHERE resource_pk = OLD.pk AND field = 'status';
        INSERT INTO resource_terms ({_COLUMNS}) SELECT NEW.pk, NEW.project, NEW.collection, NEW.scope, NEW.name,
          'status', b->>'status' WHERE jsonb_typeof(b->'status') = 'string';
      END IF;
      RETURN NULL;
    END IF;
  END IF;
  IF TG_OP IN ('UPDATE', 'DELETE') THEN DELETE FROM resource_terms WHERE resource_pk = OLD.pk; END IF;
  IF TG_OP IN ('UPDATE', 'INSERT') THEN
    {_PG_ADD.format(r='NEW')};
  END IF;
  RETURN NULL;
END $$""",
    "CREATE TRIGGER resource_terms AFTER INSERT OR UPDATE OR DELETE ON resources "
    "FOR EACH ROW EXECUTE FUNCTION gstack_resource_terms()",
]
# Terms of the rows a database made before the triggers holds already.


def _backfill(postgres: bool) -> list[str]:
    if postgres:
        return ["DELETE FROM resource_terms",
                _PG_ADD.replace("FROM (", "FROM resources r, LATERAL (SELECT r.body::jsonb AS b) j, LATERAL (", 1)
                .format(r="r")]
    return ["DELETE FROM resource_terms", _SQLITE_ADD.format(r="r", rows_join="FROM resources r,")]


def _installed(conn: Connection, postgres: bool) -> bool:
    if postgres:
        return conn.exec_driver_sql("SELECT 1 FROM pg_trigger WHERE tgname = 'resource_terms'").first() is not None
    return conn.exec_driver_sql(
        "SELECT 1 FROM sqlite_master WHERE type = 'trigger' AND name = 'resource_terms_update'").first() is not None


def install(engine: Engine) -> None:
    """Create the triggers where they are missing, and derive the terms of the rows the database
    holds already, in one transaction: no change slips between. (A database made by an older build
    changes through the migrations: 0010 gave PostgreSQL's function its short way, 0011 SQLite's.)"""
    triggers.install_once(engine, "resource_terms", _installed,
                          lambda postgres: (_POSTGRESQL if postgres else _SQLITE) + _backfill(postgres))
