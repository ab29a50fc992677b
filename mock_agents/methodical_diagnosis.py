"""Differential diagnosis for the ``methodical`` agent: which mechanism the evidence proves.

The investigation (``methodical.py``) follows the errors to the service where attribution
stops and gathers its :class:`Facts`: how its caller reports it, its events, the kinds of log
line that started with the incident (against its own baseline), and its metrics now against
before. Each mechanism here is a hypothesis with the combination of signals that proves it
(an OOM kill needs OOMKilling events *and* memory at the limit or out-of-memory errors; a
crash loop needs BackOff restarts *and* startup failures after a ConfigMap change ...). A
signal counts only when it is new: a kind of line the service logged all along, or a metric
at its usual level, supports nothing. The best-supported hypothesis wins; no single artifact
decides on its own, because every artifact also occurs as background.

Pure functions of :class:`Facts`; nothing here calls a tool.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .methodical_evidence import (
    LogWindow,
    dns_records,
    event_kind,
    event_ts,
    med,
    peak,
    ratio,
    rise_start,
)

MIN = 60.0
#: a change this long before the failure can have started it
CHANGE_LEAD = 20 * MIN
#: ... and this long for a leak (memory grows for hours before the first kill)
LEAK_LEAD = 4 * 3600.0


@dataclass
class Frame:
    """The investigation's clock: page, now, and the baseline and incident windows."""

    fired: float
    end: float
    start: float  # of everything the agent looked at

    @property
    def base(self) -> tuple[float, float]:
        return self.start, self.fired - 3600

    @property
    def recent(self) -> tuple[float, float]:
        return self.fired - 25 * MIN, self.end


@dataclass
class Facts:
    """What the investigation knows about one entity (service, database, cache, external)."""

    name: str
    kind: str  # catalog kind
    onset: float | None = None  # when it started failing, best estimate
    caller: str | None = None  # the service whose errors named it (walk), if any
    via: str | None = None  # how that caller reports it: dns, x509, parse, timeout ...
    caller_retries: bool = False  # the caller started retrying it
    events: list[dict[str, Any]] = field(default_factory=list)
    recent: LogWindow | None = None
    base: LogWindow | None = None
    new: dict[str, float] = field(default_factory=dict)  # kinds of line that started
    metrics: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    #: datastores it calls (an app) or the caches beside it (a database), with their facts
    related: dict[str, Facts] = field(default_factory=dict)

    # ---- events

    def of_kind(
        self, *kinds: str, t0: float | None = None, t1: float | None = None
    ) -> list[dict[str, Any]]:
        return [
            e
            for e in self.events
            if event_kind(e) in kinds
            and (t0 is None or event_ts(e) >= t0)
            and (t1 is None or event_ts(e) <= t1)
        ]

    def change_before(
        self, t: float, *kinds: str, lead: float = CHANGE_LEAD
    ) -> dict[str, Any] | None:
        """The latest change of these kinds in the ``lead`` before ``t`` (or just after)."""
        cands = self.of_kind(*kinds, t0=t - lead, t1=t + 3 * MIN)
        return max(cands, key=event_ts) if cands else None

    # ---- metrics, each against its own baseline

    def series(self, key: str) -> list[tuple[float, float]]:
        return self.metrics.get(key) or []

    def level(self, key: str, t0: float, t1: float) -> float | None:
        return med(self.series(key), t0, t1)

    def grew(self, key: str, frame: Frame, factor: float, floor: float = 1e-9) -> bool:
        """The series is now (the last ten minutes) ``factor`` x its baseline median."""
        now = med(self.series(key), frame.fired - 10 * MIN, frame.end)
        before = med(self.series(key), *frame.base)
        return now is not None and before is not None and now >= factor * max(before, floor)

    def change(self, key: str, frame: Frame) -> float:
        return ratio(
            med(self.series(key), frame.fired - 10 * MIN, frame.end),
            med(self.series(key), *frame.base),
        )


@dataclass
class Hypothesis:
    mechanism: str
    score: float
    reasons: list[str]
    #: the entity to blame when it is not the one examined (a cache behind a busy database)
    entity: str | None = None


