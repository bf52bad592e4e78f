"""The ``filter=`` query parameter of GCE list methods.

GCE accepts two unrelated grammars under the same parameter and we must accept both:

* the documented AIP-160-like dialect (``status = RUNNING``, ``labels.env:*``, ``(a = 1) OR (b = 2)``)
  that client libraries and humans write, and
* the legacy regex dialect (``(name eq ".*\\bfoo\\b.*") (status ne RUNNING)``) that gcloud generates
  from its client-side ``--filter`` expressions.

An expression is parsed once into a tree of plain closures so that evaluating it over thousands of
resource dicts per request costs little more than the dict lookups themselves.  Precedence follows
AIP-160 rather than most programming languages: ``OR`` binds tighter than ``AND`` (and juxtaposition),
which is what makes GCE's own example ``(A) OR (B) AND (C)`` read as "(A or B) and C".
"""

from __future__ import annotations

import functools
import operator
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from core.errors import Invalid
from gstack.gce.discovery import field_exists

Predicate = Callable[[dict], bool]

__all__ = ["Predicate", "compile_filter", "parse_filter"]


def compile_filter(expr: str | None, schema: str | None = None) -> Predicate | None:
    """Compile a list filter into a predicate over a resource's JSON dict, or None when there is nothing
    to filter.

    ``schema`` names a discovery-document schema ("Instance", "Disk"...) to check field names against:
    GCE rejects a filter on a field its resource does not have instead of silently matching nothing,
    and a client relying on that error would otherwise see an empty list it cannot tell from a real one.
    Results are cached because the same filter strings (gcloud's) recur on every poll.
    """
    if expr is None or not expr.strip():
        return None
    return _compile_cached(expr, schema)


@functools.lru_cache(maxsize=512)
def _compile_cached(expr: str, schema: str | None) -> Predicate:
    return parse_filter(expr, schema).compile()


@functools.lru_cache(maxsize=512)
def parse_filter(expr: str, schema: str | None = None) -> _Node:
    """The expression tree of a non-empty filter (what :mod:`gstack.gce.narrowing` reads), its
    field names checked against ``schema``."""
    parser = _LegacyParser(expr) if _is_legacy(expr) else _AipParser(expr)
    node = parser.parse()
    if schema is not None:
        for path in node.fields():
            if not field_exists(schema, path):
                raise Invalid(
                    "filter", expr,
                    message=f"Invalid value for field 'filter': '{expr}'. Invalid field name '{'.'.join(path)}'.",
                )
    return node


# Parentheses and NOTs nested deeper than this are refused (400) before the parser's recursion could
# exhaust the interpreter's stack (a 500): no real filter comes near it.
MAX_DEPTH = 64


def _syntax_error(expr: str) -> Invalid:
    return Invalid("filter", expr, message=f"Invalid value for field 'filter': '{expr}'. Invalid list filter expression.")


# --------------------------------------------------------------------------- evaluation helpers


def _resolver(path: tuple[str, ...]) -> Callable[[dict], Sequence[Any]]:
    """Return a function yielding every value the path reaches: repeated fields fan out, so a comparison
    over the result is an "any element matches" test.  Missing values (and JSON nulls) yield nothing."""
    if len(path) == 1:
        key = path[0]

        def one(r: dict) -> Sequence[Any]:
            v = r.get(key)
            if v is None:
                return ()
            if isinstance(v, list):
                return [x for x in v if x is not None]
            return (v,)

        return one

    def many(r: dict) -> Sequence[Any]:
        cur: list[Any] = [r]
        for seg in path:
            nxt: list[Any] = []
            for v in cur:
                if isinstance(v, dict):
                    x = v.get(seg)
                    if isinstance(x, list):
                        nxt.extend(x)
                    elif x is not None:
                        nxt.append(x)
            if not nxt:
                return ()
            cur = nxt
        return [x for x in cur if x is not None]

    return many


_NUM_RE = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_INT_RE = re.compile(r"[+-]?\d+")


def _num(s: str) -> int | float | None:
    """Parse a decimal number strictly: ids are uint64 strings, so integers must stay exact ints, and
    Python's float() would also accept 'nan', 'inf' and '1_000', which are names, not numbers."""
    if _INT_RE.fullmatch(s):
        return int(s)
    if _NUM_RE.fullmatch(s):
        return float(s)
    return None


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


