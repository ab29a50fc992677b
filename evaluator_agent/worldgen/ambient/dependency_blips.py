"""Blips in what services depend on: database pools, migrations, slow queries and lock
pile-ups, TLS and DNS failures, caches restarted or evicting, partners' brief errors, retries,
full disks and a publisher's malformed data.

Each ``blip_*`` is the mild, resolved background version of a mechanism (see ``BLIPS`` in
``ambient/__init__.py``): ``(world, plan, rng, t) -> landed``.
"""

from __future__ import annotations

import random

from evaluator_agent.worldgen import events, messages
from evaluator_agent.worldgen.ambient.placement import (
    COLUMNS,
    add_ramp,
    anchor_of,
    caller_sees,
    callers_of,
    episode,
    in_focus,
    pg_dbs,
    pick,
    pool,
    res_curve,
    scatter,
    stream,
)
from evaluator_agent.worldgen.baseline import bump
from evaluator_agent.worldgen.catalog import AUTHORS, db_table
from evaluator_agent.worldgen.mechanisms.base import Plan
from evaluator_agent.worldgen.mechanisms.infra_signatures import (
    archive_failure,
    disk_full_error,
    redis_restart_lines,
    retry_warning,
    slow_query,
    slow_query_line,
    x509_error,
)
from evaluator_agent.worldgen.mechanisms.signatures import (
    TABLES,
    hikari_leak_warning,
    hikari_timeout,
    lock_timeout,
    lock_wait,
    overload_error,
    remaining_slots,
)
from evaluator_agent.worldgen.telemetry import MIN, World, add


def blip_pool_wait(w: World, plan: Plan, rng: random.Random, t: float) -> bool:
    dur = rng.randint(4, 20) * MIN

    def has_pg(n: str) -> bool:
        return any(w.p[d].language == "postgres" for d in w.topo.calls.get(n, []))

    svc = pick(rng, pool(w, plan, t, dur, roles=("api",), langs=("java",), need=has_pg))
    if not svc:
        return False
    total = rng.choice((10, 20, 30))
    episode(w, svc, t, t + dur, rng.uniform(0.04, 0.15), hikari_timeout(total, rng.randint(3, 20)))
    scatter(w, svc, t - 60, rng.randint(1, 3), dur, hikari_leak_warning(), rng)
    db = rng.choice([d for d in w.topo.calls[svc] if w.p[d].language == "postgres"])
    if db not in plan.protect and db not in plan.chain:
        add_ramp(w, res_curve(w.p[db], "+conn", w.clock.n), t, t + dur, rng.uniform(0.3, 0.5), ramp=60)
        if rng.random() < 0.7:
            stream(w, db, t + 30, t + dur, rng.uniform(0.2, 0.8), remaining_slots)
    return True


def blip_migration(w: World, plan: Plan, rng: random.Random, t: float) -> bool:
    dbs = [d for d in pg_dbs(w) if d not in plan.chain and callers_of(w, d)]
    if not dbs:
        return False
    db = rng.choice(dbs)
    app = rng.choice(callers_of(w, db))
    table, col = db_table(db), rng.choice(COLUMNS)
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
    if p.role in ("api", "worker") and not w.deployed_in_window(app):
        w.deploy(app, t - 40, bump(p.version, rng), rng.choice(AUTHORS), f"Add migration V{num}__{name}",
                 rollout_s=rng.randint(90, 200))
    events.migration(w, t, db, num, name, sql, app, p.version_at(t) if p.deploys else "1.0.0")
    if rng.random() < 0.5:
        stream(w, db, t, t + rng.randint(5, 20) * MIN, 1.0, slow_query(table, col))
    return True


def _quiet_db(w: World, plan: Plan, rng: random.Random, t: float, dur: float) -> str | None:
    """A Postgres database the incident leaves alone for [t, t + dur] (the chain's only well
    before the anchor), or None."""
    dbs = [d for d in pg_dbs(w) if d not in plan.protect and (d not in plan.chain or t + dur < anchor_of(plan) - 1800)]
    return rng.choice(dbs) if dbs else None


