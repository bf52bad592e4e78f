"""What of a list filter the database's terms index can answer (:mod:`core.resources.narrowing`).

The filter stays the judge: it is tested on every row the database hands over. What is derived
here is only a necessary condition on one indexed field, so it must hold for every row the filter
matches; where that cannot be shown (a negation, but on a field every item holds, an OR over
different fields, a regex without a literal start on a field with many values) there is no
narrowing and the list reads every row.

The fields with terms hold JSON strings in every body gstack stores (names, statuses and URLs are
written by the core; label values are validated as strings), so only the filter's meaning on a
string value matters here.
"""

from __future__ import annotations

import functools
import re
from re import _constants as sre_constants  # type: ignore[attr-defined]
from re import _parser as sre_parse  # type: ignore[attr-defined]

from core.resources.narrowing import Narrowing
from core.terms import IRREGULAR, LABEL_PREFIX, NAME_WORD, NETWORK_IP, TOP_LEVEL
from gstack.gce.filters import _All, _Any, _Compare, _eq_matcher, _Node, _Regex, parse_filter

# Fields with few distinct values per scope: a regex or wildcard on them is tried on each value.
_FEW_VALUES = ("status", "zone", "region")
# Which narrowing to prefer in a conjunction: the one likely to match fewest rows.
_RANK = {"name": 0, NAME_WORD: 0, NETWORK_IP: 1, "zone": 4, "region": 4, "status": 5}
# Fields every item of the schema holds, as one string: there a negation (``status != TERMINATED``,
# gcloud's ``--filter=status!=TERMINATED``) is a narrowing too, the values it does not refuse. On
# another field an item without it would match a negation whatever its values. An Operation's
# status is a column that is never empty; an instance has one from its insert on (the core writes
# every state it takes), so its terms hold one status.
_ALWAYS_ONE_STRING = {"Operation": frozenset({"status"}), "Instance": frozenset({"status"})}


def narrowing_of(expr: str | None, schema: str | None) -> Narrowing | None:
    """The narrowing of a list filter, None when there is no filter or nothing to narrow by."""
    if expr is None or not expr.strip():
        return None
    return _cached(expr, schema)


@functools.lru_cache(maxsize=512)
def _cached(expr: str, schema: str | None) -> Narrowing | None:
    return _of(parse_filter(expr, schema), _ALWAYS_ONE_STRING.get(schema or "", frozenset()))


def _field(path: tuple[str, ...]) -> str | None:
    if len(path) == 1 and path[0] in TOP_LEVEL:
        return path[0]
    if len(path) == 2 and path[0] == "labels":
        return LABEL_PREFIX + path[1]
    if ".".join(path) == NETWORK_IP:
        return NETWORK_IP
    return None


def _rank(n: Narrowing) -> tuple[int, int]:
    kind = 0 if n.values is not None else 1 if n.prefix is not None else 2 if n.accept is not None else 3
    return kind, _RANK.get(n.field, 3)


def _of(node: _Node, always: frozenset[str]) -> Narrowing | None:
    """``always``: the fields of :data:`_ALWAYS_ONE_STRING` of the list's schema."""
    if isinstance(node, _All):
        found = [n for n in (_of(c, always) for c in node.children) if n is not None]
        return min(found, key=_rank) if found else None
    if isinstance(node, _Any):
        # (a = 1) OR (a = 2): the union of the values; anything else could match any row.
        parts = [_of(c, always) for c in node.children]
        first = parts[0]
        sets = [p.values for p in parts if p is not None and p.values is not None and first is not None
                and p.field == first.field]
        if first is None or len(sets) < len(parts):
            return None
        return Narrowing(first.field, values=frozenset().union(*sets))
    if isinstance(node, _Compare):
        return _of_compare(node, always)
    if isinstance(node, _Regex):
        return _of_regex(node, always)
    return None  # a negation


def _of_compare(node: _Compare, always: frozenset[str]) -> Narrowing | None:
    field = _field(node.path)
    if field is not None and field in always and node.op == "!=":
        eq = _eq_matcher(node.lit)
        return Narrowing(field, accept=lambda v: not eq(v))
    if field is None or node.op != "=":
        return None
    lit = node.lit
    if lit.wildcard is None and lit.num is None:
        return Narrowing(field, values=frozenset([lit.text]))  # a string equals the text, nothing else
    if field == "name" and lit.wildcard is not None:
        prefix, part = _literal_start(lit.wildcard), _literal_part(lit.wildcard)
        if prefix:
            return Narrowing(field, prefix=prefix)
        if part:
            return Narrowing(field, part=part)
    if field in _FEW_VALUES or field.startswith(LABEL_PREFIX):
        return Narrowing(field, accept=_eq_matcher(lit))
    return None


