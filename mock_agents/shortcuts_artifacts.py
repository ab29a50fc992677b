"""The shortcut tricks that read one artifact: a page title, a change event, a log phrase.

``always_no_fault`` and ``paged_title`` barely look; ``last_change`` and ``timestamp_tell``
blame a change event (the latest, or the one whose timestamp precision stands out);
``keyword_grep`` and ``lookup_table`` match the cheat sheet (:mod:`mock_agents.shortcuts_rules`)
against logs, events and metric names; ``rarest_artifact`` blames the service carrying an
artifact no other service has.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from .shortcuts_base import INCIDENT, Shortcut, Verdict, record_ts
from .shortcuts_rules import (
    CHANGE_SOURCES,
    CHANGE_TEXT_RULES,
    EVENT_RULES,
    REASON_RULES,
    SIGNATURE_RANK,
    SIGNATURES,
    event_mechanism,
    match_rule,
    metric_mechanism,
    signature_of,
    title_mechanism,
)
from .signals import as_dict, as_list, call, tag_value
from .transcript import Transcript, iso


class AlwaysNoFault(Shortcut):
    name = "always_no_fault"
    description = "Answers 'no fault' without looking (the no-fault prior)."

    def base_calls(self, conv: Transcript) -> list[dict[str, Any]]:
        return []

    def verdict(self, conv: Transcript) -> Verdict:
        return Verdict(None, "no_fault", "answering 'no fault' without looking", no_fault=True)


class PagedTitle(Shortcut):
    name = "paged_title"
    description = "Blames the paged service with the mechanism its page title suggests."

    def verdict(self, conv: Transcript) -> Verdict:
        title = str(conv.problem.get("title") or "")
        mech = title_mechanism(title)
        lag = re.search(r"consumer lag high for ([A-Za-z0-9_.-]+)", title, re.IGNORECASE)
        if mech == "no_fault":
            return Verdict(None, mech, f"the page {title!r} is a traffic page", no_fault=True)
        entity = lag.group(1) if lag else self.paged(conv)
        return Verdict(entity, mech, f"the page {title!r} names {entity}")


class LastChange(Shortcut):
    name = "last_change"
    description = "Blames the latest change event before the page on or below the paged service."

    def calls(self, conv: Transcript) -> list[dict[str, Any]]:
        return [self.c_changes(conv), self.c_error_logs(conv)]

    def pick(self, conv: Transcript, events: list[dict[str, Any]]) -> dict[str, Any] | None:
        below = self.below_paged(conv)
        changes = [
            e for e in events
            if str(e.get("source") or "").lower() in CHANGE_SOURCES
            and str(e.get("source")).lower() != "marketing"
        ]  # fmt: skip
        near = [e for e in changes if self.event_service(conv, e) in below] or changes
        return max(near, key=record_ts, default=None)

    def verdict(self, conv: Transcript) -> Verdict | None:
        event = self.pick(conv, self.change_events(conv))
        if event is None:
            return None
        entity = self.event_service(conv, event)
        mech = event_mechanism(event) or self.log_mechanism(conv, entity)
        why = f"latest change before the page: {event.get('title')} ({iso(record_ts(event))})"
        return Verdict(entity, mech, why, [self.c_changes(conv)["id"]])


class TimestampTell(LastChange):
    name = "timestamp_tell"
    description = (
        "Blames the latest change event whose timestamp precision differs from most events' "
        "(whole seconds among milliseconds)."
    )

    def pick(self, conv: Transcript, events: list[dict[str, Any]]) -> dict[str, Any] | None:
        def whole(e: dict[str, Any]) -> bool:
            return float(record_ts(e)).is_integer()

        if not events:
            return None
        majority_whole = sum(map(whole, events)) * 2 > len(events)
        odd = [e for e in events if whole(e) != majority_whole and str(e.get("source")) != "cron"]
        return super().pick(conv, odd) if odd else None


class KeywordGrep(Shortcut):
    name = "keyword_grep"
    #: blame the emitter with the most matching lines (a sample) instead of the earliest
    blame_loudest = False
    description = (
        "Searches the logs for each mechanism's signature phrases; blames the earliest emitter "
        "or the peer the line names."
    )

    def c_signature(self, conv: Transcript, mechanism: str, phrases: tuple[str, ...]) -> dict[str, Any]:
        q = " OR ".join(f'"{p}"' for p in phrases)
        args = {
            "query": q,
            "from": iso(conv.fired_at - INCIDENT),
            "to": iso(max(conv.now, conv.fired_at)),
            "limit": 50,
            "sort": "timestamp",
        }
        return call("search_logs", args, f"sig.{mechanism}")

    def calls(self, conv: Transcript) -> list[dict[str, Any]]:
        return [self.c_signature(conv, m, p) for m, p, _ in SIGNATURES]

    def hits(self, conv: Transcript) -> list[tuple[str, str, list[dict[str, Any]], str]]:
        """(mechanism, who, matching lines oldest first, call id) for every phrase group that hit."""
        out = []
        for m, phrases, who in SIGNATURES:
            c = self.c_signature(conv, m, phrases)
            lines = [as_dict(r) for r in as_list(self.content(conv, c).get("logs"))]
            if len(lines) >= 2:
                out.append((m, who, sorted(lines, key=record_ts), c["id"]))
        return out

    def blame(self, conv: Transcript, mechanism: str, lines: list[dict[str, Any]]) -> str | None:
        """Who the lines of one signature blame. For a "peer" signature, the service the lines
        name that logs no such line itself (the end of the naming chain; for a third-party
        outage, an external one); else the emitter of the most specific phrase that shows up
        (the group's earlier phrases), the earliest (or with ``blame_loudest`` the most
        frequent) one."""
        group = next((g for g in SIGNATURES if g[0] == mechanism), (mechanism, (), "emitter"))
        _, phrases, who = group
        if not lines:
            return None
        if who == "peer":
            kinds = {n: str(s.get("kind")) for n, s in self.services(conv).items()}
            emitters = {str(r.get("service")) for r in lines}
            named: Counter[str] = Counter()
            for r in lines:
                peer = self.named_service(conv, str(r.get("message") or ""), exclude=str(r.get("service")))
                if peer and (mechanism != "third_party_outage" or kinds.get(peer) == "external"):
                    named[peer] += 1
            if named:
                ends = [p for p in named if p not in emitters] or list(named)
                return max(sorted(ends), key=lambda p: named[p])
        for phrase in phrases:
            hit = [r for r in lines if phrase.lower() in str(r.get("message") or "").lower()]
            if hit:
                lines = hit
                break
        if self.blame_loudest:
            n = Counter(str(r.get("service")) for r in lines)
            return max(sorted(n), key=lambda svc: n[svc])
        return str(lines[0].get("service"))

    def verdict(self, conv: Transcript) -> Verdict | None:
        hits = self.hits(conv)
        if not hits:
            return None
        m, who, lines, cid = hits[0]
        entity = self.blame(conv, m, lines)
        return Verdict(entity, m, f"{m} signature in the logs: {str(lines[0].get('message'))[:120]!r}", [cid])


class LookupTable(KeywordGrep):
    name = "lookup_table"
    description = (
        "A cheat sheet: page title, event sources and texts, commit messages, Kubernetes event "
        "reasons, metric names on one service, log phrases -> mechanism; the artifact's "
        "service -> culprit."
    )
    blame_loudest = True  # its log lines are the newest 200: "earliest" means nothing there
    #: metric-name fragments that only a culprit carries
    CULPRIT_METRICS = ("cfs.throttled", "generated_", "count.terminated")

    def calls(self, conv: Transcript) -> list[dict[str, Any]]:
        return [self.c_changes(conv), self.c_kube_events(conv), self.c_metric_names(),
                self.c_error_logs(conv)]  # fmt: skip

    def clues(self, conv: Transcript) -> list[tuple[str | None, str | None, str, str]]:
        """(entity, mechanism, why, call id), most telling first."""
        out: list[tuple[str | None, str | None, str, str]] = []
        below = self.below_paged(conv)
        changes = sorted(self.change_events(conv), key=record_ts, reverse=True)
        cid = self.c_changes(conv)["id"]
        # 1. event sources only incidents have, and what their texts say
        for e in changes:
            source = str(e.get("source") or "").lower()
            if source in EVENT_RULES:
                out.append((self.event_service(conv, e) if source != "terraform" or
                            tag_value(e.get("tags"), "service") else None,
                            event_mechanism(e), f"{source} event: {e.get('title')}", cid))  # fmt: skip
        # 2. commit messages that name a mechanism, nearest the paged service first
        deploys = [e for e in changes if str(e.get("source")).lower() in ("deploy", "deployment")]
        deploys.sort(key=lambda e: (self.event_service(conv, e) not in below, -record_ts(e)))
        for e in deploys:
            mech = match_rule(CHANGE_TEXT_RULES, f"{e.get('title') or ''} {e.get('text') or ''}")
            if mech:
                out.append((self.event_service(conv, e), mech, f"commit: {e.get('text')!r}"[:160], cid))
        # 3. metric names only the culprit has
        mcid = self.c_metric_names()["id"]
        for m in map(as_dict, as_list(self.content(conv, self.c_metric_names()).get("metrics"))):
            name = str(m.get("metric") or "")
            svcs = as_list(as_dict(m.get("tags")).get("service"))
            if len(svcs) == 1 and any(f in name for f in self.CULPRIT_METRICS):
                out.append((str(svcs[0]), metric_mechanism(name), f"{name} exists only on {svcs[0]}", mcid))
        # 4. Kubernetes event reasons
        reasons: Counter[tuple[str, str | None]] = Counter()
        for e in map(as_dict, as_list(self.content(conv, self.c_kube_events(conv)).get("events"))):
            r = tag_value(e.get("tags"), "reason") or ""
            if r in REASON_RULES:
                reasons[(REASON_RULES[r], self.event_service(conv, e))] += 1
        for (mech, svc), n in sorted(reasons.items(), key=lambda kv: (-kv[1], str(kv[0]))):
            out.append((svc, mech, f"{n} Kubernetes events say {mech} on {svc}", self.c_kube_events(conv)["id"]))
        # 5. log phrases
        logs = [as_dict(r) for r in as_list(self.content(conv, self.c_error_logs(conv)).get("logs"))]
        found = Counter(m for r in logs if (m := signature_of(str(r.get("message") or ""))))
        for mech in sorted(found, key=lambda m: (SIGNATURE_RANK[m], -found[m])):
            lines = sorted((r for r in logs if signature_of(str(r.get("message") or "")) == mech), key=record_ts)
            out.append((self.blame(conv, mech, lines), mech, f"{mech} phrase in the logs", self.c_error_logs(conv)["id"]))
        return out

    def verdict(self, conv: Transcript) -> Verdict | None:
        title = str(conv.problem.get("title") or "")
        if title_mechanism(title) == "no_fault":
            return Verdict(None, "no_fault", f"{title!r} is a traffic page", no_fault=True)
        clues = self.clues(conv)
        lag = re.search(r"consumer lag high for ([A-Za-z0-9_.-]+)", title, re.IGNORECASE)
        if lag:
            mechs = [m for _, m, _, _ in clues if m in ("consumer_lag", "rebalance_storm")]
            return Verdict(lag.group(1), mechs[0] if mechs else "rebalance_storm", f"the page names {lag.group(1)}")
        for entity, mech, why, cid in clues:
            if mech == "no_fault":
                return Verdict(None, mech, why, [cid], no_fault=True)
            if mech is None:
                continue
            if entity is None:  # the artifact names the mechanism, not the service
                entity = next((e for e, m, _, _ in clues if m == mech and e), None)
            if entity is None:
                entity = next((e for e, _, _, _ in clues if e), None)
            return Verdict(entity, mech, why, [cid])
        return None


class RarestArtifact(Shortcut):
    name = "rarest_artifact"
    description = "Blames the service carrying a metric name, event source or event reason no other service has."
    common_sources = frozenset({"deploy", "kubernetes", "autoscaling", "cron"})

    def calls(self, conv: Transcript) -> list[dict[str, Any]]:
        return [self.c_metric_names(), self.c_changes(conv), self.c_kube_events(conv), self.c_error_logs(conv)]

    def verdict(self, conv: Transcript) -> Verdict | None:
        below = self.below_paged(conv)
        found: list[tuple[int, float, str, str | None, str, str]] = []  # (rank, -ts, service, mech, why, call)
        events = self.change_events(conv)
        per_source = Counter(str(e.get("source")) for e in events)
        for e in events:
            src = str(e.get("source"))
            svc = self.event_service(conv, e)
            if src not in self.common_sources and per_source[src] <= 3 and svc:
                found.append((0, -record_ts(e), svc, event_mechanism(e), f"the only {src} event is on {svc}", self.c_changes(conv)["id"]))
        kube = [as_dict(e) for e in as_list(self.content(conv, self.c_kube_events(conv)).get("events"))]
        by_reason: dict[str, set[str]] = {}
        for e in kube:
            r = tag_value(e.get("tags"), "reason")
            svc = self.event_service(conv, e)
            if r and svc:
                by_reason.setdefault(r, set()).add(svc)
        for r, svcs in sorted(by_reason.items()):
            if len(svcs) == 1:
                svc = next(iter(svcs))
                found.append((2, 0.0, svc, REASON_RULES.get(r), f"only {svc} has {r} events", self.c_kube_events(conv)["id"]))
        for m in map(as_dict, as_list(self.content(conv, self.c_metric_names()).get("metrics"))):
            svcs = as_list(as_dict(m.get("tags")).get("service"))
            name = str(m.get("metric") or "")
            if len(svcs) == 1 and metric_mechanism(name) and not name.startswith(("kafka.", "trace.kafka")):
                found.append((1, 0.0, str(svcs[0]), metric_mechanism(name), f"only {svcs[0]} has {name}", self.c_metric_names()["id"]))
        found = [f for f in found if f[2] in below] or found
        if not found:
            return None
        rank, _, svc, mech, why, cid = min(found, key=lambda f: (f[0], f[1], f[2]))
        if mech is None:
            mech = self.log_mechanism(conv, svc)
        return Verdict(svc, mech, why, [cid])
