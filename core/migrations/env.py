"""Alembic's environment, run by :mod:`core.migrations` on a connection it opened (and locked):
no alembic.ini, no URL here. ``target_metadata`` serves autogenerate (scripts/new_migration.py)."""

from alembic import context

from core.models import Base

# Both databases roll DDL back with the transaction (SQLite too: gstack issues BEGIN itself).
context.configure(connection=context.config.attributes["connection"], target_metadata=Base.metadata,
                  transactional_ddl=True)
with context.begin_transaction():
    context.run_migrations()