@dataclass(frozen=True)
class _Literal:
    text: str  # unescaped value, '*' kept as typed
    wildcard: re.Pattern[str] | None  # set when the value has an unescaped '*'
    star_only: bool  # the value is exactly an unescaped '*': a presence test under ':'
    num: int | float | None
    boolean: bool | None

    @classmethod
    def build(cls, chars: list[tuple[str, bool]]) -> _Literal:
        """``chars`` pairs each character with whether it was escaped, since only an unescaped '*' is a
        wildcard."""
        text = "".join(c for c, _ in chars)
        has_star = any(c == "*" and not esc for c, esc in chars)
        wildcard = None
        if has_star:
            wildcard = re.compile("".join(".*" if c == "*" and not esc else re.escape(c) for c, esc in chars), re.S)
        lower = text.lower()
        return cls(
            text=text, wildcard=wildcard, star_only=len(chars) == 1 and has_star,
            num=_num(text), boolean=True if lower == "true" else False if lower == "false" else None,
        )


_ORDER_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
}


def _eq_matcher(lit: _Literal) -> Callable[[Any], bool]:
    def eq(v: Any) -> bool:
        if isinstance(v, str):
            if lit.wildcard is not None:
                return lit.wildcard.fullmatch(v) is not None
            if v == lit.text:
                return True
            if lit.num is not None:
                n = _num(v)
                return n is not None and n == lit.num
            return False
        if isinstance(v, bool):
            return lit.boolean is not None and v is lit.boolean
        if _is_number(v):
            return lit.num is not None and v == lit.num
        return False

    return eq


def _has_matcher(lit: _Literal) -> Callable[[Any], bool]:
    eq = _eq_matcher(lit)

    def has(v: Any) -> bool:
        if isinstance(v, str):
            if lit.wildcard is not None:
                return lit.wildcard.search(v) is not None
            return lit.text in v
        if isinstance(v, dict):  # a map "has" a key
            return any(eq(k) for k in v)
        return eq(v)

    return has


def _order_matcher(lit: _Literal, op: str) -> Callable[[Any], bool]:
    cmp = _ORDER_OPS[op]

    def order(v: Any) -> bool:
        if isinstance(v, str):
            if lit.num is not None:
                n = _num(v)
                if n is not None:
                    return cmp(n, lit.num)
            return cmp(v, lit.text)
        if _is_number(v):
            return lit.num is not None and cmp(v, lit.num)
        return False

    return order


# --------------------------------------------------------------------------- expression tree


class _Node:
    def fields(self) -> list[tuple[str, ...]]:
        raise NotImplementedError

    def compile(self) -> Predicate:
        raise NotImplementedError


@dataclass
class _Compare(_Node):
    path: tuple[str, ...]
    op: str
    lit: _Literal

    def fields(self) -> list[tuple[str, ...]]:
        return [self.path]

    def compile(self) -> Predicate:
        resolve = _resolver(self.path)
        if self.op == ":" and self.lit.star_only:
            return lambda r: bool(resolve(r))
        if self.op in ("=", "!="):
            eq = _eq_matcher(self.lit)
            if self.op == "=":
                return lambda r: any(eq(v) for v in resolve(r))
            # "!=" is the negation of "=": a missing field, or a list with no equal element, matches.
            return lambda r: not any(eq(v) for v in resolve(r))
        match = _has_matcher(self.lit) if self.op == ":" else _order_matcher(self.lit, self.op)
        return lambda r: any(match(v) for v in resolve(r))


@dataclass
class _Regex(_Node):
    """A legacy ``field eq|ne regex`` constraint."""

    path: tuple[str, ...]
    negate: bool
    pattern: re.Pattern[str]

    def fields(self) -> list[tuple[str, ...]]:
        return [self.path]

    def compile(self) -> Predicate:
        resolve = _resolver(self.path)
        fullmatch = self.pattern.fullmatch

        def matches(v: Any) -> bool:
            if isinstance(v, bool):
                return fullmatch("true" if v else "false") is not None
            if isinstance(v, str):
                return fullmatch(v) is not None
            if _is_number(v):
                return fullmatch(str(v)) is not None
            return False

        if self.negate:
            return lambda r: not any(matches(v) for v in resolve(r))
        return lambda r: any(matches(v) for v in resolve(r))


