"""The telemetry tools a target may call: names, descriptions and argument schemas.

This is the contract shown to targets in the briefing. The implementation is in
``tools.py``; the query syntax is documented in ``query.py`` and the README.

Times (``from``, ``to``) accept ISO 8601 (``2026-03-02T14:05:00Z``), epoch seconds, or
times relative to the briefing's ``now`` (``now``, ``now-15m``, ``now-2h``, ``now-1d``).
Nothing after ``now`` exists. Listing tools page with an opaque ``cursor``.
"""

from __future__ import annotations

from typing import Any

from evaluator_agent.core.protocol import ToolSpec

_TIME = {"type": ["string", "number"], "description": "ISO 8601, epoch seconds, or now-<N>[smhd]"}
_LIMIT = {"type": "integer", "minimum": 1, "maximum": 500}
_CURSOR = {"type": "string", "description": "next_cursor from a previous page"}


def _obj(props: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    return {"type": "object", "properties": props, "required": required or [], "additionalProperties": False}


# ---- result shapes (``returns``): what ``content`` of a successful tool result holds. Objects
# may gain fields later (additionalProperties is left open); the fields listed are always there
# unless marked optional. Numbers may arrive as floats (A2A carries JSON numbers as doubles).
_STR, _NUM, _INT, _BOOL = {"type": "string"}, {"type": "number"}, {"type": "number"}, {"type": "boolean"}
_OPT_STR = {"type": ["string", "null"]}
_TAGS = {"type": "object", "additionalProperties": {"type": "string"}}
_PAGE = {
    "next_cursor": {**_OPT_STR, "description": "pass as 'cursor' for the next page; null on the last page"},
    "truncated": {**_BOOL, "description": "optional: the page was cut to fit the result size cap"},
    "warning": {**_STR, "description": "optional: what was adjusted or why nothing matched"},
}


def _ret(props: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"type": "object", "properties": props, "required": required}


def _list_of(item_props: dict[str, Any], item_required: list[str]) -> dict[str, Any]:
    return {"type": "array", "items": _ret(item_props, item_required)}


def _paged(key: str, items: dict[str, Any], total: str) -> dict[str, Any]:
    """A page of a listing: ``items`` under ``key``, the count ``total`` and the paging fields."""
    return _ret({key: items, total: _INT, **_PAGE}, [key, total, "next_cursor"])


_SERVICE = {
    "name": _STR, "kind": {**_STR, "description": "service, database, cache, queue, external, job, gateway, ..."},
    "team": _STR, "platform": _STR, "cluster": _STR, "tier": _INT, "language": _STR, "description": _STR,
}  # fmt: skip
_SPAN = {
    "trace_id": _STR, "span_id": _STR, "parent_id": _OPT_STR, "service": _STR, "name": _STR, "resource": _STR,
    "timestamp": {**_STR, "description": "ISO 8601 start"}, "ts": {**_NUM, "description": "epoch seconds"},
    "duration": {**_NUM, "description": "seconds"}, "error": _BOOL, "tags": _TAGS,
}  # fmt: skip
_SPAN_REQ = ["trace_id", "span_id", "service", "name", "resource", "timestamp", "ts", "duration", "error"]
_POINTS = {
    "type": "array",
    "items": {"type": "array", "prefixItems": [_NUM, {"type": ["number", "null"]}], "minItems": 2},
    "description": "[[epoch seconds, value or null], ...] in time order",
}


TOOL_SPECS: list[ToolSpec] = [
    ToolSpec(
        name="list_services",
        description="Service catalog: services, databases, caches, queues and external APIs with team, platform, "
        "cluster and tier. Optional filter such as 'team:payments', 'kind:database' or a name fragment.",
        parameters=_obj({"query": {"type": "string"}, "limit": _LIMIT, "cursor": _CURSOR}),
        returns=_paged("services", _list_of(_SERVICE, ["name", "kind"]), "total")
    ),
    ToolSpec(
        name="get_service_dependencies",
        description="Dependencies of one service: 'downstream' = what it calls, 'upstream' = who calls it. "
        "depth 1-5 follows the graph transitively.",
        parameters=_obj(
            {
                "service": {"type": "string"},
                "direction": {"type": "string", "enum": ["downstream", "upstream", "both"]},
                "depth": {"type": "integer", "minimum": 1, "maximum": 5},
            },
            ["service"],
        ),
        returns=_ret(
            {
                "service": _STR,
                "downstream": _list_of({"service": _STR, "protocol": _STR, "depth": _INT}, ["service", "depth"]),
                "upstream": _list_of({"service": _STR, "protocol": _STR, "depth": _INT}, ["service", "depth"]),
            },
            ["service"],
        )
    ),
    ToolSpec(
        name="list_metrics",
        description="Metric names available, with their tag keys and some tag values. Optional 'query' filters by "
        "name fragment (e.g. 'postgresql') and/or tags (e.g. 'service:checkout').",
        parameters=_obj({"query": {"type": "string"}, "limit": _LIMIT, "cursor": _CURSOR}),
        returns=_paged(
            "metrics",
            _list_of(
                {"metric": _STR, "type": _STR,
                 "tags": {"type": "object", "additionalProperties": {"type": "array", "items": _STR},
                          "description": "tag key -> some of its values"}},
                ["metric", "tags"],
            ),
            "total",
        )
    ),
    ToolSpec(
        name="query_metrics",
        description="Timeseries query in Datadog syntax: '<avg|sum|min|max|count>:<metric>{<tag:value>,...} "
        "[by {<tag>,...}][.rollup(<avg|sum|min|max>, <seconds>)]', e.g. "
        "'avg:trace.http.request.duration{service:checkout} by {version}'. Tag values may use * wildcards "
        "and '!tag:value' negation.",
        parameters=_obj({"query": {"type": "string"}, "from": _TIME, "to": _TIME}, ["query"]),
        returns=_ret(
            {
                "query": _STR, "from": _NUM, "to": _NUM,
                "series": _list_of(
                    {"metric": _STR, "scope": {**_STR, "description": "the group, e.g. 'service:checkout'"},
                     "tags": _TAGS, "aggregation": _STR, "interval": {**_INT, "description": "seconds per point"},
                     "pointlist": _POINTS, "length": _INT},
                    ["metric", "scope", "pointlist"],
                ),
                "truncated": _PAGE["truncated"], "warning": _PAGE["warning"],
            },
            ["query", "from", "to", "series"],
        )
    ),
    ToolSpec(
        name="search_logs",
        description="Log search in Datadog syntax: 'service:checkout status:error \"timeout\" -host:web-1 "
        "@http.status_code:503', AND by default, OR and parentheses (at most 32 deep) allowed, * wildcards. "
        "Sorted newest first unless sort='timestamp'.",
        parameters=_obj(
            {
                "query": {"type": "string"},
                "from": _TIME,
                "to": _TIME,
                "limit": _LIMIT,
                "cursor": _CURSOR,
                "sort": {"type": "string", "enum": ["timestamp", "-timestamp"]},
            }
        ),
        returns=_paged(
            "logs",
            _list_of(
                {"timestamp": _STR, "ts": _NUM, "service": _STR, "host": _STR,
                 "status": {**_STR, "description": "debug, info, warn, error, critical"}, "message": _STR,
                 "attributes": {"type": "object"}, "trace_id": _OPT_STR},
                ["timestamp", "ts", "service", "status", "message"],
            ),
            "total_matched",
        )
    ),
    ToolSpec(
        name="aggregate_logs",
        description="Count logs matching a query, grouped by up to two facets (service, status, host, version "
        "or @attribute), optionally as a timeseries with 'interval' seconds.",
        parameters=_obj(
            {
                "query": {"type": "string"},
                "from": _TIME,
                "to": _TIME,
                "group_by": {"type": "array", "items": {"type": "string"}, "maxItems": 2},
                "interval": {"type": "integer", "minimum": 60},
                "limit": _LIMIT,
            }
        ),
        returns=_ret(
            {
                "buckets": _list_of(
                    {"by": {"type": "object", "description": "facet -> value of this group"}, "count": _INT,
                     "series": {**_POINTS, "description": "with 'interval': [[epoch seconds, count], ...]"}},
                    ["by", "count"],
                ),
                "total": _INT, "groups_total": _INT, "interval": _INT,
                "truncated": _PAGE["truncated"], "warning": _PAGE["warning"],
            },
            ["buckets", "total"],
        )
    ),
    ToolSpec(
        name="search_spans",
        description="APM span search: 'service:checkout resource_name:\"POST /pay\" status:error "
        "@http.status_code:500 @duration:>0.5' (duration in seconds). Newest first.",
        parameters=_obj(
            {"query": {"type": "string"}, "from": _TIME, "to": _TIME, "limit": _LIMIT, "cursor": _CURSOR}
        ),
        returns=_paged("spans", _list_of(_SPAN, _SPAN_REQ), "total_matched")
    ),
    ToolSpec(
        name="get_trace",
        description="All spans of one trace, as a tree, by trace_id.",
        parameters=_obj({"trace_id": {"type": "string"}}, ["trace_id"]),
        returns=_ret(
            {
                "trace_id": _STR,
                "spans": _list_of({**_SPAN, "depth": {**_INT, "description": "0 for the root"}}, [*_SPAN_REQ, "depth"]),
                "services": {"type": "array", "items": _STR},
            },
            ["trace_id", "spans"],
        )
    ),
    ToolSpec(
        name="get_events",
        description="Event stream: deploys, config and feature-flag changes, Kubernetes events, autoscaling, "
        "cron jobs, migrations. Query like 'source:deploy service:checkout' or free text.",
        parameters=_obj(
            {"query": {"type": "string"}, "from": _TIME, "to": _TIME, "limit": _LIMIT, "cursor": _CURSOR}
        ),
        returns=_paged(
            "events",
            _list_of(
                {"id": _STR, "timestamp": _STR, "ts": _NUM, "source": _STR, "title": _STR, "text": _STR,
                 "tags": {"type": "array", "items": _STR, "description": "'key:value' strings"}},
                ["id", "timestamp", "ts", "source", "title"],
            ),
            "total_matched",
        )
    ),
    ToolSpec(
        name="get_monitors",
        description="Monitors with their current state and recent state transitions. Query like "
        "'status:alert', 'service:checkout' or a name fragment.",
        parameters=_obj({"query": {"type": "string"}, "limit": _LIMIT, "cursor": _CURSOR}),
        returns=_paged(
            "monitors",
            _list_of(
                {"id": _INT, "name": _STR, "type": _STR, "query": _STR, "message": _STR,
                 "tags": {"type": "array", "items": _STR},
                 "state": {**_STR, "description": "OK, Warn, Alert or No Data"},
                 "transitions": _list_of(
                     {"timestamp": _STR, "ts": _NUM, "from": _STR, "to": _STR, "value": {"type": ["number", "null"]}},
                     ["timestamp", "ts", "from", "to"],
                 )},
                ["id", "name", "state"],
            ),
            "total",
        )
    ),
]

TOOL_NAMES: frozenset[str] = frozenset(t.name for t in TOOL_SPECS)
