"""In-band tool calls to Datadog's MCP tools and back: the client side of the MCP surface.

The policies think in the proctor's in-band tools (``evaluator_agent/telemetry/catalog.py``).
An agent that reaches them over MCP asks Datadog's tools instead, with Datadog's argument
names, and gets Datadog-shaped results. This module translates both ways, as pure functions
(no ADK, no MCP SDK), so that the policy's view of the investigation (its
:class:`~mock_agents.transcript.Transcript`) is the same whichever way a call travelled:

* :func:`to_mcp`: an in-band call ``{"id", "name", "arguments"}`` -> the MCP tool call
  (:class:`McpCall`), or None when the tool has no MCP counterpart (``aggregate_logs``:
  Datadog's ``analyze_datadog_logs`` takes SQL, so the surface offers no log aggregation);
* :func:`from_mcp`: an MCP tool call -> the in-band call it stands for (to rebuild the
  history: the model's earlier function calls are the policy's earlier tool calls);
* :func:`in_band_result`: the MCP tool's answer (a dumped ``CallToolResult``, as ADK's
  ``McpTool`` returns it, or ADK's ``{"error": ...}`` when the transport failed) -> the
  in-band tool result ``{"id", "ok", "content" | "error"}``.

The mapping (the table is the agent's own knowledge of Datadog's tool names; the tests check
it against the surface's ``TOOL_MAP``):

========================  ===================================  ========================
in-band tool              Datadog MCP tool                     arguments
========================  ===================================  ========================
search_logs               search_datadog_logs                  same names
query_metrics             get_datadog_metric                   query -> queries=[query]
list_metrics              search_datadog_metrics               same names
search_spans              search_datadog_spans                 same names
get_trace                 get_datadog_trace                    same names
get_monitors              search_datadog_monitors              same names
get_events                search_datadog_events                same names
list_services             search_datadog_services              same names
get_service_dependencies  search_datadog_service_dependencies  same names
aggregate_logs            (none: stays in-band)
========================  ===================================  ========================

Times given as epoch seconds become epoch milliseconds (Datadog's unit); ISO and ``now-1h``
strings pass unchanged. Results come back record for record, in the shapes the surface
documents (``evaluator_agent/service/mcp_surface.py``): ``ts`` is re-derived from the ISO
timestamp (a span's start is to the millisecond over MCP, finer in-band; nothing else the
policies read is lost), a root span's ``parent_id`` ``"0"`` is None again, ``next_cursor`` is
``meta.page.after`` (absent on the last page), and ``meta.warnings`` (metrics: ``message``)
become ``warning``, except the note of a page cut to size, which is ``truncated``. A metric
answer cut to size loses its in-band ``series_total``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

#: in-band tool -> Datadog MCP tool
MCP_TOOL_OF: dict[str, str] = {
    "search_logs": "search_datadog_logs",
    "query_metrics": "get_datadog_metric",
    "list_metrics": "search_datadog_metrics",
    "search_spans": "search_datadog_spans",
    "get_trace": "get_datadog_trace",
    "get_monitors": "search_datadog_monitors",
    "get_events": "search_datadog_events",
    "list_services": "search_datadog_services",
    "get_service_dependencies": "search_datadog_service_dependencies",
}
IN_BAND_OF: dict[str, str] = {v: k for k, v in MCP_TOOL_OF.items()}

MS_THRESHOLD = 1e11  # an epoch number above this is milliseconds
MAX_ERROR_CHARS = 500


@dataclass(frozen=True)
class McpCall:
    """One MCP tool call standing for an in-band call (``id`` is the in-band call's)."""

    id: str
    name: str
    arguments: dict[str, Any]


# --------------------------------------------------------------------------- calls


def _to_ms(value: Any) -> Any:
    if isinstance(value, int | float) and not isinstance(value, bool) and abs(value) < MS_THRESHOLD:
        ms = value * 1000
        return int(ms) if float(ms).is_integer() else ms
    return value


def _to_s(value: Any) -> Any:
    if isinstance(value, int | float) and not isinstance(value, bool) and abs(value) >= MS_THRESHOLD:
        s = value / 1000
        return int(s) if float(s).is_integer() else s
    return value


def _times(args: dict[str, Any], convert: Any) -> dict[str, Any]:
    return {k: convert(v) if k in ("from", "to") else v for k, v in args.items()}


def to_mcp(call: dict[str, Any]) -> McpCall | None:
    """The MCP tool call for an in-band call; None when no MCP tool answers it."""
    name = MCP_TOOL_OF.get(str(call.get("name")))
    if name is None:
        return None
    args = call.get("arguments")
    args = _times(dict(args) if isinstance(args, dict) else {}, _to_ms)
    if name == "get_datadog_metric" and "query" in args:
        args["queries"] = [args.pop("query")]
    return McpCall(str(call.get("id") or ""), name, args)


def from_mcp(name: str, arguments: dict[str, Any] | None) -> tuple[str, dict[str, Any]]:
    """The in-band (tool, arguments) an MCP call of :func:`to_mcp` stands for."""
    args = _times(dict(arguments or {}), _to_s)
    if name == "get_datadog_metric" and isinstance(args.get("queries"), list) and args["queries"]:
        args["query"] = args.pop("queries")[0]
    return IN_BAND_OF.get(name, name), args


# --------------------------------------------------------------------------- results


def _d(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _l(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _ts(iso: Any) -> float | None:
    if not isinstance(iso, str) or not iso:
        return None
    try:
        return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _tag_dict(tags: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for t in _l(tags):
        if isinstance(t, str):
            k, _, v = t.partition(":")
            out[k] = v
    return out


CUT_NOTE = "was cut"  # how the surface words the note of a page cut to size (meta.warnings)


def _page(meta: dict[str, Any], content: dict[str, Any], total_key: str | None = None,
          total: Any = None) -> dict[str, Any]:
    """The in-band paging fields from a Datadog ``meta``: the count, ``next_cursor``
    (``page.after``, absent on the last page), and ``truncated`` / ``warning`` from the notes."""
    if total_key is not None:
        content[total_key] = meta.get(total_key) if total is None else total
        content["next_cursor"] = _d(meta.get("page")).get("after")
    return _notes([str(_d(w).get("detail") or _d(w).get("title") or "") for w in _l(meta.get("warnings"))],
                  content)


def _notes(notes: list[str], content: dict[str, Any]) -> dict[str, Any]:
    warnings = [n for n in notes if n and CUT_NOTE not in n]
    if len(warnings) < len([n for n in notes if n]):
        content["truncated"] = True
    if warnings:
        content["warning"] = "; ".join(warnings)
    return content


def _log(item: dict[str, Any]) -> dict[str, Any]:
    a = _d(item.get("attributes"))
    attrs = dict(_d(a.get("attributes")))
    trace_id = attrs.pop("trace_id", None)
    return {"timestamp": a.get("timestamp"), "ts": _ts(a.get("timestamp")), "service": a.get("service"),
            "host": a.get("host"), "status": a.get("status"), "message": a.get("message"),
            "attributes": attrs, "trace_id": trace_id}


def _logs(body: dict[str, Any], _: dict[str, Any]) -> dict[str, Any]:
    logs = [_log(_d(x)) for x in _l(body.get("data"))]
    return _page(_d(body.get("meta")), {"logs": logs}, "total_matched")


def _metric_query(body: dict[str, Any], _: dict[str, Any]) -> dict[str, Any]:
    series = []
    for s in map(_d, _l(body.get("series"))):
        points = [[_to_s(p[0]), p[1]] for p in _l(s.get("pointlist")) if isinstance(p, list) and len(p) == 2]
        series.append({"scope": s.get("scope"), "tags": _tag_dict(s.get("tag_set")), "metric": s.get("metric"),
                       "aggregation": s.get("aggr"), "interval": s.get("interval"), "pointlist": points,
                       "length": s.get("length", len(points))})
    content: dict[str, Any] = {"query": body.get("query"), "from": _to_s(body.get("from_date")),
                               "to": _to_s(body.get("to_date")), "series": series}
    return _notes(str(body.get("message") or "").split("; "), content)


def _metric(item: dict[str, Any]) -> dict[str, Any]:
    a = _d(item.get("attributes"))
    tags: dict[str, list[str]] = {str(k): [] for k in _l(a.get("tag_keys"))}
    for t in _l(a.get("tags")):
        if isinstance(t, str):
            k, _, v = t.partition(":")
            tags.setdefault(k, []).append(v)
    return {"metric": item.get("id"), "type": a.get("metric_type"), "tags": tags}


def _metrics(body: dict[str, Any], _: dict[str, Any]) -> dict[str, Any]:
    metrics = [_metric(_d(x)) for x in _l(body.get("data"))]
    return _page(_d(body.get("meta")), {"metrics": metrics}, "total")


def _span(item: dict[str, Any]) -> dict[str, Any]:
    a = _d(item.get("attributes"))
    inner = _d(a.get("attributes"))
    parent = a.get("parent_id")
    out = {"trace_id": a.get("trace_id"), "span_id": a.get("span_id"),
           "parent_id": None if parent in (None, "", "0") else parent, "service": a.get("service"),
           "name": inner.get("operation_name"), "resource": a.get("resource_name"),
           "timestamp": a.get("start_timestamp"), "ts": _ts(a.get("start_timestamp")),
           "duration": inner.get("duration"), "error": inner.get("status") == "error",
           "tags": dict(_d(a.get("custom")))}
    if "depth" in inner:
        out["depth"] = inner["depth"]
    return out


def _spans(body: dict[str, Any], _: dict[str, Any]) -> dict[str, Any]:
    spans = [_span(_d(x)) for x in _l(body.get("data"))]
    return _page(_d(body.get("meta")), {"spans": spans}, "total_matched")


def _trace(body: dict[str, Any], _: dict[str, Any]) -> dict[str, Any]:
    a = _d(_d(body.get("data")).get("attributes"))
    content = {"trace_id": a.get("trace_id"), "spans": [_span(_d(x)) for x in _l(a.get("spans"))],
               "services": _l(a.get("services"))}
    return _page(_d(body.get("meta")), content)


def _monitors(body: dict[str, Any], _: dict[str, Any]) -> dict[str, Any]:
    monitors = [{"id": m.get("id"), "name": m.get("name"), "type": m.get("type"), "query": m.get("query"),
                 "message": m.get("message"), "tags": _l(m.get("tags")), "state": m.get("overall_state"),
                 "transitions": _l(m.get("state_transitions"))}
                for m in map(_d, _l(body.get("monitors")))]
    meta = _d(body.get("metadata"))
    return _page(meta, {"monitors": monitors}, "total", meta.get("total_count"))


def _events(body: dict[str, Any], _: dict[str, Any]) -> dict[str, Any]:
    events = []
    for e in map(_d, _l(body.get("data"))):
        a = _d(e.get("attributes"))
        inner = _d(a.get("attributes"))
        events.append({"id": e.get("id"), "timestamp": a.get("timestamp"), "ts": _ts(a.get("timestamp")),
                       "source": inner.get("source_type_name"), "title": inner.get("title"),
                       "text": a.get("message"), "tags": _l(a.get("tags"))})
    return _page(_d(body.get("meta")), {"events": events}, "total_matched")


def _services(body: dict[str, Any], _: dict[str, Any]) -> dict[str, Any]:
    services = [dict(_d(_d(x).get("attributes"))) for x in _l(body.get("data"))]
    return _page(_d(body.get("meta")), {"services": services}, "total")


def _dependencies(body: dict[str, Any], _: dict[str, Any]) -> dict[str, Any]:
    a = _d(_d(body.get("data")).get("attributes"))
    content = {"service": a.get("service"), "downstream": _l(a.get("calls")), "upstream": _l(a.get("called_by"))}
    return _page(_d(body.get("meta")), content)


_RESULTS = {
    "search_datadog_logs": _logs,
    "get_datadog_metric": _metric_query,
    "search_datadog_metrics": _metrics,
    "search_datadog_spans": _spans,
    "get_datadog_trace": _trace,
    "search_datadog_monitors": _monitors,
    "search_datadog_events": _events,
    "search_datadog_services": _services,
    "search_datadog_service_dependencies": _dependencies,
}


def _error_text(response: dict[str, Any]) -> str:
    """The message of an MCP error answer: Datadog's ``{"errors": [...]}`` body, else the text."""
    body = response.get("structuredContent")
    if not isinstance(body, dict):
        body = _text_json(response)
    errors = _l(_d(body).get("errors"))
    if errors:
        return "; ".join(str(e) for e in errors)
    texts = [str(_d(c).get("text") or "") for c in _l(response.get("content"))]
    return " ".join(t for t in texts if t) or "the MCP tool call failed"


def _text_json(response: dict[str, Any]) -> Any:
    for c in map(_d, _l(response.get("content"))):
        if c.get("type") == "text" and isinstance(c.get("text"), str):
            try:
                return json.loads(c["text"])
            except (json.JSONDecodeError, RecursionError):
                return None
    return None


def in_band_result(call_id: str, name: str, arguments: dict[str, Any] | None, response: Any) -> dict[str, Any]:
    """The in-band tool result for the answer ``response`` to the MCP call ``name(arguments)``.

    ``response`` is what ADK hands back for an MCP tool: the dumped ``CallToolResult``
    (``content``, ``structuredContent``, ``isError``), or ``{"error": ...}`` when the call
    could not be made. Never raises: an answer it cannot read is a failed result."""
    r = _d(response)
    if "error" in r and "content" not in r and "structuredContent" not in r:
        return {"id": call_id, "ok": False, "error": str(r["error"])[:MAX_ERROR_CHARS]}
    if r.get("isError") or r.get("is_error"):
        return {"id": call_id, "ok": False, "error": _error_text(r)[:MAX_ERROR_CHARS]}
    body = r.get("structuredContent")
    if not isinstance(body, dict):
        body = _text_json(r)
    translate = _RESULTS.get(name)
    if translate is None or not isinstance(body, dict):
        return {"id": call_id, "ok": False, "error": f"unreadable answer from the MCP tool {name[:80]}"}
    try:
        return {"id": call_id, "ok": True, "content": translate(body, dict(arguments or {}))}
    except Exception as e:  # noqa: BLE001 - an answer of an unexpected shape is a failed call
        return {"id": call_id, "ok": False, "error": f"unreadable answer from {name[:80]}: {type(e).__name__}"}
