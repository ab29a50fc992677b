"""The simple reference agents, weakest first: what a pass rate is worth without reasoning.

* ``random_guess``   - lists the services, blames one at random (seeded by the incident).
* ``alert_blamer``   - blames the service of the monitor that paged.
* ``greedy_anomaly`` - blames the service whose errors grew most (falls for noisy neighbours).

The strongest reference agent, ``methodical``, is :mod:`mock_agents.methodical`.
"""

from __future__ import annotations

import hashlib
import random
from datetime import timedelta
from typing import Any

from .policy import (
    Policy,
    allowed_mechanism,
    cite,
    fault_diagnosis,
    paging_monitor,
    root_cause,
)
from .signals import (
    as_dict,
    as_list,
    best_mechanism,
    call,
    monitor_service,
    scope_service,
    service_names,
    total,
)
from .transcript import Transcript, iso, parse_time

DEFAULT_MECHANISMS = (
    "oom_killed", "crashloop_bad_config", "cpu_throttling", "node_pressure_eviction", "consumer_lag",
    "rebalance_storm", "bad_release", "latency_regression", "feature_flag", "connection_pool_exhaustion",
    "slow_query_migration", "lock_contention", "replica_lag", "certificate_expiry", "dns_failure",
    "zone_outage", "cache_stampede", "third_party_outage", "retry_storm", "disk_full", "memory_leak",
    "gc_pauses", "bad_data",
)  # fmt: skip


