"""The baseline: the schema of release 5b7c533, the last one made without migrations.

Frozen here (tables, indexes, and the triggers that keep ``resource_usage``), never imported from
live code: this revision must make that release's schema whatever the models say later. A
database that release made gets this revision stamped after :func:`core.migrations.legacy_gaps`
found its tables, columns, indexes and triggers.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision: str | None = None
branch_labels = None
depends_on = None

# The release's usage triggers (core/usage.py at 5b7c533), one statement each.
SQLITE_TRIGGERS = [
    """CREATE TRIGGER resource_usage_insert AFTER INSERT ON resources BEGIN INSERT INTO resource_usage (project, region, collection, subtype, count, cpus, size_gb) SELECT NEW.project, COALESCE(NEW.region, ''), NEW.collection, NEW.subtype, 1, (CASE WHEN NEW.status <> 'TERMINATED' THEN NEW.vcpus ELSE 0 END), NEW.size_gb WHERE NEW.collection IN ('instances', 'disks') ON CONFLICT (project, region, collection, subtype) DO UPDATE SET count = resource_usage.count + excluded.count, cpus = resource_usage.cpus + excluded.cpus, size_gb = resource_usage.size_gb + excluded.size_gb; END""",
    """CREATE TRIGGER resource_usage_delete AFTER DELETE ON resources BEGIN INSERT INTO resource_usage (project, region, collection, subtype, count, cpus, size_gb) SELECT OLD.project, COALESCE(OLD.region, ''), OLD.collection, OLD.subtype, -1, -(CASE WHEN OLD.status <> 'TERMINATED' THEN OLD.vcpus ELSE 0 END), -OLD.size_gb WHERE OLD.collection IN ('instances', 'disks') ON CONFLICT (project, region, collection, subtype) DO UPDATE SET count = resource_usage.count + excluded.count, cpus = resource_usage.cpus + excluded.cpus, size_gb = resource_usage.size_gb + excluded.size_gb; END""",
    """CREATE TRIGGER resource_usage_update AFTER UPDATE ON resources WHEN OLD.project IS NOT NEW.project OR OLD.region IS NOT NEW.region OR OLD.collection IS NOT NEW.collection OR OLD.subtype IS NOT NEW.subtype OR OLD.vcpus IS NOT NEW.vcpus OR OLD.size_gb IS NOT NEW.size_gb OR (OLD.status = 'TERMINATED') IS NOT (NEW.status = 'TERMINATED') BEGIN INSERT INTO resource_usage (project, region, collection, subtype, count, cpus, size_gb) SELECT OLD.project, COALESCE(OLD.region, ''), OLD.collection, OLD.subtype, -1, -(CASE WHEN OLD.status <> 'TERMINATED' THEN OLD.vcpus ELSE 0 END), -OLD.size_gb WHERE OLD.collection IN ('instances', 'disks') ON CONFLICT (project, region, collection, subtype) DO UPDATE SET count = resource_usage.count + excluded.count, cpus = resource_usage.cpus + excluded.cpus, size_gb = resource_usage.size_gb + excluded.size_gb; INSERT INTO resource_usage (project, region, collection, subtype, count, cpus, size_gb) SELECT NEW.project, COALESCE(NEW.region, ''), NEW.collection, NEW.subtype, 1, (CASE WHEN NEW.status <> 'TERMINATED' THEN NEW.vcpus ELSE 0 END), NEW.size_gb WHERE NEW.collection IN ('instances', 'disks') ON CONFLICT (project, region, collection, subtype) DO UPDATE SET count = resource_usage.count + excluded.count, cpus = resource_usage.cpus + excluded.cpus, size_gb = resource_usage.size_gb + excluded.size_gb; END""",
]
POSTGRESQL_TRIGGERS = [
    """CREATE OR REPLACE FUNCTION gstack_resource_usage() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'UPDATE' AND NOT (OLD.project IS DISTINCT FROM NEW.project OR OLD.region IS DISTINCT FROM NEW.region OR OLD.collection IS DISTINCT FROM NEW.collection OR OLD.subtype IS DISTINCT FROM NEW.subtype OR OLD.vcpus IS DISTINCT FROM NEW.vcpus OR OLD.size_gb IS DISTINCT FROM NEW.size_gb OR (OLD.status = 'TERMINATED') IS DISTINCT FROM (NEW.status = 'TERMINATED')) THEN
    RETURN NULL;
  END IF;
  IF TG_OP IN ('UPDATE', 'DELETE') THEN INSERT INTO resource_usage (project, region, collection, subtype, count, cpus, size_gb) SELECT OLD.project, COALESCE(OLD.region, ''), OLD.collection, OLD.subtype, -1, -(CASE WHEN OLD.status <> 'TERMINATED' THEN OLD.vcpus ELSE 0 END), -OLD.size_gb WHERE OLD.collection IN ('instances', 'disks') ON CONFLICT (project, region, collection, subtype) DO UPDATE SET count = resource_usage.count + excluded.count, cpus = resource_usage.cpus + excluded.cpus, size_gb = resource_usage.size_gb + excluded.size_gb; END IF;
  IF TG_OP IN ('UPDATE', 'INSERT') THEN INSERT INTO resource_usage (project, region, collection, subtype, count, cpus, size_gb) SELECT NEW.project, COALESCE(NEW.region, ''), NEW.collection, NEW.subtype, 1, (CASE WHEN NEW.status <> 'TERMINATED' THEN NEW.vcpus ELSE 0 END), NEW.size_gb WHERE NEW.collection IN ('instances', 'disks') ON CONFLICT (project, region, collection, subtype) DO UPDATE SET count = resource_usage.count + excluded.count, cpus = resource_usage.cpus + excluded.cpus, size_gb = resource_usage.size_gb + excluded.size_gb; END IF;
  RETURN NULL;
