"""Capacity counters (``capacity_usage``) and the index of a collection across projects.

Both take work that grew with the cloud off each instance's insert.

Placement summed every resource on a zone's hosts and pools on every insert (a covering index
scan, but of 100,000 entries at 100,000 instances): the counters, kept by triggers on
``resources`` in the transaction that places or releases, make it one row per host or pool. The
triggers and the counts of the rows the database holds already are made in one transaction.

Frozen here (the triggers as :mod:`core.usage` made them when this revision was written), never
imported from live code. Like 0003 and 0004 it makes only what is missing: a database made by
``create_schema`` without a revision (a development build) may hold the table and its triggers.

``ix_resource_collection_scope``: a router's render read its network's subnetworks in the region
and the Cloud NAT routers on it by scanning every resource (no index began with the collection):
one scan of all instances and disks per router sync.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision: str | None = '0005'
branch_labels = None
depends_on = None

SQLITE_TRIGGERS = [
    "CREATE TRIGGER capacity_usage_insert AFTER INSERT ON resources WHEN NEW.host_id IS NOT NULL OR NEW.pool_id IS NOT NULL BEGIN INSERT INTO capacity_usage (holder, holder_id, count, vcpus, memory_mb, size_gb) SELECT 'host', NEW.host_id, 1, COALESCE(NEW.vcpus, 0), COALESCE(NEW.memory_mb, 0), 0 WHERE NEW.host_id IS NOT NULL ON CONFLICT (holder, holder_id) DO UPDATE SET count = capacity_usage.count + excluded.count, vcpus = capacity_usage.vcpus + excluded.vcpus, memory_mb = capacity_usage.memory_mb + excluded.memory_mb, size_gb = capacity_usage.size_gb + excluded.size_gb; INSERT INTO capacity_usage (holder, holder_id, count, vcpus, memory_mb, size_gb) SELECT 'pool', NEW.pool_id, 1, 0, 0, COALESCE(NEW.size_gb, 0) WHERE NEW.pool_id IS NOT NULL ON CONFLICT (holder, holder_id) DO UPDATE SET count = capacity_usage.count + excluded.count, vcpus = capacity_usage.vcpus + excluded.vcpus, memory_mb = capacity_usage.memory_mb + excluded.memory_mb, size_gb = capacity_usage.size_gb + excluded.size_gb; END",
    "CREATE TRIGGER capacity_usage_delete AFTER DELETE ON resources WHEN OLD.host_id IS NOT NULL OR OLD.pool_id IS NOT NULL BEGIN INSERT INTO capacity_usage (holder, holder_id, count, vcpus, memory_mb, size_gb) SELECT 'host', OLD.host_id, -1, -COALESCE(OLD.vcpus, 0), -COALESCE(OLD.memory_mb, 0), -0 WHERE OLD.host_id IS NOT NULL ON CONFLICT (holder, holder_id) DO UPDATE SET count = capacity_usage.count + excluded.count, vcpus = capacity_usage.vcpus + excluded.vcpus, memory_mb = capacity_usage.memory_mb + excluded.memory_mb, size_gb = capacity_usage.size_gb + excluded.size_gb; INSERT INTO capacity_usage (holder, holder_id, count, vcpus, memory_mb, size_gb) SELECT 'pool', OLD.pool_id, -1, -0, -0, -COALESCE(OLD.size_gb, 0) WHERE OLD.pool_id IS NOT NULL ON CONFLICT (holder, holder_id) DO UPDATE SET count = capacity_usage.count + excluded.count, vcpus = capacity_usage.vcpus + excluded.vcpus, memory_mb = capacity_usage.memory_mb + excluded.memory_mb, size_gb = capacity_usage.size_gb + excluded.size_gb; END",
    "CREATE TRIGGER capacity_usage_update AFTER UPDATE ON resources WHEN OLD.host_id IS NOT NEW.host_id OR OLD.pool_id IS NOT NEW.pool_id OR OLD.vcpus IS NOT NEW.vcpus OR OLD.memory_mb IS NOT NEW.memory_mb OR OLD.size_gb IS NOT NEW.size_gb BEGIN INSERT INTO capacity_usage (holder, holder_id, count, vcpus, memory_mb, size_gb) SELECT 'host', OLD.host_id, -1, -COALESCE(OLD.vcpus, 0), -COALESCE(OLD.memory_mb, 0), -0 WHERE OLD.host_id IS NOT NULL ON CONFLICT (holder, holder_id) DO UPDATE SET count = capacity_usage.count + excluded.count, vcpus = capacity_usage.vcpus + excluded.vcpus, memory_mb = capacity_usage.memory_mb + excluded.memory_mb, size_gb = capacity_usage.size_gb + excluded.size_gb; INSERT INTO capacity_usage (holder, holder_id, count, vcpus, memory_mb, size_gb) SELECT 'pool', OLD.pool_id, -1, -0, -0, -COALESCE(OLD.size_gb, 0) WHERE OLD.pool_id IS NOT NULL ON CONFLICT (holder, holder_id) DO UPDATE SET count = capacity_usage.count + excluded.count, vcpus = capacity_usage.vcpus + excluded.vcpus, memory_mb = capacity_usage.memory_mb + excluded.memory_mb, size_gb = capacity_usage.size_gb + excluded.size_gb; INSERT INTO capacity_usage (holder, holder_id, count, vcpus, memory_mb, size_gb) SELECT 'host', NEW.host_id, 1, COALESCE(NEW.vcpus, 0), COALESCE(NEW.memory_mb, 0), 0 WHERE NEW.host_id IS NOT NULL ON CONFLICT (holder, holder_id) DO UPDATE SET count = capacity_usage.count + excluded.count, vcpus = capacity_usage.vcpus + excluded.vcpus, memory_mb = capacity_usage.memory_mb + excluded.memory_mb, size_gb = capacity_usage.size_gb + excluded.size_gb; INSERT INTO capacity_usage (holder, holder_id, count, vcpus, memory_mb, size_gb) SELECT 'pool', NEW.pool_id, 1, 0, 0, COALESCE(NEW.size_gb, 0) WHERE NEW.pool_id IS NOT NULL ON CONFLICT (holder, holder_id) DO UPDATE SET count = capacity_usage.count + excluded.count, vcpus = capacity_usage.vcpus + excluded.vcpus, memory_mb = capacity_usage.memory_mb + excluded.memory_mb, size_gb = capacity_usage.size_gb + excluded.size_gb; END",
]
POSTGRESQL_TRIGGERS = [
    """CREATE OR REPLACE FUNCTION gstack_capacity_usage() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'UPDATE' AND NOT (OLD.host_id IS DISTINCT FROM NEW.host_id OR OLD.pool_id IS DISTINCT FROM NEW.pool_id OR OLD.vcpus IS DISTINCT FROM NEW.vcpus OR OLD.memory_mb IS DISTINCT FROM NEW.memory_mb OR OLD.size_gb IS DISTINCT FROM NEW.size_gb) THEN
    RETURN NULL;
  END IF;
  IF TG_OP IN ('UPDATE', 'DELETE') THEN IF OLD.host_id IS NOT NULL THEN PERFORM pg_advisory_xact_lock(3, (SELECT zone_id FROM hosts WHERE id = OLD.host_id)); END IF; IF OLD.pool_id IS NOT NULL THEN PERFORM pg_advisory_xact_lock(3, (SELECT zone_id FROM storage_pools WHERE id = OLD.pool_id)); END IF; INSERT INTO capacity_usage (holder, holder_id, count, vcpus, memory_mb, size_gb) SELECT 'host', OLD.host_id, -1, -COALESCE(OLD.vcpus, 0), -COALESCE(OLD.memory_mb, 0), -0 WHERE OLD.host_id IS NOT NULL ON CONFLICT (holder, holder_id) DO UPDATE SET count = capacity_usage.count + excluded.count, vcpus = capacity_usage.vcpus + excluded.vcpus, memory_mb = capacity_usage.memory_mb + excluded.memory_mb, size_gb = capacity_usage.size_gb + excluded.size_gb; INSERT INTO capacity_usage (holder, holder_id, count, vcpus, memory_mb, size_gb) SELECT 'pool', OLD.pool_id, -1, -0, -0, -COALESCE(OLD.size_gb, 0) WHERE OLD.pool_id IS NOT NULL ON CONFLICT (holder, holder_id) DO UPDATE SET count = capacity_usage.count + excluded.count, vcpus = capacity_usage.vcpus + excluded.vcpus, memory_mb = capacity_usage.memory_mb + excluded.memory_mb, size_gb = capacity_usage.size_gb + excluded.size_gb; END IF;
  IF TG_OP IN ('UPDATE', 'INSERT') THEN IF NEW.host_id IS NOT NULL THEN PERFORM pg_advisory_xact_lock(3, (SELECT zone_id FROM hosts WHERE id = NEW.host_id)); END IF; IF NEW.pool_id IS NOT NULL THEN PERFORM pg_advisory_xact_lock(3, (SELECT zone_id FROM storage_pools WHERE id = NEW.pool_id)); END IF; INSERT INTO capacity_usage (holder, holder_id, count, vcpus, memory_mb, size_gb) SELECT 'host', NEW.host_id, 1, COALESCE(NEW.vcpus, 0), COALESCE(NEW.memory_mb, 0), 0 WHERE NEW.host_id IS NOT NULL ON CONFLICT (holder, holder_id) DO UPDATE SET count = capacity_usage.count + excluded.count, vcpus = capacity_usage.vcpus + excluded.vcpus, memory_mb = capacity_usage.memory_mb + excluded.memory_mb, size_gb = capacity_usage.size_gb + excluded.size_gb; INSERT INTO capacity_usage (holder, holder_id, count, vcpus, memory_mb, size_gb) SELECT 'pool', NEW.pool_id, 1, 0, 0, COALESCE(NEW.size_gb, 0) WHERE NEW.pool_id IS NOT NULL ON CONFLICT (holder, holder_id) DO UPDATE SET count = capacity_usage.count + excluded.count, vcpus = capacity_usage.vcpus + excluded.vcpus, memory_mb = capacity_usage.memory_mb + excluded.memory_mb, size_gb = capacity_usage.size_gb + excluded.size_gb; END IF;
  RETURN NULL;
