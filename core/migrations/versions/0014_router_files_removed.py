"""A removed instance's files leave its router (core.systemvms.guests): the simulator's routers drop
the empty files earlier builds kept for every instance a router had served, one per directory
(dnsmasq's hosts and DHCP hosts, nftables' includes). Data only; the schema is unchanged.

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

from alembic import op

revision = '0014'
down_revision: str | None = '0013'
branch_labels = None
depends_on = None

# (no LIKE: a percent sign in a statement run without parameters reads as one to psycopg)
DIRECTORIES = ("/etc/gstack/dhcp-hosts/", "/etc/gstack/dns-hosts/", "/etc/gstack/nft.d/")


def upgrade() -> None:
    for directory in DIRECTORIES:
        op.get_bind().exec_driver_sql(
            f"DELETE FROM sim_vm_files WHERE content = '' AND substr(path, 1, {len(directory)}) = '{directory}'")


def downgrade() -> None:
    raise NotImplementedError("gstack does not downgrade: restore the backup taken before the upgrade")
