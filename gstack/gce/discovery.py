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
