"""Ambient: what a healthy fleet shows anyway, so that no artifact exists only when it is the answer.

A world in which an OOM kill, a lock wait, a DNS lookup failure or a config change appears only
when it caused the page teaches agents to grep. Real fleets show all of them all day, on
services that have nothing to do with the incident. This module adds, to every noisy world:

- routine changes of every kind an incident uses, spread over the whole window with no quiet
  period around the onset: deploys, ConfigMap edits, feature-flag rollouts, terraform applies
  (DNS automation included), schema migrations and grants, vendor status notices, marketing
  campaigns, load tests, certificate renewals, node upgrades, cron runs, autoscaling;
- chronic streams of the lines mechanisms are known by, on the services that plausibly log
  them all day: scanners' TLS handshake errors at the edge, DNS lookup timeouts, slow-query and
  lock-wait logs on busy databases, pool-wait and GC warnings, N+1 statistics, retries,
  rebalances, malformed-record warnings;
- blips: short, mild, resolved versions of every mechanism (:data:`BLIPS`, one per mechanism,
  drawn uniformly) on unrelated services at random times, many inside the incident window: a
  batch pod OOM-killed once, a bad config value caught on one pod and reverted, a lock pile-up
  during a vacuum, a partner's brief 429s, a cache pod rescheduled during a node upgrade ...

Blips use the very same line makers and event formats as the mechanisms (``events.py``,
``mechanisms/signatures.py``), so a template's presence says nothing; what tells an incident
apart is where it sits in the dependency graph, when it starts relative to the page and the
changes, and whether it is still going on. A blip lands on a service of the causal chain only
if it is over half an hour before the incident starts; it never lands on the service that paged.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from evaluator_agent.worldgen import events, messages
from evaluator_agent.worldgen.baseline import bump
from evaluator_agent.worldgen.catalog import AUTHORS, DOMAINS
from evaluator_agent.worldgen.commits import commit_message
from evaluator_agent.worldgen.mechanisms import REGISTRY
from evaluator_agent.worldgen.mechanisms.base import Plan
from evaluator_agent.worldgen.mechanisms.infra import fault_abort
from evaluator_agent.worldgen.mechanisms.infra_signatures import (
    archive_failure,
    crawler_line,
    disk_full_error,
    rate_limited,
    redis_restart_lines,
    retry_warning,
    slow_query,
    slow_query_line,
    tls_server_error,
    x509_error,
)
from evaluator_agent.worldgen.mechanisms.signatures import (
    TABLES,
    commit_failed,
    crash_after_kill,
    gc_pause_line,
    heartbeat_failed,
    hikari_leak_warning,
    hikari_timeout,
    kafka_poll_timeout,
    kafka_revoke,
    lock_timeout,
    lock_wait,
    n_plus_one,
    no_healthy_upstream,
    oom_own_error,
    overload_error,
    remaining_slots,
    slow_batch_line,
    slow_request,
    stack_trace,
    startup_failure,
    startup_lines,
)
from evaluator_agent.worldgen.telemetry import ARTIFACTS, MIN, LogMaker, Profile, World, add

Blip = Callable[[World, Plan, random.Random, float], bool]

COLUMNS = ("customer_id", "sku", "merchant_id", "status", "external_ref", "created_at", "region")
CONFIG_CHANGES: dict[str, tuple[tuple[str, str, str], ...]] = {
    "java": (
        ("SPRING_DATASOURCE_HIKARI_MAXIMUM_POOL_SIZE", "20", "30"),
        ("LOGGING_LEVEL_ROOT", "INFO", "WARN"),
        ("JAVA_OPTS", "-Xmx1536m", "-Xmx1792m"),
        ("HTTP_CLIENT_READ_TIMEOUT_MS", "2000", "3000"),
    ),
    "go": (
        ("HTTP_READ_TIMEOUT", "5s", "8s"),
        ("LOG_LEVEL", "info", "debug"),
        ("GOMAXPROCS", "2", "4"),
        ("UPSTREAM_RETRIES", "2", "1"),
    ),
    "python": (
        ("GUNICORN_WORKERS", "4", "6"),
        ("LOG_LEVEL", "INFO", "WARNING"),
        ("REQUESTS_TIMEOUT_S", "5", "8"),
    ),
    "node": (
        ("UPSTREAM_TIMEOUT_MS", "3000", "5000"),
        ("NODE_OPTIONS", "--max-old-space-size=768", "--max-old-space-size=896"),
        ("LOG_LEVEL", "info", "warn"),
    ),
}
K8S_CHANGES = (
    ("resources.limits.cpu", "1", "2"),
    ("resources.limits.cpu", "500m", "1"),
    ("resources.limits.memory", "1Gi", "2Gi"),
    ("resources.requests.cpu", "250m", "400m"),
    ("replicas", "3", "4"),
    ("kafka.consumer.session.timeout.ms", "30000", "45000"),
    ("kafka.consumer.max.poll.records", "500", "250"),
)
TERRAFORM = (
    (
        "gke-node-pools",
        "Terraform apply: infra/gke/node-pools",
        "~ google_container_node_pool.{x}\n    autoscaling.max_node_count: 12 -> 16\n"
        "Plan: 0 to add, 1 to change, 0 to destroy.",
    ),
    (
        "cloudsql",
        "Terraform apply: infra/gcp/cloudsql",
        "~ google_sql_database_instance.{x}\n    settings.backup_configuration.start_time: "
        '"03:00" -> "04:00"\nPlan: 0 to add, 1 to change, 0 to destroy.',
    ),
    (
        "monitoring",
        "Terraform apply: infra/datadog/monitors",
        "+ datadog_monitor.{x}_latency\nPlan: 1 to add, 0 to change, 0 to destroy.",
    ),
    (
        "pubsub",
        "Terraform apply: infra/gcp/pubsub",
        "~ google_pubsub_subscription.{x}\n    ack_deadline_seconds: 20 -> 30\n"
        "Plan: 0 to add, 1 to change, 0 to destroy.",
    ),
)
VENDOR_NOTICES = (
    ("Scheduled maintenance", "Scheduled - We will be performing maintenance on the dashboard. The API is not affected."),
    ("Degraded performance in EU region", "Investigating - Some requests in eu-west are slower than usual. US regions are not affected."),
    ("Resolved: delayed webhooks", "Resolved - Webhook deliveries were delayed for some accounts. All queued events have been delivered."),
    ("Elevated error rates", "Investigating - We are seeing elevated error rates for a small number of legacy API versions."),
)


# --------------------------------------------------------------------------- helpers


def _anchor(plan: Plan) -> float:
    return float(plan.onset or plan.symptom_start)


def pool(
    w: World,
    plan: Plan,
    t: float,
    dur: float,
    roles: tuple[str, ...] = ("api", "worker"),
    langs: tuple[str, ...] | None = None,
    need: Callable[[str], bool] | None = None,
) -> list[str]:
    """Services a background artifact may land on at ``t`` for ``dur`` seconds.

    Never the paged service, never a service the incident depends on (``plan.protect``), and a
    service of the causal chain only when the blip is over well before the incident starts.
    """
    early = t + dur < _anchor(plan) - 30 * MIN
    out = []
    for n in sorted(w.p):
        p = w.p[n]
        if p.role not in roles or (langs and p.language not in langs) or not _in_focus(w, n):
            continue
        if n == plan.symptom or n in plan.protect:
            continue
        if n in plan.chain and not early:
            continue
        if need and not need(n):
            continue
        out.append(n)
    return out


def _in_focus(w: World, name: str) -> bool:
    """While concurrent noise is placed below the paged service, only there."""
    focus = getattr(w, "blip_focus", None)
    return focus is None or name in focus


def _pick(rng: random.Random, xs: list[str]) -> str | None:
    return rng.choice(xs) if xs else None


def _callers(w: World, name: str) -> list[str]:
    return [c for c in w.topo.callers.get(name, []) if w.p[c].role in ("api", "worker", "gateway")]


def _stream(w: World, svc: str, t0: float, t1: float, per_min: float, make: LogMaker) -> None:
    w.stream(svc, t0, min(t1, w.clock.end), per_min, make)


def _lines(w: World, svc: str, t: float, n: int, spread: float, make: LogMaker, rng: random.Random) -> None:
    for _ in range(n):
        ts = t + rng.uniform(0, spread)
        status, msg, attrs = make(rng, ts)
        w.log(ts, svc, status, msg, attrs, rng=rng)


def _bump(w: World, curve: list[float], t0: float, t1: float, level: float, ramp: float = 60) -> None:
    add(curve, w.clock.ramp(t0, t0 + ramp, level, until=t1, decay_s=ramp))


def _res(p: Profile, key: str, n: int) -> list[float]:
    return p.res.setdefault(key, [0.0] * n)


def _pg_dbs(w: World) -> list[str]:
    return [
        n for n in sorted(w.p) if w.p[n].role == "db" and w.p[n].language == "postgres" and _in_focus(w, n)
    ]


def episode(
    w: World, svc: str, t0: float, t1: float, level: float, make: LogMaker, ramp: float = 30
) -> None:
    """``svc`` fails ``level`` of its requests in [t0, t1), its errors worded by ``make``: the
    errors reach its APM series, its sampled error logs and its spans like an incident's."""
    p = w.p[svc]
    _bump(w, p.err_own, t0, t1, level, ramp=ramp)
    p.episodes.append((t0, t1, make))