def blip_dbslow(w: World, plan: Plan, rng: random.Random, t: float) -> bool:
    """A database slowed by a heavy query for a while; its callers time some statements out."""
    dur = rng.randint(4, 20) * MIN
    d = _quiet_db(w, plan, rng, t, dur)
    if d is None:
        return False
    q = w.p[d]
    table = db_table(d)
    stream(w, d, t, t + dur, rng.uniform(0.5, 2.0), slow_query_line(table) if rng.random() < 0.5 else slow_query(table, rng.choice(COLUMNS)))
    add_ramp(w, q.lat_add, t, t + dur, q.base_lat * rng.uniform(2, 8), ramp=60)
    for c in callers_of(w, d):
        if c != plan.symptom and c not in plan.chain and rng.random() < 0.7:
            episode(w, c, t + 30, t + dur, rng.uniform(0.01, 0.06), caller_sees(w, c, d, "timeout"))
    return True


def blip_locks(w: World, plan: Plan, rng: random.Random, t: float) -> bool:
    dur = rng.randint(4, 20) * MIN
    db = _quiet_db(w, plan, rng, t, dur)
    if db is None:
        return False
    q, n = w.p[db], w.clock.n
    add_ramp(w, res_curve(q, "+locks", n), t, t + dur, rng.uniform(40, 160), ramp=60)
    stream(w, db, t, t + dur, rng.uniform(0.8, 2.0), lock_wait(db))
    callers = [c for c in callers_of(w, db) if c != plan.symptom and c not in plan.chain]
    if callers:
        c = rng.choice(callers)
        episode(w, c, t + 30, t + dur, rng.uniform(0.03, 0.12), lock_timeout(w.p[c], db, rng.choice(TABLES)))
    return True


def blip_tls(w: World, plan: Plan, rng: random.Random, t: float) -> bool:
    # a client that cannot verify a partner's certificate for a minute or two (a bad chain
    # during the vendor's rotation), or a renewal that failed and will be retried
    externals = [n for n in sorted(w.p) if w.p[n].role == "external" and n not in plan.chain and in_focus(w, n)]
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
        scatter(w, c, t, rng.randint(1, 3), 120, make, rng)
        return True
    svc = pick(rng, pool(w, plan, t, 60, roles=("api", "gateway")))
    if not svc:
        return False
    events.certificate(w, t, svc, False, rng)
    events.certificate(w, t + rng.randint(15, 60) * MIN, svc, True, rng)
    return True


def blip_dns(w: World, plan: Plan, rng: random.Random, t: float) -> bool:
    callers = [
        (c, d)
        for c in pool(w, plan, t, 120, roles=("api", "worker", "gateway"))
        for d in w.topo.calls.get(c, [])
        if w.p[d].role in ("db", "redis", "api") and d not in plan.chain
    ]
    if not callers:
        return False
    c, d = rng.choice(callers)
    make = caller_sees(w, c, d, "dns")
    episode(w, c, t, t + rng.randint(60, 480), rng.uniform(0.02, 0.1), make)
    scatter(w, c, t, rng.randint(1, 3), 60, make, rng)
    return True


