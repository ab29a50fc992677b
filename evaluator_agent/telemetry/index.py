"""A query index over one world snapshot, built from the raw dict (no per-record validation).

The tools must answer in milliseconds on worlds of a million log lines, in pure Python.
Three ideas carry that:

- **Rows sorted by time.** Logs, spans and events are kept sorted by timestamp, so a time
  window is a contiguous row range ``[lo, hi)`` found by bisection, and every posting
  list (sorted row ids) is cut to the window by bisection too.
- **Columns with codes and postings.** Each keyword field (``service``, ``status``,
  ``host``, every attribute or tag key with at most ``MAX_KEYWORD_VALUES`` distinct
  values, and ids such as ``trace_id``) has a per-row code array and, per value, the
  sorted rows holding it. A term *generates* rows from postings, or *filters* candidate
  rows by looking their codes up; both run as C-level pipelines (``compress``, ``map``,
  ``bytes.translate``), never as Python loops over rows. Numeric fields with too many
  values for codes (durations) get a sorted value index instead.
- **A tiny planner.** An AND generates from its most selective child and filters with the
  rest; OR unites; NOT filters (or, at the top, subtracts from the window). Only a query
  with nothing selective falls back to scanning the window.

Free text is one lower-case blob of all texts plus row offsets, and *templates*: every
text with its digits and letters a-f replaced by ``#`` (one ``bytes.translate`` over the
blob), so lines that differ only in numbers and hex ids share a template. A term is
translated the same way and looked up in the few thousand templates; the rows of the
matching templates are then checked against their own text when the term has digits or
letters a-f. Results are exact; the templates only avoid reading most rows.

The build disables the cyclic garbage collector (millions of objects, none freed).
``from_dict`` on 1M log lines takes a few seconds; the benchmark in
``tests/benchmarks/bench_tools.py`` measures it and the latency of every tool.
"""

from __future__ import annotations

import bisect
import gc
import operator
from array import array
from collections import Counter, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import accumulate, chain, compress, filterfalse, repeat
from typing import Any

from evaluator_agent.telemetry.query import (
    And,
    FieldTerm,
    MatchAll,
    Node,
    Not,
    Or,
    TextTerm,
    compile_predicate,
    norm_matches,
    norm_value,
    num_value,
)

__all__ = [
    "MAX_KEYWORD_VALUES",
    "KeywordColumn",
    "MetricIndex",
    "NumericColumn",
    "RecordTable",
    "RowSet",
    "SearchResult",
    "TextColumn",
    "WorldIndex",
]

MAX_KEYWORD_VALUES = 4096
"""Columns with more distinct values are not code-indexed (ids); numeric ones get a
sorted numeric index instead, the rest are checked record by record."""

UNBOUNDED = 1 << 62
_ONE_BYTE = [bytes(1 if i == c else 0 for i in range(256)) for c in range(256)]  # translate: c -> 1, else 0
_EMPTY: dict[str, Any] = {}
_MANY_TEMPLATES = 1024  # above this many candidate templates (or values), scanning the window is cheaper
_NAN = float("nan")


def _consume(it: Iterable[Any]) -> None:
    deque(it, maxlen=0)


def _typecode(n_values: int) -> str:
    return "B" if n_values < 256 else "H" if n_values < 65536 else "I"


def _window(post: Sequence[int], lo: int, hi: int) -> tuple[int, int]:
    return bisect.bisect_left(post, lo), bisect.bisect_left(post, hi)


# --------------------------------------------------------------------------- columns


class KeywordColumn:
    """Per-row codes (0 = absent) and per-code sorted row postings of one field."""

    __slots__ = ("name", "values", "display", "lookup", "codes", "postings", "_nums", "_num_lookup")

    def __init__(
        self, name: str, values: list[str], codes: array, postings: Sequence[Sequence[int]], display: list[str] | None = None
    ) -> None:
        self.name = name
        self.values = values  # canonical lower-case; values[0] is a placeholder for "absent"
        self.display = display or values  # as first seen in the data (original case)
        self.lookup = {v: i for i, v in enumerate(values) if i}
        self.codes = codes
        self.postings = postings
        self._nums: list[float | None] | None = None  # parsed on first numeric query
        self._num_lookup: dict[float, list[int]] = {}

    @property
    def nums(self) -> list[float | None]:
        if self._nums is None:
            self._nums = [None] + [num_value(v) for v in self.values[1:]]
            for i, x in enumerate(self._nums):
                if x is not None:
                    self._num_lookup.setdefault(x, []).append(i)
        return self._nums

    def match_codes(self, term: FieldTerm) -> list[int]:
        """Codes of the values that satisfy a term."""
        if term.op == "eq":
            c = self.lookup.get(term.value or "")
            out = [c] if c else []
            if term.num is not None:
                _ = self.nums
                out += [x for x in self._num_lookup.get(term.num, ()) if x != c]
            return out
        if term.op == "exists":
            return list(range(1, len(self.values)))
        # glob: strings only; cmp / range: numbers only
        nums = self.nums if term.op in ("cmp", "range") else [None] * len(self.values)
        return [i for i in range(1, len(self.values)) if norm_matches(term, self.values[i], nums[i])]

    def count(self, code: int, lo: int, hi: int) -> int:
        i0, i1 = _window(self.postings[code], lo, hi)
        return i1 - i0

    def slice(self, code: int, lo: int, hi: int) -> Sequence[int]:
        post = self.postings[code]
        i0, i1 = _window(post, lo, hi)
        return post[i0:i1]


