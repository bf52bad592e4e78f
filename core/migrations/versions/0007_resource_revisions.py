"""Resource revisions (``resource_revisions``): a number every write of a resource row changes, kept
by triggers, so a finished list page can be served again while its rows are as they were.

Frozen here (the triggers as :mod:`core.models.revision` made them when this revision was
written), never imported from live code. Like 0003 to 0006 it makes only what is missing: a
database made by ``create_schema`` without a revision (a development build) may hold the table
and its triggers. The triggers and the revisions of the rows already there are made in one
transaction, so no write slips between.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision: str | None = '0006'
branch_labels = None
depends_on = None

SQLITE_TRIGGERS = [
    "CREATE TRIGGER resource_revision_insert AFTER INSERT ON resources BEGIN DELETE FROM resource_revisions WHERE resource_pk = NEW.pk; INSERT INTO resource_revisions (resource_pk) VALUES (NEW.pk); END",
    "CREATE TRIGGER resource_revision_update AFTER UPDATE OF body, name, created, project, collection, scope ON resources BEGIN DELETE FROM resource_revisions WHERE resource_pk = OLD.pk; DELETE FROM resource_revisions WHERE resource_pk = NEW.pk; INSERT INTO resource_revisions (resource_pk) VALUES (NEW.pk); END",
    "CREATE TRIGGER resource_revision_delete AFTER DELETE ON resources BEGIN DELETE FROM resource_revisions WHERE resource_pk = OLD.pk; UPDATE sqlite_sequence SET seq = seq + 1 WHERE name = 'resource_revisions'; END",
]
POSTGRESQL_TRIGGERS = [
    """CREATE OR REPLACE FUNCTION gstack_resource_revision() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP IN ('UPDATE', 'DELETE') THEN DELETE FROM resource_revisions WHERE resource_pk = OLD.pk; END IF;
  IF TG_OP IN ('UPDATE', 'INSERT') THEN DELETE FROM resource_revisions WHERE resource_pk = NEW.pk; INSERT INTO resource_revisions (resource_pk) VALUES (NEW.pk); END IF;
  RETURN NULL;
END $$""",
    'CREATE TRIGGER resource_revision AFTER INSERT OR DELETE ON resources FOR EACH ROW EXECUTE FUNCTION gstack_resource_revision()',
    'CREATE TRIGGER resource_revision_update AFTER UPDATE OF body, name, created, project, collection, scope ON resources FOR EACH ROW EXECUTE FUNCTION gstack_resource_revision()',
]
BACKFILL = ['INSERT INTO resource_revisions (resource_pk) SELECT pk FROM resources ORDER BY pk']


def upgrade() -> None:
    bind = op.get_bind()
    postgres = bind.dialect.name == "postgresql"
    if "resource_revisions" not in set(sa.inspect(bind).get_table_names()):
        op.create_table('resource_revisions',
                        sa.Column('rev', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True,
                                  nullable=False),
                        sa.Column('resource_pk', sa.Integer(), nullable=False),
                        sa.PrimaryKeyConstraint('rev'),
                        sa.UniqueConstraint('resource_pk'),
                        sqlite_autoincrement=True)
    if postgres:
        installed = bind.exec_driver_sql("SELECT 1 FROM pg_trigger WHERE tgname = 'resource_revision'").first()
    else:
        installed = bind.exec_driver_sql(
            "SELECT 1 FROM sqlite_master WHERE type = 'trigger' AND name = 'resource_revision_insert'").first()
    if installed is None:
        for stmt in (POSTGRESQL_TRIGGERS if postgres else SQLITE_TRIGGERS) + BACKFILL:
            op.execute(stmt)


def downgrade() -> None:
    raise NotImplementedError("gstack does not downgrade: restore the backup taken before the upgrade")
