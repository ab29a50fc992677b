"""Chronic trouble: lines some services log all day (scanners' TLS errors, resolver timeouts,
slow queries, pool and GC warnings ...) and problems nobody has fixed yet, loud all window long
(a worker OOM-killed every half hour, a pod crash-looping since a bad canary ...).

Their rates do not change with the incident: what sets them apart from it is that they were
there long before the page and still are.
"""

from __future__ import annotations

import random

from evaluator_agent.worldgen import events, messages
from evaluator_agent.worldgen.ambient.placement import (
    COLUMNS,
    add_ramp,
    bug_trace,
    caller_sees,
    callers_of,
    count_kill,
    count_restart,
    episode,
    pg_dbs,
    res_curve,
    stream,
)
from evaluator_agent.worldgen.ambient.service_blips import rebalance
from evaluator_agent.worldgen.catalog import db_table
from evaluator_agent.worldgen.mechanisms.base import Plan
from evaluator_agent.worldgen.mechanisms.infra_signatures import (
    archive_failure,
    disk_full_error,
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
    lock_timeout,
    lock_wait,
    n_plus_one,
    no_healthy_upstream,
    oom_own_error,
    overload_error,
    remaining_slots,
    slow_batch_line,
    slow_request,
    startup_failure,
)
from evaluator_agent.worldgen.telemetry import MIN, LogMaker, Profile, World, add


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
        stream(w, s, start, end, rng.uniform(0.1, 0.6), tls_server_error(w.p[s]))
    # the cluster resolver times out now and then
    for s in some(("api", "worker"), rng.randint(1, 3)):
        stream(w, s, start, end, rng.uniform(0.01, 0.05), dns_timeout(w.p[s]))
    # busy databases log slow queries and lock waits all day
    dbs = [d for d in pg_dbs(w) if d not in plan.chain]
    for d in rng.sample(dbs, k=min(len(dbs), rng.randint(1, 3))):
        table = db_table(d)
        slow = slow_query(table, rng.choice(COLUMNS)) if rng.random() < 0.6 else slow_query_line(table)
        stream(w, d, start, end, rng.uniform(0.05, 0.3), slow)
        if rng.random() < 0.6:
            stream(w, d, start, end, rng.uniform(0.03, 0.2), lock_wait(d))
    for d in rng.sample(dbs, k=min(len(dbs), rng.randint(0, 2))):
        stream(w, d, start, end, rng.uniform(0.02, 0.1), idle_in_transaction)
    for d in rng.sample(dbs, k=min(len(dbs), rng.randint(0, 1))):
        stream(w, d, start, end, rng.uniform(0.01, 0.05), remaining_slots)
    for s in some(("api",), rng.randint(0, 2), ("java",)):
        stream(w, s, start, end, rng.uniform(0.02, 0.1), hikari_leak_warning())
    for s in some(("api", "worker"), rng.randint(1, 2), ("java",)):
        stream(w, s, start, end, rng.uniform(0.05, 0.3), gc_pause_line(w.p[s]))
    for s in some(("api",), rng.randint(0, 2)):
        stream(w, s, start, end, rng.uniform(0.05, 0.3), n_plus_one(w.p[s]))
    for s in some(("api", "gateway"), rng.randint(1, 2)):
        kids = [d for d in w.topo.calls.get(s, []) if w.p[d].role in ("api", "external")]
        if kids:
            d = rng.choice(kids)
            stream(w, s, start, end, rng.uniform(0.02, 0.15), retry_warning(d, messages.dns(w.p[d])))
    for s in some(("worker",), rng.randint(0, 2)):
        stream(w, s, start, end, rng.uniform(0.02, 0.1), malformed_record(w.p[s], w.topo.consumed_topic(s)))
    for s in some(("api",), rng.randint(0, 1), ("python",)):
        stream(w, s, start, end, rng.uniform(0.01, 0.05), overload_error(w.p[s]))
    for s in some(("api", "worker"), rng.randint(0, 2)):
        stream(w, s, start, end, rng.uniform(0.03, 0.2), slow_request(w.p[s]))
    # readiness probes that flap now and then on busy pods, renewals that keep retrying
    for s in some(("api", "worker", "gateway"), rng.randint(2, 5)):
        p = w.p[s]
        if not p.pods:
            continue
        t = start + rng.uniform(0, 30) * MIN
        while t < end:
            w.k8s_event(t, s, "Unhealthy", messages.probe_timeout(rng), p.pod(rng, t))
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
    dbs = [d for d in pg_dbs(w) if ok(d)]
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
                count_kill(w, p, t)
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
                    w.backoff(t + 3, svc, pod)
                    n_back += 1
                count_restart(w, p, t)
                t += 300 + rng.uniform(0, 10)
            episode(w, svc, start, end, level / 2, no_healthy_upstream)
        elif kind in ("partner", "tls"):
            pairs = [(c, e) for e in sorted(w.p) if w.p[e].role == "external" and ok(e) for c in callers_of(w, e) if ok(c)]
            if not pairs:
                continue
            c, e = rng.choice(pairs)
            if kind == "partner":
                make = caller_sees(w, c, e, f"partner:{rng.choice((429, 503))}")
                stream(w, c, start, end, rng.uniform(0.1, 0.4), retry_warning(e, messages.dns(w.p[e])))
            else:
                q, ext, expired = w.p[c], w.p[e], start - rng.randint(1, 20) * 86400

                def make(r: random.Random, ts: float, q=q, ext=ext, expired=expired) -> tuple[str, str, dict]:
                    return x509_error(q, ext, expired, r)

            episode(w, c, start, end, level, make)
        elif kind == "locks":
            pairs = [(c, d) for d in pg_dbs(w) if ok(d) for c in callers_of(w, d) if ok(c)]
            if not pairs:
                continue
            c, d = rng.choice(pairs)
            episode(w, c, start, end, level, lock_timeout(w.p[c], d, rng.choice(TABLES)))
            stream(w, d, start, end, rng.uniform(0.3, 1.0), lock_wait(d))
            add_ramp(w, res_curve(w.p[d], "+locks", w.clock.n), start, end, rng.uniform(20, 60), ramp=60)
        elif kind == "dns":
            pairs = [(c, d) for c in apis for d in w.topo.calls.get(c, []) if w.p[d].role in ("db", "redis", "api") and ok(d)]
            if not pairs:
                continue
            c, d = rng.choice(pairs)
            episode(w, c, start, end, level / 2, caller_sees(w, c, d, "dns"))
        elif kind == "stack":
            cands = [n for n in apis if w.p[n].role == "api" and w.p[n].resources]
            if not cands:
                continue
            svc = rng.choice(cands)
            episode(w, svc, start, end, level, bug_trace(w.p[svc], rng))
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
            stream(w, svc, start, end, rng.uniform(0.05, 0.3), hikari_leak_warning())
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
            stream(w, svc, start, end, rng.uniform(0.2, 0.8), heartbeat_failed(svc, topic))
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
            stream(w, d, t0, t1, rng.uniform(0.3, 1.5), make)
            if kind != "archive":
                episode(w, d, t0, t1, level, make)
                for q in callers_of(w, d):
                    if ok(q) and kind == "nospace":
                        episode(w, q, t0, t1, level / 2, caller_sees(w, q, d, "nospace"))
        elif kind == "lag":
            cands = [n for n in apis if w.p[n].role == "worker"]
            if not cands:
                continue
            svc = rng.choice(cands)
            topic = w.topo.consumed_topic(svc)
            stream(w, svc, start, end, rng.uniform(0.3, 1.0), slow_batch_line(topic))
            episode(w, svc, start, end, level / 3, kafka_poll_timeout(svc, topic))
            base = rng.uniform(5000, 40000)
            add(res_curve(w.p[svc], "+lag", w.clock.n), [base * (0.7 + 0.6 * rng.random()) for _ in range(w.clock.n)])
        elif kind == "dbslow":
            # a database with a slow report query at the top of its load: its callers time out
            pairs = [(c, d) for d in dbs for c in callers_of(w, d) if ok(c)]
            if not pairs:
                continue
            c, d = rng.choice(pairs)
            table = db_table(d)
            stream(w, d, start, end, rng.uniform(0.3, 1.0), slow_query(table, rng.choice(COLUMNS)))
            episode(w, c, start, end, level, caller_sees(w, c, d, "timeout"))
            add_ramp(w, w.p[d].lat_add, start, end, w.p[d].base_lat * rng.uniform(1, 4), ramp=60)
        elif kind == "edge":
            # one backend that the edge proxy sees failing now and then, all day
            gw = [n for n in sorted(w.p) if w.p[n].role == "gateway" and ok(n)]
            pairs = [(g, b) for g in gw for b in w.topo.calls.get(g, []) if ok(b)]
            if not pairs:
                continue
            g, b = rng.choice(pairs)
            episode(w, g, start, end, level / 2, caller_sees(w, g, b, rng.choice(("5xx", "timeout"))))
        elif kind == "parse":
            pubs = [s for s in sorted(w.publishers) if ok(s)]
            pairs = [(c, s) for s in pubs for c in callers_of(w, s) if ok(c)]
            if not pairs:
                continue
            c, s = rng.choice(pairs)
            artifact, _ = w.publishers[s]
            limit = rng.choice((20, 60, 128, 200, 256))
            episode(w, c, start, end, level / 2, caller_sees(w, c, s, f"baddata:{artifact}:{limit}:{limit + rng.randint(1, 9)}"))


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
