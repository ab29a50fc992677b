"""The Datadog REST facade: the investigation's tools behind Datadog's own API paths.

``rest_app(registry)`` is a Starlette app the proctor mounts at ``/datadog``, so the official
``datadog-api-client`` with ``Configuration(host=".../datadog")`` and
``api_key={"apiKeyAuth": token, "appKeyAuth": token}`` works unchanged. It is a thin adapter
(``engine/surfaces.py``): every request is authenticated by its ``DD-API-KEY`` /
``DD-APPLICATION-KEY`` credential, becomes exactly ONE in-band tool call
``session.call("rest", tool, args)`` (recorded, budgeted, scored like an in-band call), and
the in-band ``content`` is reshaped into the body the real API answers with
(``rest_shapes.py``). Nothing here reads the world.

Endpoints (method, path, Datadog parameters -> in-band tool and arguments):

=====  ======================================  ===============================================
GET    /api/v1/query                           from, to, query -> query_metrics {query, from, to}
GET    /api/v1/metrics                         from, host, tag_filter -> list_metrics
                                               {query: "<tag terms> host:<host>", limit: 500}
GET    /api/v2/metrics/{name}/all-tags         filter[tags] -> list_metrics {query: name with its
                                               last character as "?", plus the tag terms}
POST   /api/v2/logs/events/search              filter.query/from/to, page.limit/cursor, sort
                                               -> search_logs {query, from, to, limit, cursor, sort}
GET    /api/v2/logs/events                     filter[query|from|to], page[limit|cursor], sort
                                               -> search_logs (same)
POST   /api/v2/logs/analytics/aggregate        filter, group_by[].facet/limit/missing, compute
                                               [count, total|timeseries+interval] -> aggregate_logs
                                               {query, from, to, group_by, limit, interval}
POST   /api/v2/spans/events/search             data.attributes.filter/page/sort -> search_spans
                                               {query, from, to, limit, cursor}; a query that is
                                               only ``trace_id:<id>`` -> get_trace {trace_id}
GET    /api/v2/spans/events                    filter[query|from|to], page[...] -> same
GET    /api/v1/events                          start, end, sources, tags, page -> get_events
                                               {query: "(source:a OR source:b) tag...", from, to}
GET    /api/v2/events                          filter[query|from|to], page[limit|cursor], sort
POST   /api/v2/events/search                   (EventsListRequest) -> get_events
GET    /api/v1/monitor                         name, tags, monitor_tags, group_states, page,
                                               page_size -> get_monitors {query: '"name" tag...'}
GET    /api/v1/monitor/{id}                    group_states -> get_monitors {query: "id:<id>"}
GET    /api/v2/services/definitions            page[size], page[number] -> list_services {limit}
GET    /api/v2/services/definitions/{name}     -> list_services {query: "service:<name>"}
GET    /api/v2/catalog/relation                filter[from_ref|to_ref|type], page[offset|limit]
                                               -> get_service_dependencies {service, direction,
                                               depth: 1}
=====  ======================================  ===============================================

Choices where Datadog's public description is silent or the world has no equivalent:

- Times pass through unchanged: epoch seconds (v1), ISO 8601, epoch milliseconds and
  ``now-15m`` math (v2) are all read by the in-band tools, relative to the world's ``now``.
  Defaults (window, page size, sort) are the in-band tools' (last hour, 50, newest first),
  not Datadog's; a page limit above 500 is lowered to 500 (the tools cap logs and spans at
  200 and say so in ``meta.warnings``). Oldest-first ``sort=timestamp`` is offered for logs
  only (the span and event tools list newest first): elsewhere it is a 400.
- Paging: v2 searches return the in-band cursor as ``meta.page.after`` and a ``links.next``
  GET URL; page-number listings (monitors, service definitions, v1 events page 0) ask the
  tool for ``(page + 1) * size`` records (at most 500) and answer the last ``size``.
- ``all-tags``: the name with its last character turned into ``?`` makes the in-band glob
  match that metric (and at most its one-character siblings) on the first page, so one call
  finds it however many names contain it; the tags are the in-band tool's (up to 20 values
  per key), ``filter[tags]`` narrows them. Tag filters are ``key:value`` terms joined by
  AND (negation ``!``, ``-`` or ``NOT``); OR, IN and parentheses are a 400.
- Logs have no id in the world: ``id`` is a hash of the record. A log's ``trace_id`` is the
  attribute ``trace_id``. Spans: tags under ``custom``, ``operation_name``, ``duration``
  (seconds, the unit the query syntax takes) and ``status`` under ``attributes``; a root's
  ``parent_id`` is ``"0"``. Datadog has no get-trace endpoint: the spans search with the
  query ``trace_id:<id>`` is the whole trace (root first, all spans, no window, one page).
- Aggregation: only the ``count`` compute (key ``c0``); the group limit is the product of
  the facets' limits (default 10 each); ``missing`` replaces the in-band "N/A"; a timeseries
  without ``interval`` uses 60 s (the tool widens it past 300 buckets); bare numbers are ms.
- Monitors: ``tags`` and ``monitor_tags`` both filter by the monitor's tags; with
  ``group_states`` the monitor's ``state.groups`` holds one group ``*`` with its state and
  last transition times. ``priority`` comes from a ``priority:P<n>`` tag.
- Service definitions are schema v2.2 whatever ``schema_version`` asks (kind -> ``type``:
  service/gateway web, database db, cache cache, job function, else custom; the kind, platform
  and cluster as tags). Dependencies: the Software Catalog relations of one service (a
  ``filter[from_ref]`` or ``filter[to_ref]`` such as ``service:checkout`` is required):
  ``RelationTypeDependsOn`` / ``RelationTypeDependencyOf`` of the direct (depth 1) edges;
  the edge's protocol is ``subtype``; every entity is kind ``service``, namespace ``default``.

Parameters without an equivalent in the world are accepted and ignored (log indexes and
storage tier, query options, event priority and aggregation flags, monitor downtimes and
id_offset, metric ``window[seconds]``, catalog ``include``).

Errors as Datadog answers them, ``{"errors": [...]}``: 403 ``Forbidden`` for a missing,
unknown or ended credential (or a run that does not offer this surface), 429 when the
investigation's budget is spent, 400 for bad input (facade checks, or the in-band tool's own
message), 404 for unknown paths and records, 405, 413 for a body over 64 KiB, 500 for a bug
of ours (logged, generic message).
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import QueryParams
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from evaluator_agent.engine.surfaces import (
    REST,
    SurfaceClosed,
    SurfaceError,
    SurfaceRegistry,
    credential_of,
)
from evaluator_agent.service import rest_shapes as shapes
from evaluator_agent.service.rest_shapes import (
    FacadeError,
    NotFound,
    clip,
    integer,
    member,
    ref_name,
    tag_terms,
    time_member,
)
from evaluator_agent.telemetry.tools_base import DEFAULT_LIMIT, MAX_LIMIT

__all__ = ["MAX_BODY_BYTES", "rest_app"]

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024
_TRACE_ONLY = re.compile(r'^\s*@?trace_id:\s*"?([0-9A-Za-z_-]{1,64})"?\s*$')
_SOURCE = re.compile(r"^[A-Za-z0-9_.\-]+$")
_METRIC = re.compile(r"^[A-Za-z][A-Za-z0-9_.]{0,199}$")
_SERVICE = re.compile(r"^[A-Za-z0-9_.\-]{1,200}$")
_INTERVAL = re.compile(r"^(\d{1,12})\s*(ms|s|m|h|d|w)?$")
_UNIT_S = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_MONITOR_STATES = {"all", "alert", "warn", "no data", "ok"}
_DEPENDS_ON, _DEPENDENCY_OF = "RelationTypeDependsOn", "RelationTypeDependencyOf"


class TooLarge(FacadeError):
    status = 413


def _errors(status: int, *messages: str) -> JSONResponse:
    return JSONResponse({"errors": [clip(m, 1000) for m in messages]}, status_code=status)


# ---------------------------------------------------------------------- requests


@dataclass(frozen=True)
class Incoming:
    """What a planner reads of a request: query parameters, path parameters, JSON body, and
    the facade's absolute root URL (for ``links.next``)."""

    params: QueryParams
    path: dict[str, Any]
    body: dict[str, Any]
    root: str

    def text(self, name: str, required: bool = False) -> str | None:
        value = self.params.get(name)
        value = value.strip() if value is not None else None
        if not value:
            if required:
                raise FacadeError(f"missing required query parameter {name!r}")
            return None
        return value

    def integer(self, name: str, lo: int, hi: int | None = None) -> int | None:
        return integer(self.text(name), name, lo, hi)

    def time(self, name: str, required: bool = False) -> str | int | None:
        value = self.text(name, required)
        return int(value) if value is not None and value.isdigit() else value