def _fraction(
    num: list[tuple[float, float]], den: list[tuple[float, float]]
) -> list[tuple[float, float]]:
    d = dict(den)
    return [(t, v / d[t]) for t, v in num if d.get(t)]


def _hypo(mech: str) -> Hypothesis:
    return Hypothesis(mech, 0.0, [])


def _add(h: Hypothesis, ok: bool, weight: float, why: str) -> None:
    if ok:
        h.score += weight
        if weight > 0:
            h.reasons.append(why)


def _reported(f: Facts, mech: str, via: str, weight: float, why: str) -> Hypothesis:
    """A hypothesis its caller's client error proves: the caller reports ``f`` as ``via``."""
    h = _hypo(mech)
    _add(h, f.via == via, weight, why)
    return h


# --------------------------------------------------------------------------- applications


def app_hypotheses(f: Facts, frame: Frame) -> list[Hypothesis]:
    """Mechanisms that start in an application (api, worker, gateway)."""
    t = f.onset if f.onset is not None else frame.fired - 10 * MIN
    new = f.new
    out: list[Hypothesis] = []
    deploy = f.change_before(t, "deploy")
    config = f.change_before(t, "config")
    flag = f.change_before(t, "flag", lead=12 * MIN)
    grant = f.change_before(t, "grant")

    # -- how the caller reports it: the client error proves the mechanism
    h = _reported(f, "certificate_expiry", "x509", 6, "its caller rejects its TLS certificate as expired")
    _add(h, "tls_server" in new, 1, "it logs failed TLS handshakes since the onset")
    out.append(h)
    h = _reported(f, "bad_data", "parse", 6, "its caller fails to load the data it publishes")
    _add(h, f.grew("artifact", frame, 1.4), 1.5, "the file it publishes grew at the change")
    _add(h, bool(deploy or grant), 0.5, "it changed just before")
    out.append(h)
    out.append(_reported(f, "dns_failure", "dns", 6, "its callers cannot resolve its name"))

    # -- memory: OOM kills now, after a recent deploy (oom_killed) or a slow climb (leak)
    kills = f.of_kind("oom", t0=t - 15 * MIN)
    oom_lines = "oom" in new
    mem = _fraction(f.series("mem"), f.series("mem_limit"))
    at_limit = (peak(mem, frame.fired - 30 * MIN, frame.end) or 0) >= 0.9
    first_kill = min((event_ts(e) for e in kills), default=t)
    dep_any = f.change_before(first_kill, "deploy", lead=LEAK_LEAD)
    dep_age = first_kill - event_ts(dep_any) if dep_any else None
    climb = rise_start(mem, frame.base[0] + 20 * MIN, 1.15)
    long_climb = climb is not None and first_kill - climb >= 50 * MIN
    for mech, young in (("oom_killed", True), ("memory_leak", False)):
        h = _hypo(mech)
        _add(h, bool(kills), 3, f"{len(kills)} OOMKilling event(s) on its pods since the onset")
        _add(h, len(kills) >= 2, 0.5, "the kills repeat")
        _add(h, oom_lines, 1.5, "it logs out-of-memory errors since the onset")
        _add(h, at_limit, 1, "memory reaches its limit")
        if kills or oom_lines:
            if young:
                _add(
                    h,
                    dep_age is not None and dep_age <= 50 * MIN,
                    1.5,
                    "a deploy minutes before the first kill",
                )
                _add(h, not long_climb, 0.5, "memory climbed only since that deploy")
            else:
                _add(
                    h,
                    dep_age is None or dep_age > 50 * MIN,
                    1,
                    "no deploy in the hour before the first kill",
                )
                _add(h, long_climb, 1.5, "memory has been climbing for over an hour")
        out.append(h)

    # -- a bad config: pods crash at startup after a ConfigMap change
    h = _hypo("crashloop_bad_config")
    backoffs = f.of_kind("backoff", t0=t - 10 * MIN)
    _add(h, "startup" in new, 3, "its pods fail at startup since the onset")
    _add(h, len(backoffs) >= 2, 1.5, f"{len(backoffs)} BackOff restarts")
    _add(h, config is not None, 1.5, "a ConfigMap change just before")
    _add(h, f.change("replicas", frame) <= 0.8, 1, "available replicas dropped")
    _add(h, "no_upstream" in new, 0.5, "it answers 'no healthy upstream'")
    if kills:
        h.score -= 2
    out.append(h)

    # -- CPU starvation
    h = _hypo("cpu_throttling")
    thr = f.grew("throttled", frame, 3.0, floor=0.05)
    cpu = _fraction([(x, v / 1e9) for x, v in f.series("cpu")], f.series("cpu_limit"))
    hot = (med(cpu, frame.fired - 10 * MIN, frame.end) or 0) >= 0.85
    busier = f.grew("hits", frame, 1.6)
    _add(h, thr, 3, "CFS throttling rose well above its baseline")
    _add(h, hot, 1, "CPU pinned at its limit")
    _add(h, config is not None and thr, 1.5, "after a change to its configuration")
    _add(h, bool(f.of_kind("unhealthy", t0=t - 5 * MIN)) and thr, 0.5, "readiness probes time out")
    _add(h, f.grew("duration", frame, 2.0) and thr, 0.5, "latency rose")
    _add(h, thr and not busier, 0.5, "with no more traffic than usual")
    # more demand explains a hot CPU: load, not a limit or a change
    _add(h, thr and busier, -2.5, "")
    out.append(h)

    # -- Kafka consumers
    h = _hypo("rebalance_storm")
    churn = sum(new.get(k, 0) for k in ("heartbeat", "rebalance"))
    _add(h, churn >= 0.3, 2.5, "its consumer group keeps rebalancing since the onset")
    _add(h, "commit_failed" in new, 1.5, "offset commits fail: the group rebalanced under it")
    consumer_cfg = config is not None and "consumer" in str(config.get("text") or "").lower()
    _add(h, consumer_cfg and churn > 0, 1.5, "right after a change to its consumer settings")
    _add(h, f.grew("lag", frame, 3.0, floor=100) and churn > 0, 0.5, "lag grows")
    out.append(h)
    h = _hypo("consumer_lag")
    lag = f.grew("lag", frame, 3.0, floor=100)
    _add(h, lag, 1.5, "its consumer lag grows")
    _add(h, "poll_timeout" in new, 1.5, "poll loops time out: processing is too slow")
    _add(h, "slow_batch" in new, 1, "batches take far longer than usual")
    _add(h, f.grew("duration", frame, 2.0) and lag, 1, "processing time per message rose")
    _add(h, deploy is not None and lag, 1, "after a deploy")
    _add(h, churn >= 0.3, -1.5, "")
    out.append(h)

    # -- its database
    h = _hypo("connection_pool_exhaustion")
    _add(h, "pool" in new, 3, "requests wait for a free connection of its pool")
    _add(h, "pool_leak" in new, 0.5, "connection leak warnings since its deploy")
    _add(
        h,
        any(
            r.grew("conn_pct", frame, 1.5)
            or (r.level("conn_pct", frame.fired - 10 * MIN, frame.end) or 0) >= 0.9
            for r in f.related.values()
        ),
        1,
        "its database's connections are saturated",
    )
    _add(h, deploy is not None and "pool" in new, 0.5, "after a deploy")
    out.append(h)
    h = _hypo("lock_contention")
    _add(h, "lock_timeout" in new, 3, "its statements are cancelled by the lock timeout")
    _add(
        h,
        any(r.grew("locks", frame, 3.0, floor=5) for r in f.related.values()),
        1,
        "ungranted locks pile up on its database",
    )
    _add(h, deploy is not None and "lock_timeout" in new, 0.5, "after a deploy")
    out.append(h)

    # -- load and latency
    h = _hypo("retry_storm")
    more = f.grew("hits", frame, 1.9)
    _add(h, more, 2, "requests to it multiplied")
    _add(h, "overload" in new, 1, "it sheds load")
    _add(h, f.caller_retries, 1.5, "its caller retries every failed call")
    _add(h, deploy is not None and more, 0.5, "after a deploy")
    _add(h, thr, -2, "")
    out.append(h)
    h = _hypo("latency_regression")
    slower = f.grew("duration", frame, 2.5)
    err_ratio = ratio(
        med(f.series("errors"), frame.fired - 10 * MIN, frame.end),
        med(f.series("hits"), frame.fired - 10 * MIN, frame.end),
        floor=1,
    )
    db_busier = any(r.grew("hits", frame, 2.0) for r in f.related.values())
    _add(h, slower, 1.5, "its latency rose")
    _add(h, "n_plus_one" in new, 1.5, "it issues hundreds of queries per request since the onset")
    _add(h, db_busier, 1.5, "its database serves many more queries than usual")
    _add(h, deploy is not None and (slower or db_busier), 1, "after a deploy")
    _add(h, err_ratio < 0.1 and slower, 0.5, "few errors: slow, not broken")
    _add(h, thr or more, -1.5, "")
    out.append(h)

    # -- a change that broke a code path
    h = _hypo("feature_flag")
    _add(h, flag is not None, 2.5, "a feature flag turned on for it just before")
    _add(h, "flag" in new, 2, "its errors carry that flag's evaluation context")
    _add(h, "crash" in new and flag is not None, 0.5, "exceptions on the flagged path")
    out.append(h)
    h = _hypo("bad_release")
    _add(h, deploy is not None, 2, "a deploy just before the onset")
    _add(h, "crash" in new, 1.5, "stack traces of a new code path since the onset")
    _add(
        h,
        deploy is not None and f.grew("errors", frame, 3.0, floor=1),
        0.5,
        "its own error rate rose",
    )
    _add(h, "flag" in new, -1, "")
    out.append(h)
    return out


