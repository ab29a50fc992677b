"""Noise: what makes a snapshot an exam rather than an open book.

Background (``normal``/``high``): services with chronic errors (large counts, older than the
incident), short error or latency spikes well before it, routine deploys, cron runs and
autoscaling. Deliberate red herrings (``recipe.red_herrings``): a coincident deploy of an
innocent service of the culprit's team, an unrelated error burst bigger than the culprit's
during the incident, a look-alike name with a warning, a busy but healthy dependency of the
paged service. Everything that could be blamed is recorded in ``plan.herrings`` (must not
blame); ``noise="off"`` skips this module entirely.
"""

from __future__ import annotations

import random

from evaluator_agent.worldgen.ambient import apply_ambient, publishers
from evaluator_agent.worldgen.catalog import db_table
from evaluator_agent.worldgen.commits import deploy_next
from evaluator_agent.worldgen.mechanisms.base import Plan
from evaluator_agent.worldgen.mechanisms.infra_signatures import slow_query
from evaluator_agent.worldgen.telemetry import MIN, LogMaker, World, add

BURST_MESSAGES = (
    ("429", "Received 429 Too Many Requests from upstream partner; retry-after=30s"),
    (
        "validation",
        "Rejected request: schema validation failed for field 'items[0].quantity' (must be >= 1)",
    ),
    ("auth", "JWT validation failed: token is expired (exp={exp}, now={now})"),
)


def _pool(w: World, plan: Plan, roles: tuple[str, ...] = ("api", "worker")) -> list[str]:
    taken = set(plan.chain) | plan.protect | {h["entity"] for h in plan.herrings}
    if plan.monitor_service:
        taken.add(plan.monitor_service)
    return [
        n for n in sorted(w.p) if w.p[n].role in roles and n not in taken and not n.endswith("-bff")
    ]


def _stream_of(msg: str, kind: str) -> LogMaker:
    def make(rng: random.Random, ts: float) -> tuple[str, str, dict]:
        exp = int(ts) - rng.randint(30, 86400)  # a token that expired before the request
        return "error", msg.replace("{now}", str(int(ts))).replace("{exp}", str(exp)), {"error.kind": kind}

    return make


def apply_noise(w: World, plan: Plan, rng: random.Random) -> None:
    if w.noise == "off":
        return
    publishers(w, random.Random(f"{plan.recipe.seed}|publishers"))
    high = w.noise == "high"
    clock = w.clock
    anchor = plan.onset or plan.symptom_start
    # Chronic errors: big counts in the baseline and the incident alike.
    for name in rng.sample(_pool(w, plan), k=min(3 if high else 1, len(_pool(w, plan)))):
        p = w.p[name]
        p.base_err = rng.uniform(0.03, 0.09)
        p.rps *= 1.5
        plan.herrings.append(
            {"entity": name, "why": "chronic errors that predate the incident (large error count)"}
        )
        w.chronic.append(name)
    # Short spikes long before the incident.
    for _ in range(rng.randint(3, 5) if high else rng.randint(1, 2)):
        pool = _pool(w, plan, ("api", "worker", "gateway", "db"))
        if not pool or anchor - 40 * MIN <= clock.start + 15 * MIN:
            break
        name = rng.choice(pool)
        t0 = rng.uniform(clock.start + 10 * MIN, anchor - 40 * MIN)
        dur = rng.randint(4, 12) * MIN
        p = w.p[name]
        if rng.random() < 0.5:
            add(
                p.err_own,
                clock.ramp(t0, t0 + 60, rng.uniform(0.05, 0.25), until=t0 + dur, decay_s=120),
            )
        else:
            add(
                p.lat_add,
                clock.ramp(
                    t0, t0 + 60, p.base_lat * rng.uniform(2, 6), until=t0 + dur, decay_s=120
                ),
            )
    add_herrings(w, plan, rng, plan.recipe.red_herrings)
    if plan.recipe.transient_bursts:
        add_transient_bursts(
            w, plan, random.Random(f"{plan.recipe.seed}|bursts"), plan.recipe.transient_bursts
        )
    if plan.recipe.early_herrings:
        add_early_herrings(
            w, plan, random.Random(f"{plan.recipe.seed}|early"), plan.recipe.early_herrings
        )
    apply_ambient(w, plan, rng)


