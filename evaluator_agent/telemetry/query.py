"""Query languages of the telemetry tools: times, Datadog metric queries, Datadog search.

Everything here is a hand-written parser with errors that name the offending token and
its position, because the reader of an error is an agent that has to fix its own query.

Times (``from`` / ``to``)
    ``2026-03-02T14:05:00Z`` or any ISO 8601 with an offset (no offset means UTC);
    epoch seconds as a number or numeric string (values above 1e11 are taken as
    milliseconds); ``now``; ``now-30s``, ``now-15m``, ``now-2h``, ``now-1d``, ``now-1w``
    (``now+N`` too, though nothing after ``now`` exists).

Metric queries (``query_metrics``)
    ``<agg>:<metric>{<filters>} [by {<tag>,...}] [.rollup(<method>[, <seconds>])]``

    - ``agg`` and rollup ``method``: avg, sum, min, max, count. Without ``agg:`` the
      aggregation is avg. Time aggregation (rollup, default avg) happens per series
      first, then space aggregation across the series of each group.
    - filters: comma separated (``AND`` works too). ``tag:value``; ``*`` and ``?``
      wildcards in values (``service:pay*``); ``!tag:value`` or ``-tag:value`` negation;
      ``tag IN (a, b)`` / ``tag NOT IN (a, b)``; a bare ``tag`` means the tag is present;
      ``*`` or ``{}`` means every series. Series carry one value per tag, so filters
      on the same tag are alternatives (``{service:a,service:b}`` is a OR b);
      ``a:x OR a:y`` works, OR between different tags does not.
    - ``by {a,b}`` groups (``by{a, b}`` spacing variants are fine); series without a
      group tag fall in group ``N/A``.
    - ``.as_count()``, ``.as_rate()`` and ``.fill(...)`` are accepted and ignored: the
      stored values are already what the metric type means.
    - Not supported: arithmetic between queries, functions such as ``top()``.

Search queries (``search_logs``, ``aggregate_logs``, ``search_spans``, ``get_events``,
``get_monitors``, ``list_services``)
    - ``key:value`` matches a field (``service:checkout``, ``status:error``) or a tag;
      ``@attr:value`` matches an attribute, nested paths with dots
      (``@http.status_code:503``). Values are compared case-insensitively.
    - wildcards ``*`` and ``?`` in values: ``service:pay*``; ``key:*`` means the key exists.
    - ``key:"quoted value"`` for values with spaces (no wildcards inside quotes).
    - numeric comparisons ``@duration:>0.5``, ``@http.status_code:>=500``, ``<``, ``<=``;
      ranges ``@http.status_code:[500 TO 599]`` (inclusive) or ``{500 TO 599}``
      (exclusive), ``*`` for an open end. Numbers may carry a duration unit
      (``ns us ms s m h``), converted to seconds: ``@duration:>500ms``.
    - ``key:(a OR b)`` is ``key:a OR key:b``.
    - bare words and ``"quoted phrases"`` search the text (log message; span resource and
      name; event title and text; monitor and service name) case-insensitively as a
      substring: ``timeout`` also matches ``SocketTimeoutException``. Leading and
      trailing ``*`` change nothing; an inner ``*`` matches up to 100 non-space
      characters, so the term stays within one word (``conn*ion``; at most 8 ``*``).
    - ``AND`` (also implicit between terms), ``OR``, ``NOT`` / ``-term``, parentheses.
      ``AND`` binds tighter than ``OR``. Operators are upper case; lower-case
      ``and``/``or`` are words. Backslash escapes a special character (``\\:``, ``\\*``).
    - ``status`` of logs is the level exactly as logged (debug, info, warn, error,
      critical): ``status:error`` does not include ``critical``; use
      ``status:(error OR critical)``.
    - An empty query or ``*`` matches everything.
    - At most 4000 characters, and at most 32 levels of nested parentheses and ``NOT``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

__all__ = [
    "AGGREGATIONS",
    "And",
    "FieldTerm",
    "MatchAll",
    "MetricQuery",
    "Node",
    "Not",
    "Or",
    "MAX_QUERY_DEPTH",
    "QueryError",
    "TagFilter",
    "TextTerm",
    "compile_predicate",
    "field_value_matches",
    "glob_regex",
    "norm_matches",
    "norm_value",
    "num_value",
    "parse_metric_query",
    "parse_search_query",
    "parse_tag_filters",
    "parse_time",
    "text_matches",
]


TEXT_WILDCARD_SPAN = 100
"""Characters one inner ``*`` of a free-text term may cover."""

MAX_QUERY_DEPTH = 32
"""Levels of parentheses and ``NOT`` a search query may nest (the parser recurses per level)."""


class QueryError(ValueError):
    """A query, time or filter the tools cannot understand. The message says where."""


# --------------------------------------------------------------------------- times

_REL = re.compile(r"^now\s*(?:([+-])\s*(\d+(?:\.\d+)?)\s*([smhdw]))?$", re.IGNORECASE)
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_TIME_FORMS = "expected ISO 8601 (2026-03-02T14:05:00Z), epoch seconds, or now / now-<N><s|m|h|d>"


def parse_time(value: Any, now: float) -> float:
    """Epoch seconds for a time argument; relative forms are relative to ``now``."""
    t = _parse_time(value, now)
    if not 0 <= t < _MAX_EPOCH:
        raise QueryError(f"time {value!r} is out of range (1970 to 5138)")
    return t


_MAX_EPOCH = 1e11


def _parse_time(value: Any, now: float) -> float:
    if isinstance(value, bool):
        raise QueryError(f"invalid time {value!r}: {_TIME_FORMS}")
    if isinstance(value, int | float):
        return _epoch(float(value), value)
    if not isinstance(value, str):
        raise QueryError(f"invalid time {value!r}: {_TIME_FORMS}")
    text = value.strip()
    if not text:
        raise QueryError(f"empty time: {_TIME_FORMS}")
    m = _REL.match(text)
    if m:
        if m.group(1) is None:
            return float(now)
        delta = float(m.group(2)) * _UNIT_S[m.group(3).lower()]
        return float(now) - delta if m.group(1) == "-" else float(now) + delta
    try:
        return _epoch(float(text), value)
    except ValueError:
        pass
    iso = text[:-1] + "+00:00" if text[-1:] in "zZ" else text
    try:
        dt = datetime.fromisoformat(iso)
    except ValueError:
        raise QueryError(f"invalid time {value!r}: {_TIME_FORMS}") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def _epoch(x: float, original: Any) -> float:
    if not math.isfinite(x) or x < 0:
        raise QueryError(f"invalid time {original!r}: epoch seconds must be a finite number >= 0")
    # Datadog APIs often speak milliseconds; no real epoch second is above 1e11 (year 5138).
    return x / 1000.0 if x >= _MAX_EPOCH else x


# --------------------------------------------------------------------------- values

def norm_value(v: Any) -> str | None:
    """Canonical lower-case string of a field value, the form keyword matching compares."""
    if v is None:
        return None
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if v.is_integer() and abs(v) < 1e15:
            return str(int(v))
        return repr(v)
    if isinstance(v, str):
        return v.lower()
    return str(v).lower()


def num_value(v: Any) -> float | None:
    """Numeric value of a field value (numbers and numeric strings), else None."""
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, int | float):
        return float(v)
    if isinstance(v, str):
        try:
            x = float(v)
        except ValueError:
            return None
        return x if math.isfinite(x) else None
    return None


_NUM_UNIT = re.compile(r"^([+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)\s*(ns|us|µs|ms|s|m|h)?$")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def _number(text: str, pos: int) -> float:
    m = _NUM_UNIT.match(text.strip())
    if not m:
        raise QueryError(f"expected a number at position {pos}, got {text!r}")
    x = float(m.group(1))
    if m.group(2):
        x *= _UNIT_SECONDS[m.group(2)]
    return x


def _wild_pattern(chars: list[tuple[str, bool]], anychar: str, anchored: bool, span: str = "*") -> str:
    """Regex source of a wildcard pattern given as (char, is_wildcard) pairs.

    Each ``*`` but the last becomes an atomic lazy group (the trick of ``fnmatch``): the
    earliest match of each literal segment is committed, so ``*a*a*a*a*b`` is linear
    instead of exponential backtracking on a long value. ``span`` bounds what one ``*``
    may cover: an unanchored search restarts at every position, so free-text wildcards
    use a bounded span to stay linear in the length of the text.
    """
    segments: list[str] = [""]
    for ch, wild in chars:
        if wild and ch == "*":
            segments.append("")
        elif wild and ch == "?":
            segments[-1] += anychar
        else:
            segments[-1] += re.escape(ch)
    out = [segments[0]]
    middle, last = segments[1:-1], segments[-1] if len(segments) > 1 else None
    for seg in middle:
        out.append(f"(?>{anychar}{span}?{seg})" if seg else "")
    if last is not None:
        out.append(f"{anychar}{span}{last}" if anchored else f"(?>{anychar}{span}?{last})")
    return "".join(out)


def glob_regex(pattern: str, escaped: set[int] | frozenset[int] = frozenset()) -> re.Pattern[str]:
    """Regex of a ``*``/``?`` glob for ``fullmatch`` against lower-case values; characters
    at the ``escaped`` indexes are literal."""
    chars = [(c, c in "*?" and i not in escaped) for i, c in enumerate(pattern.lower())]
    return re.compile(_wild_pattern(chars, ".", anchored=True), re.DOTALL)


# --------------------------------------------------------------------------- search AST


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


# --------------------------------------------------------------------------- search parser

_KEY = re.compile(r"@?[A-Za-z_][A-Za-z0-9_.\-/]*")
_SPECIAL = set('()" \t\r\n')


@dataclass
class _Tok:
    kind: str  # WORD | PHRASE | LPAREN | RPAREN | AND | OR | NOT | MINUS
    text: str
    pos: int
    escaped: frozenset[int] = frozenset()  # WORD: indexes in text that were escaped
    quoted: str | None = None  # WORD 'key:"value"': the quoted value (text is 'key:')


def _tokens(q: str) -> Iterator[_Tok]:
    """The query's tokens, produced as the parser asks for them: a query refused early (too deep,
    a stray quote) costs what was read up to there, not a pass over all of it."""
    i, n = 0, len(q)
    while i < n:
        ch = q[i]
        if ch.isspace():
            i += 1
            continue
        if ch == "(":
            yield _Tok("LPAREN", ch, i)
            i += 1
            continue
        if ch == ")":
            yield _Tok("RPAREN", ch, i)
            i += 1
            continue
        if ch == '"':
            text, i2 = _read_quoted(q, i)
            yield _Tok("PHRASE", text, i)
            i = i2
            continue
        if ch == "-" and i + 1 < n and not q[i + 1].isspace():
            # A leading '-' negates what follows (Datadog); '-' inside a word is literal.
            yield _Tok("MINUS", ch, i)
            i += 1
            continue
        start = i
        buf: list[str] = []
        escaped: set[int] = set()
        while i < n:
            c = q[i]
            if c == "\\" and i + 1 < n:
                escaped.add(len(buf))
                buf.append(q[i + 1])
                i += 2
                continue
            if c.isspace() or c in "()":
                break
            if c == '"':
                # key:"quoted value" -> keep the quoted part in this word
                if buf and buf[-1] == ":" and (len(buf) - 1) not in escaped:
                    text, i = _read_quoted(q, i)
                    yield _Tok("WORD", "".join(buf), start, frozenset(escaped), quoted=text)
                    buf = []
                    break
                raise QueryError(f"unexpected '\"' at position {i}: quote a whole phrase or value")
            if c in "[{" and buf and buf[-1] == ":":
                # ranges close with ']' (inclusive) or '}' (exclusive), mixed as in Lucene
                ends = [j for j in (q.find("]", i), q.find("}", i)) if j >= 0]
                if not ends:
                    raise QueryError(f"range starting at position {i} is not closed with ']' or '}}'")
                j = min(ends)
                buf.extend(q[i : j + 1])
                i = j + 1
                continue
            buf.append(c)
            i += 1
        if not buf:
            continue
        word = "".join(buf)
        if word in ("AND", "OR", "NOT") and not escaped:
            yield _Tok(word, word, start)
        else:
            yield _Tok("WORD", word, start, frozenset(escaped))


def _read_quoted(q: str, i: int) -> tuple[str, int]:
    """Read a double-quoted string starting at q[i] == '"'; returns (text, index after)."""
    j = i + 1
    out: list[str] = []
    while j < len(q):
        c = q[j]
        if c == "\\" and j + 1 < len(q):
            out.append(q[j + 1])
            j += 2
            continue
        if c == '"':
            return "".join(out), j + 1
        out.append(c)
        j += 1
    raise QueryError(f"unterminated quote starting at position {i}")


class _SearchParser:
    def __init__(self, q: str) -> None:
        self.q = q
        self._source = _tokens(q)
        self.toks: list[_Tok] = []  # read so far
        self.i = 0
        self.depth = 0

    def _fill(self) -> bool:
        """Read one more token; False at the end of the query."""
        t = next(self._source, None)
        if t is None:
            return False
        self.toks.append(t)
        return True

    def deeper(self, t: _Tok) -> None:
        """Enter one more level of nesting (a parenthesis or a NOT); refuse past the limit, so that
        no query, however nested, reaches Python's recursion limit here or in what walks the tree."""
        self.depth += 1
        if self.depth > MAX_QUERY_DEPTH:
            raise QueryError(
                f"query nests parentheses and NOT more than {MAX_QUERY_DEPTH} levels deep "
                f"(at {t.text!r}, position {t.pos}): simplify it"
            )

    def peek(self) -> _Tok | None:
        if self.i >= len(self.toks) and not self._fill():
            return None
        return self.toks[self.i]

    def take(self) -> _Tok:
        if self.i >= len(self.toks):
            self._fill()
        t = self.toks[self.i]
        self.i += 1
        return t

    def parse(self) -> Node:
        if self.peek() is None:
            return MatchAll()
        node = self.or_expr()
        t = self.peek()
        if t is not None:
            raise QueryError(f"unexpected {t.text!r} at position {t.pos}")
        return node

    def or_expr(self) -> Node:
        items = [self.and_expr()]
        while (t := self.peek()) is not None and t.kind == "OR":
            self.take()
            if self.peek() is None or self.peek().kind in ("RPAREN", "OR", "AND"):  # type: ignore[union-attr]
                raise QueryError(f"OR at position {t.pos} needs a term on its right")
            items.append(self.and_expr())
        return items[0] if len(items) == 1 else Or(tuple(items))

    def and_expr(self) -> Node:
        items = [self.unary()]
        while (t := self.peek()) is not None and t.kind not in ("OR", "RPAREN"):
            if t.kind == "AND":
                self.take()
                nxt = self.peek()
                if nxt is None or nxt.kind in ("RPAREN", "OR", "AND"):
                    raise QueryError(f"AND at position {t.pos} needs a term on its right")
            items.append(self.unary())
        items = [x for x in items if not isinstance(x, MatchAll)] or [MatchAll()]
        return items[0] if len(items) == 1 else And(tuple(items))

    def unary(self) -> Node:
        t = self.peek()
        if t is None:
            raise QueryError("query ends where a term was expected")
        if t.kind in ("NOT", "MINUS"):
            self.take()
            if self.peek() is None or self.peek().kind in ("RPAREN", "OR", "AND"):  # type: ignore[union-attr]
                raise QueryError(f"{t.text} at position {t.pos} needs a term on its right")
            self.deeper(t)
            node = Not(self.unary())
            self.depth -= 1
            return node
        return self.primary()

    def primary(self) -> Node:
        t = self.take()
        if t.kind == "LPAREN":
            if self.peek() is not None and self.peek().kind == "RPAREN":  # type: ignore[union-attr]
                raise QueryError(f"empty parentheses at position {t.pos}")
            self.deeper(t)
            node = self.or_expr()
            close = self.peek()
            if close is None or close.kind != "RPAREN":
                raise QueryError(f"parenthesis opened at position {t.pos} is not closed")
            self.take()
            self.depth -= 1
            return node
        if t.kind == "RPAREN":
            raise QueryError(f"unexpected ')' at position {t.pos}")
        if t.kind in ("AND", "OR"):
            raise QueryError(f"{t.text} at position {t.pos} needs a term on its left")
        if t.kind == "PHRASE":
            return _text_term(t.text, phrase=True)
        return self.word(t)

    def word(self, t: _Tok) -> Node:
        text = t.text
        colon = _key_colon(text, t.escaped)
        if colon is None:
            if t.quoted is not None:  # '"' after a colon that does not end a valid key
                raise QueryError(f"invalid field name {text[:-1]!r} at position {t.pos}")
            return self._bare(text, t.escaped)
        key, value = text[:colon], text[colon + 1 :]
        attr = key.startswith("@")
        name = key[1:] if attr else key
        vpos = t.pos + colon + 1
        if t.quoted is not None:
            return FieldTerm(name, attr, "eq", t.quoted.lower(), num_value(t.quoted))
        if value == "":
            nxt = self.peek()
            if nxt is not None and nxt.kind == "LPAREN" and nxt.pos == vpos:
                return self.value_group(name, attr)
            # 'x509:' typed unquoted before more words: treat it as text, not as a field.
            return self._bare(text, t.escaped)
        return _field_value(name, attr, value, vpos, {i - colon - 1 for i in t.escaped if i > colon})

    def _bare(self, text: str, escaped: frozenset[int]) -> Node:
        if text == "*" and not escaped:
            return MatchAll()
        return _text_term(text, phrase=False, escaped=escaped)

    def value_group(self, name: str, attr: bool) -> Node:
        """``key:(a OR b AND c)``: the same boolean grammar over values of one key."""
        open_tok = self.take()
        self.deeper(open_tok)

        def val_or() -> Node:
            items = [val_and()]
            while (t := self.peek()) is not None and t.kind == "OR":
                self.take()
                items.append(val_and())
            return items[0] if len(items) == 1 else Or(tuple(items))

        def val_and() -> Node:
            items = [val_unary()]
            while (t := self.peek()) is not None and t.kind not in ("OR", "RPAREN"):
                if t.kind == "AND":
                    self.take()
                items.append(val_unary())
            return items[0] if len(items) == 1 else And(tuple(items))

        def val_unary() -> Node:
            t = self.peek()
            if t is None:
                raise QueryError(f"value group opened at position {open_tok.pos} is not closed")
            if t.kind in ("NOT", "MINUS"):
                self.take()
                self.deeper(t)
                node = Not(val_unary())
                self.depth -= 1
                return node
            t = self.take()
            if t.kind == "LPAREN":
                self.deeper(t)
                inner = val_or()
                c = self.peek()
                if c is None or c.kind != "RPAREN":
                    raise QueryError(f"parenthesis opened at position {t.pos} is not closed")
                self.take()
                self.depth -= 1
                return inner
            if t.kind == "PHRASE":
                return FieldTerm(name, attr, "eq", t.text.lower(), num_value(t.text))
            if t.kind == "WORD":
                return _field_value(name, attr, t.text, t.pos, set(t.escaped))
            raise QueryError(f"unexpected {t.text!r} at position {t.pos} in the values of {name}")

        node = val_or()
        c = self.peek()
        if c is None or c.kind != "RPAREN":
            raise QueryError(f"value group opened at position {open_tok.pos} is not closed")
        self.take()
        self.depth -= 1
        return node