# ----------------------------------------------------------------------- data stores and partners


def database_hypotheses(f: Facts, frame: Frame) -> list[Hypothesis]:
    t = f.onset if f.onset is not None else frame.fired - 10 * MIN
    new = f.new
    out = []
    h = _reported(f, "dns_failure", "dns", 6, "its callers cannot resolve its host name")
    dns = f.of_kind("dns_change", t0=t - CHANGE_LEAD, t1=t + 3 * MIN)
    _add(h, bool(dns), 1, "a DNS automation change to its record just before")
    _add(h, any(dns_records(e) == 0 for e in dns), 1, "the change left its record empty")
    _add(h, f.change("hits", frame) <= 0.5, 0.5, "requests reaching it collapsed")
    out.append(h)
    disk = peak(f.series("disk"), frame.fired - 15 * MIN, frame.end) or 0
    h = _reported(f, "disk_full", "nospace", 4, "its callers' writes fail for lack of space")
    _add(h, "nospace" in new, 2, "it logs 'No space left on device'")
    _add(h, disk >= 0.97, 2, "its data disk is full")
    _add(h, "archive" in new, 1, "WAL archiving has been failing")
    out.append(h)
    h = _hypo("slow_query_migration")
    mig = f.change_before(t, "migration", lead=30 * MIN)
    _add(h, mig is not None, 2.5, "a schema migration just before the slowdown")
    _add(h, "slow_query" in new, 1, "slow query log since the onset")
    _add(h, f.grew("duration", frame, 2.0), 1, "its query latency rose")
    _add(h, f.via in ("stmt_timeout", "timeout"), 0.5, "callers' statements time out")
    _add(h, f.grew("hits", frame, 1.8), -1.5, "")
    out.append(h)
    # A database that serves many more queries than usual is a victim: the cause is whoever
    # sends them (a cache beside it that stopped answering, or a caller's N+1 release).
    busier = f.grew("hits", frame, 1.8)
    cache = cache_behind(f, frame)
    h = _hypo("cache_stampede")
    if cache is not None:
        name, why = cache
        h.entity = name
        _add(h, True, 3, why)
        _add(h, busier, 1.5, "the database serves far more queries")
    out.append(h)
    h = _hypo("latency_regression")
    if cache is None and f.caller is not None:
        h.entity = f.caller
        _add(h, busier, 2, f"{f.caller} sends it far more queries than usual")
        _add(h, busier and f.grew("duration", frame, 1.3), 0.5, "which slows it down")
    out.append(h)
    return out


