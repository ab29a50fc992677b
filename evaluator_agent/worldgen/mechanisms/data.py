"""Mechanisms that start in the data tier: a full disk, a migration that dropped an index, a
release whose new query pattern hammers a healthy database (N+1), malformed data that a healthy
producer hands to its consumers, and row-lock contention from a long transaction.

The producer of bad data serves 200s: only its consumers' logs name it."""

from __future__ import annotations

import random

from evaluator_agent.worldgen import events, messages
from evaluator_agent.worldgen.catalog import AUTHORS, db_table
from evaluator_agent.worldgen.mechanisms.base import (
    Mechanism,
    Plan,
    propagate,
    register,
    release,
    trigger_lead,
)
from evaluator_agent.worldgen.mechanisms.infra_signatures import (
    archive_failure,
    disk_full_error,
    nospace_upstream,
    slow_query,
)
from evaluator_agent.worldgen.mechanisms.signatures import (
    TABLES,
    lock_timeout,
    lock_wait,
    n_plus_one,
)
from evaluator_agent.worldgen.telemetry import ARTIFACTS, MIN, Profile, World, add, diurnal
from evaluator_agent.worldgen.topology import CHAIN_ROLES, Topo

messages.STYLE_HOOKS["nospace"] = lambda p, child, style, rng: nospace_upstream(p, child, rng)


def _pg_with_callers(topo: Topo, name: str) -> bool:
    return topo.entries[name].language == "postgres" and any(
        topo.role(c) in CHAIN_ROLES for c in topo.callers.get(name, [])
    )


def wal_fill(w: World, rng: random.Random, t0: float, t_full: float) -> list[float]:
    """Disk usage while unarchived WAL piles up from ``t0``: it grows with the write volume
    (busier minutes write more), in 16 MB segments, and reaches the end of the volume at
    ``t_full``."""
    clock = w.clock
    d0 = rng.uniform(0.52, 0.7)
    i0, i1 = clock.idx(t0), max(clock.idx(t0) + 1, clock.idx(t_full))
    writes = [diurnal(clock.ts(i)) * rng.lognormvariate(0, 0.35) for i in range(i0, i1)]
    total = sum(writes) or 1.0
    out, acc = [], 0.0
    for i in range(clock.n):
        if i < i0:
            out.append(d0 + rng.gauss(0, 0.0005))
            continue
        if i < i1:
            acc += writes[i - i0]
        frac = d0 + (1 - d0) * acc / total
        out.append(min(1.0, round(frac / 0.002) * 0.002))
    return out


@register
class DiskFull(Mechanism):
    name = "disk_full"
    system_level = "infrastructure"
    culprit_roles = ("db",)
    min_chain = 2

    def accept(self, topo: Topo, name: str) -> bool:
        return _pg_with_callers(topo, name)

    def apply(self, w: World, plan: Plan, rng: random.Random) -> None:
        db = plan.chain[0]
        p, clock = w.p[db], w.clock
        host = p.hosts[0]
        onset = plan.onset or plan.fired_at
        lead = min(
            max(plan.recipe.time_offset_s, rng.randint(50, 110) * MIN),
            onset - clock.start - 15 * MIN,
        )
        t0 = onset - lead
        author = rng.choice(AUTHORS)
        events.storage_iam(
            w,
            t0 - rng.randint(60, 300),
            rng,
            "pg_wal_archive",
            "roles/storage.objectAdmin",
            "roles/storage.objectViewer",
            author,
        )
        w.host_res.setdefault(host, {})["disk"] = wal_fill(w, rng, t0, onset)
        w.stream(db, t0 + 60, plan.end, 1.0, archive_failure(db, rng))
        level = rng.uniform(0.3, 0.6)
        err = clock.ramp(onset, onset + 60, level)
        p.err_own = list(err)
        w.stream(db, onset, plan.end, 2.5, disk_full_error())
        propagate(w, plan, rng, err, clock.zeros(), "nospace")
        plan.trigger = {
            "kind": "infrastructure",
            "entity": host,
            "at": int(t0),
            "description": f"WAL archiving from {host} failed after an IAM change; pg_wal filled the disk",
        }
        plan.aliases += [host, f"{host}:/var/lib/postgresql"]
        plan.evidence_for(
            "query_metrics",
            {"query": f"max:system.disk.in_use{{host:{host}}}", **plan.window(lead + 600)},
            "system.disk.in_use",
            "the data disk fills up to 100%",
        )
        plan.evidence_for(
            "search_logs",
            {"query": f'service:{db} "No space left on device"', **plan.window(600)},
            "No space left on device",
            "writes fail for lack of space",
        )
        plan.evidence_for(
            "get_events",
            {"query": "source:terraform", **plan.window(lead + 900)},
            'pg_wal_archive role: "roles/storage.objectAdmin" -> "roles/storage.objectViewer"',
            "the IAM change that broke WAL archiving",
        )
        plan.signals |= {"metrics", "logs", "events"}
        plan.technologies += ["postgresql", "gcp"]