def seeded_rng(conv: Transcript, salt: str) -> random.Random:
    digest = hashlib.sha256(f"{salt}\0{conv.seed_text}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def windows(conv: Transcript, lookback: timedelta = timedelta(hours=1)) -> tuple[str, str, str]:
    """(baseline start, incident start, end) as ISO: the incident window is the hour before
    the page up to now, the baseline window the same length just before it."""
    start = conv.fired_at - lookback
    end = max(conv.now, conv.fired_at)
    return iso(start - (end - start)), iso(start), iso(end)


# --------------------------------------------------------------------------- random_guess


class RandomGuess(Policy):
    name = "random_guess"
    description = (
        "Lists the services and blames one at random with a random mechanism (chance baseline)."
    )

    def _list(self) -> dict[str, Any]:
        return call("list_services", {"limit": 500}, "services")

    def wanted(self, conv: Transcript) -> list[dict[str, Any]]:
        return [self._list()]

    def diagnose(self, conv: Transcript) -> dict[str, Any]:
        names = service_names(conv.content(self._list()["id"]))
        if not names:
            names = [monitor_service(conv.monitor) or "unknown"]
        rng = seeded_rng(conv, self.name)
        mechanisms = [m for m in (conv.mechanisms or DEFAULT_MECHANISMS) if m != "no_fault"]
        entity = rng.choice(names)
        mechanism = rng.choice(mechanisms) if mechanisms else None
        return fault_diagnosis(
            [root_cause(entity, mechanism, round(rng.uniform(0.05, 0.5), 3))],
            [],
            iso(conv.fired_at),
            [],
            f"Guessing {entity} ({mechanism}) at random among {len(names)} services.",
        )


# --------------------------------------------------------------------------- alert_blamer

_MONITOR_MECHANISMS: list[tuple[tuple[str, ...], str]] = [
    (("oom", "memory"), "oom_killed"),
    (("crashloop", "restart", "replicas", "pod"), "crashloop_bad_config"),
    (("cpu", "throttl"), "cpu_throttling"),
    (("lag", "backlog", "queue"), "consumer_lag"),
    (("connection", "pool"), "connection_pool_exhaustion"),
    (("disk", "volume"), "disk_full"),
    (("certificate", "ssl", "tls", "cert"), "certificate_expiry"),
    (("replica", "replication"), "replica_lag"),
    (("latency", "duration", "p99", "p95", "slow", "response time"), "latency_regression"),
    (("error", "5xx", "fail", "exception", "availability"), "bad_release"),
]


def mechanism_from_monitor(monitor: dict[str, Any]) -> str:
    text = " ".join(str(monitor.get(k) or "") for k in ("name", "query", "type")).lower()
    for words, mechanism in _MONITOR_MECHANISMS:
        if any(w in text for w in words):
            return mechanism
    return best_mechanism([text]) or "bad_release"


def alert_onset(monitor: dict[str, Any] | None, default: str) -> str:
    for tr in as_list((monitor or {}).get("transitions")):
        if isinstance(tr, dict) and str(tr.get("to", "")).lower() == "alert":
            t = parse_time(tr.get("ts") or tr.get("timestamp"))
            if t:
                return iso(t)
    return default


class AlertBlamer(Policy):
    name = "alert_blamer"
    description = "Blames the service of the monitor that paged, mechanism guessed from the monitor (symptom baseline)."

    def _monitors(self) -> dict[str, Any]:
        return call("get_monitors", {"query": "status:alert"}, "monitors")

    def wanted(self, conv: Transcript) -> list[dict[str, Any]]:
        return [self._monitors()]

    def diagnose(self, conv: Transcript) -> dict[str, Any]:
        mon_call = self._monitors()
        monitors = as_list(as_dict(conv.content(mon_call["id"])).get("monitors"))
        monitor = paging_monitor(conv, monitors)
        entity = monitor_service(monitor) or "unknown"
        mechanism = allowed_mechanism(conv, mechanism_from_monitor(monitor or {}))
        evidence = []
        if conv.issued(mon_call["id"]):
            evidence.append(
                cite(mon_call["id"], f"monitor {(monitor or {}).get('name')!r} is alerting on {entity}")
            )
        return fault_diagnosis(
            [root_cause(entity, mechanism, 0.5)],
            [],
            alert_onset(monitor, iso(conv.fired_at)),
            evidence,
            f"The page came from {(monitor or {}).get('name') or 'a monitor'} on {entity}; blaming {entity}.",
        )


# --------------------------------------------------------------------------- greedy_anomaly


class GreedyAnomaly(Policy):
    """Blames the biggest anomaly at or below the paged service: the one whose error *rate*
    rose the most in the quarter hour before the page against its own baseline (APM errors per
    request; error-log counts where a service has no APM). It lists the paged service's
    dependencies but follows no error and compares no timing, so any unrelated failure below
    the page that happens to be louder wins; the mechanism is whatever the blamed service's
    error and warning lines and events of the incident window suggest most."""

    name = "greedy_anomaly"
    description = "Blames the service whose error rate grew the most around the page (misled by noisy neighbours)."

    def _calls(self, conv: Transcript) -> tuple[dict[str, Any], ...]:
        b0, i0, end = windows(conv)
        agg = {"query": "status:error", "group_by": ["service"], "limit": 500}
        return (
            call("aggregate_logs", {**agg, "from": i0, "to": end}, "errors.incident"),
            call("aggregate_logs", {**agg, "from": b0, "to": i0}, "errors.baseline"),
            call(
                "query_metrics",
                {"query": "sum:trace.http.request.errors{*} by {service}", "from": b0, "to": end},
                "apm.errors",
            ),
            call(
                "query_metrics",
                {"query": "sum:trace.http.request.hits{*} by {service}", "from": b0, "to": end},
                "apm.hits",
            ),
            call(
                "get_service_dependencies",
                {"service": monitor_service(conv.monitor) or "", "direction": "downstream", "depth": 5},
                "below",
            ),
        )

    def below(self, conv: Transcript) -> set[str] | None:
        """The paged service and everything it depends on (None when unknown)."""
        paged = monitor_service(conv.monitor)
        content = as_dict(conv.content(self._calls(conv)[4]["id"]))
        names = {str(as_dict(d).get("service")) for d in as_list(content.get("downstream"))}
        names.discard("None")
        return ({paged} | names) if paged and (names or content) else None

    def _logs(self, conv: Transcript, service: str) -> dict[str, Any]:
        _, i0, end = windows(conv)
        return call(
            "search_logs",
            {"query": f"service:{service} status:error", "from": i0, "to": end, "limit": 50},
            f"logs.{service}",
        )

    def _reads(self, conv: Transcript, service: str) -> tuple[dict[str, Any], ...]:
        """What it reads about the service it blames: error logs, warnings, its events."""
        _, i0, end = windows(conv)
        return (
            self._logs(conv, service),
            call(
                "search_logs",
                {"query": f"service:{service} status:warn", "from": i0, "to": end, "limit": 50},
                f"warn.{service}",
            ),
            call(
                "get_events",
                {"query": f"service:{service}", "from": i0, "to": end, "limit": 50},
                f"events.{service}",
            ),
        )

    def _series(self, conv: Transcript, c: dict[str, Any]) -> dict[str, list[Any]]:
        out: dict[str, list[Any]] = {}
        for s in as_list(as_dict(conv.content(c["id"])).get("series")):
            svc = as_dict(as_dict(s).get("tags")).get("service") or scope_service(as_dict(s).get("scope"))
            if svc:
                out[str(svc)] = as_list(as_dict(s).get("pointlist"))
        return out

    def increases(self, conv: Transcript) -> tuple[dict[str, float], str | None]:
        """Growth of each service's error rate (or error-log count), and the call that showed it."""
        inc_call, base_call, err_call, hit_call, _ = self._calls(conv)
        below = self.below(conv)
        fired = conv.fired_at.timestamp()
        recent, base_end = fired - 900, fired - 3600
        errs, hits = self._series(conv, err_call), self._series(conv, hit_call)
        growth: dict[str, float] = {}
        for svc, pts in errs.items():
            h = hits.get(svc)
            if not h:
                continue
            e_now, h_now = total(pts, start=recent, end=fired + 60), total(h, start=recent, end=fired + 60)
            e_base, h_base = total(pts, end=base_end), total(h, end=base_end)
            if h_now > 0 and h_base > 0 and (below is None or svc in below):
                growth[svc] = e_now / h_now - e_base / h_base
        if any(v > 0 for v in growth.values()):
            return growth, err_call["id"]
        counts: dict[str, dict[str, float]] = {"inc": {}, "base": {}}
        for key, c in (("inc", inc_call), ("base", base_call)):
            for b in as_list(as_dict(conv.content(c["id"])).get("buckets")):
                svc = as_dict(as_dict(b).get("by")).get("service")
                if svc:
                    counts[key][str(svc)] = counts[key].get(str(svc), 0.0) + float(
                        as_dict(b).get("count") or 0
                    )
        growth = {
            s: n - counts["base"].get(s, 0.0)
            for s, n in counts["inc"].items()
            if below is None or s in below
        }
        return growth, inc_call["id"] if growth else None

    def top(self, conv: Transcript) -> str | None:
        growth, _ = self.increases(conv)
        if not growth:
            return None
        return max(sorted(growth), key=lambda s: growth[s])

    def wanted(self, conv: Transcript) -> list[dict[str, Any]]:
        calls = list(self._calls(conv))
        if all(conv.issued(c["id"]) for c in calls):
            top = self.top(conv)
            if top:
                calls.extend(self._reads(conv, top))
        return calls

    def diagnose(self, conv: Transcript) -> dict[str, Any]:
        growth, source = self.increases(conv)
        top = self.top(conv) or monitor_service(conv.monitor) or "unknown"
        logs_call, warn_call, events_call = self._reads(conv, top)
        logs = as_list(as_dict(conv.content(logs_call["id"])).get("logs"))
        messages = [str(as_dict(entry).get("message") or "") for entry in logs]
        # what it reads for the mechanism: every line and event of the service it blames, none
        # weighed against the baseline or against other services
        texts = messages + [
            str(as_dict(entry).get("message") or "")
            for entry in as_list(as_dict(conv.content(warn_call["id"])).get("logs"))
        ]
        texts += [
            f"{as_dict(ev).get('title') or ''} {as_dict(ev).get('text') or ''}"
            for ev in as_list(as_dict(conv.content(events_call["id"])).get("events"))
        ]
        mechanism = allowed_mechanism(conv, best_mechanism(texts) or "bad_release")
        evidence = []
        if source:
            evidence.append(
                cite(source, f"{top} error rate grew by {growth.get(top, 0):.3g}, the largest increase")
            )
        if logs:
            evidence.append(cite(logs_call["id"], f"{top} error log: {messages[0][:200]}"))
        return fault_diagnosis(
            [root_cause(top, mechanism, 0.6)],
            [],
            iso(conv.fired_at),
            evidence,
            f"{top} shows the largest growth in its error rate around the page; its logs suggest {mechanism}.",
        )
