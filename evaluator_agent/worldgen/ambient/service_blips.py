"""Blips of a service's own trouble: OOM kills, a crash loop, CPU throttling, consumer lag and
rebalances, a bug's stack traces, N+1 queries, a flag rolled out and back, a deploy rolled back,
and benign load (a campaign, a load test, a crawler, a game day).

Each ``blip_*`` is the mild, resolved background version of a mechanism (see ``BLIPS`` in
``ambient/__init__.py``): ``(world, plan, rng, t) -> landed``.
"""

from __future__ import annotations

import random

from evaluator_agent.worldgen import events, messages
from evaluator_agent.worldgen.ambient.placement import (
    add_ramp,
    bug_trace,
    count_kill,
    crash_loop,
    episode,
    pick,
    pool,
    res_curve,
    scatter,
    stream,
)
from evaluator_agent.worldgen.catalog import AUTHORS
from evaluator_agent.worldgen.commits import deploy_next
from evaluator_agent.worldgen.mechanisms.base import Plan
from evaluator_agent.worldgen.mechanisms.infra_signatures import (
    crawler_line,
    rate_limited,
)
from evaluator_agent.worldgen.mechanisms.no_fault import fault_abort
from evaluator_agent.worldgen.mechanisms.signatures import (
    commit_failed,
    crash_after_kill,
    gc_pause_line,
    heartbeat_failed,
    kafka_poll_timeout,
    kafka_revoke,
    n_plus_one,
    no_healthy_upstream,
    oom_own_error,
    overload_error,
    slow_batch_line,
    slow_request,
    startup_failure,
    startup_lines,
)
from evaluator_agent.worldgen.telemetry import MIN, World, add


def blip_oom(w: World, plan: Plan, rng: random.Random, t: float) -> bool:
    svc = pick(rng, pool(w, plan, t, 15 * MIN, need=lambda n: bool(w.p[n].hosts and w.p[n].pods)))
    if not svc:
        return False
    p, n = w.p[svc], w.clock.n
    climb = rng.randint(5, 14) * MIN
    add_ramp(w, res_curve(p, "+mem", n), t - climb, t, 0.97 - p.mem_base, ramp=climb)
    pod = p.pod(rng, t)
    kills = rng.choice((1, 1, 1, 2, 3))
    tk = t
    for _ in range(kills):
        events.oom_kill(w, tk, p, pod, rng.choice(p.hosts), rng)
        if w.clock.idx(tk) < n:
            count_kill(w, p, tk)
        episode(w, svc, tk - 60, tk + 90, rng.uniform(0.02, 0.08), oom_own_error(p))
        crash = crash_after_kill(p, rng)
        if crash:
            w.log(tk - rng.uniform(0.5, 3), svc, crash[0], crash[1], {"pod_name": pod, **crash[2]}, rng=rng)
        for k, line in enumerate(startup_lines(p, rng, p.version_at(tk))):
            w.log(tk + 8 + 2 * k, svc, "info", line, {"pod_name": pod}, rng=rng)
        if rng.random() < 0.5:
            w.backoff(tk + rng.uniform(20, 90), svc, pod)
        tk += rng.randint(120, 420)
    if p.language == "java":
        stream(w, svc, t - climb * 0.5, t + 60, 0.8, gc_pause_line(p))
    return True


def blip_crashloop(w: World, plan: Plan, rng: random.Random, t: float) -> bool:
    dur = rng.randint(3, 9) * MIN
    svc = pick(rng, pool(w, plan, t, dur, roles=("api",), need=lambda n: bool(w.p[n].pods)))
    if not svc:
        return False
    p, n = w.p[svc], w.clock.n
    key, old, bad, make = startup_failure(p)
    author = rng.choice(AUTHORS)
    events.configmap(w, t, svc, f'{key}: "{old}" -> "{bad}"', author, rng)
    pod = p.pod(rng, t)
    w.k8s_event(t + 25, svc, "Killing", f"Stopping container {svc}", pod)
    crash_loop(w, svc, pod, make, t + 30, t + dur, rng)
    add_ramp(w, res_curve(p, "+replicas", n), t + 30, t + dur, -1.0, ramp=30)
    episode(w, svc, t + 30, t + dur, rng.uniform(0.03, 0.12), no_healthy_upstream)
    events.configmap(w, t + dur, svc, f'{key}: "{bad}" -> "{old}" (revert)', author, rng)
    return True