@dataclass
class _Not(_Node):
    child: _Node

    def fields(self) -> list[tuple[str, ...]]:
        return self.child.fields()

    def compile(self) -> Predicate:
        p = self.child.compile()
        return lambda r: not p(r)


@dataclass
class _All(_Node):
    children: list[_Node]

    def fields(self) -> list[tuple[str, ...]]:
        return [f for c in self.children for f in c.fields()]

    def compile(self) -> Predicate:
        preds = [c.compile() for c in self.children]
        if len(preds) == 2:
            a, b = preds
            return lambda r: a(r) and b(r)
        return lambda r: all(p(r) for p in preds)


@dataclass
class _Any(_Node):
    children: list[_Node]

    def fields(self) -> list[tuple[str, ...]]:
        return [f for c in self.children for f in c.fields()]

    def compile(self) -> Predicate:
        preds = [c.compile() for c in self.children]
        if len(preds) == 2:
            a, b = preds
            return lambda r: a(r) or b(r)
        return lambda r: any(p(r) for p in preds)


def _all(children: list[_Node]) -> _Node:
    return children[0] if len(children) == 1 else _All(children)


def _any(children: list[_Node]) -> _Node:
    return children[0] if len(children) == 1 else _Any(children)


# --------------------------------------------------------------------------- dialect detection

_QUOTED_RE = re.compile(r""""(?:\\.|[^"\\])*"?|'(?:\\.|[^'\\])*'?""", re.S)
# A field name followed by a legacy operator word: "name eq", "(zone ne".
_LEGACY_OP_RE = re.compile(r"[\w.]\s+(?:eq|ne)\s")


def _is_legacy(expr: str) -> bool:
    """gcloud's regex dialect is recognised by its ``eq``/``ne`` operator words outside quotes; mixing
    in AIP operators is then left to the strict legacy parser to reject."""
    return _LEGACY_OP_RE.search(_QUOTED_RE.sub('""', expr) + " ") is not None


# --------------------------------------------------------------------------- parsers

_FIELD_RE = re.compile(r"[A-Za-z_][\w-]*(?:\.[\w-]+)*")
_AIP_OP_RE = re.compile(r"<=|>=|!=|=|<|>|:")
_KEYWORDS = frozenset({"AND", "OR", "NOT"})


class _Scanner:
    def __init__(self, expr: str):
        self.s = expr
        self.i = 0

    def error(self) -> Invalid:
        return _syntax_error(self.s)

    def skip_ws(self) -> bool:
        start = self.i
        while self.i < len(self.s) and self.s[self.i].isspace():
            self.i += 1
        return self.i > start

    def at_end(self) -> bool:
        return self.i >= len(self.s)

    def peek(self) -> str:
        return self.s[self.i] if self.i < len(self.s) else ""

    def expect(self, ch: str) -> None:
        if self.peek() != ch:
            raise self.error()
        self.i += 1

    def match(self, pattern: re.Pattern[str]) -> str | None:
        m = pattern.match(self.s, self.i)
        if not m or not m.group():
            return None
        self.i = m.end()
        return m.group()

    def field(self) -> tuple[str, ...]:
        name = self.match(_FIELD_RE)
        if name is None or name in _KEYWORDS:
            raise self.error()
        return tuple(name.split("."))


