"""The index of a project's unfinished Operations.

The backpressure bound (core.services.calls._within_bound) counts, on every write that queues
an Operation, the project's Operations that are not DONE. Without an index on (project, status)
that count walks the project's whole Operation history, which grows without end; with it the
count reads at most ``max_queued + 1`` index entries.

Like 0002 and 0003 it makes only what is missing: a database made by ``create_schema`` without
a revision (a development build) may hold the index already.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision: str | None = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    indexes = {index["name"] for index in sa.inspect(op.get_bind()).get_indexes("operations")}
    if "ix_operation_project_status" not in indexes:
        op.create_index('ix_operation_project_status', 'operations', ['project', 'status'], unique=False)


def downgrade() -> None:
    raise NotImplementedError("gstack does not downgrade: restore the backup taken before the upgrade")