END $$""",
    'CREATE TRIGGER capacity_usage AFTER INSERT OR UPDATE OR DELETE ON resources FOR EACH ROW EXECUTE FUNCTION gstack_capacity_usage()',
]
BACKFILL = [
    'DELETE FROM capacity_usage',
    "INSERT INTO capacity_usage (holder, holder_id, count, vcpus, memory_mb, size_gb) SELECT 'host', host_id, count(*), sum(COALESCE(resources.vcpus, 0)), sum(COALESCE(resources.memory_mb, 0)), sum(0) FROM resources WHERE host_id IS NOT NULL GROUP BY host_id",
    "INSERT INTO capacity_usage (holder, holder_id, count, vcpus, memory_mb, size_gb) SELECT 'pool', pool_id, count(*), sum(0), sum(0), sum(COALESCE(resources.size_gb, 0)) FROM resources WHERE pool_id IS NOT NULL GROUP BY pool_id",
]


def upgrade() -> None:
    bind = op.get_bind()
    postgres = bind.dialect.name == "postgresql"
    if "capacity_usage" not in set(sa.inspect(bind).get_table_names()):
        op.create_table('capacity_usage',
                        sa.Column('holder', sa.String(length=8), nullable=False),
                        sa.Column('holder_id', sa.Integer(), nullable=False),
                        sa.Column('count', sa.Integer(), nullable=False),
                        sa.Column('vcpus', sa.BigInteger(), nullable=False),
                        sa.Column('memory_mb', sa.BigInteger(), nullable=False),
                        sa.Column('size_gb', sa.BigInteger(), nullable=False),
                        sa.PrimaryKeyConstraint('holder', 'holder_id'))
    indexes = {index["name"] for index in sa.inspect(bind).get_indexes("resources")}
    if "ix_resource_collection_scope" not in indexes:
        op.create_index('ix_resource_collection_scope', 'resources', ['collection', 'scope'], unique=False)
    if postgres:
        installed = bind.exec_driver_sql("SELECT 1 FROM pg_trigger WHERE tgname = 'capacity_usage'").first()
    else:
        installed = bind.exec_driver_sql(
            "SELECT 1 FROM sqlite_master WHERE type = 'trigger' AND name = 'capacity_usage_update'").first()
    if installed is None:
        for stmt in (POSTGRESQL_TRIGGERS if postgres else SQLITE_TRIGGERS) + BACKFILL:
            op.execute(stmt)


def downgrade() -> None:
    raise NotImplementedError("gstack does not downgrade: restore the backup taken before the upgrade")