def _caller_sees(w: World, caller: str, callee: str, style: str) -> LogMaker:
    def make(rng: random.Random, ts: float) -> tuple[str, str, dict]:
        return messages.upstream_error(w.p[caller], w.p[callee], style, rng)

    return make


# --------------------------------------------------------------------------- blips


def _oom(w: World, plan: Plan, rng: random.Random, t: float) -> bool:
    svc = _pick(rng, pool(w, plan, t, 15 * MIN, need=lambda n: bool(w.p[n].hosts and w.p[n].pods)))
    if not svc:
        return False
    p, n = w.p[svc], w.clock.n
    climb = rng.randint(5, 14) * MIN
    _bump(w, _res(p, "+mem", n), t - climb, t, 0.97 - p.mem_base, ramp=climb)
    pod = p.pod(rng, t)
    kills = rng.choice((1, 1, 1, 2, 3))
    tk = t
    for _ in range(kills):
        events.oom_kill(w, tk, p, pod, rng.choice(p.hosts), rng)
        i = w.clock.idx(tk)
        if i < n:
            _res(p, "+oomkilled", n)[i] += 1
            for j in range(i, n):
                _res(p, "+restarts", n)[j] += 1
        episode(w, svc, tk - 60, tk + 90, rng.uniform(0.02, 0.08), oom_own_error(p))
        crash = crash_after_kill(p, rng)
        if crash:
            w.log(tk - rng.uniform(0.5, 3), svc, crash[0], crash[1], {"pod_name": pod, **crash[2]}, rng=rng)
        for k, line in enumerate(startup_lines(p, rng, p.version_at(tk))):
            w.log(tk + 8 + 2 * k, svc, "info", line, {"pod_name": pod}, rng=rng)
        if rng.random() < 0.5:
            w.k8s_event(
                tk + rng.uniform(20, 90),
                svc,
                "BackOff",
                f"Back-off restarting failed container {svc} in pod {pod}_{p.namespace}",
                pod,
            )
        tk += rng.randint(120, 420)
    if p.language == "java":
        _stream(w, svc, t - climb * 0.5, t + 60, 0.8, gc_pause_line(p))
    return True


def _crashloop(w: World, plan: Plan, rng: random.Random, t: float) -> bool:
    dur = rng.randint(3, 9) * MIN
    svc = _pick(rng, pool(w, plan, t, dur, roles=("api",), need=lambda n: bool(w.p[n].pods)))
    if not svc:
        return False
    p, n = w.p[svc], w.clock.n
    key, old, bad, make = startup_failure(p)
    author = rng.choice(AUTHORS)
    events.configmap(w, t, svc, f'{key}: "{old}" -> "{bad}"', author, rng)
    pod = p.pod(rng, t)
    w.k8s_event(t + 25, svc, "Killing", f"Stopping container {svc}", pod)
    tc, backoff = t + 30, 10
    while tc < t + dur:
        status, msg, attrs = make(rng, tc)
        w.log(tc + 2, svc, status, msg, {**attrs, "pod_name": pod}, rng=rng)
        w.k8s_event(tc + 3, svc, "BackOff", f"Back-off restarting failed container {svc} in pod {pod}_{p.namespace}", pod)
        for j in range(w.clock.idx(tc), n):
            _res(p, "+restarts", n)[j] += 1
        tc += backoff + 5
        backoff = min(300, backoff * 2)
    _bump(w, _res(p, "+replicas", n), t + 30, t + dur, -1.0, ramp=30)
    episode(w, svc, t + 30, t + dur, rng.uniform(0.03, 0.12), no_healthy_upstream)
    events.configmap(w, t + dur, svc, f'{key}: "{bad}" -> "{old}" (revert)', author, rng)
    return True


def _throttle(w: World, plan: Plan, rng: random.Random, t: float) -> bool:
    dur = rng.randint(5, 20) * MIN
    svc = _pick(rng, pool(w, plan, t, dur))
    if not svc:
        return False
    p, n = w.p[svc], w.clock.n
    _bump(w, _res(p, "+throttled", n), t, t + dur, rng.uniform(6, 22), ramp=120)
    _bump(w, _res(p, "+cpu", n), t, t + dur, rng.uniform(0.3, 0.55), ramp=120)
    _bump(w, p.lat_add, t, t + dur, p.base_lat * rng.uniform(0.3, 1.2), ramp=120)
    if rng.random() < 0.5:
        _stream(w, svc, t + 60, t + dur, 0.5, slow_request(p))
    if rng.random() < 0.7:
        episode(w, svc, t + 60, t + dur, rng.uniform(0.02, 0.08), overload_error(p))
    if rng.random() < 0.4 and p.pods:
        w.k8s_event(
            t + rng.uniform(60, dur),
            svc,
            "Unhealthy",
            f'Readiness probe failed: Get "http://{messages.ip(rng)}:8080/healthz": context deadline '
            "exceeded (Client.Timeout exceeded while awaiting headers)",
            p.pod(rng, t),
        )
    return True


def _lag(w: World, plan: Plan, rng: random.Random, t: float) -> bool:
    dur = rng.randint(8, 25) * MIN
    svc = _pick(rng, pool(w, plan, t, dur, roles=("worker",)))
    if not svc:
        return False
    p, n = w.p[svc], w.clock.n
    peak = rng.uniform(3000, 60000)
    grow = dur * rng.uniform(0.3, 0.6)
    add(_res(p, "+lag", n), w.clock.ramp(t, t + grow, peak, until=t + grow, decay_s=dur - grow))
    topic = w.topo.consumed_topic(svc)
    if rng.random() < 0.5:
        events.backfill(w, t - 30, topic, f"{topic}-backfill", rng.randint(1, 9) * 100_000, rng.choice(AUTHORS))
    _stream(w, svc, t, t + grow, 1.0, slow_batch_line(topic))
    if rng.random() < 0.4:
        episode(w, svc, t + grow / 3, t + grow, rng.uniform(0.003, 0.01), kafka_poll_timeout(svc, topic))
    return True


def _rebalance(w: World, plan: Plan, rng: random.Random, t: float) -> bool:
    svc = _pick(rng, pool(w, plan, t, 5 * MIN, roles=("worker",)))
    if not svc:
        return False
    rebalance(w, svc, t, rng, rounds=rng.randint(1, 3))
    if rng.random() < 0.3:
        topic = w.topo.consumed_topic(svc)
        episode(w, svc, t, t + 180, rng.uniform(0.003, 0.01), commit_failed(svc, topic, t))
    return True


def _stack(w: World, plan: Plan, rng: random.Random, t: float) -> bool:
    dur = rng.randint(10, 60) * MIN
    svc = _pick(rng, pool(w, plan, t, dur, roles=("api",), need=lambda n: bool(w.p[n].resources)))
    if not svc:
        return False
    p = w.p[svc]
    res, _ = rng.choice(p.resources)
    make, _ = stack_trace(p, rng, res)
    episode(w, svc, t, t + dur, rng.uniform(0.01, 0.05), make)
    return True


def _nplus1(w: World, plan: Plan, rng: random.Random, t: float) -> bool:
    dur = rng.randint(20, 90) * MIN
    svc = _pick(rng, pool(w, plan, t, dur, roles=("api",)))
    if not svc:
        return False
    _stream(w, svc, t, t + dur, rng.uniform(0.2, 0.8), n_plus_one(w.p[svc]))
    return True


def _flag(w: World, plan: Plan, rng: random.Random, t: float) -> bool:
    dur = rng.randint(4, 12) * MIN
    svc = _pick(rng, pool(w, plan, t, dur, roles=("api",), need=lambda n: bool(w.p[n].resources)))
    if not svc:
        return False
    p = w.p[svc]
    flag, author = events.flag_name(svc, rng), rng.choice(AUTHORS)
    pct = rng.choice((5, 10, 20))
    events.feature_flag(w, t, svc, flag, pct, 0, author)
    res, _ = rng.choice(p.resources)
    make, _ = stack_trace(p, rng, res)

    def flagged(r: random.Random, ts: float) -> tuple[str, str, dict]:
        s, m, a = make(r, ts)
        return s, f"{m}\n[feature flag {flag} enabled for this request]", {**a, "feature_flag": flag}

    episode(w, svc, t + 30, t + dur, rng.uniform(0.01, 0.05) * pct / 10, flagged)
    events.feature_flag(w, t + dur, svc, flag, 0, pct, author)
    return True


