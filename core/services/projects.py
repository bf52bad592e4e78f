"""Projects: the GCE ``projects`` collection, and the project lookups every use case needs."""

from __future__ import annotations

import orjson
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.errors import NotFound
from core.ids import rfc3339
from core.links import project_url
from core.models import Operation, Project
from core.quotas import global_usage, limits, quota_list
from core.services import operations
from core.services.context import Call
from core.services.metadata import METADATA_MISMATCH, check_fingerprint, metadata_block, validate_items


def get(session: Session, name: str) -> Project:
    p = session.scalar(select(Project).where(Project.name == name))
    if p is None and name.isdigit():
        p = session.scalar(select(Project).where(Project.number == int(name)))
    if p is None:
        raise NotFound(f"projects/{name}")
    return p


def default_service_account(p: Project) -> str:
    return f"{p.number}-compute@developer.gserviceaccount.com"


def to_json(session: Session, p: Project) -> dict:
    items = orjson.loads(p.common_metadata)
    return {
        "kind": "compute#project", "id": str(p.number), "creationTimestamp": rfc3339(p.created),
        "name": p.name, "commonInstanceMetadata": metadata_block(items),
        "quotas": quota_list(global_usage(session, p.name), limits(p, None)),
        "selfLink": project_url(p.name), "defaultServiceAccount": default_service_account(p),
        "xpnProjectStatus": "UNSPECIFIED_XPN_PROJECT_STATUS", "defaultNetworkTier": "PREMIUM",
        "vmDnsSetting": "ZONAL_ONLY",
    }


def set_common_instance_metadata(call: Call, body: dict) -> Operation:
    p = get(call.session, call.project)
    existing = orjson.loads(p.common_metadata)
    current = metadata_block(existing)["fingerprint"]
    check_fingerprint(body.get("fingerprint"), current, METADATA_MISMATCH, allow_missing=not existing)
    items = validate_items(body.get("items"))
    p.common_metadata = orjson.dumps(items).decode()
    return operations.begin(call, scope="global", op_type="setMetadata", target_path=f"projects/{p.name}",
                            target_id=p.number)
