"""From what a capture fetched to a world snapshot and a draft label.

:func:`build_world` deduplicates (a record fetched twice, by two queries or two overlapping
chunks, is kept once), keeps what lies in the world's window, applies the global caps (in the
scope's order: seeds first), sorts everything, and validates the result as a
:class:`~evaluator_agent.telemetry.world.WorldSnapshot`, so the same pieces always give the
same bytes and the same content hash.

Topology: the scoped services and the services at the other end of their dependencies (the
latter from the catalog only, without telemetry); each service's hosts are those its logs,
spans and metrics name; hosts carry the zone and cluster their metrics are tagged with;
clusters are those the services and hosts name; teams are those of the services.

:func:`draft_label` is a ``Label``-shaped dict with ``status: draft`` and provenance
``captured`` whose task is the page (the trigger monitor and when it fired: the seed monitor,
else the seeds' monitor that last alerted in the incident window; without one, the incident
or the window itself, with ``monitor_id`` null). Its ground truth,
taxonomy and difficulty are left empty (null) for review: it does not pass the ``Label`` model
until they are filled in.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter, defaultdict
from typing import Any

from evaluator_agent.capture import convert as cv
from evaluator_agent.capture.steps import Captured
from evaluator_agent.core.clock import iso_s
from evaluator_agent.core.vocab import MONITOR_TYPES
from evaluator_agent.telemetry.world import WorldSnapshot

__all__ = ["PROMPT", "build_world", "draft_label", "world_id_of"]

PROMPT = (
    'You are on call for the production environment. The monitor "{title}"{monitor_id} fired at {at} and paged you. '
    "Investigate with the tools: find the root cause (the entity where the failure starts and its mechanism), how it "
    "propagated to the alerting service, and when it started. If nothing is actually broken, say so."
)


def world_id_of(c: Captured) -> str:
    """Stable for a capture's request: the same request, the same world id."""
    raw = json.dumps([c.options.request(), c.seeds, c.world_start, c.incident_end], sort_keys=True, default=str)
    return "w_" + hashlib.sha256(raw.encode()).hexdigest()[:12]


def _first(items: list[dict[str, Any]], key: Any) -> list[dict[str, Any]]:
    seen: set[Any] = set()
    out = []
    for x in items:
        k = key(x)
        if k not in seen:
            seen.add(k)
            out.append(x)
    return out


def _log_key(x: dict[str, Any]) -> Any:
    return (x["ts"], x["service"], x["host"], x["status"], x["message"], x["trace_id"],
            json.dumps(x["attrs"], sort_keys=True, default=str))


def _merge_series(c: Captured) -> list[dict[str, Any]]:
    groups: dict[tuple[str, tuple[tuple[str, str], ...]], dict[str, Any]] = {}
    for s in c.series:
        key = (s["metric"], tuple(sorted(s["tags"].items())))
        g = groups.setdefault(key, {"type": s["type"], "intervals": Counter(), "points": {}})
        g["intervals"][s["interval"]] += len(s["points"])
        for t, v in s["points"]:
            if c.world_start <= t <= c.incident_end and (v is not None or t not in g["points"]):
                g["points"][t] = v
    out = []
    for (metric, tags), g in groups.items():
        rec = cv.series_of_points(metric, dict(tags), g["type"], g["intervals"].most_common(1)[0][0], g["points"])
        if rec is not None:
            out.append(rec)
    return out