class _GroupedPostings(Sequence[array]):
    """Postings of a high-cardinality column as one array of rows sorted by code."""

    def __init__(self, rows: Sequence[int], codes: Sequence[int], n_codes: int) -> None:
        present = list(compress(range(len(codes)), codes))  # positions of non-absent values
        order = sorted(present, key=codes.__getitem__)  # stable: rows stay ascending per code
        self.rows = array("I", map(rows.__getitem__, order))
        counts = Counter(map(codes.__getitem__, present))
        self.bounds = array("Q", accumulate((counts.get(c, 0) for c in range(n_codes)), initial=0))

    def __len__(self) -> int:
        return len(self.bounds) - 1

    def __getitem__(self, code: int) -> array:  # type: ignore[override]
        if code == 0:
            return array("I")
        return self.rows[self.bounds[code - 1] : self.bounds[code]]


class NumericColumn:
    """A numeric field with too many distinct values for codes (durations, byte counts)."""

    __slots__ = ("name", "per_row", "sorted_vals", "sorted_rows")

    def __init__(self, name: str, n: int, rows: Sequence[int], nums: list[float | None]) -> None:
        self.name = name
        if None in nums:
            keep = list(map(operator.is_not, nums, repeat(None)))
            rows = list(compress(rows, keep))
            nums = list(compress(nums, keep))
        vals: list[float] = nums  # type: ignore[assignment]
        if isinstance(rows, range) and len(rows) == n:
            self.per_row = array("d", vals)
        else:
            self.per_row = array("d", repeat(_NAN, n))
            _consume(map(self.per_row.__setitem__, rows, vals))
        order = sorted(range(len(vals)), key=vals.__getitem__)
        self.sorted_vals = array("d", map(vals.__getitem__, order))
        self.sorted_rows = array("I", map(rows.__getitem__, order))

    def value_range(self, term: FieldTerm) -> tuple[int, int]:
        """Index range in ``sorted_vals`` of the values satisfying a cmp/range/numeric-eq term."""
        v = self.sorted_vals
        if term.op == "eq":
            assert term.num is not None
            return bisect.bisect_left(v, term.num), bisect.bisect_right(v, term.num)
        if term.op == "cmp":
            t = term.num
            c = term.cmp
            if c == ">":
                return bisect.bisect_right(v, t), len(v)
            if c == ">=":
                return bisect.bisect_left(v, t), len(v)
            if c == "<":
                return 0, bisect.bisect_left(v, t)
            return 0, bisect.bisect_right(v, t)
        i0 = 0 if term.lo is None else (bisect.bisect_left if term.lo_incl else bisect.bisect_right)(v, term.lo)
        i1 = len(v) if term.hi is None else (bisect.bisect_right if term.hi_incl else bisect.bisect_left)(v, term.hi)
        return i0, max(i0, i1)

    def flags(self, term: FieldTerm, rows: Sequence[int]) -> Iterable[Any]:
        """Per-row truth of a term over ``rows`` (NaN = absent compares false)."""
        vals = list(map(self.per_row.__getitem__, rows))
        if term.op == "eq":
            return map(float(term.num).__eq__, vals)  # type: ignore[arg-type]
        if term.op == "cmp":
            t = float(term.num)  # type: ignore[arg-type]
            fn = {">": t.__lt__, ">=": t.__le__, "<": t.__gt__, "<=": t.__ge__}[term.cmp or ">"]
            return map(fn, vals)
        parts: list[Iterable[Any]] = []
        if term.lo is not None:
            parts.append(map((term.lo.__le__ if term.lo_incl else term.lo.__lt__), vals))
        if term.hi is not None:
            parts.append(map((term.hi.__ge__ if term.hi_incl else term.hi.__gt__), vals))
        if not parts:
            return map(float.__eq__, vals, vals)  # not NaN
        if len(parts) == 1:
            return parts[0]
        return map(all, zip(*parts, strict=True))


