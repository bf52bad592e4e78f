"""Loading and saving resources (rows holding canonical GCE JSON)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, cast

import orjson
from sqlalchemy import Engine, bindparam, select
from sqlalchemy.orm import Session

from core.db import flushed_connection, insert_all_persistent, insert_persistent
from core.errors import NAME_REGEX, AlreadyExists, Invalid, NotFound, Required
from core.ids import new_uid, rfc3339
from core.links import path_of, url_of
from core.models import Resource
from core.prepared import Prepared

# A resource's canonical GCE JSON as stored and returned: its shape is the API's, checked by the
# validators of each use case, not by the type system.
Body = dict[str, Any]

_NAME = re.compile(NAME_REGEX + r"\Z")
_ID = re.compile(r"[1-9][0-9]{0,19}\Z")


def validate_name(name: object, field: str = "resource.name") -> str:
    if name is None:  # JSON null is proto3's "unset": Google says the field is missing, not 'None'
        raise Required(field)
    if not isinstance(name, str) or not _NAME.match(name):
        raise Invalid(field, name, f"Must be a match of regex '{NAME_REGEX}'")
    return name


def body_of(res: Resource) -> Body:
    body: Body = orjson.loads(res.body)
    return body


def save(res: Resource, body: Body) -> None:
    res.body = orjson.dumps(body).decode()


# Built once: building a statement costs more Python than running it (each ``==`` makes clause
# objects, and the cache key is computed anew), and these run several times in every request.
_IN_SCOPE = (Resource.project == bindparam("project"), Resource.collection == bindparam("collection"),
             Resource.scope == bindparam("scope"))
BY_NAME = select(Resource).where(*_IN_SCOPE, Resource.name == bindparam("name"))
BY_NAME_LOCKED = BY_NAME.with_for_update()
BY_ID = select(Resource).where(*_IN_SCOPE, Resource.uid == bindparam("uid"))
BY_ID_LOCKED = BY_ID.with_for_update()


def find(session: Session, project: str, collection: str, scope: str, name: str,
         *, missing_path: str | None = None, lock: bool = False) -> Resource:
    """The resource by name or numeric id; NotFound (with the relative path) otherwise.

    ``lock``: row-locked until the transaction ends (PostgreSQL's ``FOR UPDATE``)."""
    where = {"project": project, "collection": collection, "scope": scope}
    res = session.scalar(BY_NAME_LOCKED if lock else BY_NAME, {**where, "name": name})
    if res is None and _ID.match(name) and int(name) < 2**63:
        res = session.scalar(BY_ID_LOCKED if lock else BY_ID, {**where, "uid": int(name)})
    if res is None:
        raise NotFound(missing_path or path_of(project, scope, collection, name))
    return res


_BODY_BY_NAME = Prepared(select(Resource.body).where(*_IN_SCOPE, Resource.name == bindparam("name")))


def find_body(session: Session, project: str, collection: str, scope: str, name: str) -> str:
    """The stored body only (the GET path): one prepared statement outside the ORM; it reads what is
    committed, so it is for read-only requests."""
    body = committed_body(session.get_bind().engine, project, collection, scope, name)
    if body is None:
        return find(session, project, collection, scope, name).body  # by numeric id, or NotFound
    return body


def committed_body(engine: Engine, project: str, collection: str, scope: str, name: str) -> str | None:
    """The committed body of the resource named ``name`` (not by numeric id), None when there is
    none: :func:`find_body` for a caller that holds no Session (the HTTP layer's lighter GET path)."""
    body = _BODY_BY_NAME.scalar(engine, {"project": project, "collection": collection, "scope": scope, "name": name})
    return cast(str | None, body)  # the Text column


def find_optional(session: Session, project: str, collection: str, scope: str, name: str) -> Resource | None:
    return session.scalar(BY_NAME, {"project": project, "collection": collection, "scope": scope, "name": name})


def on_network(session: Session, collection: str, network_url: str, *, project: str | None = None,
               region: str | None = None) -> Iterator[tuple[Resource, Body]]:
    """(row, body) of each resource of ``collection`` whose ``network`` is ``network_url``, by name.

    The SQL narrows by the stored text (``"network":"URL"``, escaped for LIKE); the body decides,
    since the text could also stand in a nested field of another network's resource."""
    where = [Resource.collection == collection,
             Resource.body.contains(f'"network":"{network_url}"', autoescape=True)]
    if project is not None:
        where.append(Resource.project == project)
    if region is not None:
        where.append(Resource.region == region)
    yield from of_network(session.scalars(select(Resource).where(*where).order_by(Resource.name)), network_url)


def of_network(rows: Iterable[Resource], network_url: str) -> Iterator[tuple[Resource, Body]]:
    """(row, body) of each of ``rows`` whose ``network`` is ``network_url``: what decides for
    :func:`on_network`, for rows a caller read otherwise."""
    for row in rows:
        body = body_of(row)
        if body.get("network") == network_url:
            yield row, body


_PK_BY_NAME = select(Resource.pk).where(*_IN_SCOPE, Resource.name == bindparam("name"))


def exists(session: Session, project: str, collection: str, scope: str, name: str) -> bool:
    """Whether the name is taken (in the caller's transaction), without loading the row."""
    where = {"project": project, "collection": collection, "scope": scope, "name": name}
    return flushed_connection(session).execute(_PK_BY_NAME, where).first() is not None


def new_resource(session: Session, *, project: str, collection: str, scope: str, name: str, kind: str,
                 body: Body, status: str = "", region: str | None = None, uid: int | None = None,
                 finish: Callable[[Body], None] | None = None, **columns: Any) -> Resource:
    """Insert a resource with its output-only fields filled in; AlreadyExists on a name clash
    (the unique constraint decides, so concurrent inserts cannot both win).

    ``uid``: one the caller drew already (to own addresses before the row exists). ``finish``: a
    last change to the complete body (a fingerprint over it) before it is stored.
    """
    res = resource_row(project=project, collection=collection, scope=scope, name=name, kind=kind, body=body,
                       status=status, region=region, uid=uid, finish=finish, **columns)
    if not insert_persistent(session, res, skip_clash=True):  # the name is taken (a concurrent insert won)
        raise AlreadyExists(path_of(project, scope, collection, name))
    return res


def resource_row(*, project: str, collection: str, scope: str, name: str, kind: str, body: Body, status: str = "",
                 region: str | None = None, uid: int | None = None, finish: Callable[[Body], None] | None = None,
                 **columns: Any) -> Resource:
    """The row :func:`new_resource` inserts, not inserted yet: for :func:`new_resources`."""
    now = time.time()
    uid = uid or new_uid()
    full: Body = {"kind": kind, "id": str(uid), "creationTimestamp": rfc3339(now), "name": name}
    full.update(body)
    full["selfLink"] = url_of(project, scope, collection, name)
    if status:
        full["status"] = status
    if finish is not None:
        finish(full)
    res = Resource(uid=uid, project=project, collection=collection, scope=scope, name=name, status=status,
                   created=now, region=region, body="", **columns)
    save(res, full)
    return res


def new_resources(session: Session, rows: list[Resource]) -> list[Resource]:
    """Insert the rows of :func:`resource_row` in one statement (a multi-row INSERT: one round trip,
    however many; an instance and its new disks go in together): the rows whose name was taken,
    which were not inserted (a concurrent insert won; the caller decides which clash to report)."""
    inserted = insert_all_persistent(session, rows, "uid")
    return [row for row in rows if row.uid not in inserted]


def set_status(res: Resource, status: str, **fields: Any) -> Body:
    body = body_of(res)
    body["status"] = status
    body.update(fields)
    res.status = status
    save(res, body)
    return body