@register
class SlowQueryMigration(Mechanism):
    name = "slow_query_migration"
    system_level = "data"
    culprit_roles = ("db",)
    min_chain = 2

    def accept(self, topo: Topo, name: str) -> bool:
        return _pg_with_callers(topo, name)

    def chains(self, topo: Topo, length: int) -> list[list[str]]:
        return [ch for ch in super().chains(topo, length) if topo.role(ch[1]) == "api"]

    def apply(self, w: World, plan: Plan, rng: random.Random) -> None:
        db, app = plan.chain[0], plan.chain[1]
        p, clock = w.p[db], w.clock
        onset = plan.onset or plan.fired_at
        table, col = (
            db_table(db),
            rng.choice(("customer_id", "sku", "merchant_id", "status", "external_ref")),
        )
        idx, num = f"idx_{table}_{col}", rng.randint(180, 420)
        t_dep = onset - rng.randint(90, 240)
        version = release(
            w, plan, rng, app, t_dep, 150, f"Add migration V{num}__rebuild_{table}_indexes"
        )
        events.migration(
            w,
            t_dep + 40,
            db,
            num,
            f"rebuild_{table}_indexes",
            f"DROP INDEX CONCURRENTLY {idx};\nCREATE INDEX CONCURRENTLY {idx}_v2 ON {table} ({col}, created_at);",
            app,
            version,
        )
        plan.trigger = {
            "kind": "migration",
            "entity": db,
            "at": int(t_dep + 40),
            "description": f"Migration V{num} dropped {idx} on {db}; queries by {col} scan {table}",
        }
        slow_res = f"SELECT * FROM {table} WHERE {col} = ?"
        p.resources = [(p.resources[0][0], 0.6), (slow_res, 0.4)]
        p.lat_resource = slow_res
        p.lat_add = clock.ramp(onset, onset + 120, rng.uniform(1.5, 6.0))
        p.res["conn"] = [
            rng.uniform(0.3, 0.4) + 0.5 * x for x in clock.ramp(onset, onset + 240, 1.0)
        ]
        w.host_res.setdefault(p.hosts[0], {})["cpu"] = [
            rng.uniform(20, 35) if clock.ts(i) < onset else rng.uniform(88, 98)
            for i in range(clock.n)
        ]
        w.stream(db, onset, plan.end, 2.0, slow_query(table, col))
        p.err_own = clock.ramp(onset + 30, onset + 180, rng.uniform(0.01, 0.03))
        err = clock.ramp(onset + 60, onset + 240, rng.uniform(0.1, 0.3))
        lat = clock.ramp(onset, onset + 120, rng.uniform(1.0, 3.0))
        propagate(w, plan, rng, err, lat, "timeout")
        plan.aliases += [f"V{num}", idx, f"{db}/{table}"]
        plan.partial.append(
            {"entity": app, "credit": 0.5, "why": f"{app}'s deploy carried the migration"}
        )
        plan.evidence_for(
            "get_events",
            {"query": f"source:database service:{db}", **plan.window()},
            idx,
            "the migration that dropped the index",
        )
        plan.evidence_for(
            "search_logs",
            {"query": f'service:{db} "duration"', **plan.window(600)},
            col,
            "slow query log names the unindexed column",
        )
        plan.evidence_for(
            "query_metrics",
            {
                "query": f"avg:trace.postgres.query.duration{{service:{db}}} by {{resource_name}}",
                **plan.window(3600),
            },
            col,
            "one query shape got slow",
        )
        plan.signals |= {"metrics", "logs", "events"}
        plan.technologies += ["postgresql", "flyway"]


