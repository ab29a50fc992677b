"""The search planner of a record table: a query AST to the rows of a time window.

An AND generates from its most selective child and filters with the rest; OR unites; NOT
filters (or, at the top, subtracts from the window). Only a query with nothing selective
falls back to scanning the window. :func:`search_table` is the entry point.
"""

from __future__ import annotations

import bisect
import operator
from collections.abc import Sequence
from itertools import chain, compress, filterfalse
from typing import TYPE_CHECKING

from evaluator_agent.telemetry.index_columns import (
    MANY_TEMPLATES,
    KeywordColumn,
    NumericColumn,
    posting_window,
)
from evaluator_agent.telemetry.index_rows import (
    ComplementRows,
    RangeRows,
    RowSet,
    SearchResult,
    SortedRows,
)
from evaluator_agent.telemetry.search_query import (
    And,
    FieldTerm,
    MatchAll,
    Node,
    Not,
    Or,
    TextTerm,
    compile_predicate,
)

if TYPE_CHECKING:
    from evaluator_agent.telemetry.index_tables import RecordTable

__all__ = ["UNBOUNDED", "search_table"]

UNBOUNDED = 1 << 62


def search_table(table: RecordTable, node: Node, t0: float, t1: float) -> SearchResult:
    """Plan a query over the window ``[t0, t1]`` of one table and run it."""
    lo, hi = table.window(t0, t1)
    warnings: list[str] = []
    plan = _plan(table, node, lo, hi, warnings)
    if isinstance(plan, _All):
        rows: RowSet = RangeRows(lo, hi)
    elif isinstance(plan, _NotPlan) and plan.child.size() < UNBOUNDED:
        rows = ComplementRows(lo, hi, list(plan.child.generate()))
    else:
        rows = SortedRows(plan.generate())
    return SearchResult(rows, list(dict.fromkeys(warnings)))


# --------------------------------------------------------------------------- planner
#
# Each plan node can estimate how many rows it would generate (size), generate its
# matching rows within the window (sorted), or filter a sorted list of candidate rows.


class _Plan:
    cost = 0  # relative per-row cost of filter(); cheap filters run first

    def size(self) -> int:
        raise NotImplementedError

    def generate(self) -> Sequence[int]:
        raise NotImplementedError

    def filter(self, rows: Sequence[int]) -> Sequence[int]:
        raise NotImplementedError


class _Empty(_Plan):
    def size(self) -> int:
        return 0

    def generate(self) -> Sequence[int]:
        return []

    def filter(self, rows: Sequence[int]) -> Sequence[int]:
        return []


class _All(_Plan):
    def __init__(self, lo: int, hi: int) -> None:
        self.lo, self.hi = lo, hi

    def size(self) -> int:
        return self.hi - self.lo

    def generate(self) -> Sequence[int]:
        return range(self.lo, self.hi)

    def filter(self, rows: Sequence[int]) -> Sequence[int]:
        return rows


class _Keyword(_Plan):
    cost = 1

    def __init__(self, col: KeywordColumn, codes: list[int], lo: int, hi: int) -> None:
        self.col, self.codes, self.lo, self.hi = col, codes, lo, hi
        self._size: int | None = None

    def size(self) -> int:
        if self._size is None:
            if len(self.codes) > MANY_TEMPLATES:
                self._size = self.hi - self.lo  # as expensive as a scan
            else:
                self._size = sum(self.col.count(c, self.lo, self.hi) for c in self.codes)
        return self._size

    def generate(self) -> Sequence[int]:
        if len(self.codes) == 1:
            return self.col.slice(self.codes[0], self.lo, self.hi)
        if len(self.codes) > MANY_TEMPLATES:
            return self.filter(range(self.lo, self.hi))
        return sorted(chain.from_iterable(self.col.slice(c, self.lo, self.hi) for c in self.codes))

    def filter(self, rows: Sequence[int], negate: bool = False) -> Sequence[int]:
        codes = self.col.codes
        got = map(codes.__getitem__, rows)
        if len(self.codes) == len(self.col.values) - 1:  # key:* -- any non-zero code
            return list(compress(rows, map(operator.not_, got) if negate else got))
        if codes.typecode == "B":
            # one-byte codes: gather them into bytes, translate to 0/1 flags (C speed)
            table = bytearray(256)
            for c in self.codes:
                table[c] = 1
            if negate:
                table = bytearray(1 - x for x in table)
            return list(compress(rows, bytes(got).translate(table)))
        want = set(self.codes)
        if negate:
            return list(compress(rows, map(operator.not_, map(want.__contains__, got))))
        return list(compress(rows, map(want.__contains__, got)))


