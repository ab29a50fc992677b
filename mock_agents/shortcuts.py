"""Shortcut policies: the cheapest tricks an adversary would try, with no causal reasoning.

The shortcut battery (``proctor labels audit``) runs these through the real investigation loop
and scorer to measure how much of a label set's pass rate is available *without*
investigating. Each policy sees only the briefing and its tool results, like any target; none
follows dependencies to explain a symptom, compares hypotheses or times a propagation. Each is
written as an adversary who wants the highest pass rate for the least work, so they encode
what one learns by looking at a few generated worlds: which event sources, metric names, log
phrases, page titles and timestamp habits give the answer away. A label set on which one of
them scores well leaks its answers through that artifact.

Every policy answers a full diagnosis: an entity, a mechanism from the briefing's vocabulary,
a causal chain (the shortest dependency path from the entity up to the paged service, from the
graph the tools show), an onset (the generator's habit: ``fired_at - 240 s - 105 s`` per hop)
and the calls it used as evidence.

==================  ===================================================================
``lookup_table``     cheat sheet of artifacts: page title words, event sources and texts,
                     Kubernetes event reasons, metric names seen on one service, log phrases
                     -> mechanism; the artifact's service -> culprit (a handful of calls)
``keyword_grep``     searches the logs for each mechanism's signature phrases; blames the
                     earliest emitter, or the peer the line names (host, record, vendor)
``last_change``      the latest change event (deploy, config, flag, terraform, migration ...)
                     before the page on the paged service or below it; mechanism from its text
``metric_jump``      the (metric, service) series with the largest relative change against
                     its own baseline, over every metric; mechanism from the metric's name
``deepest_errors``   the erroring service deepest below the paged service
``trace_share``      the deepest service whose share of sampled spans jumped after the page
``loudest``          the service with the most error logs around the page
``first_alert``      the service of the earliest monitor to leave OK before the page
``rarest_artifact``  the service carrying a metric name, event source or Kubernetes event
                     reason that no other service has
``always_no_fault``  answers "no fault" every time
``paged_title``      blames the paged service with the mechanism its title suggests
``timestamp_tell``   the latest change event whose timestamp has a different precision from
                     most events (whole seconds among milliseconds)
``combo``            a cascade over the above, ordered by how often each trick is right
==================  ===================================================================
"""

from __future__ import annotations

import re
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import timedelta
from statistics import median
from typing import Any

from .conversation import Conversation, iso, parse_time
from .policies import Policy, allowed_mechanism
from .signals import as_dict, as_list, call, monitor_service, tag_value

LOOKBACK = timedelta(hours=3)
INCIDENT = timedelta(minutes=45)
RECENT = timedelta(minutes=15)
MAX_DEPTH = 5
MAX_PATH_EDGE_CALLS = 12

# --------------------------------------------------------------------------- the cheat sheet

#: (mechanism, phrases, who is to blame): "emitter" = the service that logs the line, "peer" =
#: the service the line names (a host, a DNS record, a vendor) when it names one. Most specific
#: first: when several mechanisms' phrases show up, the earlier row wins.
SIGNATURES: list[tuple[str, tuple[str, ...], str]] = [
    ("bad_data", ("file exceeds", "too many columns", "too many features", "too many rules",
                  "too many entries", "too many fields", "expected at most", "limit is"), "peer"),
    ("disk_full", ("could not write to file", "archive command failed",
                   "No space left on device"), "emitter"),
    ("certificate_expiry", ("x509", "certificate has expired", "CERT_HAS_EXPIRED",
                            "CERTIFICATE_EXPIRED", "bad certificate", "SSLError",
                            "certificate verify failed", "PKIX path validation failed"), "peer"),
    ("dns_failure", ("no such host", "ENOTFOUND", "Name or service not known",
                     "UnknownHostException", "NXDOMAIN", "Temporary failure in name resolution"),
     "peer"),
    ("memory_leak", ("JavaScript heap out of memory", "Reached heap limit"), "emitter"),
    ("oom_killed", ("OOMKilled", "Perhaps out of memory", "exit code 137", "OutOfMemoryError",
                    "Memory cgroup out of memory"), "emitter"),
    ("connection_pool_exhaustion", ("HikariPool", "Connection is not available",
                                    "Connection leak detection",
                                    "Could not open JPA EntityManager"), "emitter"),
    ("lock_contention", ("lock timeout", "LockNotAvailable", "deadlock detected"), "emitter"),
    ("rebalance_storm", ("group is rebalancing", "CommitFailedException", "heartbeat failed",
                         "Revoking previously assigned"), "emitter"),
    ("consumer_lag", ("consumer poll timeout", "max.poll.interval"), "emitter"),
    ("cpu_throttling", ("cpu throttled", "cfs_throttled"), "emitter"),
    ("crashloop_bad_config", ("APPLICATION FAILED TO START", "validation error for Settings",
                              "missing unit in duration", "CrashLoopBackOff",
                              "no healthy upstream"), "emitter"),
    ("cache_stampede", ("Memory overcommit", "scheduling shutdown", "User requested shutdown",
                        "Unable to connect to Redis"), "emitter"),
    ("slow_query_migration", ("ORDER BY created_at DESC",), "emitter"),
    ("latency_regression", ("database queries",), "emitter"),
    ("retry_storm", ("Work queue full", "shedding load", "WORKER TIMEOUT",
                     "too many concurrent requests"), "emitter"),
    ("third_party_outage", ("Service Unavailable on POST", "status code 429",
                            "timeout awaiting response headers from"), "peer"),
    ("bad_release", ("NullPointerException", "must be resolved before",
                     "Traceback (most recent call last)"), "emitter"),
]  # fmt: skip
SIGNATURE_RANK = {m: i for i, (m, _, _) in enumerate(SIGNATURES)}

