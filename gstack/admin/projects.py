"""Projects and their quotas."""

from __future__ import annotations

import click

from core.resources.store import validate_name
from core.services.admin import AdminError, check_quota_metric, create_project, set_quota, transaction
from gstack.admin import DATA_DIR, admin, factory, fail


@admin.group("project")
def project_group() -> None:
    """Projects and their quotas."""


@project_group.command("create")
@click.argument("name")
@DATA_DIR
def project_create(name: str, data_dir: str | None) -> None:
    """Create a project with its default network."""
    try:
        validate_name(name)
    except Exception as e:  # noqa: BLE001
        fail(str(e))
    with transaction(factory(data_dir)) as session:
        try:
            p = create_project(session, name)
        except AdminError as e:
            fail(str(e))
        click.echo(f"created project {p.name} (number {p.number})")


@project_group.command("set-quota")
@click.option("--project", required=True)
@click.option("--metric", required=True, help="e.g. CPUS, INSTANCES, DISKS_TOTAL_GB, SNAPSHOTS")
@click.option("--limit", required=True, type=float)
@click.option("--region", default=None, help="A region name, or * for every region; omit for a global metric.")
@DATA_DIR
def project_set_quota(project: str, metric: str, limit: float, region: str | None, data_dir: str | None) -> None:
    """Change a project's quota limit."""
    try:
        check_quota_metric(metric, region is not None)
        with transaction(factory(data_dir)) as session:
            set_quota(session, project, metric, limit, region)
    except AdminError as e:
        fail(str(e))
    click.echo(f"{project}: {metric} = {limit:g}" + (f" in {region}" if region else " globally"))