# Templates: lower-case text with every digit and every letter a-f replaced by '#', so
# messages that differ only in numbers and hex ids (request ids, trace ids, durations)
# share one template. One bytes.translate over the whole text blob computes them all.
_TEMPLATE_TABLE = bytes.maketrans(b"0123456789abcdef", b"#" * 16)
_INEXACT_CHARS = frozenset("0123456789abcdef#")
MAX_TEMPLATES = 50_000
"""Above this many distinct templates (free-form text) free-text search scans the window."""


class TextColumn:
    """Free-text index: one lower-case blob of all texts (rows separated by NUL), row
    offsets into it, and rows per template.

    A term is looked for in the templates first (its own translation must occur in the
    template: a superset of the real matches), then checked in each candidate row's own
    text with ``blob.find(term, start, end)``, which is a C-speed pipeline over rows.
    """

    __slots__ = ("blob", "starts", "ends", "templates", "tcode", "tposts", "_cache")

    def __init__(self, texts: list[str]) -> None:
        low = [t.lower() for t in texts]
        blob = "\x00".join(low)
        if blob.count("\x00") != max(0, len(low) - 1):  # a NUL inside some text: blank it
            low = [t.replace("\x00", " ") for t in low]
            blob = "\x00".join(low)
        self.blob = blob
        self.starts = array("Q", accumulate(chain((0,), map(len, low[:-1])), lambda a, n: a + n + 1)) if low else array("Q")
        self.ends = array("Q", map(int.__add__, self.starts, map(len, low)))
        del low
        self.templates: list[bytes] | None = None
        self.tcode = array("I")
        self.tposts: list[array] = []
        self._cache: dict[bytes, list[int]] = {}
        if not texts:
            return
        keys = blob.encode("utf-8", "surrogatepass").translate(_TEMPLATE_TABLE).split(b"\x00")
        distinct = dict.fromkeys(keys)
        if len(distinct) > MAX_TEMPLATES:
            return
        tid = {k: i for i, k in enumerate(distinct)}
        self.templates = list(distinct)
        self.tcode = tcode = array("I", map(tid.__getitem__, keys))
        del keys
        self.tposts = [array("I") for _ in self.templates]
        appends = [p.append for p in self.tposts]
        for r, c in enumerate(tcode):
            appends[c](r)

    def candidates(self, term: TextTerm) -> tuple[list[int] | None, bool]:
        """Templates whose rows may contain the term (None: no template index), and
        whether all their rows do."""
        if self.templates is None:
            return None, False
        needles = term.pieces if term.regex is not None else (term.text,)
        exact = term.regex is None and not (_INEXACT_CHARS & set(term.text))
        ids: Iterable[int] = range(len(self.templates))
        for nd in sorted(needles, key=len, reverse=True):
            key = nd.encode("utf-8", "surrogatepass").translate(_TEMPLATE_TABLE)
            hit = self._cache.get(key)
            if hit is None:
                hit = list(compress(range(len(self.templates)), map(bytes.__contains__, self.templates, repeat(key))))
                if len(self._cache) > 1024:
                    self._cache.clear()
                self._cache[key] = hit
            ids = hit if isinstance(ids, range) else sorted(set(ids).intersection(hit))
        return list(ids), exact

    def verify(self, term: TextTerm, rows: Sequence[int]) -> list[int]:
        """The rows whose own text contains the term (``rows`` is iterated three times)."""
        starts = map(self.starts.__getitem__, rows)
        ends = map(self.ends.__getitem__, rows)
        if term.regex is not None:
            return list(compress(rows, map(term.regex.search, repeat(self.blob), starts, ends)))
        found = map(self.blob.find, repeat(term.text), starts, ends)
        return list(compress(rows, map((-1).__lt__, found)))

    def scan(self, term: TextTerm, lo: int, hi: int) -> list[int]:
        """Rows in ``[lo, hi)`` containing the term, by searching the blob itself."""
        if hi <= lo:
            return []
        blob, starts = self.blob, self.starts
        end = self.ends[hi - 1]
        out: list[int] = []
        pos = self.starts[lo]
        rx = term.regex
        while True:
            if rx is not None:
                m = rx.search(blob, pos, end)
                at = -1 if m is None else m.start()
            else:
                at = blob.find(term.text, pos, end)
            if at < 0:
                return out
            r = bisect.bisect_right(starts, at) - 1
            if rx is None or m.end() <= self.ends[r]:  # type: ignore[union-attr]
                out.append(r)
            if r + 1 >= hi:
                return out
            pos = starts[r + 1]