#: event source -> [(words in its title/text, mechanism)], first match wins; "" matches anything
EVENT_RULES: dict[str, list[tuple[str, str]]] = {
    "feature_flag": [("", "feature_flag")],
    "flag": [("", "feature_flag")],
    "marketing": [("", "no_fault")],
    "statuspage": [("", "third_party_outage")],
    "config": [("kafka", "rebalance_storm"), ("session.timeout", "rebalance_storm"),
               ("request-inspection", "cpu_throttling"), ("regex", "cpu_throttling"),
               ("cpu", "cpu_throttling"), ("", "crashloop_bad_config")],
    "terraform": [("dns", "dns_failure"), ("record", "dns_failure"),
                  ("storage", "disk_full"), ("pg_wal", "disk_full"), ("", "disk_full")],
    "database": [("migration", "slow_query_migration"), ("index", "slow_query_migration"),
                 ("grant", "bad_data"), ("permission", "bad_data"), ("", "slow_query_migration")],
    "migration": [("", "slow_query_migration")],
}  # fmt: skip
#: Kubernetes event reason -> mechanism
REASON_RULES: dict[str, str] = {
    "OOMKilling": "oom_killed",
    "OOMKilled": "oom_killed",
    "Evicted": "node_pressure_eviction",
    "Failed": "certificate_expiry",  # cert-manager: Certificate renewal Failed
    "NodeNotSchedulable": "cache_stampede",
    "Scheduled": "cache_stampede",  # a stateful pod rescheduled: the cache restarted empty
    "BackOff": "crashloop_bad_config",
}
#: words in a metric name -> mechanism (first match wins)
METRIC_RULES: list[tuple[str, str]] = [
    ("cfs.throttled", "cpu_throttling"), ("throttled", "cpu_throttling"),
    ("generated_", "bad_data"), ("size_kb", "bad_data"),
    ("terminated", "oom_killed"), ("postgresql.locks", "lock_contention"), ("locks", "lock_contention"),
    ("replication", "replica_lag"), ("consumer_lag", "consumer_lag"),
    ("percent_usage_connections", "connection_pool_exhaustion"),
    ("connections", "connection_pool_exhaustion"), ("disk", "disk_full"),
    ("evicted", "cache_stampede"), ("keyspace_misses", "cache_stampede"),
    ("hit_ratio", "cache_stampede"), ("restarts", "crashloop_bad_config"),
    ("replicas_available", "crashloop_bad_config"), ("heap", "memory_leak"),
    ("memory", "memory_leak"), ("gc", "gc_pauses"), ("postgres.query.duration", "slow_query_migration"),
    ("query.hits", "latency_regression"), ("duration", "latency_regression"),
    ("cpu", "cpu_throttling"),
]  # fmt: skip
#: words of a page title -> mechanism, and what a page of that kind most often is
TITLE_RULES: list[tuple[str, str]] = [
    ("request rate above", "no_fault"), ("requests per", "no_fault"), ("traffic", "no_fault"),
    ("consumer lag", "rebalance_storm"), ("lag", "consumer_lag"),
    ("latency", "cpu_throttling"), ("duration", "cpu_throttling"),
    ("disk", "disk_full"), ("memory", "oom_killed"), ("certificate", "certificate_expiry"),
    ("error rate", "connection_pool_exhaustion"), ("error", "connection_pool_exhaustion"),
]  # fmt: skip
CHANGE_SOURCES = frozenset(
    {"deploy", "deployment", "config", "feature_flag", "flag", "terraform", "migration",
     "database", "rollout", "statuspage", "marketing"}
)  # fmt: skip
CHANGE_EVENTS_QUERY = "-source:kubernetes -source:autoscaling -source:cron"
#: mechanism words in a change event's text (a deploy's commit message): the generator draws
#: culprit commit messages from per-mechanism lists, so the message names the mechanism
CHANGE_TEXT_RULES: list[tuple[str, str]] = [
    ("re-pricing in a single transaction", "lock_contention"), ("for update", "lock_contention"),
    ("inside the request transaction", "lock_contention"), ("lock", "lock_contention"),
    ("single transaction", "connection_pool_exhaustion"), ("before committing", "connection_pool_exhaustion"),
    ("inside the", "connection_pool_exhaustion"), ("pool", "connection_pool_exhaustion"),
    ("lazily", "latency_regression"), ("per row", "latency_regression"),
    ("per-item", "latency_regression"), ("n+1", "latency_regression"),
    ("batch size", "oom_killed"), ("at startup", "oom_killed"), ("buffer", "oom_killed"),
    ("memory limit", "oom_killed"), ("per-session cache", "memory_leak"),
    ("listener per request", "memory_leak"), ("memoize", "memory_leak"), ("in-memory", "memory_leak"),
    ("each event", "consumer_lag"), ("every event", "consumer_lag"), ("per message", "consumer_lag"),
    ("inline instead of", "retry_storm"), ("synchronously", "retry_storm"), ("slow path", "retry_storm"),
    ("per-request audit", "retry_storm"), ("extra input field", "bad_data"),
    ("content update", "bad_data"), ("rounding", "bad_release"), ("currency formatting", "bad_release"),
    ("address schema", "bad_release"), ("merge logic", "bad_release"),
    ("shipping addresses", "bad_release"),
]  # fmt: skip