@dataclass
class Plan:
    """One in-band call and how its answer becomes the Datadog body."""

    tool: str
    args: dict[str, Any]
    shape: Callable[[dict[str, Any], float], Any]  # (content, elapsed ms) -> body
    on_failure: Callable[[str, float], Any] | None = None  # failed call -> body (else a 400)


def _terms(pairs: list[tuple[bool, str]], negation: str = "-") -> list[str]:
    """Tag terms as query words: ``-`` negates in search syntax, ``!`` in metric tag filters."""
    return [(negation if neg else "") + t for neg, t in pairs]


def _limit(value: int | None) -> int | None:
    return None if value is None else min(value, MAX_LIMIT)


def _compact(args: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in args.items() if v is not None and v != ""}


def _link(inc: Incoming, path: str, params: dict[str, Any]) -> str:
    return f"{inc.root}{path}?{urlencode(_compact(params))}"


def _page_slice(page: int | None, size: int | None) -> tuple[int | None, slice]:
    """In-band ``limit`` and the slice of its answer for a page-number listing."""
    if page is None and size is None:
        return MAX_LIMIT, slice(None)
    size = size or DEFAULT_LIMIT
    page = page or 0
    if (page + 1) * size > MAX_LIMIT:
        raise FacadeError(f"this facade lists the first {MAX_LIMIT} records: page {page} of size {size} is past them")
    return (page + 1) * size, slice(page * size, (page + 1) * size)


