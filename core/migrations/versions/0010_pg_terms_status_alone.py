"""PostgreSQL: the filter terms' trigger function moves the status term alone when an UPDATE keeps
the row's place and name and changes none of the body's fields with terms but its status (a job's
STAGING, RUNNING, READY: most UPDATEs). It deleted and derived again every term of the row, about
0.4 ms per row and three rows per instances.insert. The terms it keeps are the same, so nothing
is derived again. SQLite's triggers are unchanged.

Frozen here (the function as :mod:`core.terms` makes it when this revision was written), never
imported from live code. ``CREATE OR REPLACE`` keeps the trigger that calls it.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

from alembic import op

revision = '0010'
down_revision: str | None = '0009'
branch_labels = None
depends_on = None

POSTGRESQL_FUNCTION = """CREATE OR REPLACE FUNCTION gstack_resource_terms() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE b jsonb; o jsonb;
BEGIN
  IF TG_OP = 'UPDATE' AND NOT (OLD.body IS DISTINCT FROM NEW.body OR OLD.name IS DISTINCT FROM NEW.name OR OLD.scope IS DISTINCT FROM NEW.scope) THEN
    RETURN NULL;
  END IF;
  IF TG_OP IN ('UPDATE', 'INSERT') THEN b := NEW.body::jsonb; END IF;
  IF TG_OP = 'UPDATE' AND OLD.project = NEW.project AND OLD.collection = NEW.collection AND OLD.scope = NEW.scope
     AND OLD.name = NEW.name THEN
    o := OLD.body::jsonb;
    IF o->'name' IS NOT DISTINCT FROM b->'name' AND o->'zone' IS NOT DISTINCT FROM b->'zone' AND o->'region' IS NOT DISTINCT FROM b->'region' AND o->'labels' IS NOT DISTINCT FROM b->'labels' AND o->'networkInterfaces' IS NOT DISTINCT FROM b->'networkInterfaces' THEN  -- only the status term can differ
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
    INSERT INTO resource_terms (resource_pk, project, collection, scope, name, field, value) SELECT NEW.pk, NEW.project, NEW.collection, NEW.scope, NEW.name, f, v FROM (SELECT 'name' AS f, b->'name' #>> '{}' AS v WHERE jsonb_typeof(b->'name') = 'string' UNION ALL SELECT 'status' AS f, b->'status' #>> '{}' AS v WHERE jsonb_typeof(b->'status') = 'string' UNION ALL SELECT 'zone' AS f, b->'zone' #>> '{}' AS v WHERE jsonb_typeof(b->'zone') = 'string' UNION ALL SELECT 'region' AS f, b->'region' #>> '{}' AS v WHERE jsonb_typeof(b->'region') = 'string' UNION ALL SELECT 'labels.' || l.key, l.value #>> '{}' FROM jsonb_each(CASE WHEN jsonb_typeof(b->'labels') = 'object' THEN b->'labels' ELSE '{}' END) l WHERE jsonb_typeof(l.value) = 'string' UNION ALL SELECT 'networkInterfaces.networkIP', n->'networkIP' #>> '{}' FROM jsonb_array_elements(CASE WHEN jsonb_typeof(b->'networkInterfaces') = 'array' THEN b->'networkInterfaces' ELSE '[]' END) n WHERE jsonb_typeof(n->'networkIP') = 'string' UNION ALL SELECT 'nameword', w FROM unnest(CASE WHEN NEW.name ~ '^[A-Za-z0-9_-]*$' THEN string_to_array(NEW.name, '-') ELSE ARRAY['-'] END) w WHERE w <> '') t ON CONFLICT DO NOTHING;
  END IF;
  RETURN NULL;
END $$"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(POSTGRESQL_FUNCTION)


def downgrade() -> None:
    raise NotImplementedError("gstack does not downgrade: restore the backup taken before the upgrade")