@register
class LatencyRegression(Mechanism):
    name = "latency_regression"
    culprit_roles = ("api",)
    monitor_kind = "latency"

    def accept(self, topo: Topo, name: str) -> bool:
        return not name.endswith("-bff") and any(
            topo.entries[d].language == "postgres" for d in topo.calls.get(name, [])
        )

    def apply(self, w: World, plan: Plan, rng: random.Random) -> None:
        c = plan.chain[0]
        p, clock = w.p[c], w.clock
        db = rng.choice([d for d in w.topo.calls[c] if w.topo.entries[d].language == "postgres"])
        onset = plan.onset or plan.fired_at
        rollout = rng.randint(180, 300)
        t_dep = max(clock.start + 10 * MIN, onset - trigger_lead(plan, rng, 20, 60))
        new = release(w, plan, rng, c, t_dep, rollout)
        share = [
            p.share(clock.ts(i) + 30).get(new, 0.0) if clock.ts(i) + 30 >= onset else 0.0
            for i in range(clock.n)
        ]
        lat = [s * rng.uniform(0.5, 1.4) for s in share]
        err = [s * rng.uniform(0.01, 0.03) for s in share]
        p.lat_add, p.err_own = list(lat), list(err)
        q = w.p[db]
        k = rng.uniform(3, 7)
        add(q.traffic, share, k - 1)
        q.res["conn"] = [rng.uniform(0.3, 0.4) + 0.25 * s for s in share]
        w.stream(c, onset, plan.end, 1.5, n_plus_one(p))
        propagate(w, plan, rng, err, lat, "timeout")
        plan.partial.append(
            {
                "entity": db,
                "credit": 0.2,
                "why": f"{db} is busy serving the new per-row queries (a victim)",
            }
        )
        plan.protect.add(db)
        plan.evidence_for(
            "query_metrics",
            {"query": f"sum:trace.postgres.query.hits{{service:{db}}}", **plan.window(3600)},
            "trace.postgres.query.hits",
            "query count per request jumped after the deploy",
        )
        plan.evidence_for(
            "query_metrics",
            {
                "query": f"avg:trace.{p.op}.duration{{service:{c}}} by {{version}}",
                **plan.window(3600),
            },
            new,
            "latency is up on the new version",
        )
        plan.signals |= {"metrics", "events", "traces"}
        plan.technologies += [p.language, "postgresql"]


def _parse_error(p: Profile, child: Profile, style: str, rng: random.Random):  # noqa: ANN202
    _, field_name, limit, got = style.split(":")
    attrs = {"error.kind": "parse", "peer.service": child.name}
    lang = p.language
    what = f"{child.name} {field_name} file"
    if lang == "java":
        msg = f"java.lang.IllegalStateException: {what} has {got} {field_name}, limit is {limit}"
    elif lang == "python":
        msg = f"ValueError: {what}: expected at most {limit} {field_name}, got {got}"
    elif lang == "node":
        msg = f"RangeError: {what} exceeds {limit} {field_name} (got {got})"
    else:
        msg = f"panic: load {what}: too many {field_name}: {got} > {limit}"
    return "error", msg, attrs


messages.STYLE_HOOKS["baddata"] = _parse_error