# ---------------------------------------------------------------------- metrics


def plan_query_metrics(inc: Incoming) -> Plan:
    args = {"query": inc.text("query", True), "from": inc.time("from", True), "to": inc.time("to", True)}
    return Plan("query_metrics", args, lambda c, _el: shapes.metrics_query_body(c))


def plan_list_metrics(inc: Incoming) -> Plan:
    since = inc.integer("from", 0)
    if since is None:
        raise FacadeError("missing required query parameter 'from'")
    terms = _terms(tag_terms(inc.text("tag_filter"), "tag_filter"), "!")
    host = inc.text("host")
    if host:
        if not _SERVICE.match(host):
            raise FacadeError("host must be a host name")
        terms.append(f"host:{host}")
    args = _compact({"query": " ".join(terms), "limit": MAX_LIMIT})
    return Plan("list_metrics", args, lambda c, _el: shapes.metrics_list_body(c, since))


def plan_metric_tags(inc: Incoming) -> Plan:
    name = inc.path["metric_name"]
    if not _METRIC.match(name):
        raise FacadeError("metric_name must be a metric name (letters, digits, '_' and '.')")
    terms = _terms(tag_terms(inc.text("filter[tags]"), "filter[tags]"), "!")
    args = {"query": " ".join([name[:-1] + "?", *terms]), "limit": MAX_LIMIT}
    return Plan("list_metrics", args, lambda c, _el: shapes.metric_all_tags_body(c, name))


# ---------------------------------------------------------------------- logs, spans, events


