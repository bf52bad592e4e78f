"""Request-body validation against the committed JSON Schemas (``scripts/generate_schemas.py``).

Why: Google's front end rejects unknown fields and mistyped values before the service runs, with
its own ESF-style messages; clients (gcloud, Terraform, the client libraries) and our own tests
rely on seeing the same 400s, and the services can then trust field types.  Required fields are
NOT checked here: the discovery document has no reliable required lists, and the services report
missing fields with Google's per-field messages.

Schemas come from ``schemas/`` at the repo root, or from ``$GSTACK_SCHEMAS_DIR`` when running
from an installed package.  This runs on every mutating request, so each method gets a cached
``Draft202012Validator`` plus a predicate compiled from the same schema (``_compile``) that accepts
valid bodies about 10x faster than jsonschema; jsonschema only runs when that predicate says no,
and it alone decides the error (and has the last word if the two ever disagree).
"""

from __future__ import annotations

import json
import math
import os
import re
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

import orjson
from jsonschema import Draft202012Validator, ValidationError

from core.errors import Invalid

ENV_VAR = "GSTACK_SCHEMAS_DIR"
ROOT_FIELD = "resource"
# Objects and arrays nested deeper than this are refused before validation, whose recursion would
# otherwise exhaust the stack (a 500). GCE's deepest request schema nests about a dozen levels; 100 is
# the nesting limit of Google's own JSON-to-protobuf front end.
MAX_DEPTH = 100

_lock = threading.Lock()
_index: dict[str, str] | None = None
_schemas_dir: Path | None = None
_by_file: dict[str, _Compiled] = {}
_by_method: dict[str, _Compiled | None] = {}

Check = Callable[[object], bool]


class _Compiled:
    """One request schema: the jsonschema validator (errors) and a fast accept predicate."""

    __slots__ = ("validator", "check")

    def __init__(self, schema: dict):
        self.validator = Draft202012Validator(schema)
        try:
            self.check: Check | None = _compile(schema)
        except NotImplementedError:  # a keyword the fast path does not know: jsonschema only
            self.check = None


def schemas_dir() -> Path:
    """The directory holding ``index.json``: the repo checkout first, then ``$GSTACK_SCHEMAS_DIR``."""
    repo = Path(__file__).resolve().parents[2] / "schemas"
    if (repo / "index.json").is_file():
        return repo
    env = os.environ.get(ENV_VAR)
    if env and (Path(env) / "index.json").is_file():
        return Path(env)
    raise RuntimeError(
        f"request schemas not found: no {repo / 'index.json'} and ${ENV_VAR} "
        f"({env or 'unset'}) has no index.json; run scripts/generate_schemas.py"
    )


def _load_index() -> dict[str, str]:
    global _index, _schemas_dir
    if _index is None:
        with _lock:
            if _index is None:
                _schemas_dir = schemas_dir()
                _index = orjson.loads((_schemas_dir / "index.json").read_bytes())
    return _index


def _compiled_for(method_id: str) -> _Compiled | None:
    try:
        return _by_method[method_id]
    except KeyError:
        pass
    name = _load_index().get(method_id)
    compiled = None
    if name is not None:
        compiled = _by_file.get(name)
        if compiled is None:
            assert _schemas_dir is not None
            compiled = _Compiled(orjson.loads((_schemas_dir / name).read_bytes()))
            _by_file[name] = compiled
    _by_method[method_id] = compiled
    return compiled


def validator_for(method_id: str) -> Draft202012Validator | None:
    """The cached jsonschema validator for ``method_id``'s request body, or None if it takes none."""
    compiled = _compiled_for(method_id)
    return compiled.validator if compiled is not None else None


def reset_cache() -> None:
    """Forget loaded schemas (tests that point ``$GSTACK_SCHEMAS_DIR`` elsewhere use this)."""
    global _index, _schemas_dir
    with _lock:
        _index = None
        _schemas_dir = None
        _by_file.clear()
        _by_method.clear()


