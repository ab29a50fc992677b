"""Datadog's formats for the REST facade, both ways; pure functions, no I/O.

- Request side: reading Datadog parameters and JSON bodies with bounded error messages
  (:class:`FacadeError` carries the HTTP status), tag filters, entity references.
- Response side: each ``*_body`` / ``*_item`` takes the ``content`` of one in-band tool answer
  (the shapes of ``telemetry/catalog.py``) and returns what the real Datadog API answers
  with, field names and enums as in ``datadog-api-client``'s models, so the client
  deserializes it with type checking on.

The mapping and its choices are documented in ``rest_facade.py``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from typing import Any

from evaluator_agent.core.clock import iso_ms

__all__ = [
    "FacadeError",
    "NotFound",
    "clip",
    "integer",
    "member",
    "ref_name",
    "tag_terms",
    "time_member",
    "aggregate_body",
    "event_v1",
    "event_v2",
    "events_v1_body",
    "list_body",
    "log_item",
    "metric_all_tags_body",
    "metrics_list_body",
    "metrics_query_body",
    "monitor_body",
    "relation_item",
    "service_definition",
    "span_item",
    "trace_spans",
    "warnings_of",
]

# The catalog's entity kinds -> the service definition v2.2 ``type`` values Datadog documents
# (web, db, cache, function, browser, mobile, custom); the kind itself is kept as a tag.
_DEFINITION_TYPE = {"service": "web", "gateway": "web", "database": "db", "cache": "cache", "job": "function"}
_PRIORITY_TAG = re.compile(r"^priority:p([1-5])$", re.IGNORECASE)


MAX_ECHO = 300  # characters of a client's input an error message may quote
_TAG = re.compile(r"^[A-Za-z0-9_.\-/@]+:[^\s,()\"]+$")
_REF = re.compile(r"^(?:[a-z]+:)?(?:[A-Za-z0-9_.\-]+/)?([A-Za-z0-9_.\-]{1,200})$")


# ---------------------------------------------------------------------- reading requests


class FacadeError(Exception):
    """A request the facade refuses before (or instead of) answering; ``status`` is HTTP's."""

    status = 400


class NotFound(FacadeError):
    """The in-band answer holds no record for the path's resource."""

    status = 404


def clip(text: Any, n: int = MAX_ECHO) -> str:
    """At most ``n`` characters of ``text``: what an error message may echo of the input."""
    s = str(text)
    return s if len(s) <= n else s[:n] + "..."


