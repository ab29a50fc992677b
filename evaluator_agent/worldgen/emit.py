"""Emitting a world's metrics and logs: per-service state becomes Datadog-shaped metric series
and sampled log lines (the render step of ``build.py``; spans are ``traces.py``'s).

Series (60 s points over the whole window, ``None`` where a version had no pods yet):
APM ``trace.<op>.hits|errors|duration`` by service/env/version/resource_name;
Kubernetes ``kubernetes.memory.usage`` (by version), ``kubernetes.memory.limits``,
``kubernetes.cpu.usage.total``, ``kubernetes.containers.restarts``,
``kubernetes_state.deployment.replicas_available``; JVM ``jvm.heap_memory``,
``jvm.gc.major_collection_time``; ``postgresql.connections``,
``postgresql.percent_usage_connections`` (a fraction, 1.0 = every slot used);
``redis.stats.keyspace_hits|misses``, ``redis.keys.evicted``, ``redis.mem.used``,
``redis.net.clients``; ``kafka.messages_in.rate``, ``kafka.consumer_lag``; hosts
``system.cpu.user``, ``system.disk.in_use`` (a fraction).

Logs are sampled the way a log pipeline with exclusion filters samples them. Every service
has its own retention (the share of its errors that become log lines) and its own rate limit
(lines per minute), drawn from the same wide distributions whatever the service's part in the
incident: log counts are comparable within one service over time, not across services.
"""

from __future__ import annotations

import math
import random

from evaluator_agent.worldgen import messages
from evaluator_agent.worldgen.catalog import db_table
from evaluator_agent.worldgen.telemetry import MIN, Profile, World, add, diurnal, sig

ERROR_LOG_RATE = 0.012  # median share of APM errors kept as log lines
INFO_LOG_RATE = 0.06  # median info lines per service per minute


def log_policy(w: World, name: str) -> tuple[float, int, float]:
    """(error lines per APM error, error lines per minute at most, info lines per minute) of one
    service: exclusion filters and rate limits differ by team, so counts rank nothing."""
    rng = w.rng("logpolicy", name)
    keep = ERROR_LOG_RATE * math.exp(rng.gauss(0, 0.9))
    cap = rng.choice((2, 3, 4, 6, 8, 12, 16))
    info = INFO_LOG_RATE * math.exp(rng.gauss(0, 0.7))
    return keep, cap, info


def _walk(rng: random.Random, n: int, sd: float = 0.012) -> list[float]:
    out, x = [], 0.0
    for _ in range(n):
        x = 0.96 * x + rng.gauss(0, sd)
        out.append(x)
    return out


def load_curve(w: World, p: Profile) -> list[float]:
    """Traffic multiplier per minute: diurnal shape x slow drift x incident/noise multipliers."""
    walk = _walk(w.rng("walk", p.name), w.clock.n)
    return [diurnal(w.clock.ts(i)) * p.traffic[i] * (1 + walk[i]) for i in range(w.clock.n)]


def _stoch(rng: random.Random, x: float) -> int:
    n = int(x)
    return n + (1 if rng.random() < x - n else 0)