def add_herrings(w: World, plan: Plan, rng: random.Random, n: int) -> None:
    kinds = ["error_burst", "coincident_deploy", "similar_name", "busy_dependency"]
    rng.shuffle(kinds)
    made, k = 0, 0
    while made < n and k < 3 * len(kinds):
        kind = kinds[k % len(kinds)]
        k += 1
        if HERRINGS[kind](w, plan, rng):
            made += 1


def _error_burst(w: World, plan: Plan, rng: random.Random) -> bool:
    related = set()
    for c in plan.chain:
        related |= w.topo.ancestors(c)
    if plan.symptom:
        related |= w.topo.descendants(plan.symptom)
    pool = [n for n in _pool(w, plan) if n not in related] or _pool(w, plan)
    if not pool:
        return False
    pool.sort(key=lambda n: -w.p[n].rps)
    name = rng.choice(pool[:4])
    p, clock = w.p[name], w.clock
    t0 = (plan.onset or plan.symptom_start) + rng.randint(-300, 120)
    level = rng.uniform(0.55, 0.9)
    add(p.err_own, clock.ramp(t0, t0 + 90, level))
    add(p.traffic, clock.ramp(t0, t0 + 90, rng.uniform(0.5, 1.2)))
    tag, msg = rng.choice(BURST_MESSAGES)
    make = _stream_of(msg, tag)
    if p.own_error is None:
        p.own_error = make
    w.burst[name] = t0
    plan.herrings.append(
        {
            "entity": name,
            "why": "unrelated error burst, larger than the culprit's, during the incident",
        }
    )
    return True


def _coincident_deploy(w: World, plan: Plan, rng: random.Random) -> bool:
    team = w.p[plan.chain[0]].team if plan.chain else ""
    # Innocent and unaffected: a deploy on a service that also shows the incident's symptoms would
    # be a double trap (a change and an anomaly), which no evidence could tell from the culprit.
    affected = w.topo.ancestors(plan.chain[0]) if plan.chain else set()
    pool = [
        n
        for n in _pool(w, plan, ("api", "worker", "gateway"))
        if n not in affected and not w.deployed_in_window(n)
    ]
    same = [n for n in pool if w.p[n].team == team] or pool
    if not same:
        return False
    name = rng.choice(same)
    anchor = plan.onset or plan.symptom_start
    t = anchor + rng.randint(-600, 90)
    deploy_next(w, name, t, rng)
    why = "deployed minutes before the page" + (
        f", same team ({team}) as the culprit" if w.p[name].team == team and team else ""
    )
    plan.herrings.append({"entity": name, "why": why})
    return True


