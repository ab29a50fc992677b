"""Row sets: the matching rows of one search, ascending, with paging and group counts.

A plain sorted list, the whole window (counts straight from the postings) or the window
minus a small excluded set (``-status:info`` without listing every row).
"""

from __future__ import annotations

import bisect
from array import array
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import compress, filterfalse
from typing import Any

from evaluator_agent.telemetry.index_columns import MANY_TEMPLATES, KeywordColumn

__all__ = ["ComplementRows", "RangeRows", "RowSet", "SearchResult", "SortedRows"]

_ONE_BYTE = [bytes(1 if i == c else 0 for i in range(256)) for c in range(256)]  # translate: c -> 1, else 0


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


class SortedRows(RowSet):
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


class RangeRows(SortedRows):
    """Every row of the window: group counts come straight from the postings."""

    def __init__(self, lo: int, hi: int) -> None:
        super().__init__(range(lo, hi))
        self.lo, self.hi = lo, hi

    def group_counts(self, col: KeywordColumn) -> Counter[int]:
        if len(col.values) > MANY_TEMPLATES:  # ids: counting the rows beats a bisect per value
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


class ComplementRows(RowSet):
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
        c = RangeRows(self.lo, self.hi).group_counts(col)
        c.subtract(Counter(map(col.codes.__getitem__, self.excluded)))
        return +c


@dataclass
class SearchResult:
    rows: RowSet
    warnings: list[str]

