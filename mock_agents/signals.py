"""Reading telemetry the way an on-call engineer skims it: tags, anomalies, keywords.

Shared by the policies. Everything here is defensive: tool results come from a proctor the
mock does not control, so a missing key or a null point must never raise.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from statistics import median
from typing import Any

# --------------------------------------------------------------------------- tool calls


def call(name: str, arguments: dict[str, Any], tag: str) -> dict[str, Any]:
    """A tool call whose id is a function of what it asks, so a stateless policy can find its
    answer again in the history: ``<tag>.<8 hex of the arguments>``."""
    digest = hashlib.sha1(
        json.dumps([name, arguments], sort_keys=True, default=str).encode()
    ).hexdigest()[:8]
    tag = re.sub(r"[^A-Za-z0-9_.:-]+", "-", tag)[:80]
    return {"id": f"{tag}.{digest}", "name": name, "arguments": arguments}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def tag_value(tags: Any, key: str) -> str | None:
    """Value of ``key`` in tags given as ``["k:v", ...]`` or ``{"k": "v"}``."""
    if isinstance(tags, dict):
        v = tags.get(key)
        return str(v) if v not in (None, "") else None
    for t in as_list(tags):
        if isinstance(t, str) and t.startswith(key + ":"):
            return t[len(key) + 1 :] or None
    return None


_SCOPE_SERVICE = re.compile(r"service:([A-Za-z0-9_.\-]+)")


def monitor_service(monitor: dict[str, Any] | None) -> str | None:
    """The service a monitor watches: its ``service:`` tag, else the scope of its query."""
    if not monitor:
        return None
    svc = tag_value(monitor.get("tags"), "service")
    if svc:
        return svc
    for field in ("query", "message", "name"):
        m = _SCOPE_SERVICE.search(str(monitor.get(field) or ""))
        if m:
            return m.group(1)
    return None


def scope_service(scope: Any) -> str | None:
    """The service of a metric series' scope (``"service:web,env:prod"``)."""
    for part in str(scope or "").split(","):
        if part.strip().startswith("service:"):
            return part.strip()[len("service:") :]
    return None


def service_names(list_services_content: Any) -> list[str]:
    out = []
    for s in as_list(as_dict(list_services_content).get("services")):
        if isinstance(s, dict) and s.get("name"):
            out.append(str(s["name"]))
        elif isinstance(s, str):
            out.append(s)
    return sorted(set(out))


# --------------------------------------------------------------------------- mechanisms

# (mechanism, keywords). Matched case-insensitively against log messages, event titles and
# texts, and the names of anomalous metrics. Specific phrases first: ties go to the earlier row.
# Mechanisms in STRONG have signatures that rarely lie (an OOM kill is an OOM kill) and count
# double: an OOM-killed pod also logs back-off restarts, which must not make it a bad config.
STRONG = frozenset(
    {"oom_killed", "certificate_expiry", "dns_failure", "disk_full", "connection_pool_exhaustion"}
)
MECHANISM_KEYWORDS: list[tuple[str, tuple[str, ...]]] = [
    (
        "oom_killed",
        (
            "oomkill",
            "oom-kill",
            "oom killed",
            "reason:oomkilled",
            "exit code 137",
            "memory cgroup out of memory",
            "count.terminated",
        ),
    ),
    (
        "certificate_expiry",
        (
            "x509",
            "certificate has expired",
            "certificate expired",
            "certificate verify failed",
            "cert expired",
            "certificateexpired",
            "cert_has_expired",
        ),
    ),
    (
        "dns_failure",
        (
            "no such host",
            "nxdomain",
            "temporary failure in name resolution",
            "could not resolve host",
            "servfail",
            "coredns",
        ),
    ),
    ("disk_full", ("no space left on device", "disk full", "disk.in_use", "disk quota exceeded")),
    (
        "connection_pool_exhaustion",
        (
            "connection is not available",
            "remaining connection slots",
            "too many connections",
            "percent_usage_connections",
            "pool exhausted",
            "connection pool",
        ),
    ),
    (
        "lock_contention",
        ("lock timeout", "deadlock", "postgresql.locks", "lock wait timeout", "due to lock"),
    ),
    (
        "replica_lag",
        (
            "replication_delay",
            "replica lag",
            "replication lag",
            "replication delay",
            "record not found",
        ),
    ),
    (
        "slow_query_migration",
        ("migration", "seq scan", "sequential scan", "slow query", "slow_queries", "missing index"),
    ),
    (
        "cache_stampede",
        (
            "keys.evicted",
            "cache miss",
            "hit ratio",
            "hit_ratio",
            "keyspace_misses",
            "stampede",
            "thundering herd",
        ),
    ),
    ("rebalance_storm", ("rebalanc", "heartbeat failed", "revoking previously assigned")),
    ("consumer_lag", ("consumer_lag", "consumer lag", "records-lag")),
    (
        "third_party_outage",
        ("429", "too many requests", "rate limit", "ratelimit", "rate-limit", "quota exceeded"),
    ),
    (
        "crashloop_bad_config",
        (
            "crashloopbackoff",
            "back-off restarting",
            "invalid value for",
            "configmap",
            "failed to load config",
            "invalid configuration",
        ),
    ),
    ("cpu_throttling", ("throttled", "cfs_throttled", "cpu limit")),
    ("node_pressure_eviction", ("evicted", "memorypressure", "diskpressure", "node pressure")),
    ("zone_outage", ("zone outage", "availability zone", "az outage", "network partition")),
    ("gc_pauses", ("gc pause", "major_collection", "stop-the-world", "gc overhead", "full gc")),
    ("memory_leak", ("memory leak", "heap_inuse")),
    ("feature_flag", ("feature flag", "feature_flag", "flag enabled", "rollout")),
    (
        "bad_data",
        (
            "malformed",
            "failed to deserialize",
            "invalid record",
            "unexpected field",
            "parse error",
            "schema mismatch",
        ),
    ),
    ("retry_storm", ("retry storm", "retries exhausted", "retry budget", "retrying")),
    ("latency_regression", ("n+1", "query.hits", "slow response")),
]