def _key_colon(text: str, escaped: frozenset[int]) -> int | None:
    """Index of the colon that separates a key, if the word is ``key:value``."""
    for i, c in enumerate(text):
        if c == ":" and i not in escaped:
            return i if i > 0 and _KEY.fullmatch(text[:i]) else None
    return None


_CMP = re.compile(r"^(>=|<=|>|<)(.*)$", re.DOTALL)
_RANGE = re.compile(r"^([\[{])\s*(\S+)\s+TO\s+(\S+)\s*([\]}])$", re.DOTALL)


def _field_value(name: str, attr: bool, value: str, pos: int, escaped: set[int]) -> FieldTerm:
    if value == "*" and not escaped:
        return FieldTerm(name, attr, "exists")
    m = _CMP.match(value)
    if m and 0 not in escaped:
        if not m.group(2):
            raise QueryError(f"comparison {m.group(1)} at position {pos} needs a number")
        return FieldTerm(name, attr, "cmp", num=_number(m.group(2), pos + len(m.group(1))), cmp=m.group(1))
    if value[:1] in "[{" and 0 not in escaped:
        r = _RANGE.match(value)
        if not r:
            raise QueryError(f"invalid range {value!r} at position {pos}: expected [<low> TO <high>]")
        lo = None if r.group(2) == "*" else _number(r.group(2), pos)
        hi = None if r.group(3) == "*" else _number(r.group(3), pos)
        if lo is not None and hi is not None and lo > hi:
            raise QueryError(f"range {value!r} at position {pos} has its low end above its high end")
        return FieldTerm(name, attr, "range", lo=lo, hi=hi, lo_incl=r.group(1) == "[", hi_incl=r.group(4) == "]")
    wild = any(c in "*?" and i not in escaped for i, c in enumerate(value))
    if wild:
        if sum(c == "*" for c in value) > 16:
            raise QueryError(f"too many wildcards in {value!r} at position {pos} (at most 16)")
        return FieldTerm(name, attr, "glob", value=value.lower(), regex=glob_regex(value, escaped))
    return FieldTerm(name, attr, "eq", value.lower(), num_value(value))