def _sort(value: Any, allow_oldest: bool) -> str | None:
    if value in (None, "-timestamp") or (value == "timestamp" and allow_oldest):
        return value
    if value == "timestamp":
        raise FacadeError("sort 'timestamp' (oldest first) is not offered here: records come newest first")
    raise FacadeError("sort must be 'timestamp' or '-timestamp'")


def _search_plan(inc: Incoming, tool: str, key: str, item: Callable[[dict[str, Any]], Any], get_path: str,
                 query: Any, frm: Any, to: Any, limit: Any, cursor: Any, sort: Any) -> Plan:
    """search_logs / search_spans / get_events as a v2 list answer with cursor and next link."""
    if query is not None and not isinstance(query, str):
        raise FacadeError("filter query must be a string")
    sort = _sort(sort, allow_oldest=tool == "search_logs")
    lim = _limit(integer(limit, "page limit", 1))
    args = _compact({"query": query.strip() if query else None, "from": frm, "to": to, "limit": lim,
                     "cursor": cursor, "sort": sort})

    def shape(c: dict[str, Any], elapsed: float) -> Any:
        after = c.get("next_cursor")
        nxt = _link(inc, get_path, {"filter[query]": query, "filter[from]": frm, "filter[to]": to, "sort": sort,
                                    "page[limit]": lim, "page[cursor]": after}) if after else None
        return shapes.list_body([item(r) for r in c[key]], c, elapsed, after, nxt)

    return Plan(tool, args, shape)


def _v2_params(inc: Incoming) -> tuple[Any, ...]:
    return (inc.text("filter[query]"), inc.time("filter[from]"), inc.time("filter[to]"),
            inc.text("page[limit]"), inc.text("page[cursor]"), inc.text("sort"))


def _body_search(body: dict[str, Any], where: str = "") -> tuple[Any, ...]:
    f = member(body, "filter", dict, where) or {}
    page = member(body, "page", dict, where) or {}
    return (member(f, "query", str, where + "filter."), time_member(f, "from", where + "filter."),
            time_member(f, "to", where + "filter."), member(page, "limit", int, where + "page."),
            member(page, "cursor", str, where + "page."), member(body, "sort", str, where))


def plan_logs_search(inc: Incoming) -> Plan:
    return _search_plan(inc, "search_logs", "logs", shapes.log_item, "/api/v2/logs/events", *_body_search(inc.body))


def plan_logs_get(inc: Incoming) -> Plan:
    return _search_plan(inc, "search_logs", "logs", shapes.log_item, "/api/v2/logs/events", *_v2_params(inc))


def _spans_plan(inc: Incoming, query: Any, frm: Any, to: Any, limit: Any, cursor: Any, sort: Any) -> Plan:
    m = _TRACE_ONLY.match(query) if isinstance(query, str) else None
    if m is None:
        return _search_plan(inc, "search_spans", "spans", shapes.span_item, "/api/v2/spans/events",
                            query, frm, to, limit, cursor, sort)

    def failed(error: str, elapsed: float) -> Any:  # an unknown trace: no span matches
        return shapes.list_body([], {"warning": error}, elapsed, None, None)

    return Plan("get_trace", {"trace_id": m.group(1)},
                lambda c, el: shapes.list_body(shapes.trace_spans(c), c, el, None, None), failed)


def plan_spans_search(inc: Incoming) -> Plan:
    data = member(inc.body, "data", dict, "") or {}
    if data.get("type") not in (None, "search_request"):
        raise FacadeError("data.type must be 'search_request'")
    attrs = member(data, "attributes", dict, "data.") or {}
    return _spans_plan(inc, *_body_search(attrs, "data.attributes."))


def plan_spans_get(inc: Incoming) -> Plan:
    return _spans_plan(inc, *_v2_params(inc))


def plan_events_v2(inc: Incoming) -> Plan:
    return _search_plan(inc, "get_events", "events", shapes.event_v2, "/api/v2/events", *_v2_params(inc))


def plan_events_search(inc: Incoming) -> Plan:
    return _search_plan(inc, "get_events", "events", shapes.event_v2, "/api/v2/events", *_body_search(inc.body))


