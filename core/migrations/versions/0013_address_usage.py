"""The external addresses in use, counted by triggers: ``ip_allocations.project`` names the project whose
IN_USE_ADDRESSES an ephemeral external address (an instance's, a forwarding rule's, a Cloud NAT's)
counts in, and triggers on ``ip_allocations`` keep that count in ``resource_usage`` (collection
``ipAllocations``, subtype ``EXTERNAL``, by region). A quota check counted those addresses by
walking every instance, forwarding rule and Cloud Router of the project: 120 ms at 100,000
instances, on every regions.get and every insert with an access config (gcloud's default). The
addresses held already are given their holder's project, then counted, in the transaction that
makes the triggers.

Frozen here (the triggers as :mod:`core.usage` makes them when this revision was written), never
imported from live code. Made only when missing: a database made by ``create_schema`` without a
revision (a development build) may hold them.

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0013'
down_revision: str | None = '0012'
branch_labels = None
depends_on = None


SQLITE = [
    "CREATE TRIGGER address_usage_insert AFTER INSERT ON ip_allocations WHEN NEW.project IS NOT NULL BEGIN INSERT INTO resource_usage (project, region, collection, subtype, count, cpus, size_gb) SELECT NEW.project, substr(NEW.pool, 10), 'ipAllocations', 'EXTERNAL', 1, 0, 0 WHERE NEW.project IS NOT NULL AND substr(NEW.pool, 1, 9) = 'external:' ON CONFLICT (project, region, collection, subtype) DO UPDATE SET count = resource_usage.count + excluded.count; END",
    "CREATE TRIGGER address_usage_delete AFTER DELETE ON ip_allocations WHEN OLD.project IS NOT NULL BEGIN INSERT INTO resource_usage (project, region, collection, subtype, count, cpus, size_gb) SELECT OLD.project, substr(OLD.pool, 10), 'ipAllocations', 'EXTERNAL', -1, 0, 0 WHERE OLD.project IS NOT NULL AND substr(OLD.pool, 1, 9) = 'external:' ON CONFLICT (project, region, collection, subtype) DO UPDATE SET count = resource_usage.count + excluded.count; END",
    "CREATE TRIGGER address_usage_update AFTER UPDATE ON ip_allocations WHEN OLD.project IS NOT NEW.project OR OLD.pool IS NOT NEW.pool BEGIN INSERT INTO resource_usage (project, region, collection, subtype, count, cpus, size_gb) SELECT OLD.project, substr(OLD.pool, 10), 'ipAllocations', 'EXTERNAL', -1, 0, 0 WHERE OLD.project IS NOT NULL AND substr(OLD.pool, 1, 9) = 'external:' ON CONFLICT (project, region, collection, subtype) DO UPDATE SET count = resource_usage.count + excluded.count; INSERT INTO resource_usage (project, region, collection, subtype, count, cpus, size_gb) SELECT NEW.project, substr(NEW.pool, 10), 'ipAllocations', 'EXTERNAL', 1, 0, 0 WHERE NEW.project IS NOT NULL AND substr(NEW.pool, 1, 9) = 'external:' ON CONFLICT (project, region, collection, subtype) DO UPDATE SET count = resource_usage.count + excluded.count; END"
]

POSTGRESQL = [
    "CREATE OR REPLACE FUNCTION gstack_address_usage() RETURNS trigger LANGUAGE plpgsql AS $$\nBEGIN\n  IF TG_OP = 'UPDATE' AND NOT (OLD.project IS DISTINCT FROM NEW.project OR OLD.pool IS DISTINCT FROM NEW.pool) THEN\n    RETURN NULL;\n  END IF;\n  IF TG_OP IN ('UPDATE', 'DELETE') THEN IF OLD.project IS NOT NULL THEN PERFORM pg_advisory_xact_lock(2, hashtext('gstack_usage:' || OLD.project)); END IF; INSERT INTO resource_usage (project, region, collection, subtype, count, cpus, size_gb) SELECT OLD.project, substr(OLD.pool, 10), 'ipAllocations', 'EXTERNAL', -1, 0, 0 WHERE OLD.project IS NOT NULL AND substr(OLD.pool, 1, 9) = 'external:' ON CONFLICT (project, region, collection, subtype) DO UPDATE SET count = resource_usage.count + excluded.count; END IF;\n  IF TG_OP IN ('UPDATE', 'INSERT') THEN IF NEW.project IS NOT NULL THEN PERFORM pg_advisory_xact_lock(2, hashtext('gstack_usage:' || NEW.project)); END IF; INSERT INTO resource_usage (project, region, collection, subtype, count, cpus, size_gb) SELECT NEW.project, substr(NEW.pool, 10), 'ipAllocations', 'EXTERNAL', 1, 0, 0 WHERE NEW.project IS NOT NULL AND substr(NEW.pool, 1, 9) = 'external:' ON CONFLICT (project, region, collection, subtype) DO UPDATE SET count = resource_usage.count + excluded.count; END IF;\n  RETURN NULL;\nEND $$",
    "CREATE TRIGGER address_usage AFTER INSERT OR UPDATE OR DELETE ON ip_allocations FOR EACH ROW EXECUTE FUNCTION gstack_address_usage()"
]

BACKFILL = [
    "DELETE FROM resource_usage WHERE collection = 'ipAllocations'",
    "INSERT INTO resource_usage (project, region, collection, subtype, count, cpus, size_gb) SELECT project, substr(pool, 10), 'ipAllocations', 'EXTERNAL', count(*), 0, 0 FROM ip_allocations WHERE project IS NOT NULL AND substr(pool, 1, 9) = 'external:' GROUP BY project, substr(pool, 10)"
]

SQLITE_TABLE = ("CREATE TABLE ip_allocations (\n\tid INTEGER NOT NULL, \n\tpool VARCHAR(120) NOT NULL, \n\taddress BIGINT "
                "NOT NULL, \n\towner_uid BIGINT NOT NULL, \n\tproject VARCHAR(100), \n\tPRIMARY KEY (id), \n\tCONSTRAINT "
                "uq_ip_allocation UNIQUE (pool, address)\n)")
# The holders' addresses (those of instances, forwarding rules and Cloud Routers) get their project;
# a static address's (its owner is the address) and the internal ones keep none.
HOLDERS = ("UPDATE ip_allocations SET project = (SELECT r.project FROM resources r WHERE r.uid = ip_allocations.owner_uid "
           "AND r.collection IN ('instances', 'forwardingRules', 'routers')) WHERE substr(pool, 1, 9) = 'external:'")


def upgrade() -> None:
    bind = op.get_bind()
    if "project" in {c["name"] for c in sa.inspect(bind).get_columns("ip_allocations")}:
        return
    if bind.dialect.name == "sqlite":  # the table made again: its CREATE TABLE reads as a fresh database's
        bind.exec_driver_sql("ALTER TABLE ip_allocations RENAME TO ip_allocations_before_0013")
        bind.exec_driver_sql(SQLITE_TABLE)
        bind.exec_driver_sql("INSERT INTO ip_allocations (id, pool, address, owner_uid) "
                             "SELECT id, pool, address, owner_uid FROM ip_allocations_before_0013")
        bind.exec_driver_sql("DROP TABLE ip_allocations_before_0013")
        bind.exec_driver_sql("CREATE INDEX ix_ip_allocations_owner_uid ON ip_allocations (owner_uid)")
    else:
        op.add_column("ip_allocations", sa.Column("project", sa.String(length=100), nullable=True))
    bind.exec_driver_sql(HOLDERS)
    for stmt in (POSTGRESQL if bind.dialect.name == "postgresql" else SQLITE) + BACKFILL:
        bind.exec_driver_sql(stmt)


def downgrade() -> None:
    raise NotImplementedError("gstack does not downgrade: restore the backup taken before the upgrade")