def render_apm(w: World, p: Profile, load: list[float]) -> tuple[list[float], list[float]]:
    """APM series of one entity; returns per-minute total hits and errors for log sampling."""
    clock, n = w.clock, w.clock.n
    tot_h, tot_e = [0.0] * n, [0.0] * n
    if not p.op or not p.resources:
        return tot_h, tot_e
    shares = [p.share(clock.ts(i) + 30) if p.deploys else {"": 1.0} for i in range(n)]
    versions = [v for v in (p.versions() or [""]) if any(s.get(v, 0) > 0 for s in shares)]
    # what does not change along a series, worked out once (the same operations in the same order)
    rps_min, base_err, err_prop, lat_add = p.rps * MIN, p.base_err, p.err_prop, p.lat_add
    lat_load = [p.base_lat * (1 + 0.12 * (load[i] - 1)) for i in range(n)]
    lat_floor = p.base_lat * 0.3
    sqrt = math.sqrt
    for v in versions:
        for res, wgt in p.resources:
            rng = w.rng("apm", p.name, v, res)
            gauss = rng.gauss
            own_curve = (
                p.err_own if p.err_version in (None, v) and p.err_resource in (None, res) else None
            )
            lat_curve = lat_add if p.lat_resource in (None, res) else None
            hits: list[float | int | None] = []
            errs: list[float | int | None] = []
            durs: list[float | int | None] = []
            for i in range(n):
                s = shares[i].get(v, 0.0)
                if s <= 0:
                    hits.append(None), errs.append(None), durs.append(None)
                    continue
                h = max(0, round(rps_min * load[i] * s * wgt * (1 + gauss(0, 0.03))))
                h = (
                    int(sig(h)) if h >= 1000 else h
                )  # three significant digits: as precise as anyone reads
                own = own_curve[i] if own_curve is not None else 0.0
                ratio = min(1.0, base_err + own + err_prop[i])
                mean = h * ratio
                e = (
                    min(h, max(0, round(mean + gauss(0, sqrt(mean) * 0.6))))
                    if mean > 0
                    else 0
                )
                d = lat_load[i] * (1 + gauss(0, 0.05)) + (
                    lat_curve[i] if lat_curve is not None else 0.0
                )
                hits.append(h), errs.append(e), durs.append(sig(max(d, lat_floor)))
                tot_h[i] += h
                tot_e[i] += e
            tags = {"service": p.name, "env": "prod", "resource_name": res}
            if v:
                tags["version"] = v
            w.series(f"trace.{p.op}.hits", tags, hits, "count")
            w.series(f"trace.{p.op}.errors", tags, errs, "count")
            w.series(f"trace.{p.op}.duration", tags, durs, "gauge")
    return tot_h, tot_e


def _k8s_tags(p: Profile) -> dict[str, str]:
    return {
        "service": p.name,
        "env": "prod",
        "kube_deployment": p.name,
        "kube_namespace": p.namespace,
        "kube_cluster_name": p.cluster,
    }


def _plus(res: dict[str, list[float]], key: str, n: int) -> list[float]:
    """The additive transient ``+key`` that mechanisms and background blips stack on a series,
    per minute (zeros when there is none)."""
    c = res.get("+" + key)
    return c if c else [0.0] * n


def render_k8s(w: World, p: Profile, load: list[float]) -> None:
    clock, n = w.clock, w.clock.n
    rng = w.rng("k8s", p.name)
    tags = _k8s_tags(p)
    mem_noise = _walk(rng, n, 0.004)
    drift = p.res.get("mem_drift")
    shares = [p.share(clock.ts(i) + 30) for i in range(n)] if p.deploys else []
    plus_mem = _plus(p.res, "mem", n)
    for v in p.versions():
        curve = p.res.get(f"mem@{v}") or p.res.get("mem")
        vals: list[float | int | None] = []
        for i in range(n):
            if shares[i].get(v, 0) <= 0:
                vals.append(None)
                continue
            frac = (
                curve[i]
                if curve
                else p.mem_base * (1 + 0.05 * (load[i] - 1))
                + mem_noise[i]
                + (drift[i] if drift else 0.0)
            ) + plus_mem[i]
            vals.append(sig(p.mem_limit * min(1.0, max(0.05, frac))))
        w.series("kubernetes.memory.usage", {**tags, "version": v}, vals)
    w.series("kubernetes.memory.limits", tags, [sig(p.mem_limit)] * n)
    cpu = p.res.get("cpu")
    base_cpu = rng.uniform(0.12, 0.35)
    plus_cpu = _plus(p.res, "cpu", n)
    cpu_frac = [
        min(
            1.0,
            (cpu[i] if cpu else base_cpu * load[i] * (1 + rng.gauss(0, 0.04)))
            + plus_cpu[i],
        )
        for i in range(n)
    ]
    w.series(
        "kubernetes.cpu.usage.total", tags, [sig(p.cpu_limit * 1e9 * f) for f in cpu_frac]
    )
    w.series("kubernetes.cpu.limits", tags, [p.cpu_limit] * n)
    # CFS throttling: every container is throttled a little at its peaks; some teams set tight
    # limits and live with a steady few seconds per minute.
    chronic = rng.random() < 0.3
    level = rng.uniform(1.0, 7.0) if chronic else rng.uniform(0.0, 0.4)
    throttled = p.res.get("throttled")
    plus_throttled = _plus(p.res, "throttled", n)
    w.series(
        "kubernetes.cpu.cfs.throttled.seconds",
        tags,
        [
            sig(
                max(
                    0.0,
                    (throttled[i] if throttled else level * load[i] * (1 + rng.gauss(0, 0.25)))
                    + plus_throttled[i]
                    + max(0.0, cpu_frac[i] - 0.85) * 60,
                )
            )
            for i in range(n)
        ],
        "rate",
    )
    replicas = p.res.get("replicas")
    plus_replicas = _plus(p.res, "replicas", n)
    n_pods = len(p.pods.get(p.version) or next(iter(p.pods.values()), [1]))
    w.series(
        "kubernetes_state.deployment.replicas_available",
        tags,
        [round(replicas[i] if replicas else n_pods + plus_replicas[i]) for i in range(n)],
    )
    restarts = p.res.get("restarts")
    plus_restarts = _plus(p.res, "restarts", n)
    w.series(
        "kubernetes.containers.restarts",
        tags,
        [int((restarts[i] if restarts else 0) + plus_restarts[i]) for i in range(n)],
    )
    killed = p.res.get("oomkilled")
    plus_killed = _plus(p.res, "oomkilled", n)
    w.series(
        "kubernetes_state.container.status_report.count.terminated",
        {**tags, "reason": "oomkilled"},
        [int((killed[i] if killed else 0) + plus_killed[i]) for i in range(n)],
    )
    if p.language == "java":
        heap = p.res.get("heap")
        gc = p.res.get("gc")
        base_gc = rng.uniform(3, 18)
        plus_gc = _plus(p.res, "gc", n)
        w.series(
            "jvm.heap_memory",
            {"service": p.name, "env": "prod"},
            [
                sig(
                    p.mem_limit
                    * 0.75
                    * min(
                        1.0,
                        (heap[i] if heap else p.mem_base * 0.9 + mem_noise[i] * 2)
                        + plus_mem[i],
                    )
                )
                for i in range(n)
            ],
        )
        w.series(
            "jvm.gc.major_collection_time",
            {"service": p.name, "env": "prod"},
            [
                sig(
                    (gc[i] if gc else base_gc * (1 + abs(rng.gauss(0, 0.3))))
                    + plus_gc[i]
                )
                for i in range(n)
            ],
            "rate",
        )


