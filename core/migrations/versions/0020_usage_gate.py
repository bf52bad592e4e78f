"""PostgreSQL: the function ``gstack_usage_unchanged``, the gate of an instances.insert written in one
statement. Its quotas were checked on the usage counters its first read brought, outside the
transaction that writes; the statement goes on only while those counters have not grown since
(the function takes the project's usage lock, the triggers' own, then reads the counters again
with a snapshot taken after it; when they grew, it fails the statement, and the insert runs the
usual way). Without it two inserts checked at once could both pass a quota
(eight concurrent inserts into a project with room for three made eight). SQLite has one writer
at a time and no function.

Frozen here (the function as :mod:`core.usage` makes it when this revision was written), never
imported from live code.

Revision ID: 0020
Revises: 0019
"""

from __future__ import annotations

from alembic import op

revision = '0020'
down_revision: str | None = '0019'
branch_labels = None
depends_on = None

GATE = "CREATE OR REPLACE FUNCTION gstack_usage_unchanged(p text, r text, seen jsonb, statics jsonb, made bigint)\nRETURNS boolean LANGUAGE plpgsql VOLATILE AS $$\nBEGIN\n  PERFORM pg_advisory_xact_lock(2, hashtext('gstack_usage:' || p));\n  IF EXISTS (SELECT 1 FROM resource_usage u\n             LEFT JOIN jsonb_array_elements(COALESCE(seen, '[]')) s(e)\n               ON s.e->>0 = u.region AND s.e->>1 = u.collection AND s.e->>2 = u.subtype\n             WHERE u.project = p AND (u.region = r OR u.collection = 'instances')\n               AND (u.count > COALESCE((s.e->>3)::numeric, 0) OR u.cpus > COALESCE((s.e->>4)::numeric, 0)\n                    OR u.size_gb > COALESCE((s.e->>5)::numeric, 0)))\n     OR (statics IS NOT NULL AND (SELECT count(*) FROM resources WHERE project = p AND collection = 'addresses'\n                                  AND region = r AND subtype = 'EXTERNAL' AND status = 'IN_USE')\n                                 > COALESCE((statics->>'IN_USE')::numeric, 0)) THEN\n    RAISE EXCEPTION USING ERRCODE = 'GS001',\n      MESSAGE = 'the usage of project ' || p || ' grew since its quota was checked';\n  END IF;\n  RETURN true;\nEND $$"


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        bind.exec_driver_sql(GATE)


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        bind.exec_driver_sql("DROP FUNCTION IF EXISTS gstack_usage_unchanged(text, text, jsonb, jsonb, bigint)")
