"""``gstack admin``: operator tasks that work on the database directly (no server needed)."""

from __future__ import annotations

import sys

import click
from sqlalchemy.orm import sessionmaker

from core.db import create_schema, make_engine, write_session
from core.services.seed import seed
from gstack.config import Settings

DATA_DIR = click.option("--data-dir", default=None, help="The server's data directory (or GSTACK_DATA_DIR).")


def settings(data_dir: str | None) -> Settings:
    return Settings.from_env(data_dir=data_dir)


def factory(data_dir: str | None) -> sessionmaker:
    """Sessions on the configured database, with its schema and the demo cloud in place."""
    engine = make_engine(settings(data_dir).database_url)
    create_schema(engine)
    made = sessionmaker(bind=engine, expire_on_commit=False)
    with write_session(made) as session:
        seed(session)
    return made


def fail(message: str) -> None:
    """Report a refused command on stderr and exit non-zero."""
    click.echo(f"ERROR: {message}", err=True)
    sys.exit(1)


@click.group()
def admin() -> None:
    """Operator tasks: credentials, projects, quotas, hosts."""


def _register() -> None:
    from gstack.admin import credentials, hosts, identities, projects, systemvms  # noqa: F401  (commands attach to `admin`)


_register()
