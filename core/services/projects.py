"""Projects: the GCE ``projects`` collection, and the project lookups every use case needs."""

from __future__ import annotations

import orjson
from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from core.errors import NotFound
from core.ids import rfc3339
from core.links import project_url
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


def default_service_account(p: Project) -> str:
    return f"{p.number}-compute@developer.gserviceaccount.com"


def to_json(session: Session, p: Project) -> Body:
    items = orjson.loads(p.common_metadata)
    return {
        "kind": "compute#project", "id": str(p.number), "creationTimestamp": rfc3339(p.created),
        "name": p.name, "commonInstanceMetadata": metadata_block(items),
        "quotas": quota_list(global_usage(session, p.name), limits(p, None)),
        "selfLink": project_url(p.name), "defaultServiceAccount": default_service_account(p),
        "xpnProjectStatus": "UNSPECIFIED_XPN_PROJECT_STATUS", "defaultNetworkTier": "PREMIUM",
        "vmDnsSetting": "ZONAL_ONLY",
    }


def set_common_instance_metadata(call: Call, body: Body) -> Operation:
    p = get(call.session, call.project, lock=True)
    existing = orjson.loads(p.common_metadata)
    current = metadata_block(existing)["fingerprint"]
    check_fingerprint(body.get("fingerprint"), current, METADATA_MISMATCH, allow_missing=not existing)
    items = validate_items(body.get("items"))
    p.common_metadata = orjson.dumps(items).decode()
    return operations.begin(call, scope="global", op_type="setMetadata", target_path=f"projects/{p.name}",
                            target_id=p.number)