# --------------------------------------------------------------------------- record tables


@dataclass(frozen=True)
class FieldSpec:
    """A reserved field: record key, default, and an optional value mapping (raw -> value,
    unmapped values kept as they are)."""

    key: str
    default: Any = None
    mapping: dict[Any, Any] | None = None

    def column(self, records: list[dict[str, Any]]) -> list[Any]:
        """The field of every record, extracted at C speed (no Python call per record)."""
        raw = list(map(dict.get, records, repeat(self.key), repeat(self.default)))
        if self.mapping is not None:
            raw = list(map(self.mapping.get, raw, raw))
        return raw

    def get(self, rec: dict[str, Any]) -> Any:
        v = rec.get(self.key, self.default)
        return self.mapping.get(v, v) if self.mapping is not None else v


@dataclass(frozen=True)
class TableSpec:
    """How to index one kind of record."""

    kind: str  # "log" | "span" | "event" (used in messages)
    time_key: str
    keyword: dict[str, FieldSpec]  # reserved keyword fields
    numeric: dict[str, FieldSpec]  # reserved numeric fields
    attrs_key: str  # the nested map of attributes / tags
    text: tuple[str, ...]  # record keys whose values, joined, are the searchable text
    text_sep: str
    aliases: dict[str, str]
    unlimited: frozenset[str] = frozenset()  # keyword fields indexed whatever their cardinality


def _flatten(d: dict[str, Any], prefix: str, out: dict[str, Any]) -> None:
    for k, v in d.items():
        if type(v) is dict:
            _flatten(v, f"{prefix}{k}.", out)
        else:
            out[prefix + k] = v


def _attr_path(attrs: Any, key: str) -> Any:
    """Attribute ``key`` from a flat (``"http.status_code"``) or nested map."""
    if not isinstance(attrs, dict):
        return None
    if key in attrs:
        return attrs[key]
    if "." in key:
        cur: Any = attrs
        parts = key.split(".")
        for i, p in enumerate(parts):
            if not isinstance(cur, dict):
                return None
            if p in cur:
                cur = cur[p]
                continue
            rest = ".".join(parts[i:])
            return cur.get(rest)
        return cur
    return None