def _rule(rules: list[tuple[str, str]], text: str) -> str | None:
    low = text.lower()
    for words, mechanism in rules:
        if words in low:
            return mechanism
    return None


def event_mechanism(event: dict[str, Any]) -> str | None:
    """The mechanism a change event's source and text suggest, if any rule matches."""
    text = f"{event.get('title') or ''} {event.get('text') or ''}"
    source = str(event.get("source") or "").lower()
    if source in EVENT_RULES:
        return _rule(EVENT_RULES[source], text)
    if source == "kubernetes":
        return REASON_RULES.get(tag_value(event.get("tags"), "reason") or "")
    if source in ("deploy", "deployment", "rollout"):
        return _rule(CHANGE_TEXT_RULES, text)
    return None


def title_mechanism(title: str) -> str | None:
    return _rule(TITLE_RULES, title)


def metric_mechanism(metric: str) -> str | None:
    return _rule(METRIC_RULES, metric)


def signature_of(message: str) -> str | None:
    low = message.lower()
    for mechanism, phrases, _ in SIGNATURES:
        if any(p.lower() in low for p in phrases):
            return mechanism
    return None


def _ts(record: dict[str, Any]) -> float:
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

    def calls(self, conv: Conversation) -> list[dict[str, Any]]:
        return []

    def verdict(self, conv: Conversation) -> Verdict | None:
        raise NotImplementedError

    # ---- shared calls

    def window(self, conv: Conversation, back: timedelta = LOOKBACK) -> tuple[str, str]:
        return iso(conv.fired_at - back), iso(max(conv.now, conv.fired_at))

    def c_services(self) -> dict[str, Any]:
        return call("list_services", {"limit": 500}, "services")

    def c_deps(self, service: str, direction: str = "downstream", depth: int = MAX_DEPTH) -> dict[str, Any]:
        args = {"service": service, "direction": direction, "depth": depth}
        return call("get_service_dependencies", args, f"deps.{direction[:2]}{depth}.{service}")

    def c_changes(self, conv: Conversation) -> dict[str, Any]:
        start, end = self.window(conv)
        args = {"query": CHANGE_EVENTS_QUERY, "from": start, "to": end, "limit": 500}
        return call("get_events", args, "changes")

    def c_kube_events(self, conv: Conversation) -> dict[str, Any]:
        start, end = self.window(conv)
        args = {"query": "source:kubernetes -reason:Started", "from": start, "to": end, "limit": 500}
        return call("get_events", args, "kube")

    def c_monitors(self) -> dict[str, Any]:
        return call("get_monitors", {"limit": 500}, "monitors")

    def c_metric_names(self) -> dict[str, Any]:
        return call("list_metrics", {"limit": 500}, "metric-names")

    def c_error_counts(self, conv: Conversation, back: timedelta, until: timedelta = timedelta(0)) -> dict[str, Any]:
        args = {
            "query": "status:(error OR critical)",
            "from": iso(conv.fired_at - back),
            "to": iso(conv.fired_at - until) if until else iso(max(conv.now, conv.fired_at)),
            "group_by": ["service"],
            "limit": 500,
        }
        return call("aggregate_logs", args, f"errcount.{int(back.total_seconds())}")

    def c_error_logs(self, conv: Conversation, service: str | None = None) -> dict[str, Any]:
        start, end = iso(conv.fired_at - INCIDENT), iso(max(conv.now, conv.fired_at))
        q = "status:(error OR critical OR warn)" + (f" service:{service}" if service else "")
        args = {"query": q, "from": start, "to": end, "limit": 200}
        return call("search_logs", args, f"logs.{service or 'all'}")

    # ---- reading answers

    def content(self, conv: Conversation, c: dict[str, Any]) -> dict[str, Any]:
        return as_dict(conv.content(c["id"]))

    def answered(self, conv: Conversation, calls: list[dict[str, Any]]) -> bool:
        return all(c["id"] in conv.results for c in calls)

    def paged(self, conv: Conversation) -> str | None:
        return monitor_service(conv.monitor)

    def services(self, conv: Conversation) -> dict[str, dict[str, Any]]:
        items = as_list(self.content(conv, self.c_services()).get("services"))
        return {str(s["name"]): s for s in map(as_dict, items) if s.get("name")}

    def depths(self, conv: Conversation, service: str, direction: str = "downstream") -> dict[str, int]:
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

    def below_paged(self, conv: Conversation) -> dict[str, int]:
        paged = self.paged(conv)
        return self.depths(conv, paged) if paged else {}

    def change_events(self, conv: Conversation, before_page: bool = True) -> list[dict[str, Any]]:
        events = [as_dict(e) for e in as_list(self.content(conv, self.c_changes(conv)).get("events"))]
        fired = conv.fired_at.timestamp()
        return [e for e in events if e and (not before_page or _ts(e) <= fired)]

    def event_service(self, conv: Conversation, event: dict[str, Any]) -> str | None:
        """The service an event is about: its service tag, else a service its text names."""
        svc = tag_value(event.get("tags"), "service")
        if svc:
            return svc
        text = f"{event.get('title') or ''} {event.get('text') or ''}"
        return self.named_service(conv, text, exclude=None)

    def named_service(self, conv: Conversation, text: str, exclude: str | None) -> str | None:
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

    def log_mechanism(self, conv: Conversation, entity: str | None) -> str | None:
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

    def path_calls(self, conv: Conversation, entity: str | None) -> list[dict[str, Any]]:
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

    def _path_nodes(self, conv: Conversation, entity: str, down: dict[str, int]) -> set[str]:
        up = self.depths(conv, entity, "upstream")
        d = down[entity]
        return {x for x in down if x in up and down[x] + up[x] == d}

    def chain(self, conv: Conversation, entity: str | None) -> list[str]:
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

    def base_calls(self, conv: Conversation) -> list[dict[str, Any]]:
        paged = self.paged(conv)
        return [self.c_services()] + ([self.c_deps(paged)] if paged else [])

    def _verdict(self, conv: Conversation) -> Verdict | None:
        if "verdict" not in conv.memo:
            conv.memo["verdict"] = self.verdict(conv)
        return conv.memo["verdict"]

    def wanted(self, conv: Conversation) -> list[dict[str, Any]]:
        first = self.base_calls(conv) + self.calls(conv)
        if not self.answered(conv, first):
            return first
        v = self._verdict(conv)
        extra = self.path_calls(conv, v.entity) if v and not v.no_fault else []
        return first + extra

    def onset_guess(self, conv: Conversation, chain: list[str]) -> str:
        hops = max(1, len(chain)) - 1
        return iso(conv.fired_at - timedelta(seconds=240 + 105 * hops))

    def diagnose(self, conv: Conversation) -> dict[str, Any]:
        v = self._verdict(conv) or Verdict(self.paged(conv), None, "nothing stood out")
        if not v.no_fault and not v.entity:
            v = Verdict(self.paged(conv), v.mechanism, v.why, v.evidence, confidence=v.confidence)
        evidence = [
            {"tool_call_id": cid, "description": f"{self.name}: {v.why}"[:500]}
            for cid in dict.fromkeys(v.evidence)
            if cid in conv.results
        ]
        if v.no_fault or not v.entity:  # no entity at all: nothing to blame
            return {
                "no_fault": True,
                "root_causes": [],
                "causal_chain": [],
                "evidence": evidence,
                "summary": f"No fault: {v.why}",
            }
        mechanism = allowed_mechanism(conv, v.mechanism) or allowed_mechanism(
            conv, title_mechanism(str(conv.problem.get("title") or "")) or "bad_release"
        )
        if mechanism == "no_fault":
            mechanism = "bad_release"
        chain = self.chain(conv, v.entity)
        return {
            "no_fault": False,
            "root_causes": [{"entity": v.entity, "mechanism": mechanism, "confidence": v.confidence}],
            "causal_chain": chain,
            "onset": self.onset_guess(conv, chain),
            "evidence": evidence,
            "summary": f"{v.entity} ({mechanism}): {v.why}",
        }


