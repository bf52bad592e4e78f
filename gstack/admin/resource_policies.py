"""``gstack admin resource-policies run``: one scheduler round now, or as if it were a given time.

The serving process runs a round every ``GSTACK_POLICY_CHECK_INTERVAL`` seconds at the wall clock.
``--at`` runs the round for an instant of the operator's choosing: to take a slot the server missed
while it was down, or to run days of schedules in seconds (the tests). A round at a time already
handled does nothing more: each disk and instance remembers when it was last acted on.
"""

from __future__ import annotations

import time

import click

from core.services.resource_policies import timing
from core.services.resource_policies.scheduler import run_round
from gstack.admin import DATA_DIR, admin, factory, fail


@admin.group("resource-policies")
def policies_group() -> None:
    """Resource policies: run the snapshot and instance schedules."""


@policies_group.command("run")
@click.option("--at", "at", default=None, help="RFC 3339 time to run the round as (default: now).")
@DATA_DIR
def run(at: str | None, data_dir: str | None) -> None:
    """Run every schedule due at --at (or now); print what was done."""
    if at is None:
        now = time.time()
    else:
        try:
            now = timing.parse_rfc3339(at)
        except ValueError:
            fail(f"--at wants an RFC 3339 time with its offset (2026-01-02T04:00:00Z), not {at}")
    for line in run_round(factory(data_dir), now):
        click.echo(line)
