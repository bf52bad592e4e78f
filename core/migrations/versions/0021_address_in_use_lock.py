"""PostgreSQL: a row becoming a static external address IN_USE (a forwarding rule's, a Cloud NAT's,
an instance's) takes its project's usage lock, as a change of a usage counter does. IN_USE_ADDRESSES
counts those addresses beside the counters, and their change took no lock: a forwarding rule on a
static address and an instance insert at once each checked the usage without the other's, and
both were made past the limit. SQLite has one writer at a time.

Frozen here (the triggers as :mod:`core.usage` makes them when this revision was written), never
imported from live code.

Revision ID: 0021
Revises: 0020
"""

from __future__ import annotations

from alembic import op

revision = '0021'
down_revision: str | None = '0020'
branch_labels = None
depends_on = None

IN_USE = [
    "CREATE OR REPLACE FUNCTION gstack_address_in_use() RETURNS trigger LANGUAGE plpgsql AS $$\nBEGIN\n  PERFORM pg_advisory_xact_lock(2, hashtext('gstack_usage:' || NEW.project));\n  RETURN NULL;\nEND $$",
    "DROP TRIGGER IF EXISTS address_in_use_insert ON resources",
    "DROP TRIGGER IF EXISTS address_in_use_update ON resources",
    "CREATE TRIGGER address_in_use_insert AFTER INSERT ON resources FOR EACH ROW WHEN (NEW.collection = 'addresses' AND NEW.subtype = 'EXTERNAL' AND NEW.status = 'IN_USE') EXECUTE FUNCTION gstack_address_in_use()",
    "CREATE TRIGGER address_in_use_update AFTER UPDATE ON resources FOR EACH ROW WHEN (NEW.collection = 'addresses' AND NEW.subtype = 'EXTERNAL' AND NEW.status = 'IN_USE' AND NOT (OLD.collection = 'addresses' AND OLD.subtype = 'EXTERNAL' AND OLD.status = 'IN_USE' AND OLD.project = NEW.project AND OLD.region IS NOT DISTINCT FROM NEW.region)) EXECUTE FUNCTION gstack_address_in_use()",
]


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        for stmt in IN_USE:
            bind.exec_driver_sql(stmt)


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        for trigger in ("address_in_use_insert", "address_in_use_update"):
            bind.exec_driver_sql(f"DROP TRIGGER IF EXISTS {trigger} ON resources")
        bind.exec_driver_sql("DROP FUNCTION IF EXISTS gstack_address_in_use()")