def _similar_name(w: World, plan: Plan, rng: random.Random) -> bool:
    target = plan.chain[0] if plan.chain else plan.monitor_service
    if not target:
        return False
    stem = target.split("-")[0].rstrip("s")
    pool = [
        n
        for n in _pool(w, plan, ("api", "worker", "db", "redis"))
        if n.split("-")[0].rstrip("s") == stem
    ]
    if not pool:
        return False
    name = rng.choice(pool)
    p = w.p[name]
    anchor = plan.onset or plan.symptom_start
    if p.role in ("api", "worker"):
        add(p.lat_add, w.clock.ramp(anchor + 120, anchor + 300, p.base_lat * rng.uniform(1.0, 2.0)))
        w.stream(
            name,
            anchor + 120,
            plan.end,
            0.6,
            lambda r, ts: (
                "warn",
                f"Slow request: {r.randint(1200, 4000)}ms exceeds threshold of 1000ms",
                {},
            ),
        )
    elif p.role == "db" and p.language == "postgres":
        table = db_table(name)
        w.stream(name, anchor + 60, plan.end, 0.8, slow_query(table, "created_at"))
    elif p.role == "db":
        w.stream(
            name,
            anchor + 60,
            plan.end,
            0.5,
            lambda r, ts: (
                "warn",
                f"[index.search.slowlog.query] [products] took[{r.uniform(1.0, 4.0):.1f}s], "
                f"took_millis[{r.randint(1000, 4000)}], total_hits[{r.randint(10, 9000)} hits]",
                {},
            ),
        )
    else:
        w.stream(
            name,
            anchor + 60,
            plan.end,
            0.3,
            lambda r, ts: (
                "warn",
                "Asynchronous AOF fsync is taking too long (disk is busy?). Writing the AOF buffer "
                "without waiting for fsync to complete, this may slow down Redis.",
                {},
            ),
        )
    w.warned[name] = anchor + rng.randint(150, 400)
    plan.herrings.append(
        {
            "entity": name,
            "why": f"name resembles {target} and it raised warnings during the incident",
        }
    )
    return True


def _busy_dependency(w: World, plan: Plan, rng: random.Random) -> bool:
    if not plan.symptom:
        return False
    taken = set(plan.chain) | plan.protect | {h["entity"] for h in plan.herrings}
    pool = sorted(
        d
        for d in w.topo.descendants(plan.symptom)
        if d not in taken and w.p[d].role in ("db", "api", "worker")
    )
    if not pool:
        return False
    name = rng.choice(pool)
    p = w.p[name]
    anchor = (plan.onset or plan.symptom_start) + rng.randint(150, 420)
    if p.role == "db" and p.hosts:
        host = p.hosts[0]
        w.host_res.setdefault(host, {})["cpu"] = [
            rng.uniform(20, 30) if w.clock.ts(i) < anchor else rng.uniform(72, 88)
            for i in range(w.clock.n)
        ]
        w.event(
            anchor - 30,
            "cron",
            f"Job pg-backup-{name} started",
            f"pg_basebackup of {name} from {host} (daily)",
            {"service": name, "host": host},
        )
        why = "CPU busy with a scheduled backup during the incident, but healthy"
    else:
        gc = p.res.setdefault("gc", [rng.uniform(3, 15) for _ in range(w.clock.n)])
        p.res["cpu"] = [
            rng.uniform(0.2, 0.3) if w.clock.ts(i) < anchor else rng.uniform(0.75, 0.92)
            for i in range(w.clock.n)
        ]
        for i in range(w.clock.idx(anchor), w.clock.n):
            gc[i] = rng.uniform(80, 220)
        why = "CPU and GC up during the incident, but it serves without errors"
    plan.herrings.append({"entity": name, "why": why})
    return True


HERRINGS = {
    "error_burst": _error_burst,
    "coincident_deploy": _coincident_deploy,
    "similar_name": _similar_name,
    "busy_dependency": _busy_dependency,
}