class _Numeric(_Plan):
    cost = 2

    def __init__(self, col: NumericColumn, term: FieldTerm, lo: int, hi: int) -> None:
        self.col, self.term, self.lo, self.hi = col, term, lo, hi
        self.i0, self.i1 = col.value_range(term) if term.op != "exists" else (0, len(col.sorted_vals))

    def size(self) -> int:
        # An upper bound (rows outside the window included): sorting them is the cost anyway.
        return self.i1 - self.i0

    def generate(self) -> Sequence[int]:
        rows = sorted(self.col.sorted_rows[self.i0 : self.i1])
        a, b = bisect.bisect_left(rows, self.lo), bisect.bisect_left(rows, self.hi)
        return rows[a:b]

    def filter(self, rows: Sequence[int]) -> Sequence[int]:
        return list(compress(rows, self.col.flags(self.term, rows)))


class _Text(_Plan):
    cost = 3

    def __init__(self, table: RecordTable, term: TextTerm, lo: int, hi: int) -> None:
        self.text = table.text
        self.term, self.lo, self.hi = term, lo, hi
        self.tids, self.exact = self.text.candidates(term)
        self._size: int | None = None

    def _scan_window(self) -> bool:
        return self.tids is None or len(self.tids) > MANY_TEMPLATES

    def size(self) -> int:
        if self._size is None:
            if self._scan_window():
                self._size = self.hi - self.lo
            else:
                tp = self.text.tposts
                self._size = sum(b - a for a, b in (posting_window(tp[t], self.lo, self.hi) for t in self.tids or ()))
        return self._size

    def generate(self) -> Sequence[int]:
        if self._scan_window():
            return self.text.scan(self.term, self.lo, self.hi)
        tp = self.text.tposts
        slices = []
        for t in self.tids or ():
            a, b = posting_window(tp[t], self.lo, self.hi)
            if b > a:
                slices.append(tp[t][a:b])
        rows: Sequence[int] = slices[0] if len(slices) == 1 else sorted(chain.from_iterable(slices))
        return rows if self.exact else self.text.verify(self.term, rows)

    def filter(self, rows: Sequence[int]) -> Sequence[int]:
        if self.tids is not None:
            if not self.tids:
                return []
            tset = set(self.tids)
            rows = list(compress(rows, map(tset.__contains__, map(self.text.tcode.__getitem__, rows))))
            if self.exact:
                return rows
        return self.text.verify(self.term, rows)


class _Fallback(_Plan):
    """Record-by-record check for keys without an index (ids, lists)."""

    cost = 4

    def __init__(self, table: RecordTable, node: Node, lo: int, hi: int) -> None:
        self.recs = table.records
        self.pred = compile_predicate(node, table.value, lambda r: "")
        self.lo, self.hi = lo, hi

    def size(self) -> int:
        return UNBOUNDED

    def generate(self) -> Sequence[int]:
        return self.filter(range(self.lo, self.hi))

    def filter(self, rows: Sequence[int]) -> Sequence[int]:
        return list(compress(rows, map(self.pred, map(self.recs.__getitem__, rows))))


class _AndPlan(_Plan):
    def __init__(self, items: list[_Plan], lo: int, hi: int) -> None:
        self.items, self.lo, self.hi = items, lo, hi
        self.cost = max(p.cost for p in items)

    def size(self) -> int:
        return min(p.size() for p in self.items)

    def generate(self) -> Sequence[int]:
        best = min(self.items, key=lambda p: p.size())
        if best.size() >= UNBOUNDED:
            rows: Sequence[int] = range(self.lo, self.hi)
            rest = self.items
        else:
            rows = best.generate()
            rest = [p for p in self.items if p is not best]
        return self._apply(rows, rest)

    def filter(self, rows: Sequence[int]) -> Sequence[int]:
        return self._apply(rows, self.items)

    @staticmethod
    def _apply(rows: Sequence[int], plans: list[_Plan]) -> Sequence[int]:
        for p in sorted(plans, key=lambda p: p.cost):
            if not rows:
                break
            rows = p.filter(rows)
        return rows


