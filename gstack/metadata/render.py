"""The metadata tree and how GCE's metadata server answers a path of it.

A directory lists its children one per line, sub-directories with a trailing ``/``;
``?recursive=true`` answers the whole subtree as JSON, with the fixed keys in camelCase
(``network-interfaces`` → ``networkInterfaces``) and the guest's own keys (attributes, service
accounts) as they are; numbered directories (``network-interfaces/0/``) become JSON arrays.
``?alt=json|text`` picks the format against the default (text for a leaf, JSON when recursive).
Every answer carries an ETag: a digest of what it says, so a client's ``last_etag`` is stable
across processes and restarts.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import orjson

JsonValue = str | int | bool | list[str] | dict[str, str]


@dataclass(frozen=True)
class Leaf:
    """A value. ``text`` is how it reads alone when that differs from its JSON (``scopes`` one per
    line); ``json_alone``: it reads as JSON even alone (``tags``); ``hidden``: listed, but left out
    of recursive answers (``token`` and ``identity`` are made when asked for, one by one)."""

    value: JsonValue
    text: str | None = None
    json_alone: bool = False
    hidden: bool = False


@dataclass(frozen=True)
class Dir:
    """A directory. ``style``: "fields" (fixed names, camelCase in JSON), "map" (the guest's own
    keys, kept as they are) or "list" (numbered entries, a JSON array)."""

    children: dict[str, Node] = field(default_factory=dict)
    style: str = "fields"


Node = Leaf | Dir


@dataclass(frozen=True)
class Answer:
    """A body, and its ETag: a digest of the body and of ``state`` (whether the guest runs), so a
    stop or a start changes every ETag and ends the guest's waits, whenever it began them."""

    body: str
    content_type: str
    state: str = ""

    @property
    def etag(self) -> str:
        return hashlib.sha256(f"{self.state}\n{self.content_type}\n{self.body}".encode()).hexdigest()[:16]


TEXT = "application/text"
JSON = "application/json"


def camel(name: str) -> str:
    head, *rest = name.split("-")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def walk(root: Dir, segments: list[str]) -> Node | None:
    node: Node = root
    for segment in segments:
        if not isinstance(node, Dir) or segment not in node.children:
            return None
        node = node.children[segment]
    return node


def to_json(node: Node) -> object:
    if isinstance(node, Leaf):
        return node.value
    visible = {name: child for name, child in node.children.items() if not (isinstance(child, Leaf) and child.hidden)}
    if node.style == "list":
        return [to_json(child) for _, child in sorted(visible.items(), key=lambda kv: int(kv[0]))]
    if node.style == "map":
        return {name: to_json(child) for name, child in visible.items()}
    return {camel(name): to_json(child) for name, child in visible.items()}


def _leaf_text(leaf: Leaf) -> str:
    if leaf.text is not None:
        return leaf.text
    if isinstance(leaf.value, str):
        return leaf.value
    if isinstance(leaf.value, bool):
        return "TRUE" if leaf.value else "FALSE"
    if isinstance(leaf.value, int):
        return str(leaf.value)
    return orjson.dumps(leaf.value).decode()


def _flatten(node: Node, prefix: str) -> list[str]:
    """``alt=text`` of a recursive answer: one ``path value`` line per leaf."""
    if isinstance(node, Leaf):
        return [] if node.hidden else [f"{prefix} {_leaf_text(node)}".strip()]
    lines: list[str] = []
    for name, child in sorted(node.children.items()):
        lines += _flatten(child, f"{prefix}{name}" + ("/" if isinstance(child, Dir) else ""))
    return lines


def listing(node: Dir) -> list[str]:
    return [name + ("/" if isinstance(child, Dir) else "") for name, child in sorted(node.children.items())]


def answer(node: Node, recursive: bool, alt: str | None, state: str = "") -> Answer:
    """What GET of ``node`` says with these query parameters (``state``: see :class:`Answer`)."""
    found = _answer(node, recursive, alt)
    return Answer(found.body, found.content_type, state)


def _answer(node: Node, recursive: bool, alt: str | None) -> Answer:
    as_json = alt == "json" if alt in ("json", "text") else recursive
    if isinstance(node, Leaf):
        if as_json or (node.json_alone and alt != "text"):
            return Answer(orjson.dumps(node.value).decode(), JSON)
        return Answer(_leaf_text(node), TEXT)
    if recursive:
        if as_json:
            return Answer(orjson.dumps(to_json(node)).decode(), JSON)
        return Answer("\n".join(_flatten(node, "")) + "\n", TEXT)
    names = listing(node)
    if as_json:
        return Answer(orjson.dumps(names).decode(), JSON)
    return Answer("".join(name + "\n" for name in names), TEXT)
