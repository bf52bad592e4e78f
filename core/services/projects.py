"""Projects: the GCE ``projects`` collection, and the project lookups every use case needs."""

from __future__ import annotations

import re

import orjson
from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from core.errors import BadRequest, Invalid, NotFound
from core.ids import rfc3339
from core.links import Ref, project_url
from core.models import Operation, Project, Resource
from core.quotas import global_usage, limits, quota_list
from core.resources import operations, store
from core.resources.context import Call
from core.resources.store import Body
from core.services.metadata import METADATA_MISMATCH, check_fingerprint, metadata_block, validate_items

_PROJECT = select(Project).where(Project.name == bindparam("name"))
_PROJECT_LOCKED = _PROJECT.with_for_update()


def get(session: Session, name: str, *, lock: bool = False) -> Project:
    """The project by name or number.

    ``lock``: hold the project row until the transaction ends (PostgreSQL; SQLite's write
    transactions are serialized anyway). Use cases that check a quota and then create take it, so
    two requests cannot both pass the check on the same usage; and so does any read-modify-write
    of project fields. Lock order: the project first, then its resources (:func:`find_for_update`).
    """
    p = session.scalar(_PROJECT_LOCKED if lock else _PROJECT, {"name": name})
    if p is None and name.isdigit() and int(name) < 2**63:
        q = select(Project).where(Project.number == int(name))
        p = session.scalar(q.with_for_update() if lock else q)
    if p is None:
        raise NotFound(f"projects/{name}")
    return p


def find_for_update(session: Session, project: str, collection: str, scope: str, name: str) -> Resource:
    """A resource by name or numeric id, row-locked until the transaction ends; NotFound otherwise.

    For read-modify-write use cases (fingerprint checks, ``users`` checks, resize), so that a
    concurrent writer waits and then sees the new state instead of overwriting it.
    """
    return store.find(session, project, collection, scope, name, lock=True)


def own(call: Call, ref: Ref) -> Ref:
    """``ref``, a resource a request body names, when it is of the caller's project. Another
    project's is not found, as it is not visible (its images and snapshots are, when public:
    :func:`core.services.images.readable`; its networks, through Shared VPC)."""
    if ref.project != call.project:
        raise NotFound(ref.path)
    return ref


def default_service_account(p: Project) -> str:
    return f"{p.number}-compute@developer.gserviceaccount.com"


def to_json(session: Session, p: Project) -> Body:
    items = orjson.loads(p.common_metadata)
    return {
        "kind": "compute#project", "id": str(p.number), "creationTimestamp": rfc3339(p.created),
        "name": p.name, "commonInstanceMetadata": metadata_block(items),
        "quotas": quota_list(global_usage(session, p.name), limits(p, None)),
        "selfLink": project_url(p.name), "defaultServiceAccount": default_service_account(p),
        "vmDnsSetting": "ZONAL_ONLY", **_reported(session, p.name),
    }


def set_common_instance_metadata(call: Call, body: Body) -> Operation:
    p = get(call.session, call.project, lock=True)
    existing = orjson.loads(p.common_metadata)
    current = metadata_block(existing)["fingerprint"]
    check_fingerprint(body.get("fingerprint"), current, METADATA_MISMATCH, allow_missing=not existing)
    items = validate_items(body.get("items"))
    p.common_metadata = orjson.dumps(items).decode()
    # what a guest's waiting metadata request looks at (core.services.instance_metadata.view_stamp)
    p.metadata_fingerprint = metadata_block(items)["fingerprint"]
    return operations.begin(call, scope="global", op_type="setMetadata", target_path=f"projects/{p.name}",
                            target_id=p.number)


# -- project settings --------------------------------------------------------------------------------
# The settings a project's owner sets with their own methods (setDefaultNetworkTier,
# setUsageExportBucket) live in a private row of their own (collection SETTINGS, scope global, named
# after the project), as a managed group's state does, so that the projects table keeps its shape.

SETTINGS = "projectSettings"  # private: never routed, never listed
TIERS = ("PREMIUM", "STANDARD")
_DEFAULTS: Body = {"defaultNetworkTier": "PREMIUM"}
# The settings' row of the project named by the parameter ``project`` (none until one is set).
_SETTINGS_ROW = (Resource.project == bindparam("project"), Resource.collection == SETTINGS,
                 Resource.scope == "global", Resource.name == bindparam("project"))
