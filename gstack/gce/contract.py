"""The response contract: every JSON body of the compute API checked against the discovery document.

Why: clients are generated from the discovery document (google-cloud-compute's proto messages,
gcloud's apitools classes) and some refuse or silently drop what it does not describe. A field
the document lacks (``selfLinkWithId`` on an Operation) or a value of the wrong JSON type is a
bug of ours even when the tolerant clients in a test do not notice; this module makes the test
suite notice.

The check is **off by default** and costs nothing in production: :func:`install` adds it only when
``GSTACK_CHECK_RESPONSES`` is set to other than ``0`` (tests/conftest.py sets it). When on, a body that breaks the
contract is replaced by a 500 Google error envelope whose message names the violation (so the test
that got it fails and says why), and the violation is appended to
``<data-dir>/contract-violations.log`` (the test fixtures fail the session when it is not empty).

Rules, stricter than JSON Schema's defaults on purpose: an object admits only the properties its
schema lists (``additionalProperties: false`` everywhere) unless the schema gives
``additionalProperties`` a schema (maps: ``labels``, an aggregated list's ``items``), whose values
it then checks; int64/uint64 are strings of digits, int32/uint32 JSON integers; ``enum`` values
and an object's ``kind`` (its schema's default) must match; ``null`` is never a value. Success
bodies are checked against their method's response schema (by ``kind`` when the route is not a
discovery method); error bodies against Google's error envelope.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Iterator

import orjson
from flask import Flask, Response, request

from gstack.gce.discovery import by_id, schemas
from gstack.gce.errors import error_response

ENV_FLAG = "GSTACK_CHECK_RESPONSES"
LOG_NAME = "contract-violations.log"
CHECKED_PREFIXES = ("/compute/v1/",)
MAX_REPORTED = 10

_STRING = {"type": "string"}
# Google's error envelope (google.rpc.Status as the JSON front end renders it, with the legacy
# ``errors`` list); ``details`` entries are Any messages, free-form past their ``@type``.
ERROR_ENVELOPE: dict = {"type": "object", "properties": {"error": {"type": "object", "properties": {
    "code": {"type": "integer", "format": "int32"},
    "message": _STRING,
    "status": _STRING,
    "errors": {"type": "array", "items": {"type": "object", "properties": {
        "message": _STRING, "domain": _STRING, "reason": _STRING, "location": _STRING, "locationType": _STRING,
    }}},
    "details": {"type": "array", "items": {"type": "object", "properties": {"@type": _STRING},
                                           "additionalProperties": {"type": "any"}}},
}}}}

_DIGITS = {"int64": re.compile(r"^-?[0-9]+$"), "uint64": re.compile(r"^[0-9]+$")}
_JSON_TYPES = {"string": (str,), "integer": (int,), "number": (int, float), "boolean": (bool,),
               "array": (list,), "object": (dict,)}


@functools.cache
def kinds() -> dict[str, str]:
    """``kind`` → schema name. A few list schemas reuse their element's kind; the element wins."""
    out: dict[str, str] = {}
    for name, schema in sorted(schemas().items(), key=lambda item: item[0].endswith(("List", "Response"))):
        kind = schema.get("properties", {}).get("kind", {}).get("default")
        if kind:
            out.setdefault(kind, name)
    return out


def schema_named(name: str) -> dict:
    return schemas()[name]


def violations(body: object, schema: dict | str | None = None) -> list[str]:
    """What in ``body`` breaks ``schema`` (a discovery schema or its name; by ``kind`` when None)."""
    if schema is None:
        kind = body.get("kind") if isinstance(body, dict) else None
        if not isinstance(kind, str) or kind not in kinds():
            return [f"$: no schema for kind {kind!r}"]
        schema = kinds()[kind]
    node = {"$ref": schema} if isinstance(schema, str) else schema
    out: list[str] = []
    for problem in _check(body, node, "$", ""):
        out.append(problem)
        if len(out) >= MAX_REPORTED:
            break
    return out


def _check(value: object, node: dict, path: str, where: str) -> Iterator[str]:
    """Each violation under ``node``; ``where`` names the schema we are inside, for the message."""
    ref = node.get("$ref")
    if ref is not None:
        yield from _check(value, schema_named(ref), path, ref)
        return
    kind = node.get("type", "any")
    if kind == "any":
        return
    at = f"{path} ({where})" if where else path
    if value is None or not isinstance(value, _JSON_TYPES[kind]) or (kind != "boolean" and isinstance(value, bool)):
        yield f"{at}: expected {kind}, got {type(value).__name__} {_short(value)}"
        return
    fmt = node.get("format")
    if fmt in _DIGITS and not _DIGITS[fmt].match(str(value)):
        yield f"{at}: expected a {fmt} string of digits, got {_short(value)}"
    if "enum" in node and value not in node["enum"]:
        yield f"{at}: {_short(value)} is not one of the enum values"
    if isinstance(value, list):
        for i, item in enumerate(value):
            yield from _check(item, node.get("items", {}), f"{path}[{i}]", where)
    elif isinstance(value, dict):
        yield from _check_object(value, node, path, where)


def _check_object(value: dict, node: dict, path: str, where: str) -> Iterator[str]:
    properties = node.get("properties", {})
    extra = node.get("additionalProperties")
    default_kind = properties.get("kind", {}).get("default")
    if default_kind and "kind" in value and value["kind"] != default_kind:
        yield f"{path}.kind ({where}): {value['kind']!r}, the schema's kind is {default_kind!r}"
    for key, item in value.items():
        sub = properties.get(key)
        if sub is not None:
            yield from _check(item, sub, f"{path}.{key}", where)
        elif extra is not None:
            yield from _check(item, extra, f"{path}[{key!r}]", where)
        else:
            yield f"{path}.{key} ({where or 'object'}): unknown property"


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def response_violations(endpoint: str | None, status: int, body: object) -> list[str]:
    """The violations of one API response: an error envelope below, a method's response above."""
    if status >= 400:
        return violations(body, ERROR_ENVELOPE)
    method = by_id().get(endpoint or "")
    if method is not None and method.response:
        return violations(body, method.response)
    return violations(body)


def enabled() -> bool:
    """Whether ``GSTACK_CHECK_RESPONSES`` asks for the check (the tests set it)."""
    return os.environ.get(ENV_FLAG, "") not in ("", "0")


def install(app: Flask, data_dir: str) -> bool:
    """Check every compute API response of ``app`` when ``GSTACK_CHECK_RESPONSES`` is set."""
    if not enabled():
        return False
    log_path = os.path.join(data_dir, LOG_NAME)

    @app.after_request
    def _check_response(resp: Response) -> Response:
        if (not request.path.startswith(CHECKED_PREFIXES) or resp.is_streamed or resp.direct_passthrough
                or resp.mimetype != "application/json"):
            return resp
        try:
            body = orjson.loads(resp.get_data())
        except orjson.JSONDecodeError as exc:
            found = [f"$: not JSON ({exc})"]
        else:
            endpoint = request.url_rule.endpoint if request.url_rule else None
            found = response_violations(endpoint, resp.status_code, body)
        if not found:
            return resp
        return _refuse(log_path, resp.status_code, found)

    return True


def _refuse(log_path: str, status: int, found: list[str]) -> Response:
    line = f"{request.method} {request.path} {status}: " + "; ".join(found)
    with open(log_path, "a", encoding="utf-8") as log:
        log.write(line + "\n")
    return error_response(500, "backendError", "Response breaks the compute v1 discovery contract: " + line)
