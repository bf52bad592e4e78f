"""The simulator's health knob: make a RUNNING instance fail (or pass) its health checks."""

from __future__ import annotations

import click

from core.errors import NotFound
from core.resources.health import HEALTHY, UNHEALTHY
from core.services.admin import transaction
from core.services.instance_health import set_serving
from gstack.admin import DATA_DIR, admin, factory, fail


@admin.group("health")
def health_group() -> None:
    """What health checks find on simulated instances (targetPools.getHealth, autohealing)."""


@health_group.command("set")
@click.option("--project", required=True)
@click.option("--zone", required=True)
@click.argument("instance")
@click.argument("state", type=click.Choice([HEALTHY, UNHEALTHY]))
@DATA_DIR
def health_set(project: str, zone: str, instance: str, state: str, data_dir: str | None) -> None:
    """Make INSTANCE's guest answer its health checks (HEALTHY) or stop answering (UNHEALTHY)."""
    with transaction(factory(data_dir)) as session:
        try:
            set_serving(session, project, zone, instance, state == HEALTHY)
        except NotFound as e:
            fail(e.message)
    click.echo(f"{instance}: {state}")
