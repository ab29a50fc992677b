"""The parser of Datadog metric queries (``query_metrics``, and ``list_metrics`` tag filters).

``<agg>:<metric>{<filters>} [by {<tag>,...}] [.rollup(<method>[, <seconds>])]`` to a
:class:`MetricQuery`; the syntax is documented in ``query.py``. Evaluating one over the
series is the ``query_metrics`` tool's work (``tools_metrics.py``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from evaluator_agent.telemetry.query_values import QueryError, glob_regex

__all__ = ["AGGREGATIONS", "MetricQuery", "TagFilter", "parse_metric_query", "parse_tag_filters"]

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