def _text_term(text: str, phrase: bool, escaped: frozenset[int] = frozenset()) -> TextTerm:
    low = text.lower()
    if phrase:
        return TextTerm(low)
    # Substring semantics: wildcards at either end add nothing.
    chars = list(low)
    start, end = 0, len(chars)
    while start < end and chars[start] == "*" and start not in escaped:
        start += 1
    while end > start and chars[end - 1] == "*" and (end - 1) not in escaped:
        end -= 1
    inner = [(i, c) for i, c in enumerate(chars[start:end], start)]
    if not inner:
        raise QueryError(f"search term {text!r} has no text besides wildcards")
    if not any(c in "*?" and i not in escaped for i, c in inner):
        return TextTerm("".join(c for _, c in inner))
    if sum(c == "*" for _, c in inner) > 8:
        raise QueryError(f"too many wildcards in search term {text!r} (at most 8)")
    pieces: list[str] = []
    cur: list[str] = []
    for i, c in inner:
        if c in "*?" and i not in escaped:
            if cur:
                pieces.append("".join(cur))
                cur = []
        else:
            cur.append(c)
    if cur:
        pieces.append("".join(cur))
    chars = [(c, c in "*?" and i not in escaped) for i, c in inner]
    literal = "".join(c for _, c in inner)
    rx = re.compile(_wild_pattern(chars, r"\S", anchored=False, span=f"{{0,{TEXT_WILDCARD_SPAN}}}"))
    return TextTerm(literal, rx, tuple(pieces))