def blip_throttle(w: World, plan: Plan, rng: random.Random, t: float) -> bool:
    dur = rng.randint(5, 20) * MIN
    svc = pick(rng, pool(w, plan, t, dur))
    if not svc:
        return False
    p, n = w.p[svc], w.clock.n
    add_ramp(w, res_curve(p, "+throttled", n), t, t + dur, rng.uniform(6, 22), ramp=120)
    add_ramp(w, res_curve(p, "+cpu", n), t, t + dur, rng.uniform(0.3, 0.55), ramp=120)
    add_ramp(w, p.lat_add, t, t + dur, p.base_lat * rng.uniform(0.3, 1.2), ramp=120)
    if rng.random() < 0.5:
        stream(w, svc, t + 60, t + dur, 0.5, slow_request(p))
    if rng.random() < 0.7:
        episode(w, svc, t + 60, t + dur, rng.uniform(0.02, 0.08), overload_error(p))
    if rng.random() < 0.4 and p.pods:
        w.k8s_event(t + rng.uniform(60, dur), svc, "Unhealthy", messages.probe_timeout(rng), p.pod(rng, t))
    return True


def blip_lag(w: World, plan: Plan, rng: random.Random, t: float) -> bool:
    dur = rng.randint(8, 25) * MIN
    svc = pick(rng, pool(w, plan, t, dur, roles=("worker",)))
    if not svc:
        return False
    p, n = w.p[svc], w.clock.n
    peak = rng.uniform(3000, 60000)
    grow = dur * rng.uniform(0.3, 0.6)
    add(res_curve(p, "+lag", n), w.clock.ramp(t, t + grow, peak, until=t + grow, decay_s=dur - grow))
    topic = w.topo.consumed_topic(svc)
    if rng.random() < 0.5:
        events.backfill(w, t - 30, topic, f"{topic}-backfill", rng.randint(1, 9) * 100_000, rng.choice(AUTHORS))
    stream(w, svc, t, t + grow, 1.0, slow_batch_line(topic))
    if rng.random() < 0.4:
        episode(w, svc, t + grow / 3, t + grow, rng.uniform(0.003, 0.01), kafka_poll_timeout(svc, topic))
    return True


def blip_rebalance(w: World, plan: Plan, rng: random.Random, t: float) -> bool:
    svc = pick(rng, pool(w, plan, t, 5 * MIN, roles=("worker",)))
    if not svc:
        return False
    rebalance(w, svc, t, rng, rounds=rng.randint(1, 3))
    if rng.random() < 0.3:
        topic = w.topo.consumed_topic(svc)
        episode(w, svc, t, t + 180, rng.uniform(0.003, 0.01), commit_failed(svc, topic, t))
    return True


def blip_stack(w: World, plan: Plan, rng: random.Random, t: float) -> bool:
    dur = rng.randint(10, 60) * MIN
    svc = pick(rng, pool(w, plan, t, dur, roles=("api",), need=lambda n: bool(w.p[n].resources)))
    if not svc:
        return False
    make = bug_trace(w.p[svc], rng)
    episode(w, svc, t, t + dur, rng.uniform(0.01, 0.05), make)
    return True


def blip_nplus1(w: World, plan: Plan, rng: random.Random, t: float) -> bool:
    dur = rng.randint(20, 90) * MIN
    svc = pick(rng, pool(w, plan, t, dur, roles=("api",)))
    if not svc:
        return False
    stream(w, svc, t, t + dur, rng.uniform(0.2, 0.8), n_plus_one(w.p[svc]))
    return True


def blip_flag(w: World, plan: Plan, rng: random.Random, t: float) -> bool:
    dur = rng.randint(4, 12) * MIN
    svc = pick(rng, pool(w, plan, t, dur, roles=("api",), need=lambda n: bool(w.p[n].resources)))
    if not svc:
        return False
    p = w.p[svc]
    flag, author = events.flag_name(svc, rng), rng.choice(AUTHORS)
    pct = rng.choice((5, 10, 20))
    events.feature_flag(w, t, svc, flag, pct, 0, author)
    make = bug_trace(p, rng)

    def flagged(r: random.Random, ts: float) -> tuple[str, str, dict]:
        s, m, a = make(r, ts)
        return s, f"{m}\n[feature flag {flag} enabled for this request]", {**a, "feature_flag": flag}

    episode(w, svc, t + 30, t + dur, rng.uniform(0.01, 0.05) * pct / 10, flagged)
    events.feature_flag(w, t + dur, svc, flag, 0, pct, author)
    return True


