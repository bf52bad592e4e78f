#!/usr/bin/env python3
"""Generate JSON Schemas (draft 2020-12) for every compute v1 request body.

Why: Google's front end (ESF) parses each request body against the method's proto message and
refuses unknown fields or mistyped values before the service sees it.  We reproduce that check
from the same discovery document gcloud and the client libraries were generated from, and commit
the output under ``schemas/`` so the server does not need to walk the discovery document (or even
have google-api-python-client installed) at runtime.

Output: ``schemas/<SchemaName>.json`` for each schema used as a request body (its root is that
schema; every other schema reachable from it is under ``$defs``) and ``schemas/index.json``
mapping method id -> file name.  Files are written with sorted keys and indent 1 so regenerating
is byte-for-byte reproducible; ``--check`` exits 1 when the files on disk are stale.

Mapping notes (all follow the proto3 JSON parsing rules ESF applies):

* every field also accepts ``null`` (proto3 JSON: null means "unset"; Terraform's Go client sends
  explicit nulls through ``NullFields``), but array elements and map values do not;
* int64/uint64 accept a JSON integer or a string of digits, int32/uint32 likewise, with the
  type's range enforced on integers; unsigned types refuse a leading ``-``;
* doubles/floats accept a number or a numeric string (including ``NaN`` / ``Infinity``);
* discovery ``pattern``s and ``required`` annotations are not enforced here: ESF does not, the
  services do with their own messages;
* ``x-protoType`` is a custom annotation (ignored by JSON Schema) holding the token Google puts in
  its ``Invalid value at '...' (TOKEN), value`` message; for enums it is the proto enum type URL.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCHEMAS_DIR = ROOT / "schemas"
DRAFT = "https://json-schema.org/draft/2020-12/schema"
PROTO_PACKAGE = "google.cloud.compute.v1"
INDEX = "index.json"

# format -> (proto token, string pattern, minimum, maximum)
_INTEGERS: dict[str, tuple[str, str, int, int]] = {
    "int32": ("TYPE_INT32", "^-?[0-9]+$", -(2**31), 2**31 - 1),
    "uint32": ("TYPE_UINT32", "^[0-9]+$", 0, 2**32 - 1),
    "int64": ("TYPE_INT64", "^-?[0-9]+$", -(2**63), 2**63 - 1),
    "uint64": ("TYPE_UINT64", "^[0-9]+$", 0, 2**64 - 1),
}
_NUMBER_PATTERN = r"^(-?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?|NaN|-?Infinity)$"


def _types(base: str | list[str], nullable: bool) -> str | list[str]:
    names = [base] if isinstance(base, str) else list(base)
    if nullable:
        names.append("null")
    return names[0] if len(names) == 1 else names


class _Converter:
    """Converts discovery schema nodes to JSON Schema, recording which named schemas are used."""

    def __init__(self, discovery_schemas: dict[str, dict], root: str):
        self.discovery = discovery_schemas
        self.root = root
        self.refs: set[str] = set()

    def ref(self, name: str) -> str:
        if name not in self.discovery:
            raise KeyError(f"discovery schema {name!r} is referenced but not defined")
        self.refs.add(name)
        return "#" if name == self.root else f"#/$defs/{name}"

    def named(self, name: str) -> dict:
        """A named discovery schema (always a message): nullable, so `"field": null` passes."""
        return self.node(self.discovery[name], owner=name, field=None, nullable=True)

    def node(self, d: dict, owner: str | None, field: str | None, nullable: bool) -> dict:
        if "$ref" in d:
            out = {"$ref": self.ref(d["$ref"])}
            if not nullable:  # the target allows null; array elements / map values must not be null
                out.update({"type": "object", "x-protoType": "TYPE_MESSAGE"})
            return out
        kind = d.get("type")
        fmt = d.get("format")
        if kind == "any":
            return {}
        if kind == "object":
            out: dict = {"type": _types("object", nullable), "x-protoType": "TYPE_MESSAGE"}
            if "properties" in d:
                # Inline (anonymous) messages have no proto name we can rely on for enum URLs.
                child_owner = owner if field is None else None
                out["properties"] = {
                    k: self.node(v, child_owner, k, nullable=True) for k, v in d["properties"].items()
                }
                out["additionalProperties"] = False
            elif "additionalProperties" in d:
                out["additionalProperties"] = self.node(d["additionalProperties"], None, None, nullable=False)
            else:
                raise ValueError(f"object without properties or additionalProperties in {owner}.{field}")
            return out
        if kind == "array":
            items = self.node(d["items"], owner, field, nullable=False)
            token = items.get("x-protoType", "TYPE_MESSAGE")
            return {"type": _types("array", nullable), "items": items, "x-protoType": token}
        if kind == "string" and "enum" in d:
            token = f"type.googleapis.com/{PROTO_PACKAGE}.{owner}.{field[0].upper()}{field[1:]}" \
                if owner and field else "TYPE_ENUM"
            values: list = list(d["enum"])
            if nullable:
                values.append(None)
            return {"type": _types("string", nullable), "enum": values, "x-protoType": token}
        if kind == "string" and fmt in ("int64", "uint64"):
            token, pattern, lo, hi = _INTEGERS[fmt]
            return {"type": _types(["integer", "string"], nullable), "pattern": pattern,
                    "minimum": lo, "maximum": hi, "x-protoType": token}
        if kind == "string":
            token = "TYPE_BYTES" if fmt == "byte" else "TYPE_STRING"
            return {"type": _types("string", nullable), "x-protoType": token}
        if kind == "integer":
            token, pattern, lo, hi = _INTEGERS[fmt or "int32"]
            return {"type": _types(["integer", "string"], nullable), "pattern": pattern,
                    "minimum": lo, "maximum": hi, "x-protoType": token}
        if kind == "number":
            token = "TYPE_FLOAT" if fmt == "float" else "TYPE_DOUBLE"
            return {"type": _types(["number", "string"], nullable), "pattern": _NUMBER_PATTERN,
                    "x-protoType": token}
        if kind == "boolean":
            return {"type": _types("boolean", nullable), "x-protoType": "TYPE_BOOL"}
        raise ValueError(f"unsupported discovery type {kind!r}/{fmt!r} in {owner}.{field}")


def schema_for(discovery_schemas: dict[str, dict], name: str) -> dict:
    """The self-contained JSON Schema of request body ``name`` with its reachable ``$defs``."""
    conv = _Converter(discovery_schemas, name)
    root = conv.named(name)
    root["type"] = "object"  # the body itself must be an object (validate_body checks this first)
    defs: dict[str, dict] = {}
    pending = sorted(conv.refs - {name})
    while pending:
        ref = pending.pop()
        if ref in defs:
            continue
        defs[ref] = conv.named(ref)
        pending.extend(sorted(conv.refs - defs.keys() - {name}))
    out = {"$schema": DRAFT, "title": name, **root}
    if defs:
        out["$defs"] = defs
    return out


def _dump(obj: object) -> str:
    return json.dumps(obj, sort_keys=True, indent=1, ensure_ascii=False) + "\n"


def generate() -> dict[str, str]:
    """File name -> exact file content for everything under ``schemas/``."""
    sys.path.insert(0, str(ROOT))
    from gstack.gce import discovery

    index = {m.id: f"{m.request}.json" for m in discovery.methods() if m.request}
    files = {INDEX: _dump(index)}
    for name in sorted({m.request for m in discovery.methods() if m.request}):
        files[f"{name}.json"] = _dump(schema_for(discovery.schemas(), name))
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if schemas/ is not up to date")
    parser.add_argument("--out", type=Path, default=SCHEMAS_DIR, help="output directory (default: schemas/)")
    args = parser.parse_args(argv)

    files = generate()
    on_disk = {p.name for p in args.out.glob("*.json")} if args.out.is_dir() else set()
    if args.check:
        stale = sorted(n for n, text in files.items() if not (args.out / n).is_file()
                       or (args.out / n).read_text(encoding="utf-8") != text)
        extra = sorted(on_disk - files.keys())
        for n in stale:
            print(f"out of date: {args.out / n}", file=sys.stderr)
        for n in extra:
            print(f"not generated (remove it): {args.out / n}", file=sys.stderr)
        if stale or extra:
            print("run: python scripts/generate_schemas.py", file=sys.stderr)
            return 1
        print(f"{len(files)} schema files up to date")
        return 0

    args.out.mkdir(parents=True, exist_ok=True)
    written = 0
    for n, text in files.items():
        path = args.out / n
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            written += 1
    for n in sorted(on_disk - files.keys()):
        (args.out / n).unlink()
    print(f"{len(files)} schema files, {written} written, {len(on_disk - files.keys())} removed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