def cache_behind(db: Facts, frame: Frame) -> tuple[str, str] | None:
    """A cache beside a busy database (one its callers use) that stopped answering hits."""
    best = None
    for r in db.related.values():
        if r.kind != "cache":
            continue
        score, why = cache_score(r, frame)
        if score >= 2 and (best is None or score > best[0]):
            best = (score, r.name, why)
    return (best[1], best[2]) if best else None


def cache_score(r: Facts, frame: Frame) -> tuple[float, str]:
    hits, misses = r.series("hit"), r.series("miss")
    both = {t: v for t, v in hits}
    hit_ratio = [(t, both[t] / (both[t] + m)) for t, m in misses if t in both and both[t] + m > 0]
    now = med(hit_ratio, frame.fired - 15 * MIN, frame.end)
    before = med(hit_ratio, *frame.base)
    score, why = 0.0, []
    if now is not None and before is not None and now <= before - 0.15:
        score += 3
        why.append(f"its hit ratio fell from {before:.2f} to {now:.2f}")
    if r.grew("evicted", frame, 5.0, floor=10):
        score += 1
        why.append("keys are being evicted")
    if "redis_restart" in r.new or r.of_kind("killing", t0=frame.fired - 45 * MIN):
        score += 1
        why.append("it restarted")
    if r.change("mem", frame) <= 0.5:
        score += 0.5
        why.append("its dataset was lost")
    return score, "; ".join(why)