@register
class BadData(Mechanism):
    """A healthy producer publishes a malformed file/record set; its consumers crash parsing it."""

    name = "bad_data"
    system_level = "data"
    culprit_roles = ("api",)
    min_chain = 2

    excludes_bff = True

    def apply(self, w: World, plan: Plan, rng: random.Random) -> None:
        c = plan.chain[0]
        p, clock = w.p[c], w.clock
        onset = plan.onset or plan.fired_at
        field_name = rng.choice(ARTIFACTS)
        limit = rng.choice((60, 128, 200, 256))
        got = limit * 2 + rng.randint(2, 40)
        lead = min(trigger_lead(plan, rng, 60, 240), int(onset - clock.start - 10 * MIN))
        t_change = onset - lead
        cloudflare, crowdstrike = plan.story == "cloudflare-bot-management-2025", plan.story == "crowdstrike-2024"
        if cloudflare:
            field_name, limit = "features", 200
            got = limit * 2 + rng.randint(2, 40)
        if crowdstrike:
            field_name, limit, got = "fields", 20, 21
        grant = (rng.random() < 0.5 or cloudflare) and not crowdstrike
        if grant:
            author = rng.choice(AUTHORS)
            events.grant(
                w,
                t_change,
                c,
                author,
                "r0",
                f"The {field_name} generator query now also sees the r0 schema.",
            )
            plan.trigger = {
                "kind": "config",
                "entity": c,
                "at": int(t_change),
                "description": f"a database permission change made {c} emit every {field_name[:-1]} twice",
            }
        else:
            release(
                w, plan, rng, c, t_change, rng.randint(60, 180),
                f"Content update: add {field_name[:-1]} template instance with {got} input fields"
                if crowdstrike else None,
            )
        # The producer stays healthy; consumers reload the data every few minutes and fail.
        err = clock.ramp(onset, onset + 120, rng.uniform(0.5, 0.9))
        bad = [1.0 if clock.ts(i) >= t_change + 60 else 0.0 for i in range(clock.n)]
        if cloudflare:
            # the file is rebuilt every five minutes while the change reaches database nodes one
            # by one: good and bad files alternate until every node returns duplicates
            settle = onset + rng.randint(3, 5) * 10 * MIN
            for i in range(clock.n):
                t = clock.ts(i) + 30
                if onset <= t < settle and int((t - onset) // 300) % 2 == 1:
                    err[i], bad[i] = 0.0, 0.0
        propagate(w, plan, rng, err, clock.zeros(), f"baddata:{field_name}:{limit}:{got}")
        # the only sign on the producer: the file it publishes doubled at the change
        w.publishers[c] = (field_name, limit * 1.3)
        p.res["+artifact"] = [(got / limit - 1) * b for b in bad]
        if crowdstrike:
            # the consumers load the content at start-up too: they crash, restart and crash again
            for s in plan.chain[1:2]:
                q = w.p[s]
                restarts = clock.zeros()
                t = onset + rng.randint(20, 60)
                n_back = 0
                while t < clock.end:
                    for j in range(clock.idx(t), clock.n):
                        restarts[j] += 1
                    if n_back < 10 and q.pods:
                        pod = q.pod(rng, t)
                        w.backoff(t + 2, s, pod)
                        n_back += 1
                    t += rng.randint(40, 160)
                q.res["restarts"] = restarts
        plan.aliases += [f"{c}:{field_name}-file", f"deployment/{c}"]
        caller = plan.chain[1]
        plan.evidence_for(
            "search_logs",
            {"query": f"service:{caller} status:error", **plan.window(600)},
            f"{c} {field_name} file",
            f"{caller} fails to load {c}'s {field_name} file ({got} > {limit})",
        )
        plan.evidence_for(
            "query_metrics",
            {"query": f"max:artifact.published.size_kb{{service:{c}}}", **plan.window(3600)},
            "artifact.published.size_kb",
            f"the {field_name} file {c} publishes doubled in size at the change",
        )
        if plan.trigger and plan.trigger["kind"] == "config":
            plan.evidence_for(
                "get_events",
                {"query": f"source:database service:{c}", **plan.window(lead + 900)},
                "SCHEMA r0",
                "the permission change that doubled the generated rows",
            )
        plan.signals |= {"logs", "events", "metrics"}
        plan.technologies += [p.language, w.p[caller].language]


@register
class LockContention(Mechanism):
    """A release holds row locks for seconds (long transaction); writers queue and time out."""

    name = "lock_contention"
    system_level = "data"
    culprit_roles = ("api",)

    def accept(self, topo: Topo, name: str) -> bool:
        return not name.endswith("-bff") and bool(self._dbs(topo, name))

    @staticmethod
    def _dbs(topo: Topo, name: str) -> list[str]:
        return [d for d in topo.calls.get(name, []) if topo.entries[d].language == "postgres"]

    def apply(self, w: World, plan: Plan, rng: random.Random) -> None:
        c = plan.chain[0]
        p, clock = w.p[c], w.clock
        db = rng.choice(self._dbs(w.topo, c))
        onset = plan.onset or plan.fired_at
        t_dep = max(clock.start + 10 * MIN, onset - trigger_lead(plan, rng, 60, 240))
        release(w, plan, rng, c, t_dep, rng.randint(90, 200))
        level = rng.uniform(0.2, 0.45)
        err = clock.ramp(onset, onset + rng.randint(120, 300), level)
        lat = clock.ramp(onset, onset + 180, rng.uniform(2.5, 6.0))
        p.err_own, p.lat_add = list(err), list(lat)
        table = rng.choice(TABLES)
        p.own_error = lock_timeout(p, db, table)
        q = w.p[db]
        locks = clock.ramp(onset - 60, onset + 180, 1.0)
        q.res["+locks"] = [s * rng.uniform(140, 220) for s in locks]
        w.stream(db, onset, plan.end, 2.0, lock_wait(db))
        propagate(w, plan, rng, err, lat, "5xx")
        plan.aliases += [f"{db}:{table}"]
        plan.evidence_for(
            "search_logs",
            {"query": f"service:{c} status:error", **plan.window(600)},
            "lock timeout",
            "statements cancelled by the lock timeout",
        )
        plan.evidence_for(
            "query_metrics",
            {"query": f"max:postgresql.locks{{service:{db}}}", **plan.window(3600)},
            "postgresql.locks",
            "ungranted locks pile up on the database",
        )
        plan.partial.append(
            {"entity": db, "credit": 0.3, "why": "the database where the locks pile up (symptom)"}
        )
        plan.signals |= {"events", "metrics", "logs"}
        plan.technologies += ["postgresql", p.language, q.language]
