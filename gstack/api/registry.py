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
from werkzeug.datastructures import MultiDict

from core.errors import Invalid, NotImplementedMethod, ProjectRateLimited
from core.identity import access
from core.resources import operations
from core.resources.context import Call
from core.services import calls, topology
from core.services.topology import ZoneInfo
from gstack.auth import guard
from gstack.gce.discovery import Method
from gstack.gce.render import json_response, selector
from gstack.gce.validation import validate_body, without_nulls
from gstack.metrics import count_refusal

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
    if method.http_method == "PATCH" or not isinstance(body, dict):  # a merge patch's null clears a field
        return body  # type: ignore[return-value]
    return without_nulls(body)


def is_write(method: Method) -> bool:
    return method.http_method != "GET" and not method.read_only


def run(method: Method, params: dict[str, str]) -> Response:
    """Serve one API call: who calls (401/403), which handler, what it sent, then the handler in
    the call's transaction, and its answer rendered."""
    runtime = current_app.extensions["gstack"]
    session = runtime.db.session()
    ident = guard.authenticate(method)
    project = _project(session, params)
    guard.authorize(session, ident, method, project)
    handler = _handler(method)
    selector()  # a malformed fields= is a 400 before anything runs, not after a mutation committed
    body = _body(method)
    call = Call(session, project or "", ident.email, _request_id(method), runtime.settings.max_queued_operations)
    req = ApiRequest(call, method, body, request.args)
    args = {k: v for k, v in params.items() if k != "project"}
    bodies = [body]

    def attempt() -> object:  # a retried write (calls.run) gets the body as sent, not as the last attempt left it
        req.body = bodies.pop() if bodies else _body(method)
        return handler(req, **args)

    try:
        outcome = calls.run(call, is_write(method), attempt)
    except ProjectRateLimited:
        count_refusal("queue")
        raise
    if outcome.wake:
        runtime.engine_kick(outcome.kind)
    return _response(outcome)


def _project(session, params: dict[str, str]) -> str | None:
    """The project the path names (by name or by number), None for methods outside projects."""
    project = params.get("project")
    return access.project_name(session, project) if project is not None else None


def _handler(method: Method) -> Handler:
    handler = HANDLERS.get(method.id)
    if handler is None:
        raise NotImplementedMethod(f"Method '{method.id}' is not implemented by gstack.")
    return handler


def _request_id(method: Method) -> str | None:
    """The write's ``requestId`` (validated), which makes a retried call answer the first one's Operation."""
    if is_write(method) and "requestId" in method.parameters:
        return operations.validate_request_id(request.args.get("requestId"))
    return None


def _response(outcome: calls.Outcome) -> Response:
    if outcome.operation is not None:
        return json_response(outcome.operation)
    if isinstance(outcome.result, Response):
        return outcome.result
    return json_response(outcome.result)
