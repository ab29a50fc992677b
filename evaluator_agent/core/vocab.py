"""Closed vocabularies shared by labels, diagnoses and reports.

Targets see the mechanism list (it is part of the briefing: a closed vocabulary is not an
answer); everything else here is label metadata.
"""

from __future__ import annotations

# mechanism -> (segment, problem category)
MECHANISM_INFO: dict[str, tuple[str, str]] = {
    "oom_killed": ("kubernetes", "resource_exhaustion"),
    "crashloop_bad_config": ("kubernetes", "misconfiguration"),
    "cpu_throttling": ("kubernetes", "resource_exhaustion"),
    "node_pressure_eviction": ("kubernetes", "resource_exhaustion"),
    "consumer_lag": ("kafka", "saturation"),
    "rebalance_storm": ("kafka", "instability"),
    "bad_release": ("deployment", "code_defect"),
    "latency_regression": ("deployment", "code_defect"),
    "feature_flag": ("deployment", "misconfiguration"),
    "connection_pool_exhaustion": ("database", "saturation"),
    "slow_query_migration": ("database", "performance"),
    "lock_contention": ("database", "contention"),
    "replica_lag": ("database", "data_consistency"),
    "certificate_expiry": ("network", "expiry"),
    "dns_failure": ("network", "connectivity"),
    "zone_outage": ("network", "infrastructure_failure"),
    "cache_stampede": ("cache", "saturation"),
    "third_party_outage": ("dependency", "external_failure"),
    "retry_storm": ("dependency", "cascading_load"),
    "disk_full": ("resource", "resource_exhaustion"),
    "memory_leak": ("resource", "resource_exhaustion"),
    "gc_pauses": ("resource", "performance"),
    "bad_data": ("business_logic", "data_corruption"),
    "no_fault": ("no_fault", "none"),
}

MECHANISMS: tuple[str, ...] = tuple(MECHANISM_INFO)

# Near-synonym mechanisms: closed, symmetric, not transitive. Each pair names one incident from two
# sides an SRE can defensibly confuse, because one is the usual cause or the usual presentation of
# the other and their telemetry overlaps; telling them apart is what an investigation adds. Naming
# the partner of the true mechanism earns partial mechanism credit (scoring.NEAR_MECHANISM_CREDIT),
# never a pass. Pairs that merely share a segment or a symptom (bad_release ~ feature_flag: two
# different changes; connection_pool_exhaustion ~ lock_contention: pool timeouts are a symptom of
# many database faults) are deliberately absent.
MECHANISM_NEAR_SYNONYMS: dict[frozenset[str], str] = {
    frozenset({"memory_leak", "oom_killed"}): (
        "a leak is the common way a workload reaches its memory limit and is OOM-killed; both show"
        " memory climbing to the limit and restarts, they differ in gradual growth vs a limit too low"
    ),
    frozenset({"consumer_lag", "rebalance_storm"}): (
        "a rebalance storm presents as consumer lag (partitions go unconsumed while the group"
        " rebalances); both are a consumer group falling behind, they differ in membership churn"
    ),
    frozenset({"latency_regression", "slow_query_migration"}): (
        "both are a change that made requests slower; a migration that slows a query is a latency"
        " regression located in the database rather than in the released code"
    ),
    frozenset({"cpu_throttling", "gc_pauses"}): (
        "both stall a runtime in bursts and show as tail latency with CPU signals; throttling"
        " stretches collector pauses and collection burns the CPU quota"
    ),
}


def near_synonym(a: str | None, b: str | None) -> str | None:
    """Why mechanisms ``a`` and ``b`` are near-synonyms, or None (also for a == b)."""
    if a is None or b is None or a == b:
        return None
    return MECHANISM_NEAR_SYNONYMS.get(frozenset({a, b}))


SEGMENTS: tuple[str, ...] = (
    "kubernetes",
    "kafka",
    "deployment",
    "database",
    "network",
    "cache",
    "dependency",
    "resource",
    "business_logic",
)
PROBLEM_CATEGORIES: tuple[str, ...] = tuple(sorted({c for _, c in MECHANISM_INFO.values()}))
FAILURE_PATTERNS: tuple[str, ...] = ("single", "cascading", "correlated", "no_fault")
SYSTEM_LEVELS: tuple[str, ...] = ("application", "platform", "infrastructure", "data", "network", "external")
MONITOR_TYPES: tuple[str, ...] = ("metric alert", "query alert", "log alert", "apm", "synthetics", "composite", "slo")
DIFFICULTY_TIERS: tuple[str, ...] = ("easy", "medium", "hard")
SIGNAL_KINDS: tuple[str, ...] = ("metrics", "logs", "traces", "events", "monitors", "topology")

# Investigation error kinds that are the harness's or the network's fault, not the agent's: counted
# apart, left out of pass rates, IRT fits and metrics, and retried when a run resumes.
INFRA_ERROR_KINDS: tuple[str, ...] = ("network", "harness")