class RecordTable:
    """Logs, spans or events: time-sorted rows with keyword, numeric and text indexes."""

    def __init__(self, spec: TableSpec, records: list[dict[str, Any]]) -> None:
        self.spec = spec
        self.kind = spec.kind
        ts = list(map(operator.itemgetter(spec.time_key), records))
        if ts != sorted(ts):
            order = sorted(range(len(records)), key=ts.__getitem__)  # stable: ties keep input order
            records = list(map(records.__getitem__, order))
            ts = list(map(ts.__getitem__, order))
        self.records = records
        self.ts: list[float] = ts
        self.n = n = len(records)
        self.keyword: dict[str, KeywordColumn] = {}
        self.numeric: dict[str, NumericColumn] = {}
        self.unindexed: set[str] = set()

        for name, f in spec.keyword.items():
            self._add_column(name, None, f.column(records), unlimited=name in spec.unlimited)
        for name, f in spec.numeric.items():
            self.numeric[name] = NumericColumn(name, n, range(n), list(map(num_value, f.column(records))))
        ak = spec.attrs_key
        self._attr_columns([m if m else _EMPTY for m in map(dict.get, records, repeat(ak))], "@")
        parts = []
        for key in spec.text:
            col = list(map(dict.get, records, repeat(key), repeat("")))
            if not set(map(type, col)) <= {str}:
                col = ["" if x is None else str(x) for x in col]
            parts.append(col)
        texts = parts[0] if len(parts) == 1 else list(map(spec.text_sep.join, zip(*parts, strict=True)))
        self.text = TextColumn(texts)

    def _attr_columns(self, maps: list[dict[str, Any]], prefix: str) -> None:
        """Columns for every key of the per-record attribute maps (nested maps flattened).

        Frequent keys are extracted with one list comprehension each (C-level dict gets);
        keys on fewer than 1% of the records are collected in a single pass over just the
        records that carry them, so a world with many rare keys stays cheap to index.
        """
        n = len(maps)
        keys = set().union(*maps) if maps else set()
        if len(keys) <= 32:  # the usual case: extracting every key densely is cheapest
            common = keys
        else:
            counts = Counter(chain.from_iterable(maps))
            common = {k for k, c in counts.items() if c * 100 >= n}
        for k in sorted(common):
            self._attr_values(prefix + k, None, list(map(dict.get, maps, repeat(k))))
        if len(common) == len(keys):
            return
        rare_rows = list(compress(range(n), map(operator.not_, map(common.issuperset, maps))))
        by_key: dict[str, tuple[list[int], list[Any]]] = {}
        for r in rare_rows:
            for k, v in maps[r].items():
                if k not in common:
                    e = by_key.get(k)
                    if e is None:
                        e = by_key[k] = ([], [])
                    e[0].append(r)
                    e[1].append(v)
        for k, (rows, vals) in sorted(by_key.items()):
            self._attr_values(prefix + k, rows, vals)

    def _attr_values(self, name: str, rows: list[int] | None, vals: list[Any]) -> None:
        if self._add_column(name, rows, vals, unlimited=False):
            return
        types = set(map(type, vals))
        if dict in types:  # nested attributes: {"http": {"status_code": 500}} -> @http.status_code
            sub = [v if type(v) is dict else _EMPTY for v in vals]
            if rows is None:
                self._attr_columns(sub, name + ".")
            else:
                flat: list[dict[str, Any]] = []
                for v in sub:
                    f: dict[str, Any] = {}
                    _flatten(v, "", f)
                    flat.append(f)
                for k2 in sorted({k for f in flat for k in f}):
                    pairs = [(r, f[k2]) for r, f in zip(rows, flat, strict=True) if k2 in f]
                    self._add_column(f"{name}.{k2}", [r for r, _ in pairs], [v for _, v in pairs], False)
            if not types - {dict, type(None)}:
                return
            vals = [None if type(v) is dict else v for v in vals]
        if not self._add_column(name, rows, vals, unlimited=False):
            self.unindexed.add(name)  # lists as values: checked record by record

    def _add_column(self, name: str, rows: list[int] | None, raw: list[Any], unlimited: bool) -> bool:
        """A keyword column from raw values (one per row when ``rows`` is None, else for
        ``rows``); a numeric column instead when there are too many distinct numbers.
        False when some value is unhashable (a nested map or a list)."""
        n = self.n
        try:
            distinct = dict.fromkeys(raw)
        except TypeError:
            return False
        has_absent = None in distinct
        distinct.pop(None, None)
        if not distinct:
            return True
        if not unlimited and len(distinct) > MAX_KEYWORD_VALUES:
            nums = [num_value(v) for v in list(distinct)[:1000]]
            if sum(x is not None for x in nums) >= 0.9 * len(nums):
                self.numeric[name] = NumericColumn(name, n, rows if rows is not None else range(n), list(map(num_value, raw)))
            # id-like strings stay searchable, record by record
            self.unindexed.add(name)
            return True
        # Raw values -> canonical lower-case strings -> codes (1..); "Checkout" and
        # "checkout", or 500 and "500", share a code.
        if set(map(type, distinct)) == {str}:
            normed = list(map(str.lower, distinct))
        else:
            normed = [norm_value(v) or "" for v in distinct]
        values = ["", *dict.fromkeys(normed)]
        code_of_norm = dict(zip(values, range(len(values)), strict=True))
        raw_code: dict[Any, int] = dict(zip(distinct, map(code_of_norm.__getitem__, normed), strict=True))
        display = list(values)
        if normed and any(type(v) is str and v != n for v, n in zip(distinct, normed, strict=True)):
            seen: set[int] = set()
            for rv, c in raw_code.items():
                if c not in seen:
                    seen.add(c)
                    display[c] = rv if type(rv) is str else values[c]
        raw_code[None] = 0
        tc = _typecode(len(values))
        if rows is None:
            codes = array(tc, map(raw_code.__getitem__, raw))
            cvals, crows = codes, range(n)
        else:
            cvals = array(tc, map(raw_code.__getitem__, raw))
            codes = array(tc, bytes(n * cvals.itemsize))
            _consume(map(codes.__setitem__, rows, cvals))
            crows = rows
        postings: Sequence[Sequence[int]]
        if len(values) > MAX_KEYWORD_VALUES:
            # ids (trace_id): one stable sort instead of a small array per value
            postings = _GroupedPostings(crows, cvals, len(values))
        elif len(values) == 2 and not has_absent and rows is None:
            postings = [array("I"), array("I", range(n))]  # one value on every row (env:prod)
        else:
            lists = [array("I") for _ in values]
            appends = [p.append for p in lists]
            for r, c in zip(crows, cvals, strict=True):
                appends[c](r)
            lists[0] = array("I")  # rows without the field are never generated from here
            postings = lists
        self.keyword[name] = KeywordColumn(name, values, codes, postings, display)
        return True

    # -- field access -------------------------------------------------------------------

    def _names(self, key: str, attr: bool) -> list[str]:
        k = self.spec.aliases.get(key, key)
        return ["@" + key, k] if attr else [k, "@" + k]

    def resolve(self, key: str, attr: bool) -> tuple[KeywordColumn | None, NumericColumn | None, bool]:
        """Columns of a query key, and whether the key exists at all in this table."""
        for nm in self._names(key, attr):
            kw, num = self.keyword.get(nm), self.numeric.get(nm)
            if kw is not None or num is not None or nm in self.unindexed:
                return kw, num, True
        return None, None, False

    def value(self, rec: dict[str, Any], key: str, attr: bool) -> Any:
        """Raw value of a query key in one record (same resolution order as ``resolve``)."""
        for nm in self._names(key, attr):
            if nm.startswith("@"):
                v = _attr_path(rec.get(self.spec.attrs_key), nm[1:])
                if v is not None:
                    return v
            else:
                g = self.spec.keyword.get(nm) or self.spec.numeric.get(nm)
                if g is not None:
                    return g.get(rec)
        return None

    def facet(self, name: str) -> tuple[str, bool]:
        """Split a facet name like ``@http.status_code`` into (key, attr)."""
        return (name[1:], True) if name.startswith("@") else (name, False)

    # -- search -------------------------------------------------------------------------

    def window(self, t0: float, t1: float) -> tuple[int, int]:
        """Row range of records with ``t0 <= time <= t1``."""
        return bisect.bisect_left(self.ts, t0), bisect.bisect_right(self.ts, t1)

    def search(self, node: Node, t0: float, t1: float) -> SearchResult:
        lo, hi = self.window(t0, t1)
        warnings: list[str] = []
        plan = _plan(self, node, lo, hi, warnings)
        if isinstance(plan, _All):
            rows: RowSet = _RangeRows(lo, hi)
        elif isinstance(plan, _NotPlan) and plan.child.size() < UNBOUNDED:
            rows = _ComplementRows(lo, hi, list(plan.child.generate()))
        else:
            rows = _SortedRows(plan.generate())
        return SearchResult(rows, list(dict.fromkeys(warnings)))

    def facet_values(self, facet: str) -> tuple[Callable[[int], str | None], KeywordColumn | None]:
        """A function row -> facet value, and the keyword column when the facet has one."""
        key, attr = self.facet(facet)
        kw, _num, _exists = self.resolve(key, attr)
        if kw is not None:
            vals = kw.display
            codes = kw.codes
            return (lambda r: vals[codes[r]] if codes[r] else None), kw
        recs = self.records

        def get(r: int) -> str | None:
            v = self.value(recs[r], key, attr)
            if isinstance(v, list | tuple):
                v = v[0] if v else None
            return norm_value(v)

        return get, None