def parse_search_query(q: str | None) -> Node:
    """Parse a Datadog-style search query into an AST (see the module docstring)."""
    if q is None:
        return MatchAll()
    if not isinstance(q, str):
        raise QueryError("query must be a string")
    if len(q) > 4000:
        raise QueryError("query is longer than 4000 characters")
    return _SearchParser(q).parse()


# --------------------------------------------------------------------------- metric queries

AGGREGATIONS = ("avg", "sum", "min", "max", "count")


@dataclass(frozen=True)
class TagFilter:
    """One filter of a metric query: the tag ``key`` has a value matching one of ``patterns``
    (``None`` pattern list = the key is present); ``negate`` inverts it."""

    key: str
    patterns: tuple[str, ...] | None
    negate: bool = False
    regexes: tuple[re.Pattern[str], ...] = field(default=(), compare=False)

    def matches(self, tags: dict[str, str]) -> bool:
        v = tags.get(self.key)
        if self.patterns is None:
            hit = v is not None
        elif v is None:
            hit = False
        else:
            lv = v.lower()
            hit = any(rx.fullmatch(lv) is not None for rx in self.regexes)
        return hit != self.negate

    def text(self) -> str:
        if self.patterns is None:
            return ("!" if self.negate else "") + self.key
        return ",".join(("!" if self.negate else "") + f"{self.key}:{p}" for p in self.patterns)


