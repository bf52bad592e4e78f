"""Which function serves which discovery method, and the one view that runs them all.

Every path of the compute v1 discovery document is routed here. A method with a handler is
authenticated, authorized, validated, run in one transaction and rendered; a method without
one answers Google's UNIMPLEMENTED error, never a 404 page or a 500.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import orjson
from flask import Response, current_app, request
from sqlalchemy import select
from werkzeug.datastructures import MultiDict

from core.db import begin_write
from core.errors import Invalid, NotImplementedMethod, ResourceNotReady
from core.jobs import announce
from core.models import Operation, Project
from core.resources import operations
from core.resources.context import Call
from core.resources.operations import DuplicateRequest
from core.services import topology
from core.services.topology import ZoneInfo
from gstack.auth import guard
from gstack.gce.discovery import Method
from gstack.gce.render import json_response, selector
from gstack.gce.validation import validate_body

log = logging.getLogger("gstack.api")

Handler = Callable[..., object]
HANDLERS: dict[str, Handler] = {}


def handles(*method_ids: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        for mid in method_ids:
            HANDLERS[mid] = fn
        return fn

    return register


@dataclass
class ApiRequest:
    call: Call
    method: Method
    body: dict
    args: MultiDict

    @property
    def runtime(self):
        return current_app.extensions["gstack"]

    @property
    def session(self):
        return self.call.session

    def zone(self, name: str) -> ZoneInfo:
        return topology.zone(self.session, self.call.project, name)

    def flag(self, name: str, default: bool) -> bool:
        value = self.args.get(name)
        if value is None:
            return default
        if value.lower() in ("true", "1"):
            return True
        if value.lower() in ("false", "0"):
            return False
        raise Invalid(name, value, "Must be true or false.")


def _body(method: Method) -> dict:
    if method.request is None:
        return {}
    raw = request.get_data()
    if not raw.strip():
        body: object = {}
    else:
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise Invalid("resource", message="Invalid JSON payload received. Unexpected token.") from None
    validate_body(method.id, body)
    return body  # type: ignore[return-value]


def is_write(method: Method) -> bool:
    return method.http_method != "GET" and not method.read_only


def run(method: Method, params: dict[str, str]) -> Response:
    runtime = current_app.extensions["gstack"]
    session = runtime.db.session()
    ident = guard.authenticate(method)
    project = params.get("project")
    if project is not None and project.isdigit() and int(project) < 2**63:  # a project number names it too
        project = session.scalar(select(Project.name).where(Project.number == int(project))) or project
    guard.authorize(session, ident, method, project)
    handler = HANDLERS.get(method.id)
    if handler is None:
        raise NotImplementedMethod(f"Method '{method.id}' is not implemented by gstack.")
    selector()  # a malformed fields= is a 400 before anything runs, not after a mutation committed
    body = _body(method)
    request_id = None
    if is_write(method) and "requestId" in method.parameters:
        request_id = operations.validate_request_id(request.args.get("requestId"))
    call = Call(session, project or "", ident.email, request_id)
    if is_write(method):
        begin_write(session)
        existing = operations.by_request_id(call)
        if existing is not None:
            return json_response(operations.to_json(existing))
    req = ApiRequest(call, method, body, request.args)
    payload = kind = None
    try:
        result = handler(req, **{k: v for k, v in params.items() if k != "project"})
        if isinstance(result, Operation):  # rendered now: after the commit its row would be read again
            payload, kind = operations.to_json(result), result.job
        if is_write(method):
            if isinstance(result, Operation) and result.status != "DONE":
                announce(session, result.job)
            session.commit()
    except DuplicateRequest:
        session.rollback()
        existing = operations.by_request_id(call)
        if existing is None:  # the other request rolled back after all: this one may run again
            raise ResourceNotReady("A request with the same requestId is in progress; retry it.") from None
        return json_response(operations.to_json(existing))
    if isinstance(result, Operation):
        if payload["status"] != "DONE":
            runtime.engine_kick(kind)
        return json_response(payload)
    if isinstance(result, Response):
        return result
    return json_response(result)