def validate_body(method_id: str, body: object) -> None:
    """Raise ``Invalid`` with Google's ESF message for the first problem in ``body``.

    "First" is deterministic: the offending field with the shortest path, ties broken by
    document order.  A no-op for methods without a request body.
    """
    compiled = _compiled_for(method_id)
    if compiled is None:
        return
    check_depth(body)
    if not isinstance(body, dict):
        raise Invalid(ROOT_FIELD, body, message="Invalid JSON payload received. Unexpected token.")
    if compiled.check is not None and compiled.check(body):
        return
    errors = compiled.validator.iter_errors(body)
    first = next(errors, None)
    if first is None:
        return
    raise _to_invalid(body, _pick([first, *errors], body))


def without_nulls(body: dict) -> dict:
    """``body`` with every object key whose value is JSON null left out, as ESF's proto3 parsing
    leaves it (null means "unset"), so a service never stores or renders a null. Only for bodies
    that are not JSON merge patches, where null means "clear". A validated body's depth is bounded
    (:func:`check_depth`), so the recursion is too."""
    return {key: _nulls_left_out(value) for key, value in body.items() if value is not None}


def _nulls_left_out(value: object) -> object:
    if isinstance(value, dict):
        return without_nulls(value)
    if isinstance(value, list):
        return [_nulls_left_out(item) for item in value]
    return value


