"""A revision number for every resource row, changed by every write of it: what lets a finished
list page be served again while, and only while, the rows it was made of are as they were.

Why: a 500-item page is ~1 MB of bodies read, copied and joined on every request; a client that
polls a list mostly gets the same bytes again. A cache of finished pages (gstack/gce/listing_cache.py)
is correct only if it can tell, for the rows a page would hold now, whether any changed, in every
process that serves the database (gunicorn runs several): so the database keeps the revisions,
by triggers in the transaction that writes the row, whatever code path writes it.

``rev`` comes from a counter that never hands out a number twice (SQLite ``AUTOINCREMENT``, a
PostgreSQL sequence): a row's (pk, rev) names one version of its body forever, across deletes
and a reused pk. The sequence takes no lock a transaction holds, and a revision row is written
only by the writer of its resource row, which holds that row's lock already: no writer waits for
another one it did not wait for before, so no new deadlock and no error for a concurrent client.

On SQLite the counter itself (``sqlite_sequence``, transactional, and moved by deletes too) is a
generation of the whole table: while it reads as it did, no page changed, which a read of one
small row tells. PostgreSQL's sequence is not transactional (numbers are taken in one order and
committed in another), so its last value is a generation only with a proof that every writer
that took a number up to it has ended (:func:`core.resources.queries.generation_settled`); a
delete takes a number there too. Otherwise pages are checked row by row.

The triggers are made with the tables (``after_create`` of the metadata: ``create_schema`` makes a
fresh database with ``create_all``); migration 0007 makes them on an older database.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, Connection, Integer, event
from sqlalchemy.orm import Mapped, mapped_column

from core.models.base import Base


class ResourceRevision(Base):
    """The current revision of one resource row (written only by triggers, see the module)."""

    __tablename__ = "resource_revisions"
    __table_args__ = {"sqlite_autoincrement": True}
    rev: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
                                     autoincrement=True)
    resource_pk: Mapped[int] = mapped_column(Integer, unique=True)


# Only the columns a list page is made of (its membership, order and bytes) move the revision: an
# UPDATE of the capacity a VM holds or of its host changes no page.
_PAGE_COLUMNS = "body, name, created, project, collection, scope"
_NEW_REVISION = ("DELETE FROM resource_revisions WHERE resource_pk = NEW.pk; "
                 "INSERT INTO resource_revisions (resource_pk) VALUES (NEW.pk)")
_DROP_REVISION = "DELETE FROM resource_revisions WHERE resource_pk = OLD.pk"
# The sequence behind ``rev`` (BIGSERIAL's name for it): its last value is PostgreSQL's generation.
PG_SEQUENCE = "resource_revisions_rev_seq"
# SQLite: a delete takes a number from the counter too, so that the counter (GENERATION) moves with
# every write of a page column anywhere, and "unchanged" answers for every page at once.
_SQLITE_BUMP = "UPDATE sqlite_sequence SET seq = seq + 1 WHERE name = 'resource_revisions'"
SQLITE = [
    f"CREATE TRIGGER resource_revision_insert AFTER INSERT ON resources BEGIN {_NEW_REVISION}; END",
    f"CREATE TRIGGER resource_revision_update AFTER UPDATE OF {_PAGE_COLUMNS} ON resources "
    f"BEGIN {_DROP_REVISION}; {_NEW_REVISION}; END",
    f"CREATE TRIGGER resource_revision_delete AFTER DELETE ON resources BEGIN {_DROP_REVISION}; {_SQLITE_BUMP}; END",
]
POSTGRESQL = [
    f"""CREATE OR REPLACE FUNCTION gstack_resource_revision() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP IN ('UPDATE', 'DELETE') THEN {_DROP_REVISION}; END IF;
  IF TG_OP IN ('UPDATE', 'INSERT') THEN {_NEW_REVISION}; END IF;
  IF TG_OP = 'DELETE' THEN PERFORM nextval('{PG_SEQUENCE}'); END IF;
  RETURN NULL;
END $$""",
    "CREATE TRIGGER resource_revision AFTER INSERT OR DELETE ON resources FOR EACH ROW "
    "EXECUTE FUNCTION gstack_resource_revision()",
    f"CREATE TRIGGER resource_revision_update AFTER UPDATE OF {_PAGE_COLUMNS} ON resources FOR EACH ROW "
    "EXECUTE FUNCTION gstack_resource_revision()",
]
# The rows already there (a database older than the revisions) get one each.
BACKFILL = ["INSERT INTO resource_revisions (resource_pk) SELECT pk FROM resources ORDER BY pk"]


def installed(conn: Connection) -> bool:
    if conn.dialect.name == "postgresql":
        return conn.exec_driver_sql("SELECT 1 FROM pg_trigger WHERE tgname = 'resource_revision'").first() is not None
    return conn.exec_driver_sql(
        "SELECT 1 FROM sqlite_master WHERE type = 'trigger' AND name = 'resource_revision_insert'").first() is not None


def install(conn: Connection) -> None:
    """The triggers and the revisions of the rows already there, unless installed."""
    if not installed(conn):
        for stmt in (POSTGRESQL if conn.dialect.name == "postgresql" else SQLITE) + BACKFILL:
            conn.exec_driver_sql(stmt)


@event.listens_for(Base.metadata, "after_create")
def _after_create(_metadata: Any, conn: Connection, **_kw: Any) -> None:
    install(conn)
