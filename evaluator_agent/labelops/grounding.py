"""Grounding a candidate in its world: what the tools say about each service, offline and
deterministic (``proctor labels validate`` scores on top of it, ``validate.py``).

Every fact is one ``Toolbox`` call, the same ten tools an agent has; a fact that the validator
uses as key evidence is recorded as that call (tool, arguments, the substring it returned).

- :meth:`World.resolve` names a service from loose words: the exact name, then name fragments
  ("payments" -> payments-api), then kind words (db/database, cache/redis, queue/kafka ...)
  against the catalog's kinds; ties go to services downstream of the page.
- :meth:`World.evidence` of a service in the incident window: error logs (rising over the
  baseline rate), change events (deploy, config, flag ...), a metric that moved.
- :meth:`World.path` the shortest chain of downstream edges from the paged service.
- :meth:`World.suspect` the root cause when the claim names none: among the services reached
  from a start service through anomalous services only, the deepest one (no anomalous service
  below it), preferring one whose changes match the claim's hint ("after the deploy"). On the
  noisy generated worlds this is a guess: the validator keeps such candidates below threshold.
"""

from __future__ import annotations

import heapq
import re
import statistics
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from evaluator_agent.core.clock import iso
from evaluator_agent.telemetry.tools import Toolbox

#: kind words people use -> catalog kinds
KIND_WORDS: dict[str, tuple[str, ...]] = {
    "db": ("database",), "database": ("database",), "postgres": ("database",), "mysql": ("database",),
    "sql": ("database",), "cache": ("cache",), "redis": ("cache",), "memcached": ("cache",),
    "queue": ("queue",), "kafka": ("queue",), "broker": ("queue",), "topic": ("queue",),
    "gateway": ("gateway",), "proxy": ("gateway",), "worker": ("job", "worker"), "job": ("job",), "cron": ("job",),
    "vendor": ("external",), "provider": ("external",), "third": ("external",),
}  # fmt: skip
#: name parts too common to name a service on their own
GENERIC = frozenset({"api", "service", "svc", "app", "web", "the", "a", "an", "db", "server", "worker", "prod"})
#: event sources that are changes (routine kubernetes pod events are not: they are everywhere)
CHANGE_SOURCES = frozenset({"deploy", "config", "feature_flag", "flag", "migration", "terraform", "infrastructure",
                            "change", "ci", "argocd", "launchdarkly"})
HINTS: dict[str, tuple[str, ...]] = {
    "deploy": ("deploy", "release", "rollout", "version", "shipped"),
    "config": ("config", "configuration", "setting", "maxmemory", "terraform"),
    "flag": ("flag", "feature"),
    "migration": ("migration", "schema"),
}




def words(text: str) -> list[str]:
    return [w for w in re.split(r"[^a-z0-9]+", text.lower()) if w]


@dataclass
class Evidence:
    """What the world shows about one service in the incident window."""

    service: str
    errors: int = 0
    baseline_errors: int = 0
    rising: bool = False
    first_error: float | None = None
    changes: list[dict[str, Any]] = field(default_factory=list)
    metric: dict[str, Any] | None = None  # {"metric", "base", "peak", "at"}
    #: error logs of OTHER services that name this one (its callers: "503 ... http://recs-model...")
    mentions: int = 0
    mentions_rising: bool = False
    queries: list[dict[str, Any]] = field(default_factory=list)  # KeyEvidence-shaped

    @property
    def score(self) -> int:
        return (int(self.rising) + int(bool(self.changes)) + int(self.metric is not None)
                + int(self.mentions_rising and not self.rising))

    @property
    def first_change(self) -> float | None:
        return min((c["ts"] for c in self.changes), default=None)