def add_early_herrings(w: World, plan: Plan, rng: random.Random, n: int) -> None:
    """Decoys that changed and degraded BEFORE the incident (opt-in: ``recipe.early_herrings``).

    A dependency of the paged service, off the causal chain and not calling the culprit, gets a
    deploy 18-40 minutes before the onset, followed within minutes by a sustained latency rise
    and a trickle of timeouts that is still going on at the page. It is a real regression, but
    it did not cause the page: the paged service's errors come from the culprit. "Earliest
    change with an anomaly" heuristics blame it.
    """
    if not plan.symptom or not plan.chain:
        return
    affected = set(plan.chain)
    for c in plan.chain:
        affected |= w.topo.ancestors(c)
    taken = affected | plan.protect | {h["entity"] for h in plan.herrings}
    pool = sorted(
        d
        for d in w.topo.descendants(plan.symptom)
        if d not in taken
        and w.p[d].role in ("api", "worker")
        and not d.endswith("-bff")
        and not w.deployed_in_window(d)
    )
    rng.shuffle(pool)
    anchor = plan.onset or plan.symptom_start
    first = min(anchor, (plan.trigger or {}).get("at") or anchor)
    for name in pool[:n]:
        p, clock = w.p[name], w.clock
        t_dep = first - rng.randint(18 * MIN, 40 * MIN)
        if t_dep < clock.start + 50 * MIN:
            t_dep = clock.start + 50 * MIN
        deploy_next(w, name, t_dep, rng)
        t0 = t_dep + rng.randint(60, 180)
        add(p.lat_add, clock.ramp(t0, t0 + 240, p.base_lat * rng.uniform(3.0, 6.0)))
        add(p.err_own, clock.ramp(t0, t0 + 240, rng.uniform(0.03, 0.08)))
        if p.own_error is None:
            p.own_error = _stream_of(
                "Request timed out after 5000ms waiting for response body", "timeout"
            )
        w.stream(
            name,
            t0 + 60,
            plan.end,
            0.8,
            lambda r, ts: (
                "warn",
                f"Slow request: {r.randint(1500, 6000)}ms exceeds threshold of 1000ms",
                {},
            ),
        )
        w.warned[name] = t0 + 120
        plan.herrings.append(
            {
                "entity": name,
                "why": "deployed and degraded (latency, a few timeouts) BEFORE the incident started, "
                "but it does not explain the page",
            }
        )


DRAIN_MESSAGES = (
    "upstream connect error or disconnect/reset before headers. reset reason: connection termination",
    "Error: connect ECONNREFUSED (pod terminating during node drain)",
    "io.grpc.StatusRuntimeException: UNAVAILABLE: io exception (connection reset by peer)",
)


def add_transient_bursts(w: World, plan: Plan, rng: random.Random, n: int) -> None:
    """Resolved blips in the hour before the page (opt-in: ``recipe.transient_bursts``).

    A busy service off the incident's path throws errors for a few minutes while its node is
    drained for patching, 30-55 minutes before the page, and recovers well before it. The
    biggest error growth of the last hour, and nothing to do with the page.
    """
    affected = set(plan.chain) | ({plan.symptom} if plan.symptom else set())
    for c in plan.chain:
        affected |= w.topo.ancestors(c)
    taken = affected | plan.protect | {h["entity"] for h in plan.herrings}
    pool = [
        s
        for s in sorted(w.p)
        if w.p[s].role in ("api", "gateway", "worker") and s not in taken and s not in w.burst
    ]
    pool.sort(key=lambda s: -w.p[s].rps)
    pool = pool[:4]
    rng.shuffle(pool)
    for name in pool[:n]:
        p, clock = w.p[name], w.clock
        t0 = plan.fired_at - rng.randint(40, 58) * MIN
        dur = rng.randint(12, 18) * MIN
        add(
            p.err_own,
            clock.ramp(t0, t0 + 60, rng.uniform(0.7, 0.95), until=t0 + dur, decay_s=120),
        )
        add(p.traffic, clock.ramp(t0, t0 + 60, rng.uniform(0.5, 1.0), until=t0 + dur, decay_s=120))
        if p.own_error is None:
            p.own_error = _stream_of(rng.choice(DRAIN_MESSAGES), "unavailable")
        node = p.hosts[0] if p.hosts else f"ip-10-{rng.randint(4, 15)}-{rng.randint(0, 255)}"
        w.event(
            t0 - 40,
            "kubernetes",
            f"Node {node} cordoned and drained",
            f"kubectl drain {node} --ignore-daemonsets (kernel patching, change CHG-{rng.randint(10000, 99999)}); "
            f"pods of {name} evicted and rescheduled",
            {"service": name, "host": node},
        )
        plan.herrings.append(
            {
                "entity": name,
                "why": "error burst during a node drain in the hour before the page; recovered "
                "long before the page",
            }
        )
