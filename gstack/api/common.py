"""get / list / aggregatedList for collections stored as resource rows: one implementation."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial

import orjson
from flask import Response

from core.links import CANONICAL_BASE
from core.resources import store
from core.resources.narrowing import filtered_rows
from core.resources.queries import committed_rows
from core.services import topology
from gstack.api.registry import ApiRequest
from gstack.gce.listing import aggregate, memory_source, paginate, parse_params
from gstack.gce.narrowing import narrowing_of
from gstack.gce.render import base_url, json_response, stored, stored_all, storing


def get(req: ApiRequest, collection: str, scope: str, name: str) -> Response:
    return json_response(stored(store.find_body(req.session, req.call.project, collection, scope, name)))


def list_scope(req: ApiRequest, collection: str, scope: str, kind: str, schema: str) -> Response:
    return json_response(scope_page(req.session, req.call.project, req.args, collection, scope, kind, schema,
                                    storing(), base_url()))


def scope_page(session, project: str, args, collection: str, scope: str, kind: str, schema: str,
               wrap: Callable[[str | bytes], object], base: str = CANONICAL_BASE,
               versions: list | None = None) -> dict:
    """One page of a scope's list (``args``: the request's query), each stored body wrapped by
    ``wrap`` (:func:`~gstack.gce.render.storing`): the list of :func:`list_scope` and of
    gstack/api/fastread.py. ``versions`` (a page without a filter): receives the versions of the
    rows read (:func:`~core.resources.queries.committed_rows`), for gstack/gce/listing_cache.py."""
    params = parse_params(args, schema)
    narrowing = narrowing_of(args.get("filter"), schema)
    page: Sequence[tuple[list, str | bytes]]
    if params.predicate is None:  # every row of the scope, as committed (a list is a read: nothing uncommitted)
        engine = session.get_bind().engine
        page, token = paginate(partial(committed_rows, engine, project, collection, scope, params.order, base=base,
                                       versions=versions),
                               params)
    else:
        page, token = paginate(partial(filtered_rows, session, project, collection, [scope], params.order,
                                       narrowing=narrowing), params)
    return list_envelope(kind, f"projects/{project}/{scope}/{collection}", [wrap(t) for _, t in page], token,
                         base)


def list_envelope(kind: str, path: str, items: list, token: str | None, base: str = CANONICAL_BASE) -> dict:
    """A list's answer; its ``selfLink`` on ``base`` (a page whose items are on it already then
    leaves the response's link rewrite nothing to replace, so nothing to copy)."""
    out: dict = {"kind": kind, "id": path}
    if items:
        out["items"] = items
    if token:
        out["nextPageToken"] = token
    out["selfLink"] = base + path
    return out


def scopes_of(req: ApiRequest, scope_type: str | tuple[str, ...]) -> list[str]:
    """The scopes of an aggregated list: every zone, every region, or (a tuple, or ``regions+zones``)
    those of several kinds in key order (collections with zonal and regional resources: managed
    groups, disks)."""
    if scope_type == "regions+zones":
        scope_type = ("regions", "zones")
    if isinstance(scope_type, tuple):
        return sorted(s for kind in scope_type for s in scopes_of(req, kind))
    if scope_type == "zones":
        return [f"zones/{z.name}" for z in topology.zones(req.session)]
    return [f"regions/{r.name}" for r in topology.regions(req.session)]


def aggregated_list(req: ApiRequest, collection: str, scope_type: str | tuple[str, ...], kind: str,
                    schema: str) -> Response:
    params = parse_params(req.args, schema)
    project = req.call.project
    scopes = scopes_of(req, scope_type)
    narrowing = narrowing_of(req.args.get("filter"), schema)
    page, token = paginate(
        lambda after, limit: filtered_rows(req.session, project, collection, scopes, params.order, after, limit,
                                           narrowing),
        params)
    out = list_envelope(kind, f"projects/{project}/aggregated/{collection}", [], token)
    out["items"] = aggregate(page, scopes, collection, storing())
    out.pop("nextPageToken", None)
    if token:
        out["nextPageToken"] = token
    out["unreachables"] = []
    return json_response(reorder(out))


def reorder(out: dict) -> dict:
    order = ["kind", "id", "items", "nextPageToken", "selfLink", "unreachables", "warning"]
    return {k: out[k] for k in order if k in out}


def static_list(req: ApiRequest, kind: str, path: str, items: list[dict], schema: str) -> Response:
    """A list over objects computed in memory (zones, machine types ...), with the same paging rules."""
    params = parse_params(req.args, schema)
    keyed = sorted(([i["name"]], orjson.dumps(i).decode()) for i in items)
    if params.order == "created":
        keyed = list(reversed(keyed))

    page, token = paginate(memory_source(keyed), params)
    return json_response(list_envelope(kind, path, stored_all([t for _, t in page]), token))
