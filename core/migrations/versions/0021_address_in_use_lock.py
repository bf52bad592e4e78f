"""PostgreSQL: a row becoming a static external address IN_USE (a forwarding rule's, a Cloud NAT's,
an instance's) takes its project's usage lock, as a change of a usage counter does: the function of
the ``resource_usage`` trigger, which every row of ``resources`` runs, takes it for such a row.
IN_USE_ADDRESSES counts those addresses beside the counters, and their change took no lock: a
forwarding rule on a static address and an instance insert at once each checked the usage without
the other's, and both were made past the limit. SQLite has one writer at a time.

Frozen here (the function as :mod:`core.usage` makes it when this revision was written, and the one
before for a downgrade), never imported from live code.

Revision ID: 0021
Revises: 0020
"""

from __future__ import annotations

from alembic import op

revision = '0021'
down_revision: str | None = '0020'
branch_labels = None
depends_on = None

USAGE = "CREATE OR REPLACE FUNCTION gstack_resource_usage() RETURNS trigger LANGUAGE plpgsql AS $$\nBEGIN\n  IF TG_OP <> 'DELETE' AND NEW.status = 'IN_USE' AND NEW.collection = 'addresses' AND NEW.subtype = 'EXTERNAL'\n     AND (TG_OP = 'INSERT' OR OLD.status IS DISTINCT FROM 'IN_USE') THEN\n    PERFORM pg_advisory_xact_lock(2, hashtext('gstack_usage:' || NEW.project));\n  END IF;\n  IF TG_OP = 'UPDATE' AND NOT (OLD.project IS DISTINCT FROM NEW.project OR OLD.region IS DISTINCT FROM NEW.region OR OLD.collection IS DISTINCT FROM NEW.collection OR OLD.subtype IS DISTINCT FROM NEW.subtype OR OLD.vcpus IS DISTINCT FROM NEW.vcpus OR OLD.size_gb IS DISTINCT FROM NEW.size_gb OR (OLD.status = 'TERMINATED') IS DISTINCT FROM (NEW.status = 'TERMINATED')) THEN\n    RETURN NULL;\n  END IF;\n  IF COALESCE(NEW.collection, OLD.collection) IN ('instances', 'disks') THEN\n    PERFORM pg_advisory_xact_lock(2, hashtext('gstack_usage:' || COALESCE(NEW.project, OLD.project)));\n  END IF;\n  IF TG_OP IN ('UPDATE', 'DELETE') THEN INSERT INTO resource_usage (project, region, collection, subtype, count, cpus, size_gb) SELECT OLD.project, COALESCE(OLD.region, ''), OLD.collection, OLD.subtype, -1, -(CASE WHEN OLD.status <> 'TERMINATED' THEN OLD.vcpus ELSE 0 END), -OLD.size_gb WHERE OLD.collection IN ('instances', 'disks') ON CONFLICT (project, region, collection, subtype) DO UPDATE SET count = resource_usage.count + excluded.count, cpus = resource_usage.cpus + excluded.cpus, size_gb = resource_usage.size_gb + excluded.size_gb; END IF;\n  IF TG_OP IN ('UPDATE', 'INSERT') THEN INSERT INTO resource_usage (project, region, collection, subtype, count, cpus, size_gb) SELECT NEW.project, COALESCE(NEW.region, ''), NEW.collection, NEW.subtype, 1, (CASE WHEN NEW.status <> 'TERMINATED' THEN NEW.vcpus ELSE 0 END), NEW.size_gb WHERE NEW.collection IN ('instances', 'disks') ON CONFLICT (project, region, collection, subtype) DO UPDATE SET count = resource_usage.count + excluded.count, cpus = resource_usage.cpus + excluded.cpus, size_gb = resource_usage.size_gb + excluded.size_gb; END IF;\n  RETURN NULL;\nEND $$"
BEFORE = "CREATE OR REPLACE FUNCTION gstack_resource_usage() RETURNS trigger LANGUAGE plpgsql AS $$\nBEGIN\n  IF TG_OP = 'UPDATE' AND NOT (OLD.project IS DISTINCT FROM NEW.project OR OLD.region IS DISTINCT FROM NEW.region OR OLD.collection IS DISTINCT FROM NEW.collection OR OLD.subtype IS DISTINCT FROM NEW.subtype OR OLD.vcpus IS DISTINCT FROM NEW.vcpus OR OLD.size_gb IS DISTINCT FROM NEW.size_gb OR (OLD.status = 'TERMINATED') IS DISTINCT FROM (NEW.status = 'TERMINATED')) THEN\n    RETURN NULL;\n  END IF;\n  IF COALESCE(NEW.collection, OLD.collection) IN ('instances', 'disks') THEN\n    PERFORM pg_advisory_xact_lock(2, hashtext('gstack_usage:' || COALESCE(NEW.project, OLD.project)));\n  END IF;\n  IF TG_OP IN ('UPDATE', 'DELETE') THEN INSERT INTO resource_usage (project, region, collection, subtype, count, cpus, size_gb) SELECT OLD.project, COALESCE(OLD.region, ''), OLD.collection, OLD.subtype, -1, -(CASE WHEN OLD.status <> 'TERMINATED' THEN OLD.vcpus ELSE 0 END), -OLD.size_gb WHERE OLD.collection IN ('instances', 'disks') ON CONFLICT (project, region, collection, subtype) DO UPDATE SET count = resource_usage.count + excluded.count, cpus = resource_usage.cpus + excluded.cpus, size_gb = resource_usage.size_gb + excluded.size_gb; END IF;\n  IF TG_OP IN ('UPDATE', 'INSERT') THEN INSERT INTO resource_usage (project, region, collection, subtype, count, cpus, size_gb) SELECT NEW.project, COALESCE(NEW.region, ''), NEW.collection, NEW.subtype, 1, (CASE WHEN NEW.status <> 'TERMINATED' THEN NEW.vcpus ELSE 0 END), NEW.size_gb WHERE NEW.collection IN ('instances', 'disks') ON CONFLICT (project, region, collection, subtype) DO UPDATE SET count = resource_usage.count + excluded.count, cpus = resource_usage.cpus + excluded.cpus, size_gb = resource_usage.size_gb + excluded.size_gb; END IF;\n  RETURN NULL;\nEND $$"


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        bind.exec_driver_sql(USAGE)


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        bind.exec_driver_sql(BEFORE)
