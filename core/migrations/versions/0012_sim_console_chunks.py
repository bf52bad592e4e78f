"""``sim_console_chunks``: the simulator's serial output in pieces. A domain's console was one text
column rewritten whole on every append (a router's gets a line per configuration push), so once it
reached its 1 MB a push cost ~1.4 ms more CPU than on a new router, and every push wrote 1 MB to the
database. A console held before this revision becomes its domain's first piece at its next append.
Made only when missing: a database made by ``create_schema`` without a revision (a development
build) may hold it.

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0012'
down_revision: str | None = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    if "sim_console_chunks" in set(sa.inspect(op.get_bind()).get_table_names()):
        return
    op.create_table('sim_console_chunks',
                    sa.Column('instance_uid', sa.BigInteger(), autoincrement=False, nullable=False),
                    sa.Column('seq', sa.Integer(), autoincrement=False, nullable=False),
                    sa.Column('data', sa.Text(), nullable=False),
                    sa.Column('size', sa.Integer(), nullable=False),
                    sa.PrimaryKeyConstraint('instance_uid', 'seq'))


def downgrade() -> None:
    raise NotImplementedError("gstack does not downgrade: restore the backup taken before the upgrade")