@dataclass
class SearchResult:
    rows: RowSet
    warnings: list[str]


# --------------------------------------------------------------------------- row sets


class RowSet:
    """The matching rows of a search, ascending (= oldest first)."""

    def count(self) -> int:
        raise NotImplementedError

    def page(self, desc: bool, after: int | None, limit: int) -> list[int]:
        """Up to ``limit`` rows strictly past ``after`` (a row id; None = from the start)."""
        raise NotImplementedError

    def rows(self) -> Sequence[int]:
        raise NotImplementedError

    _codes_cache: tuple[str, Any] | None = None

    def _codes_of(self, col: KeywordColumn) -> Any:
        """The column's code of every matching row (bytes when codes fit a byte)."""
        if self._codes_cache is None or self._codes_cache[0] != col.name:
            got = map(col.codes.__getitem__, self.rows())
            self._codes_cache = (col.name, bytes(got) if col.codes.typecode == "B" else array(col.codes.typecode, got))
        return self._codes_cache[1]

    def group_counts(self, col: KeywordColumn) -> Counter[int]:
        """Matching rows per code of a column (0 = field absent)."""
        return Counter(self._codes_of(col))

    def partition(self, col: KeywordColumn, codes: list[int]) -> dict[int, Sequence[int]]:
        """Matching rows holding each of ``codes``, in row order."""
        rows = self.rows()
        got = self._codes_of(col)
        if len(codes) > 8:  # many groups: one pass beats one C-level sweep per group
            want: dict[int, list[int]] = {c: [] for c in codes}
            for r, c in zip(rows, got, strict=True):
                lst = want.get(c)
                if lst is not None:
                    lst.append(r)
            return dict(want)
        out: dict[int, Sequence[int]] = {}
        for c in codes:
            if isinstance(got, bytes):  # one C-level translate per group
                out[c] = list(compress(rows, got.translate(_ONE_BYTE[c])))
            else:
                out[c] = list(compress(rows, map(c.__eq__, got)))
        return out


