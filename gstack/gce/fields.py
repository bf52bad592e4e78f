"""Partial responses: the ``fields=`` query parameter every Google API accepts.

The grammar is tiny (``a,b/c,d(e,f/g),*``) but clients lean on it: gcloud asks for
``items(name,zone),nextPageToken`` on every list and Terraform trims operation polls with it, so the
selector is compiled once per distinct spec and applied by a plain recursive walk.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from typing import Any

from core.errors import Invalid

__all__ = ["Selector", "apply_fields", "compile_fields"]


@dataclass(frozen=True)
class Selector:
    """A selection tree.  ``children`` maps a field name (or ``*``) to the selection below it, where
    None means "the whole value".  Wildcard selections are merged into the named siblings at compile
    time so that applying one is a single dict lookup per key."""

    children: dict[str, Selector | None] = field(default_factory=dict)

    def child(self, key: str) -> tuple[bool, Selector | None]:
        """Return (selected, sub-selection) for one key of the object being filtered."""
        if key in self.children:
            return True, self.children[key]
        if "*" in self.children:
            return True, self.children["*"]
        return False, None


def compile_fields(spec: str | None) -> Selector | None:
    """Parse a ``fields=`` value; None when there is nothing to select (the whole response is returned).

    Raises Invalid on malformed specs rather than ignoring them, because silently returning the full
    resource would hide a client bug that real GCE reports."""
    if spec is None or not spec.strip():
        return None
    return _compile_cached(spec)


def apply_fields(obj: dict, selector: Selector) -> dict:
    """Project ``obj`` onto ``selector``, keeping the original key order.

    Fields the selection names but the object lacks are just absent; objects (and lists of objects)
    that end up empty after projection are dropped too, as Google's partial responses do, so asking for
    ``items(name)`` of a map entry that only carries a ``warning`` does not leave ``{}`` behind."""
    return _apply_dict(obj, selector)


def _apply_dict(obj: dict, sel: Selector) -> dict:
    out: dict = {}
    for key, value in obj.items():
        selected, sub = sel.child(key)
        if not selected:
            continue
        if sub is None:
            out[key] = value
            continue
        projected = _apply_value(value, sub)
        if projected is not _EMPTY:
            out[key] = projected
    return out


_EMPTY = object()


def _apply_value(value: Any, sel: Selector) -> Any:
    """A sub-selection only has meaning for objects; it applies to each element of a list, and scalars
    (which have no sub-fields) are not part of the result."""
    if isinstance(value, dict):
        d = _apply_dict(value, sel)
        return d if d else _EMPTY
    if isinstance(value, list):
        items = [p for p in (_apply_value(v, sel) for v in value) if p is not _EMPTY]
        return items if items else _EMPTY
    return _EMPTY


# --------------------------------------------------------------------------- parsing

_NAME_RE = re.compile(r"\*|[A-Za-z0-9_\-]+")


def _error(spec: str) -> Invalid:
    return Invalid("fields", spec, message=f"Invalid field selection {spec}")


@functools.lru_cache(maxsize=512)
def _compile_cached(spec: str) -> Selector | None:
    parser = _Parser(spec)
    tree = parser.selection_list(top=True)
    return _freeze(tree)


_ALL = None


class _Parser:
    """selection_list := selection (',' selection)*
    selection      := name ('/' name)* ['(' selection_list ')']"""

    def __init__(self, spec: str):
        self.s = spec
        self.i = 0

    def error(self) -> Invalid:
        return _error(self.s)

    def skip_ws(self) -> None:
        while self.i < len(self.s) and self.s[self.i] in " \t\r\n":
            self.i += 1

    def peek(self) -> str:
        return self.s[self.i] if self.i < len(self.s) else ""

    def selection_list(self, top: bool) -> dict:
        tree: dict = {}
        while True:
            path, sub = self.selection()
            _insert(tree, path, sub)
            self.skip_ws()
            c = self.peek()
            if c == ",":
                self.i += 1
                continue
            if top and c == "":
                return tree
            if not top and c == ")":
                return tree
            raise self.error()

    def selection(self) -> tuple[list[str], dict | None]:
        path = [self.name()]
        while True:
            self.skip_ws()
            if self.peek() != "/":
                break
            self.i += 1
            path.append(self.name())
        sub: dict | None = _ALL
        if self.peek() == "(":
            self.i += 1
            sub = self.selection_list(top=False)
            self.i += 1  # the ')' selection_list stopped at
        return path, sub

    def name(self) -> str:
        self.skip_ws()
        m = _NAME_RE.match(self.s, self.i)
        if not m:
            raise self.error()
        self.i = m.end()
        return m.group()


def _insert(tree: dict, path: list[str], sub: dict | None) -> None:
    """Add one selection to a mutable tree (dict of name -> subtree or None for everything)."""
    node = tree
    for seg in path[:-1]:
        if seg in node and node[seg] is _ALL:
            return  # an ancestor is already selected whole
        node = node.setdefault(seg, {})
    last = path[-1]
    node[last] = _merge(node[last], sub) if last in node else sub


def _merge(a: dict | None, b: dict | None) -> dict | None:
    if a is _ALL or b is _ALL:
        return _ALL
    out = dict(a)
    for k, v in b.items():
        out[k] = _merge(out[k], v) if k in out else v
    return out


def _freeze(tree: dict | None) -> Selector | None:
    """Turn the mutable tree into Selectors, folding the ``*`` selection into every named sibling: with
    ``*/a,x/b`` the key ``x`` must get both ``a`` and ``b``."""
    if tree is _ALL:
        return None
    has_wildcard = "*" in tree
    children: dict[str, Selector | None] = {}
    for key, sub in tree.items():
        if has_wildcard and key != "*":
            sub = _merge(sub, tree["*"])
        children[key] = _freeze(sub)
    return Selector(children)
