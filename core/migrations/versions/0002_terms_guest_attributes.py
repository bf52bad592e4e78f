"""Guest attributes, resource terms, the creationTimestamp index and the locking usage function.

Everything since the baseline, up to the build that adopted migrations: guest attributes, the
filter terms of resources (``resource_terms``, its triggers, and the terms of the rows the
database holds already), the index for creationTimestamp order, and on PostgreSQL the usage
trigger function that takes a per-project advisory lock (see :mod:`core.usage`).

Frozen here, never imported from live code. Each step also tolerates finding its object made
already: a database of a build between the baseline and this revision, which had no migrations,
is stamped at the baseline and brought here by this revision.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels = None
depends_on = None

# Indexes builds before the baseline made and no later build reads.
RETIRED_INDEXES = ("ix_resource_list", "ix_resource_usage")

# core/terms.py when this revision was made: the triggers, then the terms of the existing rows.
SQLITE_TERMS = [
    "DROP TRIGGER IF EXISTS resource_terms_insert",
    "DROP TRIGGER IF EXISTS resource_terms_delete",
    "DROP TRIGGER IF EXISTS resource_terms_update",
    """CREATE TRIGGER resource_terms_insert AFTER INSERT ON resources BEGIN INSERT OR IGNORE INTO resource_terms (resource_pk, project, collection, scope, name, field, value) SELECT NEW.pk, NEW.project, NEW.collection, NEW.scope, NEW.name, key, value FROM json_each(NEW.body) WHERE key IN ('name', 'status', 'zone', 'region') AND type = 'text' UNION ALL SELECT NEW.pk, NEW.project, NEW.collection, NEW.scope, NEW.name, 'labels.' || key, value FROM json_each(NEW.body, '$.labels') WHERE type = 'text' UNION ALL SELECT NEW.pk, NEW.project, NEW.collection, NEW.scope, NEW.name, 'networkInterfaces.networkIP', json_extract(value, '$.networkIP') FROM json_each(NEW.body, '$.networkInterfaces') WHERE json_type(value, '$.networkIP') = 'text'; END""",
    """CREATE TRIGGER resource_terms_delete AFTER DELETE ON resources BEGIN DELETE FROM resource_terms WHERE resource_pk = OLD.pk; END""",
    """CREATE TRIGGER resource_terms_update AFTER UPDATE ON resources WHEN OLD.body IS NOT NEW.body OR OLD.name IS NOT NEW.name OR OLD.scope IS NOT NEW.scope BEGIN DELETE FROM resource_terms WHERE resource_pk = OLD.pk; INSERT OR IGNORE INTO resource_terms (resource_pk, project, collection, scope, name, field, value) SELECT NEW.pk, NEW.project, NEW.collection, NEW.scope, NEW.name, key, value FROM json_each(NEW.body) WHERE key IN ('name', 'status', 'zone', 'region') AND type = 'text' UNION ALL SELECT NEW.pk, NEW.project, NEW.collection, NEW.scope, NEW.name, 'labels.' || key, value FROM json_each(NEW.body, '$.labels') WHERE type = 'text' UNION ALL SELECT NEW.pk, NEW.project, NEW.collection, NEW.scope, NEW.name, 'networkInterfaces.networkIP', json_extract(value, '$.networkIP') FROM json_each(NEW.body, '$.networkInterfaces') WHERE json_type(value, '$.networkIP') = 'text'; END""",
    """DELETE FROM resource_terms""",
    """INSERT OR IGNORE INTO resource_terms (resource_pk, project, collection, scope, name, field, value) SELECT r.pk, r.project, r.collection, r.scope, r.name, key, value FROM resources r, json_each(r.body) WHERE key IN ('name', 'status', 'zone', 'region') AND type = 'text' UNION ALL SELECT r.pk, r.project, r.collection, r.scope, r.name, 'labels.' || key, value FROM resources r, json_each(r.body, '$.labels') WHERE type = 'text' UNION ALL SELECT r.pk, r.project, r.collection, r.scope, r.name, 'networkInterfaces.networkIP', json_extract(value, '$.networkIP') FROM resources r, json_each(r.body, '$.networkInterfaces') WHERE json_type(value, '$.networkIP') = 'text'""",
]
POSTGRESQL_TERMS = [
    "DROP TRIGGER IF EXISTS resource_terms ON resources",
    """CREATE OR REPLACE FUNCTION gstack_resource_terms() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE b jsonb;