def integer(value: Any, name: str, lo: int, hi: int | None = None) -> int | None:
    """An integer parameter (JSON number or query string) at least ``lo``, lowered to ``hi``."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise FacadeError(f"{name} must be an integer")
    try:
        n = int(value)
    except ValueError:
        raise FacadeError(f"{name} must be an integer, got {clip(value, 40)!r}") from None
    if n < lo:
        raise FacadeError(f"{name} must be at least {lo}")
    return n if hi is None else min(n, hi)


_LABELS = {"dict": "an object", "str": "a string", "int": "an integer", "list": "an array"}


def member(obj: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    """``obj[key]`` of a JSON body if it has the type ``kind`` (None when absent or null)."""
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, kind):
        names = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
        raise FacadeError(f"{where}{key} must be {_LABELS.get(names, names)}")
    return value


def time_member(obj: dict[str, Any], key: str, where: str) -> str | int | float | None:
    """A time of a JSON body: a string (ISO 8601, epoch ms, ``now-15m``) or a number."""
    value = member(obj, key, (str, int, float), where)
    if isinstance(value, str):
        return value.strip() or None
    return value


def tag_terms(text: str | None, name: str) -> list[tuple[bool, str]]:
    """``key:value`` terms of a Datadog tag filter joined by AND: (negated, term) pairs."""
    if not text:
        return []
    out: list[tuple[bool, str]] = []
    negate = False
    for tok in re.split(r"[\s,]+", text.strip()):
        up = tok.upper()
        if not tok or up == "AND":
            continue
        if up == "NOT":
            negate = True
            continue
        if up in ("OR", "IN") or "(" in tok or ")" in tok:
            raise FacadeError(f"{name}: only key:value terms joined by AND (negated with NOT, ! or -) are supported")
        neg = tok[0] in "!-"
        term = tok[1:] if neg else tok
        if not _TAG.match(term):
            raise FacadeError(f"{name}: {clip(tok, 60)!r} is not a key:value tag")
        out.append((negate or neg, term))
        negate = False
    return out


def ref_name(ref: str | None, name: str) -> str | None:
    """``service:checkout``, ``service:default/checkout`` or ``checkout`` -> ``checkout``."""
    if not ref:
        return None
    m = _REF.match(ref)
    if m is None:
        raise FacadeError(f"{name} must be an entity reference such as 'service:checkout'")
    return m.group(1)


# ---------------------------------------------------------------------- common


def ms(t: float) -> int:
    """Epoch seconds as epoch milliseconds."""
    return int(round(float(t) * 1000))


def _stable_id(*parts: Any) -> str:
    """A stable opaque id for records the world gives none (logs): same record, same id."""
    raw = "\x1f".join(str(p) for p in parts).encode("utf-8", "replace")
    return hashlib.sha256(raw).hexdigest()[:32]


def warnings_of(content: dict[str, Any]) -> list[str]:
    """The notes of an in-band answer (its ``warning``, a cut page) as plain sentences."""
    out = []
    if content.get("warning"):
        out.append(str(content["warning"]))
    if content.get("truncated"):
        out.append("the answer was cut to fit the result size cap; page on (or narrow the query) for the rest")
    return out


def search_meta(content: dict[str, Any], elapsed_ms: float, after: str | None) -> dict[str, Any]:
    """``meta`` of a v2 search answer (logs, spans, events): cursor and warnings."""
    meta: dict[str, Any] = {"elapsed": int(elapsed_ms), "status": "done"}
    if after:
        meta["page"] = {"after": after}
    notes = warnings_of(content)
    if notes:
        meta["warnings"] = [{"code": "proctor_notice", "title": "Notice", "detail": n} for n in notes]
    return meta


def list_body(data: list[Any], content: dict[str, Any], elapsed_ms: float, after: str | None,
              next_link: str | None) -> dict[str, Any]:
    """A v2 search answer: ``data``, ``links.next`` and ``meta`` (logs, spans, events)."""
    body: dict[str, Any] = {"data": data, "meta": search_meta(content, elapsed_ms, after)}
    if next_link:
        body["links"] = {"next": next_link}
    return body


# ---------------------------------------------------------------------- metrics


def metrics_query_body(content: dict[str, Any]) -> dict[str, Any]:
    """``MetricsQueryResponse`` (GET /api/v1/query) from a ``query_metrics`` answer."""
    series = []
    for s in content["series"]:
        points = [[ms(t), v] for t, v in s["pointlist"]]
        tags = s.get("tags") or {}
        scope = s["scope"]
        series.append({
            "aggr": s.get("aggregation"),
            "display_name": s["metric"],
            "end": points[-1][0] if points else ms(content["to"]),
            "expression": f"{s.get('aggregation', 'avg')}:{s['metric']}{{{scope}}}",
            "interval": int(s.get("interval", 0)),
            "length": len(points),
            "metric": s["metric"],
            "pointlist": points,
            "query_index": 0,
            "scope": scope,
            "start": points[0][0] if points else ms(content["from"]),
            "tag_set": [f"{k}:{v}" for k, v in tags.items()],
            "unit": None,
        })
    group_by = list((content["series"][0].get("tags") or {}) if content["series"] else {})
    return {
        "status": "ok",
        "res_type": "time_series",
        "query": content["query"],
        "from_date": ms(content["from"]),
        "to_date": ms(content["to"]),
        "group_by": group_by,
        "series": series,
        "message": "; ".join(warnings_of(content)),
    }


def metrics_list_body(content: dict[str, Any], since: int) -> dict[str, Any]:
    """``MetricsListResponse`` (GET /api/v1/metrics) from a ``list_metrics`` answer."""
    return {"from": str(since), "metrics": [m["metric"] for m in content["metrics"]]}


def metric_all_tags_body(content: dict[str, Any], name: str) -> dict[str, Any]:
    """``MetricAllTagsResponse`` (GET /api/v2/metrics/{name}/all-tags): the metric's tags as
    ``key:value`` strings, from a ``list_metrics`` answer that holds it."""
    for m in content["metrics"]:
        if m["metric"] == name:
            tags = [f"{k}:{v}" for k, values in sorted(m["tags"].items()) for v in values]
            return {"data": {"type": "metrics", "id": name, "attributes": {"tags": tags}}}
    raise NotFound("Metric not found")


# ---------------------------------------------------------------------- logs


def log_item(r: dict[str, Any]) -> dict[str, Any]:
    """One ``Log`` of a ``LogsListResponse``."""
    attrs = dict(r.get("attributes") or {})
    if r.get("trace_id"):
        attrs["trace_id"] = r["trace_id"]
    tags = [f"service:{r['service']}"] if r.get("service") else []
    if r.get("host"):
        tags.append(f"host:{r['host']}")
    tags += [f"{k}:{attrs[k]}" for k in ("env", "version") if isinstance(attrs.get(k), str)]
    return {
        "id": _stable_id(r["ts"], r.get("service"), r.get("host"), r.get("message")),
        "type": "log",
        "attributes": {
            "timestamp": r["timestamp"],
            "service": r.get("service") or "",
            "host": r.get("host") or "",
            "status": r.get("status") or "info",
            "message": r.get("message") or "",
            "tags": tags,
            "attributes": attrs,
        },
    }


def aggregate_body(content: dict[str, Any], elapsed_ms: float, timeseries: bool,
                   missing: dict[str, Any]) -> dict[str, Any]:
    """``LogsAggregateResponse`` (one count compute, ``c0``) from an ``aggregate_logs`` answer;
    ``missing`` (facet -> value) replaces the in-band "N/A" of a facet a log lacks."""
    buckets = []
    for b in content["buckets"]:
        by = {k: (missing[k] if v == "N/A" and k in missing else v) for k, v in b["by"].items()}
        if timeseries:
            value: Any = [{"time": iso_ms(t), "value": float(n)} for t, n in b.get("series") or []]
        else:
            value = float(b["count"])
        buckets.append({"by": by, "computes": {"c0": value}})
    return {"data": {"buckets": buckets}, "meta": search_meta(content, elapsed_ms, None)}


# ---------------------------------------------------------------------- spans


def span_item(s: dict[str, Any]) -> dict[str, Any]:
    """One ``Span`` of a ``SpansListResponse``: the span's tags under ``custom``; its
    operation name, duration (seconds, as the query syntax takes it) and status under
    ``attributes``; a root span's ``parent_id`` is ``"0"`` as in Datadog."""
    tags = dict(s.get("tags") or {})
    duration = float(s.get("duration") or 0.0)
    attrs: dict[str, Any] = {"operation_name": s.get("name"), "duration": duration,
                             "status": "error" if s.get("error") else "ok"}
    if "depth" in s:
        attrs["depth"] = s["depth"]
    out: dict[str, Any] = {
        "service": s.get("service") or "",
        "resource_name": s.get("resource") or "",
        "trace_id": s["trace_id"],
        "span_id": s["span_id"],
        "parent_id": s.get("parent_id") or "0",
        "start_timestamp": s["timestamp"],
        "end_timestamp": iso_ms(float(s["ts"]) + duration),
        "tags": [f"{k}:{v}" for k, v in tags.items()],
        "attributes": attrs,
        "custom": tags,
    }
    if isinstance(tags.get("env"), str):
        out["env"] = tags["env"]
    if isinstance(tags.get("host"), str):
        out["host"] = tags["host"]
    return {"id": s["span_id"], "type": "spans", "attributes": out}