def check_depth(body: object, limit: int = MAX_DEPTH) -> None:
    """Raise ``Invalid`` when ``body`` nests objects or arrays more than ``limit`` levels deep (iteratively:
    the check itself must not recurse)."""
    stack: list[tuple[object, int]] = [(body, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            children: Iterable[object] = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth > limit:
            raise Invalid(ROOT_FIELD, message=f"Invalid JSON payload received. Nested too deeply: more than {limit} "
                                              "levels of objects and arrays.")
        stack.extend((child, depth + 1) for child in children)


# -- fast path: a predicate compiled from the generated schema --------------------------------------
#
# Only the keywords scripts/generate_schemas.py emits are understood, with jsonschema's exact
# semantics (bool is neither integer nor number, 1.0 is an integer, pattern/minimum/maximum apply
# only to their own types); anything else raises NotImplementedError and the schema falls back to
# jsonschema alone.  tests/unit/test_validation.py checks both agree on many mutated bodies.

_IGNORED = frozenset({"$schema", "$defs", "$id", "$comment", "title", "description", "x-protoType"})


def _is_integer(v: object) -> bool:
    return (isinstance(v, int) and not isinstance(v, bool)) or (isinstance(v, float) and v.is_integer())


_TYPE_CHECKS: dict[str, Check] = {
    "null": lambda v: v is None,
    "boolean": lambda v: isinstance(v, bool),
    "string": lambda v: isinstance(v, str),
    "integer": _is_integer,
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
}


def _compile(root: dict) -> Check:
    defs: dict[str, Check] = {}

    def ref(target: str) -> Check:
        if target == "#":
            node = root
        elif target.startswith("#/$defs/") and target[8:] in root.get("$defs", {}):
            node = root["$defs"][target[8:]]
        else:
            raise NotImplementedError(target)
        if target not in defs:
            cell: list[Check] = []
            defs[target] = lambda v: cell[0](v)  # placeholder so recursive schemas terminate
            cell.append(build(node))
            defs[target] = cell[0]
        return defs[target]

    def build(s: dict) -> Check:
        unknown = set(s) - _IGNORED - {"type", "enum", "pattern", "minimum", "maximum", "properties",
                                       "additionalProperties", "items", "$ref"}
        if unknown:
            raise NotImplementedError(sorted(unknown))
        checks: list[Check] = []
        if "$ref" in s:
            checks.append(ref(s["$ref"]))
        if "type" in s:
            names = [s["type"]] if isinstance(s["type"], str) else s["type"]
            tchecks = [_TYPE_CHECKS[n] for n in names]
            checks.append(tchecks[0] if len(tchecks) == 1 else _any_of(tuple(tchecks)))
        if "enum" in s:
            if not all(e is None or isinstance(e, str) for e in s["enum"]):
                raise NotImplementedError("enum")
            allowed = frozenset(s["enum"])
            checks.append(lambda v: (v is None or isinstance(v, str)) and v in allowed)
        if "pattern" in s:
            search = re.compile(s["pattern"]).search
            checks.append(lambda v: not isinstance(v, str) or search(v) is not None)
        if "minimum" in s or "maximum" in s:
            lo, hi = s.get("minimum", -math.inf), s.get("maximum", math.inf)
            checks.append(lambda v: isinstance(v, bool) or not isinstance(v, int | float) or lo <= v <= hi)
        if "items" in s:
            item = build(s["items"])
            checks.append(lambda v: not isinstance(v, list) or all(item(x) for x in v))
        if "properties" in s or "additionalProperties" in s:
            props = {k: build(v) for k, v in s.get("properties", {}).items()}
            extra = s.get("additionalProperties", True)
            extra_check: Check | None = None if extra is True else build(extra) if isinstance(extra, dict) else None
            closed = extra is False

            def obj(v: object, props: dict[str, Check] = props) -> bool:
                if not isinstance(v, dict):
                    return True
                for k, x in v.items():
                    c = props.get(k)
                    if c is not None:
                        if not c(x):
                            return False
                    elif closed or (extra_check is not None and not extra_check(x)):
                        return False
                return True

            checks.append(obj)
        if not checks:
            return lambda v: True
        if len(checks) == 1:
            return checks[0]
        return _all_of(tuple(checks))

    return build(root)


def _any_of(checks: tuple[Check, ...]) -> Check:
    return lambda v: any(c(v) for c in checks)


def _all_of(checks: tuple[Check, ...]) -> Check:
    if len(checks) == 2:  # the common case, without a generator per value
        first, second = checks
        return lambda v: first(v) and second(v)
    return lambda v: all(c(v) for c in checks)


# -- error selection and rendering ------------------------------------------------------------------

def _path(parts: Iterable[str | int]) -> str:
    out = ROOT_FIELD
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else f".{p}"
    return out


def _unknown_names(error: ValidationError) -> list[str]:
    known = error.schema.get("properties", {}) if isinstance(error.schema, Mapping) else {}
    return [k for k in error.instance if k not in known] if isinstance(error.instance, dict) else []


def _field_path(error: ValidationError) -> tuple[str | int, ...]:
    """Path of the offending field; for unknown fields that is the first unknown key itself."""
    path = tuple(error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        names = _unknown_names(error)
        if names:
            return (*path, names[0])
    return path


def _position(body: object, path: Sequence[str | int]) -> tuple[int, ...]:
    """Document-order position of ``path`` inside ``body`` (key index in dicts, index in lists)."""
    out = []
    node = body
    for p in path:
        if isinstance(node, dict):
            try:
                out.append(list(node).index(p))
            except ValueError:
                out.append(len(node))
            node = node.get(p)
        elif isinstance(node, list) and isinstance(p, int):
            out.append(p)
            node = node[p] if p < len(node) else None
        else:
            out.append(0)
            node = None
    return tuple(out)


def _pick(errors: list[ValidationError], body: object) -> ValidationError:
    def key(e: ValidationError) -> tuple:
        path = _field_path(e)
        return len(path), _position(body, path)

    return min(errors, key=key)  # min() is stable: equal keys keep the validator's order


def _render(value: object) -> str:
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        return repr(value)


def _accepts(schema: dict, kind: str) -> bool:
    t = schema.get("type")
    return t == kind or (isinstance(t, list) and kind in t)


def _to_invalid(body: object, error: ValidationError) -> Invalid:
    path = tuple(error.absolute_path)
    where = _path(path)
    schema = error.schema if isinstance(error.schema, dict) else {}

    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        names = _unknown_names(error)
        name = names[0] if names else "?"
        return Invalid(where, name, message=(
            f"Invalid JSON payload received. Unknown name {json.dumps(name, ensure_ascii=False)} "
            f"at '{where}': Cannot find field."
        ))

    if (error.validator == "type" and isinstance(error.instance, list) and not _accepts(schema, "array")
            and path and isinstance(path[-1], str)):
        parent = _path(path[:-1])
        return Invalid(where, error.instance, message=(
            f"Invalid JSON payload received. Unknown name {json.dumps(path[-1], ensure_ascii=False)} "
            f"at '{parent}': Proto field is not repeating, cannot start list."
        ))

    token = schema.get("x-protoType", "TYPE_MESSAGE" if _accepts(schema, "object") else "TYPE_STRING")
    return Invalid(where, error.instance,
                   message=f"Invalid value at '{where}' ({token}), {_render(error.instance)}")