def _topology(c: Captured, logs: list[dict], spans: list[dict], series: list[dict]) -> dict[str, Any]:
    in_scope = set(c.scope)
    neighbours = sorted({n for e in c.edges for n in (e["source"], e["target"])} - in_scope)
    hosts_of: dict[str, set[str]] = defaultdict(set)
    for x in logs:
        if x["host"]:
            hosts_of[x["service"]].add(x["host"])
    for x in spans:
        if x["tags"].get("host"):
            hosts_of[x["service"]].add(x["tags"]["host"])
    host_info: dict[str, dict[str, str]] = {}
    for s in series:
        h = s["tags"].get("host")
        if not h:
            continue
        if s["tags"].get("service"):
            hosts_of[s["tags"]["service"]].add(h)
        info = host_info.setdefault(h, {"name": h, "cluster": "", "zone": "", "instance_type": ""})
        info["cluster"] = info["cluster"] or s["tags"].get("kube_cluster_name", "")
        info["zone"] = info["zone"] or s["tags"].get("availability-zone", "")
        info["instance_type"] = info["instance_type"] or s["tags"].get("instance-type", "")
    services = []
    for name in [*c.scope, *neighbours]:
        rec = dict(c.catalog.get(name) or {"name": name, "kind": "service"})
        rec["hosts"] = sorted(hosts_of.get(name, ()))
        services.append(rec)
    for hs in hosts_of.values():
        for h in hs:
            host_info.setdefault(h, {"name": h, "cluster": "", "zone": "", "instance_type": ""})
    deps = sorted(_first(c.edges, lambda e: (e["source"], e["target"])), key=lambda e: (e["source"], e["target"]))
    teams = sorted({s.get("team") or "" for s in services} - {""})
    platform_of = {s.get("cluster"): s.get("platform") or "kubernetes" for s in services if s.get("cluster")}
    zones: dict[str, set[str]] = defaultdict(set)
    for h in host_info.values():
        if h["cluster"] and h["zone"]:
            zones[h["cluster"]].add(h["zone"])
    clusters = sorted(set(platform_of) | {h["cluster"] for h in host_info.values() if h["cluster"]})
    return {
        "services": services,
        "dependencies": deps,
        "teams": [c.teams.get(t) or {"name": t} for t in teams],
        "clusters": [{"name": k, "platform": platform_of.get(k, "kubernetes"), "zones": sorted(zones.get(k, ()))}
                     for k in clusters],
        "hosts": [host_info[h] for h in sorted(host_info)],
    }


def build_world(c: Captured) -> tuple[WorldSnapshot, dict[str, int]]:
    """The snapshot of a capture, and how many records of each kind were dropped by caps."""
    o = c.options
    t0, t1 = c.world_start, c.incident_end
    dropped: dict[str, int] = {}

    def cap(items: list[dict[str, Any]], n: int, what: str) -> list[dict[str, Any]]:
        if len(items) > n:
            dropped[what] = len(items) - n
        return items[:n]

    logs = [x for x in _first(c.logs, _log_key) if t0 <= x["ts"] <= t1]
    spans = _first(c.spans, lambda x: (x["trace_id"], x["span_id"]))
    traced = {x["trace_id"] for x in spans if x["error"]}
    spans = cap([x for x in spans if x["trace_id"] in traced] + [x for x in spans if x["trace_id"] not in traced],
                o.max_spans, "spans")
    events = cap([x for x in _first(c.events, lambda x: x["id"]) if t0 <= x["ts"] <= t1], o.max_total_events, "events")
    monitors = cap(_first(c.monitors, lambda x: x["id"]), o.max_monitors, "monitors")
    series = cap(_merge_series(c), o.max_series, "series")
    envs = Counter(x["attrs"].get("env") for x in logs if isinstance(x["attrs"].get("env"), str))
    world = {
        "schema_version": 1,
        "world_id": world_id_of(c),
        "env": o.env or (envs.most_common(1)[0][0] if envs else "prod"),
        "start": int(t0),
        "end": int(t1),
        "topology": _topology(c, logs, spans, series),
        "metrics": sorted(series, key=lambda s: (s["metric"], sorted(s["tags"].items()))),
        "logs": sorted(logs, key=lambda x: (x["ts"], x["service"], x["host"], x["message"])),
        "spans": sorted(spans, key=lambda x: (x["start"], x["trace_id"], x["span_id"])),
        "events": sorted(events, key=lambda x: (x["ts"], x["id"])),
        "monitors": sorted(monitors, key=lambda x: x["id"]),
    }
    return WorldSnapshot.model_validate(world), dropped


