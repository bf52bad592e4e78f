"""The compute v1 discovery document shipped in google-api-python-client: our route table and
the source of request schemas and method scopes."""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass


def document_path() -> str:
    import googleapiclient

    return os.path.join(os.path.dirname(googleapiclient.__file__), "discovery_cache", "documents", "compute.v1.json")


@functools.cache
def document() -> dict:
    with open(document_path(), encoding="utf-8") as f:
        return json.load(f)


@dataclass(frozen=True)
class Method:
    id: str  # compute.instances.get
    resource: str  # instances
    name: str  # get
    http_method: str
    path: str  # projects/{project}/zones/{zone}/instances/{instance}
    scopes: frozenset[str]
    request: str | None  # schema name of the body
    response: str | None
    parameters: dict

    @property
    def read_only(self) -> bool:
        return "https://www.googleapis.com/auth/compute.readonly" in self.scopes


@functools.cache
def methods() -> tuple[Method, ...]:
    out = []
    for rname, resource in document()["resources"].items():
        for mname, m in resource.get("methods", {}).items():
            out.append(Method(
                id=m["id"], resource=rname, name=mname, http_method=m["httpMethod"], path=m.get("flatPath", m["path"]),
                scopes=frozenset(m.get("scopes", [])), request=(m.get("request") or {}).get("$ref"),
                response=(m.get("response") or {}).get("$ref"), parameters=m.get("parameters", {}),
            ))
    return tuple(sorted(out, key=lambda x: x.id))


@functools.cache
def by_id() -> dict[str, Method]:
    return {m.id: m for m in methods()}


def schemas() -> dict[str, dict]:
    return document()["schemas"]


@functools.lru_cache(maxsize=4096)
def field_exists(schema: str, path: tuple[str, ...]) -> bool:
    """Whether ``path`` names a field of ``schema``, walked the way a list filter walks a resource:
    arrays are transparent (a path through a repeated field addresses its elements) and maps accept
    any key."""
    all_schemas = schemas()
    if schema not in all_schemas:
        raise ValueError(f"unknown discovery schema {schema!r}")
    node: dict = all_schemas[schema]
    for seg in path:
        node = _deref(node, all_schemas)
        if "additionalProperties" in node:
            return True
        props = node.get("properties")
        if not props or seg not in props:
            return False
        node = props[seg]
    return True


def _deref(node: dict, all_schemas: dict) -> dict:
    while True:
        if "$ref" in node:
            node = all_schemas[node["$ref"]]
        elif node.get("type") == "array" and "items" in node:
            node = node["items"]
        else:
            return node
