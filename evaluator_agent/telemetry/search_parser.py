"""The parser of Datadog search queries: text to a ``search_query`` AST.

A hand-written tokenizer and recursive-descent parser whose errors name the offending token
and its position, because the reader of an error is an agent that has to fix its own query.
The syntax is documented in ``query.py``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from evaluator_agent.telemetry.query_values import QueryError, glob_regex, num_value, wild_pattern
from evaluator_agent.telemetry.search_query import And, FieldTerm, MatchAll, Node, Not, Or, TextTerm

__all__ = ["MAX_QUERY_DEPTH", "TEXT_WILDCARD_SPAN", "parse_search_query"]

TEXT_WILDCARD_SPAN = 100
"""Characters one inner ``*`` of a free-text term may cover."""

MAX_QUERY_DEPTH = 32
"""Levels of parentheses and ``NOT`` a search query may nest (the parser recurses per level)."""


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


_KEY = re.compile(r"@?[A-Za-z_][A-Za-z0-9_.\-/]*")


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

    def close(self, what: str, opened: _Tok) -> None:
        """Take the ')' that ends the level of nesting ``opened`` entered; refuse when it is missing."""
        c = self.peek()
        if c is None or c.kind != "RPAREN":
            raise QueryError(f"{what} opened at position {opened.pos} is not closed")
        self.take()
        self.depth -= 1

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
            self.close("parenthesis", t)
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
                self.close("parenthesis", t)
                return inner
            if t.kind == "PHRASE":
                return FieldTerm(name, attr, "eq", t.text.lower(), num_value(t.text))
            if t.kind == "WORD":
                return _field_value(name, attr, t.text, t.pos, set(t.escaped))
            raise QueryError(f"unexpected {t.text!r} at position {t.pos} in the values of {name}")

        node = val_or()
        self.close("value group", open_tok)
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
    rx = re.compile(wild_pattern(chars, r"\S", anchored=False, span=f"{{0,{TEXT_WILDCARD_SPAN}}}"))
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

