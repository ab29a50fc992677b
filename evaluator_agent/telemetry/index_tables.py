"""Record tables: logs, spans or events as time-sorted rows with their columns.

A :class:`TableSpec` says how to read one kind of record (time key, reserved fields,
attribute map, text); :class:`RecordTable` sorts the records by time and builds a column
for every field and attribute key, then resolves query keys to columns and values.
"""

from __future__ import annotations

import bisect
import operator
from array import array
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import chain, compress, repeat
from typing import Any

from evaluator_agent.telemetry.index_columns import (
    MAX_KEYWORD_VALUES,
    GroupedPostings,
    KeywordColumn,
    NumericColumn,
    TextColumn,
    consume,
)
from evaluator_agent.telemetry.query_values import norm_value, num_value

__all__ = ["FieldSpec", "RecordTable", "TableSpec"]

_EMPTY: dict[str, Any] = {}


def _typecode(n_values: int) -> str:
    return "B" if n_values < 256 else "H" if n_values < 65536 else "I"


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
            consume(map(codes.__setitem__, rows, cvals))
            crows = rows
        postings: Sequence[Sequence[int]]
        if len(values) > MAX_KEYWORD_VALUES:
            # ids (trace_id): one stable sort instead of a small array per value
            postings = GroupedPostings(crows, cvals, len(values))
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

