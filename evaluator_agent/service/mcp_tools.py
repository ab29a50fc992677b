"""The tools of the MCP surface: Datadog's MCP tool names and arguments, translated to ONE in-band
tool call each, and the in-band answer translated back into a Datadog API-like JSON shape.

Pure data and functions (no MCP SDK, no HTTP): ``mcp_surface.py`` serves them. Each
:class:`DatadogTool` holds the published JSON Schema of its arguments, ``to_in_band`` (Datadog
arguments -> in-band arguments) and ``to_datadog`` (in-band ``content`` -> Datadog-shaped result).
The mapping (names, arguments, result shapes, and what was chosen where Datadog's public
description is silent) is documented in ``mcp_surface.py``'s module docstring.

Every record of the in-band answer is in the translated one (nothing is filtered or merged), so
the same question asked in-band and over MCP returns the same records.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from jsonschema import Draft202012Validator

from evaluator_agent.service.rest_shapes import (
    event_v2,
    log_item,
    metrics_query_body,
    monitor_body,
    search_meta,
    span_item,
    trace_spans,
)

MAX_MESSAGE_CHARS = 300  # an error message never echoes more of the caller's input than this
MS_THRESHOLD = 1e11  # an epoch number above this is milliseconds (1e11 s is the year 5138)


class ToolArgumentError(ValueError):
    """The Datadog-style arguments cannot be translated (a 400, never reaches the world)."""


class ToolResultError(ValueError):
    """The in-band answer does not hold what was asked for (e.g. an unknown metric: a 404)."""


# ----------------------------------------------------------------------------- argument schemas

_TIME = {"type": ["string", "number"],
         "description": "ISO 8601, epoch seconds or milliseconds, or relative to the world's now: "
                        "'now', 'now-15m', 'now-2h', 'now-1d'. Default window: the hour before 'to'."}
_LIMIT = {"type": "integer", "minimum": 1, "maximum": 500, "description": "page size (default 50)"}
_CURSOR = {"type": "string", "maxLength": 1024, "description": "the previous page's cursor (meta.page.after)"}
_COMMON = {
    "telemetry": {"type": "object", "description": "as on Datadog's server, e.g. {'intent': 'why this call'}; ignored",
                  "properties": {"intent": {"type": "string", "maxLength": 2000}}},
    "max_tokens": {"type": "integer", "minimum": 1,
                   "description": "accepted for compatibility; results are capped by size instead and say "
                                  "when they were cut (meta.warnings)"},
}


def _str(description: str, max_length: int = 4096) -> dict[str, Any]:
    return {"type": "string", "maxLength": max_length, "description": description}


def _schema(props: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"type": "object", "properties": {**props, **_COMMON}, "required": list(required),
            "additionalProperties": False}


# ----------------------------------------------------------------------------- argument translation


def _time(value: Any) -> Any:
    """Datadog takes epoch milliseconds where the in-band tools take seconds: a number above
    ``MS_THRESHOLD`` is read as milliseconds. Strings pass through (the in-band parser reads them)."""
    if isinstance(value, int | float) and not isinstance(value, bool) and abs(value) >= MS_THRESHOLD:
        return value / 1000.0
    return value


def _pick(args: dict[str, Any], *names: str) -> dict[str, Any]:
    """The in-band arguments of the same name that were given (times converted)."""
    out = {}
    for n in names:
        if args.get(n) is not None:
            out[n] = _time(args[n]) if n in ("from", "to") else args[n]
    return out


def _search_args(args: dict[str, Any]) -> dict[str, Any]:
    return _pick(args, "query", "from", "to", "limit", "cursor")


def _listing_args(args: dict[str, Any]) -> dict[str, Any]:
    return _pick(args, "query", "limit", "cursor")


def _metric_query_args(args: dict[str, Any]) -> dict[str, Any]:
    queries = args.get("queries")
    query = args.get("query")
    if (queries is None) == (query is None):
        raise ToolArgumentError("give the metric query as 'queries' (a list of one query) or as 'query'")
    if queries is not None:
        if len(queries) != 1:
            raise ToolArgumentError(f"'queries' holds {len(queries)} queries; this server answers one query "
                                    "per call: call get_datadog_metric once per query")
        query = queries[0]
    return {"query": query, **_pick(args, "from", "to")}


def _metric_search_args(args: dict[str, Any]) -> dict[str, Any]:
    words = [args[k].strip() for k in ("query", "name_filter", "tag_filter") if args.get(k)]
    return {"query": " ".join(w for w in words if w), **_pick(args, "limit", "cursor")}


def _metric_context_args(args: dict[str, Any]) -> dict[str, Any]:
    """The name with its last character as ``?``: the in-band glob then matches the metric (and
    at most its one-character siblings) on the first page, however many names contain it (the
    REST facade's all-tags does the same); the exact name is picked from the matches."""
    name = args["metric"]
    return {"query": name[:-1] + "?", "limit": 500}


# ----------------------------------------------------------------------------- result translation
# The records are shaped by the REST facade's functions (rest_shapes.py: the models of
# datadog-api-client), so a log, span, event or metric series looks the same on both surfaces
# (a log's id too). ``elapsed_ms`` is the in-band call's duration, as Datadog's ``meta.elapsed``.

Translator = Callable[[dict[str, Any], dict[str, Any], float], dict[str, Any]]


def _meta(content: dict[str, Any], elapsed_ms: float, **counts: Any) -> dict[str, Any]:
    """Datadog's search ``meta``: ``page.after`` (the next cursor; absent on the last page),
    ``warnings``, ``elapsed``, ``status``, and the in-band counts."""
    return {**search_meta(content, elapsed_ms, content.get("next_cursor")), **counts}


def _search(key: str, item: Callable[[dict[str, Any]], dict[str, Any]], total: str) -> Translator:
    """A listing: every in-band record of ``content[key]`` as ``item`` under ``data``."""
    def translate(content: dict[str, Any], _: dict[str, Any], elapsed_ms: float) -> dict[str, Any]:
        return {"data": [item(r) for r in content[key]], "meta": _meta(content, elapsed_ms, **{total: content.get(total)})}

    return translate


def _metric_query(content: dict[str, Any], _: dict[str, Any], __: float) -> dict[str, Any]:
    return metrics_query_body(content)


def _metric_item(m: dict[str, Any]) -> dict[str, Any]:
    tags = m.get("tags") or {}
    return {"id": m["metric"], "type": "metrics", "attributes": {
        "metric_type": m.get("type"), "tag_keys": sorted(tags),
        "tags": [f"{k}:{v}" for k, values in sorted(tags.items()) for v in values]}}


def _metric_context(content: dict[str, Any], args: dict[str, Any], elapsed_ms: float) -> dict[str, Any]:
    name = args["metric"]
    for m in content["metrics"]:
        if m["metric"] == name:
            return {"data": _metric_item(m), "meta": _meta(content, elapsed_ms)}
    raise ToolResultError(f"metric {name[:MAX_MESSAGE_CHARS]!r} not found; search_datadog_metrics lists the metrics")


def _trace(content: dict[str, Any], _: dict[str, Any], elapsed_ms: float) -> dict[str, Any]:
    spans = trace_spans(content)
    return {"data": {"id": content["trace_id"], "type": "trace", "attributes": {
        "trace_id": content["trace_id"], "root_span_id": spans[0]["id"] if spans else None,
        "services": content.get("services") or [], "span_count": len(spans), "spans": spans}},
        "meta": _meta(content, elapsed_ms)}


def _monitor(m: dict[str, Any]) -> dict[str, Any]:
    return {**monitor_body(m, {"all"}), "status": m["state"], "state_transitions": m.get("transitions") or []}


def _monitors(content: dict[str, Any], _: dict[str, Any], elapsed_ms: float) -> dict[str, Any]:
    return {"monitors": [_monitor(m) for m in content["monitors"]],
            "metadata": _meta(content, elapsed_ms, total_count=content.get("total"))}


def _service(s: dict[str, Any]) -> dict[str, Any]:
    return {"id": s["name"], "type": "service", "attributes": dict(s)}


def _dependencies(content: dict[str, Any], _: dict[str, Any], elapsed_ms: float) -> dict[str, Any]:
    svc = content["service"]
    return {"data": {"id": svc, "type": "service_dependencies", "attributes": {
        "service": svc, "calls": content.get("downstream") or [], "called_by": content.get("upstream") or []}},
        "meta": _meta(content, elapsed_ms)}


# ----------------------------------------------------------------------------- the tools


@dataclass(frozen=True)
class DatadogTool:
    """One tool of the MCP surface: Datadog's name and arguments over one in-band tool."""

    name: str
    in_band: str
    description: str
    parameters: dict[str, Any]
    to_in_band: Callable[[dict[str, Any]], dict[str, Any]]
    to_datadog: Translator
    _validator: Draft202012Validator = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_validator", Draft202012Validator(self.parameters))

    def check(self, arguments: Any) -> dict[str, Any]:
        """The arguments, validated against the published schema (nulls dropped, as in-band);
        raises :class:`ToolArgumentError` with a bounded message."""
        if not isinstance(arguments, dict):
            raise ToolArgumentError(f"arguments of {self.name} must be a JSON object")
        args = {k: v for k, v in arguments.items() if v is not None}
        allowed = list(self.parameters["properties"])
        unknown = [k for k in args if k not in allowed]
        if unknown:
            names = ", ".join(repr(k[:60]) for k in unknown[:5])
            raise ToolArgumentError(f"unknown argument(s) {names} for {self.name}; allowed: {', '.join(allowed)}")
        errors = sorted(self._validator.iter_errors(args), key=lambda e: [str(p) for p in e.absolute_path])
        if errors:
            e = errors[0]
            where = ".".join(str(p) for p in e.absolute_path)
            text, shown = e.message, repr(e.instance)
            if len(shown) > 80:  # never echo a long input back
                text = text.replace(shown, shown[:60] + "...")
            msg = f"invalid arguments for {self.name}: {where + ': ' if where else ''}{text}"
            raise ToolArgumentError(msg[:MAX_MESSAGE_CHARS])
        return args


DATADOG_TOOLS: tuple[DatadogTool, ...] = (
    DatadogTool(
        "search_datadog_logs", "search_logs",
        "Search logs (newest first; sort='timestamp' for oldest first) with Datadog log search syntax: "
        "'service:checkout status:error \"timeout\" -host:web-1 @http.status_code:503', AND by default, "
        "OR and parentheses, * wildcards. Returns log events with their attributes; page with cursor.",
        _schema({"query": _str("log search query; default '*'"), "from": _TIME, "to": _TIME, "limit": _LIMIT,
                 "cursor": _CURSOR, "sort": {"type": "string", "enum": ["timestamp", "-timestamp"]}}),
        lambda a: _pick(a, "query", "from", "to", "limit", "cursor", "sort"),
        _search("logs", log_item, "total_matched")),
    DatadogTool(
        "get_datadog_metric", "query_metrics",
        "Query a metric's timeseries: '<avg|sum|min|max|count>:<metric>{<tag:value>,...} [by {<tag>,...}]"
        "[.rollup(<avg|sum|min|max>, <seconds>)]', e.g. 'avg:trace.http.request.duration{service:checkout} "
        "by {version}'. One query per call (queries=[q] or query=q). Points are [epoch ms, value].",
        _schema({"queries": {"type": "array", "items": _str("a metric query"), "minItems": 1, "maxItems": 8},
                 "query": _str("a metric query (instead of queries)"), "from": _TIME, "to": _TIME}),
        _metric_query_args, _metric_query),
    DatadogTool(
        "search_datadog_metrics", "list_metrics",
        "List available metrics with their type, tag keys and some tag values. Filter by name fragment "
        "(name_filter or query, e.g. 'postgresql') and/or tags (tag_filter or query, e.g. 'service:checkout').",
        _schema({"query": _str("name fragments and/or tag:value filters"),
                 "name_filter": _str("metric name fragment, * wildcards allowed"),
                 "tag_filter": _str("tag filters, e.g. 'service:checkout,env:prod'"),
                 "limit": _LIMIT, "cursor": _CURSOR}),
        _metric_search_args, _search("metrics", _metric_item, "total")),
    DatadogTool(
        "get_datadog_metric_context", "list_metrics",
        "One metric's context: its type, tag keys and tag values (up to 20 per key), for filtering and grouping.",
        _schema({"metric": {**_str("the exact metric name", 512), "minLength": 1}}, ("metric",)),
        _metric_context_args, _metric_context),
    DatadogTool(
        "search_datadog_spans", "search_spans",
        "Search APM spans (newest first): 'service:checkout resource_name:\"POST /pay\" status:error "
        "@http.status_code:500 @duration:>0.5' (duration in seconds, in queries and in attributes.attributes.duration).",
        _schema({"query": _str("span search query; default '*'"), "from": _TIME, "to": _TIME,
                 "limit": _LIMIT, "cursor": _CURSOR}),
        _search_args, _search("spans", span_item, "total_matched")),
    DatadogTool(
        "get_datadog_trace", "get_trace",
        "All spans of one trace by trace_id, as a tree: root first, each span after its parent "
        "(attributes.attributes.depth: 0 for the root).",
        _schema({"trace_id": _str("the trace id", 128)}, ("trace_id",)),
        lambda a: _pick(a, "trace_id"), _trace),
    DatadogTool(
        "search_datadog_monitors", "get_monitors",
        "Monitors with their current status and recent state transitions. Query like 'status:alert', "
        "'service:checkout' or a name fragment.",
        _schema({"query": _str("monitor search query"), "limit": _LIMIT, "cursor": _CURSOR}),
        _listing_args, _monitors),
    DatadogTool(
        "search_datadog_events", "get_events",
        "Search events: deploys, config and feature-flag changes, Kubernetes events, autoscaling, cron jobs, "
        "migrations. Query like 'source:deploy service:checkout' or free text.",
        _schema({"query": _str("event search query"), "from": _TIME, "to": _TIME, "limit": _LIMIT,
                 "cursor": _CURSOR}),
        _search_args, _search("events", event_v2, "total_matched")),
    DatadogTool(
        "search_datadog_services", "list_services",
        "Services of the software catalog (services, databases, caches, queues, external APIs) with team, "
        "platform, cluster and tier. Query like 'team:payments', 'kind:database' or a name fragment.",
        _schema({"query": _str("service search query"), "limit": _LIMIT, "cursor": _CURSOR}),
        _listing_args, _search("services", _service, "total")),
    DatadogTool(
        "search_datadog_service_dependencies", "get_service_dependencies",
        "A service's dependencies: 'calls' = downstream (what it calls), 'called_by' = upstream (who calls it). "
        "depth 1-5 follows the graph transitively.",
        _schema({"service": _str("the service name", 256),
                 "direction": {"type": "string", "enum": ["downstream", "upstream", "both"]},
                 "depth": {"type": "integer", "minimum": 1, "maximum": 5}}, ("service",)),
        lambda a: _pick(a, "service", "direction", "depth"), _dependencies),
)

TOOLS_BY_NAME: dict[str, DatadogTool] = {t.name: t for t in DATADOG_TOOLS}
TOOL_MAP: dict[str, str] = {t.name: t.in_band for t in DATADOG_TOOLS}
