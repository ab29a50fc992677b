"""The telemetry tools a target may call: names, descriptions and argument schemas.

This is the contract shown to targets in the briefing. The implementation is in
``tools.py``; the query syntax is documented in ``query.py`` and the README.

Times (``from``, ``to``) accept ISO 8601 (``2026-03-02T14:05:00Z``), epoch seconds, or
times relative to the briefing's ``now`` (``now``, ``now-15m``, ``now-2h``, ``now-1d``).
Nothing after ``now`` exists. Listing tools page with an opaque ``cursor``.
"""

from __future__ import annotations

from typing import Any

from .protocol import ToolSpec

_TIME = {"type": ["string", "number"], "description": "ISO 8601, epoch seconds, or now-<N>[smhd]"}
_LIMIT = {"type": "integer", "minimum": 1, "maximum": 500}
_CURSOR = {"type": "string", "description": "next_cursor from a previous page"}


def _obj(props: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    return {"type": "object", "properties": props, "required": required or [], "additionalProperties": False}


TOOL_SPECS: list[ToolSpec] = [
    ToolSpec(
        name="list_services",
        description="Service catalog: services, databases, caches, queues and external APIs with team, platform, "
        "cluster and tier. Optional filter such as 'team:payments', 'kind:database' or a name fragment.",
        parameters=_obj({"query": {"type": "string"}, "limit": _LIMIT, "cursor": _CURSOR}),
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
    ),
    ToolSpec(
        name="list_metrics",
        description="Metric names available, with their tag keys and some tag values. Optional 'query' filters by "
        "name fragment (e.g. 'postgresql') and/or tags (e.g. 'service:checkout').",
        parameters=_obj({"query": {"type": "string"}, "limit": _LIMIT, "cursor": _CURSOR}),
    ),
    ToolSpec(
        name="query_metrics",
        description="Timeseries query in Datadog syntax: '<avg|sum|min|max|count>:<metric>{<tag:value>,...} "
        "[by {<tag>,...}][.rollup(<avg|sum|min|max>, <seconds>)]', e.g. "
        "'avg:trace.http.request.duration{service:checkout} by {version}'. Tag values may use * wildcards "
        "and '!tag:value' negation.",
        parameters=_obj({"query": {"type": "string"}, "from": _TIME, "to": _TIME}, ["query"]),
    ),
    ToolSpec(
        name="search_logs",
        description="Log search in Datadog syntax: 'service:checkout status:error \"timeout\" -host:web-1 "
        "@http.status_code:503', AND by default, OR and parentheses allowed, * wildcards. "
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
    ),
    ToolSpec(
        name="search_spans",
        description="APM span search: 'service:checkout resource_name:\"POST /pay\" status:error "
        "@http.status_code:500 @duration:>0.5' (duration in seconds). Newest first.",
        parameters=_obj(
            {"query": {"type": "string"}, "from": _TIME, "to": _TIME, "limit": _LIMIT, "cursor": _CURSOR}
        ),
    ),
    ToolSpec(
        name="get_trace",
        description="All spans of one trace, as a tree, by trace_id.",
        parameters=_obj({"trace_id": {"type": "string"}}, ["trace_id"]),
    ),
    ToolSpec(
        name="get_events",
        description="Event stream: deploys, config and feature-flag changes, Kubernetes events, autoscaling, "
        "cron jobs, migrations. Query like 'source:deploy service:checkout' or free text.",
        parameters=_obj(
            {"query": {"type": "string"}, "from": _TIME, "to": _TIME, "limit": _LIMIT, "cursor": _CURSOR}
        ),
    ),
    ToolSpec(
        name="get_monitors",
        description="Monitors with their current state and recent state transitions. Query like "
        "'status:alert', 'service:checkout' or a name fragment.",
        parameters=_obj({"query": {"type": "string"}, "limit": _LIMIT, "cursor": _CURSOR}),
    ),
]

TOOL_NAMES: frozenset[str] = frozenset(t.name for t in TOOL_SPECS)
