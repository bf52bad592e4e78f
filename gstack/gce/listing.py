"""Lists: maxResults / pageToken / nextPageToken, orderBy, filter, and aggregatedList scopes.

Paging is keyset-based: the token carries the sort key of the last item returned, so pages stay
consistent while resources come and go. Items are stored JSON texts; they are parsed only when
a filter must look inside them.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import orjson

from core.errors import Invalid
from core.resources.queries import InvalidCursor
from gstack.gce.filters import compile_filter

MAX_RESULTS = 500


@dataclass
class ListParams:
    max_results: int
    after: list | None
    order: str  # "name" | "created"
    predicate: Callable[[dict], bool] | None
    token: str | None = None


def parse_params(args, schema: str | None) -> ListParams:
    raw = args.get("maxResults")
    if raw in (None, ""):
        max_results = MAX_RESULTS
    else:
        try:
            max_results = int(raw)
        except ValueError:
            raise Invalid("maxResults", raw, "Must be an integer.") from None
        if max_results < 0 or max_results > MAX_RESULTS:
            raise Invalid("maxResults", raw, "Must be between 0 and 500.")
        max_results = max_results or MAX_RESULTS
    order_by = (args.get("orderBy") or "").strip()
    if order_by in ("", "name"):
        order = "name"
    elif " ".join(order_by.split()) == "creationTimestamp desc":
        order = "created"
    else:
        raise Invalid("orderBy", order_by, "Currently, only sorting by 'name' or 'creationTimestamp desc' is supported.")
    after = None
    token = args.get("pageToken")
    if token:
        after = decode_token(token, order)
    predicate = compile_filter(args.get("filter"), schema)
    return ListParams(max_results, after, order, predicate, token or None)


def encode_token(key: list, order: str) -> str:
    return base64.urlsafe_b64encode(orjson.dumps({"o": order, "k": key})).decode().rstrip("=")


def _bad_token(token: str | None) -> Invalid:
    return Invalid("pageToken", token, "The page token is invalid or does not belong to this list.")


def decode_token(token: str, order: str) -> list:
    try:
        data = orjson.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        if data["o"] != order or not isinstance(data["k"], list):
            raise ValueError
        return data["k"]
    except (ValueError, KeyError, TypeError):
        raise _bad_token(token) from None


# A source yields (sort key, stored JSON text) in order, starting strictly after ``after``; the
# text may come as its UTF-8 bytes (core.resources.queries.committed_rows).
Text = TypeVar("Text", str, bytes)
Source = Callable[[list | None, int], Sequence[tuple[list, Text]]]


def memory_source(keyed: list[tuple[list, str]]) -> Source[str]:
    """A source over items already in memory and in order (the offerings, zones, regions)."""

    def source(after: list | None, limit: int) -> list[tuple[list, str]]:
        start = 0
        if after is not None:
            start = next((n + 1 for n, (k, _) in enumerate(keyed) if k == after), len(keyed))
        return keyed[start:start + limit]

    return source


def paginate(source: Source[Text], params: ListParams) -> tuple[Sequence[tuple[list, Text]], str | None]:
    """Collect one page of items; returns (items with keys, nextPageToken or None)."""
    wanted = params.max_results
    out: list[tuple[list, Text]] = []
    after = params.after
    if params.predicate is None:  # no row to test: the page is the rows, read in one go
        try:
            rows = source(after, wanted + 1)
        except InvalidCursor:
            raise _bad_token(params.token) from None
        if len(rows) > wanted:
            return rows[:wanted], encode_token(rows[wanted - 1][0], params.order)
        return rows, None
    batch = max(wanted * 2, 200)
    while True:
        try:
            rows = source(after, batch)
        except InvalidCursor:
            raise _bad_token(params.token) from None
        for key, text in rows:
            if params.predicate is not None and not params.predicate(orjson.loads(text)):
                after = key
                continue
            if len(out) == wanted:
                return out, encode_token(out[-1][0], params.order)
            out.append((key, text))
            after = key
        if len(rows) < batch:
            return out, None


def no_results_warning(scope: str) -> dict:
    return {"warning": {"code": "NO_RESULTS_ON_PAGE",
                        "message": f"There are no results for scope '{scope}' on this page.",
                        "data": [{"key": "scope", "value": scope}]}}


def aggregate(items: Iterable[tuple[list, str]], scopes: list[str], field: str, parse) -> dict:
    """Group (key whose first element is the scope, text) into GCE's aggregated ``items`` map."""
    grouped: dict[str, list] = {s: [] for s in scopes}
    for key, text in items:
        grouped.setdefault(key[0], []).append(parse(text))
    return {s: ({field: v} if v else no_results_warning(s)) for s, v in grouped.items()}