def plan_events_v1(inc: Incoming) -> Plan:
    terms = []
    sources = [s for s in re.split(r"[\s,]+", inc.text("sources") or "") if s]
    if any(not _SOURCE.match(s) for s in sources):
        raise FacadeError("sources must be a comma-separated list of source names")
    if sources:
        terms.append(f"source:{sources[0]}" if len(sources) == 1 else
                     "(" + " OR ".join(f"source:{s}" for s in sources) + ")")
    terms += _terms(tag_terms(inc.text("tags"), "tags"))
    if inc.integer("page", 0):
        raise FacadeError(f"only page 0 (the newest {MAX_LIMIT} events) is offered: page on with GET /api/v2/events")
    args = _compact({"query": " ".join(terms), "from": inc.time("start", True), "to": inc.time("end", True),
                     "limit": MAX_LIMIT})
    return Plan("get_events", args, lambda c, _el: shapes.events_v1_body(c["events"]))


def plan_logs_aggregate(inc: Incoming) -> Plan:
    body = inc.body
    query, frm, to, *_page = _body_search({"filter": member(body, "filter", dict, "") or {}})
    computes = member(body, "compute", list, "") or []
    if len(computes) > 1 or any(not isinstance(c, dict) for c in computes):
        raise FacadeError("compute: at most one compute object (a count) is supported")
    comp = computes[0] if computes else {}
    if comp.get("aggregation", "count") != "count" or comp.get("metric") not in (None, "", "*", "count"):
        raise FacadeError("compute: only the 'count' aggregation is supported")
    kind = comp.get("type", "total")
    if kind not in ("total", "timeseries"):
        raise FacadeError("compute.type must be 'total' or 'timeseries'")
    interval = None
    if kind == "timeseries":
        interval = 60
        if comp.get("interval") is not None:
            m = _INTERVAL.match(str(comp["interval"]).strip())
            if m is None:
                raise FacadeError("compute.interval must look like '5m', '1h', '300s' or milliseconds")
            interval = max(1, int(int(m.group(1)) * _UNIT_S[m.group(2) or "ms"]))
    facets: list[str] = []
    missing: dict[str, Any] = {}
    limit = 1
    for g in member(body, "group_by", list, "") or []:
        if not isinstance(g, dict) or not isinstance(g.get("facet"), str) or not g["facet"].strip():
            raise FacadeError("group_by: each item needs a 'facet' string")
        if g.get("histogram") is not None or g.get("total") not in (None, False):
            raise FacadeError("group_by: histogram and total are not supported")
        sort = g.get("sort") or {}
        if not isinstance(sort, dict) or sort.get("order", "desc") != "desc" or sort.get("type", "measure") != "measure":
            raise FacadeError("group_by.sort: groups come by count, descending; no other order is supported")
        facets.append(g["facet"].strip())
        limit *= integer(g.get("limit", 10), "group_by.limit", 1) or 10
        if g.get("missing") is not None:
            missing[facets[-1]] = g["missing"]
    if len(facets) > 2:
        raise FacadeError("group_by: at most two facets are supported")
    args = _compact({"query": query.strip() if query else None, "from": frm, "to": to,
                     "group_by": facets or None, "interval": interval,
                     "limit": min(limit, MAX_LIMIT) if facets else None})
    return Plan("aggregate_logs", args,
                lambda c, el: shapes.aggregate_body(c, el, kind == "timeseries", missing))


# ---------------------------------------------------------------------- monitors, services


def _group_states(inc: Incoming) -> set[str] | None:
    text = inc.text("group_states")
    if not text:
        return None
    states = {s.strip().lower() for s in text.split(",") if s.strip()}
    if not states <= _MONITOR_STATES:
        raise FacadeError("group_states must list all, alert, warn, no data or ok")
    return states


