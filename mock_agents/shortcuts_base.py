"""The framework of the shortcut policies: a :class:`Verdict` and the :class:`Shortcut` base.

A shortcut asks for its calls (:meth:`Shortcut.calls`, which may depend on earlier answers)
and concludes a :class:`Verdict`; the base holds the calls and readers the tricks share (the
catalog, the dependency graph, change events, the services a text names, the mechanism the
error logs suggest), adds the graph calls for the causal chain (the shortest dependency path
from the culprit up to the paged service) and writes the diagnosis, with the onset the
generator's habit suggests (``fired_at - 240 s - 105 s`` per hop).
"""

from __future__ import annotations

import re
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from .policy import (
    Policy,
    allowed_mechanism,
    cite,
    fault_diagnosis,
    no_fault_diagnosis,
    root_cause,
)
from .shortcuts_rules import CHANGE_EVENTS_QUERY, SIGNATURE_RANK, signature_of, title_mechanism
from .signals import as_dict, as_list, call, monitor_service, tag_value
from .transcript import Transcript, iso, parse_time

LOOKBACK = timedelta(hours=3)
INCIDENT = timedelta(minutes=45)
RECENT = timedelta(minutes=15)
MAX_DEPTH = 5
MAX_PATH_EDGE_CALLS = 12


def record_ts(record: dict[str, Any]) -> float:
    """A record's time (``ts`` or ``timestamp``) in epoch seconds; 0 when it has none."""
    t = parse_time(record.get("ts") if record.get("ts") is not None else record.get("timestamp"))
    return t.timestamp() if t else 0.0


def _name_rx(name: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![A-Za-z0-9_-]){re.escape(name)}(?![A-Za-z0-9_-])", re.IGNORECASE)


# --------------------------------------------------------------------------- verdicts


@dataclass
class Verdict:
    """What a shortcut concluded: an entity (None with ``no_fault``), a mechanism, the calls
    that showed it, and one line saying why."""

    entity: str | None
    mechanism: str | None
    why: str
    evidence: list[str] = field(default_factory=list)
    no_fault: bool = False
    confidence: float = 0.6