_BY_SETTINGS = select(Resource).where(*_SETTINGS_ROW)
# Its body (NULL: none set), as a column for a caller to select along with a statement of its
# own: settings_of reads it.
SETTINGS_COLUMN = select(Resource.body).where(*_SETTINGS_ROW).scalar_subquery().label("project_settings")


def settings(session: Session, project: str) -> Body:
    """The project's settings, defaults filled in (no row until one is set)."""
    row = session.scalar(_BY_SETTINGS, {"project": project})
    return settings_of(row.body if row is not None else None)


def settings_of(body: str | None) -> Body:
    """The settings whose stored body is ``body`` (None: none set), defaults filled in."""
    return {**_DEFAULTS, **(orjson.loads(body) if body is not None else {})}


def update_settings(session: Session, project: str, **fields: object) -> None:
    """Set settings of ``project`` (whose row the caller holds locked); a None value removes one."""
    row = session.scalar(_BY_SETTINGS, {"project": project})
    if row is None:
        row = store.new_resource(session, project=project, collection=SETTINGS, scope="global", name=project,
                                 kind="gstack#projectSettings", body={})
    body = {**store.body_of(row), **fields}
    store.save(row, {k: v for k, v in body.items() if v is not None})


def _reported(session: Session, project: str) -> Body:
    """The settings projects.get shows."""
    got = settings(session, project)
    out: Body = {k: got[k] for k in ("defaultNetworkTier", "usageExportLocation") if k in got}
    out["xpnProjectStatus"] = "HOST" if got.get("xpnHost") else "UNSPECIFIED_XPN_PROJECT_STATUS"
    return out


def default_network_tier(session: Session, project: str) -> str:
    """The tier an address, forwarding rule or access config gets when its body names none."""
    return str(settings(session, project)["defaultNetworkTier"])


def _set(call: Call, method: str, **fields: object) -> Operation:
    p = get(call.session, call.project, lock=True)
    update_settings(call.session, p.name, **fields)
    return operations.begin(call, scope="global", op_type=method, target_path=f"projects/{p.name}",
                            target_id=p.number)


def set_default_network_tier(call: Call, body: Body) -> Operation:
    tier = body.get("networkTier")
    if tier not in TIERS:
        raise Invalid("networkTier", tier, "Must be PREMIUM or STANDARD.")
    return _set(call, "setDefaultNetworkTier", defaultNetworkTier=tier)


# gcloud sends the bucket's JSON API link; users write gs://B or the XML API's host.
_BUCKET_PREFIXES = ("gs://", "https://storage.googleapis.com/storage/v1/b/", "https://storage.googleapis.com/")


def set_usage_export_bucket(call: Call, body: Body) -> Operation:
    """An empty body (no bucketName) turns the usage export off, as GCE does. gstack has no Cloud
    Storage: the location is kept and reported, and no report is written (docs/api-coverage.rst)."""
    bucket = body.get("bucketName")
    if bucket in (None, ""):
        return _set(call, "setUsageExportBucket", usageExportLocation=None)
    if not isinstance(bucket, str):
        raise Invalid("bucketName", bucket)
    name = next((bucket[len(p):] for p in _BUCKET_PREFIXES if bucket.startswith(p)), bucket).strip("/")
    if not _BUCKET.match(name):
        raise Invalid("bucketName", bucket, "Must name a Cloud Storage bucket.")
    prefix = body.get("reportNamePrefix")
    if prefix is not None and (not isinstance(prefix, str) or len(prefix) > 1024):
        raise Invalid("reportNamePrefix", prefix)
    location: Body = {"bucketName": bucket, **({"reportNamePrefix": prefix} if prefix else {})}
    return _set(call, "setUsageExportBucket", usageExportLocation=location)


_BUCKET = re.compile(r"^[a-z0-9][-_.a-z0-9]{1,220}[a-z0-9]$")


def move_instance(call: Call, body: Body) -> Operation:
    """projects.moveInstance is deprecated in GCE, which now moves an instance across zones by a
    machine image (or snapshots) and a new instance; gstack answers with that advice."""
    get(call.session, call.project)
    raise BadRequest(
        "projects.moveInstance is deprecated and not supported: to move an instance to "
        "another zone, create a machine image of it (machineImages.insert) and an instance from that image "
        "(instances.insert with sourceMachineImage) in the new zone, then delete the old instance.")