def blip_rollback(w: World, plan: Plan, rng: random.Random, t: float) -> bool:
    """A deploy that went wrong and was rolled back: the change, the failure it caused (errors,
    OOM kills or a crash loop) and the rollback, all on one unrelated service."""
    dur = rng.randint(4, 15) * MIN

    def fresh(n: str) -> bool:
        return bool(w.p[n].pods) and not w.deployed_in_window(n)

    svc = pick(rng, pool(w, plan, t, dur, need=fresh))
    if not svc:
        return False
    p = w.p[svc]
    old = p.version
    deploy_next(w, svc, t, rng)
    kind = rng.random()
    if kind < 0.5 and p.resources:
        make = bug_trace(p, rng)
        episode(w, svc, t + 60, t + dur, rng.uniform(0.05, 0.3), make)
    elif kind < 0.75 and p.hosts:
        for _ in range(rng.randint(1, 3)):
            tk = t + rng.uniform(3, dur / 60 - 1) * MIN
            if w.clock.idx(tk) >= w.clock.n:
                continue
            pod = p.pod(rng, tk)
            events.oom_kill(w, tk, p, pod, rng.choice(p.hosts), rng)
            count_kill(w, p, tk)
            episode(w, svc, tk - 60, tk + 60, rng.uniform(0.03, 0.1), oom_own_error(p))
        add_ramp(w, res_curve(p, "+mem", w.clock.n), t + 60, t + dur, 0.95 - p.mem_base, ramp=dur / 2)
    else:
        _, _, _, make = startup_failure(p)
        pod = p.pod(rng, t + 120)
        crash_loop(w, svc, pod, make, t + 90, t + dur, rng)
        episode(w, svc, t + 90, t + dur, rng.uniform(0.03, 0.12), no_healthy_upstream)
    w.deploy(svc, t + dur, old, rng.choice(AUTHORS), f"Rollback to {old}", rollout_s=rng.randint(60, 180))
    return True


def blip_benign_load(w: World, plan: Plan, rng: random.Random, t: float) -> bool:
    """A campaign, a load test, a crawler or a chaos experiment, on a service that copes."""
    svc = pick(rng, pool(w, plan, t, 1800, roles=("api",)))
    if not svc:
        return False
    p = w.p[svc]
    dur = rng.randint(10, 40) * MIN
    kind = rng.random()
    if kind < 0.3:
        events.campaign(w, t, rng.choice(events.CAMPAIGNS), svc, rng.uniform(0.3, 2.0))
        add_ramp(w, p.traffic, t, t + dur, rng.uniform(0.3, 0.9), ramp=240)
    elif kind < 0.55:
        events.load_test(w, t, svc, rng.choice((50, 100, 200, 400)), dur // MIN, rng.choice(AUTHORS))
        add_ramp(w, p.traffic, t, t + dur, rng.uniform(0.5, 1.5), ramp=60)
        stream(w, svc, t + 60, t + dur, rng.uniform(0.3, 1.0), rate_limited(p))
    elif kind < 0.8:
        add_ramp(w, p.traffic, t, t + dur, rng.uniform(0.2, 0.6), ramp=120)
        stream(w, svc, t, t + dur, rng.uniform(0.5, 1.5), crawler_line(p))
    else:
        name = f"{svc}-gameday-{rng.randint(10, 99)}"
        if rng.random() < 0.5:
            pct = rng.choice((2, 5, 8))
            events.chaos(w, t, svc, name, f"{pct}% HTTP 503 aborts", dur // MIN, rng.choice(AUTHORS))
            episode(w, svc, t, t + dur, pct / 100, fault_abort(p, name))
        else:
            ms = rng.choice((100, 200, 300))
            events.chaos(w, t, svc, name, f"{ms}ms of latency", dur // MIN, rng.choice(AUTHORS))
            add_ramp(w, p.lat_add, t, t + dur, ms / 1000, ramp=30)
    return True


def rebalance(w: World, svc: str, t: float, rng: random.Random, rounds: int = 1) -> None:
    """A consumer group rebalancing ``rounds`` times (a deploy, a scale event, a slow member)."""
    p = w.p[svc]
    topic = w.topo.consumed_topic(svc)
    for r in range(rounds):
        tr = t + r * rng.randint(25, 70)
        for j, line in enumerate(kafka_revoke(p, svc, topic)):
            w.log(tr + j, svc, "info", line, {}, rng=rng)
        scatter(w, svc, tr - 5, rng.randint(0, 2), 10, heartbeat_failed(svc, topic), rng)
    if rounds > 1 and rng.random() < 0.5:
        scatter(w, svc, t + 20, 1, 40, commit_failed(svc, topic, t), rng)
