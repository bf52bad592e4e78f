"""The simulator's knobs: what a simulated guest does, so tests and demos can drive the core."""

from __future__ import annotations

import click

from core.services.admin import AdminError, set_cpu_load, transaction
from gstack.admin import DATA_DIR, admin, factory, fail


@admin.group("simulator")
def simulator_group() -> None:
    """Knobs of simulated guests."""


@simulator_group.command("set-cpu")
@click.option("--project", required=True)
@click.option("--zone", required=True)
@click.option("--instance", required=True)
@click.argument("utilisation", type=float)
@DATA_DIR
def set_cpu(project: str, zone: str, instance: str, utilisation: float, data_dir: str | None) -> None:
    """Keep UTILISATION (0 to 1) of the instance's vCPUs busy from now on: its CPU time, and so the
    autoscaler's signal, follows. A running server sees it at its next autoscaler round."""
    with transaction(factory(data_dir)) as session:
        try:
            res = set_cpu_load(session, project, zone, instance, utilisation)
        except AdminError as e:
            fail(str(e))
        click.echo(f"{instance}: {utilisation:g} of {max(1, res.vcpus)} vCPU(s) busy")
