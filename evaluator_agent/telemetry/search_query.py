"""A parsed search query: its AST nodes and what each one matches.

``search_parser.parse_search_query`` builds the tree; the index plans it over columns, and
``compile_predicate`` evaluates it record by record for everything else (monitors,
services, unindexed keys). The syntax is documented in ``query.py``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from evaluator_agent.telemetry.query_values import norm_value, num_value

__all__ = [
    "And",
    "FieldTerm",
    "MatchAll",
    "Node",
    "Not",
    "Or",
    "TextTerm",
    "compile_predicate",
    "field_value_matches",
    "norm_matches",
    "text_matches",
]


@dataclass(frozen=True)
class TextTerm:
    """Free text: a bare word or a quoted phrase, matched as a lower-case substring."""

    text: str  # lower case, outer wildcards removed
    regex: re.Pattern[str] | None = field(default=None, compare=False)  # for inner wildcards
    pieces: tuple[str, ...] = ()  # literal parts of a wildcard term (all must occur)


@dataclass(frozen=True)
class FieldTerm:
    """``key:value`` (``attr`` when written ``@key``)."""

    key: str
    attr: bool
    op: str  # eq | glob | exists | cmp | range
    value: str | None = None  # eq: lower-case value; glob: the pattern
    num: float | None = None  # eq: numeric form of value if any; cmp: threshold
    cmp: str | None = None  # > >= < <=
    lo: float | None = None
    hi: float | None = None
    lo_incl: bool = True
    hi_incl: bool = True
    regex: re.Pattern[str] | None = field(default=None, compare=False)

    @property
    def name(self) -> str:
        return ("@" if self.attr else "") + self.key


@dataclass(frozen=True)
class And:
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Not:
    item: Node


@dataclass(frozen=True)
class MatchAll:
    pass


Node = TextTerm | FieldTerm | And | Or | Not | MatchAll


def field_value_matches(term: FieldTerm, v: Any) -> bool:
    """Whether one raw field value satisfies a field term (lists match if any item does)."""
    if isinstance(v, list | tuple):
        return any(field_value_matches(term, x) for x in v)
    if v is None:
        return False
    return norm_matches(term, norm_value(v), num_value(v))


def norm_matches(term: FieldTerm, s: str | None, x: float | None) -> bool:
    """Whether a present value, given as its ``norm_value`` and ``num_value``, satisfies a term.

    The index calls this once per distinct value of a column rather than once per record.
    """
    op = term.op
    if op == "exists":
        return True
    if op == "eq":
        if s == term.value:
            return True
        return term.num is not None and x is not None and x == term.num
    if op == "glob":
        return s is not None and term.regex is not None and term.regex.fullmatch(s) is not None
    if x is None:
        return False
    if op == "cmp":
        t = term.num
        assert t is not None
        c = term.cmp
        return x > t if c == ">" else x >= t if c == ">=" else x < t if c == "<" else x <= t
    # range
    if term.lo is not None and (x < term.lo or (x == term.lo and not term.lo_incl)):
        return False
    return not (term.hi is not None and (x > term.hi or (x == term.hi and not term.hi_incl)))


def text_matches(term: TextTerm, lowered: str) -> bool:
    """Whether a lower-case text contains a free-text term."""
    if term.regex is not None:
        return term.regex.search(lowered) is not None
    return term.text in lowered


R = TypeVar("R")


def compile_predicate(
    node: Node,
    get: Callable[[R, str, bool], Any],
    text: Callable[[R], str],
) -> Callable[[R], bool]:
    """A predicate over records of any kind.

    ``get(record, key, attr)`` returns the value of a field (None when absent; a list
    matches if any item matches); ``text(record)`` returns the lower-case searchable text.
    Logs, spans, events, monitors and services all share this through their accessors.
    """
    if isinstance(node, MatchAll):
        return lambda r: True
    if isinstance(node, TextTerm):
        t = node
        return lambda r: text_matches(t, text(r))
    if isinstance(node, FieldTerm):
        f = node
        return lambda r: field_value_matches(f, get(r, f.key, f.attr))
    if isinstance(node, Not):
        inner = compile_predicate(node.item, get, text)
        return lambda r: not inner(r)
    parts = [compile_predicate(n, get, text) for n in node.items]
    if isinstance(node, And):
        return lambda r: all(p(r) for p in parts)
    return lambda r: any(p(r) for p in parts)