# --------------------------------------------------------------------------- the tricks


class AlwaysNoFault(Shortcut):
    name = "always_no_fault"
    description = "Answers 'no fault' without looking (the no-fault prior)."

    def base_calls(self, conv: Conversation) -> list[dict[str, Any]]:
        return []

    def verdict(self, conv: Conversation) -> Verdict:
        return Verdict(None, "no_fault", "answering 'no fault' without looking", no_fault=True)


class PagedTitle(Shortcut):
    name = "paged_title"
    description = "Blames the paged service with the mechanism its page title suggests."

    def verdict(self, conv: Conversation) -> Verdict:
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

    def calls(self, conv: Conversation) -> list[dict[str, Any]]:
        return [self.c_changes(conv), self.c_error_logs(conv)]

    def pick(self, conv: Conversation, events: list[dict[str, Any]]) -> dict[str, Any] | None:
        below = self.below_paged(conv)
        changes = [
            e for e in events
            if str(e.get("source") or "").lower() in CHANGE_SOURCES
            and str(e.get("source")).lower() != "marketing"
        ]  # fmt: skip
        near = [e for e in changes if self.event_service(conv, e) in below] or changes
        return max(near, key=_ts, default=None)

    def verdict(self, conv: Conversation) -> Verdict | None:
        event = self.pick(conv, self.change_events(conv))
        if event is None:
            return None
        entity = self.event_service(conv, event)
        mech = event_mechanism(event) or self.log_mechanism(conv, entity)
        why = f"latest change before the page: {event.get('title')} ({iso(_ts(event))})"
        return Verdict(entity, mech, why, [self.c_changes(conv)["id"]])


