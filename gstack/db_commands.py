"""``gstack db``: the schema's migrations (:mod:`core.migrations`), run by the operator.

``gstack serve``, ``gstack worker`` and ``gstack admin`` refuse a database behind this build and
say to run ``gstack db upgrade``: an upgrade changes the data, so it waits for the operator's
backup instead of happening on a restart.
"""

from __future__ import annotations

import logging

import click

from core import migrations
from core.db import make_engine
from gstack.admin import DATA_DIR, fail, settings
from gstack.datadir import secure as secure_data_dir


@click.group("db")
def db() -> None:
    """The database schema: upgrade, current revision, history."""


def _engine(data_dir: str | None):
    config = settings(data_dir)
    secure_data_dir(config.data_dir, config.database_url)
    return make_engine(config.database_url)


@db.command()
@DATA_DIR
@click.option("--revision", default="head", show_default=True, help="The revision to upgrade to.")
def upgrade(data_dir: str | None, revision: str) -> None:
    """Bring the database to this build's schema (back it up first)."""
    logging.getLogger("alembic").setLevel(logging.INFO)  # each revision as it runs
    engine = _engine(data_dir)
    try:
        before = migrations.upgrade(engine, revision)
        after = migrations.current(engine)
    except migrations.SchemaNotCurrent as exc:
        fail(str(exc))
    finally:
        engine.dispose()
    click.echo(f"database at revision {after} (was {before or 'none'})")


@db.command()
@DATA_DIR
def current(data_dir: str | None) -> None:
    """Print the database's revision and this build's."""
    engine = _engine(data_dir)
    try:
        revision = migrations.current(engine)
    finally:
        engine.dispose()
    head = migrations.head()
    state = "up to date" if revision == head else "behind: run gstack db upgrade"
    click.echo(f"{revision or 'none'} (head {head}, {state})")


@db.command()
def history() -> None:
    """List the revisions, oldest first."""
    for revision, summary in migrations.history():
        click.echo(f"{revision}  {summary}")