def _pool_wait(w: World, plan: Plan, rng: random.Random, t: float) -> bool:
    dur = rng.randint(4, 20) * MIN

    def has_pg(n: str) -> bool:
        return any(w.p[d].language == "postgres" for d in w.topo.calls.get(n, []))

    svc = _pick(rng, pool(w, plan, t, dur, roles=("api",), langs=("java",), need=has_pg))
    if not svc:
        return False
    total = rng.choice((10, 20, 30))
    episode(w, svc, t, t + dur, rng.uniform(0.04, 0.15), hikari_timeout(total, rng.randint(3, 20)))
    _lines(w, svc, t - 60, rng.randint(1, 3), dur, hikari_leak_warning(), rng)
    db = rng.choice([d for d in w.topo.calls[svc] if w.p[d].language == "postgres"])
    if db not in plan.protect and db not in plan.chain:
        _bump(w, _res(w.p[db], "+conn", w.clock.n), t, t + dur, rng.uniform(0.3, 0.5), ramp=60)
        if rng.random() < 0.7:
            _stream(w, db, t + 30, t + dur, rng.uniform(0.2, 0.8), remaining_slots)
    return True


def _migration(w: World, plan: Plan, rng: random.Random, t: float) -> bool:
    dbs = [d for d in _pg_dbs(w) if d not in plan.chain and _callers(w, d)]
    if not dbs:
        return False
    db = rng.choice(dbs)
    app = rng.choice(_callers(w, db))
    table, col = db.removesuffix("-db").replace("-", "_"), rng.choice(COLUMNS)
    num = rng.randint(120, 480)
    kind = rng.random()
    if kind < 0.3:
        name, sql = f"add_{col}_to_{table}", f"ALTER TABLE {table} ADD COLUMN {col}_v2 text;"
    elif kind < 0.55:
        idx = f"idx_{table}_{col}"
        name, sql = f"index_{table}_{col}", f"CREATE INDEX CONCURRENTLY {idx} ON {table} ({col});"
    else:  # the same rebuild a broken migration does, done right: the new index first
        idx = f"idx_{table}_{col}"
        name = f"rebuild_{table}_indexes"
        sql = (
            f"CREATE INDEX CONCURRENTLY {idx}_v2 ON {table} ({col}, created_at);\n"
            f"DROP INDEX CONCURRENTLY {idx};"
        )
    # the migration ships with a deploy of the service that owns it
    p = w.p[app]
    if p.role in ("api", "worker") and not any(d.ts >= w.clock.start for d in p.deploys):
        w.deploy(app, t - 40, bump(p.version, rng), rng.choice(AUTHORS), f"Add migration V{num}__{name}",
                 rollout_s=rng.randint(90, 200))
    events.migration(w, t, db, num, name, sql, app, p.version_at(t) if p.deploys else "1.0.0")
    if rng.random() < 0.5:
        _stream(w, db, t, t + rng.randint(5, 20) * MIN, 1.0, slow_query(table, col))
    return True


def _quiet_db(w: World, plan: Plan, rng: random.Random, t: float, dur: float) -> str | None:
    """A Postgres database the incident leaves alone for [t, t + dur] (the chain's only well
    before the anchor), or None."""
    dbs = [d for d in _pg_dbs(w) if d not in plan.protect and (d not in plan.chain or t + dur < _anchor(plan) - 1800)]
    return rng.choice(dbs) if dbs else None


def _dbslow(w: World, plan: Plan, rng: random.Random, t: float) -> bool:
    """A database slowed by a heavy query for a while; its callers time some statements out."""
    dur = rng.randint(4, 20) * MIN
    d = _quiet_db(w, plan, rng, t, dur)
    if d is None:
        return False
    q = w.p[d]
    table = d.removesuffix("-db").replace("-", "_")
    _stream(w, d, t, t + dur, rng.uniform(0.5, 2.0), slow_query_line(table) if rng.random() < 0.5 else slow_query(table, rng.choice(COLUMNS)))
    _bump(w, q.lat_add, t, t + dur, q.base_lat * rng.uniform(2, 8), ramp=60)
    for c in _callers(w, d):
        if c != plan.symptom and c not in plan.chain and rng.random() < 0.7:
            episode(w, c, t + 30, t + dur, rng.uniform(0.01, 0.06), _caller_sees(w, c, d, "timeout"))
    return True


def _locks(w: World, plan: Plan, rng: random.Random, t: float) -> bool:
    dur = rng.randint(4, 20) * MIN
    db = _quiet_db(w, plan, rng, t, dur)
    if db is None:
        return False
    q, n = w.p[db], w.clock.n
    _bump(w, _res(q, "+locks", n), t, t + dur, rng.uniform(40, 160), ramp=60)
    _stream(w, db, t, t + dur, rng.uniform(0.8, 2.0), lock_wait(db))
    callers = [c for c in _callers(w, db) if c != plan.symptom and c not in plan.chain]
    if callers:
        c = rng.choice(callers)
        episode(w, c, t + 30, t + dur, rng.uniform(0.03, 0.12), lock_timeout(w.p[c], db, rng.choice(TABLES)))
    return True


def _tls(w: World, plan: Plan, rng: random.Random, t: float) -> bool:
    # a client that cannot verify a partner's certificate for a minute or two (a bad chain
    # during the vendor's rotation), or a renewal that failed and will be retried
    externals = [n for n in sorted(w.p) if w.p[n].role == "external" and n not in plan.chain and _in_focus(w, n)]
    callers = [
        (c, e) for e in externals for c in pool(w, plan, t, 180, roles=("api", "worker", "gateway")) if c in w.topo.callers.get(e, [])
    ]
    if callers and rng.random() < 0.6:
        c, e = rng.choice(callers)
        expired = t - rng.randint(60, 600)
        q, ext = w.p[c], w.p[e]

        def make(r: random.Random, ts: float) -> tuple[str, str, dict]:
            return x509_error(q, ext, expired, r)

        episode(w, c, t, t + rng.randint(3, 15) * MIN, rng.uniform(0.04, 0.2), make)
        _lines(w, c, t, rng.randint(1, 3), 120, make, rng)
        return True
    svc = _pick(rng, pool(w, plan, t, 60, roles=("api", "gateway")))
    if not svc:
        return False
    events.certificate(w, t, svc, False, rng)
    events.certificate(w, t + rng.randint(15, 60) * MIN, svc, True, rng)
    return True


def _dns(w: World, plan: Plan, rng: random.Random, t: float) -> bool:
    callers = [
        (c, d)
        for c in pool(w, plan, t, 120, roles=("api", "worker", "gateway"))
        for d in w.topo.calls.get(c, [])
        if w.p[d].role in ("db", "redis", "api") and d not in plan.chain
    ]
    if not callers:
        return False
    c, d = rng.choice(callers)
    make = _caller_sees(w, c, d, "dns")
    episode(w, c, t, t + rng.randint(60, 480), rng.uniform(0.02, 0.1), make)
    _lines(w, c, t, rng.randint(1, 3), 60, make, rng)
    return True


def _cache(w: World, plan: Plan, rng: random.Random, t: float) -> bool:
    caches = [
        n
        for n in sorted(w.p)
        if w.p[n].role == "redis"
        and n not in plan.protect
        and (n not in plan.chain or t < _anchor(plan) - 2400)
        and _in_focus(w, n)
    ]
    if not caches:
        return False
    c = rng.choice(caches)
    r, n = w.p[c], w.clock.n
    if rng.random() < 0.6 and r.hosts:
        host = r.hosts[0]
        other = rng.choice([h["name"] for h in w.topo.hosts if h["cluster"] == r.cluster and h["name"] != host] or [host])
        pod = f"{c}-0"
        events.node_upgrade(w, t - 45, host, r.cluster)
        w.k8s_event(t - 20, c, "Killing", "Stopping container redis", pod, extra={"kube_stateful_set": c})
        w.k8s_event(t + 12, c, "Scheduled", f"Successfully assigned {r.namespace}/{pod} to {other}", pod)
        w.k8s_event(t + 31, c, "Started", "Started container redis", pod)
        before, after = redis_restart_lines(rng)
        for k, (st, line) in enumerate(before):
            w.log(t - 19 + k, c, st, line, {"pod_name": pod}, rng=rng)
        # persistence on: the dataset is loaded back, the cache comes back warm
        after = after[:3] + [("info", f"DB loaded from disk: {rng.uniform(0.4, 3.5):.3f} seconds"), after[3]]
        for k, (st, line) in enumerate(after):
            w.log(t + 33 + k, c, st, line, {"pod_name": pod}, rng=rng)
        _bump(w, _res(r, "+miss", n), t, t + 120, rng.uniform(0.05, 0.2), ramp=30)
        # while the pod is away its clients are refused
        for q in _callers(w, c):
            if q != plan.symptom and q not in plan.chain:
                down = rng.randint(60, 240)  # a restart without the stampede still takes a while
                make = _caller_sees(w, q, c, "refused")
                episode(w, q, t - 20, t + down, rng.uniform(0.2, 0.6), make, ramp=5)
                _lines(w, q, t - 15, rng.randint(1, 3), down, make, rng)
    else:
        _bump(w, _res(r, "+evicted", n), t, t + rng.randint(2, 8) * MIN, rng.uniform(200, 3000), ramp=60)
        _bump(w, _res(r, "+miss", n), t, t + 300, rng.uniform(0.02, 0.08), ramp=60)
    return True