def blip_cache(w: World, plan: Plan, rng: random.Random, t: float) -> bool:
    caches = [
        n
        for n in sorted(w.p)
        if w.p[n].role == "redis"
        and n not in plan.protect
        and (n not in plan.chain or t < anchor_of(plan) - 2400)
        and in_focus(w, n)
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
        add_ramp(w, res_curve(r, "+miss", n), t, t + 120, rng.uniform(0.05, 0.2), ramp=30)
        # while the pod is away its clients are refused
        for q in callers_of(w, c):
            if q != plan.symptom and q not in plan.chain:
                down = rng.randint(60, 240)  # a restart without the stampede still takes a while
                make = caller_sees(w, q, c, "refused")
                episode(w, q, t - 20, t + down, rng.uniform(0.2, 0.6), make, ramp=5)
                scatter(w, q, t - 15, rng.randint(1, 3), down, make, rng)
    else:
        add_ramp(w, res_curve(r, "+evicted", n), t, t + rng.randint(2, 8) * MIN, rng.uniform(200, 3000), ramp=60)
        add_ramp(w, res_curve(r, "+miss", n), t, t + 300, rng.uniform(0.02, 0.08), ramp=60)
    return True


def blip_partner(w: World, plan: Plan, rng: random.Random, t: float) -> bool:
    pairs = [
        (c, e)
        for e in sorted(w.p)
        if w.p[e].role == "external" and e not in plan.chain
        for c in callers_of(w, e)
        if c in pool(w, plan, t, 300, roles=("api", "worker"))
    ]
    if not pairs:
        return False
    c, e = rng.choice(pairs)
    code = rng.choice((429, 503))
    host = messages.dns(w.p[e])
    dur = rng.randint(3, 15) * MIN
    make = caller_sees(w, c, e, f"partner:{code}")
    episode(w, c, t, t + dur, rng.uniform(0.04, 0.2), make)
    scatter(w, c, t, rng.randint(1, 3), dur, make, rng)
    scatter(w, c, t, rng.randint(1, 4), dur, retry_warning(e, host), rng)
    add_ramp(w, w.p[e].err_own, t, t + dur, rng.uniform(0.05, 0.2), ramp=30)
    return True


def blip_retries(w: World, plan: Plan, rng: random.Random, t: float) -> bool:
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
    stream(w, c, t, t + dur, rng.uniform(0.4, 1.5), retry_warning(d, messages.dns(w.p[d])))
    episode(w, c, t, t + dur, rng.uniform(0.01, 0.05), caller_sees(w, c, d, "timeout"))
    if rng.random() < 0.7:
        episode(w, d, t + 30, t + dur, rng.uniform(0.02, 0.08), overload_error(w.p[d]))
    add_ramp(w, w.p[d].lat_add, t, t + dur, w.p[d].base_lat * rng.uniform(0.5, 2), ramp=60)
    return True


def blip_disk(w: World, plan: Plan, rng: random.Random, t: float) -> bool:
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
    dbs = [d for d in pg_dbs(w) if d not in plan.protect and d not in plan.chain]
    if kind < 0.75 and dbs:  # a huge sort's temp file fills the volume for a while
        db = rng.choice(dbs)
        dur = rng.randint(2, 8) * MIN
        episode(w, db, t, t + dur, rng.uniform(0.02, 0.08), disk_full_error())
        stream(w, db, t, t + dur, rng.uniform(0.5, 2.0), disk_full_error())
        if rng.random() < 0.5:
            scatter(w, db, t, 1, 5, archive_failure(db, rng), rng)
        for q in callers_of(w, db):
            if q != plan.symptom and q not in plan.chain:
                make = caller_sees(w, q, db, "nospace")
                episode(w, q, t, t + dur, rng.uniform(0.02, 0.1), make)
                scatter(w, q, t, rng.randint(1, 2), dur, make, rng)
        return True
    svc = pick(rng, pool(w, plan, t, 60, roles=("worker", "api"), langs=("python", "go", "java")))
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


def blip_baddata(w: World, plan: Plan, rng: random.Random, t: float) -> bool:
    pubs = [s for s in sorted(w.publishers) if s not in plan.chain and callers_of(w, s) and in_focus(w, s)]
    if not pubs:
        return False
    pub = rng.choice(pubs)
    consumers = [c for c in callers_of(w, pub) if c in pool(w, plan, t, 300, roles=("api", "worker", "gateway"))]
    artifact, _ = w.publishers[pub]
    limit = rng.choice((20, 60, 128, 200, 256))
    got = limit + rng.randint(1, 40)
    dur = rng.randint(3, 8) * MIN
    add_ramp(w, res_curve(w.p[pub], "+artifact", w.clock.n), t, t + dur, rng.uniform(0.2, 0.6), ramp=30)
    if consumers:
        c = rng.choice(consumers)
        make = caller_sees(w, c, pub, f"baddata:{artifact}:{limit}:{got}")
        episode(w, c, t + 30, t + dur, rng.uniform(0.03, 0.15), make)
        scatter(w, c, t + 30, rng.randint(1, 2), dur, make, rng)
    return True
