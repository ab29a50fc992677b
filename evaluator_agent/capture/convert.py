"""Datadog's JSON answers -> the records of a world snapshot (``telemetry/world.py``).

Pure functions over the parsed JSON of one answer (or one item of it). Where Datadog and the
world disagree in form:

- Times: ISO 8601 strings, epoch milliseconds or epoch seconds -> epoch seconds (float, ms).
- Tags: Datadog's ``key:value`` lists -> flat string maps (the first value of a repeated key
  wins; a tag without ``:`` maps to ``""``). Nested attributes are flattened with dots
  (``{"error": {"kind": ...}}`` -> ``error.kind``), which is how queries name them.
- Logs: Datadog statuses fold into the world's five (emergency/alert/critical -> critical,
  warning/notice -> warn, ok/success -> info); ``trace_id`` / ``dd.trace_id`` attributes become
  the record's ``trace_id``.
- Spans: the duration is ``attributes.duration`` (seconds, as the REST facade and the query
  syntax give it), else ``custom.duration`` (nanoseconds, as Datadog stores it), else end -
  start; a ``parent_id`` of ``"0"`` is a root; the span's tags are ``custom`` flattened.
- Events: the id is ``evt.id`` when given; the source is ``source_type_name`` (else
  ``sourcecategory``, else a ``source:`` tag); the text is the event's ``message``.
- Monitors: the REST API gives the state and, per group with ``group_states=all``, only the
  LAST time each state was entered (``last_triggered_ts`` -> Alert, ``last_resolved_ts`` -> OK,
  ``last_nodata_ts`` -> No Data, a later ``last_notified_ts`` -> Warn). Those become the
  transitions, oldest first, each ``from`` the previous ``to``; earlier transitions and the
  values that crossed the threshold are not available through this API (``value`` is null).
  The groups' names (``service:a,env:prod`` for a multi alert) are read apart
  (:func:`monitor_groups`): the scope widens to the services they name.
- Service definitions (schema v2.x): ``dd-service`` is the name; the kind is a ``kind:`` tag
  when present, else from ``type`` (web -> service, db -> database, cache, function -> job,
  else service); platform / cluster / namespace from tags; the tier as a number (2 when not).
  The groupings the scope widens along (``application``, ``system``, ``platform``) are read
  apart (:func:`groups_of_definition`): a world ``Service`` has no field for the first two.
- Metric series (``/api/v1/query``): one record per returned series, tagged with the query's
  filter tags plus the series' group tags (``N/A`` groups dropped), on its own interval.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "edges_of_relations",
    "event_record",
    "flatten",
    "groups_of_definition",
    "incident_record",
    "log_record",
    "monitor_groups",
    "monitor_record",
    "series_records",
    "service_of_definition",
    "span_record",
    "tags_dict",
    "to_epoch",
]

KINDS = ("service", "database", "cache", "queue", "external", "job", "infrastructure", "gateway")
_TYPE_KIND = {"web": "service", "db": "database", "cache": "cache", "function": "job", "queue": "queue",
              "browser": "service", "mobile": "service", "custom": "service"}
_STATUS = {"emergency": "critical", "emerg": "critical", "alert": "critical", "critical": "critical",
           "error": "error", "err": "error", "warning": "warn", "warn": "warn", "notice": "warn",
           "info": "info", "ok": "info", "success": "info", "debug": "debug", "trace": "debug"}
_MONITOR_STATES = {"ok": "OK", "alert": "Alert", "warn": "Warn", "no data": "No Data"}
_TRUE = (True, 1, "1", "true", "True")


def to_epoch(value: Any) -> float | None:
    """ISO 8601, epoch ms or epoch seconds -> epoch seconds rounded to the millisecond."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        x = float(value)
    elif isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        try:
            x = float(text)
        except ValueError:
            iso = text[:-1] + "+00:00" if text[-1] in "zZ" else text
            try:
                dt = datetime.fromisoformat(iso)
            except ValueError:
                return None
            if dt.tzinfo is None:
                dt = dt.replace(tzinfo=UTC)
            x = dt.timestamp()
    else:
        return None
    if not math.isfinite(x):
        return None
    if x > 1e14:  # microseconds / nanoseconds
        x /= 1e6 if x < 1e17 else 1e9
    elif x > 1e11:  # milliseconds
        x /= 1000.0
    return round(x, 3)


