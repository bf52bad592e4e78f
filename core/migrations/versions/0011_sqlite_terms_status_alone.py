"""SQLite: the filter terms' UPDATE trigger moves the status term alone when an UPDATE keeps the row's
place and name and changes none of the body's fields with terms but its status (a job's STAGING,
RUNNING, READY: most UPDATEs), as 0010 made PostgreSQL's function do. ``resource_terms_update``
deleted and derived again every term of the row (about 70 us a row on SQLite, twice per instance and
twice per disk an instances.insert makes); it now leaves those updates to ``resource_terms_status``,
which moves the status term (about 30 us). The terms kept are the same, so nothing is derived again.

Frozen here (the triggers as :mod:`core.terms` makes them when this revision was written), never
imported from live code.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

from alembic import op

revision = '0011'
down_revision: str | None = '0010'
branch_labels = None
depends_on = None

SQLITE_UPDATE = """CREATE TRIGGER resource_terms_update AFTER UPDATE ON resources WHEN (OLD.body IS NOT NEW.body OR OLD.name IS NOT NEW.name OR OLD.scope IS NOT NEW.scope) AND NOT (OLD.project IS NEW.project AND OLD.collection IS NEW.collection AND OLD.scope IS NEW.scope AND OLD.name IS NEW.name AND json_extract(OLD.body, '$.name', '$.zone', '$.region', '$.labels', '$.networkInterfaces') IS json_extract(NEW.body, '$.name', '$.zone', '$.region', '$.labels', '$.networkInterfaces')) BEGIN DELETE FROM resource_terms WHERE resource_pk = OLD.pk; INSERT OR IGNORE INTO resource_terms (resource_pk, project, collection, scope, name, field, value) SELECT NEW.pk, NEW.project, NEW.collection, NEW.scope, NEW.name, key, value FROM json_each(NEW.body) WHERE key IN ('name', 'status', 'zone', 'region') AND type = 'text' UNION ALL SELECT NEW.pk, NEW.project, NEW.collection, NEW.scope, NEW.name, 'labels.' || key, value FROM json_each(NEW.body, '$.labels') WHERE type = 'text' UNION ALL SELECT NEW.pk, NEW.project, NEW.collection, NEW.scope, NEW.name, 'networkInterfaces.networkIP', json_extract(value, '$.networkIP') FROM json_each(NEW.body, '$.networkInterfaces') WHERE json_type(value, '$.networkIP') = 'text' UNION ALL SELECT NEW.pk, NEW.project, NEW.collection, NEW.scope, NEW.name, 'nameword', value FROM json_each(CASE WHEN NEW.name GLOB '*[^A-Za-z0-9_-]*' THEN '["-"]' ELSE '["' || replace(NEW.name, '-', '","') || '"]' END) WHERE value <> ''; END"""

SQLITE_STATUS = """CREATE TRIGGER resource_terms_status AFTER UPDATE ON resources WHEN OLD.body IS NOT NEW.body AND OLD.project IS NEW.project AND OLD.collection IS NEW.collection AND OLD.scope IS NEW.scope AND OLD.name IS NEW.name AND json_extract(OLD.body, '$.name', '$.zone', '$.region', '$.labels', '$.networkInterfaces') IS json_extract(NEW.body, '$.name', '$.zone', '$.region', '$.labels', '$.networkInterfaces') BEGIN DELETE FROM resource_terms WHERE resource_pk = OLD.pk AND field = 'status'; INSERT OR IGNORE INTO resource_terms (resource_pk, project, collection, scope, name, field, value) SELECT NEW.pk, NEW.project, NEW.collection, NEW.scope, NEW.name, key, value FROM json_each(NEW.body) WHERE key = 'status' AND type = 'text'; END"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        # (a database made by create_schema without a revision, a development build, may hold both)
        op.execute("DROP TRIGGER IF EXISTS resource_terms_update")
        op.execute("DROP TRIGGER IF EXISTS resource_terms_status")
        op.execute(SQLITE_UPDATE)
        op.execute(SQLITE_STATUS)


def downgrade() -> None:
    raise NotImplementedError("gstack does not downgrade: restore the backup taken before the upgrade")