class _SortedRows(RowSet):
    def __init__(self, rows: Sequence[int]) -> None:
        self._rows = rows

    def count(self) -> int:
        return len(self._rows)

    def page(self, desc: bool, after: int | None, limit: int) -> list[int]:
        r = self._rows
        if desc:
            i = len(r) if after is None else bisect.bisect_left(r, after)
            return list(r[max(0, i - limit) : i])[::-1]
        i = 0 if after is None else bisect.bisect_right(r, after)
        return list(r[i : i + limit])

    def rows(self) -> Sequence[int]:
        return self._rows


class _RangeRows(_SortedRows):
    """Every row of the window: group counts come straight from the postings."""

    def __init__(self, lo: int, hi: int) -> None:
        super().__init__(range(lo, hi))
        self.lo, self.hi = lo, hi

    def group_counts(self, col: KeywordColumn) -> Counter[int]:
        if len(col.values) > _MANY_TEMPLATES:  # ids: counting the rows beats a bisect per value
            return super().group_counts(col)
        c: Counter[int] = Counter()
        total = 0
        for code in range(1, len(col.values)):
            k = col.count(code, self.lo, self.hi)
            if k:
                c[code] = k
                total += k
        if total < self.hi - self.lo:
            c[0] = self.hi - self.lo - total
        return c

    def partition(self, col: KeywordColumn, codes: list[int]) -> dict[int, Sequence[int]]:
        if 0 in codes:
            return super().partition(col, codes)
        return {c: col.slice(c, self.lo, self.hi) for c in codes}


class _ComplementRows(RowSet):
    """The window minus a (small) excluded set: ``-status:info`` without scanning."""

    def __init__(self, lo: int, hi: int, excluded: list[int]) -> None:
        self.lo, self.hi = lo, hi
        self.excluded = excluded
        self._ex = set(excluded)

    def count(self) -> int:
        return self.hi - self.lo - len(self.excluded)

    def page(self, desc: bool, after: int | None, limit: int) -> list[int]:
        out: list[int] = []
        if desc:
            r = self.hi - 1 if after is None else min(after - 1, self.hi - 1)
            while r >= self.lo and len(out) < limit:
                if r not in self._ex:
                    out.append(r)
                r -= 1
        else:
            r = self.lo if after is None else max(after + 1, self.lo)
            while r < self.hi and len(out) < limit:
                if r not in self._ex:
                    out.append(r)
                r += 1
        return out

    def rows(self) -> Sequence[int]:
        return list(filterfalse(self._ex.__contains__, range(self.lo, self.hi)))

    def group_counts(self, col: KeywordColumn) -> Counter[int]:
        c = _RangeRows(self.lo, self.hi).group_counts(col)
        c.subtract(Counter(map(col.codes.__getitem__, self.excluded)))
        return +c


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
            if len(self.codes) > _MANY_TEMPLATES:
                self._size = self.hi - self.lo  # as expensive as a scan
            else:
                self._size = sum(self.col.count(c, self.lo, self.hi) for c in self.codes)
        return self._size

    def generate(self) -> Sequence[int]:
        if len(self.codes) == 1:
            return self.col.slice(self.codes[0], self.lo, self.hi)
        if len(self.codes) > _MANY_TEMPLATES:
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
        return self.tids is None or len(self.tids) > _MANY_TEMPLATES

    def size(self) -> int:
        if self._size is None:
            if self._scan_window():
                self._size = self.hi - self.lo
            else:
                tp = self.text.tposts
                self._size = sum(b - a for a, b in (_window(tp[t], self.lo, self.hi) for t in self.tids or ()))
        return self._size

    def generate(self) -> Sequence[int]:
        if self._scan_window():
            return self.text.scan(self.term, self.lo, self.hi)
        tp = self.text.tposts
        slices = []
        for t in self.tids or ():
            a, b = _window(tp[t], self.lo, self.hi)
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


# --------------------------------------------------------------------------- metrics