def trace_spans(content: dict[str, Any]) -> list[dict[str, Any]]:
    """The spans of a ``get_trace`` answer, root first (the trace's tree order)."""
    return [span_item(s) for s in content["spans"]]


# ---------------------------------------------------------------------- events


def _event_id_int(eid: Any) -> int | None:
    text = str(eid)
    return int(text) if text.isdigit() and int(text) < 2**63 else None


def event_v1(e: dict[str, Any]) -> dict[str, Any]:
    """One v1 ``Event`` (GET /api/v1/events)."""
    out: dict[str, Any] = {
        "id_str": str(e["id"]),
        "date_happened": int(e["ts"]),
        "title": e.get("title") or "",
        "text": e.get("text") or "",
        "tags": list(e.get("tags") or []),
        "source_type_name": e.get("source") or "",
        "alert_type": "info",
        "priority": "normal",
    }
    n = _event_id_int(e["id"])
    if n is not None:
        out["id"] = n
    host = _tag_value(out["tags"], "host")
    if host:
        out["host"] = host
    return out


def events_v1_body(events: list[dict[str, Any]]) -> dict[str, Any]:
    return {"events": [event_v1(e) for e in events], "status": "ok"}


def event_v2(e: dict[str, Any]) -> dict[str, Any]:
    """One v2 ``EventResponse`` (GET /api/v2/events)."""
    tags = list(e.get("tags") or [])
    inner: dict[str, Any] = {
        "title": e.get("title") or "",
        "timestamp": ms(e["ts"]),
        "source_type_name": e.get("source") or "",
        "sourcecategory": e.get("source") or "",
        "status": "info",
        "priority": "normal",
        "tags": tags,
        "evt": {"id": str(e["id"]), "type": e.get("source") or ""},
    }
    service = _tag_value(tags, "service")
    if service:
        inner["service"] = service
    host = _tag_value(tags, "host")
    if host:
        inner["hostname"] = host
    return {
        "id": str(e["id"]),
        "type": "event",
        "attributes": {"timestamp": e["timestamp"], "message": e.get("text") or "", "tags": tags, "attributes": inner},
    }


