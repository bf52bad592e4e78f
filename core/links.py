"""Parsing resource references in request bodies, and the canonical link base.

Bodies may name a resource by full URL (any host), ``projects/P/...``, or a scope-relative
partial path (``zones/Z/machineTypes/M``, ``global/networks/N``). All of them resolve to a
:class:`Ref`; stored bodies always hold the full canonical URL on :data:`CANONICAL_BASE`, which the
HTTP layer rewrites to the caller's base URL when it renders.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

CANONICAL_BASE = "https://www.googleapis.com/compute/v1/"

_URL_PREFIX = re.compile(r"^[a-z][a-z0-9+.-]*://[^/]+/(?:compute/(?:v1|beta|alpha)/)?")


@dataclass(frozen=True)
class Ref:
    project: str
    scope: str  # "zones/Z", "regions/R", "global" (or "" for a project)
    collection: str
    name: str

    @property
    def path(self) -> str:
        """The relative path used in error messages: ``projects/P/zones/Z/instances/X``."""
        if self.scope:
            return f"projects/{self.project}/{self.scope}/{self.collection}/{self.name}"
        return f"projects/{self.project}"

    @property
    def url(self) -> str:
        return CANONICAL_BASE + self.path


def path_of(project: str, scope: str, collection: str, name: str) -> str:
    return f"projects/{project}/{scope}/{collection}/{name}"


def url_of(project: str, scope: str, collection: str, name: str) -> str:
    return CANONICAL_BASE + path_of(project, scope, collection, name)


def scope_url(project: str, scope: str) -> str:
    return f"{CANONICAL_BASE}projects/{project}/{scope}"


def project_url(project: str) -> str:
    return f"{CANONICAL_BASE}projects/{project}"


def parse_ref(value: str, *, project: str, scope: str | None = None) -> Ref | None:
    """Resolve a reference; ``None`` when its shape is not a resource path at all.

    ``scope`` is the caller's scope (e.g. ``zones/us-central1-a``), used for bare collection
    paths such as ``machineTypes/e2-small``.
    """
    rest = _URL_PREFIX.sub("", value.strip())
    parts = [p for p in rest.split("/") if p]
    if len(parts) >= 2 and parts[0] == "projects":
        project, parts = parts[1], parts[2:]
    if not parts:
        return None
    if parts[0] in ("zones", "regions") and len(parts) >= 4:
        sc, parts = f"{parts[0]}/{parts[1]}", parts[2:]
    elif parts[0] == "global" and len(parts) >= 3:
        sc, parts = "global", parts[1:]
    elif len(parts) == 2 and scope is not None:
        sc = scope
    else:
        return None
    if len(parts) == 3 and parts[0] == "images" and parts[1] == "family":
        return Ref(project, sc, "images/family", parts[2])
    if len(parts) != 2:
        return None
    return Ref(project, sc, parts[0], parts[1])


def last_segment(value: str) -> str:
    return value.rstrip("/").rsplit("/", 1)[-1]