def render_db(w: World, p: Profile, load: list[float]) -> None:
    rng = w.rng("db", p.name)
    n = w.clock.n
    tags = {
        "service": p.name,
        "env": "prod",
        "host": p.hosts[0] if p.hosts else p.name,
        "db": db_table(p.name),
    }
    conn = p.res.get("conn")
    plus_conn = _plus(p.res, "conn", n)
    base = rng.uniform(0.22, 0.45)
    max_conn = rng.choice((200, 300, 500))
    frac = [
        min(
            1.0,
            (conn[i] if conn else base * (0.85 + 0.15 * load[i]) * (1 + rng.gauss(0, 0.03)))
            + plus_conn[i],
        )
        for i in range(n)
    ]
    if p.language == "postgres":
        w.series("postgresql.connections", tags, [round(f * max_conn) for f in frac])
        w.series("postgresql.percent_usage_connections", tags, [sig(f) for f in frac])
        w.series("postgresql.max_connections", tags, [max_conn] * n)
        # Ungranted row locks: a busy database always has a few waiters.
        locks = p.res.get("locks")
        plus_locks = _plus(p.res, "locks", n)
        lbase = rng.uniform(1.0, 14.0)
        w.series(
            "postgresql.locks",
            {**tags, "lock_mode": "rowexclusivelock", "granted": "false"},
            [
                sig(
                    max(
                        0.0,
                        (locks[i] if locks else lbase * load[i] * (1 + rng.gauss(0, 0.2)))
                        + plus_locks[i],
                    )
                )
                for i in range(n)
            ],
        )
    elif p.language == "mysql":
        w.series("mysql.net.connections", tags, [round(f * max_conn) for f in frac])