@dataclass(frozen=True)
class MetricQuery:
    aggregation: str
    metric: str
    filters: tuple[TagFilter, ...]
    group_by: tuple[str, ...]
    rollup: str | None  # time aggregation method, None = default (avg)
    rollup_seconds: int | None
    modifiers: tuple[str, ...] = ()

    def scope(self) -> str:
        """Filter part as Datadog prints it in ``scope`` ("*" when unfiltered)."""
        return ",".join(f.text() for f in self.filters) or "*"

    def matches(self, tags: dict[str, str]) -> bool:
        return all(f.matches(tags) for f in self.filters)


_METRIC_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.]*")
_TAG_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-/:]*")


def parse_metric_query(q: str) -> MetricQuery:
    """Parse ``<agg>:<metric>{<filters>} [by {<tags>}][.rollup(<method>, <secs>)]``."""
    if not isinstance(q, str):
        raise QueryError("query must be a string")
    s = q.strip()
    if not s:
        raise QueryError("empty metric query: expected <agg>:<metric>{<filters>}, e.g. avg:system.cpu.user{service:web}")
    if len(s) > 2000:
        raise QueryError("metric query is longer than 2000 characters")
    pos = 0
    agg = "avg"
    # A metric name never contains ':', so a leading 'word:' is the aggregation.
    m = re.match(r"\s*([A-Za-z0-9_]+)\s*:", s)
    if m:
        word = m.group(1).lower()
        if word not in AGGREGATIONS:
            raise QueryError(
                f"unknown aggregation {m.group(1)!r} at position {m.start(1)}: use one of {', '.join(AGGREGATIONS)}"
            )
        agg = word
        pos = m.end()
    while pos < len(s) and s[pos].isspace():
        pos += 1
    m = _METRIC_NAME.match(s, pos)
    if not m:
        raise QueryError(f"expected a metric name at position {pos}, got {s[pos:pos + 20]!r}")
    metric = m.group(0)
    pos = m.end()
    filters: tuple[TagFilter, ...] = ()
    if pos < len(s) and s[pos] == "{":
        close = s.find("}", pos)
        if close < 0:
            raise QueryError(f"'{{' at position {pos} is not closed")
        filters = _parse_filters(s[pos + 1 : close], pos + 1)
        pos = close + 1
    group_by: tuple[str, ...] = ()
    rollup: str | None = None
    rollup_s: int | None = None
    modifiers: list[str] = []
    seen_by = False
    while True:
        while pos < len(s) and s[pos].isspace():
            pos += 1
        if pos >= len(s):
            break
        if s[pos] in "/+*-":
            raise QueryError(f"arithmetic between queries ({s[pos]!r} at position {pos}) is not supported: query each metric separately")
        bm = re.match(r"by\s*\{", s[pos:], re.IGNORECASE)
        if bm:
            if seen_by:
                raise QueryError(f"second 'by' at position {pos}")
            seen_by = True
            start = pos + bm.end()
            close = s.find("}", start)
            if close < 0:
                raise QueryError(f"'by {{' at position {pos} is not closed")
            keys = [k.strip() for k in s[start:close].split(",")]
            for k in keys:
                if not k or not _TAG_KEY.fullmatch(k):
                    raise QueryError(f"invalid group-by tag {k!r} at position {start}")
            group_by = tuple(dict.fromkeys(keys))
            pos = close + 1
            continue
        if s[pos] == ".":
            fm = re.match(r"\.\s*([A-Za-z_]+)\s*\(([^)]*)\)", s[pos:])
            if not fm:
                raise QueryError(f"expected .function(...) at position {pos}, got {s[pos:pos + 20]!r}")
            fname, fargs = fm.group(1).lower(), fm.group(2)
            if fname == "rollup":
                rollup, rollup_s = _parse_rollup(fargs, pos)
            elif fname in ("as_count", "as_rate", "fill"):
                modifiers.append(fname)
            else:
                raise QueryError(f"function .{fm.group(1)}() at position {pos} is not supported (only .rollup(), .as_count(), .as_rate(), .fill())")
            pos += fm.end()
            continue
        if s[pos] == "{":
            raise QueryError(f"unexpected '{{' at position {pos}: filters go right after the metric name")
        raise QueryError(f"unexpected {s[pos:pos + 20]!r} at position {pos}")
    return MetricQuery(agg, metric, filters, group_by, rollup, rollup_s, tuple(modifiers))