class TimestampTell(LastChange):
    name = "timestamp_tell"
    description = (
        "Blames the latest change event whose timestamp precision differs from most events' "
        "(whole seconds among milliseconds)."
    )

    def pick(self, conv: Conversation, events: list[dict[str, Any]]) -> dict[str, Any] | None:
        def whole(e: dict[str, Any]) -> bool:
            return float(_ts(e)).is_integer()

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

    def c_signature(self, conv: Conversation, mechanism: str, phrases: tuple[str, ...]) -> dict[str, Any]:
        q = " OR ".join(f'"{p}"' for p in phrases)
        args = {
            "query": q,
            "from": iso(conv.fired_at - INCIDENT),
            "to": iso(max(conv.now, conv.fired_at)),
            "limit": 50,
            "sort": "timestamp",
        }
        return call("search_logs", args, f"sig.{mechanism}")

    def calls(self, conv: Conversation) -> list[dict[str, Any]]:
        return [self.c_signature(conv, m, p) for m, p, _ in SIGNATURES]

    def hits(self, conv: Conversation) -> list[tuple[str, str, list[dict[str, Any]], str]]:
        """(mechanism, who, matching lines oldest first, call id) for every phrase group that hit."""
        out = []
        for m, phrases, who in SIGNATURES:
            c = self.c_signature(conv, m, phrases)
            lines = [as_dict(r) for r in as_list(self.content(conv, c).get("logs"))]
            if len(lines) >= 2:
                out.append((m, who, sorted(lines, key=_ts), c["id"]))
        return out

    def blame(self, conv: Conversation, mechanism: str, lines: list[dict[str, Any]]) -> str | None:
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

    def verdict(self, conv: Conversation) -> Verdict | None:
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

    def calls(self, conv: Conversation) -> list[dict[str, Any]]:
        return [self.c_changes(conv), self.c_kube_events(conv), self.c_metric_names(),
                self.c_error_logs(conv)]  # fmt: skip

    def clues(self, conv: Conversation) -> list[tuple[str | None, str | None, str, str]]:
        """(entity, mechanism, why, call id), most telling first."""
        out: list[tuple[str | None, str | None, str, str]] = []
        below = self.below_paged(conv)
        changes = sorted(self.change_events(conv), key=_ts, reverse=True)
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
        deploys.sort(key=lambda e: (self.event_service(conv, e) not in below, -_ts(e)))
        for e in deploys:
            mech = _rule(CHANGE_TEXT_RULES, f"{e.get('title') or ''} {e.get('text') or ''}")
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
            lines = sorted((r for r in logs if signature_of(str(r.get("message") or "")) == mech), key=_ts)
            out.append((self.blame(conv, mech, lines), mech, f"{mech} phrase in the logs", self.c_error_logs(conv)["id"]))
        return out

    def verdict(self, conv: Conversation) -> Verdict | None:
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


