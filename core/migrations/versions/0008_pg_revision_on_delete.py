"""PostgreSQL: a delete of a resource row takes a number from the revisions' sequence, as every
insert and page-column update already does, so the sequence's last value moves with every write
of a page and can serve as a generation of the whole table (core.resources.queries.committed_generation).
SQLite's delete trigger moved its counter from the start (0007): nothing changes there.

Frozen here (the function as :mod:`core.models.revision` makes it when this revision was written),
never imported from live code. ``CREATE OR REPLACE`` keeps the triggers that call it, and a
database whose function is already this one (made by ``create_schema``) gets it again unchanged.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

from alembic import op

revision = '0008'
down_revision: str | None = '0007'
branch_labels = None
depends_on = None

POSTGRESQL_FUNCTION = """CREATE OR REPLACE FUNCTION gstack_resource_revision() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP IN ('UPDATE', 'DELETE') THEN DELETE FROM resource_revisions WHERE resource_pk = OLD.pk; END IF;
  IF TG_OP IN ('UPDATE', 'INSERT') THEN DELETE FROM resource_revisions WHERE resource_pk = NEW.pk; INSERT INTO resource_revisions (resource_pk) VALUES (NEW.pk); END IF;
  IF TG_OP = 'DELETE' THEN PERFORM nextval('resource_revisions_rev_seq'); END IF;
  RETURN NULL;
END $$"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(POSTGRESQL_FUNCTION)


def downgrade() -> None:
    raise NotImplementedError("gstack does not downgrade: restore the backup taken before the upgrade")