def _parse_rollup(args: str, pos: int) -> tuple[str | None, int | None]:
    parts = [a.strip() for a in args.split(",")] if args.strip() else []
    method: str | None = None
    secs: int | None = None
    for p in parts:
        if p.isdigit():
            if secs is not None:
                raise QueryError(f"rollup at position {pos} has two intervals")
            secs = int(p)
            if secs <= 0:
                raise QueryError(f"rollup interval at position {pos} must be positive")
        elif p.lower() in AGGREGATIONS:
            if method is not None:
                raise QueryError(f"rollup at position {pos} has two methods")
            method = p.lower()
        else:
            raise QueryError(f"invalid rollup argument {p!r} at position {pos}: expected .rollup(<avg|sum|min|max|count>, <seconds>)")
    if method is None and secs is None:
        raise QueryError(f"empty .rollup() at position {pos}")
    return method, secs


def parse_tag_filters(text: str) -> tuple[TagFilter, ...]:
    """Filters as written between the braces of a metric query (``service:web,!env:dev``)."""
    return _parse_filters(text, 0)


def _parse_filters(body: str, base: int) -> tuple[TagFilter, ...]:
    text = body.strip()
    if text in ("", "*"):
        return ()
    # Normalise 'AND' to commas and split, keeping 'IN (...)' lists together.
    items: list[tuple[str, int]] = []
    i, n = 0, len(body)
    cur_start = 0
    depth = 0
    while i <= n:
        if i == n or (body[i] == "," and depth == 0):
            items.append((body[cur_start:i], base + cur_start))
            cur_start = i + 1
        elif body[i] == "(":
            depth += 1
        elif body[i] == ")":
            depth = max(0, depth - 1)
        i += 1
    expanded: list[tuple[str, int]] = []
    for item, p in items:
        for part in re.split(r"\s+AND\s+", item):
            expanded.append((part, p))
    positives: dict[str, list[str]] = {}
    out: list[TagFilter] = []
    for raw, p in expanded:
        item = raw.strip()
        if not item:
            raise QueryError(f"empty filter at position {p}")
        if item == "*":
            continue
        ors = re.split(r"\s+OR\s+", item)
        if len(ors) > 1:
            keys = set()
            for o in ors:
                k, v, neg = _one_filter(o.strip(), p)
                if neg or v is None:
                    raise QueryError(f"OR at position {p} works only between positive tag:value filters")
                keys.add(k)
                positives.setdefault(k, []).append(v)
            if len(keys) > 1:
                raise QueryError(f"OR between different tags ({' / '.join(sorted(keys))}) at position {p} is not supported")
            continue
        im = re.match(r"^(!|-)?\s*([A-Za-z_][A-Za-z0-9_.\-/]*)\s+(NOT\s+)?IN\s*\((.*)\)$", item)
        if im:
            vals = [v.strip() for v in im.group(4).split(",") if v.strip()]
            if not vals:
                raise QueryError(f"empty IN list at position {p}")
            neg = bool(im.group(1)) != bool(im.group(3))
            if neg:
                out.append(_tag_filter(im.group(2), tuple(vals), True))
            else:
                positives.setdefault(im.group(2), []).extend(vals)
            continue
        k, v, neg = _one_filter(item, p)
        if v is None:
            out.append(TagFilter(k, None, neg))
        elif neg:
            out.append(_tag_filter(k, (v,), True))
        else:
            positives.setdefault(k, []).append(v)
    pos_filters = [_tag_filter(k, tuple(dict.fromkeys(vs)), False) for k, vs in positives.items()]
    return tuple(pos_filters + out)


def _one_filter(item: str, p: int) -> tuple[str, str | None, bool]:
    neg = item[0] in "!-"
    if neg:
        item = item[1:].strip()
    if ":" in item:
        k, v = item.split(":", 1)
        k, v = k.strip(), v.strip()
        if not k or not _TAG_KEY.fullmatch(k):
            raise QueryError(f"invalid tag key {k!r} at position {p}")
        if not v:
            raise QueryError(f"tag {k!r} at position {p} has an empty value")
        if any(c in v for c in " {}()"):
            raise QueryError(f"invalid tag value {v!r} at position {p}")
        return k, v, neg
    if not _TAG_KEY.fullmatch(item):
        raise QueryError(f"invalid filter {item!r} at position {p}: expected tag:value")
    return item, None, neg


def _tag_filter(key: str, patterns: tuple[str, ...], negate: bool) -> TagFilter:
    return TagFilter(key, patterns, negate, tuple(glob_regex(v) for v in patterns))