class World:
    """The tools over one snapshot, seen from one page."""

    def __init__(self, toolbox: Toolbox, window: tuple[float, float], baseline: tuple[float, float]):
        self.tb = toolbox
        self.t0, self.t1 = window
        self.b0, self.b1 = baseline
        self.calls = 0
        self.services: dict[str, dict[str, Any]] = {}
        cursor = None
        while True:
            out = self._call("list_services", {"limit": 500, **({"cursor": cursor} if cursor else {})})
            for s in (out or {}).get("services", []):
                self.services[s["name"]] = s
            cursor = (out or {}).get("next_cursor")
            if not cursor:
                break
        self._down: dict[str, list[str]] = {}
        self._ev: dict[str, Evidence] = {}

    def _call(self, tool: str, args: dict[str, Any]) -> Any:
        self.calls += 1
        o = self.tb.call(tool, args)
        return o.content if o.ok else None

    # ------------------------------------------------------------------ topology

    def downstream(self, service: str) -> list[str]:
        if service not in self._down:
            out = self._call("get_service_dependencies", {"service": service}) or {}
            self._down[service] = sorted(d["service"] for d in out.get("downstream", []) if d.get("depth", 1) == 1)
        return self._down[service]

    def reachable(self, start: str) -> dict[str, int]:
        """Services downstream of ``start`` (itself included) and their depth."""
        seen = {start: 0}
        todo = deque([start])
        while todo:
            s = todo.popleft()
            for d in self.downstream(s):
                if d not in seen:
                    seen[d] = seen[s] + 1
                    todo.append(d)
        return seen

    def path(self, start: str, goal: str) -> list[str] | None:
        """The chain of downstream edges from ``start`` to ``goal``: the shortest, a hop through a
        service that shows nothing counting double (a failure propagates through anomalies)."""
        best: dict[str, float] = {start: 0.0}
        prev: dict[str, str | None] = {start: None}
        heap: list[tuple[float, str]] = [(0.0, start)]
        while heap:
            cost, s = heapq.heappop(heap)
            if s == goal:
                out = [s]
                while prev[out[-1]] is not None:
                    out.append(prev[out[-1]])  # type: ignore[arg-type]
                return out[::-1]
            if cost > best.get(s, float("inf")):
                continue
            for d in self.downstream(s):
                ev = self.evidence(d)
                step = 1.0 if d == goal else 2.0 if ev.score == 0 else 1.0 - 0.1 * ev.score - 0.05 * ev.rising
                if cost + step < best.get(d, float("inf")):
                    best[d], prev[d] = cost + step, s
                    heapq.heappush(heap, (cost + step, d))
        return None

    # ------------------------------------------------------------------ names

    def resolve(self, text: str, near: str | None = None) -> tuple[str | None, str]:
        """A service from loose words and how it was found: exact | alias | fragment | kind | none."""
        if not text:
            return None, "none"
        low = text.strip().lower()
        for name in self.services:
            if name.lower() == low:
                return name, "exact"
        ws = words(text)
        reach = self.reachable(near) if near and near in self.services else {}
        kinds = {k for w in ws for k in KIND_WORDS.get(w, ())}
        scored: list[tuple[float, str, str]] = []
        for name, info in self.services.items():
            parts = words(name)
            hit = [p for p in parts if p in ws]
            frag = sum(1.0 if p not in GENERIC else 0.25 for p in hit)
            if frag == 0 and not kinds:
                continue
            kind = str(info.get("kind", "")).lower()
            s = 2 * frag + (2.0 if hit == parts else 0.0)
            if kinds:
                s += 2.0 if kind in kinds else -1.5
            if s <= 0 or (frag == 0 and kind not in kinds):
                continue
            how = "named" if hit == parts and (not kinds or kind in kinds) else "fragment" if frag else "kind"
            scored.append((s + (0.5 if name in reach else 0.0), name, how))
        if not scored:
            return None, "none"
        scored.sort(key=lambda x: (-x[0], x[1]))
        top = [x for x in scored if x[0] == scored[0][0]]
        if len(top) > 1:  # a tie: the one with the most evidence
            ev = {n: self.evidence(n).score for _, n, _ in top}
            best = max(sorted(ev), key=lambda n: ev[n])
            return best, next(h for _, n, h in top if n == best)
        return scored[0][1], scored[0][2]

    def paged_service(self, monitor_id: int | None, title: str, fallback: str | None) -> tuple[str | None, str]:
        if monitor_id is not None:
            out = self._call("get_monitors", {"query": f"id:{monitor_id}"}) or {}
            for m in out.get("monitors", []):
                for tag in m.get("tags", []):
                    if tag.startswith("service:") and tag[8:] in self.services:
                        return tag[8:], f"the trigger monitor {monitor_id} is tagged service:{tag[8:]}"
        name, how = self.resolve(title)
        if name:
            return name, f"the trigger title names {name} ({how})"
        if fallback and fallback in self.services:
            return fallback, f"the draft's first symptom {fallback}"
        return None, "no paged service found"

    # ------------------------------------------------------------------ evidence

    def evidence(self, service: str) -> Evidence:
        if service in self._ev:
            return self._ev[service]
        ev = Evidence(service)
        q = f"service:{service} status:error"
        win = {"from": iso(self.t0), "to": iso(self.t1)}
        out = self._call("search_logs", {"query": q, **win, "limit": 1, "sort": "timestamp"}) or {}
        ev.errors = int(out.get("total_matched") or 0)
        expect = "error"
        if out.get("logs"):
            first = out["logs"][0]
            ev.first_error = first.get("ts")
            msg = str(first.get("message") or first.get("status") or "error")
            expect = next((w for w in re.findall(r"[A-Za-z][A-Za-z0-9_.]{5,}", msg)), "error")
        base = self._call("aggregate_logs", {"query": q, "from": iso(self.b0), "to": iso(self.b1)}) or {}
        ev.baseline_errors = int(base.get("total") or 0)
        rate = ev.errors / max(self.t1 - self.t0, 1)
        brate = ev.baseline_errors / max(self.b1 - self.b0, 1)
        ev.rising = ev.errors >= 5 and rate > 3 * brate
        if ev.rising:
            args = {"query": q, **win, "sort": "timestamp", "limit": 1}
            ev.queries.append({"tool": "search_logs", "arguments": args, "expect": expect,
                               "description": f"first of {ev.errors} error logs of {service} in the incident window "
                               f"({ev.baseline_errors} in the baseline)"})
        # a root cause may be silent itself (an expired certificate, a dead host, a vendor):
        # its callers' errors name it
        q2 = f'status:error "{service}" -service:{service}'
        out = self._call("search_logs", {"query": q2, **win, "limit": 1, "sort": "timestamp"}) or {}
        ev.mentions = int(out.get("total_matched") or 0)
        if ev.mentions >= 5:
            base = self._call("aggregate_logs", {"query": q2, "from": iso(self.b0), "to": iso(self.b1)}) or {}
            b_rate = int(base.get("total") or 0) / max(self.b1 - self.b0, 1)
            ev.mentions_rising = ev.mentions / max(self.t1 - self.t0, 1) > 3 * b_rate
            if ev.mentions_rising and not ev.rising and out.get("logs"):
                first = out["logs"][0]
                ev.first_error = first.get("ts")
                said = self._distinctive(str(first.get("message") or ""))
                if said is not None:
                    ev.queries.append({"tool": "search_logs", "arguments": {"query": q2, **win, "sort": "timestamp", "limit": 1},
                                       "expect": said, "description": f"first of {ev.mentions} error logs of other "
                                       f"services naming {service} in the incident window"})
        out = self._call("get_events", {"query": f"service:{service}", **win, "limit": 50}) or {}
        for e in out.get("events", []):
            if str(e.get("source", "")).lower() in CHANGE_SOURCES:
                ev.changes.append({"ts": e.get("ts"), "source": e.get("source"), "title": str(e.get("title", ""))[:200],
                                   "text": str(e.get("text", ""))[:300]})
        if ev.changes:
            first = min(ev.changes, key=lambda c: c["ts"])
            expect = next((w for w in re.findall(r"[A-Za-z0-9][A-Za-z0-9_.\-]{3,}", first["title"]) if w != service),
                          service)
            ev.queries.append({"tool": "get_events", "arguments": {"query": f"service:{service}", **win}, "expect": expect,
                               "description": f"{first['source']} event: {first['title'][:120]}"})
        ev.metric = self._metric_change(service)
        if ev.metric is not None:
            m = ev.metric
            ev.queries.append({"tool": "query_metrics", "arguments": {"query": m["query"], "from": iso(self.b0), "to": iso(self.t1)},
                               "expect": m["metric"], "description": f"{m['metric']} moved from {m['base']:.3g} "
                               f"(baseline mean) to {m['peak']:.3g} in the incident window"})
        self._ev[service] = ev
        return ev

    def _distinctive(self, text: str) -> str | None:
        """A word of ``text`` that only reading it shows: not a service name (a listing has those)."""
        names = {n.lower() for n in self.services}
        return next((w for w in re.findall(r"[A-Za-z][A-Za-z0-9_.]{5,}", text)
                     if w.lower() not in names and not any(w.lower() in n for n in names)), None)

    def _metric_change(self, service: str) -> dict[str, Any] | None:
        out = self._call("list_metrics", {"query": f"service:{service}", "limit": 50}) or {}
        best: dict[str, Any] | None = None
        for m in out.get("metrics", [])[:8]:
            query = f"avg:{m['metric']}{{service:{service}}}"
            res = self._call("query_metrics", {"query": query, "from": iso(self.b0), "to": iso(self.t1)}) or {}
            pts = [(t, v) for s in res.get("series", [])[:1] for t, v in s.get("pointlist", []) if v is not None]
            base = [v for t, v in pts if self.b0 <= t <= self.b1]
            inc = [(t, v) for t, v in pts if self.t0 <= t <= self.t1]
            if len(base) < 5 or not inc:
                continue
            mu, sd = statistics.fmean(base), statistics.pstdev(base)
            t_peak, peak = max(inc, key=lambda p: abs(p[1] - mu))
            dev = abs(peak - mu)
            if dev > max(4 * sd, 0.5 * abs(mu), 1e-9) and dev > 1e-6:
                rel = dev / (abs(mu) + sd + 1e-9)
                # when it started: the first incident point beyond half the deviation
                start = next((t for t, v in inc if abs(v - mu) > dev / 2), t_peak)
                if best is None or rel > best["rel"]:
                    best = {"metric": m["metric"], "query": query, "base": mu, "peak": peak, "at": start, "rel": rel}
        return best

    def suspect(self, start: str, hint: str | None = None) -> tuple[str | None, list[str]]:
        """The deepest anomalous service reached from ``start`` through anomalous services only
        (a failure propagates: every hop on the way shows something), and the reasons."""
        connected: dict[str, int] = {start: 0}
        todo = deque([start])
        while todo:
            s = todo.popleft()
            for d in self.downstream(s):
                if d not in connected and self.evidence(d).score > 0:
                    connected[d] = connected[s] + 1
                    todo.append(d)
        anomalous = {s: self.evidence(s) for s in connected if self.evidence(s).score > 0}
        if not anomalous:
            return None, [f"nothing downstream of {start} shows rising errors, a change or a moved metric"]
        leaves = [s for s in anomalous if not any(d in anomalous for d in self.downstream(s))]
        pool = leaves or list(anomalous)

        def first(ev: Evidence) -> float:
            return min((t for t in (ev.first_change, ev.first_error if ev.rising else None,
                                    (ev.metric or {}).get("at")) if t), default=float("inf"))

        def rank(s: str) -> tuple[Any, ...]:
            ev = anomalous[s]
            hinted = bool(hint) and any(hint in str(c["source"]).lower() or hint in c["title"].lower() for c in ev.changes)
            return (-int(hinted), -ev.score, first(ev), -connected[s], s)

        pool.sort(key=rank)
        best = pool[0]
        why = [f"{best} is the deepest anomalous service reached from {start} through anomalous services "
               f"({', '.join(_signals(anomalous[best]))})"]
        if len(pool) > 1:
            why.append(f"other candidates: {', '.join(pool[1:4])}")
        return best, why


def _signals(ev: Evidence) -> list[str]:
    out = []
    if ev.rising:
        out.append(f"{ev.errors} error logs, {ev.baseline_errors} in the baseline")
    elif ev.mentions_rising:
        out.append(f"{ev.mentions} error logs of other services name it")
    if ev.changes:
        out.append(f"{len(ev.changes)} change event(s)")
    if ev.metric:
        out.append(f"{ev.metric['metric']} moved")
    return out or ["no signal"]


def hint_of(text: str) -> str | None:
    ws = set(words(text))
    for key, forms in HINTS.items():
        if ws & set(forms):
            return key
    return None
