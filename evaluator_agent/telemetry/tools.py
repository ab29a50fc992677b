"""The telemetry tools, answered from one indexed world snapshot.

``Toolbox(index, now).call(name, arguments)`` never raises: a bad call (unknown tool,
unknown or mistyped argument, bad query, ``from`` after ``to``, unknown service or trace)
comes back as ``ToolOutcome(ok=False, error=...)`` with a message the target can act on,
and a bug of ours as ``ok=False, error="internal error: ..."``.

Rules shared by every tool:

- Nothing after ``now`` exists: ``to`` is clamped to ``now``; the default window is
  ``[now-1h, now]`` (or the hour before ``to``).
- ``limit`` defaults to 50 and is at most 500 (200 for logs and spans).
- Listings page with an opaque ``next_cursor`` (null on the last page). A cursor is tied
  to the query and window it came from; any other query rejects it.
- A result is at most ``MAX_RESULT_BYTES`` of JSON: longer lists are cut, the result says
  ``"truncated": true``, and ``next_cursor`` continues right after the last item shown.
- A call's arguments are at most ``MAX_ARGUMENTS_BYTES`` of JSON; a larger call is refused
  before anything parses it, and is stored as its size, hash and a prefix
  (:func:`stored_arguments`), so a target cannot make the proctor parse or keep megabytes.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import difflib
import hashlib
import json
import logging
import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from jsonschema import Draft202012Validator

from evaluator_agent.telemetry.catalog import TOOL_SPECS
from evaluator_agent.telemetry.index import KeywordColumn, RecordTable, RowSet, WorldIndex
from evaluator_agent.telemetry.query import (
    MetricQuery,
    QueryError,
    compile_predicate,
    glob_regex,
    parse_metric_query,
    parse_search_query,
    parse_tag_filters,
    parse_time,
)

__all__ = ["MAX_ARGUMENTS_BYTES", "MAX_RESULT_BYTES", "ToolOutcome", "Toolbox", "iso", "stored_arguments"]

log = logging.getLogger(__name__)

MAX_RESULT_BYTES = 64 * 1024
MAX_ARGUMENTS_BYTES = 8 * 1024  # the longest honest query is a few hundred bytes
STORED_PREFIX_CHARS = 256
DEFAULT_LIMIT = 50
MAX_LIMIT = 500
MAX_RECORD_LIMIT = 200  # logs and spans are bulky
DEFAULT_WINDOW_S = 3600
MAX_POINTS = 300  # per series
MIN_POINTS = 10
POINT_BUDGET = 2500  # per query_metrics answer (~55 KiB of points)
MAX_BUCKETS = 300  # aggregate_logs timeseries
MAX_TEXT = 4000  # characters of one message / text field
MAX_TRANSITIONS = 20
NICE_INTERVALS = (1, 5, 10, 15, 20, 30, 60, 120, 180, 300, 600, 900, 1200, 1800, 3600, 7200, 10800,
                  14400, 21600, 43200, 86400)


@dataclass(frozen=True)
class ToolOutcome:
    """The answer to one tool call: ``content`` when ok, else ``error``."""

    ok: bool
    content: Any | None = None
    error: str | None = None


class ToolError(Exception):
    """A call the target got wrong; the message is shown to it."""


_VALIDATORS: dict[str, Draft202012Validator] = {}
_PROPS: dict[str, list[str]] = {}


def _validator(name: str) -> Draft202012Validator:
    if not _VALIDATORS:
        for spec in TOOL_SPECS:
            _VALIDATORS[spec.name] = Draft202012Validator(spec.parameters)
            _PROPS[spec.name] = list(spec.parameters.get("properties", {}))
    return _VALIDATORS[name]


def iso(ts: float) -> str:
    """``2026-03-02T14:05:00.123Z``."""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _clip(s: Any) -> Any:
    if isinstance(s, str) and len(s) > MAX_TEXT:
        return s[:MAX_TEXT] + f"... [{len(s) - MAX_TEXT} more characters]"
    return s


def _clip_deep(x: Any, depth: int = 0) -> Any:
    """Attributes as shown: long strings clipped, long lists cut, deep nesting flattened."""
    if isinstance(x, str):
        return _clip(x)
    if isinstance(x, dict):
        if depth >= 4:
            return _clip(json.dumps(x, default=str))
        return {k: _clip_deep(v, depth + 1) for k, v in x.items()}
    if isinstance(x, list):
        return [_clip_deep(v, depth + 1) for v in x[:50]] + (["..."] if len(x) > 50 else [])
    return x


def _dumps(x: Any) -> str:
    return json.dumps(x, default=str)


def _arguments_json(arguments: Any) -> bytes | None:
    """The arguments as compact JSON, or None when they cannot be serialized."""
    try:
        return json.dumps(arguments, default=str, separators=(",", ":")).encode("utf-8", "replace")
    except (TypeError, ValueError, RecursionError):
        return None


def _arguments_size(arguments: Any) -> int:
    raw = _arguments_json(arguments)
    return MAX_ARGUMENTS_BYTES + 1 if raw is None else len(raw)


def stored_arguments(arguments: Any) -> Any:
    """What is recorded of a call's arguments: themselves, or for a call over the cap its
    size, sha256 and first characters (never the whole)."""
    raw = _arguments_json(arguments)
    if raw is not None and len(raw) <= MAX_ARGUMENTS_BYTES:
        return arguments
    if raw is None:
        raw = repr(type(arguments)).encode()
    return {
        "_oversized": True,
        "bytes": len(raw),
        "sha256": hashlib.sha256(raw).hexdigest(),
        "prefix": raw[: STORED_PREFIX_CHARS * 4].decode("utf-8", "ignore")[:STORED_PREFIX_CHARS],
    }


def _nice(seconds: float) -> int:
    for n in NICE_INTERVALS:
        if n >= seconds:
            return n
    return int(math.ceil(seconds / 86400)) * 86400


def _round(v: float | None) -> float | None:
    if v is None or not math.isfinite(v):
        return None
    return float(f"{v:.6g}")


class Toolbox:
    """The tools over one world, as seen at ``now`` (epoch seconds)."""

    def __init__(self, index: WorldIndex, now: float) -> None:
        self.index = index
        self.now = float(now)
        self._handlers: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "list_services": self._list_services,
            "get_service_dependencies": self._get_service_dependencies,
            "list_metrics": self._list_metrics,
            "query_metrics": self._query_metrics,
            "search_logs": self._search_logs,
            "aggregate_logs": self._aggregate_logs,
            "search_spans": self._search_spans,
            "get_trace": self._get_trace,
            "get_events": self._get_events,
            "get_monitors": self._get_monitors,
        }
        self._monitor_cache: dict[Any, tuple[str, list[dict[str, Any]]]] | None = None
        _validator("list_services")  # compile the argument schemas now, not in the first call

    # ------------------------------------------------------------------ entry point

    def call(self, name: str, arguments: dict[str, Any] | None) -> ToolOutcome:
        """Run one tool call. Never raises."""
        try:
            handler = self._handlers.get(name) if isinstance(name, str) else None
            if handler is None:
                return ToolOutcome(False, error=f"unknown tool {name!r}; tools: {', '.join(self._handlers)}")
            args = {} if arguments is None else arguments
            if not isinstance(args, dict):
                return ToolOutcome(False, error=f"arguments of {name} must be a JSON object, got {type(args).__name__}")
            size = _arguments_size(args)
            if size > MAX_ARGUMENTS_BYTES:
                return ToolOutcome(
                    False,
                    error=f"arguments of {name} are {size} bytes of JSON; at most {MAX_ARGUMENTS_BYTES} are accepted",
                )
            # Function-calling models often send null for an argument they mean to omit.
            args = {k: v for k, v in args.items() if v is not None}
            self._validate(name, args)
            return ToolOutcome(True, handler(args))
        except (ToolError, QueryError) as e:
            return ToolOutcome(False, error=str(e))
        except Exception as e:  # noqa: BLE001 - a bug of ours must not end the investigation
            log.exception("tool %s failed on %.300r", name, arguments)
            return ToolOutcome(False, error=f"internal error: {type(e).__name__}: {e}")

    def _validate(self, name: str, args: dict[str, Any]) -> None:
        v = _validator(name)
        allowed = _PROPS[name]
        unknown = [k for k in args if k not in allowed]
        if unknown:
            raise ToolError(
                f"unknown argument{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} for {name}; "
                f"allowed: {', '.join(allowed)}"
            )
        errors = sorted(v.iter_errors(args), key=lambda e: [str(p) for p in e.absolute_path])
        if errors:
            e = errors[0]
            where = ".".join(str(p) for p in e.absolute_path)
            raise ToolError(f"invalid arguments for {name}: {where + ': ' if where else ''}{e.message}")

    # ------------------------------------------------------------------ shared helpers

    def _window(self, args: dict[str, Any]) -> tuple[float, float]:
        now = self.now
        t1 = parse_time(args["to"], now) if "to" in args else now
        t0 = parse_time(args["from"], now) if "from" in args else min(t1, now) - DEFAULT_WINDOW_S
        if t0 > now:
            raise ToolError(f"'from' ({iso(t0)}) is after now ({iso(now)}): nothing after now exists")
        t1 = min(t1, now)
        if t0 > t1:
            raise ToolError(f"'from' ({iso(t0)}) is after 'to' ({iso(t1)})")
        return t0, t1

    @staticmethod
    def _limit(args: dict[str, Any], cap: int = MAX_LIMIT) -> int:
        return min(int(args.get("limit", DEFAULT_LIMIT)), cap)

    @staticmethod
    def _fingerprint(tool: str, *parts: Any) -> str:
        raw = json.dumps([tool, *parts], sort_keys=True, default=str).encode()
        return hashlib.sha256(raw).hexdigest()[:16]

    @staticmethod
    def _encode_cursor(fp: str, pos: int) -> str:
        raw = json.dumps({"f": fp, "p": pos}, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @staticmethod
    def _decode_cursor(args: dict[str, Any], fp: str) -> int | None:
        cursor = args.get("cursor")
        if cursor is None or cursor == "":
            return None
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
            obj = json.loads(raw)
            f, pos = obj["f"], obj["p"]
            if not isinstance(pos, int) or isinstance(pos, bool) or pos < 0:
                raise ValueError
        except (binascii.Error, ValueError, KeyError, TypeError, UnicodeDecodeError):
            raise ToolError("invalid cursor: pass next_cursor from the previous page unchanged") from None
        if f != fp:
            raise ToolError(
                "cursor belongs to a different query: page with the same query, window and sort "
                "that returned it, or drop the cursor to start over"
            )
        return pos

    @staticmethod
    def _fit(content: dict[str, Any], key: str) -> int:
        """Cut ``content[key]`` so the JSON stays under the cap; returns how many items stay."""
        items = content[key]
        if len(_dumps(content)) <= MAX_RESULT_BYTES:
            return len(items)
        content[key] = []
        content["truncated"] = True
        budget = MAX_RESULT_BYTES - len(_dumps(content)) - 16
        keep = 0
        for it in items:
            size = len(_dumps(it)) + 2
            if size > budget:
                break
            budget -= size
            keep += 1
        content[key] = items[:keep]
        return keep

    def _record_page(
        self,
        table: RecordTable,
        args: dict[str, Any],
        tool: str,
        key: str,
        cap: int,
        fmt: Callable[[dict[str, Any]], dict[str, Any]],
        desc: bool = True,
    ) -> dict[str, Any]:
        """Shared body of search_logs / search_spans / get_events (keyset pagination)."""
        q = args.get("query") or ""
        node = parse_search_query(q)
        t0, t1 = self._window(args)
        limit = self._limit(args, cap)
        fp = self._fingerprint(tool, q.strip(), t0, t1, desc)
        after = self._decode_cursor(args, fp)
        res = table.search(node, t0, t1)
        rows = res.rows.page(desc, after, limit + 1)
        more = len(rows) > limit
        rows = rows[:limit]
        recs = table.records
        content: dict[str, Any] = {key: [fmt(recs[r]) for r in rows], "total_matched": res.rows.count()}
        if res.warnings:
            content["warning"] = "; ".join(res.warnings)
        if "limit" in args and int(args["limit"]) > cap:
            content["warning"] = "; ".join(filter(None, [content.get("warning"), f"limit capped at {cap} for {tool}"]))
        kept = self._fit(content, key)
        more = more or kept < len(rows)
        if rows and not kept:  # one record alone is over the cap: skip it rather than stall
            kept = 1
            content["warning"] = "; ".join(filter(None, [content.get("warning"), "a record too large to show was skipped"]))
        content["next_cursor"] = self._encode_cursor(fp, rows[kept - 1]) if more and kept else None
        return content

    def _service_known(self, name: str) -> str:
        idx = self.index
        if idx.known_entity(name):
            return name
        for cand in (*idx.service_by_name, *idx.downstream, *idx.upstream):
            if cand.lower() == name.lower():
                return cand
        names = sorted({*idx.service_by_name, *idx.downstream, *idx.upstream})
        close = difflib.get_close_matches(name, names, n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(close)}?" if close else "; list_services shows the catalog"
        raise ToolError(f"unknown service {name!r}{hint}")

    # ------------------------------------------------------------------ topology

    _SERVICE_KEYS = ("name", "kind", "team", "platform", "cluster", "tier", "language", "description")

    def _list_services(self, args: dict[str, Any]) -> dict[str, Any]:
        q = args.get("query") or ""
        node = parse_search_query(q)
        aliases = {"service": "name", "owner": "team"}

        def get(s: dict[str, Any], key: str, attr: bool) -> Any:
            return s.get(aliases.get(key, key))

        pred = compile_predicate(node, get, lambda s: s["name"].lower())
        matching = [s for s in self.index.services if pred(s)]
        limit = self._limit(args)
        fp = self._fingerprint("list_services", q.strip())
        offset = self._decode_cursor(args, fp) or 0
        items = [
            {k: _clip(s.get(k, 2 if k == "tier" else "")) for k in self._SERVICE_KEYS}
            for s in matching[offset : offset + limit]
        ]
        content: dict[str, Any] = {"services": items, "total": len(matching)}
        kept = self._fit(content, "services")
        end = offset + kept
        content["next_cursor"] = self._encode_cursor(fp, end) if end < len(matching) and kept else None
        return content

    def _get_service_dependencies(self, args: dict[str, Any]) -> dict[str, Any]:
        service = self._service_known(args["service"])
        direction = args.get("direction", "both")
        depth = int(args.get("depth", 1))

        def walk(adj: dict[str, list[tuple[str, str]]]) -> list[dict[str, Any]]:
            seen = {service}
            frontier = [service]
            out: list[dict[str, Any]] = []
            for d in range(1, depth + 1):
                nxt: list[str] = []
                for s in frontier:
                    for target, proto in adj.get(s, ()):
                        if target not in seen:
                            seen.add(target)
                            out.append({"service": target, "protocol": proto, "depth": d})
                            nxt.append(target)
                frontier = nxt
            return out

        idx = self.index
        return {
            "service": service,
            "downstream": walk(idx.downstream) if direction in ("downstream", "both") else [],
            "upstream": walk(idx.upstream) if direction in ("upstream", "both") else [],
        }

    # ------------------------------------------------------------------ metrics

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
        limit = self._limit(args)
        fp = self._fingerprint("list_metrics", q)
        offset = self._decode_cursor(args, fp) or 0
        items = []
        for name in names[offset : offset + limit]:
            tags = mi.tag_values(by_metric[name]) if by_metric is not None else mi.all_tags[name]
            items.append({"metric": name, "type": mi.types[name], "tags": {k: v[:20] for k, v in tags.items()}})
        content: dict[str, Any] = {"metrics": items, "total": len(names)}
        kept = self._fit(content, "metrics")
        end = offset + kept
        content["next_cursor"] = self._encode_cursor(fp, end) if end < len(names) and kept else None
        return content

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
            interval = _nice(need)
            if mq.rollup_seconds is not None:
                notes.append(f"rollup interval raised to {interval}s to keep at most {max_pts} points per series")
        method = mq.rollup or ("sum" if mi.types.get(mq.metric) == "count" else "avg")
        scope = [f.text() for f in mq.filters]
        out = []
        # Series are computed in group order until the answer is full: a query over 500
        # groups costs what the ~100 series it can show cost.
        budget = MAX_RESULT_BYTES - len(_dumps(content)) - 400 - len(q)
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
            budget -= len(_dumps(item)) + 2
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

    # ------------------------------------------------------------------ logs

    def _log_item(self, r: dict[str, Any]) -> dict[str, Any]:
        return {
            "timestamp": iso(r["ts"]),
            "ts": r["ts"],
            "service": r.get("service"),
            "host": r.get("host", ""),
            "status": r.get("status", "info"),
            "message": _clip(r.get("message", "")),
            "attributes": _clip_deep(r.get("attrs") or {}),
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
        res = table.search(node, t0, t1)
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
                interval = _nice((t1 - t0) / MAX_BUCKETS)
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

    # ------------------------------------------------------------------ traces

    def _span_item(self, r: dict[str, Any]) -> dict[str, Any]:
        return {
            "trace_id": r["trace_id"],
            "span_id": r["span_id"],
            "parent_id": r.get("parent_id"),
            "service": r.get("service"),
            "name": r.get("name"),
            "resource": _clip(r.get("resource")),
            "timestamp": iso(r["start"]),
            "ts": r["start"],
            "duration": r.get("duration"),
            "error": bool(r.get("error", False)),
            "tags": _clip_deep(r.get("tags") or {}),
        }

    def _search_spans(self, args: dict[str, Any]) -> dict[str, Any]:
        return self._record_page(self.index.spans, args, "search_spans", "spans", MAX_RECORD_LIMIT, self._span_item)

    def _get_trace(self, args: dict[str, Any]) -> dict[str, Any]:
        tid = args["trace_id"].strip()
        table = self.index.spans
        col = table.keyword.get("trace_id")
        code = col.lookup.get(tid.lower()) if col is not None else None
        recs = [table.records[r] for r in col.postings[code]] if col is not None and code else []
        recs = [s for s in recs if s["start"] <= self.now]
        if not recs:
            raise ToolError(f"unknown trace_id {tid!r}: no span of this trace exists (before now)")
        ids = {s["span_id"] for s in recs}
        children: dict[str | None, list[dict[str, Any]]] = {}
        for s in recs:
            parent = s.get("parent_id")
            children.setdefault(parent if parent in ids else None, []).append(s)
        for lst in children.values():
            lst.sort(key=lambda s: (s["start"], s["span_id"]))
        ordered: list[dict[str, Any]] = []
        stack = [(s, 0) for s in reversed(children.get(None, []))]
        while stack:  # depth-first, children by start time: the order a trace view shows
            s, d = stack.pop()
            item = self._span_item(s)
            item["depth"] = d
            ordered.append(item)
            stack.extend((c, d + 1) for c in reversed(children.get(s["span_id"], [])))
        services = list(dict.fromkeys(s["service"] for s in ordered))
        content: dict[str, Any] = {"trace_id": recs[0]["trace_id"], "spans": ordered, "services": services}
        self._fit(content, "spans")
        return content

    # ------------------------------------------------------------------ events and monitors

    def _event_item(self, r: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": r.get("id"),
            "timestamp": iso(r["ts"]),
            "ts": r["ts"],
            "source": r.get("source"),
            "title": _clip(r.get("title", "")),
            "text": _clip(r.get("text", "")),
            "tags": [f"{k}:{v}" for k, v in sorted((r.get("tags") or {}).items())],
        }

    def _get_events(self, args: dict[str, Any]) -> dict[str, Any]:
        return self._record_page(self.index.events, args, "get_events", "events", MAX_LIMIT, self._event_item)

    _STATE_FORMS = {
        "alert": ["alert", "alerting", "triggered"],
        "warn": ["warn", "warning"],
        "no data": ["no data", "nodata", "no_data"],
        "ok": ["ok"],
    }
    _STATE_ORDER = {"Alert": 0, "Warn": 1, "No Data": 2, "OK": 3}

    def _monitor_states(self) -> dict[Any, tuple[str, list[dict[str, Any]]]]:
        """State as of ``now`` and past transitions of every monitor (computed once)."""
        if self._monitor_cache is None:
            self._monitor_cache = {m["id"]: self._monitor_now(m) for m in self.index.monitors}
        return self._monitor_cache

    def _monitor_now(self, m: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
        trans = sorted(m.get("transitions") or [], key=lambda t: t["ts"])
        past = [t for t in trans if t["ts"] <= self.now]
        if past:
            state = past[-1]["to"]
        elif trans:
            state = trans[0]["from"]
        else:
            state = m.get("state", "OK")
        return state, past

    def _get_monitors(self, args: dict[str, Any]) -> dict[str, Any]:
        q = args.get("query") or ""
        node = parse_search_query(q)
        states = self._monitor_states()

        def get(m: dict[str, Any], key: str, attr: bool) -> Any:
            if not attr:
                if key in ("status", "state"):
                    st = states[m["id"]][0].lower()
                    return self._STATE_FORMS.get(st, [st])
                if key in ("name", "type", "id", "query", "message"):
                    return m.get(key)
            return (m.get("tags") or {}).get(key)

        pred = compile_predicate(node, get, lambda m: m["name"].lower())
        matching = [m for m in self.index.monitors if pred(m)]
        matching.sort(key=lambda m: (self._STATE_ORDER.get(states[m["id"]][0], 9), m["id"]))
        limit = self._limit(args)
        fp = self._fingerprint("get_monitors", q.strip())
        offset = self._decode_cursor(args, fp) or 0
        items = []
        for m in matching[offset : offset + limit]:
            state, past = states[m["id"]]
            items.append(
                {
                    "id": m["id"],
                    "name": m["name"],
                    "type": m.get("type", "metric alert"),
                    "query": m.get("query", ""),
                    "message": _clip(m.get("message", "")),
                    "tags": [f"{k}:{v}" for k, v in sorted((m.get("tags") or {}).items())],
                    "state": state,
                    "transitions": [
                        {"timestamp": iso(t["ts"]), "ts": t["ts"], "from": t["from"], "to": t["to"], "value": t.get("value")}
                        for t in past[-MAX_TRANSITIONS:]
                    ],
                }
            )
        content: dict[str, Any] = {"monitors": items, "total": len(matching)}
        kept = self._fit(content, "monitors")
        end = offset + kept
        content["next_cursor"] = self._encode_cursor(fp, end) if end < len(matching) and kept else None
        return content


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


