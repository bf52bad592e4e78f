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
    return base_url_for(current_app.config["GSTACK"], request.scheme, request.host)


def base_url_for(settings, scheme: str, host: str) -> str:
    """:func:`base_url` for a request's scheme and ``Host`` (gstack/api/fastread.py's, served outside Flask)."""
    if settings.base_url:
        return settings.base_url.rstrip("/") + "/compute/v1/"
    if scheme == "https" and host.partition(":")[0].endswith(GOOGLE_DOMAIN):
        return CANONICAL_BASE
    if settings.universe_domain:
        return f"https://compute.{settings.universe_domain}/compute/v1/"
    return _api_base(scheme, host)


@functools.lru_cache(maxsize=64)
def _api_base(scheme: str, host: str) -> str:
    """``request.host_url`` + ``compute/v1/``, remembered: werkzeug rebuilds and IRI-decodes it on
    every request, and callers use a handful of hosts."""
    return get_current_url(scheme, host) + "compute/v1/"


def rewrite_links(data: bytes, base: str | None = None) -> bytes:
    """Every link of ``data`` on ``base`` (the request's :func:`base_url` unless given)."""
    base = base or base_url()
    if base == CANONICAL_BASE:
        return data
    return data.replace(_CANONICAL, b'"' + base.encode())


def wants_pretty(args=None) -> bool:
    """``prettyPrint`` of the request's query (or of ``args``): true unless ``false`` or ``0``."""
    return (request.args if args is None else args).get("prettyPrint", "true").lower() not in ("false", "0")


def selector():
    return compile_fields(request.args.get("fields"))


def needs_objects() -> bool:
    """Whether stored JSON must be parsed (for ``fields=``) instead of passed through."""
    return bool(request.args.get("fields"))


def json_response(payload: object, status: int = 200) -> Response:
    sel = selector()
    if sel is not None and isinstance(payload, dict):
        payload = apply_fields(payload, sel)
    return Response(render(payload, wants_pretty(), base_url()), status=status, content_type=JSON_TYPE)


def render(payload: object, pretty: bool, base: str) -> bytes:
    """The bytes of a JSON answer: pretty-printed (GCE's default) or compact, links on ``base``."""
    return rewrite_links(orjson.dumps(payload, option=orjson.OPT_INDENT_2 if pretty else 0), base)


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