class Shortcut(Policy):
    """A non-reasoning policy: :meth:`calls` (may depend on earlier answers), then
    :meth:`verdict`; the base adds the graph calls for the chain and writes the diagnosis."""

    reserve = 1

    # ---- to implement

    def calls(self, conv: Transcript) -> list[dict[str, Any]]:
        return []

    def verdict(self, conv: Transcript) -> Verdict | None:
        raise NotImplementedError

    # ---- shared calls

    def window(self, conv: Transcript, back: timedelta = LOOKBACK) -> tuple[str, str]:
        return iso(conv.fired_at - back), iso(max(conv.now, conv.fired_at))

    def c_services(self) -> dict[str, Any]:
        return call("list_services", {"limit": 500}, "services")

    def c_deps(self, service: str, direction: str = "downstream", depth: int = MAX_DEPTH) -> dict[str, Any]:
        args = {"service": service, "direction": direction, "depth": depth}
        return call("get_service_dependencies", args, f"deps.{direction[:2]}{depth}.{service}")

    def c_changes(self, conv: Transcript) -> dict[str, Any]:
        start, end = self.window(conv)
        args = {"query": CHANGE_EVENTS_QUERY, "from": start, "to": end, "limit": 500}
        return call("get_events", args, "changes")

    def c_kube_events(self, conv: Transcript) -> dict[str, Any]:
        start, end = self.window(conv)
        args = {"query": "source:kubernetes -reason:Started", "from": start, "to": end, "limit": 500}
        return call("get_events", args, "kube")

    def c_monitors(self) -> dict[str, Any]:
        return call("get_monitors", {"limit": 500}, "monitors")

    def c_metric_names(self) -> dict[str, Any]:
        return call("list_metrics", {"limit": 500}, "metric-names")

    def c_error_counts(self, conv: Transcript, back: timedelta, until: timedelta = timedelta(0)) -> dict[str, Any]:
        args = {
            "query": "status:(error OR critical)",
            "from": iso(conv.fired_at - back),
            "to": iso(conv.fired_at - until) if until else iso(max(conv.now, conv.fired_at)),
            "group_by": ["service"],
            "limit": 500,
        }
        return call("aggregate_logs", args, f"errcount.{int(back.total_seconds())}")

    def c_error_logs(self, conv: Transcript, service: str | None = None) -> dict[str, Any]:
        start, end = iso(conv.fired_at - INCIDENT), iso(max(conv.now, conv.fired_at))
        q = "status:(error OR critical OR warn)" + (f" service:{service}" if service else "")
        args = {"query": q, "from": start, "to": end, "limit": 200}
        return call("search_logs", args, f"logs.{service or 'all'}")

    # ---- reading answers

    def content(self, conv: Transcript, c: dict[str, Any]) -> dict[str, Any]:
        return as_dict(conv.content(c["id"]))

    def answered(self, conv: Transcript, calls: list[dict[str, Any]]) -> bool:
        return all(c["id"] in conv.results for c in calls)

    def paged(self, conv: Transcript) -> str | None:
        return monitor_service(conv.monitor)

    def services(self, conv: Transcript) -> dict[str, dict[str, Any]]:
        items = as_list(self.content(conv, self.c_services()).get("services"))
        return {str(s["name"]): s for s in map(as_dict, items) if s.get("name")}

    def depths(self, conv: Transcript, service: str, direction: str = "downstream") -> dict[str, int]:
        """Hop counts from ``service`` along the graph, as far as its answer is known."""
        content = self.content(conv, self.c_deps(service, direction))
        out = {service: 0}
        for d in map(as_dict, as_list(content.get(direction))):
            if d.get("service") and str(d["service"]) not in out:
                try:
                    out[str(d["service"])] = int(float(d.get("depth") or 1))
                except (TypeError, ValueError):
                    out[str(d["service"])] = 1
        return out

    def below_paged(self, conv: Transcript) -> dict[str, int]:
        paged = self.paged(conv)
        return self.depths(conv, paged) if paged else {}

    def change_events(self, conv: Transcript, before_page: bool = True) -> list[dict[str, Any]]:
        events = [as_dict(e) for e in as_list(self.content(conv, self.c_changes(conv)).get("events"))]
        fired = conv.fired_at.timestamp()
        return [e for e in events if e and (not before_page or record_ts(e) <= fired)]

    def event_service(self, conv: Transcript, event: dict[str, Any]) -> str | None:
        """The service an event is about: its service tag, else a service its text names."""
        svc = tag_value(event.get("tags"), "service")
        if svc:
            return svc
        text = f"{event.get('title') or ''} {event.get('text') or ''}"
        return self.named_service(conv, text, exclude=None)

    def named_service(self, conv: Transcript, text: str, exclude: str | None) -> str | None:
        """A service a line of text names: the longest catalog name in it, a ``pg-<x>-NN`` host
        as ``<x>-db``, a vendor's host as the external service whose description it matches."""
        names = self.services(conv)
        memo = conv.memo.setdefault("name_rx", {})
        best = None
        for name in sorted(names, key=len, reverse=True):
            if name == exclude:
                continue
            rx = memo.get(name) or memo.setdefault(name, _name_rx(name))
            if rx.search(text) or rx.search(text.replace("_", "-")):
                best = name
                break
        if best:
            return best
        for m in re.finditer(r"pg-([a-z0-9-]+?)-\d+", text):
            for cand in (f"{m.group(1)}-db", f"{m.group(1)}s-db", m.group(1)):
                if cand in names and cand != exclude:
                    return cand
        low = text.lower()
        for name, s in sorted(names.items()):
            if name == exclude or str(s.get("kind")) != "external":
                continue
            words = [w for w in re.findall(r"[a-z]{4,}", str(s.get("description") or "").lower())]
            if any(w in low for w in words):
                return name
        return None

    def log_mechanism(self, conv: Transcript, entity: str | None) -> str | None:
        """The mechanism whose signature phrases the error logs around the page show, preferring
        lines of (or naming) ``entity``; needs :meth:`c_error_logs` among the calls."""
        logs = [as_dict(r) for r in as_list(self.content(conv, self.c_error_logs(conv)).get("logs"))]
        sigs = [(r, signature_of(str(r.get("message") or ""))) for r in logs]
        found = Counter(
            m for r, m in sigs
            if m and (entity is None or r.get("service") == entity or entity in str(r.get("message")))
        )  # fmt: skip
        if not found:
            found = Counter(m for _, m in sigs if m)
        return min(found, key=lambda m: (SIGNATURE_RANK[m], -found[m])) if found else None

    # ---- the chain

    def path_calls(self, conv: Transcript, entity: str | None) -> list[dict[str, Any]]:
        paged = self.paged(conv)
        if not entity or not paged or entity == paged:
            return []
        down = self.below_paged(conv)
        if entity not in down:
            return []
        up_call = self.c_deps(entity, "upstream")
        if up_call["id"] not in conv.results:
            return [up_call]
        nodes = self._path_nodes(conv, entity, down)
        edge_calls = [self.c_deps(x, "downstream", 1) for x in sorted(nodes) if x not in (paged, entity)]
        return [up_call, *edge_calls[:MAX_PATH_EDGE_CALLS]]

    def _path_nodes(self, conv: Transcript, entity: str, down: dict[str, int]) -> set[str]:
        up = self.depths(conv, entity, "upstream")
        d = down[entity]
        return {x for x in down if x in up and down[x] + up[x] == d}

    def chain(self, conv: Transcript, entity: str | None) -> list[str]:
        """Services from ``entity`` up to the paged service along a shortest dependency path."""
        paged = self.paged(conv)
        if not entity or not paged or entity == paged:
            return []
        down = self.below_paged(conv)
        if entity not in down or self.c_deps(entity, "upstream")["id"] not in conv.results:
            return [entity, paged]
        nodes = self._path_nodes(conv, entity, down)
        callees: dict[str, set[str]] = {}
        for x in nodes:
            if x == paged:
                callees[x] = {s for s, k in down.items() if k == 1}
            elif x != entity:
                content = self.content(conv, self.c_deps(x, "downstream", 1))
                callees[x] = {
                    str(e["service"]) for e in map(as_dict, as_list(content.get("downstream")))
                    if e.get("service")
                }
        # BFS from the paged service down to the entity, inside the shortest-path nodes
        prev: dict[str, str] = {}
        queue, seen = deque([paged]), {paged}
        while queue:
            x = queue.popleft()
            for y in sorted(callees.get(x, set()) & nodes):
                if y not in seen:
                    seen.add(y)
                    prev[y] = x
                    queue.append(y)
        if entity not in prev:  # graph answers incomplete: the levels, one node each
            levels = sorted(nodes, key=lambda x: (-down[x], x))
            path, taken = [], set()
            for x in levels:
                if down[x] not in taken:
                    taken.add(down[x])
                    path.append(x)
            return path
        path = [entity]
        while path[-1] != paged:
            path.append(prev[path[-1]])
        return path

    # ---- the framework

    def base_calls(self, conv: Transcript) -> list[dict[str, Any]]:
        paged = self.paged(conv)
        return [self.c_services()] + ([self.c_deps(paged)] if paged else [])

    def _verdict(self, conv: Transcript) -> Verdict | None:
        if "verdict" not in conv.memo:
            conv.memo["verdict"] = self.verdict(conv)
        return conv.memo["verdict"]

    def wanted(self, conv: Transcript) -> list[dict[str, Any]]:
        first = self.base_calls(conv) + self.calls(conv)
        if not self.answered(conv, first):
            return first
        v = self._verdict(conv)
        extra = self.path_calls(conv, v.entity) if v and not v.no_fault else []
        return first + extra

    def onset_guess(self, conv: Transcript, chain: list[str]) -> str:
        hops = max(1, len(chain)) - 1
        return iso(conv.fired_at - timedelta(seconds=240 + 105 * hops))

    def diagnose(self, conv: Transcript) -> dict[str, Any]:
        v = self._verdict(conv) or Verdict(self.paged(conv), None, "nothing stood out")
        if not v.no_fault and not v.entity:
            v = Verdict(self.paged(conv), v.mechanism, v.why, v.evidence, confidence=v.confidence)
        evidence = [
            cite(cid, f"{self.name}: {v.why}"[:500])
            for cid in dict.fromkeys(v.evidence)
            if cid in conv.results
        ]
        if v.no_fault or not v.entity:  # no entity at all: nothing to blame
            return no_fault_diagnosis(evidence, f"No fault: {v.why}")
        mechanism = allowed_mechanism(conv, v.mechanism) or allowed_mechanism(
            conv, title_mechanism(str(conv.problem.get("title") or "")) or "bad_release"
        )
        if mechanism == "no_fault":
            mechanism = "bad_release"
        chain = self.chain(conv, v.entity)
        return fault_diagnosis(
            [root_cause(v.entity, mechanism, v.confidence)],
            chain,
            self.onset_guess(conv, chain),
            evidence,
            f"{v.entity} ({mechanism}): {v.why}",
        )