def plan_monitors(inc: Incoming) -> Plan:
    terms = []
    name = inc.text("name")
    if name:
        phrase = re.sub(r'["\\]', " ", name).strip()
        if phrase:
            terms.append(f'"{phrase}"')
    for param in ("monitor_tags", "tags"):
        terms += _terms(tag_terms(inc.text(param), param))
    states = _group_states(inc)
    limit, cut = _page_slice(inc.integer("page", 0), inc.integer("page_size", 1))
    args = _compact({"query": " ".join(terms), "limit": limit})
    return Plan("get_monitors", args,
                lambda c, _el: [shapes.monitor_body(m, states) for m in c["monitors"][cut]])


def plan_monitor(inc: Incoming) -> Plan:
    mid = int(inc.path["monitor_id"])
    states = _group_states(inc)

    def shape(c: dict[str, Any], _el: float) -> Any:
        for m in c["monitors"]:
            if int(m["id"]) == mid:
                return shapes.monitor_body(m, states)
        raise NotFound("Monitor not found")

    return Plan("get_monitors", {"query": f"id:{mid}"}, shape)


def plan_service_definitions(inc: Incoming) -> Plan:
    limit, cut = _page_slice(inc.integer("page[number]", 0), inc.integer("page[size]", 1))
    return Plan("list_services", {"limit": limit},
                lambda c, _el: {"data": [shapes.service_definition(s) for s in c["services"][cut]]})


def plan_service_definition(inc: Incoming) -> Plan:
    name = inc.path["service_name"]
    if not _SERVICE.match(name):
        raise FacadeError("service_name must be a service name")

    def shape(c: dict[str, Any], _el: float) -> Any:
        for s in c["services"]:
            if s["name"].lower() == name.lower():
                return {"data": shapes.service_definition(s)}
        raise NotFound("Not found")

    return Plan("list_services", {"query": f"service:{name}"}, shape)


def plan_relations(inc: Incoming) -> Plan:
    src, dst = ref_name(inc.text("filter[from_ref]"), "filter[from_ref]"), ref_name(inc.text("filter[to_ref]"), "filter[to_ref]")
    rtype = inc.text("filter[type]")
    if rtype not in (None, _DEPENDS_ON, _DEPENDENCY_OF):
        raise FacadeError(f"filter[type]: only {_DEPENDS_ON} and {_DEPENDENCY_OF} relations exist here")
    anchor = src if src is not None else dst
    if anchor is None:
        raise FacadeError("filter[from_ref] or filter[to_ref] (such as 'service:checkout') is required here")
    offset = inc.integer("page[offset]", 0) or 0
    size = inc.integer("page[limit]", 1) or 100
    # Seen from the anchor: its downstream d gives (anchor DependsOn d) and (d DependencyOf anchor).
    want_down = rtype in (None, _DEPENDS_ON if src else _DEPENDENCY_OF)
    want_up = rtype in (None, _DEPENDENCY_OF if src else _DEPENDS_ON)
    direction = "both" if want_down and want_up else ("downstream" if want_down else "upstream")

    def shape(c: dict[str, Any], _el: float) -> Any:
        rel = []
        for d in c.get("downstream") or []:
            rel.append(shapes.relation_item(anchor, d["service"], _DEPENDS_ON, d.get("protocol")) if src
                       else shapes.relation_item(d["service"], anchor, _DEPENDENCY_OF, d.get("protocol")))
        for u in c.get("upstream") or []:
            rel.append(shapes.relation_item(anchor, u["service"], _DEPENDENCY_OF, u.get("protocol")) if src
                       else shapes.relation_item(u["service"], anchor, _DEPENDS_ON, u.get("protocol")))
        if src and dst:
            rel = [r for r in rel if r["attributes"]["to"]["name"].lower() == dst.lower()]
        page = rel[offset : offset + size]
        links = {"self": _link(inc, "/api/v2/catalog/relation", dict(inc.params))}
        if offset + size < len(rel):
            links["next"] = _link(inc, "/api/v2/catalog/relation", {**dict(inc.params), "page[offset]": offset + size})
        return {"data": page, "meta": {"count": len(rel)}, "links": links}

    return Plan("get_service_dependencies", {"service": anchor, "direction": direction, "depth": 1}, shape)


# ---------------------------------------------------------------------- the app