def render_redis(w: World, p: Profile, load: list[float]) -> None:
    rng = w.rng("redis", p.name)
    n = w.clock.n
    tags = {"service": p.name, "env": "prod", "redis_host": p.name, "redis_port": "6379"}
    hit, mem, clients, evicted = (p.res.get(k) for k in ("hit", "mem", "clients", "evicted"))
    base_hit, base_clients = rng.uniform(0.9, 0.97), rng.randint(40, 220)
    plus_miss, plus_evicted = _plus(p.res, "miss", n), _plus(p.res, "evicted", n)
    ops = [p.rps * load[i] * (1 + rng.gauss(0, 0.03)) for i in range(n)]
    hr = [
        max(
            0.01,
            min(0.999, (hit[i] if hit else base_hit + rng.gauss(0, 0.004)) - plus_miss[i]),
        )
        for i in range(n)
    ]
    w.series("redis.stats.keyspace_hits", tags, [sig(ops[i] * hr[i]) for i in range(n)], "rate")
    w.series(
        "redis.stats.keyspace_misses", tags, [sig(ops[i] * (1 - hr[i])) for i in range(n)], "rate"
    )
    w.series(
        "redis.keys.evicted",
        tags,
        [sig((evicted[i] if evicted else 0) + plus_evicted[i]) for i in range(n)],
        "rate",
    )
    w.series(
        "redis.mem.used",
        tags,
        [
            sig(p.mem_limit * (mem[i] if mem else p.mem_base + rng.gauss(0, 0.002)))
            for i in range(n)
        ],
    )
    w.series(
        "redis.net.clients",
        tags,
        [
            round(base_clients * (clients[i] if clients else 1 + rng.gauss(0, 0.02)))
            for i in range(n)
        ],
    )


def render_topic(w: World, p: Profile, load: list[float]) -> None:
    rng = w.rng("kafka", p.name)
    n = w.clock.n
    rate = rng.uniform(40, 400)
    w.series(
        "kafka.messages_in.rate",
        {"topic": p.name, "service": p.name, "env": "prod"},
        [sig(rate * load[i] * (1 + rng.gauss(0, 0.04))) for i in range(n)],
        "rate",
    )
    for c in sorted(w.topo.callers.get(p.name, [])):
        q = w.p[c]
        if q.role != "worker":
            continue
        lag = q.res.get("lag")
        plus_lag = _plus(q.res, "lag", n)
        base = rng.uniform(20, 250)
        w.series(
            "kafka.consumer_lag",
            {"topic": p.name, "consumer_group": c, "service": c, "env": "prod"},
            [
                round(
                    (lag[i] if lag else base * (1 + abs(rng.gauss(0, 0.5))))
                    + plus_lag[i]
                )
                for i in range(n)
            ],
        )


def render_hosts(w: World) -> None:
    n = w.clock.n
    for h in w.topo.hosts:
        name = h["name"]
        rng = w.rng("host", name)
        over = w.host_res.get(name, {})
        tags = {"host": name, "env": "prod", "availability-zone": h["zone"]}
        if h["cluster"]:
            tags["kube_cluster_name"] = h["cluster"]
        cpu_base, disk = rng.uniform(12, 45), rng.uniform(0.28, 0.66)
        walk = _walk(rng, n, 0.01)
        cpu = over.get("cpu")
        plus_cpu, plus_disk = _plus(over, "cpu", n), _plus(over, "disk", n)
        w.series(
            "system.cpu.user",
            tags,
            [
                round(
                    min(
                        100.0,
                        (cpu[i] if cpu else cpu_base * diurnal(w.clock.ts(i)) * (1 + walk[i]))
                        + plus_cpu[i],
                    ),
                    1,
                )
                for i in range(n)
            ],
        )
        d = over.get("disk") or _disk(rng, disk, n)
        w.series(
            "system.disk.in_use",
            tags,
            [round(min(1.0, d[i] + plus_disk[i]), 3) for i in range(n)],
        )


def _disk(rng: random.Random, level: float, n: int) -> list[float]:
    """A volume that grows with what is written and drops back when logs rotate or compact."""
    grow, period, phase = rng.uniform(0.00003, 0.00012), rng.randint(45, 160), rng.randint(0, 160)
    return [level + grow * ((i + phase) % period) + rng.gauss(0, 0.0005) for i in range(n)]


def worker_backlog(w: World, p: Profile) -> None:
    """A consumer that slows down or fails falls behind, whatever the reason: its consumption
    drops below what producers publish and the difference piles up as lag, drained again once
    it recovers (it normally runs at ``util`` of what it could do)."""
    if "lag" in p.res:  # the mechanism modelled this consumer's lag itself
        return
    util = w.rng("util", p.name).uniform(0.3, 0.6)
    backlog, lag = 0.0, [0.0] * w.clock.n
    for i in range(w.clock.n):
        slow = 1 + p.lat_add[i] / max(p.base_lat, 1e-6)
        fail = min(0.95, p.err_own[i] + p.err_prop[i])
        capacity = (1 - fail) / slow / util
        if capacity < 1:
            backlog += (1 - capacity) * p.rps * MIN
            p.traffic[i] *= capacity
        else:
            backlog = max(0.0, backlog - (capacity - 1) * p.rps * MIN)
        lag[i] = backlog
    if any(lag):
        add(p.res.setdefault("+lag", [0.0] * w.clock.n), lag)