class _OrPlan(_Plan):
    def __init__(self, items: list[_Plan], lo: int, hi: int) -> None:
        self.items, self.lo, self.hi = items, lo, hi
        self.cost = max(p.cost for p in items)

    def size(self) -> int:
        return min(UNBOUNDED, sum(p.size() for p in self.items))

    def generate(self) -> Sequence[int]:
        if self.size() >= UNBOUNDED:
            return self.filter(range(self.lo, self.hi))
        return sorted(set(chain.from_iterable(p.generate() for p in self.items)))

    def filter(self, rows: Sequence[int]) -> Sequence[int]:
        hit: set[int] = set()
        rest: Sequence[int] = rows
        for p in sorted(self.items, key=lambda p: p.cost):
            hit.update(p.filter(rest))
            rest = list(filterfalse(hit.__contains__, rest))
            if not rest:
                break
        return list(filter(hit.__contains__, rows))


class _NotPlan(_Plan):
    def __init__(self, child: _Plan, lo: int, hi: int) -> None:
        self.child, self.lo, self.hi = child, lo, hi
        self.cost = child.cost

    def size(self) -> int:
        return UNBOUNDED

    def generate(self) -> Sequence[int]:
        if self.child.size() < UNBOUNDED:
            ex = set(self.child.generate())
            return list(filterfalse(ex.__contains__, range(self.lo, self.hi)))
        return self.filter(range(self.lo, self.hi))

    def filter(self, rows: Sequence[int]) -> Sequence[int]:
        if isinstance(self.child, _Keyword):
            return self.child.filter(rows, negate=True)
        hit = set(self.child.filter(rows))
        return list(filterfalse(hit.__contains__, rows)) if hit else rows


def _plan(t: RecordTable, node: Node, lo: int, hi: int, warnings: list[str]) -> _Plan:
    if isinstance(node, MatchAll):
        return _All(lo, hi)
    if isinstance(node, TextTerm):
        return _Text(t, node, lo, hi)
    if isinstance(node, FieldTerm):
        kw, num, exists = t.resolve(node.key, node.attr)
        if not exists:
            warnings.append(f"no {t.kind} in this world has a field '{node.name}'")
            return _Empty()
        if kw is not None:
            codes = kw.match_codes(node)
            if not codes:
                if node.op == "eq" and kw.name in ("service", "@service"):
                    warnings.append(f"no {t.kind} has {node.name}:{node.value}")
                return _Empty()
            return _Keyword(kw, codes, lo, hi)
        if num is not None and (node.op in ("cmp", "range") or (node.op == "eq" and node.num is not None)):
            return _Numeric(num, node, lo, hi)
        return _Fallback(t, node, lo, hi)
    if isinstance(node, Not):
        child = _plan(t, node.item, lo, hi, warnings)
        if isinstance(child, _Empty):
            return _All(lo, hi)
        if isinstance(child, _All):
            return _Empty()
        return _NotPlan(child, lo, hi)
    items = [_plan(t, n, lo, hi, warnings) for n in node.items]
    if isinstance(node, And):
        if any(isinstance(p, _Empty) for p in items):
            return _Empty()
        items = [p for p in items if not isinstance(p, _All)]
        if not items:
            return _All(lo, hi)
        return items[0] if len(items) == 1 else _AndPlan(items, lo, hi)
    assert isinstance(node, Or)
    if any(isinstance(p, _All) for p in items):
        return _All(lo, hi)
    items = [p for p in items if not isinstance(p, _Empty)]
    # status:(error OR warn) -> one keyword plan over both codes (a merge of two postings)
    merged: dict[str, _Keyword] = {}
    rest: list[_Plan] = []
    for p in items:
        if isinstance(p, _Keyword):
            if p.col.name in merged:
                k = merged[p.col.name]
                merged[p.col.name] = _Keyword(p.col, sorted(set(k.codes) | set(p.codes)), lo, hi)
            else:
                merged[p.col.name] = p
        else:
            rest.append(p)
    items = [*merged.values(), *rest]
    if not items:
        return _Empty()
    return items[0] if len(items) == 1 else _OrPlan(items, lo, hi)

