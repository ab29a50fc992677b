"""The shortcut policies' cheat sheet: which artifact gives which mechanism away.

What an adversary learns by looking at a few generated worlds, as tables: the signature
phrases of each mechanism in the logs (and whom a line blames: the service that logs it or
the one it names), event sources and texts, Kubernetes event reasons, metric names, page
titles and commit messages, each mapped to the mechanism it suggests. The tricks of
:mod:`mock_agents.shortcuts` read the tools' answers through these.
"""

from __future__ import annotations

from typing import Any

from .signals import tag_value

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


def match_rule(rules: list[tuple[str, str]], text: str) -> str | None:
    """The mechanism of the first rule whose words ``text`` contains (case-insensitive)."""
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
        return match_rule(EVENT_RULES[source], text)
    if source == "kubernetes":
        return REASON_RULES.get(tag_value(event.get("tags"), "reason") or "")
    if source in ("deploy", "deployment", "rollout"):
        return match_rule(CHANGE_TEXT_RULES, text)
    return None


def title_mechanism(title: str) -> str | None:
    return match_rule(TITLE_RULES, title)


def metric_mechanism(metric: str) -> str | None:
    return match_rule(METRIC_RULES, metric)


def signature_of(message: str) -> str | None:
    low = message.lower()
    for mechanism, phrases, _ in SIGNATURES:
        if any(p.lower() in low for p in phrases):
            return mechanism
    return None
