"""``gstack admin``: operator tasks that work on the database directly (no server needed)."""

from __future__ import annotations

import sys
from typing import NoReturn

import click

from core.migrations import SchemaNotCurrent
from core.services.admin import open_database
from gstack.config import Settings
from gstack.datadir import secure as secure_data_dir

DATA_DIR = click.option("--data-dir", default=None, help="The server's data directory (or GSTACK_DATA_DIR).")


def settings(data_dir: str | None) -> Settings:
    return Settings.from_env(data_dir=data_dir)


def factory(data_dir: str | None):
    """Sessions on the configured database, with its schema and the demo cloud in place.

    The engine's connections close when the command ends (its click context closes), not when the
    process does: a caller that runs commands in its own process (the test suite, hundreds of
    them) keeps no PostgreSQL connection or SQLite file open per command."""
    config = settings(data_dir)
    secure_data_dir(config.data_dir, config.database_url)
    try:
        made = open_database(config.database_url, config.db_pool_max)
    except SchemaNotCurrent as exc:
        fail(str(exc))
    context = click.get_current_context(silent=True)
    if context is not None:
        context.call_on_close(made.kw["bind"].dispose)
    return made


def fail(message: str) -> NoReturn:
    """Report a refused command on stderr and exit non-zero."""
    click.echo(f"ERROR: {message}", err=True)
    sys.exit(1)


@click.group()
def admin() -> None:
    """Operator tasks: credentials, projects, quotas, hosts, storage pools."""


def _register() -> None:
    from gstack.admin import (  # noqa: F401  (commands attach to `admin`)
        ca,
        credentials,
        health,
        hosts,
        identities,
        pools,
        projects,
        resource_policies,
        simulator,
        systemvms,
    )


_register()
