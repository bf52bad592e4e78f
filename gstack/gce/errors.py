"""Google's JSON error envelope: every error leaves the API through :func:`error_response`."""

from __future__ import annotations

import orjson
from flask import Response, has_request_context, request

from core.errors import ComputeError

STATUS_NAMES = {
    400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
    405: "INVALID_ARGUMENT", 409: "ALREADY_EXISTS", 412: "FAILED_PRECONDITION", 413: "INVALID_ARGUMENT",
    414: "INVALID_ARGUMENT", 429: "RESOURCE_EXHAUSTED", 431: "INVALID_ARGUMENT",
    500: "INTERNAL", 501: "UNIMPLEMENTED", 503: "UNAVAILABLE",
}

UNAUTHENTICATED_MISSING = (
    "Request is missing required authentication credential. Expected OAuth 2 access token, login cookie or "
    "other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project."
)
UNAUTHENTICATED_INVALID = (
    "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other "
    "valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project."
)


def envelope(status: int, reason: str, message: str, *, domain: str = "global", extra: dict | None = None,
             details: list | None = None) -> dict:
    item = {"message": message, "domain": domain, "reason": reason}
    if extra:
        item.update(extra)
    err: dict = {"code": status, "message": message, "errors": [item], "status": STATUS_NAMES.get(status, "UNKNOWN")}
    if details:
        err["details"] = details
    return {"error": err}


def _pretty() -> bool:
    """``prettyPrint`` applies to errors too (default true); outside a request, pretty."""
    if not has_request_context():
        return True
    return request.args.get("prettyPrint", "true").lower() not in ("false", "0")


def error_response(status: int, reason: str, message: str, *, headers: dict | None = None, **kw) -> Response:
    headers = {"Vary": "Origin, X-Origin, Referer", **(headers or {})}
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="https://accounts.google.com/", error="invalid_token"'
        kw.setdefault("extra", {"locationType": "header", "location": "Authorization"})
    body = orjson.dumps(envelope(status, reason, message, **kw), option=orjson.OPT_INDENT_2 if _pretty() else 0)
    return Response(body, status=status, headers=headers, content_type="application/json; charset=UTF-8")


def from_exception(exc: ComputeError) -> Response:
    domain = "usageLimits" if exc.reason == "rateLimitExceeded" else "global"
    details = getattr(exc, "details", None)
    if exc.reason == "insufficientPermissions":
        details = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "ACCESS_TOKEN_SCOPE_INSUFFICIENT",
                    "domain": "googleapis.com", "metadata": {"service": "compute.googleapis.com"}}]
    return error_response(exc.status, exc.reason, exc.message, domain=domain, details=details)