class MetricJump(Shortcut):
    name = "metric_jump"
    description = (
        "Blames the service, at or below the paged one, of the series whose level moved by the "
        "largest factor against its own baseline, over every metric."
    )
    max_metrics = 48
    #: metric names that say nothing about a mechanism: then the logs are asked
    GENERIC = ("errors", "hits", "duration", "requests")

    def names(self, conv: Conversation) -> list[str]:
        items = as_list(self.content(conv, self.c_metric_names()).get("metrics"))
        out = []
        for m in map(as_dict, items):
            if m.get("metric") and "service" in as_dict(m.get("tags")):
                out.append(str(m["metric"]))
        return sorted(out)[: self.max_metrics]

    def c_series(self, conv: Conversation, metric: str) -> dict[str, Any]:
        start, end = self.window(conv)
        q = f"avg:{metric}{{*}} by {{service}}.rollup(avg, 300)"  # 5-minute points are plenty
        args = {"query": q, "from": start, "to": end}
        return call("query_metrics", args, f"m.{metric}")

    def calls(self, conv: Conversation) -> list[dict[str, Any]]:
        first = [self.c_metric_names(), self.c_error_logs(conv)]
        if not self.answered(conv, first):
            return first
        return first + [self.c_series(conv, n) for n in self.names(conv)]

    def jumps(self, conv: Conversation) -> list[tuple[float, str, str, str]]:
        """(factor, service, metric, call id) at or below the paged service, largest first.
        The factor is the recent level (the quarter hour before the page) over the baseline
        median (before the last hour), or its inverse for a drop."""
        fired = conv.fired_at.timestamp()
        below = self.below_paged(conv)
        out = []
        for metric in self.names(conv):
            c = self.c_series(conv, metric)
            for s in map(as_dict, as_list(self.content(conv, c).get("series"))):
                svc = tag_value(s.get("tags"), "service") or _scope_service(s.get("scope"))
                if not svc or (below and svc not in below):
                    continue
                pts = [(float(p[0]), float(p[1])) for p in as_list(s.get("pointlist"))
                       if isinstance(p, list) and len(p) >= 2 and p[0] is not None and p[1] is not None]  # fmt: skip
                base = [v for t, v in pts if t < fired - 3600]
                post = [v for t, v in pts if fired - RECENT.total_seconds() <= t <= fired]
                if len(base) < 5 or not post:
                    continue
                b, p = median(base), sum(post) / len(post)
                factor = (p + 1e-3) / (b + 1e-3) if p >= b else (b + 1e-3) / (p + 1e-3)
                out.append((factor, str(svc), metric, c["id"]))
        return sorted(out, key=lambda x: (-x[0], x[1], x[2]))

    def verdict(self, conv: Conversation) -> Verdict | None:
        jumps = self.jumps(conv)
        if not jumps:
            return None
        factor, svc, metric, cid = jumps[0]
        generic = any(w in metric for w in self.GENERIC)
        mech = (None if generic else metric_mechanism(metric)) or self.log_mechanism(conv, svc)
        mech = mech or metric_mechanism(metric)
        return Verdict(svc, mech, f"{metric} on {svc} moved {factor:.1f}x from its baseline", [cid])


def _scope_service(scope: Any) -> str | None:
    for part in str(scope or "").split(","):
        if part.strip().startswith("service:"):
            return part.strip()[len("service:") :]
    return None