END $$""",
    """CREATE TRIGGER resource_usage AFTER INSERT OR UPDATE OR DELETE ON resources FOR EACH ROW EXECUTE FUNCTION gstack_resource_usage()""",
]
# What the release made, for the check of a database it made before it is stamped here.
TABLES = (
    "access_tokens",
    "authorization_codes",
    "browser_sessions",
    "clusters",
    "console_ticket_uses",
    "device_authorizations",
    "hosts",
    "instance_group_members",
    "ip_allocations",
    "memberships",
    "oauth_clients",
    "operations",
    "pods",
    "principals",
    "projects",
    "refresh_tokens",
    "regions",
    "resource_usage",
    "resources",
    "secondary_objects",
    "service_account_keys",
    "signing_keys",
    "sim_cpu_loads",
    "sim_domains",
    "sim_serving",
    "sim_vm_files",
    "storage_pools",
    "system_settings",
    "system_vms",
    "used_assertions",
    "zones",
)


def upgrade() -> None:
    op.create_table(
        "console_ticket_uses",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("expires", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("digest"),
    )
    op.create_index(op.f("ix_console_ticket_uses_expires"), "console_ticket_uses", ["expires"], unique=False)
    op.create_table(
        "instance_group_members",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("group_uid", sa.BigInteger(), nullable=False),
        sa.Column("instance_uid", sa.BigInteger(), nullable=False),
        sa.Column("added", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("group_uid", "instance_uid", name="uq_instance_group_member"),
    )
    op.create_index(
        op.f("ix_instance_group_members_group_uid"), "instance_group_members", ["group_uid"], unique=False
    )
    op.create_index(
        op.f("ix_instance_group_members_instance_uid"),
        "instance_group_members",
        ["instance_uid"],
        unique=False,
    )
    op.create_table(
        "ip_allocations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("pool", sa.String(length=120), nullable=False),
        sa.Column("address", sa.BigInteger(), nullable=False),
        sa.Column("owner_uid", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("pool", "address", name="uq_ip_allocation"),
    )
    op.create_index(op.f("ix_ip_allocations_owner_uid"), "ip_allocations", ["owner_uid"], unique=False)
    op.create_table(
        "oauth_clients",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("client_id", sa.String(length=255), nullable=False),
        sa.Column("secret_hash", sa.String(length=64), nullable=True),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("redirect_uris", sa.Text(), nullable=False),
        sa.Column("created", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("client_id"),
    )
    op.create_table(
        "operations",
        sa.Column("pk", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("uid", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.String(length=80), nullable=False),
        sa.Column("project", sa.String(length=100), nullable=False),
        sa.Column("scope", sa.String(length=80), nullable=False),
        sa.Column("operation_type", sa.String(length=64), nullable=False),
        sa.Column("target_link", sa.String(length=400), nullable=False),
        sa.Column("target_id", sa.BigInteger(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("progress", sa.Integer(), nullable=False),
        sa.Column("status_message", sa.String(length=400), nullable=True),
        sa.Column("user", sa.String(length=255), nullable=False),
        sa.Column("client_operation_id", sa.String(length=64), nullable=True),
        sa.Column("insert_time", sa.Float(), nullable=False),
        sa.Column("start_time", sa.Float(), nullable=True),
        sa.Column("end_time", sa.Float(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("http_error_status", sa.Integer(), nullable=True),
        sa.Column("http_error_message", sa.String(length=64), nullable=True),
        sa.Column("warnings", sa.Text(), nullable=True),
        sa.Column("job", sa.String(length=64), nullable=False),
        sa.Column("params", sa.Text(), nullable=False),
        sa.Column("lease_owner", sa.String(length=64), nullable=True),
        sa.Column("lease_expiry", sa.Float(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("pk"),
        sa.UniqueConstraint("name"),
        sa.UniqueConstraint("project", "client_operation_id", name="uq_operation_request_id"),
        sa.UniqueConstraint("uid"),
    )
    op.create_index("ix_operation_claim", "operations", ["status", "lease_expiry"], unique=False)
    op.create_index("ix_operation_scope", "operations", ["project", "scope", "name"], unique=False)
    op.create_index("ix_operation_target", "operations", ["target_id", "status"], unique=False)
    op.create_table(
        "projects",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("number", sa.BigInteger(), nullable=False),
        sa.Column("created", sa.Float(), nullable=False),
        sa.Column("public", sa.Boolean(), nullable=False),
        sa.Column("common_metadata", sa.Text(), nullable=False),
        sa.Column("metadata_fingerprint", sa.String(length=16), nullable=False),
        sa.Column("quota_limits", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
        sa.UniqueConstraint("number"),
    )
    op.create_table(
        "regions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("uid", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.String(length=63), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
        sa.UniqueConstraint("uid"),
    )
    op.create_table(
        "resource_usage",
        sa.Column("project", sa.String(length=100), nullable=False),
        sa.Column("region", sa.String(length=63), nullable=False),
        sa.Column("collection", sa.String(length=40), nullable=False),
        sa.Column("subtype", sa.String(length=64), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("cpus", sa.Integer(), nullable=False),
        sa.Column("size_gb", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("project", "region", "collection", "subtype"),
    )
    op.create_table(
        "signing_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kid", sa.String(length=64), nullable=False),
        sa.Column("private_pem", sa.Text(), nullable=False),
        sa.Column("created", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("kid"),
    )
    op.create_table(
        "sim_cpu_loads",
        sa.Column("vm_uid", sa.BigInteger(), nullable=False),
        sa.Column("busy", sa.Float(), nullable=False),
        sa.Column("since", sa.Float(), nullable=False),
        sa.Column("used", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("vm_uid"),
    )
    op.create_table(
        "sim_serving",
        sa.Column("instance_uid", sa.BigInteger(), nullable=False),
        sa.Column("serving", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("instance_uid"),
    )
    op.create_table(
        "sim_vm_files",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("vm_uid", sa.BigInteger(), nullable=False),
        sa.Column("host_id", sa.Integer(), nullable=False),
        sa.Column("path", sa.String(length=255), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("checksum", sa.String(length=64), nullable=False),
        sa.Column("writes", sa.Integer(), nullable=False),
        sa.Column("written", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("vm_uid", "path", name="uq_sim_vm_file"),
    )
    op.create_index(op.f("ix_sim_vm_files_vm_uid"), "sim_vm_files", ["vm_uid"], unique=False)
    op.create_table(
        "system_settings",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_table(
        "used_assertions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("expires", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("digest"),
    )
    op.create_index(op.f("ix_used_assertions_expires"), "used_assertions", ["expires"], unique=False)
    op.create_table(
        "principals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("email", sa.String(length=255), nullable=False),
        sa.Column("display_name", sa.String(length=255), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=True),
        sa.Column("project_id", sa.Integer(), nullable=True),
        sa.Column("admin", sa.Boolean(), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("created", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("email"),
    )
    op.create_table(
        "zones",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("uid", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.String(length=63), nullable=False),
        sa.Column("region_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("systemvm_arch", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(["region_id"], ["regions.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
        sa.UniqueConstraint("uid"),
    )
    op.create_table(
        "authorization_codes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("client_id", sa.String(length=255), nullable=False),
        sa.Column("principal_id", sa.Integer(), nullable=False),
        sa.Column("redirect_uri", sa.Text(), nullable=False),
        sa.Column("scopes", sa.Text(), nullable=False),
        sa.Column("code_challenge", sa.String(length=128), nullable=True),
        sa.Column("code_challenge_method", sa.String(length=8), nullable=True),
        sa.Column("nonce", sa.String(length=255), nullable=True),
        sa.Column("offline", sa.Boolean(), nullable=False),
        sa.Column("used", sa.Boolean(), nullable=False),
        sa.Column("expires", sa.Float(), nullable=False),
        sa.Column("created", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["principal_id"], ["principals.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("code_hash"),
    )
    op.create_index(op.f("ix_authorization_codes_expires"), "authorization_codes", ["expires"], unique=False)
    op.create_index(
        op.f("ix_authorization_codes_principal_id"), "authorization_codes", ["principal_id"], unique=False
    )
    op.create_table(
        "browser_sessions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("principal_id", sa.Integer(), nullable=False),
        sa.Column("expires", sa.Float(), nullable=False),
        sa.Column("created", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["principal_id"], ["principals.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash"),
    )
    op.create_index(op.f("ix_browser_sessions_expires"), "browser_sessions", ["expires"], unique=False)
    op.create_index(
        op.f("ix_browser_sessions_principal_id"), "browser_sessions", ["principal_id"], unique=False
    )
    op.create_table(
        "device_authorizations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("device_code_hash", sa.String(length=64), nullable=False),
        sa.Column("user_code_hash", sa.String(length=64), nullable=False),
        sa.Column("client_id", sa.String(length=255), nullable=False),
        sa.Column("scopes", sa.Text(), nullable=False),
        sa.Column("principal_id", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("interval", sa.Integer(), nullable=False),
        sa.Column("last_poll", sa.Float(), nullable=False),
        sa.Column("expires", sa.Float(), nullable=False),
        sa.Column("created", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["principal_id"], ["principals.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("device_code_hash"),
        sa.UniqueConstraint("user_code_hash"),
    )
    op.create_index(
        op.f("ix_device_authorizations_expires"), "device_authorizations", ["expires"], unique=False
    )
    op.create_table(
        "memberships",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("principal_id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(["principal_id"], ["principals.id"]),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("project_id", "principal_id", name="uq_membership"),
    )
    op.create_index(op.f("ix_memberships_principal_id"), "memberships", ["principal_id"], unique=False)
    op.create_index(op.f("ix_memberships_project_id"), "memberships", ["project_id"], unique=False)
    op.create_table(
        "pods",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("zone_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=63), nullable=False),
        sa.Column("cidr", sa.String(length=43), nullable=False),
        sa.ForeignKeyConstraint(["zone_id"], ["zones.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "refresh_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("principal_id", sa.Integer(), nullable=False),
        sa.Column("client_id", sa.String(length=255), nullable=False),
        sa.Column("scopes", sa.Text(), nullable=False),
        sa.Column("grant", sa.String(length=64), nullable=True),
        sa.Column("revoked", sa.Boolean(), nullable=False),
        sa.Column("created", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["principal_id"], ["principals.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash"),
    )
    op.create_index(op.f("ix_refresh_tokens_grant"), "refresh_tokens", ["grant"], unique=False)
    op.create_index(op.f("ix_refresh_tokens_principal_id"), "refresh_tokens", ["principal_id"], unique=False)
    op.create_table(
        "secondary_objects",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("zone_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("owner_uid", sa.BigInteger(), nullable=False),
        sa.Column("source", sa.String(length=400), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("checksum", sa.String(length=64), nullable=False),
        sa.Column("copied_by", sa.String(length=63), nullable=False),
        sa.Column("created", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["zone_id"], ["zones.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("zone_id", "owner_uid", name="uq_secondary_object"),
    )
    op.create_index(op.f("ix_secondary_objects_owner_uid"), "secondary_objects", ["owner_uid"], unique=False)
    op.create_index(op.f("ix_secondary_objects_zone_id"), "secondary_objects", ["zone_id"], unique=False)
    op.create_table(
        "service_account_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key_id", sa.String(length=64), nullable=False),
        sa.Column("principal_id", sa.Integer(), nullable=False),
        sa.Column("public_pem", sa.Text(), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("created", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["principal_id"], ["principals.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key_id"),
    )
    op.create_index(
        op.f("ix_service_account_keys_principal_id"), "service_account_keys", ["principal_id"], unique=False
    )
    op.create_table(
        "system_vms",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("uid", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.String(length=63), nullable=False),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("role_key", sa.String(length=200), nullable=False),
        sa.Column("zone_id", sa.Integer(), nullable=False),
        sa.Column("region", sa.String(length=63), nullable=False),
        sa.Column("network_uid", sa.BigInteger(), nullable=True),
        sa.Column("network_url", sa.String(length=400), nullable=True),
        sa.Column("project", sa.String(length=100), nullable=True),
        sa.Column("arch", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("public_ip", sa.String(length=45), nullable=True),
        sa.Column("conntrack_max", sa.Integer(), nullable=True),
        sa.Column("config_version", sa.Integer(), nullable=False),
        sa.Column("config_checksums", sa.Text(), nullable=False),
        sa.Column("pushed_version", sa.Integer(), nullable=False),
        sa.Column("pushed_checksums", sa.Text(), nullable=False),
        sa.Column("pushed_at", sa.Float(), nullable=True),
        sa.Column("last_error", sa.String(length=400), nullable=True),
        sa.Column("created", sa.Float(), nullable=False),
        sa.Column("updated", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["zone_id"], ["zones.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
        sa.UniqueConstraint("role_key"),
        sa.UniqueConstraint("uid"),
    )
    op.create_index("ix_system_vm_network", "system_vms", ["network_uid"], unique=False)
    op.create_index(op.f("ix_system_vms_zone_id"), "system_vms", ["zone_id"], unique=False)
    op.create_table(
        "access_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("principal_id", sa.Integer(), nullable=False),
        sa.Column("client_id", sa.String(length=255), nullable=False),
        sa.Column("scopes", sa.Text(), nullable=False),
        sa.Column("expires", sa.Float(), nullable=False),
        sa.Column("revoked", sa.Boolean(), nullable=False),
        sa.Column("created", sa.Float(), nullable=False),
        sa.Column("refresh_token_id", sa.Integer(), nullable=True),
        sa.Column("grant", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(["principal_id"], ["principals.id"]),
        sa.ForeignKeyConstraint(["refresh_token_id"], ["refresh_tokens.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash"),
    )
    op.create_index(op.f("ix_access_tokens_grant"), "access_tokens", ["grant"], unique=False)
    op.create_index(op.f("ix_access_tokens_principal_id"), "access_tokens", ["principal_id"], unique=False)
    op.create_index(
        op.f("ix_access_tokens_refresh_token_id"), "access_tokens", ["refresh_token_id"], unique=False
    )
    op.create_table(
        "clusters",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("pod_id", sa.Integer(), nullable=False),
        sa.Column("zone_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=63), nullable=False),
        sa.Column("hypervisor", sa.String(length=32), nullable=False),
        sa.Column("cpu_overprovisioning", sa.Float(), nullable=False),
        sa.Column("memory_overprovisioning", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["pod_id"], ["pods.id"]),
        sa.ForeignKeyConstraint(["zone_id"], ["zones.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_clusters_zone_id"), "clusters", ["zone_id"], unique=False)
    op.create_table(
        "hosts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("cluster_id", sa.Integer(), nullable=False),
        sa.Column("zone_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("uri", sa.String(length=255), nullable=False),
        sa.Column("cpus", sa.Integer(), nullable=False),
        sa.Column("memory_mb", sa.Integer(), nullable=False),
        sa.Column("cpu_platform", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("fail_next_spawns", sa.Integer(), nullable=False),
        sa.Column("options", sa.Text(), nullable=True),
        sa.Column("monitor_owner", sa.String(length=64), nullable=True),
        sa.Column("monitor_expiry", sa.Float(), nullable=True),
        sa.Column("failures", sa.Integer(), nullable=True),
        sa.Column("last_seen", sa.Float(), nullable=True),
        sa.Column("last_error", sa.String(length=255), nullable=True),
        sa.ForeignKeyConstraint(["cluster_id"], ["clusters.id"]),
        sa.ForeignKeyConstraint(["zone_id"], ["zones.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    op.create_index(op.f("ix_hosts_cluster_id"), "hosts", ["cluster_id"], unique=False)
    op.create_index(op.f("ix_hosts_zone_id"), "hosts", ["zone_id"], unique=False)
    op.create_table(
        "storage_pools",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("zone_id", sa.Integer(), nullable=False),
        sa.Column("cluster_id", sa.Integer(), nullable=True),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("capacity_gb", sa.BigInteger(), nullable=False),
        sa.Column("overprovisioning", sa.Float(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(["cluster_id"], ["clusters.id"]),
        sa.ForeignKeyConstraint(["zone_id"], ["zones.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    op.create_index(op.f("ix_storage_pools_zone_id"), "storage_pools", ["zone_id"], unique=False)
    op.create_table(
        "resources",
        sa.Column("pk", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("uid", sa.BigInteger(), nullable=False),
        sa.Column("project", sa.String(length=100), nullable=False),
        sa.Column("collection", sa.String(length=40), nullable=False),
        sa.Column("scope", sa.String(length=80), nullable=False),
        sa.Column("region", sa.String(length=63), nullable=True),
        sa.Column("name", sa.String(length=63), nullable=False),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("subtype", sa.String(length=64), nullable=False),
        sa.Column("created", sa.Float(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("host_id", sa.Integer(), nullable=True),
        sa.Column("pool_id", sa.Integer(), nullable=True),
        sa.Column("last_host_id", sa.Integer(), nullable=True),
        sa.Column("vcpus", sa.Integer(), nullable=False),
        sa.Column("memory_mb", sa.Integer(), nullable=False),
        sa.Column("size_gb", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["host_id"], ["hosts.id"]),
        sa.ForeignKeyConstraint(["last_host_id"], ["hosts.id"]),
        sa.ForeignKeyConstraint(["pool_id"], ["storage_pools.id"]),
        sa.PrimaryKeyConstraint("pk"),
        sa.UniqueConstraint("project", "collection", "scope", "name", name="uq_resource_name"),
        sa.UniqueConstraint("uid"),
    )
    op.create_index("ix_resource_host_usage", "resources", ["host_id", "vcpus", "memory_mb"], unique=False)
    op.create_index("ix_resource_pool_usage", "resources", ["pool_id", "size_gb"], unique=False)
    op.create_table(
        "sim_domains",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("instance_uid", sa.BigInteger(), nullable=False),
        sa.Column("host_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("console", sa.Text(), nullable=False),
        sa.Column("console_dropped", sa.BigInteger(), nullable=False),
        sa.Column("boots", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["host_id"], ["hosts.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("instance_uid"),
    )
    op.create_index(op.f("ix_sim_domains_host_id"), "sim_domains", ["host_id"], unique=False)
    triggers = POSTGRESQL_TRIGGERS if op.get_bind().dialect.name == "postgresql" else SQLITE_TRIGGERS
    for statement in triggers:
        op.get_bind().exec_driver_sql(statement)


def downgrade() -> None:
    raise NotImplementedError("the baseline is not undone: drop the database instead")