_ENDPOINTS: list[tuple[str, str, Callable[[Incoming], Plan]]] = [
    ("GET", "/api/v1/query", plan_query_metrics),
    ("GET", "/api/v1/metrics", plan_list_metrics),
    ("GET", "/api/v2/metrics/{metric_name}/all-tags", plan_metric_tags),
    ("POST", "/api/v2/logs/events/search", plan_logs_search),
    ("GET", "/api/v2/logs/events", plan_logs_get),
    ("POST", "/api/v2/logs/analytics/aggregate", plan_logs_aggregate),
    ("POST", "/api/v2/spans/events/search", plan_spans_search),
    ("GET", "/api/v2/spans/events", plan_spans_get),
    ("GET", "/api/v1/events", plan_events_v1),
    ("GET", "/api/v2/events", plan_events_v2),
    ("POST", "/api/v2/events/search", plan_events_search),
    ("GET", "/api/v1/monitor", plan_monitors),
    ("GET", "/api/v1/monitor/{monitor_id:int}", plan_monitor),
    ("GET", "/api/v2/services/definitions", plan_service_definitions),
    ("GET", "/api/v2/services/definitions/{service_name}", plan_service_definition),
    ("GET", "/api/v2/catalog/relation", plan_relations),
]


async def _read_json(request: Request) -> dict[str, Any]:
    """The request's JSON object body, at most ``MAX_BODY_BYTES``; an empty body is ``{}``."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise TooLarge(f"request body over {MAX_BODY_BYTES} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise TooLarge(f"request body over {MAX_BODY_BYTES} bytes")
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError) as e:
        raise FacadeError(f"malformed JSON body: {clip(e, 120)}") from None
    if not isinstance(body, dict):
        raise FacadeError("the JSON body must be an object")
    return body


def _root(request: Request) -> str:
    return str(request.url.replace(path=request.scope.get("root_path", ""), query="")).rstrip("/")


def _handler(registry: SurfaceRegistry, planner: Callable[[Incoming], Plan], has_body: bool) -> Callable[..., Any]:
    async def handle(request: Request) -> Response:
        session = registry.resolve(credential_of(request.headers))
        if session is None or session.closed or REST not in session.offered:
            return _errors(403, "Forbidden")
        try:
            body = await _read_json(request) if has_body else {}
            inc = Incoming(request.query_params, dict(request.path_params), body, _root(request))
            plan = planner(inc)
            t0 = time.perf_counter()
            outcome = await run_in_threadpool(session.call, REST, plan.tool, plan.args)
            elapsed = (time.perf_counter() - t0) * 1000
            if not outcome.ok:
                if plan.on_failure is not None:
                    return JSONResponse(plan.on_failure(str(outcome.error), elapsed))
                return _errors(400, str(outcome.error))
            return JSONResponse(plan.shape(outcome.content, elapsed))
        except FacadeError as e:
            return _errors(e.status, str(e))
        except SurfaceClosed:
            return _errors(403, "Forbidden")
        except SurfaceError as e:
            return _errors(e.status, str(e) if e.status != 403 else f"Forbidden: {e}")
        except Exception:  # noqa: BLE001 - a bug of ours: a generic answer, the details in the log
            log.exception("REST facade: %s %s failed", request.method, clip(request.url.path, 200))
            return _errors(500, "Internal Server Error")

    return handle


async def _http_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    message = {404: "Not found", 405: "Method not allowed"}.get(status, "Bad request")
    response = _errors(status, message)
    if isinstance(exc, HTTPException) and exc.headers and "Allow" in exc.headers:
        response.headers["Allow"] = exc.headers["Allow"]
    return response


def rest_app(registry: SurfaceRegistry) -> Starlette:
    """The facade's Starlette app; mount it at ``/datadog``."""
    routes = [
        Route(path, _handler(registry, planner, method == "POST"), methods=[method])
        for method, path, planner in _ENDPOINTS
    ]
    return Starlette(routes=routes, exception_handlers={HTTPException: _http_error})