class ErrorCounts(Shortcut):
    """Shared by the policies that rank services by their error logs: counts in the quarter
    hour around the page against the baseline rate (before the last hour)."""

    def c_recent(self, conv: Conversation) -> dict[str, Any]:
        return self.c_error_counts(conv, RECENT)

    def c_baseline(self, conv: Conversation) -> dict[str, Any]:
        return self.c_error_counts(conv, LOOKBACK, until=timedelta(hours=1))

    def calls(self, conv: Conversation) -> list[dict[str, Any]]:
        return [self.c_recent(conv), self.c_baseline(conv), self.c_error_logs(conv)]

    def counts(self, conv: Conversation) -> tuple[Counter[str], Counter[str]]:
        recent: Counter[str] = Counter()
        base: Counter[str] = Counter()
        for key, c in ((recent, self.c_recent(conv)), (base, self.c_baseline(conv))):
            for b in map(as_dict, as_list(self.content(conv, c).get("buckets"))):
                svc = as_dict(b.get("by")).get("service")
                if svc:
                    key[str(svc)] += int(float(b.get("count") or 0))
        return recent, base

    def rising(self, conv: Conversation) -> dict[str, float]:
        """Services whose error rate (per minute) more than doubled, with their recent rate."""
        recent, base = self.counts(conv)
        end = max(conv.now, conv.fired_at)
        recent_min = max(1.0, (end - (conv.fired_at - RECENT)).total_seconds() / 60)
        base_min = (LOOKBACK - timedelta(hours=1)).total_seconds() / 60
        out = {}
        for s, n in recent.items():
            rate = n / recent_min
            if rate > 2 * base.get(s, 0) / base_min + 0.3:
                out[s] = rate
        return out


class Loudest(ErrorCounts):
    name = "loudest"
    description = "Blames the service with the most error logs around the page."

    def verdict(self, conv: Conversation) -> Verdict | None:
        recent, _ = self.counts(conv)
        if not recent:
            return None
        svc = max(sorted(recent), key=lambda s: recent[s])
        return Verdict(svc, self.log_mechanism(conv, svc), f"{svc} logged {recent[svc]} errors, the most",
                       [self.calls(conv)[0]["id"]])


class DeepestErrors(ErrorCounts):
    name = "deepest_errors"
    description = "Blames the service deepest below the paged one whose error rate rose."

    def verdict(self, conv: Conversation) -> Verdict | None:
        rising = self.rising(conv)
        below = self.below_paged(conv)
        erroring = [s for s in rising if s in below]
        if not erroring:
            return None
        svc = max(sorted(erroring), key=lambda s: (below[s], rising[s]))
        why = f"{svc} is erroring {below[svc]} hops below the paged service"
        return Verdict(svc, self.log_mechanism(conv, svc), why, [self.c_recent(conv)["id"]])


class TraceShare(Shortcut):
    name = "trace_share"
    description = (
        "Blames the service, at or below the paged one, whose share of sampled spans rose most "
        "after the page (the deeper one on a tie)."
    )
    slice_s = 1200

    def c_spans(self, t0: float, t1: float) -> dict[str, Any]:
        return call("search_spans", {"from": iso(t0), "to": iso(t1), "limit": 200}, f"spans.{int(t0)}")

    def slices(self, conv: Conversation) -> list[tuple[float, dict[str, Any]]]:
        """(slice start, call): every span of the window, a slice of 20 minutes per call."""
        end = max(conv.now, conv.fired_at).timestamp()
        t, out = end, []
        while t > (conv.fired_at - LOOKBACK).timestamp():
            out.append((t - self.slice_s, self.c_spans(t - self.slice_s, t)))
            t -= self.slice_s
        return out

    def calls(self, conv: Conversation) -> list[dict[str, Any]]:
        return [c for _, c in self.slices(conv)] + [self.c_error_logs(conv)]

    def verdict(self, conv: Conversation) -> Verdict | None:
        fired = conv.fired_at.timestamp()
        pre: Counter[str] = Counter()
        post: Counter[str] = Counter()
        for _, c in self.slices(conv):
            for sp in map(as_dict, as_list(self.content(conv, c).get("spans"))):
                t, svc = _ts(sp), sp.get("service")
                if not svc:
                    continue
                if t < fired - 1800:
                    pre[str(svc)] += 1
                elif t >= fired - 600:
                    post[str(svc)] += 1
        n_pre, n_post = max(1, sum(pre.values())), max(1, sum(post.values()))
        below = self.below_paged(conv)
        jump = {s: post[s] / n_post - pre[s] / n_pre for s in post if not below or s in below}
        if not jump:
            return None
        svc = max(sorted(jump), key=lambda s: (round(jump[s], 3), below.get(s, 0)))
        why = f"{svc}'s share of spans rose from {pre[svc] / n_pre:.0%} to {post[svc] / n_post:.0%}"
        return Verdict(svc, self.log_mechanism(conv, svc), why, [self.slices(conv)[0][1]["id"]])


