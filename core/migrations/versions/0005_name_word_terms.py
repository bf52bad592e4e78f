"""Name word terms: the dash-separated words of every resource's name, for gcloud's word regex.

gcloud sends ``--filter=name:WORD`` as ``name eq ".*\\bWORD\\b.*"``, which the terms index could only
answer by scanning every name of the collection (a LIKE). The triggers of :mod:`core.terms` now also
keep a ``nameword`` term per dash-separated part of the name (``-`` for a name with characters
outside ``[A-Za-z0-9_-]``), and a word regex walks the rows of one word. This revision replaces the
triggers (SQLite: the three triggers; PostgreSQL: the trigger function, the trigger itself is
unchanged) and derives the word terms of the rows the database holds already, in the upgrade's
transaction.

Each step tolerates finding its object made already (a database made by ``create_schema`` of a
development build): the triggers are dropped and made again, the terms inserted only if missing.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

from alembic import op

revision = '0005'
down_revision: str | None = '0004'
branch_labels = None
depends_on = None

# core/terms.py when this revision was made: the triggers, then the word terms of the existing rows.
SQLITE_TERMS = [
    "DROP TRIGGER IF EXISTS resource_terms_insert",
    "DROP TRIGGER IF EXISTS resource_terms_delete",
    "DROP TRIGGER IF EXISTS resource_terms_update",
    """CREATE TRIGGER resource_terms_insert AFTER INSERT ON resources BEGIN INSERT OR IGNORE INTO resource_terms (resource_pk, project, collection, scope, name, field, value) SELECT NEW.pk, NEW.project, NEW.collection, NEW.scope, NEW.name, key, value FROM json_each(NEW.body) WHERE key IN ('name', 'status', 'zone', 'region') AND type = 'text' UNION ALL SELECT NEW.pk, NEW.project, NEW.collection, NEW.scope, NEW.name, 'labels.' || key, value FROM json_each(NEW.body, '$.labels') WHERE type = 'text' UNION ALL SELECT NEW.pk, NEW.project, NEW.collection, NEW.scope, NEW.name, 'networkInterfaces.networkIP', json_extract(value, '$.networkIP') FROM json_each(NEW.body, '$.networkInterfaces') WHERE json_type(value, '$.networkIP') = 'text' UNION ALL SELECT NEW.pk, NEW.project, NEW.collection, NEW.scope, NEW.name, 'nameword', value FROM json_each(CASE WHEN NEW.name GLOB '*[^A-Za-z0-9_-]*' THEN '["-"]' ELSE '["' || replace(NEW.name, '-', '","') || '"]' END) WHERE value <> ''; END""",
    """CREATE TRIGGER resource_terms_delete AFTER DELETE ON resources BEGIN DELETE FROM resource_terms WHERE resource_pk = OLD.pk; END""",
    """CREATE TRIGGER resource_terms_update AFTER UPDATE ON resources WHEN OLD.body IS NOT NEW.body OR OLD.name IS NOT NEW.name OR OLD.scope IS NOT NEW.scope BEGIN DELETE FROM resource_terms WHERE resource_pk = OLD.pk; INSERT OR IGNORE INTO resource_terms (resource_pk, project, collection, scope, name, field, value) SELECT NEW.pk, NEW.project, NEW.collection, NEW.scope, NEW.name, key, value FROM json_each(NEW.body) WHERE key IN ('name', 'status', 'zone', 'region') AND type = 'text' UNION ALL SELECT NEW.pk, NEW.project, NEW.collection, NEW.scope, NEW.name, 'labels.' || key, value FROM json_each(NEW.body, '$.labels') WHERE type = 'text' UNION ALL SELECT NEW.pk, NEW.project, NEW.collection, NEW.scope, NEW.name, 'networkInterfaces.networkIP', json_extract(value, '$.networkIP') FROM json_each(NEW.body, '$.networkInterfaces') WHERE json_type(value, '$.networkIP') = 'text' UNION ALL SELECT NEW.pk, NEW.project, NEW.collection, NEW.scope, NEW.name, 'nameword', value FROM json_each(CASE WHEN NEW.name GLOB '*[^A-Za-z0-9_-]*' THEN '["-"]' ELSE '["' || replace(NEW.name, '-', '","') || '"]' END) WHERE value <> ''; END""",
    """INSERT OR IGNORE INTO resource_terms (resource_pk, project, collection, scope, name, field, value) SELECT r.pk, r.project, r.collection, r.scope, r.name, 'nameword', value FROM resources r, json_each(CASE WHEN r.name GLOB '*[^A-Za-z0-9_-]*' THEN '["-"]' ELSE '["' || replace(r.name, '-', '","') || '"]' END) WHERE value <> ''""",
]
POSTGRESQL_TERMS = [
    """CREATE OR REPLACE FUNCTION gstack_resource_terms() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE b jsonb;