BEGIN
  IF TG_OP = 'UPDATE' AND NOT (OLD.body IS DISTINCT FROM NEW.body OR OLD.name IS DISTINCT FROM NEW.name OR OLD.scope IS DISTINCT FROM NEW.scope) THEN
    RETURN NULL;
  END IF;
  IF TG_OP IN ('UPDATE', 'DELETE') THEN DELETE FROM resource_terms WHERE resource_pk = OLD.pk; END IF;
  IF TG_OP IN ('UPDATE', 'INSERT') THEN
    b := NEW.body::jsonb;
    INSERT INTO resource_terms (resource_pk, project, collection, scope, name, field, value) SELECT NEW.pk, NEW.project, NEW.collection, NEW.scope, NEW.name, f, v FROM (SELECT 'name' AS f, b->'name' #>> '{}' AS v WHERE jsonb_typeof(b->'name') = 'string' UNION ALL SELECT 'status' AS f, b->'status' #>> '{}' AS v WHERE jsonb_typeof(b->'status') = 'string' UNION ALL SELECT 'zone' AS f, b->'zone' #>> '{}' AS v WHERE jsonb_typeof(b->'zone') = 'string' UNION ALL SELECT 'region' AS f, b->'region' #>> '{}' AS v WHERE jsonb_typeof(b->'region') = 'string' UNION ALL SELECT 'labels.' || l.key, l.value #>> '{}' FROM jsonb_each(CASE WHEN jsonb_typeof(b->'labels') = 'object' THEN b->'labels' ELSE '{}' END) l WHERE jsonb_typeof(l.value) = 'string' UNION ALL SELECT 'networkInterfaces.networkIP', n->'networkIP' #>> '{}' FROM jsonb_array_elements(CASE WHEN jsonb_typeof(b->'networkInterfaces') = 'array' THEN b->'networkInterfaces' ELSE '[]' END) n WHERE jsonb_typeof(n->'networkIP') = 'string') t ON CONFLICT DO NOTHING;
  END IF;
  RETURN NULL;
END $$""",
    """CREATE TRIGGER resource_terms AFTER INSERT OR UPDATE OR DELETE ON resources FOR EACH ROW EXECUTE FUNCTION gstack_resource_terms()""",
    """DELETE FROM resource_terms""",
    """INSERT INTO resource_terms (resource_pk, project, collection, scope, name, field, value) SELECT r.pk, r.project, r.collection, r.scope, r.name, f, v FROM resources r, LATERAL (SELECT r.body::jsonb AS b) j, LATERAL (SELECT 'name' AS f, b->'name' #>> '{}' AS v WHERE jsonb_typeof(b->'name') = 'string' UNION ALL SELECT 'status' AS f, b->'status' #>> '{}' AS v WHERE jsonb_typeof(b->'status') = 'string' UNION ALL SELECT 'zone' AS f, b->'zone' #>> '{}' AS v WHERE jsonb_typeof(b->'zone') = 'string' UNION ALL SELECT 'region' AS f, b->'region' #>> '{}' AS v WHERE jsonb_typeof(b->'region') = 'string' UNION ALL SELECT 'labels.' || l.key, l.value #>> '{}' FROM jsonb_each(CASE WHEN jsonb_typeof(b->'labels') = 'object' THEN b->'labels' ELSE '{}' END) l WHERE jsonb_typeof(l.value) = 'string' UNION ALL SELECT 'networkInterfaces.networkIP', n->'networkIP' #>> '{}' FROM jsonb_array_elements(CASE WHEN jsonb_typeof(b->'networkInterfaces') = 'array' THEN b->'networkInterfaces' ELSE '[]' END) n WHERE jsonb_typeof(n->'networkIP') = 'string') t ON CONFLICT DO NOTHING""",
]
# core/usage.py when this revision was made: the function with the advisory lock, and its trigger.
POSTGRESQL_USAGE = [
    """CREATE OR REPLACE FUNCTION gstack_resource_usage() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'UPDATE' AND NOT (OLD.project IS DISTINCT FROM NEW.project OR OLD.region IS DISTINCT FROM NEW.region OR OLD.collection IS DISTINCT FROM NEW.collection OR OLD.subtype IS DISTINCT FROM NEW.subtype OR OLD.vcpus IS DISTINCT FROM NEW.vcpus OR OLD.size_gb IS DISTINCT FROM NEW.size_gb OR (OLD.status = 'TERMINATED') IS DISTINCT FROM (NEW.status = 'TERMINATED')) THEN
    RETURN NULL;
  END IF;
  IF COALESCE(NEW.collection, OLD.collection) IN ('instances', 'disks') THEN
    PERFORM pg_advisory_xact_lock(2, hashtext('gstack_usage:' || COALESCE(NEW.project, OLD.project)));
  END IF;
  IF TG_OP IN ('UPDATE', 'DELETE') THEN INSERT INTO resource_usage (project, region, collection, subtype, count, cpus, size_gb) SELECT OLD.project, COALESCE(OLD.region, ''), OLD.collection, OLD.subtype, -1, -(CASE WHEN OLD.status <> 'TERMINATED' THEN OLD.vcpus ELSE 0 END), -OLD.size_gb WHERE OLD.collection IN ('instances', 'disks') ON CONFLICT (project, region, collection, subtype) DO UPDATE SET count = resource_usage.count + excluded.count, cpus = resource_usage.cpus + excluded.cpus, size_gb = resource_usage.size_gb + excluded.size_gb; END IF;
  IF TG_OP IN ('UPDATE', 'INSERT') THEN INSERT INTO resource_usage (project, region, collection, subtype, count, cpus, size_gb) SELECT NEW.project, COALESCE(NEW.region, ''), NEW.collection, NEW.subtype, 1, (CASE WHEN NEW.status <> 'TERMINATED' THEN NEW.vcpus ELSE 0 END), NEW.size_gb WHERE NEW.collection IN ('instances', 'disks') ON CONFLICT (project, region, collection, subtype) DO UPDATE SET count = resource_usage.count + excluded.count, cpus = resource_usage.cpus + excluded.cpus, size_gb = resource_usage.size_gb + excluded.size_gb; END IF;
  RETURN NULL;
END $$""",
    """DROP TRIGGER IF EXISTS resource_usage ON resources""",
    """CREATE TRIGGER resource_usage AFTER INSERT OR UPDATE OR DELETE ON resources FOR EACH ROW EXECUTE FUNCTION gstack_resource_usage()""",
]


def _bytewise() -> sa.types.TypeEngine[str]:
    return sa.String().with_variant(sa.String(collation="C"), "postgresql")


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    inspector = sa.inspect(op.get_bind())
    tables = set(inspector.get_table_names())
    if "guest_attributes" not in tables:
        op.create_table(
            "guest_attributes",
            sa.Column("id", sa.Integer(), nullable=False),
            sa.Column("instance_uid", sa.BigInteger(), nullable=False),
            sa.Column("namespace", sa.String(length=64), nullable=False),
            sa.Column("key", sa.String(length=255), nullable=False),
            sa.Column("value", sa.Text(), nullable=False),
            sa.Column("updated", sa.Float(), nullable=False),
            sa.PrimaryKeyConstraint("id"),
            sa.UniqueConstraint("instance_uid", "namespace", "key", name="uq_guest_attribute"),
        )
        op.create_index(
            "ix_guest_attributes_instance_uid", "guest_attributes", ["instance_uid"], unique=False
        )
    if "resource_terms" not in tables:
        op.create_table(
            "resource_terms",
            sa.Column("resource_pk", sa.Integer(), nullable=False),
            sa.Column("field", sa.String(length=80), nullable=False),
            sa.Column("value", _bytewise(), nullable=False),
            sa.Column("project", sa.String(length=100), nullable=False),
            sa.Column("collection", sa.String(length=40), nullable=False),
            sa.Column("scope", sa.String(length=80), nullable=False),
            sa.Column("name", _bytewise(), nullable=False),
            sa.PrimaryKeyConstraint("resource_pk", "field", "value"),
        )
        op.create_index(
            "ix_resource_term_list",
            "resource_terms",
            ["project", "collection", "scope", "field", "value", "name"],
            unique=False,
        )
    op.create_index(
        "ix_resource_created",
        "resources",
        ["project", "collection", "scope", "created", "pk"],
        unique=False,
        if_not_exists=True,
    )
    for name in RETIRED_INDEXES:
        op.drop_index(name, table_name="resources", if_exists=True)
    for statement in (POSTGRESQL_USAGE + POSTGRESQL_TERMS) if postgres else SQLITE_TERMS:
        op.get_bind().exec_driver_sql(statement)


def downgrade() -> None:
    raise NotImplementedError("gstack does not downgrade: restore the backup taken before the upgrade")
