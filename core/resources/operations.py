"""Operations: creating them for a use case, finding them, rendering them as GCE JSON."""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from sqlalchemy import Engine, bindparam, select
from sqlalchemy.exc import IntegrityError

from core.db import insert_persistent, read_only
from core.errors import Invalid, NotFound
from core.ids import new_uid, operation_name, rfc3339
from core.jobs.admission import Claim, enqueue, enqueue_after
from core.links import CANONICAL_BASE, scope_url
from core.models import Operation, Resource
from core.prepared import Prepared
from core.resources.context import Call

_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


class DuplicateRequest(Exception):
    """Another request with the same requestId committed first; answer with its Operation."""


class NamesTaken(Exception):
    """The new rows :func:`begin` was to insert with the Operation whose names were taken (a
    concurrent insert committed them first): nothing of the Operation was made, and the caller's
    transaction must be rolled back (the other rows went in)."""

    def __init__(self, rows: Sequence[Resource]):
        super().__init__([row.name for row in rows])
        self.rows = rows


def validate_request_id(request_id: str | None) -> str | None:
    if request_id is None or request_id == "":
        return None
    if not _UUID.match(request_id) or set(request_id) <= set("0-"):
        raise Invalid("requestId", request_id, message=(
            f"Invalid value for field 'requestId': '{request_id}'. The request ID must be a valid UUID "
            "with the exception that zero UUID is not supported (00000000-0000-0000-0000-000000000000)."))
    return request_id.lower()


_BY_REQUEST_ID = select(Operation).where(Operation.project == bindparam("project"),
                                         Operation.client_operation_id == bindparam("request_id"))


def by_request_id(call: Call) -> Operation | None:
    if not call.request_id:
        return None
    return call.session.scalar(_BY_REQUEST_ID, {"project": call.project, "request_id": call.request_id})


def begin(call: Call, *, scope: str, op_type: str, target_path: str, target_id: int | None,
          job: str | None = None, params: dict[str, Any] | None = None,
          not_before: float | None = None, rows: Sequence[Resource] = (), claim: Claim | None = None,
          alone: bool = False, seen: Mapping[str, Any] | None = None) -> Operation:
    """Record the Operation of a use case, in the use case's transaction.

    With a ``job`` the Operation is PENDING until a worker runs it; without one the change was
    made synchronously in this transaction and the Operation is born DONE. ``not_before``: no worker
    claims the job before then (its lease expiry while nobody holds it); given here, it is part of
    the row's INSERT instead of an UPDATE after it.

    A job's Operation is inserted by :func:`~core.jobs.admission.enqueue`: its INSERT announces the
    job's kind to the workers (PostgreSQL NOTIFY, at commit) and, when the call bounds its project's
    queue (``call.max_queued``), is refused with :class:`~core.jobs.admission.QueueFull` when the
    queue is full, all in one statement.

    ``rows``: the job's new resource rows (an instance and its new disks), inserted with its
    Operation (see :func:`~core.jobs.admission.enqueue_after`: one statement on PostgreSQL);
    :class:`NamesTaken` when a concurrent insert took a name of theirs first. ``claim``, ``alone``
    and ``seen``: :func:`~core.jobs.admission.enqueue_after`'s (which raises
    :class:`~core.jobs.admission.Missed` when they made nothing).
    """
    now = time.time()
    done = job is None
    op = Operation(
        uid=new_uid(), name=operation_name(now), project=call.project, scope=scope, operation_type=op_type,
        target_link=target_path, target_id=target_id, status="DONE" if done else "PENDING",
        progress=100 if done else 0, user=call.user, client_operation_id=call.request_id,
        insert_time=now, start_time=now, end_time=now if done else None,
        job=job or "", params=orjson.dumps(params or {}).decode(), attempts=0, lease_expiry=not_before,
    )
    try:
        if done:
            insert_persistent(call.session, op)
        elif rows:
            taken = enqueue_after(call.session, rows, op, call.max_queued, claim, alone, seen)
            if taken:
                raise NamesTaken(taken)
        else:
            enqueue(call.session, op, call.max_queued)
    except IntegrityError:
        raise DuplicateRequest() from None
    return op


def find(call: Call, scope: str, name: str) -> Operation:
    q = select(Operation).where(Operation.project == call.project, Operation.scope == scope)
    op = call.session.scalar(q.where(Operation.name == name))
    if op is None and name.isdigit() and int(name) < 2**63:
        op = call.session.scalar(q.where(Operation.uid == int(name)))
    if op is None:
        raise NotFound(f"projects/{call.project}/{scope}/operations/{name}")
    return op


_COMMITTED = Prepared(select(*Operation.__table__.columns).where(
    Operation.project == bindparam("project"), Operation.scope == bindparam("scope"), Operation.name == bindparam("name")))


def committed(engine: Engine, project: str, scope: str, name: str) -> Operation | None:
    """The committed Operation named ``name`` (not by numeric id) in ``scope``, None when there is
    none: :func:`find` for a caller that holds no Session (the HTTP layer's lighter GET path, which
    clients polling an Operation call most), as a read-only copy of its row."""
    rows = _COMMITTED.all(engine, {"project": project, "scope": scope, "name": name})
    return read_only(Operation, rows[0]) if rows else None


def to_json(op: Operation) -> dict[str, Any]:
    out: dict[str, Any] = {
        "kind": "compute#operation",
        "id": str(op.uid),
        "name": op.name,
        "operationType": op.operation_type,
        "targetLink": CANONICAL_BASE + op.target_link,
        "status": op.status,
        "user": op.user,
        "progress": op.progress,
        "insertTime": rfc3339(op.insert_time),
        "selfLink": f"{CANONICAL_BASE}projects/{op.project}/{op.scope}/operations/{op.name}",
    }
    if op.target_id is not None:
        out["targetId"] = str(op.target_id)
    if op.start_time is not None:
        out["startTime"] = rfc3339(op.start_time)
    if op.end_time is not None:
        out["endTime"] = rfc3339(op.end_time)
    if op.status_message:
        out["statusMessage"] = op.status_message
    if op.client_operation_id:
        out["clientOperationId"] = op.client_operation_id
    if op.scope.startswith("zones/"):
        out["zone"] = scope_url(op.project, op.scope)
    elif op.scope.startswith("regions/"):
        out["region"] = scope_url(op.project, op.scope)
    if op.error:
        out["error"] = orjson.loads(op.error)
        out["httpErrorStatusCode"] = op.http_error_status
        out["httpErrorMessage"] = op.http_error_message
    if op.warnings:
        out["warnings"] = orjson.loads(op.warnings)
    if op.params and '"operationGroupId"' in op.params:  # a bulkInsert's Operations
        _bulk_fields(out, orjson.loads(op.params))
    return out


def _bulk_fields(out: dict[str, Any], params: dict[str, Any]) -> None:
    """The fields of a bulkInsert's Operations: their group, and the bulk Operation's counts (each
    kept in the job's ``params``, where the bulk job updates them)."""
    out["operationGroupId"] = params["operationGroupId"]
    if "bulkStatus" in params:
        out["instancesBulkInsertOperationMetadata"] = {"perLocationStatus": params["bulkStatus"]}
