"""Projects and their quotas."""

from __future__ import annotations

import click
import orjson
from sqlalchemy import select

from core.db import write_session
from core.models import Project
from core.services.seed import ensure_project
from gstack.admin import DATA_DIR, admin, factory, fail


@admin.group("project")
def project_group() -> None:
    """Projects and their quotas."""


@project_group.command("create")
@click.argument("name")
@DATA_DIR
def project_create(name: str, data_dir: str | None) -> None:
    """Create a project with its default network."""
    from core.resources.store import validate_name

    try:
        validate_name(name)
    except Exception as e:  # noqa: BLE001
        fail(str(e))
    with write_session(factory(data_dir)) as session:
        if session.scalar(select(Project).where(Project.name == name)) is not None:
            fail(f"project {name} already exists")
        p = ensure_project(session, name)
        click.echo(f"created project {p.name} (number {p.number})")


@project_group.command("set-quota")
@click.option("--project", required=True)
@click.option("--metric", required=True, help="e.g. CPUS, INSTANCES, DISKS_TOTAL_GB, SNAPSHOTS")
@click.option("--limit", required=True, type=float)
@click.option("--region", default=None, help="A region name, or * for every region; omit for a global metric.")
@DATA_DIR
def project_set_quota(project: str, metric: str, limit: float, region: str | None, data_dir: str | None) -> None:
    """Change a project's quota limit."""
    from core.catalog import DEFAULT_GLOBAL_QUOTAS, DEFAULT_REGION_QUOTAS

    known = DEFAULT_REGION_QUOTAS if region else DEFAULT_GLOBAL_QUOTAS
    if metric not in known:
        fail(f"unknown {'regional' if region else 'global'} metric {metric}; known: {', '.join(sorted(known))}")
    with write_session(factory(data_dir)) as session:
        p = session.scalar(select(Project).where(Project.name == project))
        if p is None:
            fail(f"project {project} does not exist")
        limits = orjson.loads(p.quota_limits or "{}")
        if region:
            limits.setdefault("regions", {}).setdefault(region, {})[metric] = limit
        else:
            limits.setdefault("global", {})[metric] = limit
        p.quota_limits = orjson.dumps(limits).decode()
    click.echo(f"{project}: {metric} = {limit:g}" + (f" in {region}" if region else " globally"))
