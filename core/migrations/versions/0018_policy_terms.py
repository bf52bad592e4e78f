"""Policy terms: the policies a disk or instance follows (``resourcePolicies``) and a scheduled
snapshot's policy (``sourceSnapshotSchedulePolicyId``) are terms now (:mod:`core.terms`).

Every minute the scheduler found each snapshot or instance schedule's followers, and a placement
policy with ``vmCount`` counted its instances at each insert, by a substring test of every disk or
instance body of the policy's project: 0.18 s a round per policy at 100,000 instances. They now
read the policy's terms (:func:`core.services.resource_policies.policies.followers`). A snapshot
schedule's retention tested every snapshot body of the project each minute; it now reads the
policy's snapshots by theirs (:func:`core.services.resource_policies.scheduler.policy_snapshots`).

This revision replaces the triggers that derive the terms (SQLite: the insert, update and status
triggers; PostgreSQL: the trigger function, the trigger itself is unchanged) and derives both
fields' terms of the rows the database holds already, in the upgrade's transaction (only bodies
that hold the key are parsed).

Frozen here (the triggers as :mod:`core.terms` makes them when this revision was written), never
imported from live code. Each step tolerates finding its object made already (a database made by
``create_schema`` of a development build): the triggers are dropped and made again, the terms
inserted only if missing.

Revision ID: 0018
Revises: 0017
"""

from __future__ import annotations

from alembic import op

revision = '0018'
down_revision: str | None = '0017'
branch_labels = None
depends_on = None

