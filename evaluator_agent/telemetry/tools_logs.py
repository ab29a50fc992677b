"""The log tools: ``search_logs`` and ``aggregate_logs`` (counts per facet, optionally over time)."""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from evaluator_agent.telemetry.index_columns import KeywordColumn
from evaluator_agent.telemetry.index_plan import search_table
from evaluator_agent.telemetry.index_rows import RowSet
from evaluator_agent.telemetry.search_parser import parse_search_query
from evaluator_agent.telemetry.tools_base import (
    MAX_RECORD_LIMIT,
    ToolBase,
    ToolError,
    clip,
    clip_deep,
    iso,
    nice_interval,
)

__all__ = ["LogTools"]

MAX_BUCKETS = 300  # aggregate_logs timeseries


class LogTools(ToolBase):
    """``search_logs`` and ``aggregate_logs``."""

    def _log_item(self, r: dict[str, Any]) -> dict[str, Any]:
        return {
            "timestamp": iso(r["ts"]),
            "ts": r["ts"],
            "service": r.get("service"),
            "host": r.get("host", ""),
            "status": r.get("status", "info"),
            "message": clip(r.get("message", "")),
            "attributes": clip_deep(r.get("attrs") or {}),
            "trace_id": r.get("trace_id"),
        }

    def _search_logs(self, args: dict[str, Any]) -> dict[str, Any]:
        desc = args.get("sort", "-timestamp") != "timestamp"
        return self._record_page(self.index.logs, args, "search_logs", "logs", MAX_RECORD_LIMIT, self._log_item, desc)

    def _aggregate_logs(self, args: dict[str, Any]) -> dict[str, Any]:
        table = self.index.logs
        q = args.get("query") or ""
        node = parse_search_query(q)
        t0, t1 = self._window(args)
        limit = self._limit(args)
        facets = [str(f).strip() for f in args.get("group_by", [])]
        if any(not f or f in ("@",) for f in facets):
            raise ToolError("group_by facets must be non-empty names such as 'service' or '@http.status_code'")
        if len(set(facets)) < len(facets):
            raise ToolError("group_by lists the same facet twice")
        res = search_table(table, node, t0, t1)
        rows = res.rows
        total = rows.count()
        warnings = list(res.warnings)
        for f in facets:
            key, attr = table.facet(f)
            if not table.resolve(key, attr)[2]:
                warnings.append(f"no log in this world has a field '{f}'")

        # counts per group key (a tuple of facet values, None = absent)
        getters = [table.facet_values(f) for f in facets]
        if not facets:
            counts: Counter[tuple[Any, ...]] = Counter({(): total}) if total else Counter()
        elif len(facets) == 1 and getters[0][1] is not None:
            col = getters[0][1]
            counts = Counter({(col.display[c] if c else None,): n for c, n in rows.group_counts(col).items() if n})
        elif all(c is not None for _, c in getters):
            cols = [c for _, c in getters if c is not None]
            rr = rows.rows()
            combos = Counter(zip(*(map(c.codes.__getitem__, rr) for c in cols), strict=True))
            counts = Counter(
                {tuple(c.display[x] if x else None for c, x in zip(cols, k, strict=True)): n for k, n in combos.items()}
            )
        else:
            counts = Counter(tuple(g(r) for g, _ in getters) for r in rows.rows())
        ranked = sorted(counts.items(), key=lambda kv: (-kv[1], [("" if v is None else v) for v in kv[0]]))
        top = ranked[:limit]
        buckets: list[dict[str, Any]] = [
            {"by": {f: ("N/A" if v is None else v) for f, v in zip(facets, key, strict=True)}, "count": n}
            for key, n in top
        ]
        content: dict[str, Any] = {"buckets": buckets, "total": total}
        if "interval" in args and top:
            interval = int(args["interval"])
            if (t1 - t0) / interval > MAX_BUCKETS:
                interval = nice_interval((t1 - t0) / MAX_BUCKETS)
                warnings.append(f"interval raised to {interval}s to keep at most {MAX_BUCKETS} buckets")
            content["interval"] = interval
            g0 = int(t0 // interval * interval)
            edges = [table.window(g0 + b * interval, g0 + b * interval)[0] for b in range(int((t1 - g0) // interval) + 2)]
            edges[0] = table.window(t0, t1)[0]
            edges[-1] = table.window(t0, t1)[1]
            parts = _partition(rows, [k for k, _ in top], getters)
            for b, (key, _n) in zip(buckets, top, strict=True):
                part = parts.get(key, [])
                b["series"] = _bucket_counts(part, edges, g0, interval)
        if len(ranked) > limit:
            content["groups_total"] = len(ranked)
        if warnings:
            content["warning"] = "; ".join(dict.fromkeys(warnings))
        self._fit(content, "buckets")
        return content


# ---------------------------------------------------------------------- log aggregation


def _partition(
    rows: RowSet, keys: list[tuple[Any, ...]], getters: list[tuple[Callable[[int], Any], KeywordColumn | None]]
) -> dict[tuple[Any, ...], Sequence[int]]:
    """Rows of each wanted group key, in row (= time) order."""
    if not getters:
        return {(): rows.rows()}
    col = getters[0][1]
    if len(getters) == 1 and col is not None:
        codes = {k: (col.lookup.get(str(k[0]).lower()) if k[0] is not None else 0) for k in keys}
        parts = rows.partition(col, [c for c in codes.values() if c is not None])
        return {k: parts.get(c, []) for k, c in codes.items() if c is not None}
    wanted = set(keys)
    out: dict[tuple[Any, ...], list[int]] = {k: [] for k in wanted}
    fns = [g for g, _ in getters]
    for r in rows.rows():
        k = tuple(f(r) for f in fns)
        if k in wanted:
            out[k].append(r)
    return dict(out)


def _bucket_counts(rows: Sequence[int], edges: list[int], g0: int, interval: int) -> list[list[int]]:
    """[[bucket start, count], ...] of sorted rows, with bucket edges given as row ids."""
    pos = [bisect.bisect_left(rows, e) for e in edges]
    return [[g0 + b * interval, pos[b + 1] - pos[b]] for b in range(len(edges) - 1)]
