"""PostgreSQL: ``ix_resource_collection_scope`` (collection, scope) gives way to
``ix_resource_collection_scope_name`` (collection, scope, name). SQLite keeps it as it is.

An insert's first read looks its names up (is the instance's name taken, its boot disk's) by
project, collection, scope and name, which ``uq_resource_name`` answers in one step. PostgreSQL's
planner chose ``ix_resource_collection_scope`` for them instead whenever its statistics were older
than the table's growth (a cloud that grew by a thousand instances within the minute before
autovacuum's next look, as a new deployment or a test run does): with the name a filter, each
lookup walked every instance of the zone, and the insert cost grew with the zone (1 ms of the
first read at 1,000 instances against 0.14 ms with fresh statistics). With the name in the index,
that one is one step to the row whatever the statistics say. (``ix_resource_created`` may still be
taken the same way, a walk of the zone by creation time, until autovacuum or an ``ANALYZE``
brings the statistics up: the operator's guide says so.) The reads of a collection across
projects the index was made for (0006) walk its first two columns as before.

SQLite chose well without statistics, and seeks a family's images through the two-column index
and the rowid it ends with, which a name between would prevent.

Revision ID: 0019
Revises: 0018
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0019'
down_revision: str | None = '0018'
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    indexes = {index["name"] for index in sa.inspect(op.get_bind()).get_indexes("resources")}
    if "ix_resource_collection_scope_name" not in indexes:
        op.create_index("ix_resource_collection_scope_name", "resources", ["collection", "scope", "name"], unique=False)
    if "ix_resource_collection_scope" in indexes:
        op.drop_index("ix_resource_collection_scope", table_name="resources")


def downgrade() -> None:
    raise NotImplementedError("gstack does not downgrade: restore the backup taken before the upgrade")