def _of_regex(node: _Regex, always: frozenset[str]) -> Narrowing | None:
    field = _field(node.path)
    if field is not None and field in always and node.negate:
        fullmatch = node.pattern.fullmatch
        return Narrowing(field, accept=lambda v: fullmatch(v) is None)
    if field is None or node.negate:
        return None
    start, whole = _literal_start(node.pattern), _is_literal(node.pattern)
    if whole and start is not None:
        return Narrowing(field, values=frozenset([start]))
    if field == "name" and start:
        return Narrowing(field, prefix=start)
    if field in _FEW_VALUES or field.startswith(LABEL_PREFIX):
        fullmatch = node.pattern.fullmatch
        return Narrowing(field, accept=lambda v: fullmatch(v) is not None)
    word = _word(node.pattern) if field == "name" else None
    if word:  # gcloud's ".*\bweb\b.*": a name one of whose words is "web"
        return Narrowing(NAME_WORD, values=frozenset([word, IRREGULAR]))
    part = _literal_part(node.pattern)
    if field == "name" and part:  # ".*\b-\b.*" (no word inside): a name containing "-"
        return Narrowing(field, part=part)
    return None


def _tokens(pattern: re.Pattern[str]) -> list | None:
    """The parsed regex, or None when a flag changes what its literals match (IGNORECASE...)."""
    if pattern.flags & (re.IGNORECASE | re.VERBOSE):
        return None
    try:
        return list(sre_parse.parse(pattern.pattern, pattern.flags))
    except Exception:  # noqa: BLE001 - the parser is CPython's; a regex it cannot re-read is not narrowed
        return None


def _literal_start(pattern: re.Pattern[str]) -> str | None:
    """The characters every full match starts with (the leading literals of the regex)."""
    tokens = _tokens(pattern)
    if tokens is None:
        return None
    chars = []
    for op, arg in tokens:
        if op is not sre_constants.LITERAL:
            break
        chars.append(chr(arg))
    return "".join(chars)


def _literal_part(pattern: re.Pattern[str]) -> str | None:
    """The longest run of literal characters at the top level of the regex: every full match holds
    it (the top-level items match one after the other; an alternation is one item)."""
    tokens = _tokens(pattern)
    if tokens is None:
        return None
    runs, run = [], ""
    for op, arg in tokens:
        if op is sre_constants.LITERAL:
            run += chr(arg)
        else:
            runs.append(run)
            run = ""
    runs.append(run)
    return max(runs, key=len)


_WORD_CHAR = re.compile(r"\w")
_EDGES = (sre_constants.AT_BOUNDARY, sre_constants.AT_BEGINNING, sre_constants.AT_BEGINNING_STRING,
          sre_constants.AT_END, sre_constants.AT_END_STRING)


def _word(pattern: re.Pattern[str]) -> str | None:
    r"""The longest ``\w`` run among the top-level literals of the regex that is delimited on both
    sides (by ``\b``, a non-word literal, an anchor, or the regex's own start or end), or None.

    Every full match holds that run as a maximal ``\w`` run of the value: the regex matches whole
    values, its top-level items match one after the other, and at each delimiter the character
    beyond the run is not a word character (``\b`` next to a word character says so). In a name of
    ``[A-Za-z0-9_-]`` that is one of the dash-separated parts :mod:`core.terms` keeps as
    ``nameword``. In ``.*\binst\-000500\b.*`` the delimited runs are ``inst`` and ``000500``."""
    tokens = _tokens(pattern)
    if tokens is None:
        return None
    best, run, delimited = "", "", True  # a filter's regex matches whole values: its ends are edges
    for op, arg in [*tokens, (sre_constants.AT, sre_constants.AT_END_STRING)]:
        if op is sre_constants.LITERAL and _WORD_CHAR.match(chr(arg)) is not None:
            run += chr(arg)
            continue
        edge = (op is sre_constants.AT and arg in _EDGES) or op is sre_constants.LITERAL
        if run and delimited and edge and len(run) > len(best):
            best = run
        run, delimited = "", edge
    return best or None


def _is_literal(pattern: re.Pattern[str]) -> bool:
    tokens = _tokens(pattern)
    return tokens is not None and all(op is sre_constants.LITERAL for op, _ in tokens)
