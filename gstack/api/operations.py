"""zoneOperations, regionOperations, globalOperations: get, list, wait, delete, aggregatedList."""

from __future__ import annotations

import orjson
from flask import Response

from core.resources import operations
from core.resources.narrowing import operation_condition
from core.resources.queries import operation_rows
from core.services import calls, topology
from core.services import operations as operation_service
from gstack.api.common import list_envelope, reorder, scopes_of
from gstack.api.registry import ApiRequest, handles
from gstack.gce.listing import aggregate, paginate, parse_params
from gstack.gce.narrowing import narrowing_of
from gstack.gce.render import json_response, stored_all, storing


def _scope(req: ApiRequest, zone: str | None, region: str | None) -> str:
    if zone is not None:
        return f"zones/{req.zone(zone).name}"
    if region is not None:
        return f"regions/{topology.region(req.session, req.call.project, region).name}"
    return "global"


def _op_source(req: ApiRequest, scopes: list[str], order: str):
    """The Operations' pages; only those that can match the filter, where its status or name says
    which can (the filter still tests each)."""
    narrowed = operation_condition(narrowing_of(req.args.get("filter"), "Operation"))

    def source(after, limit):
        return [(key, orjson.dumps(operations.to_json(op)).decode())
                for key, op in operation_rows(req.session, req.call.project, scopes, order, after, limit, narrowed)]

    return source


def get(req: ApiRequest, operation: str, zone: str | None = None, region: str | None = None):
    return operations.to_json(operations.find(req.call, _scope(req, zone, region), operation))


def list_ops(req: ApiRequest, zone: str | None = None, region: str | None = None):
    scope = _scope(req, zone, region)
    params = parse_params(req.args, "Operation")
    page, token = paginate(_op_source(req, [scope], params.order), params)
    return json_response(list_envelope("compute#operationList", f"projects/{req.call.project}/{scope}/operations",
                                       stored_all([t for _, t in page]), token))


def wait(req: ApiRequest, operation: str, zone: str | None = None, region: str | None = None):
    """Block until the operation is DONE or the wait deadline passes, then return it (never an error)."""
    scope = _scope(req, zone, region)
    op = operations.find(req.call, scope, operation)
    if op.status != "DONE":
        pk = op.pk
        calls.release(req.session)  # hold no transaction or connection while waiting
        req.runtime.engine.wait(pk, req.runtime.settings.wait_timeout)
        op = operations.find(req.call, scope, operation)
    return operations.to_json(op)


def delete(req: ApiRequest, operation: str, zone: str | None = None, region: str | None = None):
    operation_service.delete(req.call, _scope(req, zone, region), operation)
    return Response(status=204)


for prefix in ("zoneOperations", "regionOperations", "globalOperations"):
    handles(f"compute.{prefix}.get")(get)
    handles(f"compute.{prefix}.list")(list_ops)
    handles(f"compute.{prefix}.wait")(wait)
    handles(f"compute.{prefix}.delete")(delete)


@handles("compute.globalOperations.aggregatedList")
def aggregated(req: ApiRequest):
    params = parse_params(req.args, "Operation")
    scopes = [*scopes_of(req, "regions"), *scopes_of(req, "zones"), "global"]
    scopes.sort()
    page, token = paginate(_op_source(req, scopes, params.order), params)
    out = list_envelope("compute#operationAggregatedList", f"projects/{req.call.project}/aggregated/operations",
                        [], token)
    out["items"] = aggregate(page, scopes, "operations", storing())
    out["unreachables"] = []
    return json_response(reorder(out))