def _tag_value(tags: Iterable[str], key: str) -> str | None:
    prefix = key + ":"
    return next((t[len(prefix):] for t in tags if t.startswith(prefix)), None)


# ---------------------------------------------------------------------- monitors


def monitor_body(m: dict[str, Any], group_states: set[str] | None) -> dict[str, Any]:
    """One v1 ``Monitor``. ``group_states`` (lower-case states, or ``{"all"}``) asks for
    ``state.groups``: one group ``*`` with the monitor's state and the times of its last
    transitions to Alert, OK and No Data (from the in-band ``transitions``)."""
    tags = list(m.get("tags") or [])
    out: dict[str, Any] = {
        "id": int(m["id"]),
        "name": m["name"],
        "type": m.get("type") or "metric alert",
        "query": m.get("query") or "",
        "message": m.get("message") or "",
        "tags": tags,
        "overall_state": m["state"],
        "multi": " by " in (m.get("query") or ""),
    }
    prio = next((int(x.group(1)) for t in tags if (x := _PRIORITY_TAG.match(t))), None)
    out["priority"] = prio
    if group_states:
        group: dict[str, Any] = {"name": "*", "status": m["state"]}
        last = {"Alert": "last_triggered_ts", "OK": "last_resolved_ts", "No Data": "last_nodata_ts"}
        for t in m.get("transitions") or []:
            key = last.get(t["to"])
            if key:
                group[key] = int(t["ts"])
            if t["to"] in ("Alert", "Warn", "No Data"):
                group["last_notified_ts"] = int(t["ts"])
        wanted = "all" in group_states or m["state"].lower() in group_states
        out["state"] = {"groups": {"*": group} if wanted else {}}
    return out


# ---------------------------------------------------------------------- services


def service_definition(s: dict[str, Any]) -> dict[str, Any]:
    """One ``ServiceDefinitionData`` in schema v2.2 from a ``list_services`` item."""
    kind = s.get("kind") or "service"
    tags = [f"kind:{kind}"] + [f"{k}:{s[k]}" for k in ("platform", "cluster") if s.get(k)]
    schema: dict[str, Any] = {
        "schema-version": "v2.2",
        "dd-service": s["name"],
        "type": _DEFINITION_TYPE.get(kind, "custom"),
        "tags": tags,
    }
    if s.get("team"):
        schema["team"] = s["team"]
    if s.get("description"):
        schema["description"] = s["description"]
    if s.get("language"):
        schema["languages"] = [s["language"]]
    if s.get("tier") not in (None, ""):
        schema["tier"] = str(s["tier"])
    return {
        "id": s["name"],
        "type": "service-definition",
        "attributes": {"schema": schema, "meta": {"ingested-schema-version": "v2.2", "ingestion-source": "api"}},
    }


def relation_item(src: str, dst: str, rtype: str, protocol: str | None) -> dict[str, Any]:
    """One ``RelationResponse`` of the Software Catalog; the edge's protocol is ``subtype``."""
    def entity(name: str) -> dict[str, Any]:
        return {"kind": "service", "namespace": "default", "name": name}

    out: dict[str, Any] = {
        "id": _stable_id(src, rtype, dst),
        "type": "relation",
        "attributes": {"from": entity(src), "to": entity(dst), "type": rtype},
        "meta": {"definedBy": "apm", "source": "apm"},
    }
    if protocol:
        out["subtype"] = protocol
    return out
