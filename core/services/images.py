"""Images (CloudStack's templates): global per project, families, deprecation, public projects."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any, cast

import orjson
from sqlalchemy import Select, bindparam, or_, select
from sqlalchemy.orm import Session, SessionTransaction, aliased

from core import quotas
from core.db import flushed_connection
from core.errors import Invalid, NotFound, OperationFailure, Required
from core.ids import rfc3339
from core.jobs import JobContext, job
from core.links import CANONICAL_BASE, parse_ref, path_of, url_of
from core.models import Operation, Project, Resource
from core.resources import operations, store
from core.resources.context import Call
from core.resources.queries import Unindexed, with_term
from core.services import projects
from core.services.metadata import label_fingerprint, set_labels, validate_labels
from core.services.storage_states import (
    DELETE,
    DEPRECATE,
    IMAGES,
    PATCH,
    READY_EVENT,
    SET_LABELS,
    TABLES,
    usable,
    usable_statuses,
)
from core.systemvms import secondary_storage

_INACTIVE = {"DEPRECATED", "OBSOLETE", "DELETED"}
_DEPRECATION_STATES = {"ACTIVE", "DEPRECATED", "OBSOLETE", "DELETED"}


_PUBLIC = select(Project.public).where(Project.name == bindparam("name"))


def readable(session: Session, project: str, caller_project: str) -> bool:
    """Images of public image projects are readable by everyone; others only inside their project."""
    if project == caller_project:
        return True
    return bool(flushed_connection(session).execute(_PUBLIC, {"name": project}).scalar())


# Newest first, as plain rows: the ORM would load every image of the family to return one. The
# usable statuses are equalities, not an IN, whose list SQLAlchemy would expand at every execution.
def _usable_images(project: str, family: str, images: Any = Resource) -> tuple[Any, ...]:
    """The usable images of the family named by the parameter ``family`` of the project named by
    ``project`` (of ``images``: the table, or an alias of it): a WHERE's conditions. The family's
    rows of the filter terms (:mod:`core.terms`) name them, one index range: a walk of the
    project's images newest first met every image of its other families first (an insert from
    ``debian-12`` took 1.5 ms with debian-cloud's seeded images, 17 ms with 1,000 images more in
    other families; ``bench.image_families``). The project's column is kept off the index
    (:class:`~core.resources.queries.Unindexed`): SQLite's planner, without statistics, walked the
    project's images by the index of their order and tested each against the family's.

    (An index of the family's JSON value partial to images, ``WHERE collection = 'images'``, would
    hand them over in order; but SQLite then weighs it for every statement that binds a collection,
    reads the bound value to tell, and so prepares each such statement again at every run: every
    read of a resource by name cost 17 µs instead of 4.)"""
    of_family = with_term(bindparam(project), "images", "global", "family", bindparam(family))
    return (images.pk.in_(of_family), Unindexed(images.project) == bindparam(project), images.collection == "images",
            images.scope == "global", or_(*(images.status == s for s in usable_statuses(IMAGES))))


_READY_IMAGES = (select(Resource.__table__).where(*_usable_images("project", "family"))
                 .order_by(Resource.created.desc(), Resource.pk.desc()))
# The images of a family a lookup takes first: the newest usable one is among them unless the
# newest FEW are all deprecated, when the whole family is read. A family keeps its history (a daily
# build adds one), which every lookup read with its bodies (an insert from a family of 1,000
# images took 24 ms); the newest FEW are a sort of the family's creation times alone (~1 µs an image).
FEW = 8


def _newest_few(project: str, family: str) -> Select[Any]:
    """The newest :data:`FEW` usable images of the family (:func:`_usable_images`' parameters), as
    a condition's rowids: their bodies are read, not those of the rest of the family."""
    newest = aliased(Resource)
    return (select(newest.pk).where(*_usable_images(project, family, newest))
            .order_by(newest.created.desc(), newest.pk.desc()).limit(FEW))


_FEW_READY_IMAGES = (select(Resource.__table__).where(Resource.pk.in_(_newest_few("project", "family")))
                     .order_by(Resource.created.desc(), Resource.pk.desc()))


# The same, each row with whether the project is public: another project's caller reads a family
# of a public image project (an instance's boot disk, mostly) in one statement instead of two.
def _with_public(stmt: Select[Any]) -> Select[Any]:
    return stmt.add_columns(select(Project.public).where(Project.name == bindparam("project"))
                            .scalar_subquery().label("project_public"))


_READY_PUBLIC_IMAGES, _FEW_READY_PUBLIC_IMAGES = _with_public(_READY_IMAGES), _with_public(_FEW_READY_IMAGES)


def _newest_of(session: Session, few: list[Any], every: Select[Any], params: dict[str, str],
               keep: Callable[[Any], bool] = lambda row: True) -> Resource | None:
    """The newest usable image of ``few`` (the family's newest :data:`FEW` usable images, or all of
    them when it has fewer), or when ``few`` are :data:`FEW` none of which will do, of the rows
    ``every`` reads (the whole family) that ``keep`` keeps."""
    found = _newest(few, params["family"])
    if found is None and len(few) == FEW:
        rows = flushed_connection(session).execute(every, params)
        found = _newest((row for row in rows if keep(row)), params["family"])
    return found


def from_family(session: Session, project: str, family: str, *, missing_path: str | None = None) -> Resource:
    """The newest READY image of the family that is not deprecated (images.getFromFamily).

    A read-only row (the columns of :class:`Resource` as attributes), not an object of the session:
    its callers read it, none changes it."""
    params = {"project": project, "family": family}
    few = list(flushed_connection(session).execute(_FEW_READY_IMAGES, params))
    found = _newest_of(session, few, _READY_IMAGES, params)
    if found is None:
        raise NotFound(missing_path or f"projects/{project}/global/images/family/{family}")
    return found


def _newest(rows: Iterable[Any], family: str) -> Resource | None:
    for row in rows:
        body = orjson.loads(row.body)
        if body.get("family") == family and body.get("deprecated", {}).get("state", "ACTIVE") not in _INACTIVE:
            return cast(Resource, row)
    return None


def _public_family(session: Session, project: str, family: str) -> Resource | None:
    """:func:`from_family` of a public image project: None when the project is not public or the
    family has no usable image (the caller tells which apart, on this error path only)."""
    params = {"project": project, "family": family}
    few: list[Any] | None = _read_ahead(session, project, family)
    if few is None:
        few = [row for row in flushed_connection(session).execute(_FEW_READY_PUBLIC_IMAGES, params) if row.project_public]
    return _newest_of(session, few, _READY_PUBLIC_IMAGES, params, keep=lambda row: bool(row.project_public))


# -- read ahead: an instance's boot image, read with its names (core.services.instances.reads) ----

_AHEAD = "gstack.images.read_ahead"
# (the transaction, rows by (project, family))
_Ahead = tuple[SessionTransaction | None, dict[tuple[str, str], list[Resource]]]


def public_family(value: object, caller_project: str) -> tuple[str, str] | None:
    """The project and family of ``value`` when it names a family of another project's images (a
    boot disk's ``sourceImage`` mostly: ``projects/debian-cloud/global/images/family/debian-12``),
    which :func:`resolve` reads from that project's usable images if the project is public."""
    ref = parse_ref(value, project=caller_project, scope="global") if isinstance(value, str) else None
    if ref is None or ref.project == caller_project or ref.collection not in ("images/family", "imageFamilyViews"):
        return None
    return ref.project, ref.name


def public_images(project: str, family: str) -> Select[Any]:
    """The newest :data:`FEW` usable images of the family named by the parameter ``family`` of the
    project named by ``project``, none unless the project is public: as a branch of another read's
    UNION ALL (the family's terms, its rows by rowid, the project's name), for :func:`read_ahead`."""
    public = select(Project.id).where(Project.name == bindparam(project), Project.public.is_(True)).exists()
    return select(Resource).where(Resource.pk.in_(_newest_few(project, family)), public)


def read_ahead(session: Session, project: str, family: str, rows: Iterable[Resource]) -> None:
    """The rows :func:`public_images` read for ``family`` of ``project`` in the session's
    transaction: the lookups of that family in the same transaction take them instead of reading
    them again (and read the whole family only if none of them will do)."""
    memo: _Ahead | None = session.info.get(_AHEAD)
    if memo is None or memo[0] is not session.get_transaction():
        memo = session.info[_AHEAD] = (session.get_transaction(), {})
    memo[1][(project, family)] = sorted(rows, key=lambda r: (r.created, r.pk), reverse=True)  # newest first, as read


def _read_ahead(session: Session, project: str, family: str) -> list[Resource] | None:
    memo: _Ahead | None = session.info.get(_AHEAD)
    if memo is None or memo[0] is not session.get_transaction():
        return None
    return memo[1].get((project, family))


def resolve(session: Session, value: str, caller_project: str, field: str) -> Resource:
    """An image from any reference form, including imageFamilyViews and family URLs."""
    ref = parse_ref(value, project=caller_project, scope="global")
    if ref is None:
        raise Invalid(field, value, "The URL is malformed.")
    family = ref.collection in ("images/family", "imageFamilyViews")
    if family and ref.project != caller_project:  # readable and found in one read, see _READY_PUBLIC_IMAGES
        found = _public_family(session, ref.project, ref.name)
        if found is not None:
            return found
    if not readable(session, ref.project, caller_project):
        raise NotFound(ref.path)
    if ref.collection == "images":
        return store.find(session, ref.project, "images", "global", ref.name)
    if family:
        return from_family(session, ref.project, ref.name,
                           missing_path=f"projects/{ref.project}/global/images/family/{ref.name}")
    raise Invalid(field, value, "The URL is malformed.")


# What a disk, image or snapshot made from another one carries over from it.
INHERITED = ("licenses", "guestOsFeatures", "architecture")


def find_source(session: Session, value: str, caller_project: str, field: str, collection: str) -> Resource:
    """A READY disk or snapshot named in a body, in a project the caller may read."""
    scope = None if collection == "disks" else "global"
    ref = parse_ref(value, project=caller_project, scope=scope)
    if ref is None or ref.collection != collection or (collection == "disks") != ref.scope.startswith("zones/"):
        raise Invalid(field, value, "The URL is malformed.")
    if not readable(session, ref.project, caller_project):
        raise NotFound(ref.path)  # another project's resources are not visible
    res = store.find(session, ref.project, collection, ref.scope, ref.name)
    return usable(res, path_of(res.project, res.scope, collection, res.name))


def _source(call: Call, body: store.Body) -> tuple[store.Body, int]:
    """Fields describing where the image comes from (with what it inherits), and its size in GB."""
    if body.get("sourceDisk"):
        disk = find_source(call.session, body["sourceDisk"], call.project, "resource.sourceDisk", "disks")
        fields: store.Body = {"sourceDisk": url_of(disk.project, disk.scope, "disks", disk.name), "sourceDiskId": str(disk.uid)}
        src = disk
    elif body.get("sourceSnapshot"):
        snap = find_source(call.session, body["sourceSnapshot"], call.project, "resource.sourceSnapshot", "snapshots")
        fields = {"sourceSnapshot": snap_url(snap), "sourceSnapshotId": str(snap.uid)}
        src = snap
    elif body.get("sourceImage"):
        img = resolve(call.session, body["sourceImage"], call.project, "resource.sourceImage")
        usable(img, path_of(img.project, "global", "images", img.name))
        fields = {"sourceImage": url_of(img.project, "global", "images", img.name), "sourceImageId": str(img.uid)}
        src = img
    elif isinstance(body.get("rawDisk"), dict) and body["rawDisk"].get("source"):
        return {"rawDisk": {"source": body["rawDisk"]["source"], "containerType": "TAR"}, "sourceType": "RAW"}, 10
    else:
        raise Required("resource.sourceDisk")
    inherited = store.body_of(src)
    fields.update({key: inherited[key] for key in INHERITED if key in inherited})
    fields["sourceType"] = "RAW"
    return fields, src.size_gb


def snap_url(snap: Resource) -> str:
    return url_of(snap.project, "global", "snapshots", snap.name)


def insert(call: Call, body: store.Body) -> Operation:
    if body.get("name") in (None, ""):
        raise Required("resource.name")
    name = store.validate_name(body.get("name"))
    project = projects.get(call.session, call.project, lock=True)  # usage cannot change under the check
    quotas.check_global(call.session, project, "IMAGES")
    source, size_gb = _source(call, body)
    labels = validate_labels(body.get("labels"))
    image = {
        "description": body.get("description", ""), **source, "status": "PENDING",
        "diskSizeGb": str(max(size_gb, int(body.get("diskSizeGb") or 0))),
        "labels": labels, "labelFingerprint": label_fingerprint(labels),
        "storageLocations": body.get("storageLocations") or ["us"],
        "architecture": body.get("architecture") or source.get("architecture", "X86_64"),
    }
    if body.get("family"):
        image["family"] = store.validate_name(body["family"], "resource.family")
    res = store.new_resource(call.session, project=call.project, collection="images", scope="global", name=name,
                             kind="compute#image", body=image, status="PENDING",
                             size_gb=int(image["diskSizeGb"]))
    return operations.begin(call, scope="global", op_type="insert", target_path=path_of(call.project, "global", "images", name),
                            target_id=res.uid, job="images.insert", params={"uid": res.uid})


def _source_of(session: Session, image: store.Body) -> Resource | str:
    """The row an image is made from (disk, snapshot or image), or the raw tarball's URL."""
    for key in ("sourceDiskId", "sourceSnapshotId", "sourceImageId"):
        if image.get(key):
            row = session.scalar(select(Resource).where(Resource.uid == int(image[key])))
            if row is not None:
                return row
    raw: str = (image.get("rawDisk") or {}).get("source") or image.get("sourceDisk") or ""
    return raw


def _ready(ctx: JobContext) -> None:
    """Copy the source into the secondary storage VM of its zone, then the image is READY."""
    with ctx.write() as s:
        res = s.scalar(select(Resource).where(Resource.uid == ctx.params["uid"]))
        if res is None:
            return
        source = _source_of(s, store.body_of(res))
        zone = secondary_storage.home_zone(s, source)
        _checksum, size = secondary_storage.copy_image(s, zone, source, owner_uid=res.uid)
        move = IMAGES.event(res.status, READY_EVENT)
        if move.status is not None:
            store.set_status(res, move.status, archiveSizeBytes=str(size))


def _drop(ctx: JobContext, _failure: OperationFailure) -> None:
    with ctx.write() as s:
        res = s.scalar(select(Resource).where(Resource.uid == ctx.params["uid"]))
        if res is not None:
            s.delete(res)


job("images.insert", on_fail=_drop)(_ready)


def delete(call: Call, name: str) -> Operation:
    return delete_stored(call, "images", name)


def delete_stored(call: Call, collection: str, name: str) -> Operation:
    """Delete an image or a snapshot: its row and its copies on secondary storage, at once."""
    res = projects.find_for_update(call.session, call.project, collection, "global", name)
    TABLES[collection].move(path_of(call.project, "global", collection, res.name), res.status, DELETE)
    op = operations.begin(call, scope="global", op_type="delete",
                          target_path=path_of(call.project, "global", collection, res.name), target_id=res.uid)
    secondary_storage.remove(call.session, res.uid)
    call.session.delete(res)
    return op


def deprecate(call: Call, name: str, body: store.Body) -> Operation:
    res = projects.find_for_update(call.session, call.project, "images", "global", name)
    IMAGES.move(path_of(call.project, "global", "images", res.name), res.status, DEPRECATE)
    image = store.body_of(res)
    _set_deprecation(call, image, body, "resource")
    store.save(res, image)
    return operations.begin(call, scope="global", op_type="deprecate",
                            target_path=path_of(call.project, "global", "images", res.name), target_id=res.uid)


# What images.patch may change (GCE: "Only the following fields can be modified: family,
# description, deprecation status"); any other field must be left as it is.
PATCHABLE = ("family", "description", "deprecated")


def patch(call: Call, name: str, body: store.Body) -> Operation:
    """images.patch: a JSON merge patch of the image's family, description and deprecation."""
    res = projects.find_for_update(call.session, call.project, "images", "global", name)
    IMAGES.move(path_of(call.project, "global", "images", res.name), res.status, PATCH)
    image = store.body_of(res)
    for key, value in body.items():
        if key not in PATCHABLE and value is not None and value != image.get(key):
            raise Invalid(f"resource.{key}", value if not isinstance(value, (dict, list)) else "",
                          "Only the family, description and deprecation status of an image can be patched.")
    if "family" in body:
        if body["family"] in (None, ""):
            image.pop("family", None)
        else:
            image["family"] = store.validate_name(body["family"], "resource.family")
    if "description" in body:
        image["description"] = body["description"] or ""
    if "deprecated" in body:
        given = body["deprecated"] or {}
        if not isinstance(given, dict):
            raise Invalid("resource.deprecated", given, "Must be an object.")
        _set_deprecation(call, image, given, "resource.deprecated")
    store.save(res, image)
    return operations.begin(call, scope="global", op_type="patch",
                            target_path=path_of(call.project, "global", "images", res.name), target_id=res.uid)


def _set_deprecation(call: Call, image: store.Body, body: store.Body, field: str) -> None:
    """The image's ``deprecated`` block from a DeprecationStatus (state ACTIVE removes it)."""
    state = body.get("state", "ACTIVE")
    if state not in _DEPRECATION_STATES:
        raise Invalid(f"{field}.state", state, "Must be one of ACTIVE, DEPRECATED, OBSOLETE, DELETED.")
    if state == "ACTIVE":
        image.pop("deprecated", None)
    else:
        dep = {"state": state}
        if body.get("replacement"):
            repl = resolve(call.session, body["replacement"], call.project, f"{field}.replacement")
            dep["replacement"] = url_of(repl.project, "global", "images", repl.name)
        for key in ("deprecated", "obsolete", "deleted"):
            if body.get(key):
                dep[key] = body[key]
        if state == "DEPRECATED" and "deprecated" not in dep:
            dep["deprecated"] = rfc3339(time.time())
        image["deprecated"] = dep


def set_image_labels(call: Call, name: str, body: store.Body) -> Operation:
    res = projects.find_for_update(call.session, call.project, "images", "global", name)
    IMAGES.move(path_of(call.project, "global", "images", res.name), res.status, SET_LABELS)
    image = store.body_of(res)
    set_labels(image, body)
    store.save(res, image)
    return operations.begin(call, scope="global", op_type="setLabels",
                            target_path=path_of(call.project, "global", "images", res.name), target_id=res.uid)


def seed_public_image(session: Session, project: str, name: str, family: str, size_gb: int, created: float,
                      description: str) -> None:
    """A READY public image (the demo cloud's debian-cloud and ubuntu-os-cloud)."""
    if store.find_optional(session, project, "images", "global", name) is not None:
        return
    call = Call(session, project, "system")
    res = store.new_resource(call.session, project=project, collection="images", scope="global", name=name,
                             kind="compute#image", status="READY", body={
                                 "description": description, "sourceType": "RAW",
                                 "rawDisk": {"source": "", "containerType": "TAR"},
                                 "archiveSizeBytes": str(size_gb * 1024**3 // 5), "diskSizeGb": str(size_gb),
                                 "licenses": [f"{CANONICAL_BASE}projects/{project}/global/licenses/{family}"],
                                 "family": family, "labels": {}, "labelFingerprint": label_fingerprint({}),
                                 "storageLocations": ["eu", "us", "asia"], "architecture": "X86_64",
                                 "guestOsFeatures": [{"type": "UEFI_COMPATIBLE"}, {"type": "VIRTIO_SCSI_MULTIQUEUE"},
                                                     {"type": "GVNIC"}],
                             })
    res.created = created
    res.size_gb = size_gb
    image = store.body_of(res)
    image["creationTimestamp"] = rfc3339(created)
    store.save(res, image)
