"""The ``methodical`` policy: a real investigation, done the way a careful on-call engineer would.

1. Orient: alerting monitors, the event stream, error logs per service as a timeseries, the
   service catalog, and the paged service's downstream dependencies (depth 4).
2. For the paged service and each dependency (most suspicious first, plus the datastores
   and externals that erroring candidates call): its direct dependencies (for the causal
   chain), its metric names, its error and warning logs around the page, and the
   timeseries of its most telling metrics.
3. Decide. Counts are read as rates (errors per request, cache misses per lookup), load
   signals (hits, CPU) never start a fault, and each series is checked for a sustained
   departure from its own baseline that is still going on at the page. A suspect's story
   starts at its first anomaly, or at a change of its own (deploy, config, flag...) a few
   minutes before it or before a silent dependency's anomaly. The culprit is the earliest
   story; near-ties go to the one with a change, then to the deeper one. While the culprit
   has no change of its own and its error logs name a dependency failing as early, the
   blame walks down to it (and to a silent callee for an expired certificate or a failing
   partner). The mechanism comes from keywords in its logs, events and anomalous metric
   names, else from the kind of change and anomaly. With no error rate moving on the paged
   service and a benign event (campaign, batch...) explaining the page: "no fault".

Budget: at most ``max_calls_per_turn`` calls per reply, and the diagnosis goes out when two
replies remain whatever has been gathered by then.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from .conversation import Conversation, iso, parse_time
from .policies import Policy, allowed_mechanism, paging_monitor
from .signals import (
    Anomaly,
    as_dict,
    as_list,
    call,
    detect_anomaly,
    mechanism_scores,
    metric_kind,
    metric_priority,
    monitor_service,
    tag_value,
)

LOOKBACK = timedelta(hours=3)
LOGS_LOOKBACK = timedelta(minutes=30)
MAX_DEPTH = 4
MAX_CANDIDATES = 10
MAX_EXTRA = 6
METRICS_PER_SERVICE = 5
WARN_LOG_CANDIDATES = 6
TIE_S = 180.0
MIN_PEAK = 2.0  # non-error anomalies must reach twice the threshold (drift is not a fault)
CHANGE_LEAD_S = 600.0  # a change this close before an anomaly starts the suspect's story
ACTIVE_BEFORE_PAGE_S = 900.0
CHANGE_BEFORE_S = 3600.0  # a change this long before an anomaly may have triggered it
CHANGE_AFTER_S = 120.0
CALLEE_SIDE = {"certificate_expiry", "third_party_outage"}
LEAF_KINDS = {"database", "cache", "queue", "external"}
CHANGE_SOURCES = {
    "deploy",
    "deployment",
    "config",
    "feature_flag",
    "flag",
    "terraform",
    "migration",
    "database",
    "rollout",
}
CHANGE_WORDS = (
    "deploy",
    "rollout",
    "rolled out",
    "config",
    "flag",
    "migration",
    "restart",
    "upgrade",
    "terraform",
    "certificate",
)
BENIGN_WORDS = (
    "cron",
    "campaign",
    "newsletter",
    "marketing",
    "batch",
    "load test",
    "loadtest",
    "scheduled",
    "backfill",
    "promotion",
    "email blast",
    "report job",
)
COUNT_TYPES = {"count", "rate"}


@dataclass
class Finding:
    """One anomalous series of one service."""

    service: str
    signal: str  # metric name, or "error logs"
    kind: str  # errors | latency | traffic | saturation | other
    anomaly: Anomaly
    call_id: str


@dataclass
class Suspect:
    service: str
    depth: int
    findings: list[Finding] = field(default_factory=list)
    changes: list[tuple[dict[str, Any], str]] = field(default_factory=list)  # (event, call id)
    #: when this suspect's story starts, and the change that starts it (set by ``Methodical.stories``)
    start: float | None = None
    trigger: tuple[dict[str, Any], str] | None = None

    @property
    def causal_findings(self) -> list[Finding]:
        """Findings that can start a fault: not traffic, and clear of drift unless errors."""
        return [
            f
            for f in self.findings
            if f.kind != "traffic" and (f.kind == "errors" or f.anomaly.peak >= MIN_PEAK)
        ]

    @property
    def onset(self) -> float | None:
        fs = self.causal_findings
        return min(f.anomaly.onset for f in fs) if fs else None

    @property
    def failure_onset(self) -> float | None:
        """When it started failing: first errors or latency, else first causal anomaly."""
        failing = [f for f in self.causal_findings if f.kind in ("errors", "latency")]
        fs = failing or self.causal_findings
        return min(f.anomaly.onset for f in fs) if fs else None

    def change_near_onset(self) -> tuple[dict[str, Any], str] | None:
        onset = self.onset
        if onset is None:
            return None
        near = [
            (e, cid)
            for e, cid in self.changes
            if onset - CHANGE_BEFORE_S <= _event_ts(e) <= onset + CHANGE_AFTER_S
        ]
        return max(near, key=lambda x: _event_ts(x[0])) if near else None


def _denominators(metric: str) -> list[str]:
    """Series that turn a count into a rate: ``trace.X.errors`` per ``trace.X.hits``, misses per lookup."""
    if metric.startswith("trace.") and metric.endswith(".errors"):
        return [metric[: -len(".errors")] + ".hits"]
    if metric.endswith("keyspace_misses"):
        return [metric[: -len("misses")] + "hits", metric]
    return []


def _points(pointlist: Any) -> dict[float, float]:
    out = {}
    for p in as_list(pointlist):
        if isinstance(p, list | tuple) and len(p) >= 2 and p[0] is not None and p[1] is not None:
            try:
                out[float(p[0])] = float(p[1])
            except (TypeError, ValueError):
                continue
    return out


def _typical(dens: list[dict[float, float]]) -> float:
    """Median of the summed denominators (at least 1): scales absolute floors to rates."""
    times = set.intersection(*(set(d) for d in dens)) if dens else set()
    sums = sorted(sum(d[t] for d in dens) for t in times)
    return max(1.0, sums[len(sums) // 2]) if sums else 1.0


def _ratio(num: dict[float, float], dens: list[dict[float, float]]) -> dict[float, float]:
    """num / sum(dens) where every series has a point and the denominator is not zero."""
    out = {}
    for t, v in num.items():
        parts = [d.get(t) for d in dens]
        if any(x is None for x in parts):
            continue
        total = sum(x for x in parts if x is not None)
        if total > 0:
            out[t] = v / total
    return out


def _event_ts(event: dict[str, Any]) -> float:
    t = parse_time(event.get("ts") if event.get("ts") is not None else event.get("timestamp"))
    return t.timestamp() if t else 0.0


def _event_text(event: dict[str, Any]) -> str:
    tags = event.get("tags")
    tag_text = (
        " ".join(f"{k}:{v}" for k, v in tags.items())
        if isinstance(tags, dict)
        else " ".join(map(str, as_list(tags)))
    )
    return " ".join(str(event.get(k) or "") for k in ("source", "title", "text")) + " " + tag_text


def _mentions(text: str, service: str) -> bool:
    return re.search(rf"(?<![A-Za-z0-9_-]){re.escape(service)}(?![A-Za-z0-9_-])", text) is not None


def _is_change(event: dict[str, Any]) -> bool:
    source = str(event.get("source") or "").lower()
    if source in CHANGE_SOURCES:
        return True
    title = (str(event.get("title") or "") + " " + str(event.get("text") or "")).lower()
    return any(w in title for w in CHANGE_WORDS)


def _is_benign(event: dict[str, Any]) -> bool:
    if str(event.get("source") or "").lower() in CHANGE_SOURCES:
        return False
    text = _event_text(event).lower()
    return any(w in text for w in BENIGN_WORDS)


class Methodical(Policy):
    name = "methodical"
    description = (
        "Follows the paged service's dependencies, times every anomaly, and blames the earliest one "
        "with a change event before it; answers 'no fault' for benign pages."
    )
    reserve = 2

    # ---- the calls, each a pure function of the briefing and earlier answers

    def _window(self, conv: Conversation) -> tuple[str, str]:
        end = max(conv.now, conv.fired_at)
        return iso(conv.fired_at - LOOKBACK), iso(end)

    def _orient(self, conv: Conversation) -> dict[str, dict[str, Any]]:
        start, end = self._window(conv)
        return {
            "monitors": call("get_monitors", {"query": "status:alert"}, "monitors"),
            "events": call("get_events", {"from": start, "to": end, "limit": 500}, "events"),
            "errlogs": call(
                "aggregate_logs",
                {
                    "query": "status:error",
                    "from": start,
                    "to": end,
                    "group_by": ["service"],
                    "interval": 60,
                    "limit": 500,
                },
                "errlogs",
            ),
            "services": call("list_services", {"limit": 500}, "services"),
        }

    def _deps(self, service: str, depth: int) -> dict[str, Any]:
        args = {"service": service, "direction": "downstream", "depth": depth}
        return call(
            "get_service_dependencies", args, f"deps.{service}" if depth > 1 else f"edges.{service}"
        )

    def _list_metrics(self, service: str) -> dict[str, Any]:
        return call(
            "list_metrics", {"query": f"service:{service}", "limit": 200}, f"metrics.{service}"
        )

    def _logs(self, conv: Conversation, service: str, status: str) -> dict[str, Any]:
        # the newest lines around the page: what is failing now, not last hour's noise
        _, end = self._window(conv)
        args = {
            "query": f"service:{service} status:{status}",
            "from": iso(conv.fired_at - LOGS_LOOKBACK),
            "to": end,
            "limit": 50,
        }
        return call("search_logs", args, f"{status}.{service}")

    def _metric_queries(self, conv: Conversation, service: str) -> list[tuple[str, dict[str, Any]]]:
        content = as_dict(conv.content(self._list_metrics(service)["id"]))
        seen: dict[str, str] = {}
        for m in as_list(content.get("metrics")):
            m = as_dict(m)
            name = str(m.get("metric") or "")
            if name and name not in seen:
                seen[name] = str(m.get("type") or "gauge")
        chosen = sorted(seen, key=lambda n: (metric_priority(n), n))[:METRICS_PER_SERVICE]
        # the denominators that turn counts into rates: errors per hit, misses per lookup
        for name in list(chosen):
            for partner in _denominators(name):
                if partner in seen and partner not in chosen:
                    chosen.append(partner)
        start, end = self._window(conv)
        out = []
        for name in chosen:
            agg = (
                "sum"
                if seen[name] in COUNT_TYPES or metric_kind(name) in ("errors", "traffic")
                else "avg"
            )
            q = f"{agg}:{name}{{service:{service}}}"
            out.append(
                (
                    name,
                    call(
                        "query_metrics",
                        {"query": q, "from": start, "to": end},
                        f"q.{service}.{name}",
                    ),
                )
            )
        return out

    # ---- what is known

    def symptom(self, conv: Conversation) -> str | None:
        svc = monitor_service(conv.monitor)
        if svc:
            return svc
        calls = self._orient(conv)
        monitors = as_list(as_dict(conv.content(calls["monitors"]["id"])).get("monitors"))
        svc = monitor_service(paging_monitor(conv, monitors))
        if svc or not conv.issued(calls["monitors"]["id"]):
            return svc
        # no usable monitor: the service whose error logs departed most
        best = None
        for s, a in self._error_log_anomalies(conv).items():
            if best is None or a.peak > best[1]:
                best = (s, a.peak)
        return best[0] if best else None

    def _service_kinds(self, conv: Conversation) -> dict[str, str]:
        content = as_dict(conv.content(self._orient(conv)["services"]["id"]))
        return {
            str(s.get("name")): str(s.get("kind") or "service")
            for s in map(as_dict, as_list(content.get("services")))
            if s.get("name")
        }

    def _active_after(self, conv: Conversation) -> float:
        """An anomaly that paged is still going on a little before the page."""
        return conv.fired_at.timestamp() - ACTIVE_BEFORE_PAGE_S

    def _baseline_end(self, conv: Conversation, points: Any) -> float:
        ts = [
            float(p[0])
            for p in as_list(points)
            if isinstance(p, list | tuple) and p and p[0] is not None
        ]
        if not ts:
            return conv.fired_at.timestamp()
        first, last = min(ts), max(ts)
        return min(first + 0.3 * (last - first), conv.fired_at.timestamp() - 600)

    def _error_log_anomalies(self, conv: Conversation) -> dict[str, Anomaly]:
        if "errlog_anomalies" in conv.memo:
            return conv.memo["errlog_anomalies"]
        content = as_dict(conv.content(self._orient(conv)["errlogs"]["id"]))
        out = {}
        for b in map(as_dict, as_list(content.get("buckets"))):
            svc = as_dict(b.get("by")).get("service")
            series = b.get("series")
            if not svc or not series:
                continue
            a = detect_anomaly(
                series,
                self._baseline_end(conv, series),
                min_abs=2,
                active_after=self._active_after(conv),
            )
            if a and a.direction > 0:
                out[str(svc)] = a
        conv.memo["errlog_anomalies"] = out
        return out

    def _events(self, conv: Conversation) -> list[dict[str, Any]]:
        content = as_dict(conv.content(self._orient(conv)["events"]["id"]))
        return [e for e in map(as_dict, as_list(content.get("events"))) if e]

    def _events_of(self, conv: Conversation, service: str) -> list[dict[str, Any]]:
        memo = conv.memo.setdefault("events_of", {})
        if service not in memo:
            # by the service tag; the prose only for events that have none (a namespace
            # tag such as kube_namespace:catalog is not the catalog service)
            memo[service] = [
                e
                for e in self._events(conv)
                if tag_value(e.get("tags"), "service") == service
                or (
                    tag_value(e.get("tags"), "service") is None
                    and _mentions(f"{e.get('title') or ''} {e.get('text') or ''}", service)
                )
            ]
        return memo[service]

    def _depths(self, conv: Conversation, symptom: str) -> dict[str, int] | None:
        deps_call = self._deps(symptom, MAX_DEPTH)
        if deps_call["id"] not in conv.results:
            return None
        depth = {symptom: 0}
        for d in map(as_dict, as_list(as_dict(conv.content(deps_call["id"])).get("downstream"))):
            name = d.get("service")
            if name and str(name) not in depth:
                try:
                    depth[str(name)] = max(1, int(float(d.get("depth") or 1)))
                except (TypeError, ValueError):
                    depth[str(name)] = 1
        return depth

    def _callees(self, conv: Conversation, service: str, symptom: str) -> list[str]:
        """Direct dependencies of a service, when known."""
        if service == symptom:
            call_id = self._deps(symptom, MAX_DEPTH)["id"]
            entries = as_list(as_dict(conv.content(call_id)).get("downstream"))
            return sorted(
                str(d["service"])
                for d in map(as_dict, entries)
                if d.get("service") and str(d.get("depth", 1)) in ("1", "1.0")
            )
        entries = as_list(as_dict(conv.content(self._deps(service, 1)["id"])).get("downstream"))
        return sorted(str(d["service"]) for d in map(as_dict, entries) if d.get("service"))

    def candidates(self, conv: Conversation) -> list[tuple[str, int]] | None:
        """(service, depth) to examine, most suspicious first; None until the graph is known.

        The paged service, then its dependencies with erroring logs or a change event, then
        the nearest ones; plus, once their own dependencies are known, the databases, caches,
        queues and externals that erroring candidates call: those fail silently and show up
        in their callers' logs.
        """
        if "candidates" in conv.memo:
            return conv.memo["candidates"]
        symptom = self.symptom(conv)
        depth = self._depths(conv, symptom) if symptom else None
        if not symptom or depth is None:
            conv.memo["candidates"] = None
            return None
        erroring = self._error_log_anomalies(conv)
        changed = {s for s in depth if any(_is_change(e) for e in self._events_of(conv, s))}

        def key(s: str) -> tuple[int, int, int, str]:
            suspicion = (2 if s in erroring else 0) + (1 if s in changed else 0)
            return (0 if s == symptom else 1, -suspicion, depth[s], s)

        chosen = sorted(depth, key=key)[:MAX_CANDIDATES]
        kinds = self._service_kinds(conv)
        for s in list(chosen):
            if s not in erroring:
                continue
            for callee in self._callees(conv, s, symptom):
                if len(chosen) >= MAX_CANDIDATES + MAX_EXTRA:
                    break
                if callee in depth and callee not in chosen and kinds.get(callee) in LEAF_KINDS:
                    chosen.append(callee)
        out = [(s, depth[s]) for s in chosen]
        conv.memo["candidates"] = out
        return out

    # ---- the plan

    def wanted(self, conv: Conversation) -> list[dict[str, Any]]:
        calls = list(self._orient(conv).values())
        symptom = self.symptom(conv)
        if symptom:
            calls.append(self._deps(symptom, MAX_DEPTH))
        cands = self.candidates(conv)
        if not cands:
            return calls
        kinds = self._service_kinds(conv)
        for s, d in cands:
            calls.append(self._list_metrics(s))
            if 0 < d < MAX_DEPTH and kinds.get(s, "service") not in LEAF_KINDS:
                calls.append(self._deps(s, 1))
        calls += [self._logs(conv, s, "error") for s, _ in cands]
        calls += [self._logs(conv, s, "warn") for s, _ in cands[:WARN_LOG_CANDIDATES]]
        for s, _ in cands:
            if conv.issued(self._list_metrics(s)["id"]):
                calls += [c for _, c in self._metric_queries(conv, s)]
        return calls

    # ---- the verdict

    def _edges(
        self, conv: Conversation, symptom: str, cands: list[tuple[str, int]]
    ) -> dict[str, set[str]]:
        """caller -> callees, as far as the graph calls made so far tell."""
        return {s: set(self._callees(conv, s, symptom)) for s, _ in cands}

    def _path(self, edges: dict[str, set[str]], symptom: str, culprit: str) -> list[str]:
        """Services from the culprit up to the symptom."""
        if culprit == symptom:
            return [culprit]
        prev: dict[str, str] = {}
        queue = deque([symptom])
        seen = {symptom}
        while queue:
            node = queue.popleft()
            for nxt in sorted(edges.get(node, ())):
                if nxt not in seen:
                    seen.add(nxt)
                    prev[nxt] = node
                    queue.append(nxt)
        if culprit not in prev:
            return [culprit, symptom]  # graph incomplete: the direct edge is the best we know
        path = [culprit]
        while path[-1] != symptom:
            path.append(prev[path[-1]])
        return path

    def suspects(self, conv: Conversation, cands: list[tuple[str, int]]) -> dict[str, Suspect]:
        """Every candidate with its anomalies, counts read as rates where the data allows.

        Errors are judged per request (``trace.X.errors / trace.X.hits``, error logs per
        hit) and cache misses per lookup: a benign traffic spike raises the counts, not
        the ratios.
        """
        orient = self._orient(conv)
        content = as_dict(conv.content(orient["errlogs"]["id"]))
        errlog_series = {
            str(as_dict(b.get("by")).get("service")): b.get("series")
            for b in map(as_dict, as_list(content.get("buckets")))
            if b.get("series")
        }
        out: dict[str, Suspect] = {}
        for s, d in cands:
            sus = Suspect(s, d)
            series: dict[str, tuple[dict[float, float], str]] = {}
            for metric, c in self._metric_queries(conv, s):
                for one in map(as_dict, as_list(as_dict(conv.content(c["id"])).get("series"))):
                    pts = _points(one.get("pointlist"))
                    if pts:
                        merged = series.setdefault(metric, ({}, c["id"]))[0]
                        for t, v in pts.items():
                            merged[t] = merged.get(t, 0.0) + v
            hits_total: dict[float, float] = {}
            for metric, (pts, _) in series.items():
                if metric.startswith("trace.") and metric.endswith(".hits"):
                    for t, v in pts.items():
                        hits_total[t] = hits_total.get(t, 0.0) + v
            for metric, (pts, call_id) in series.items():
                kind = metric_kind(metric)
                values, signal = pts, metric
                min_abs = 1.0 if kind == "errors" else 0.0
                denominators = [series[p][0] for p in _denominators(metric) if p in series]
                if denominators:
                    values = _ratio(pts, denominators)
                    signal = f"{metric} per {'request' if kind == 'errors' else 'lookup'}"
                    min_abs /= _typical(denominators)
                self._add_finding(conv, sus, signal, kind, values, call_id, min_abs=min_abs)
            if s in errlog_series:
                pts = _points(errlog_series[s])
                if hits_total:
                    self._add_finding(
                        conv,
                        sus,
                        "error logs per request",
                        "errors",
                        _ratio(pts, [hits_total]),
                        orient["errlogs"]["id"],
                        min_abs=2 / _typical([hits_total]),
                    )
                else:
                    self._add_finding(
                        conv, sus, "error logs", "errors", pts, orient["errlogs"]["id"], min_abs=2
                    )
            sus.changes = [
                (e, orient["events"]["id"]) for e in self._events_of(conv, s) if _is_change(e)
            ]
            out[s] = sus
        return out

    def _add_finding(
        self,
        conv: Conversation,
        sus: Suspect,
        signal: str,
        kind: str,
        values: dict[float, float],
        call_id: str,
        min_abs: float = 0.0,
    ) -> None:
        pts = sorted(values.items())
        a = detect_anomaly(
            pts,
            self._baseline_end(conv, pts),
            min_abs=min_abs,
            active_after=self._active_after(conv),
        )
        if a and not (kind == "errors" and a.direction < 0):
            sus.findings.append(Finding(sus.service, signal, kind, a, call_id))

    def stories(self, suspects: dict[str, Suspect], edges: dict[str, set[str]]) -> None:
        """Set each suspect's story start: its first anomaly, or a change of its own minutes
        before that anomaly or before an anomaly of a direct dependency that had no change
        of its own (a deploy that drains a database's connections starts the incident
        before the database shows it)."""
        for name, sus in suspects.items():
            sus.start, sus.trigger = sus.onset, None
            for event, call_id in sus.changes:
                tc = _event_ts(event)
                followers = [sus] + [suspects[c] for c in edges.get(name, ()) if c in suspects]
                for f in followers:
                    if f.onset is None or not tc <= f.onset <= tc + CHANGE_LEAD_S:
                        continue
                    if f is not sus and any(tc < _event_ts(e) <= f.onset for e, _ in f.changes):
                        continue  # the dependency changed too: its own story
                    if sus.start is None or tc < sus.start or sus.trigger is None:
                        sus.start, sus.trigger = min(tc, sus.start or tc), (event, call_id)

    def pick(self, suspects: dict[str, Suspect]) -> list[Suspect]:
        """Suspects with a story, most likely culprit first.

        Earliest story first; near-ties go to a suspect whose story starts with a change,
        then to the deeper one (causes live downstream).
        """
        timed = [s for s in suspects.values() if s.start is not None]
        if not timed:
            return []
        earliest = min(s.start for s in timed if s.start is not None)

        def key(s: Suspect) -> tuple[int, int, int, float, str]:
            start = s.start if s.start is not None else earliest
            tied = 0 if start <= earliest + TIE_S else 1
            return (tied, 0 if s.trigger else 1, -s.depth, start, s.service)

        return sorted(timed, key=key)

    def follow_errors(
        self,
        conv: Conversation,
        suspects: dict[str, Suspect],
        culprit: Suspect,
        edges: dict[str, set[str]],
    ) -> Suspect:
        """Walk down while the suspect's errors name a dependency that fails as early.

        When everything breaks in the same minute, timing cannot order the chain, but the
        error messages can: a caller's logs name the callee that fails it. A suspect whose
        own change starts its story is not walked past: its deploy explains the callee.
        """
        seen = {culprit.service}
        while culprit.trigger is None and culprit.start is not None and len(seen) <= MAX_DEPTH + 1:
            callee = self._blamed_callee(conv, culprit.service, edges)
            nxt = suspects.get(callee or "")
            if (
                nxt is None
                or nxt.service in seen
                or nxt.start is None
                or nxt.start > culprit.start + TIE_S
            ):
                break
            culprit = nxt
            seen.add(nxt.service)
        return culprit

    def _blamed_callee(
        self, conv: Conversation, service: str, edges: dict[str, set[str]]
    ) -> str | None:
        """The direct dependency that most of a service's error logs name, if any."""
        counts: dict[str, int] = {}
        content = as_dict(conv.content(self._logs(conv, service, "error")["id"]))
        callees = sorted(edges.get(service, ()))
        for entry in map(as_dict, as_list(content.get("logs"))):
            attrs = as_dict(entry.get("attributes"))
            text = " ".join(
                str(x or "")
                for x in (
                    entry.get("message"),
                    attrs.get("peer.service"),
                    attrs.get("peer.hostname"),
                )
            ).lower()
            for callee in callees:
                stem = re.sub(r"[-_](api|service|svc)$", "", callee).lower()
                if _mentions(text, callee.lower()) or _mentions(text, stem):
                    counts[callee] = counts.get(callee, 0) + 1
        if not counts:
            return None
        return max(sorted(counts), key=lambda c: counts[c])

    def _texts(self, conv: Conversation, sus: Suspect) -> tuple[list[str], list[str]]:
        """(log messages, other texts: events and anomalous metric names) about one suspect."""
        logs = []
        for status in ("error", "warn"):
            content = as_dict(conv.content(self._logs(conv, sus.service, status)["id"]))
            logs += [str(as_dict(x).get("message") or "") for x in as_list(content.get("logs"))]
        onset = sus.onset or conv.fired_at.timestamp()
        events = [
            _event_text(e)
            for e in self._events_of(conv, sus.service)
            if onset - 2 * CHANGE_BEFORE_S <= _event_ts(e) <= conv.now.timestamp()
        ]
        return logs, events + [f.signal for f in sus.findings if f.kind != "traffic"]

    def mechanism(self, conv: Conversation, sus: Suspect) -> str:
        logs, others = self._texts(conv, sus)
        scores = mechanism_scores(logs + others)
        allowed = conv.mechanisms
        if allowed:
            scores = {k: v for k, v in scores.items() if k in allowed}
        keyword = max(scores, key=lambda k: scores[k]) if scores else None
        if keyword and scores[keyword] >= 2:
            return keyword
        kinds = {f.kind for f in sus.causal_findings}
        change = sus.trigger or sus.change_near_onset()
        if change:
            text = _event_text(change[0]).lower()
            source = str(change[0].get("source") or "").lower()
            if "flag" in text:
                return "feature_flag"
            if "migration" in text or source == "migration":
                return "slow_query_migration"
            if source == "config" or "configmap" in text:
                return "crashloop_bad_config"
            if "errors" not in kinds and "latency" in kinds:
                return "latency_regression"
            if "errors" not in kinds and any("memory" in f.signal for f in sus.findings):
                return "oom_killed"
            return keyword or "bad_release"
        if keyword:
            return keyword
        if any("memory" in f.signal or "heap" in f.signal for f in sus.findings):
            return "memory_leak"
        if "latency" in kinds and "errors" not in kinds:
            return "latency_regression"
        return "bad_release"

    def benign(
        self,
        conv: Conversation,
        suspects: dict[str, Suspect],
        ranked: list[Suspect],
        symptom: str | None,
    ) -> list[dict[str, Any]]:
        """Benign events that explain the page, when nothing says it is a fault.

        A fault shows as errors on the paged service or as a change right before the first
        anomaly; a benign page (campaign, batch, load test...) has neither, its traffic
        rose, and the benign event falls shortly before the anomalies start (or before the
        page, if nothing moved). Hourly cron jobs exist in every world: without the traffic
        rise a nearby one proves nothing.
        """
        sym = suspects.get(symptom or "")
        if sym and any(f.kind == "errors" for f in sym.findings):
            return []
        if (
            ranked
            and sym
            and not any(f.kind == "traffic" and f.anomaly.direction > 0 for f in sym.findings)
        ):
            return []
        if ranked and ranked[0].trigger:
            return []
        start = min(
            (s.onset for s in ranked if s.onset is not None), default=conv.fired_at.timestamp()
        )
        return [
            e
            for e in self._events(conv)
            if _is_benign(e)
            and start - 3600 <= _event_ts(e) <= max(start, conv.fired_at.timestamp()) + 300
        ]

    def _no_fault(self, conv: Conversation, benign: list[dict[str, Any]]) -> dict[str, Any]:
        orient = self._orient(conv)
        evidence = [
            {
                "tool_call_id": orient["errlogs"]["id"],
                "description": "the paged service's error rate stayed at its baseline",
            }
        ]
        why = "nothing in the paged service or its dependencies departed from its baseline"
        if benign:
            e = max(benign, key=_event_ts)
            evidence.append(
                {
                    "tool_call_id": orient["events"]["id"],
                    "description": f"benign event at {iso(_event_ts(e))}: {e.get('title')}",
                }
            )
            why = f"error rates stayed normal and the page is explained by {e.get('title')!r}"
        return {
            "no_fault": True,
            "root_causes": [],
            "causal_chain": [],
            "evidence": evidence,
            "summary": f"No fault: {why}.",
        }

    def diagnose(self, conv: Conversation) -> dict[str, Any]:
        symptom = self.symptom(conv)
        cands = self.candidates(conv) or ([(symptom, 0)] if symptom else [])
        suspects = self.suspects(conv, cands)
        edges = self._edges(conv, symptom or "", cands)
        self.stories(suspects, edges)
        ranked = self.pick(suspects)
        fired = conv.fired_at.timestamp()
        benign = self.benign(conv, suspects, ranked, symptom)
        if benign or not ranked:
            return self._no_fault(conv, benign)

        culprit = self.follow_errors(conv, suspects, ranked[0], edges)
        ranked = [culprit] + [r for r in ranked if r is not culprit]
        mechanism = self.mechanism(conv, culprit)
        change = culprit.trigger or culprit.change_near_onset()
        # the label's onset is the first failure, not the change that led to it
        onset = culprit.failure_onset or culprit.start or fired

        entity = culprit.service
        root_causes = []
        logs, _ = self._texts(conv, culprit)
        # an expired certificate or a failing partner lives in the callee the errors name,
        # though only the caller's telemetry shows it
        if mechanism in CALLEE_SIDE:
            entity = self._blamed_callee(conv, culprit.service, edges) or entity
        path = self._path(edges, symptom or culprit.service, culprit.service)
        if entity != culprit.service:
            path = [entity, *path]
        confidence = 0.8 if change else 0.65
        root_causes.append(
            {
                "entity": entity,
                "mechanism": allowed_mechanism(conv, mechanism),
                "confidence": confidence,
            }
        )
        if entity != culprit.service:
            root_causes.append(
                {
                    "entity": culprit.service,
                    "mechanism": allowed_mechanism(conv, mechanism),
                    "confidence": 0.3,
                }
            )
        for other in ranked[1:3]:
            if other.service not in {r["entity"] for r in root_causes}:
                root_causes.append(
                    {
                        "entity": other.service,
                        "mechanism": allowed_mechanism(conv, self.mechanism(conv, other)),
                        "confidence": 0.1,
                    }
                )

        evidence = []
        first = sorted(culprit.causal_findings, key=lambda f: f.anomaly.onset)
        for f in first[:4]:
            a = f.anomaly
            evidence.append(
                {
                    "tool_call_id": f.call_id,
                    "description": f"{f.service} {f.signal} {'rose' if a.direction > 0 else 'fell'} from {a.baseline:.3g} to {a.extreme:.3g} starting {iso(a.onset)}",
                }
            )
        if change:
            evidence.append(
                {
                    "tool_call_id": change[1],
                    "description": f"change on {culprit.service} at {iso(_event_ts(change[0]))}: {change[0].get('title')}",
                }
            )
        if logs:
            evidence.append(
                {
                    "tool_call_id": self._logs(conv, culprit.service, "error")["id"],
                    "description": f"{culprit.service} log: {logs[0][:300]}",
                }
            )
        for s in path[1:]:
            sus = suspects.get(s)
            if sus and sus.causal_findings:
                f = min(sus.causal_findings, key=lambda f: f.anomaly.onset)
                evidence.append(
                    {
                        "tool_call_id": f.call_id,
                        "description": f"{s} {f.signal} anomalous from {iso(f.anomaly.onset)}, after {culprit.service}",
                    }
                )

        chain = [{"source": a, "target": b} for a, b in zip(path, path[1:], strict=False)]
        change_txt = f" after {change[0].get('title')!r}" if change else ""
        summary = (
            f"{entity} is the most likely root cause ({mechanism}): its anomaly starts at {iso(onset)}{change_txt}, "
            f"earliest among the {len(suspects)} services examined downstream of {symptom}. "
            f"Propagation: {' -> '.join(path)}."
        )
        return {
            "no_fault": False,
            "root_causes": root_causes,
            "causal_chain": chain,
            "onset": iso(onset),
            "evidence": evidence,
            "summary": summary,
        }
