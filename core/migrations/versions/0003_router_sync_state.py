"""Router sync state: router_guests and router_sync_states.

Router syncs became incremental (one instance's change renders and pushes only that instance's
files): ``router_guests`` remembers, per router and instance, the digest of the files last pushed
and the instance's DNS domain, so a deleted instance's files can be emptied and the domains read
with one index seek each; ``router_sync_states`` remembers when a router last had a full pass and
a digest of the network settings its instance files depend on.

Like 0002 it makes only what is missing: a database made by ``create_schema`` without a revision
(a development build) may hold the tables already.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision: str | None = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    tables = set(sa.inspect(op.get_bind()).get_table_names())
    if "router_guests" not in tables:
        _router_guests()
    if "router_sync_states" not in tables:
        op.create_table('router_sync_states',
                        sa.Column('vm_uid', sa.BigInteger(), nullable=False),
                        sa.Column('context', sa.String(length=64), nullable=False),
                        sa.Column('full_at', sa.Float(), nullable=False),
                        sa.PrimaryKeyConstraint('vm_uid'))


def _router_guests() -> None:
    op.create_table('router_guests',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('vm_uid', sa.BigInteger(), nullable=False),
    sa.Column('instance_uid', sa.BigInteger(), nullable=False),
    sa.Column('domain', sa.String(length=200), nullable=False),
    sa.Column('checksum', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('vm_uid', 'instance_uid', name='uq_router_guest')
    )
    op.create_index('ix_router_guest_domain', 'router_guests', ['vm_uid', 'domain'], unique=False)


def downgrade() -> None:
    raise NotImplementedError("gstack does not downgrade: restore the backup taken before the upgrade")