class FirstAlert(Shortcut):
    name = "first_alert"
    description = "Blames the service of the earliest monitor to leave OK before the page."

    def calls(self, conv: Conversation) -> list[dict[str, Any]]:
        return [self.c_monitors(), self.c_error_logs(conv)]

    def verdict(self, conv: Conversation) -> Verdict | None:
        fired = conv.fired_at.timestamp()
        first: list[tuple[float, str, dict[str, Any]]] = []
        for m in map(as_dict, as_list(self.content(conv, self.c_monitors()).get("monitors"))):
            for tr in map(as_dict, as_list(m.get("transitions"))):
                t = _ts(tr)
                if str(tr.get("to", "")).lower() in ("alert", "warn") and fired - 5400 <= t <= fired + 60:
                    svc = monitor_service(m)
                    if svc:
                        first.append((t, svc, m))
                    break
        if not first:
            return None
        t, svc, m = min(first, key=lambda x: (x[0], x[1]))
        text = f"{m.get('name')} {m.get('query')}"
        mech = self.log_mechanism(conv, svc) or metric_mechanism(text) or title_mechanism(text)
        return Verdict(svc, mech, f"{m.get('name')!r} was the first monitor to trip ({iso(t)})", [self.c_monitors()["id"]])


class RarestArtifact(Shortcut):
    name = "rarest_artifact"
    description = "Blames the service carrying a metric name, event source or event reason no other service has."
    common_sources = frozenset({"deploy", "kubernetes", "autoscaling", "cron"})

    def calls(self, conv: Conversation) -> list[dict[str, Any]]:
        return [self.c_metric_names(), self.c_changes(conv), self.c_kube_events(conv), self.c_error_logs(conv)]

    def verdict(self, conv: Conversation) -> Verdict | None:
        below = self.below_paged(conv)
        found: list[tuple[int, float, str, str | None, str, str]] = []  # (rank, -ts, service, mech, why, call)
        events = self.change_events(conv)
        per_source = Counter(str(e.get("source")) for e in events)
        for e in events:
            src = str(e.get("source"))
            svc = self.event_service(conv, e)
            if src not in self.common_sources and per_source[src] <= 3 and svc:
                found.append((0, -_ts(e), svc, event_mechanism(e), f"the only {src} event is on {svc}", self.c_changes(conv)["id"]))
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


class Combo(Shortcut):
    """A cascade: each member's verdict in a fixed order of how often it is right; the first
    that names a culprit wins, and the mechanism is taken from the first member that has one
    for that culprit."""

    name = "combo"
    description = "A cascade over the other shortcuts, built to maximise the pass rate."
    #: most often right first (measured on core); metric_jump is left out: it costs forty
    #: queries and is right less often than the tricks before it
    order = ("lookup_table", "keyword_grep", "last_change", "timestamp_tell", "rarest_artifact",
             "trace_share", "deepest_errors", "paged_title")  # fmt: skip

    def members(self) -> list[Shortcut]:
        return [SHORTCUTS[n] for n in self.order]

    def calls(self, conv: Conversation) -> list[dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for m in self.members():
            for c in m.base_calls(conv) + m.calls(conv):
                out.setdefault(c["id"], c)
        return list(out.values())

    def verdict(self, conv: Conversation) -> Verdict | None:
        verdicts = []
        for m in self.members():
            try:
                v = m.verdict(conv)
            except Exception:  # noqa: BLE001 - one trick failing must not sink the cascade
                v = None
            verdicts.append(v)
        first = next((v for v in verdicts if v and (v.entity or v.no_fault)), None)
        if first is None or first.no_fault:
            return first
        if not first.mechanism:
            first.mechanism = next((v.mechanism for v in verdicts if v and v.entity == first.entity and v.mechanism), None)
        return first


SHORTCUT_CLASSES: tuple[type[Shortcut], ...] = (
    LookupTable, KeywordGrep, LastChange, MetricJump, DeepestErrors, TraceShare, Loudest,
    FirstAlert, RarestArtifact, AlwaysNoFault, PagedTitle, TimestampTell, Combo,
)  # fmt: skip
SHORTCUTS: dict[str, Shortcut] = {cls.name: cls() for cls in SHORTCUT_CLASSES}
SHORTCUT_NAMES: tuple[str, ...] = tuple(SHORTCUTS)
COMBINATION = "combo"