class _AipParser(_Scanner):
    """AIP-160 grammar::

        expression := sequence (AND sequence)*
        sequence   := factor factor*            (juxtaposition is AND)
        factor     := term (OR term)*
        term       := [NOT | '-'] simple
        simple     := '(' expression ')' | field op value
    """

    depth = 0

    def parse(self) -> _Node:
        node = self.expression()
        self.skip_ws()
        if not self.at_end():
            raise self.error()
        return node

    def deeper(self) -> None:
        """One more level of parentheses or NOT; refused past :data:`MAX_DEPTH`."""
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise Invalid("filter", self.s, message=f"Invalid value for field 'filter': '{self.s}'. The filter is "
                                                    f"nested too deeply (more than {MAX_DEPTH} levels).")

    def keyword(self, kw: str) -> bool:
        """Consume ``kw`` only as a whole word, so fields like ``ORDER`` or ``NOTE`` are not keywords."""
        self.skip_ws()
        end = self.i + len(kw)
        if self.s.startswith(kw, self.i) and (end == len(self.s) or self.s[end].isspace() or self.s[end] == "("):
            self.i = end
            return True
        return False

    def expression(self) -> _Node:
        parts = [self.sequence()]
        while self.keyword("AND"):
            parts.append(self.sequence())
        return _all(parts)

    def sequence(self) -> _Node:
        parts = [self.factor()]
        while True:
            self.skip_ws()
            if self.at_end() or self.peek() == ")":
                break
            save = self.i
            if self.keyword("AND"):
                self.i = save
                break
            parts.append(self.factor())
        return _all(parts)

    def factor(self) -> _Node:
        parts = [self.term()]
        while self.keyword("OR"):
            parts.append(self.term())
        return _any(parts)

    def term(self) -> _Node:
        if self.keyword("NOT"):
            self.deeper()
            node = _Not(self.term())
            self.depth -= 1
            return node
        self.skip_ws()
        if self.peek() == "-":
            self.i += 1
            return _Not(self.simple())
        return self.simple()

    def simple(self) -> _Node:
        self.skip_ws()
        if self.peek() == "(":
            self.i += 1
            self.deeper()
            node = self.expression()
            self.skip_ws()
            self.expect(")")
            self.depth -= 1
            return node
        path = self.field()
        self.skip_ws()
        op = self.match(_AIP_OP_RE)
        if op is None:
            raise self.error()
        self.skip_ws()
        return _Compare(path, op, self.value())

    def value(self) -> _Literal:
        chars: list[tuple[str, bool]] = []
        quote = self.peek()
        if quote in ("'", '"'):
            self.i += 1
            while True:
                if self.at_end():
                    raise self.error()
                c = self.s[self.i]
                self.i += 1
                if c == quote:
                    break
                if c == "\\":
                    if self.at_end():
                        raise self.error()
                    chars.append((self.s[self.i], True))
                    self.i += 1
                else:
                    chars.append((c, False))
            return _Literal.build(chars)
        while not self.at_end():
            c = self.s[self.i]
            if c.isspace() or c in "()":
                break
            if c in "'\"":
                raise self.error()
            self.i += 1
            if c == "\\":
                if self.at_end():
                    raise self.error()
                chars.append((self.s[self.i], True))
                self.i += 1
            else:
                chars.append((c, False))
        if not chars:
            raise self.error()
        return _Literal.build(chars)


class _LegacyParser(_Scanner):
    """``field eq|ne literal``, alone or as a run of parenthesised constraints that are all ANDed.

    Anything else (AIP operators, AND/OR/NOT, negation) is a dialect mix and fails to parse."""

    def parse(self) -> _Node:
        self.skip_ws()
        terms: list[_Node] = []
        if self.peek() == "(":
            while not self.at_end():
                self.expect("(")
                self.skip_ws()
                terms.append(self.constraint())
                self.skip_ws()
                self.expect(")")
                self.skip_ws()
        else:
            terms.append(self.constraint())
            self.skip_ws()
            if not self.at_end():
                raise self.error()
        return _all(terms)

    def constraint(self) -> _Node:
        path = self.field()
        if not self.skip_ws():
            raise self.error()
        op = self.s[self.i:self.i + 2]
        if op not in ("eq", "ne"):
            raise self.error()
        self.i += 2
        if not self.skip_ws():
            raise self.error()
        literal = self.literal()
        try:
            pattern = re.compile(literal)
        except (re.error, OverflowError, RecursionError):
            raise self.error() from None
        return _Regex(path, op == "ne", pattern)

    def literal(self) -> str:
        """Quoted literals keep their backslashes: they are regex escapes (``\\b``, ``\\-``) and an
        escaped quote means the same thing to the regex engine as a bare one."""
        quote = self.peek()
        start = self.i
        if quote in ("'", '"'):
            self.i += 1
            while True:
                if self.at_end():
                    raise self.error()
                c = self.s[self.i]
                if c == "\\":
                    self.i += 2
                    continue
                self.i += 1
                if c == quote:
                    return self.s[start + 1:self.i - 1]
        depth = 0
        while not self.at_end():
            c = self.s[self.i]
            if c.isspace() or (c == ")" and depth == 0):
                break
            if c == "\\":
                self.i += 2
                continue
            depth += (c == "(") - (c == ")")
            self.i += 1
        self.i = min(self.i, len(self.s))
        if self.i == start or depth != 0:
            raise self.error()
        return self.s[start:self.i]