def cache_hypotheses(f: Facts, frame: Frame) -> list[Hypothesis]:
    out = [_reported(f, "dns_failure", "dns", 6, "its clients cannot resolve its name")]
    h = _hypo("cache_stampede")
    score, why = cache_score(f, frame)
    _add(h, score > 0, score, why)
    _add(h, f.via in ("refused", "timeout"), 0.5, "its clients fail to reach it")
    out.append(h)
    return out


def external_hypotheses(f: Facts, frame: Frame) -> list[Hypothesis]:
    out = [_reported(f, "certificate_expiry", "x509", 6, "its callers reject its certificate as expired")]
    h = _hypo("third_party_outage")
    _add(
        h,
        f.via in ("rate_limited", "unavailable", "timeout", "error"),
        3,
        "its callers get errors from its API",
    )
    _add(h, f.grew("errors", frame, 3.0, floor=1), 1.5, "its error rate rose")
    _add(
        h,
        bool(f.of_kind("statuspage", t0=frame.fired - 45 * MIN)),
        0.5,
        "the vendor posted an incident",
    )
    _add(h, f.caller_retries, 0.5, "its callers retry")
    out.append(h)
    return out


def hypotheses(f: Facts, frame: Frame) -> list[Hypothesis]:
    """Every hypothesis for one entity, best supported first."""
    if f.kind == "database":
        hs = database_hypotheses(f, frame)
    elif f.kind == "cache":
        hs = cache_hypotheses(f, frame)
    elif f.kind == "external":
        hs = external_hypotheses(f, frame)
    else:
        hs = app_hypotheses(f, frame)
    order = {h.mechanism: i for i, h in enumerate(hs)}
    return sorted(hs, key=lambda h: (-h.score, order[h.mechanism]))


# --------------------------------------------------------------------------- no fault


BENIGN_KINDS = ("chaos", "loadtest", "campaign", "backfill")


def benign_causes(f: Facts, frame: Frame, mentions: list[dict[str, Any]]) -> list[str]:
    """Benign explanations of a page on ``f``: a chaos experiment or a load test on it, a
    campaign sending shoppers to it, a crawler or a load generator in its logs, a backfill
    flooding its topic, a batch job making its database busy. ``mentions`` are events that
    name it or its datastores in their text (campaigns name landing services, backfills
    their topic, jobs their database)."""
    out = []
    t0 = frame.fired - 75 * MIN
    for e in f.of_kind(*BENIGN_KINDS, t0=t0) + mentions:
        k = event_kind(e)
        if k in BENIGN_KINDS and event_ts(e) >= t0:
            out.append(f"{e.get('title')}")
    for kind, what in (
        ("loadtest", "a load generator"),
        ("crawler", "a crawler"),
        ("chaos", "injected faults"),
    ):
        if kind in f.new:
            out.append(f"{what} in its logs since shortly before the page")
    return list(dict.fromkeys(out))