def _partner(w: World, plan: Plan, rng: random.Random, t: float) -> bool:
    pairs = [
        (c, e)
        for e in sorted(w.p)
        if w.p[e].role == "external" and e not in plan.chain
        for c in _callers(w, e)
        if c in pool(w, plan, t, 300, roles=("api", "worker"))
    ]
    if not pairs:
        return False
    c, e = rng.choice(pairs)
    code = rng.choice((429, 503))
    host = messages.dns(w.p[e])
    dur = rng.randint(3, 15) * MIN
    make = _caller_sees(w, c, e, f"partner:{code}")
    episode(w, c, t, t + dur, rng.uniform(0.04, 0.2), make)
    _lines(w, c, t, rng.randint(1, 3), dur, make, rng)
    _lines(w, c, t, rng.randint(1, 4), dur, retry_warning(e, host), rng)
    _bump(w, w.p[e].err_own, t, t + dur, rng.uniform(0.05, 0.2), ramp=30)
    return True


def _retries(w: World, plan: Plan, rng: random.Random, t: float) -> bool:
    pairs = [
        (c, d)
        for c in pool(w, plan, t, 600, roles=("api", "gateway"))
        for d in w.topo.calls.get(c, [])
        if w.p[d].role == "api" and d not in plan.chain and d != plan.symptom
    ]
    if not pairs:
        return False
    c, d = rng.choice(pairs)
    dur = rng.randint(2, 10) * MIN
    _stream(w, c, t, t + dur, rng.uniform(0.4, 1.5), retry_warning(d, messages.dns(w.p[d])))
    episode(w, c, t, t + dur, rng.uniform(0.01, 0.05), _caller_sees(w, c, d, "timeout"))
    if rng.random() < 0.7:
        episode(w, d, t + 30, t + dur, rng.uniform(0.02, 0.08), overload_error(w.p[d]))
    _bump(w, w.p[d].lat_add, t, t + dur, w.p[d].base_lat * rng.uniform(0.5, 2), ramp=60)
    return True


def _disk(w: World, plan: Plan, rng: random.Random, t: float) -> bool:
    kind = rng.random()
    if kind < 0.35:  # a log burst fills a volume, logrotate brings it back
        hosts = [h["name"] for h in w.topo.hosts if h["name"] not in set().union(*(w.p[c].hosts for c in plan.chain))]
        if not hosts:
            return False
        h = rng.choice(hosts)
        dur = rng.randint(10, 40) * MIN
        curve = w.host_res.setdefault(h, {}).setdefault("+disk", [0.0] * w.clock.n)
        add(curve, w.clock.ramp(t, t + dur, rng.uniform(0.08, 0.25), until=t + dur, decay_s=60))
        return True
    dbs = [d for d in _pg_dbs(w) if d not in plan.protect and d not in plan.chain]
    if kind < 0.75 and dbs:  # a huge sort's temp file fills the volume for a while
        db = rng.choice(dbs)
        dur = rng.randint(2, 8) * MIN
        episode(w, db, t, t + dur, rng.uniform(0.02, 0.08), disk_full_error())
        _stream(w, db, t, t + dur, rng.uniform(0.5, 2.0), disk_full_error())
        if rng.random() < 0.5:
            _lines(w, db, t, 1, 5, archive_failure(db, rng), rng)
        for q in _callers(w, db):
            if q != plan.symptom and q not in plan.chain:
                make = _caller_sees(w, q, db, "nospace")
                episode(w, q, t, t + dur, rng.uniform(0.02, 0.1), make)
                _lines(w, q, t, rng.randint(1, 2), dur, make, rng)
        return True
    svc = _pick(rng, pool(w, plan, t, 60, roles=("worker", "api"), langs=("python", "go", "java")))
    if not svc:
        return False
    name = f"/tmp/export-{rng.getrandbits(32):08x}.csv"
    msg = {
        "python": f"OSError: [Errno 28] No space left on device: '{name}'",
        "go": f"write {name}: no space left on device",
        "java": f"java.io.IOException: No space left on device (writing {name})",
    }[w.p[svc].language]
    w.log(t, svc, "error", msg, {"error.kind": "ENOSPC"}, rng=rng)
    return True


def _baddata(w: World, plan: Plan, rng: random.Random, t: float) -> bool:
    pubs = [s for s in sorted(w.publishers) if s not in plan.chain and _callers(w, s) and _in_focus(w, s)]
    if not pubs:
        return False
    pub = rng.choice(pubs)
    consumers = [c for c in _callers(w, pub) if c in pool(w, plan, t, 300, roles=("api", "worker", "gateway"))]
    artifact, _ = w.publishers[pub]
    limit = rng.choice((20, 60, 128, 200, 256))
    got = limit + rng.randint(1, 40)
    dur = rng.randint(3, 8) * MIN
    _bump(w, _res(w.p[pub], "+artifact", w.clock.n), t, t + dur, rng.uniform(0.2, 0.6), ramp=30)
    if consumers:
        c = rng.choice(consumers)
        make = _caller_sees(w, c, pub, f"baddata:{artifact}:{limit}:{got}")
        episode(w, c, t + 30, t + dur, rng.uniform(0.03, 0.15), make)
        _lines(w, c, t + 30, rng.randint(1, 2), dur, make, rng)
    return True


def _rollback(w: World, plan: Plan, rng: random.Random, t: float) -> bool:
    """A deploy that went wrong and was rolled back: the change, the failure it caused (errors,
    OOM kills or a crash loop) and the rollback, all on one unrelated service."""
    dur = rng.randint(4, 15) * MIN

    def fresh(n: str) -> bool:
        return bool(w.p[n].pods) and not any(d.ts >= w.clock.start for d in w.p[n].deploys)

    svc = _pick(rng, pool(w, plan, t, dur, need=fresh))
    if not svc:
        return False
    p = w.p[svc]
    old = p.version
    w.deploy(svc, t, bump(old, rng), rng.choice(AUTHORS), commit_message(rng, svc), rollout_s=rng.randint(90, 240))
    kind = rng.random()
    if kind < 0.5 and p.resources:
        res, _ = rng.choice(p.resources)
        make, _ = stack_trace(p, rng, res)
        episode(w, svc, t + 60, t + dur, rng.uniform(0.05, 0.3), make)
    elif kind < 0.75 and p.hosts:
        for _ in range(rng.randint(1, 3)):
            tk = t + rng.uniform(3, dur / 60 - 1) * MIN
            if w.clock.idx(tk) >= w.clock.n:
                continue
            pod = p.pod(rng, tk)
            events.oom_kill(w, tk, p, pod, rng.choice(p.hosts), rng)
            i = w.clock.idx(tk)
            _res(p, "+oomkilled", w.clock.n)[i] += 1
            for j in range(i, w.clock.n):
                _res(p, "+restarts", w.clock.n)[j] += 1
            episode(w, svc, tk - 60, tk + 60, rng.uniform(0.03, 0.1), oom_own_error(p))
        _bump(w, _res(p, "+mem", w.clock.n), t + 60, t + dur, 0.95 - p.mem_base, ramp=dur / 2)
    else:
        _, _, _, make = startup_failure(p)
        pod = p.pod(rng, t + 120)
        tc, backoff = t + 90, 10
        while tc < t + dur:
            status, msg, attrs = make(rng, tc)
            w.log(tc + 2, svc, status, msg, {**attrs, "pod_name": pod}, rng=rng)
            w.k8s_event(tc + 3, svc, "BackOff", f"Back-off restarting failed container {svc} in pod {pod}_{p.namespace}", pod)
            for j in range(w.clock.idx(tc), w.clock.n):
                _res(p, "+restarts", w.clock.n)[j] += 1
            tc += backoff + 5
            backoff = min(300, backoff * 2)
        episode(w, svc, t + 90, t + dur, rng.uniform(0.03, 0.12), no_healthy_upstream)
    w.deploy(svc, t + dur, old, rng.choice(AUTHORS), f"Rollback to {old}", rollout_s=rng.randint(60, 180))
    return True