class MetricIndex:
    """Series grouped by metric name, with per-metric tag postings."""

    def __init__(self, series: list[dict[str, Any]]) -> None:
        self.series = series
        self.by_name: dict[str, list[int]] = {}
        self.types: dict[str, str] = {}
        # metric -> tag key -> lower-case value -> series ids
        self.tag_postings: dict[str, dict[str, dict[str, list[int]]]] = {}
        for i, s in enumerate(series):
            name = s["metric"]
            self.by_name.setdefault(name, []).append(i)
            self.types.setdefault(name, s.get("type", "gauge"))
            tp = self.tag_postings.setdefault(name, {})
            for k, v in (s.get("tags") or {}).items():
                tp.setdefault(k, {}).setdefault(str(v).lower(), []).append(i)
        self.names = sorted(self.by_name)
        # tag key -> lower-case value -> series ids, across metrics (list_metrics filters)
        self.global_postings: dict[str, dict[str, list[int]]] = {}
        for name in self.names:
            for k, vals in self.tag_postings[name].items():
                g = self.global_postings.setdefault(k, {})
                for v, ids in vals.items():
                    g.setdefault(v, []).extend(ids)
        self.all_tags = {name: self.tag_values(self.by_name[name]) for name in self.names}

    def tag_values(self, ids: Iterable[int]) -> dict[str, list[str]]:
        """Tag key -> sorted distinct values over some series."""
        out: dict[str, set[str]] = {}
        for i in ids:
            for k, v in (self.series[i].get("tags") or {}).items():
                out.setdefault(k, set()).add(str(v))
        return {k: sorted(v) for k, v in sorted(out.items())}


# --------------------------------------------------------------------------- world


_BLANK_IS_ABSENT = {"": None}


def _log_spec() -> TableSpec:
    return TableSpec(
        kind="log",
        time_key="ts",
        keyword={
            "service": FieldSpec("service"),
            "host": FieldSpec("host", mapping=_BLANK_IS_ABSENT),
            "status": FieldSpec("status", "info"),
            "trace_id": FieldSpec("trace_id", mapping=_BLANK_IS_ABSENT),
        },
        numeric={},
        attrs_key="attrs",
        text=("message",),
        text_sep="",
        aliases={"level": "status"},
        unlimited=frozenset({"trace_id"}),
    )


def _span_spec() -> TableSpec:
    return TableSpec(
        kind="span",
        time_key="start",
        keyword={
            "service": FieldSpec("service"),
            "name": FieldSpec("name"),
            "resource": FieldSpec("resource"),
            "status": FieldSpec("error", False, {True: "error", False: "ok", None: "ok"}),
            "trace_id": FieldSpec("trace_id"),
        },
        numeric={"duration": FieldSpec("duration")},
        attrs_key="tags",
        text=("resource", "name"),
        text_sep=" ",
        aliases={"resource_name": "resource", "operation_name": "name"},
        unlimited=frozenset({"trace_id"}),
    )


def _event_spec() -> TableSpec:
    return TableSpec(
        kind="event",
        time_key="ts",
        keyword={"source": FieldSpec("source"), "id": FieldSpec("id")},
        numeric={},
        attrs_key="tags",
        text=("title", "text"),
        text_sep="\n",
        aliases={},
        unlimited=frozenset({"id"}),
    )


class WorldIndex:
    """Everything the tools need from one snapshot, indexed once."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.world_id: str = data.get("world_id", "")
        self.env: str = data.get("env", "prod")
        self.start: float = data.get("start", 0)
        self.end: float = data.get("end", 0)
        topo = data.get("topology") or {}
        self.services: list[dict[str, Any]] = sorted(topo.get("services") or [], key=lambda s: s["name"])
        self.service_by_name = {s["name"]: s for s in self.services}
        self.downstream: dict[str, list[tuple[str, str]]] = {}
        self.upstream: dict[str, list[tuple[str, str]]] = {}
        for d in topo.get("dependencies") or []:
            proto = d.get("protocol", "http")
            self.downstream.setdefault(d["source"], []).append((d["target"], proto))
            self.upstream.setdefault(d["target"], []).append((d["source"], proto))
        for adj in (self.downstream, self.upstream):
            for k in adj:
                adj[k].sort()
        self.metrics = MetricIndex(data.get("metrics") or [])
        self.logs = RecordTable(_log_spec(), list(data.get("logs") or []))
        self.spans = RecordTable(_span_spec(), list(data.get("spans") or []))
        self.events = RecordTable(_event_spec(), list(data.get("events") or []))
        self.monitors: list[dict[str, Any]] = sorted(data.get("monitors") or [], key=lambda m: m["id"])

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WorldIndex:
        """Index a snapshot dict (the world.py format). Raises ValueError on a malformed one."""
        if not isinstance(data, dict):
            raise ValueError("snapshot must be a JSON object")
        # Building allocates millions of small objects and frees almost none: the cyclic
        # collector would walk the whole snapshot again and again for nothing.
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            return cls(data)
        except (KeyError, TypeError, AttributeError) as e:
            raise ValueError(f"malformed snapshot: {type(e).__name__}: {e}") from e
        finally:
            if was_enabled:
                gc.enable()

    def known_entity(self, name: str) -> bool:
        return name in self.service_by_name or name in self.downstream or name in self.upstream