SQLITE_TERMS = [
    "DROP TRIGGER IF EXISTS resource_terms_insert",
    "DROP TRIGGER IF EXISTS resource_terms_update",
    "DROP TRIGGER IF EXISTS resource_terms_status",
    """CREATE TRIGGER resource_terms_insert AFTER INSERT ON resources BEGIN INSERT OR IGNORE INTO resource_terms (resource_pk, project, collection, scope, name, field, value) SELECT NEW.pk, NEW.project, NEW.collection, NEW.scope, NEW.name, key, value FROM json_each(NEW.body) WHERE key IN ('name', 'status', 'zone', 'region', 'family', 'sourceSnapshotSchedulePolicyId') AND type = 'text' UNION ALL SELECT NEW.pk, NEW.project, NEW.collection, NEW.scope, NEW.name, 'labels.' || key, value FROM json_each(NEW.body, '$.labels') WHERE type = 'text' UNION ALL SELECT NEW.pk, NEW.project, NEW.collection, NEW.scope, NEW.name, 'networkInterfaces.networkIP', json_extract(value, '$.networkIP') FROM json_each(NEW.body, '$.networkInterfaces') WHERE json_type(value, '$.networkIP') = 'text' UNION ALL SELECT NEW.pk, NEW.project, NEW.collection, NEW.scope, NEW.name, 'resourcePolicies', value FROM json_each(CASE WHEN instr(NEW.body, '"resourcePolicies"') THEN NEW.body ELSE '{}' END, '$.resourcePolicies') WHERE type = 'text' UNION ALL SELECT NEW.pk, NEW.project, NEW.collection, NEW.scope, NEW.name, 'nameword', value FROM json_each(CASE WHEN NEW.name GLOB '*[^A-Za-z0-9_-]*' THEN '["-"]' ELSE '["' || replace(NEW.name, '-', '","') || '"]' END) WHERE value <> ''; END""",
    """CREATE TRIGGER resource_terms_update AFTER UPDATE ON resources WHEN (OLD.body IS NOT NEW.body OR OLD.name IS NOT NEW.name OR OLD.scope IS NOT NEW.scope) AND NOT (OLD.project IS NEW.project AND OLD.collection IS NEW.collection AND OLD.scope IS NEW.scope AND OLD.name IS NEW.name AND json_extract(OLD.body, '$.name', '$.zone', '$.region', '$.family', '$.sourceSnapshotSchedulePolicyId', '$.labels', '$.networkInterfaces', '$.resourcePolicies') IS json_extract(NEW.body, '$.name', '$.zone', '$.region', '$.family', '$.sourceSnapshotSchedulePolicyId', '$.labels', '$.networkInterfaces', '$.resourcePolicies')) BEGIN DELETE FROM resource_terms WHERE resource_pk = OLD.pk; INSERT OR IGNORE INTO resource_terms (resource_pk, project, collection, scope, name, field, value) SELECT NEW.pk, NEW.project, NEW.collection, NEW.scope, NEW.name, key, value FROM json_each(NEW.body) WHERE key IN ('name', 'status', 'zone', 'region', 'family', 'sourceSnapshotSchedulePolicyId') AND type = 'text' UNION ALL SELECT NEW.pk, NEW.project, NEW.collection, NEW.scope, NEW.name, 'labels.' || key, value FROM json_each(NEW.body, '$.labels') WHERE type = 'text' UNION ALL SELECT NEW.pk, NEW.project, NEW.collection, NEW.scope, NEW.name, 'networkInterfaces.networkIP', json_extract(value, '$.networkIP') FROM json_each(NEW.body, '$.networkInterfaces') WHERE json_type(value, '$.networkIP') = 'text' UNION ALL SELECT NEW.pk, NEW.project, NEW.collection, NEW.scope, NEW.name, 'resourcePolicies', value FROM json_each(CASE WHEN instr(NEW.body, '"resourcePolicies"') THEN NEW.body ELSE '{}' END, '$.resourcePolicies') WHERE type = 'text' UNION ALL SELECT NEW.pk, NEW.project, NEW.collection, NEW.scope, NEW.name, 'nameword', value FROM json_each(CASE WHEN NEW.name GLOB '*[^A-Za-z0-9_-]*' THEN '["-"]' ELSE '["' || replace(NEW.name, '-', '","') || '"]' END) WHERE value <> ''; END""",
    """CREATE TRIGGER resource_terms_status AFTER UPDATE ON resources WHEN OLD.body IS NOT NEW.body AND OLD.project IS NEW.project AND OLD.collection IS NEW.collection AND OLD.scope IS NEW.scope AND OLD.name IS NEW.name AND json_extract(OLD.body, '$.name', '$.zone', '$.region', '$.family', '$.sourceSnapshotSchedulePolicyId', '$.labels', '$.networkInterfaces', '$.resourcePolicies') IS json_extract(NEW.body, '$.name', '$.zone', '$.region', '$.family', '$.sourceSnapshotSchedulePolicyId', '$.labels', '$.networkInterfaces', '$.resourcePolicies') BEGIN DELETE FROM resource_terms WHERE resource_pk = OLD.pk AND field = 'status'; INSERT OR IGNORE INTO resource_terms (resource_pk, project, collection, scope, name, field, value) SELECT NEW.pk, NEW.project, NEW.collection, NEW.scope, NEW.name, key, value FROM json_each(NEW.body) WHERE key = 'status' AND type = 'text'; END""",
    """INSERT OR IGNORE INTO resource_terms (resource_pk, project, collection, scope, name, field, value) SELECT r.pk, r.project, r.collection, r.scope, r.name, 'resourcePolicies', p.value FROM resources r, json_each(CASE WHEN instr(r.body, '"resourcePolicies"') THEN r.body ELSE '{}' END, '$.resourcePolicies') p WHERE p.type = 'text'""",
    """INSERT OR IGNORE INTO resource_terms (resource_pk, project, collection, scope, name, field, value) SELECT r.pk, r.project, r.collection, r.scope, r.name, 'sourceSnapshotSchedulePolicyId', json_extract(r.body, '$.sourceSnapshotSchedulePolicyId') FROM resources r WHERE instr(r.body, '"sourceSnapshotSchedulePolicyId"') > 0 AND json_type(r.body, '$.sourceSnapshotSchedulePolicyId') = 'text'""",
]
POSTGRESQL_TERMS = [
    """CREATE OR REPLACE FUNCTION gstack_resource_terms() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE b jsonb; o jsonb;
BEGIN
  IF TG_OP = 'UPDATE' AND NOT (OLD.body IS DISTINCT FROM NEW.body OR OLD.name IS DISTINCT FROM NEW.name OR OLD.scope IS DISTINCT FROM NEW.scope) THEN
    RETURN NULL;
  END IF;
  IF TG_OP IN ('UPDATE', 'INSERT') THEN b := NEW.body::jsonb; END IF;
  IF TG_OP = 'UPDATE' AND OLD.project = NEW.project AND OLD.collection = NEW.collection AND OLD.scope = NEW.scope
     AND OLD.name = NEW.name THEN
    o := OLD.body::jsonb;
    IF o->'name' IS NOT DISTINCT FROM b->'name' AND o->'zone' IS NOT DISTINCT FROM b->'zone' AND o->'region' IS NOT DISTINCT FROM b->'region' AND o->'family' IS NOT DISTINCT FROM b->'family' AND o->'sourceSnapshotSchedulePolicyId' IS NOT DISTINCT FROM b->'sourceSnapshotSchedulePolicyId' AND o->'labels' IS NOT DISTINCT FROM b->'labels' AND o->'networkInterfaces' IS NOT DISTINCT FROM b->'networkInterfaces' AND o->'resourcePolicies' IS NOT DISTINCT FROM b->'resourcePolicies' THEN  -- only the status term can differ
      IF o->'status' IS DISTINCT FROM b->'status' THEN
        DELETE FROM resource_terms WHERE resource_pk = OLD.pk AND field = 'status';
        INSERT INTO resource_terms (resource_pk, project, collection, scope, name, field, value) SELECT NEW.pk, NEW.project, NEW.collection, NEW.scope, NEW.name,
          'status', b->>'status' WHERE jsonb_typeof(b->'status') = 'string';
      END IF;
      RETURN NULL;
    END IF;
  END IF;
  IF TG_OP IN ('UPDATE', 'DELETE') THEN DELETE FROM resource_terms WHERE resource_pk = OLD.pk; END IF;
  IF TG_OP IN ('UPDATE', 'INSERT') THEN
    INSERT INTO resource_terms (resource_pk, project, collection, scope, name, field, value) SELECT NEW.pk, NEW.project, NEW.collection, NEW.scope, NEW.name, f, v FROM (SELECT 'name' AS f, b->'name' #>> '{}' AS v WHERE jsonb_typeof(b->'name') = 'string' UNION ALL SELECT 'status' AS f, b->'status' #>> '{}' AS v WHERE jsonb_typeof(b->'status') = 'string' UNION ALL SELECT 'zone' AS f, b->'zone' #>> '{}' AS v WHERE jsonb_typeof(b->'zone') = 'string' UNION ALL SELECT 'region' AS f, b->'region' #>> '{}' AS v WHERE jsonb_typeof(b->'region') = 'string' UNION ALL SELECT 'family' AS f, b->'family' #>> '{}' AS v WHERE jsonb_typeof(b->'family') = 'string' UNION ALL SELECT 'sourceSnapshotSchedulePolicyId' AS f, b->'sourceSnapshotSchedulePolicyId' #>> '{}' AS v WHERE jsonb_typeof(b->'sourceSnapshotSchedulePolicyId') = 'string' UNION ALL SELECT 'labels.' || l.key, l.value #>> '{}' FROM jsonb_each(CASE WHEN jsonb_typeof(b->'labels') = 'object' THEN b->'labels' ELSE '{}' END) l WHERE jsonb_typeof(l.value) = 'string' UNION ALL SELECT 'networkInterfaces.networkIP', n->'networkIP' #>> '{}' FROM jsonb_array_elements(CASE WHEN jsonb_typeof(b->'networkInterfaces') = 'array' THEN b->'networkInterfaces' ELSE '[]' END) n WHERE jsonb_typeof(n->'networkIP') = 'string' UNION ALL SELECT 'resourcePolicies', p #>> '{}' FROM jsonb_array_elements(CASE WHEN jsonb_typeof(b->'resourcePolicies') = 'array' THEN b->'resourcePolicies' ELSE '[]' END) p WHERE jsonb_typeof(p) = 'string' UNION ALL SELECT 'nameword', w FROM unnest(CASE WHEN NEW.name ~ '^[A-Za-z0-9_-]*$' THEN string_to_array(NEW.name, '-') ELSE ARRAY['-'] END) w WHERE w <> '') t ON CONFLICT DO NOTHING;
  END IF;
  RETURN NULL;
END $$""",
    """INSERT INTO resource_terms (resource_pk, project, collection, scope, name, field, value) SELECT r.pk, r.project, r.collection, r.scope, r.name, 'resourcePolicies', p #>> '{}' FROM resources r, jsonb_array_elements(CASE WHEN strpos(r.body, '"resourcePolicies"') > 0 AND jsonb_typeof(r.body::jsonb->'resourcePolicies') = 'array' THEN r.body::jsonb->'resourcePolicies' ELSE '[]' END) p WHERE jsonb_typeof(p) = 'string' ON CONFLICT DO NOTHING""",
    """INSERT INTO resource_terms (resource_pk, project, collection, scope, name, field, value) SELECT r.pk, r.project, r.collection, r.scope, r.name, 'sourceSnapshotSchedulePolicyId', r.body::jsonb->>'sourceSnapshotSchedulePolicyId' FROM resources r WHERE strpos(r.body, '"sourceSnapshotSchedulePolicyId"') > 0 AND jsonb_typeof(r.body::jsonb->'sourceSnapshotSchedulePolicyId') = 'string' ON CONFLICT DO NOTHING""",
]


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for statement in POSTGRESQL_TERMS if postgres else SQLITE_TERMS:
        op.get_bind().exec_driver_sql(statement)


def downgrade() -> None:
    raise NotImplementedError("gstack does not downgrade: restore the backup taken before the upgrade")