BEGIN
  IF TG_OP = 'UPDATE' AND NOT (OLD.body IS DISTINCT FROM NEW.body OR OLD.name IS DISTINCT FROM NEW.name OR OLD.scope IS DISTINCT FROM NEW.scope) THEN
    RETURN NULL;
  END IF;
  IF TG_OP IN ('UPDATE', 'DELETE') THEN DELETE FROM resource_terms WHERE resource_pk = OLD.pk; END IF;
  IF TG_OP IN ('UPDATE', 'INSERT') THEN
    b := NEW.body::jsonb;
    INSERT INTO resource_terms (resource_pk, project, collection, scope, name, field, value) SELECT NEW.pk, NEW.project, NEW.collection, NEW.scope, NEW.name, f, v FROM (SELECT 'name' AS f, b->'name' #>> '{}' AS v WHERE jsonb_typeof(b->'name') = 'string' UNION ALL SELECT 'status' AS f, b->'status' #>> '{}' AS v WHERE jsonb_typeof(b->'status') = 'string' UNION ALL SELECT 'zone' AS f, b->'zone' #>> '{}' AS v WHERE jsonb_typeof(b->'zone') = 'string' UNION ALL SELECT 'region' AS f, b->'region' #>> '{}' AS v WHERE jsonb_typeof(b->'region') = 'string' UNION ALL SELECT 'labels.' || l.key, l.value #>> '{}' FROM jsonb_each(CASE WHEN jsonb_typeof(b->'labels') = 'object' THEN b->'labels' ELSE '{}' END) l WHERE jsonb_typeof(l.value) = 'string' UNION ALL SELECT 'networkInterfaces.networkIP', n->'networkIP' #>> '{}' FROM jsonb_array_elements(CASE WHEN jsonb_typeof(b->'networkInterfaces') = 'array' THEN b->'networkInterfaces' ELSE '[]' END) n WHERE jsonb_typeof(n->'networkIP') = 'string' UNION ALL SELECT 'nameword', w FROM unnest(CASE WHEN NEW.name ~ '^[A-Za-z0-9_-]*$' THEN string_to_array(NEW.name, '-') ELSE ARRAY['-'] END) w WHERE w <> '') t ON CONFLICT DO NOTHING;
  END IF;
  RETURN NULL;
END $$""",
    """INSERT INTO resource_terms (resource_pk, project, collection, scope, name, field, value) SELECT r.pk, r.project, r.collection, r.scope, r.name, 'nameword', w FROM resources r, unnest(CASE WHEN r.name ~ '^[A-Za-z0-9_-]*$' THEN string_to_array(r.name, '-') ELSE ARRAY['-'] END) w WHERE w <> '' ON CONFLICT DO NOTHING""",
]


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for statement in POSTGRESQL_TERMS if postgres else SQLITE_TERMS:
        op.get_bind().exec_driver_sql(statement)


def downgrade() -> None:
    raise NotImplementedError("gstack does not downgrade: restore the backup taken before the upgrade")