def mechanism_scores(texts: list[str]) -> dict[str, float]:
    """Keyword hits per mechanism over the distinct texts (numbers ignored, so the same log
    line repeated a thousand times counts once)."""
    scores: dict[str, float] = {}
    distinct: dict[str, str] = {}
    for t in texts:
        low = t.lower()
        distinct.setdefault(re.sub(r"[0-9a-f]*[0-9][0-9a-f]*", "#", low), low)
    for low in distinct.values():
        for rank, (mech, words) in enumerate(MECHANISM_KEYWORDS):
            if any(w in low for w in words):
                # a tiny rank bonus makes ties deterministic and favour specific rows
                weight = 2.0 if mech in STRONG else 1.0
                scores[mech] = (
                    scores.get(mech, 0.0) + weight + (len(MECHANISM_KEYWORDS) - rank) * 1e-3
                )
    return scores


def best_mechanism(texts: list[str], allowed: list[str] | None = None) -> str | None:
    scores = mechanism_scores(texts)
    if allowed:
        scores = {k: v for k, v in scores.items() if k in allowed}
    return max(scores, key=lambda k: scores[k]) if scores else None


# --------------------------------------------------------------------------- anomalies


@dataclass
class Anomaly:
    onset: float  # epoch seconds
    peak: float  # largest deviation, in baseline units (|v - median| / threshold)
    direction: int  # +1 up, -1 down
    baseline: float
    extreme: float


def _clean(points: Any) -> list[tuple[float, float]]:
    out = []
    for p in as_list(points):
        if isinstance(p, list | tuple) and len(p) >= 2 and p[1] is not None:
            try:
                out.append((float(p[0]), float(p[1])))
            except (TypeError, ValueError):
                continue
    out.sort()
    return out


def detect_anomaly(
    points: Any,
    baseline_end: float,
    *,
    min_abs: float = 0.0,
    sustain: int = 3,
    gap: int = 5,
    active_after: float | None = None,
) -> Anomaly | None:
    """The departure from the baseline (points before ``baseline_end``) that is still going on.

    A point is anomalous when it is further from the baseline median than the largest of:
    4 robust sigmas, the baseline's own 5-95% spread, 25% of the median, and ``min_abs``.
    The episode is the last run of anomalous points (holes of up to ``gap`` points allowed,
    so a sawtooth stays one episode); it must hold ``sustain`` anomalous points and, when
    ``active_after`` is given, reach that time: a burst that died down before the page is
    not what paged. Its onset is walked back to where a ramp towards it started.
    """
    pts = _clean(points)
    base = [v for t, v in pts if t < baseline_end]
    if len(base) < 5 or len(pts) - len(base) < sustain:
        return None
    m = median(base)
    sigma = 1.4826 * median(abs(v - m) for v in base)
    srt = sorted(base)
    spread = srt[int(0.95 * (len(srt) - 1))] - srt[int(0.05 * (len(srt) - 1))]
    thr = max(4 * sigma, spread, 0.25 * abs(m), min_abs, 1e-9)
    rest = [(t, v) for t, v in pts if t >= baseline_end]
    flagged = [i for i, (_, v) in enumerate(rest) if abs(v - m) > thr]
    if not flagged:
        return None
    last = flagged[-1]
    if active_after is not None and rest[last][0] < active_after:
        return None
    members = [last]
    for i in reversed(flagged[:-1]):
        if members[-1] - i > gap + 1:
            break
        members.append(i)
    if len(members) < sustain:
        return None
    first = members[-1]
    # the episode's direction is that of most of its points
    ups = sum(1 for i in members if rest[i][1] > m)
    direction = 1 if 2 * ups >= len(members) else -1
    # walk back over a ramp that was already moving the same way
    j = first
    soft = max(1.5 * sigma, 0.5 * spread, 0.05 * abs(m), min_abs / 2, 1e-9)
    while j > 0 and (rest[j - 1][1] - m) * direction > soft:
        j -= 1
    tail = [v for _, v in rest[first:]]
    extreme = max(tail) if direction > 0 else min(tail)
    return Anomaly(
        onset=rest[j][0],
        peak=abs(extreme - m) / thr,
        direction=direction,
        baseline=m,
        extreme=extreme,
    )


def total(points: Any, start: float | None = None, end: float | None = None) -> float:
    return sum(
        v for t, v in _clean(points) if (start is None or t >= start) and (end is None or t < end)
    )
