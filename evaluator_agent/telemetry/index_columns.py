"""The columns of a record table: keyword codes and postings, numeric value order, free text.

Each column answers a term without a Python loop over rows: postings are cut to a row
window by bisection, code lookups run as ``compress`` / ``map`` / ``bytes.translate``
pipelines. How the columns serve a search is told in ``index.py``.
"""

from __future__ import annotations

import bisect
import operator
from array import array
from collections import Counter, deque
from collections.abc import Iterable, Sequence
from itertools import accumulate, chain, compress, repeat
from typing import Any

from evaluator_agent.telemetry.query_values import num_value
from evaluator_agent.telemetry.search_query import FieldTerm, TextTerm, norm_matches

__all__ = [
    "MANY_TEMPLATES",
    "MAX_KEYWORD_VALUES",
    "MAX_TEMPLATES",
    "GroupedPostings",
    "KeywordColumn",
    "NumericColumn",
    "TextColumn",
    "consume",
    "posting_window",
]

MAX_KEYWORD_VALUES = 4096
"""Columns with more distinct values are not code-indexed (ids); numeric ones get a
sorted numeric index instead, the rest are checked record by record."""

MANY_TEMPLATES = 1024  # above this many candidate templates (or values), scanning the window is cheaper
_NAN = float("nan")


def consume(it: Iterable[Any]) -> None:
    """Run an iterator to its end at C speed (for the side effects of a ``map``)."""
    deque(it, maxlen=0)


def posting_window(post: Sequence[int], lo: int, hi: int) -> tuple[int, int]:
    """Index range of the rows of a sorted posting list within the row window ``[lo, hi)``."""
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
        i0, i1 = posting_window(self.postings[code], lo, hi)
        return i1 - i0

    def slice(self, code: int, lo: int, hi: int) -> Sequence[int]:
        post = self.postings[code]
        i0, i1 = posting_window(post, lo, hi)
        return post[i0:i1]


class GroupedPostings(Sequence[array]):
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
            consume(map(self.per_row.__setitem__, rows, vals))
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
