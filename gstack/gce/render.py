"""Responses: JSON (pretty unless ``prettyPrint=false``), links on the caller's base URL, ``fields=``.

Stored bodies carry links on the canonical ``https://www.googleapis.com/compute/v1/`` base; one
byte replacement moves them all to the base URL the caller used, without walking the objects.
"""

from __future__ import annotations

import functools

import orjson
from flask import Response, current_app, request
from werkzeug.sansio.utils import get_current_url

from core.links import CANONICAL_BASE
from gstack.gce.fields import apply_fields, compile_fields

_CANONICAL = b'"' + CANONICAL_BASE.encode()
JSON_TYPE = "application/json; charset=UTF-8"
GOOGLE_DOMAIN = ".googleapis.com"


def base_url() -> str:
    """The base of every link: ``GSTACK_BASE_URL``; else, for a caller that used one of Google's
    hosts (through the intercepting proxy, gstack/intercept.py), Google's own
    ``https://www.googleapis.com/compute/v1/`` whichever host it was, as GCE does; else in a universe
    its compute host, the form GCE's links take there (``https://compute.UNIVERSE/compute/v1/``);
    else the scheme and host the caller used (``https://`` when gstack serves TLS)."""
    settings = current_app.config["GSTACK"]
    if settings.base_url:
        return settings.base_url.rstrip("/") + "/compute/v1/"
    if request.scheme == "https" and request.host.partition(":")[0].endswith(GOOGLE_DOMAIN):
        return CANONICAL_BASE
    if settings.universe_domain:
        return f"https://compute.{settings.universe_domain}/compute/v1/"
    return _api_base(request.scheme, request.host)


@functools.lru_cache(maxsize=64)
def _api_base(scheme: str, host: str) -> str:
    """``request.host_url`` + ``compute/v1/``, remembered: werkzeug rebuilds and IRI-decodes it on
    every request, and callers use a handful of hosts."""
    return get_current_url(scheme, host) + "compute/v1/"


def rewrite_links(data: bytes) -> bytes:
    base = base_url()
    if base == CANONICAL_BASE:
        return data
    return data.replace(_CANONICAL, b'"' + base.encode())


def wants_pretty() -> bool:
    return request.args.get("prettyPrint", "true").lower() not in ("false", "0")


def selector():
    return compile_fields(request.args.get("fields"))


def needs_objects() -> bool:
    """Whether stored JSON must be parsed (for ``fields=``) instead of passed through."""
    return bool(request.args.get("fields"))


def json_response(payload: object, status: int = 200) -> Response:
    sel = selector()
    if sel is not None and isinstance(payload, dict):
        payload = apply_fields(payload, sel)
    option = orjson.OPT_INDENT_2 if wants_pretty() else 0
    body = rewrite_links(orjson.dumps(payload, option=option))
    return Response(body, status=status, content_type=JSON_TYPE)


def stored(text: str) -> object:
    """A stored body, parsed only when ``fields=`` needs the object."""
    return storing()(text)


def stored_all(texts: list[str]) -> list:
    """:func:`stored` for a page of bodies, asking the request once, not once per item."""
    wrap = storing()
    return [wrap(t) for t in texts]


def storing():
    """:func:`stored` decided for this request: the function that wraps each stored body."""
    return orjson.loads if needs_objects() else orjson.Fragment
