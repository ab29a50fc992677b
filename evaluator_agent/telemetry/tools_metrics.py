"""The metric tools: ``list_metrics``, and ``query_metrics`` with the evaluation of a metric
query over the series (time aggregation per series, then space aggregation per group)."""

from __future__ import annotations

import difflib
import math
from typing import Any

from evaluator_agent.telemetry.metric_query import (
    MetricQuery,
    parse_metric_query,
    parse_tag_filters,
)
from evaluator_agent.telemetry.query_values import glob_regex
from evaluator_agent.telemetry.tools_base import MAX_RESULT_BYTES, ToolBase, dumps, nice_interval

__all__ = ["MetricTools"]

MAX_POINTS = 300  # per series
MIN_POINTS = 10
POINT_BUDGET = 2500  # per query_metrics answer (~55 KiB of points)


def _round(v: float | None) -> float | None:
    if v is None or not math.isfinite(v):
        return None
    return float(f"{v:.6g}")


class MetricTools(ToolBase):
    """``list_metrics`` and ``query_metrics``."""

    def _list_metrics(self, args: dict[str, Any]) -> dict[str, Any]:
        q = (args.get("query") or "").strip()
        mi = self.index.metrics
        words = [w for w in q.replace(",", " ").split() if w]
        tag_words = [w for w in words if ":" in w]
        name_rx = [glob_regex(w if "*" in w or "?" in w else f"*{w}*") for w in words if ":" not in w]
        names = [n for n in mi.names if all(rx.fullmatch(n.lower()) for rx in name_rx)]
        by_metric: dict[str, list[int]] | None = None
        if tag_words:
            filters = parse_tag_filters(",".join(tag_words))
            pool: set[int] | None = None
            for f in filters:  # exact positive values narrow through the global postings
                if f.negate or f.patterns is None or any(c in p for p in f.patterns for c in "*?"):
                    continue
                hit: set[int] = set()
                for p in f.patterns:
                    hit.update(mi.global_postings.get(f.key, {}).get(p.lower(), ()))
                pool = hit if pool is None else pool & hit
            wanted = set(names)
            cand = sorted(pool) if pool is not None else [i for n in names for i in mi.by_name[n]]
            by_metric = {}
            for i in cand:
                s = mi.series[i]
                if s["metric"] in wanted and all(f.matches(s.get("tags") or {}) for f in filters):
                    by_metric.setdefault(s["metric"], []).append(i)
            names = [n for n in names if n in by_metric]
        limit, fp, offset = self._page_start(args, "list_metrics", q)
        items = []
        for name in names[offset : offset + limit]:
            tags = mi.tag_values(by_metric[name]) if by_metric is not None else mi.all_tags[name]
            items.append({"metric": name, "type": mi.types[name], "tags": {k: v[:20] for k, v in tags.items()}})
        content: dict[str, Any] = {"metrics": items, "total": len(names)}
        return self._page_end(content, "metrics", fp, offset, len(names))

    def _query_metrics(self, args: dict[str, Any]) -> dict[str, Any]:
        q = args["query"]
        mq = parse_metric_query(q)
        t0, t1 = self._window(args)
        mi = self.index.metrics
        content: dict[str, Any] = {"query": q, "from": t0, "to": t1, "series": []}
        ids = mi.by_name.get(mq.metric)
        if ids is None:
            close = difflib.get_close_matches(mq.metric, mi.names, n=3, cutoff=0.6)
            hint = f"; did you mean {', '.join(close)}?" if close else "; list_metrics shows what exists"
            content["warning"] = f"no metric named {mq.metric!r}{hint}"
            return content
        ids = self._filter_series(mq, ids)
        if not ids:
            content["warning"] = self._no_series_warning(mq)
            return content
        series = mi.series
        groups: dict[tuple[str, ...], list[int]] = {}
        for i in ids:
            tags = series[i].get("tags") or {}
            key = tuple(str(tags.get(g, "N/A")) for g in mq.group_by)
            groups.setdefault(key, []).append(i)
        base = max(int(series[i].get("interval", 60)) for i in ids)
        # Many groups get coarser points rather than a cut list, so every group stays visible.
        max_pts = max(MIN_POINTS, min(MAX_POINTS, POINT_BUDGET // len(groups)))
        need = (t1 - t0) / max_pts
        interval = max(mq.rollup_seconds or base, base)
        notes: list[str] = []
        if mq.rollup_seconds is not None and mq.rollup_seconds < base:
            notes.append(f"rollup interval raised to the metric's own interval, {base}s")
        if interval < need:
            interval = nice_interval(need)
            if mq.rollup_seconds is not None:
                notes.append(f"rollup interval raised to {interval}s to keep at most {max_pts} points per series")
        method = mq.rollup or ("sum" if mi.types.get(mq.metric) == "count" else "avg")
        scope = [f.text() for f in mq.filters]
        out = []
        # Series are computed in group order until the answer is full: a query over 500
        # groups costs what the ~100 series it can show cost.
        budget = MAX_RESULT_BYTES - len(dumps(content)) - 400 - len(q)
        for key in sorted(groups):
            values, g0 = _group_points(series, groups[key], t0, t1, interval, method, mq.aggregation)
            gtags = dict(zip(mq.group_by, key, strict=True))
            item = {
                "scope": ",".join(scope + [f"{k}:{v}" for k, v in gtags.items()]) or "*",
                "tags": gtags,
                "metric": mq.metric,
                "aggregation": mq.aggregation,
                "interval": interval,
                "pointlist": [[g0 + b * interval, _round(v)] for b, v in enumerate(values)],
                "length": len(values),
            }
            budget -= len(dumps(item)) + 2
            if budget < 0:
                break
            out.append(item)
        content["series"] = out
        if len(out) < len(groups):
            content["truncated"] = True
            content["series_total"] = len(groups)
            notes.append(f"showing {len(out)} of {len(groups)} series: narrow the filters or group by fewer tags")
        if notes:
            content["warning"] = "; ".join(notes)
        return content

    def _filter_series(self, mq: MetricQuery, ids: list[int]) -> list[int]:
        mi = self.index.metrics
        postings = mi.tag_postings.get(mq.metric, {})
        cand: set[int] | None = None
        for f in mq.filters:
            # Exact positive values narrow through postings; the rest is checked per series.
            if f.negate or f.patterns is None or any(c in p for p in f.patterns for c in "*?"):
                continue
            hit: set[int] = set()
            for p in f.patterns:
                hit.update(postings.get(f.key, {}).get(p.lower(), ()))
            cand = hit if cand is None else cand & hit
        pool = ids if cand is None else sorted(cand)
        return [i for i in pool if mq.matches(mi.series[i].get("tags") or {})]

    def _no_series_warning(self, mq: MetricQuery) -> str:
        postings = self.index.metrics.tag_postings.get(mq.metric, {})
        for f in mq.filters:
            if f.negate:
                continue
            if f.key not in postings:
                keys = ", ".join(sorted(postings)) or "none"
                return f"metric {mq.metric!r} has no tag {f.key!r} (its tags: {keys})"
            if f.patterns is not None:
                values = sorted(postings[f.key])
                if not any(rx.fullmatch(v) for rx in f.regexes for v in values):
                    shown = ", ".join(values[:10]) + (" ..." if len(values) > 10 else "")
                    return f"metric {mq.metric!r} has no series with {f.text()} ({f.key} values: {shown})"
        return f"no series of {mq.metric!r} match {{{mq.scope()}}}"


# ---------------------------------------------------------------------- metric math


def _agg(method: str, xs: list[Any], has_none: bool) -> float | None:
    if has_none:
        xs = [x for x in xs if x is not None]
    if not xs:
        return None
    if method == "avg":
        return sum(xs) / len(xs)
    if method == "sum":
        return float(sum(xs))
    if method == "min":
        return float(min(xs))
    if method == "max":
        return float(max(xs))
    return float(len(xs))


def _window_slice(s: dict[str, Any], t0: float, t1: float) -> tuple[int, int, list[Any]]:
    """(timestamp of first point, interval, values) of a series within [t0, t1]."""
    start, iv, vals = int(s["start"]), int(s.get("interval", 60)), s["values"]
    j0 = max(0, math.ceil((t0 - start) / iv))
    j1 = min(len(vals), math.floor((t1 - start) / iv) + 1)
    if j1 <= j0:
        return start, iv, []
    return start + j0 * iv, iv, vals[j0:j1]


def _rollup(first: int, iv: int, vals: list[Any], g0: int, interval: int, n: int, method: str) -> list[float | None]:
    """Time aggregation of one series' points onto ``n`` buckets starting at ``g0``."""
    out: list[float | None] = [None] * n
    if not vals:
        return out
    has_none = None in vals
    if interval == iv and (first - g0) % iv == 0:
        b0 = (first - g0) // iv
        seg = vals[: max(0, n - b0)]
        if method == "count":
            seg = [None if x is None else 1.0 for x in seg]
        out[b0 : b0 + len(seg)] = seg
        return out
    last = first + (len(vals) - 1) * iv
    for b in range((first - g0) // interval, min(n, (last - g0) // interval + 1)):
        lo = g0 + b * interval
        a = max(0, -((first - lo) // iv))  # ceil((lo - first) / iv)
        e = min(len(vals), -((first - lo - interval) // iv))
        if e > a:
            out[b] = _agg(method, vals[a:e], has_none)
    return out


_LINEAR = ("avg", "sum")


def _group_points(
    series: list[dict[str, Any]], ids: list[int], t0: float, t1: float, interval: int, method: str, space: str
) -> tuple[list[float | None], int]:
    """One output series: time aggregation per series, then space aggregation.

    When the two aggregations commute (both linear, or the same min/max) and the series
    share one grid without gaps, space aggregation runs first over the raw points, which
    is C-speed ``zip`` work instead of per-bucket Python for each of hundreds of series.
    """
    # Buckets follow the series' own grid (a world starting at :20 keeps points at :20);
    # without a rollup the first bucket is the first grid point inside the window.
    phase = int(series[ids[0]]["start"]) % interval
    g0 = int((t0 - phase) // interval * interval) + phase
    if g0 < t0 and interval == int(series[ids[0]].get("interval", 60)):
        g0 += interval
    n = max(0, int((t1 - g0) // interval) + 1)
    slices = [_window_slice(series[i], t0, t1) for i in ids]
    slices = [s for s in slices if s[2]]
    if not slices:
        return [None] * n, g0
    if len(slices) == 1:
        f, iv, v = slices[0]
        return _rollup(f, iv, v, g0, interval, n, method if space != "count" else "count"), g0
    same_grid = len({(f, iv, len(v)) for f, iv, v in slices}) == 1
    commutes = (space in _LINEAR and method in _LINEAR) or (space == method and space in ("min", "max"))
    if same_grid and commutes and not any(None in v for _, _, v in slices):
        f, iv, _ = slices[0]
        cols = zip(*(v for _, _, v in slices), strict=True)
        if space in _LINEAR:
            sums = list(map(sum, cols))
            k = len(slices)
            combined = sums if space == "sum" else [x / k for x in sums]
        else:
            combined = list(map(min if space == "min" else max, cols))
        return _rollup(f, iv, combined, g0, interval, n, method), g0
    per = [_rollup(f, iv, v, g0, interval, n, method) for f, iv, v in slices]
    out: list[float | None] = []
    for col in zip(*per, strict=True):
        xs = [x for x in col if x is not None]
        out.append(_agg(space, xs, False) if space != "count" else (float(len(xs)) if xs else None))
    return out, g0