def _trigger(c: Captured) -> dict[str, Any] | None:
    """The page: the seed monitor, else the seeds' monitor that alerted last in the incident window."""
    if c.trigger is not None:
        return c.trigger
    seeds = set(c.seeds)
    best = None
    for m in c.monitors:
        fired = cv.last_alert(m)
        if fired is None or not c.incident_start <= fired <= c.incident_end or m["tags"].get("service") not in seeds:
            continue
        if best is None or fired > best[0]:
            best = (fired, m)
    return best[1] if best else None


def draft_label(world: WorldSnapshot, digest: str, c: Captured, source: str = "datadog") -> dict[str, Any]:
    """A draft label for a captured world: its task is the page; everything a reviewer must
    decide (ground truth, taxonomy, difficulty tier) is left null or empty."""
    trig = _trigger(c)
    fired = cv.last_alert(trig) if trig is not None else None
    inc = c.incident
    at = iso_s(fired if fired is not None else (inc["start"] if inc else c.incident_start))
    if trig is not None:
        title, mid = trig["name"], int(trig["id"])
        prompt = PROMPT.format(title=title, monitor_id=f" (id {mid})", at=at)
    else:
        title, mid = (inc["title"] if inc and inc["title"] else f"Incident on {', '.join(c.seeds)}"), None
        prompt = (f'You are on call for the production environment. The incident "{title}" on {", ".join(c.seeds)} '
                  f"started at {at} and paged you. Investigate with the tools: find the root cause (the entity where "
                  "the failure starts and its mechanism), how it propagated, and when it started. If nothing is "
                  "actually broken, say so.")
    kinds = [k for k, present in (("metrics", world.metrics), ("logs", world.logs), ("traces", world.spans),
                                  ("events", world.events), ("monitors", world.monitors),
                                  ("topology", world.topology.dependencies)) if present]
    lid = "lbl_" + hashlib.sha256(f"{digest}|{mid}|{at}".encode()).hexdigest()[:10]
    seed = (f"monitor {c.options.monitor_id}" if c.options.monitor_id is not None else
            f"incident {c.options.incident_id}" if c.options.incident_id is not None else
            f"services {', '.join(c.seeds)}")
    return {
        "id": lid,
        "schema_version": 1,
        "status": "draft",
        "provenance": {"kind": "captured", "source": f"{source} capture from {seed}; world {world.world_id}, "
                       f"{len(c.scope)} services in scope", "validated_by": None, "postmortem": None},
        "split": "public",
        "family": None,
        "taxonomy": {"segment": None, "technologies": [], "problem_category": None, "mechanism": None,
                     "system_level": None, "failure_pattern": None,
                     "monitor_type": trig["type"] if trig is not None and trig["type"] in MONITOR_TYPES else None,
                     "tags": ["captured"]},
        "difficulty": {"tier": None, "factors": {"chain_length": None, "red_herrings": None,
                                                 "services": len(world.topology.services), "signal_kinds": kinds,
                                                 "time_offset_s": 0}, "empirical": None},
        "task": {"trigger": {"monitor_id": mid, "title": title, "fired_at": at}, "prompt": prompt,
                 "budget": {"max_turns": 30, "timeout_s": 300.0}},
        "world": {"snapshot": digest, "snapshot_noise_free": None,
                  "incident_window": {"start": iso_s(c.incident_start), "end": iso_s(c.incident_end)},
                  "baseline_window": {"start": iso_s(c.world_start), "end": iso_s(c.incident_start)}},
        "ground_truth": {"no_fault": None, "root_causes": [], "mechanism": None, "triggering_change": None,
                         "onset": None, "onset_tolerance_s": 300, "causal_chain": [], "first_symptom": None,
                         "key_evidence": [], "partial_credit": [], "must_not_blame": []},
        "rubric": {},
    }
