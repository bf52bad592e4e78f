"""``ix_resource_last_host``: the host monitor's look at a host (its instances: the ones it runs and
the stopped ones it ran last) read every instance of the cloud, once per host and round, for want
of an index on ``last_host_id`` (at 54,000 instances on 11 hosts the monitor's first round took
some 30 s of CPU). Made only when missing: a database made by ``create_schema`` without a revision
(a development build) may hold it.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision: str | None = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    names = {ix["name"] for ix in sa.inspect(op.get_bind()).get_indexes("resources")}
    if "ix_resource_last_host" not in names:
        op.create_index("ix_resource_last_host", "resources", ["last_host_id"], unique=False)


def downgrade() -> None:
    raise NotImplementedError("gstack does not downgrade: restore the backup taken before the upgrade")