def render_metrics(w: World) -> dict[str, tuple[list[float], list[float]]]:
    totals: dict[str, tuple[list[float], list[float]]] = {}
    for name in sorted(w.p):
        if w.p[name].role == "worker":
            worker_backlog(w, w.p[name])
    for name in sorted(w.p):
        p = w.p[name]
        load = load_curve(w, p)
        totals[name] = render_apm(w, p, load)
        if p.role in ("api", "gateway", "worker"):
            render_k8s(w, p, load)
        elif p.role == "db":
            render_db(w, p, load)
        elif p.role == "redis":
            render_redis(w, p, load)
        elif p.role == "topic":
            render_topic(w, p, load)
    render_hosts(w)
    render_artifacts(w)
    return totals


def render_artifacts(w: World) -> None:
    """Size of the files publishers generate for their consumers, one series per publisher."""
    n = w.clock.n
    for name in sorted(w.publishers):
        artifact, kb = w.publishers[name]
        rng = w.rng("artifact", name)
        walk = _walk(rng, n, 0.004)
        plus = _plus(w.p[name].res, "artifact", n)
        w.series(
            "artifact.published.size_kb",
            {"service": name, "artifact": artifact, "env": "prod"},
            [sig(kb * (1 + walk[i] + plus[i])) for i in range(n)],
        )


def render_logs(w: World, totals: dict[str, tuple[list[float], list[float]]]) -> None:
    clock = w.clock
    for k, s in enumerate(w.streams):
        rng = w.rng("stream", k, s.service)
        for i in range(clock.idx(s.start), clock.idx(s.end) + 1):
            t0 = clock.ts(i)
            lo, hi = max(t0, s.start), min(t0 + MIN, s.end, clock.end)
            if hi <= lo:
                continue
            ramp = min(1.0, (lo - s.start) / s.ramp_s) if s.ramp_s > 0 else 1.0
            for _ in range(_stoch(rng, s.per_min * ramp * (hi - lo) / MIN)):
                ts = rng.uniform(lo, hi)
                status, msg, attrs = s.make(rng, ts)
                w.log(ts, s.service, status, msg, attrs, rng=rng)
    for name in sorted(w.p):
        p = w.p[name]
        rng = w.rng("logs", name)
        _, errs = totals[name]
        if p.role in ("api", "gateway", "worker"):
            keep, cap, info = log_policy(w, name)
            for i in range(clock.n):
                t0 = clock.ts(i)
                if rng.random() < info:
                    ts = t0 + rng.uniform(0, MIN)
                    status, msg, attrs = messages.access(p, rng, ts)
                    w.log(ts, name, status, msg, attrs, rng=rng)
                k = min(cap, _stoch(rng, errs[i] * keep))
                for _ in range(k):
                    ts = t0 + rng.uniform(0, MIN)
                    status, msg, attrs = _error_line(w, p, i, rng, ts)
                    w.log(ts, name, status, msg, attrs, rng=rng)
        elif p.role in ("db", "redis"):
            for i in range(0, clock.n, 1):
                if rng.random() < INFO_LOG_RATE / 3:
                    line = messages.infra_info(p, rng)
                    if line:
                        w.log(
                            clock.ts(i) + rng.uniform(0, MIN),
                            name,
                            line[0],
                            line[1],
                            line[2],
                            rng=rng,
                        )


def _error_line(
    w: World, p: Profile, i: int, rng: random.Random, ts: float
) -> tuple[str, str, dict]:
    own, prop = p.err_own[i], p.err_prop[i]
    if p.err_version is not None and p.share(ts).get(p.err_version, 0) <= 0:
        own = 0.0
    x = rng.random() * (p.base_err + own + prop)
    make = p.error_maker(ts)
    if x < own and make is not None:
        status, msg, attrs = make(rng, ts)
        return status, msg, ({**attrs, "version": p.err_version} if p.err_version else attrs)
    if x < own + prop and p.upstream:
        active = [u for u in p.upstream if u[0] <= i] or p.upstream[:1]
        _, child, style = rng.choice(active[-2:])
        return messages.upstream_error(p, w.p[child], style, rng)
    return messages.background_error(p, rng)