def tags_dict(tags: Any) -> dict[str, str]:
    """``["k:v", ...]`` (or a map) -> ``{k: v}``; the first value of a key wins."""
    if isinstance(tags, dict):
        return {str(k): _text(v) for k, v in tags.items()}
    out: dict[str, str] = {}
    for t in tags or []:
        if not isinstance(t, str) or not t:
            continue
        k, sep, v = t.partition(":")
        out.setdefault(k, v if sep else "")
    return out


def flatten(obj: Any, prefix: str = "", out: dict[str, Any] | None = None, depth: int = 0) -> dict[str, Any]:
    """Nested attributes -> dotted keys (at most 8 levels; deeper objects stay whole)."""
    out = {} if out is None else out
    if isinstance(obj, dict) and (depth < 8 or not prefix):
        for k, v in obj.items():
            key = f"{prefix}.{k}" if prefix else str(k)
            if isinstance(v, dict) and v:
                flatten(v, key, out, depth + 1)
            else:
                out[key] = v
    elif prefix:
        out[prefix] = obj
    return out


def _text(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def _attrs(item: dict[str, Any]) -> dict[str, Any]:
    a = item.get("attributes")
    return a if isinstance(a, dict) else {}


# ---------------------------------------------------------------------- catalog


def _definition_name(item: dict[str, Any]) -> tuple[str | None, dict[str, Any]]:
    """A service definition's name (``dd-service``, v1's ``info.dd-service``, else its id) and schema."""
    schema = _attrs(item).get("schema") or {}
    name = schema.get("dd-service") or (schema.get("info") or {}).get("dd-service") or item.get("id")
    return (name if isinstance(name, str) and name else None), schema


def service_of_definition(item: dict[str, Any]) -> dict[str, Any] | None:
    """A ``Service`` record from one service definition (None without a name)."""
    name, schema = _definition_name(item)
    if name is None:
        return None
    tags = tags_dict(schema.get("tags") or [])
    kind = tags.get("kind") if tags.get("kind") in KINDS else _TYPE_KIND.get(str(schema.get("type") or ""), "service")
    languages = schema.get("languages") or []
    tier_raw = str(schema.get("tier") or "").strip()
    tier = int(tier_raw) if tier_raw.isdigit() else {"critical": 1, "high": 1, "medium": 2, "low": 3}.get(tier_raw.lower(), 2)
    return {
        "name": name,
        "kind": kind,
        "team": str(schema.get("team") or ""),
        "platform": tags.get("platform", ""),
        "language": str(languages[0]) if languages else "",
        "cluster": tags.get("cluster", tags.get("kube_cluster_name", "")),
        "namespace": tags.get("namespace", tags.get("kube_namespace", "")),
        "tier": tier,
        "hosts": [],
        "description": str(schema.get("description") or ""),
    }


def team_of_definition(item: dict[str, Any]) -> dict[str, str] | None:
    """A ``Team`` record (its Slack channel and on-call from the definition's contacts)."""
    schema = _attrs(item).get("schema") or {}
    team = schema.get("team")
    if not isinstance(team, str) or not team:
        return None
    slack = next((str(c.get("contact") or "") for c in schema.get("contacts") or []
                  if isinstance(c, dict) and c.get("type") == "slack"), "")
    pd = (schema.get("integrations") or {}).get("pagerduty") or {}
    oncall = str(pd.get("service-url") or "") if isinstance(pd, dict) else ""
    return {"name": team, "slack": slack, "oncall": oncall}


def groups_of_definition(item: dict[str, Any]) -> dict[str, Any] | None:
    """The groupings a service definition puts its service in, most specific first:
    ``{"service": name, "groups": [[key, value], ...]}`` with ``application`` (schema v2.1+
    ``application``, v3 ``spec.application``, else an ``application:`` tag), ``system`` (a
    ``system`` field or tag, v3 ``spec.componentOf: system:<x>``) and ``platform`` (a
    ``platform`` field or tag). None without a name or a grouping."""
    name, schema = _definition_name(item)
    if name is None:
        return None
    tags = tags_dict(schema.get("tags") or [])
    spec = schema.get("spec") if isinstance(schema.get("spec"), dict) else {}
    part_of = tags_dict([x for x in spec.get("componentOf") or [] if isinstance(x, str)])
    found = {"application": schema.get("application") or spec.get("application") or tags.get("application"),
             "system": schema.get("system") or tags.get("system") or part_of.get("system"),
             "platform": schema.get("platform") or tags.get("platform")}
    groups = [[k, v.strip()] for k, v in found.items() if isinstance(v, str) and v.strip()]
    return {"service": name, "groups": groups} if groups else None


_DEPENDS_ON, _DEPENDENCY_OF = "RelationTypeDependsOn", "RelationTypeDependencyOf"


def edges_of_relations(items: list[dict[str, Any]]) -> list[dict[str, str]]:
    """``Dependency`` records (source calls target) from Software Catalog relations."""
    out = []
    for r in items:
        a = _attrs(r)
        src = (a.get("from") or {}).get("name")
        dst = (a.get("to") or {}).get("name")
        if not src or not dst:
            continue
        proto = str(r.get("subtype") or a.get("subtype") or "http")
        if a.get("type") == _DEPENDS_ON:
            out.append({"source": src, "target": dst, "protocol": proto})
        elif a.get("type") == _DEPENDENCY_OF:
            out.append({"source": dst, "target": src, "protocol": proto})
    return out


# ---------------------------------------------------------------------- logs, spans, events


def log_record(item: dict[str, Any], service: str) -> dict[str, Any] | None:
    """A ``LogRecord`` from one v2 log (``service``: the queried one, when the log has none)."""
    a = _attrs(item)
    ts = to_epoch(a.get("timestamp"))
    if ts is None:
        return None
    attrs = flatten(a.get("attributes") or {})
    trace_id = attrs.pop("trace_id", None) or attrs.pop("dd.trace_id", None)
    attrs.pop("dd.trace_id", None)
    for k in ("service", "host", "status", "message", "timestamp"):
        attrs.pop(k, None)
    return {
        "ts": ts,
        "service": str(a.get("service") or service),
        "host": str(a.get("host") or ""),
        "status": _STATUS.get(str(a.get("status") or "info").lower(), "info"),
        "message": str(a.get("message") or ""),
        "attrs": attrs,
        "trace_id": str(trace_id) if trace_id not in (None, "") else None,
    }


def span_record(item: dict[str, Any]) -> dict[str, Any] | None:
    """A ``Span`` from one v2 span."""
    a = _attrs(item)
    inner = a.get("attributes") if isinstance(a.get("attributes"), dict) else {}
    custom = flatten(a.get("custom") or {})
    start = to_epoch(a.get("start_timestamp"))
    trace_id, span_id = a.get("trace_id"), a.get("span_id") or item.get("id")
    if start is None or not trace_id or not span_id:
        return None
    duration = inner.get("duration")
    if isinstance(duration, int | float) and not isinstance(duration, bool):
        duration = float(duration)
    elif isinstance(custom.get("duration"), int | float):
        duration = float(custom.pop("duration")) / 1e9
    else:
        end = to_epoch(a.get("end_timestamp"))
        duration = max(0.0, end - start) if end is not None else 0.0
    error = (inner.get("status") == "error" or custom.get("error") in _TRUE
             or "status:error" in (a.get("tags") or []))
    parent = a.get("parent_id")
    name = inner.get("operation_name") or custom.pop("operation_name", None) or a.get("operation_name") or ""
    return {
        "trace_id": str(trace_id),
        "span_id": str(span_id),
        "parent_id": None if parent in (None, "", "0", 0) else str(parent),
        "service": str(a.get("service") or ""),
        "name": str(name),
        "resource": str(a.get("resource_name") or ""),
        "start": start,
        "duration": duration,
        "error": bool(error),
        "tags": {k: _text(v) for k, v in custom.items()},
    }


def event_record(item: dict[str, Any]) -> dict[str, Any] | None:
    """An ``Event`` from one v2 event."""
    a = _attrs(item)
    inner = a.get("attributes") if isinstance(a.get("attributes"), dict) else {}
    ts = to_epoch(a.get("timestamp")) if a.get("timestamp") is not None else to_epoch(inner.get("timestamp"))
    evt = inner.get("evt") if isinstance(inner.get("evt"), dict) else {}
    eid = evt.get("id") or item.get("id")
    if ts is None or not eid:
        return None
    tags = tags_dict(a.get("tags") or inner.get("tags") or [])
    source = inner.get("source_type_name") or inner.get("sourcecategory") or tags.get("source") or ""
    return {
        "id": str(eid),
        "ts": ts,
        "source": str(source),
        "title": str(inner.get("title") or ""),
        "text": str(a.get("message") or inner.get("text") or ""),
        "tags": tags,
    }


# ---------------------------------------------------------------------- monitors


def monitor_record(m: dict[str, Any]) -> dict[str, Any] | None:
    """A ``Monitor`` from one v1 monitor with ``group_states=all``."""
    if not isinstance(m, dict) or m.get("id") is None:
        return None
    state = _MONITOR_STATES.get(str(m.get("overall_state") or "OK").lower(), "OK")
    last: dict[str, float] = {}
    notified = 0.0
    groups = ((m.get("state") or {}).get("groups") or {}) if isinstance(m.get("state"), dict) else {}
    for g in groups.values():
        if not isinstance(g, dict):
            continue
        for key, to in (("last_triggered_ts", "Alert"), ("last_resolved_ts", "OK"), ("last_nodata_ts", "No Data")):
            t = to_epoch(g.get(key))
            if t:
                last[to] = max(last.get(to, 0.0), t)
        notified = max(notified, to_epoch(g.get("last_notified_ts")) or 0.0)
    if notified and notified not in (last.get("Alert"), last.get("No Data")) and notified > last.get("Alert", 0.0):
        last["Warn"] = notified
    transitions = []
    prev = None
    for to, t in sorted(last.items(), key=lambda kv: (kv[1], kv[0])):
        frm = prev if prev is not None else ("OK" if to != "OK" else "Alert")
        if frm != to:
            transitions.append({"ts": t, "from": frm, "to": to, "value": None})
        prev = to
    return {
        "id": int(m["id"]),
        "name": str(m.get("name") or ""),
        "type": str(m.get("type") or "metric alert"),
        "query": str(m.get("query") or ""),
        "message": str(m.get("message") or ""),
        "tags": tags_dict(m.get("tags") or []),
        "state": state,
        "transitions": transitions,
    }


def monitor_groups(m: dict[str, Any]) -> list[str]:
    """The group names of a v1 monitor's ``state.groups`` (``service:a,env:prod``), but ``*``."""
    groups = ((m.get("state") or {}).get("groups") or {}) if isinstance(m, dict) and isinstance(m.get("state"), dict) else {}
    return sorted(str(k) for k in groups if str(k) not in ("*", "")) if isinstance(groups, dict) else []


def last_alert(monitor: dict[str, Any]) -> float | None:
    """When a converted monitor last went to Alert (else to Warn), or None."""
    for to in ("Alert", "Warn"):
        ts = [t["ts"] for t in monitor.get("transitions") or [] if t["to"] == to]
        if ts:
            return max(ts)
    return None


# ---------------------------------------------------------------------- incidents


def _field_values(fields: Any, name: str) -> list[str]:
    f = fields.get(name) if isinstance(fields, dict) else None
    value = f.get("value") if isinstance(f, dict) else None
    if isinstance(value, str):
        value = [value]
    return [str(v) for v in value or [] if isinstance(v, str | int) and str(v)]


def incident_record(body: dict[str, Any]) -> dict[str, Any] | None:
    """What a capture takes of a v2 incident: its title, when the impact started (else when
    it was detected, declared or created) and ended (resolved, else the impact's end), and the
    services and teams of its fields."""
    data = body.get("data") if isinstance(body, dict) else None
    a = _attrs(data) if isinstance(data, dict) else {}
    start = next((t for t in map(to_epoch, (a.get("customer_impact_start"), a.get("detected"), a.get("declared"),
                                             a.get("created"))) if t is not None), None)
    if start is None:
        return None
    end = next((t for t in map(to_epoch, (a.get("resolved"), a.get("customer_impact_end"))) if t is not None), None)
    return {"id": str(data.get("id") or ""), "public_id": a.get("public_id"), "title": str(a.get("title") or ""),
            "start": start, "end": end if end is not None and end > start else None,
            "services": _field_values(a.get("fields"), "services"), "teams": _field_values(a.get("fields"), "teams")}


# ---------------------------------------------------------------------- metrics


_NA = {"N/A", "n/a", ""}
_SAFE = re.compile(r"^[A-Za-z0-9_.\-/]+$")


def series_records(answer: dict[str, Any], filter_tags: dict[str, str], mtype: str) -> list[dict[str, Any]]:
    """``MetricSeries`` records from a ``/api/v1/query`` answer: the filter's tags plus each
    series' group tags; its points on its own grid (missing points are null)."""
    out = []
    for s in answer.get("series") or []:
        points = [(to_epoch(p[0]), p[1]) for p in s.get("pointlist") or [] if isinstance(p, list | tuple) and len(p) >= 2]
        points = [(t, v) for t, v in points if t is not None]
        if not points:
            continue
        tags = dict(filter_tags)
        for k, v in tags_dict(s.get("tag_set") or []).items():
            if v not in _NA:
                tags[k] = v
        interval = int(s.get("interval") or 0) or _guess_interval(points)
        out.append({"metric": str(s.get("metric") or ""), "tags": tags, "type": mtype, "interval": interval,
                    "points": [[int(round(t)), _num(v)] for t, v in points]})
    return out


def _num(v: Any) -> float | None:
    if v is None or isinstance(v, bool):
        return None
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _guess_interval(points: list[tuple[float, Any]]) -> int:
    gaps = sorted(int(round(b[0] - a[0])) for a, b in zip(points, points[1:], strict=False) if b[0] > a[0])
    return gaps[0] if gaps else 60


def series_of_points(metric: str, tags: dict[str, str], mtype: str, interval: int,
                     points: dict[int, float | None]) -> dict[str, Any] | None:
    """A ``MetricSeries`` from merged points on one grid, from its first point (null or not:
    the grid's phase is the series' start, which the tools' rollups follow) to its last value."""
    known = sorted(t for t, v in points.items() if v is not None)
    if not known:
        return None
    start, end = min(points), known[-1]
    n = (end - start) // interval + 1
    values: list[float | None] = [None] * n
    for t, v in points.items():
        if start <= t <= end and (t - start) % interval == 0:
            values[(t - start) // interval] = v
    return {"metric": metric, "tags": tags, "type": mtype, "start": int(start), "interval": int(interval),
            "values": values}


def quote(value: str) -> str:
    """A tag value as Datadog query syntax takes it (quoted unless plain)."""
    return value if _SAFE.match(value) else '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