def _benign_load(w: World, plan: Plan, rng: random.Random, t: float) -> bool:
    """A campaign, a load test, a crawler or a chaos experiment, on a service that copes."""
    svc = _pick(rng, pool(w, plan, t, 1800, roles=("api",)))
    if not svc:
        return False
    p = w.p[svc]
    dur = rng.randint(10, 40) * MIN
    kind = rng.random()
    if kind < 0.3:
        events.campaign(w, t, rng.choice(events.CAMPAIGNS), svc, rng.uniform(0.3, 2.0))
        _bump(w, p.traffic, t, t + dur, rng.uniform(0.3, 0.9), ramp=240)
    elif kind < 0.55:
        events.load_test(w, t, svc, rng.choice((50, 100, 200, 400)), dur // MIN, rng.choice(AUTHORS))
        _bump(w, p.traffic, t, t + dur, rng.uniform(0.5, 1.5), ramp=60)
        _stream(w, svc, t + 60, t + dur, rng.uniform(0.3, 1.0), rate_limited(p))
    elif kind < 0.8:
        _bump(w, p.traffic, t, t + dur, rng.uniform(0.2, 0.6), ramp=120)
        _stream(w, svc, t, t + dur, rng.uniform(0.5, 1.5), crawler_line(p))
    else:
        name = f"{svc}-gameday-{rng.randint(10, 99)}"
        if rng.random() < 0.5:
            pct = rng.choice((2, 5, 8))
            events.chaos(w, t, svc, name, f"{pct}% HTTP 503 aborts", dur // MIN, rng.choice(AUTHORS))
            episode(w, svc, t, t + dur, pct / 100, fault_abort(p, name))
        else:
            ms = rng.choice((100, 200, 300))
            events.chaos(w, t, svc, name, f"{ms}ms of latency", dur // MIN, rng.choice(AUTHORS))
            _bump(w, p.lat_add, t, t + dur, ms / 1000, ramp=30)
    return True


def rebalance(w: World, svc: str, t: float, rng: random.Random, rounds: int = 1) -> None:
    """A consumer group rebalancing ``rounds`` times (a deploy, a scale event, a slow member)."""
    p = w.p[svc]
    topic = w.topo.consumed_topic(svc)
    for r in range(rounds):
        tr = t + r * rng.randint(25, 70)
        for j, line in enumerate(kafka_revoke(p, svc, topic)):
            w.log(tr + j, svc, "info", line, {}, rng=rng)
        _lines(w, svc, tr - 5, rng.randint(0, 2), 10, heartbeat_failed(svc, topic), rng)
    if rounds > 1 and rng.random() < 0.5:
        _lines(w, svc, t + 20, 1, 40, commit_failed(svc, topic, t), rng)


# Every mechanism's mild, resolved background version: the lint test checks the keys.
BLIPS: dict[str, Blip] = {
    "oom_killed": _oom,
    "memory_leak": _oom,
    "crashloop_bad_config": _crashloop,
    "cpu_throttling": _throttle,
    "consumer_lag": _lag,
    "rebalance_storm": _rebalance,
    "bad_release": _stack,
    "latency_regression": _nplus1,
    "feature_flag": _flag,
    "connection_pool_exhaustion": _pool_wait,
    "slow_query_migration": _migration,
    "lock_contention": _locks,
    "certificate_expiry": _tls,
    "dns_failure": _dns,
    "cache_stampede": _cache,
    "third_party_outage": _partner,
    "retry_storm": _retries,
    "disk_full": _disk,
    "bad_data": _baddata,
    "no_fault": _benign_load,
}


# --------------------------------------------------------------------------- chronic streams


def chronic_streams(w: World, plan: Plan, rng: random.Random) -> None:
    """Lines some services log all day, at rates that do not change with the incident."""
    start, end = w.clock.start, w.clock.end

    def some(roles: tuple[str, ...], k: int, langs: tuple[str, ...] | None = None) -> list[str]:
        cands = [
            n
            for n in sorted(w.p)
            if w.p[n].role in roles
            and (not langs or w.p[n].language in langs)
            and n not in plan.chain
            and n != plan.symptom
        ]
        return rng.sample(cands, k=min(k, len(cands)))

    # scanners and old clients fail TLS handshakes at the edge and on public endpoints
    for s in some(("gateway",), 1) + some(("api",), rng.randint(0, 2), ("go",)):
        _stream(w, s, start, end, rng.uniform(0.1, 0.6), tls_server_error(w.p[s]))
    # the cluster resolver times out now and then
    for s in some(("api", "worker"), rng.randint(1, 3)):
        _stream(w, s, start, end, rng.uniform(0.01, 0.05), dns_timeout(w.p[s]))
    # busy databases log slow queries and lock waits all day
    dbs = [d for d in _pg_dbs(w) if d not in plan.chain]
    for d in rng.sample(dbs, k=min(len(dbs), rng.randint(1, 3))):
        table = d.removesuffix("-db").replace("-", "_")
        slow = slow_query(table, rng.choice(COLUMNS)) if rng.random() < 0.6 else slow_query_line(table)
        _stream(w, d, start, end, rng.uniform(0.05, 0.3), slow)
        if rng.random() < 0.6:
            _stream(w, d, start, end, rng.uniform(0.03, 0.2), lock_wait(d))
    for d in rng.sample(dbs, k=min(len(dbs), rng.randint(0, 2))):
        _stream(w, d, start, end, rng.uniform(0.02, 0.1), idle_in_transaction)
    for d in rng.sample(dbs, k=min(len(dbs), rng.randint(0, 1))):
        _stream(w, d, start, end, rng.uniform(0.01, 0.05), remaining_slots)
    for s in some(("api",), rng.randint(0, 2), ("java",)):
        _stream(w, s, start, end, rng.uniform(0.02, 0.1), hikari_leak_warning())
    for s in some(("api", "worker"), rng.randint(1, 2), ("java",)):
        _stream(w, s, start, end, rng.uniform(0.05, 0.3), gc_pause_line(w.p[s]))
    for s in some(("api",), rng.randint(0, 2)):
        _stream(w, s, start, end, rng.uniform(0.05, 0.3), n_plus_one(w.p[s]))
    for s in some(("api", "gateway"), rng.randint(1, 2)):
        kids = [d for d in w.topo.calls.get(s, []) if w.p[d].role in ("api", "external")]
        if kids:
            d = rng.choice(kids)
            _stream(w, s, start, end, rng.uniform(0.02, 0.15), retry_warning(d, messages.dns(w.p[d])))
    for s in some(("worker",), rng.randint(0, 2)):
        _stream(w, s, start, end, rng.uniform(0.02, 0.1), malformed_record(w.p[s], w.topo.consumed_topic(s)))
    for s in some(("api",), rng.randint(0, 1), ("python",)):
        _stream(w, s, start, end, rng.uniform(0.01, 0.05), overload_error(w.p[s]))
    for s in some(("api", "worker"), rng.randint(0, 2)):
        _stream(w, s, start, end, rng.uniform(0.03, 0.2), slow_request(w.p[s]))
    # readiness probes that flap now and then on busy pods, renewals that keep retrying
    for s in some(("api", "worker", "gateway"), rng.randint(2, 5)):
        p = w.p[s]
        if not p.pods:
            continue
        t = start + rng.uniform(0, 30) * MIN
        while t < end:
            w.k8s_event(
                t, s, "Unhealthy",
                f'Readiness probe failed: Get "http://{messages.ip(rng)}:8080/healthz": context deadline '
                "exceeded (Client.Timeout exceeded while awaiting headers)",
                p.pod(rng, t),
            )
            t += rng.uniform(8, 45) * MIN
    for s in some(("api", "gateway"), rng.randint(0, 2)):
        t = start + rng.uniform(0, 60) * MIN
        while t < end:
            events.certificate(w, t, s, False, rng)
            t += rng.uniform(55, 70) * MIN
    # caches warming up: memory that climbs slowly for hours, nothing wrong
    for s in some(("api", "worker"), rng.randint(0, 2)):
        p = w.p[s]
        rate = rng.uniform(0.0005, 0.0015)
        p.res["mem_drift"] = [rate * i for i in range(w.clock.n)]


def loud_chronic(w: World, plan: Plan, rng: random.Random, high: bool) -> None:
    """Problems nobody has fixed yet, loud all window long: a batch worker OOM-killed every
    half hour, a pod crash-looping since a bad canary, a client rate-limited by its partner all
    day, a caller that times out on a lock every few minutes, a resolver misconfiguration, a
    known bug's stack traces. Their lines are the incidents' own, in the same volumes; what sets
    them apart is that they were there long before the page and still are."""
    start, end = w.clock.start, w.clock.end

    def ok(n: str) -> bool:
        return n != plan.symptom and n not in plan.chain and n not in plan.protect

    apis = [n for n in sorted(w.p) if w.p[n].role in ("api", "worker") and ok(n)]
    kinds = [
        "oom", "crashloop", "partner", "locks", "dns", "stack", "overload", "pool", "rebalance",
        "tls", "parse", "archive", "slots", "nospace", "lag", "dbslow", "edge",
    ]  # fmt: skip
    dbs = [d for d in _pg_dbs(w) if ok(d)]
    for kind in rng.sample(kinds, k=rng.randint(7, 10) if high else rng.randint(6, 9)):
        level = rng.uniform(0.01, 0.05)
        if kind == "oom":
            cands = [n for n in apis if w.p[n].pods and w.p[n].hosts]
            if not cands:
                continue
            svc = rng.choice(cands)
            p = w.p[svc]
            t = start + rng.uniform(5, 30) * MIN
            period = rng.randint(5, 20) * MIN
            while t < end - MIN:
                pod = p.pod(rng, t)
                events.oom_kill(w, t, p, pod, rng.choice(p.hosts), rng)
                i = w.clock.idx(t)
                _res(p, "+oomkilled", w.clock.n)[i] += 1
                for j in range(i, w.clock.n):
                    _res(p, "+restarts", w.clock.n)[j] += 1
                episode(w, svc, t - 60, t + 60, rng.uniform(0.02, 0.06), oom_own_error(p))
                crash = crash_after_kill(p, rng)
                if crash:
                    w.log(t - 1, svc, crash[0], crash[1], {"pod_name": pod, **crash[2]}, rng=rng)
                t += period * rng.uniform(0.8, 1.2)
        elif kind == "crashloop":
            cands = [n for n in apis if w.p[n].role == "api" and w.p[n].pods]
            if not cands:
                continue
            svc = rng.choice(cands)
            p = w.p[svc]
            _, _, _, make = startup_failure(p)
            pod = p.pod(rng, start)
            t = start + rng.uniform(1, 10) * MIN
            n_back = 0
            while t < end - MIN:
                status, msg, attrs = make(rng, t)
                w.log(t + 2, svc, status, msg, {**attrs, "pod_name": pod}, rng=rng)
                if n_back < 25:
                    w.k8s_event(t + 3, svc, "BackOff", f"Back-off restarting failed container {svc} in pod {pod}_{p.namespace}", pod)
                    n_back += 1
                for j in range(w.clock.idx(t), w.clock.n):
                    _res(p, "+restarts", w.clock.n)[j] += 1
                t += 300 + rng.uniform(0, 10)
            episode(w, svc, start, end, level / 2, no_healthy_upstream)
        elif kind in ("partner", "tls"):
            pairs = [(c, e) for e in sorted(w.p) if w.p[e].role == "external" and ok(e) for c in _callers(w, e) if ok(c)]
            if not pairs:
                continue
            c, e = rng.choice(pairs)
            if kind == "partner":
                make = _caller_sees(w, c, e, f"partner:{rng.choice((429, 503))}")
                _stream(w, c, start, end, rng.uniform(0.1, 0.4), retry_warning(e, messages.dns(w.p[e])))
            else:
                q, ext, expired = w.p[c], w.p[e], start - rng.randint(1, 20) * 86400

                def make(r: random.Random, ts: float, q=q, ext=ext, expired=expired) -> tuple[str, str, dict]:
                    return x509_error(q, ext, expired, r)

            episode(w, c, start, end, level, make)
        elif kind == "locks":
            pairs = [(c, d) for d in _pg_dbs(w) if ok(d) for c in _callers(w, d) if ok(c)]
            if not pairs:
                continue
            c, d = rng.choice(pairs)
            episode(w, c, start, end, level, lock_timeout(w.p[c], d, rng.choice(TABLES)))
            _stream(w, d, start, end, rng.uniform(0.3, 1.0), lock_wait(d))
            _bump(w, _res(w.p[d], "+locks", w.clock.n), start, end, rng.uniform(20, 60), ramp=60)
        elif kind == "dns":
            pairs = [(c, d) for c in apis for d in w.topo.calls.get(c, []) if w.p[d].role in ("db", "redis", "api") and ok(d)]
            if not pairs:
                continue
            c, d = rng.choice(pairs)
            episode(w, c, start, end, level / 2, _caller_sees(w, c, d, "dns"))
        elif kind == "stack":
            cands = [n for n in apis if w.p[n].role == "api" and w.p[n].resources]
            if not cands:
                continue
            svc = rng.choice(cands)
            res, _ = rng.choice(w.p[svc].resources)
            make, _ = stack_trace(w.p[svc], rng, res)
            episode(w, svc, start, end, level, make)
        elif kind == "overload":
            if not apis:
                continue
            svc = rng.choice(apis)
            episode(w, svc, start, end, level, overload_error(w.p[svc]))
        elif kind == "pool":
            cands = [
                n for n in apis
                if w.p[n].language == "java" and any(w.p[d].language == "postgres" for d in w.topo.calls.get(n, []))
            ]
            if not cands:
                continue
            svc = rng.choice(cands)
            episode(w, svc, start, end, level, hikari_timeout(rng.choice((10, 20, 30)), rng.randint(3, 30)))
            _stream(w, svc, start, end, rng.uniform(0.05, 0.3), hikari_leak_warning())
        elif kind == "rebalance":
            cands = [n for n in apis if w.p[n].role == "worker"]
            if not cands:
                continue
            svc = rng.choice(cands)
            topic = w.topo.consumed_topic(svc)
            t = start + rng.uniform(1, 15) * MIN
            while t < end - MIN:
                rebalance(w, svc, t, rng, rounds=1)
                t += rng.randint(8, 25) * MIN
            _stream(w, svc, start, end, rng.uniform(0.2, 0.8), heartbeat_failed(svc, topic))
            episode(w, svc, start, end, level / 3, commit_failed(svc, topic, start))
        elif kind in ("archive", "slots", "nospace"):
            # a database that has complained for days: archiving to a bucket that moved, a
            # pool sized too small for the peak, a temp volume that a nightly report fills
            if not dbs:
                continue
            d = rng.choice(dbs)
            make = {
                "archive": archive_failure(d, rng),
                "slots": remaining_slots,
                "nospace": disk_full_error(),
            }[kind]
            t0 = start if kind != "nospace" else start + rng.uniform(0, 40) * MIN
            t1 = end if kind != "nospace" else min(end, t0 + rng.uniform(40, 120) * MIN)
            _stream(w, d, t0, t1, rng.uniform(0.3, 1.5), make)
            if kind != "archive":
                episode(w, d, t0, t1, level, make)
                for q in _callers(w, d):
                    if ok(q) and kind == "nospace":
                        episode(w, q, t0, t1, level / 2, _caller_sees(w, q, d, "nospace"))
        elif kind == "lag":
            cands = [n for n in apis if w.p[n].role == "worker"]
            if not cands:
                continue
            svc = rng.choice(cands)
            topic = w.topo.consumed_topic(svc)
            _stream(w, svc, start, end, rng.uniform(0.3, 1.0), slow_batch_line(topic))
            episode(w, svc, start, end, level / 3, kafka_poll_timeout(svc, topic))
            base = rng.uniform(5000, 40000)
            add(_res(w.p[svc], "+lag", w.clock.n), [base * (0.7 + 0.6 * rng.random()) for _ in range(w.clock.n)])
        elif kind == "dbslow":
            # a database with a slow report query at the top of its load: its callers time out
            pairs = [(c, d) for d in dbs for c in _callers(w, d) if ok(c)]
            if not pairs:
                continue
            c, d = rng.choice(pairs)
            table = d.removesuffix("-db").replace("-", "_")
            _stream(w, d, start, end, rng.uniform(0.3, 1.0), slow_query(table, rng.choice(COLUMNS)))
            episode(w, c, start, end, level, _caller_sees(w, c, d, "timeout"))
            _bump(w, w.p[d].lat_add, start, end, w.p[d].base_lat * rng.uniform(1, 4), ramp=60)
        elif kind == "edge":
            # one backend that the edge proxy sees failing now and then, all day
            gw = [n for n in sorted(w.p) if w.p[n].role == "gateway" and ok(n)]
            pairs = [(g, b) for g in gw for b in w.topo.calls.get(g, []) if ok(b)]
            if not pairs:
                continue
            g, b = rng.choice(pairs)
            episode(w, g, start, end, level / 2, _caller_sees(w, g, b, rng.choice(("5xx", "timeout"))))
        elif kind == "parse":
            pubs = [s for s in sorted(w.publishers) if ok(s)]
            pairs = [(c, s) for s in pubs for c in _callers(w, s) if ok(c)]
            if not pairs:
                continue
            c, s = rng.choice(pairs)
            artifact, _ = w.publishers[s]
            limit = rng.choice((20, 60, 128, 200, 256))
            episode(w, c, start, end, level / 2, _caller_sees(w, c, s, f"baddata:{artifact}:{limit}:{limit + rng.randint(1, 9)}"))


def idle_in_transaction(rng: random.Random, ts: float) -> tuple[str, str, dict]:
    return "critical", "FATAL:  terminating connection due to idle-in-transaction timeout", {}


def dns_timeout(p: Profile) -> LogMaker:
    def make(rng: random.Random, ts: float) -> tuple[str, str, dict]:
        host = f"{rng.choice(('auth', 'catalog', 'orders', 'pricing', 'inventory'))}.{p.namespace or 'default'}.svc.cluster.local"
        return (
            "warn",
            f"dial tcp: lookup {host} on 10.96.0.10:53: read udp {messages.ip(rng)}:"
            f"{rng.randint(30000, 60000)}->10.96.0.10:53: i/o timeout",
            {"error.kind": "dns"},
        )

    return make


def malformed_record(p: Profile, topic: str) -> LogMaker:
    def make(rng: random.Random, ts: float) -> tuple[str, str, dict]:
        return (
            "warn",
            f"Skipping malformed record at {topic}-{rng.randint(0, 11)} offset {rng.randint(10**6, 10**8)}: "
            f"missing required field '{rng.choice(('id', 'sku', 'amount', 'currency'))}'",
            {"topic": topic},
        )

    return make


# --------------------------------------------------------------------------- routine changes


def routine_changes(w: World, plan: Plan, rng: random.Random, high: bool) -> None:
    """The fleet's churn, uniformly over the window: no quiet period around the incident."""
    clock = w.clock
    culprit = plan.chain[0] if plan.chain else None
    anchor = _anchor(plan)

    def when() -> float:
        # pages come in busy hours, and busy hours are when people ship
        if rng.random() < 0.4:
            return rng.uniform(max(clock.start + 5 * MIN, plan.fired_at - 3600), clock.end - 2 * MIN)
        return rng.uniform(clock.start + 5 * MIN, clock.end - 2 * MIN)

    def free(n: str, t: float) -> bool:
        # the culprit's own story has one change; another near it would be a second story
        return not (n == culprit and anchor - 45 * MIN <= t)

    # deploys: at most one per service in the window, so versions stay monotonic
    in_window = {n for n in w.p if any(d.ts >= clock.start for d in w.p[n].deploys)}
    deployable = [n for n in sorted(w.p) if w.p[n].role in ("api", "worker", "gateway") and n not in in_window]
    # a shop that ships continuously: a deploy every few minutes somewhere
    k = rng.randint(16, 22) if high else rng.randint(12, 18)
    for name in rng.sample(deployable, k=min(len(deployable), k)):
        t = when()
        if not free(name, t):
            continue
        routine_deploy(w, name, t, rng)
    # config edits of every service kind
    for _ in range(rng.randint(6, 9) if high else rng.randint(4, 7)):
        t = when()
        cands = [n for n in sorted(w.p) if w.p[n].role in ("api", "worker", "redis") and free(n, t)]
        if not cands:
            continue
        config_change(w, rng.choice(cands), t, rng)
    _routine_rest(w, plan, rng, high, when, free)


def config_change(w: World, name: str, t: float, rng: random.Random) -> None:
    """A routine ConfigMap edit of ``name`` (a cache's maxmemory, a timeout, a limit ...)."""
    p = w.p[name]
    if p.role not in ("api", "worker", "redis"):
        return
    if p.role == "redis":
        old, new = rng.choice((("2gb", "4gb"), ("4gb", "6gb"), ("1gb", "2gb")))
        events.configmap(
            w, t, name, f"maxmemory: {old} -> {new}\nmaxmemory-policy: allkeys-lru", rng=rng,
            restart=False, how=f"terraform apply, run-{rng.getrandbits(40):010x}",
        )
        return
    opts = list(CONFIG_CHANGES.get(p.language, CONFIG_CHANGES["go"])) + list(K8S_CHANGES)
    if p.role != "worker":
        opts = [o for o in opts if not o[0].startswith("kafka.")]
    elif rng.random() < 0.6:  # consumers' configs are mostly consumer settings
        opts = [o for o in opts if o[0].startswith("kafka.")]
    roll = rng.random()
    if roll < 0.15:  # right-sizing, up or down a notch
        old, new = rng.choice((("2", "1500m"), ("1", "2"), ("500m", "1"), ("4", "3"), ("1500m", "2")))
        text = f"resources.limits.cpu: {old} -> {new} (right-sizing, ticket OPS-{rng.randint(1000, 9999)})"
    elif roll < 0.25 and p.role == "api":
        text = events.inspection_rule(rng, benign=True)
    else:
        key, old, new = rng.choice(opts)
        if key.startswith(("resources.", "kafka.")) or key == "replicas":
            text = f"{key}: {old} -> {new}"
        else:
            text = f'{key}: "{old}" -> "{new}"'
    events.configmap(w, t, name, text, rng=rng, restart=rng.random() < 0.7)


def _routine_rest(
    w: World,
    plan: Plan,
    rng: random.Random,
    high: bool,
    when: Callable[[], float],
    free: Callable[[str, float], bool],
) -> None:
    """Flags, terraform, migrations, grants, vendor notices, renewals, benign load, cron."""
    for _ in range(rng.randint(2, 4)):
        t = when()
        cands = [n for n in sorted(w.p) if w.p[n].role == "api" and free(n, t)]
        if cands:
            name = rng.choice(cands)
            pct = rng.choice((10, 25, 50, 100))
            was = {10: 0, 25: 10, 50: 25, 100: 50}[pct]
            events.feature_flag(w, t, name, events.flag_name(name, rng), pct, was, rng.choice(AUTHORS))
    for _ in range(rng.randint(3, 6)):
        t = when()
        roll = rng.random()
        if roll < 0.45:
            cands = [n for n in sorted(w.p) if w.p[n].role in ("db", "redis", "api") and free(n, t)]
            if cands:
                name = rng.choice(cands)
                events.dns_plan(w, t, name, messages.dns(w.p[name]), rng.randint(100000, 999999), rng.randint(1, 4))
        elif roll < 0.5:
            # the cleanup of a record set nobody resolves any more: a retired endpoint
            retired = [
                e.name
                for d in DOMAINS
                for e in d.entries
                if e.role == "db" and e.language == "postgres" and e.name not in w.p
            ]
            if retired:
                name = rng.choice(retired)
                stem = name.removesuffix("-db")
                events.dns_plan(w, t, name, f"pg-{stem}-01", rng.randint(100000, 999999), 0)
        elif roll < 0.7:
            events.storage_iam(w, t, rng)
        else:
            ws, title, diff = rng.choice(TERRAFORM)
            events.terraform(w, t, ws, title, diff.replace("{x}", rng.choice(sorted(w.p)).replace("-", "_")), rng.choice(AUTHORS))
    for _ in range(rng.randint(1, 3)):
        _migration(w, plan, rng, when())
    if rng.random() < 0.5:
        t = when()
        cands = [n for n in sorted(w.p) if w.p[n].role == "api" and free(n, t)]
        if cands:
            name = rng.choice(cands)
            events.grant(w, t, name, rng.choice(AUTHORS), rng.choice(("reporting", "analytics", "r1")), "Read access for the reporting replica.")
    externals = [n for n in sorted(w.p) if w.p[n].role == "external"]
    for _ in range(rng.randint(0, 2)):
        if externals:
            e = rng.choice(externals)
            title, text = rng.choice(VENDOR_NOTICES)
            events.statuspage(w, when(), e, _vendor(e), title, text)
    for _ in range(rng.randint(1, 2)):
        svc = rng.choice([n for n in sorted(w.p) if w.p[n].role in ("api", "gateway")])
        events.certificate(w, when(), svc, True, rng)
    if rng.random() < 0.4:
        _benign_load(w, plan, rng, when())
    cron_and_scaling(w, rng)


def routine_deploy(w: World, name: str, t: float, rng: random.Random) -> None:
    """A deploy with nothing wrong in it (a worker's consumers rebalance as pods roll)."""
    w.deploy(
        name,
        t,
        bump(w.p[name].version, rng),
        rng.choice(AUTHORS),
        commit_message(rng, name),
        rollout_s=rng.randint(90, 300),
        pipeline=rng.choice(("argo-cd", "github-actions", "spinnaker")),
    )
    if w.p[name].role == "worker":
        rebalance(w, name, t + rng.uniform(20, 60), rng, rounds=rng.randint(1, 2))


def _vendor(name: str) -> str:
    for d in DOMAINS:
        for e in d.entries:
            if e.name == name:
                return e.description
    return name


def cron_and_scaling(w: World, rng: random.Random) -> None:
    clock = w.clock
    for name in sorted(n for n in w.p if w.p[n].role == "cron"):
        for t in range(clock.start + rng.randint(5, 55) * MIN, clock.end - 5 * MIN, 3600):
            took = rng.randint(40, 900)
            w.event(
                t,
                "cron",
                f"Job {name} started",
                f"CronJob {w.p[name].namespace}/{name} started job {name}-{t // 60}",
                {"service": name, "kube_namespace": w.p[name].namespace},
            )
            w.log(t + 2, name, "info", f"Job {name} started", rng=rng)
            w.log(
                t + took,
                name,
                "info",
                f"Job {name} finished in {took}s; processed {rng.randint(1000, 90000)} rows",
                rng=rng,
            )
    for _ in range(rng.randint(2, 5)):
        name = rng.choice([n for n in sorted(w.p) if w.p[n].role in ("api", "gateway")])
        n0 = len(next(iter(w.p[name].pods.values()), [1, 1]))
        t = rng.uniform(clock.start, clock.end - MIN)
        w.event(
            t,
            "autoscaling",
            f"HorizontalPodAutoscaler {w.p[name].namespace}/{name} scaled",
            f"New size: {max(2, n0 + rng.choice((-1, 1, 2)))}; reason: cpu resource utilization (percentage of request) "
            f"{rng.choice(('above', 'below'))} target",
            {"service": name, "kube_namespace": w.p[name].namespace},
        )


def publishers(w: World, rng: random.Random) -> None:
    """Services that publish a file their callers load (feature files, rule sets ...)."""
    cands = [n for n in sorted(w.p) if w.p[n].role == "api" and w.topo.callers.get(n)]
    for name in rng.sample(cands, k=min(len(cands), rng.randint(3, 6))):
        w.publishers.setdefault(name, (rng.choice(ARTIFACTS), rng.choice((60, 128, 200, 256)) * rng.uniform(0.5, 1.2)))


# --------------------------------------------------------------------------- entry point


def apply_ambient(w: World, plan: Plan, rng: random.Random) -> None:
    """Routine changes, chronic streams and blips of every mechanism (noisy worlds only)."""
    high = w.noise == "high"
    routine_changes(w, plan, random.Random(f"{w.seed}|routine"), high)
    chronic_streams(w, plan, random.Random(f"{w.seed}|chronic"))
    brng = random.Random(f"{w.seed}|blips")
    clock = w.clock

    def when() -> float:
        # a third of the blips fall in the hour before the page, where an incident would be
        if brng.random() < 0.35:
            return brng.uniform(max(clock.start + 10 * MIN, plan.fired_at - 3600), clock.end - 3 * MIN)
        return brng.uniform(clock.start + 10 * MIN, clock.end - 3 * MIN)

    # every mechanism's background version at least once, so that no kind of artifact is
    # present only when it is the answer; then a few more at random
    funcs = sorted(set(BLIPS.values()) | {_rollback, _dbslow}, key=lambda f: f.__name__)
    for blip in funcs:
        for _ in range(4):
            if blip(w, plan, brng, when()):
                break
    extra = brng.randint(4, 8) if high else brng.randint(2, 5)
    made = 0
    for _ in range(4 * extra):
        if made >= extra:
            break
        if brng.choice(funcs)(w, plan, brng, when()):
            made += 1
    concurrent_noise(w, plan, random.Random(f"{w.seed}|concurrent"), high)
    loud_chronic(w, plan, random.Random(f"{w.seed}|loud"), high)


def below_paged(w: World, plan: Plan) -> set[str]:
    """The paged service's dependencies, off the causal chain (what an incident's own
    investigation walks through)."""
    if not plan.symptom:
        return set()
    return (w.topo.descendants(plan.symptom) | {plan.symptom}) - set(plan.chain) - plan.protect - {plan.symptom}


def concurrent_noise(w: World, plan: Plan, rng: random.Random, high: bool) -> None:
    """Unrelated trouble and routine changes below the paged service around the page.

    A real incident rarely has its dependency tree to itself: a dependency throttled for a
    while, a partner's brief 429s, a lock pile-up during a vacuum, a config edit or a deploy
    minutes before the page. None of it explains the page (it is off the causal chain and
    its callers absorb it), but "the deepest thing that errors", "the biggest jump below the
    paged service" and "the latest change below it" now point at it as often as not.
    """
    below = below_paged(w, plan)
    if not below:
        return
    fired = plan.fired_at
    anchor = _anchor(plan)
    w.blip_focus = below  # type: ignore[attr-defined]
    try:
        funcs = sorted(
            (set(BLIPS.values()) | {_rollback, _dbslow}) - {_benign_load, _migration, _nplus1},
            key=lambda f: f.__name__,
        )
        want = rng.randint(4, 6) if high else rng.randint(3, 5)
        made = 0
        for _ in range(6 * want):
            if made >= want:
                break
            t = rng.uniform(fired - 20 * MIN, fired - 4 * MIN)
            if rng.choice(funcs)(w, plan, rng, t):
                made += 1
    finally:
        w.blip_focus = None  # type: ignore[attr-defined]
    # and anywhere else in the last half hour: the busy hour does not stop for an incident
    others = [n for n in sorted(w.p) if w.p[n].role in ("api", "worker", "redis") and n not in plan.chain]
    for _ in range(rng.randint(5, 9) if not high else rng.randint(6, 10)):
        if not others:
            break
        name = rng.choice(others)
        t = rng.uniform(fired - 25 * MIN, fired - 60)
        p = w.p[name]
        if p.role in ("api", "worker") and rng.random() < 0.5 and not any(d.ts >= w.clock.start for d in p.deploys):
            routine_deploy(w, name, t, rng)
        else:
            config_change(w, name, t, rng)
    # the DNS automation refreshes endpoint records all the time, and node upgrades move
    # cache pods (they come back warm)
    stores = [n for n in sorted(w.p) if w.p[n].role in ("db", "redis") and n not in plan.chain and n not in plan.protect]
    for _ in range(rng.randint(1, 3)):
        if stores:
            name = rng.choice(stores)
            events.dns_plan(
                w, rng.uniform(fired - 25 * MIN, fired - 60), name, messages.dns(w.p[name]),
                rng.randint(100000, 999999), rng.randint(1, 4),
            )
    for _ in range(rng.randint(1, 2)):
        w.blip_focus = {n for n in stores if w.p[n].role == "redis"}  # type: ignore[attr-defined]
        try:
            _cache(w, plan, rng, rng.uniform(fired - 40 * MIN, fired - 2 * MIN))
        finally:
            w.blip_focus = None  # type: ignore[attr-defined]
    # routine changes below the paged service between the incident's start and the page, on
    # the paged service itself and on the callers along the way too (never the culprit)
    targets = sorted(n for n in below if w.p[n].role in ("api", "worker", "redis", "db"))
    targets += [n for n in [plan.symptom, *plan.chain[1:]] if n and w.p[n].role in ("api", "worker")]
    for _ in range(rng.randint(3, 6) if not high else rng.randint(4, 7)):
        if not targets:
            break
        name = rng.choice(targets)
        t = rng.uniform(anchor - 15 * MIN, fired - 60)
        p = w.p[name]
        kind = rng.random()
        if p.role in ("api", "worker") and kind < 0.45 and not any(d.ts >= w.clock.start for d in p.deploys):
            routine_deploy(w, name, t, rng)
        elif p.role == "db" and kind < 0.6:
            w.blip_focus = {name}  # type: ignore[attr-defined]
            try:
                _migration(w, plan, rng, t)
            finally:
                w.blip_focus = None  # type: ignore[attr-defined]
        elif p.role == "api" and kind < 0.75:
            pct = rng.choice((10, 25, 50))
            events.feature_flag(w, t, name, events.flag_name(name, rng), pct, {10: 0, 25: 10, 50: 25}[pct], rng.choice(AUTHORS))
        else:
            config_change(w, name, t, rng)


def check_coverage() -> list[str]:
    """Mechanisms without a background blip (must be empty)."""
    return sorted(set(REGISTRY) - set(BLIPS))
