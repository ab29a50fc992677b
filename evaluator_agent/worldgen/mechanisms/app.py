"""Mechanisms that start in an application service: a release that throws, leaks memory,
holds database connections, or slows a Kafka consumer down, and a consumer group that cannot
stay stable (a rebalance storm)."""

from __future__ import annotations

import random

from evaluator_agent.worldgen import events
from evaluator_agent.worldgen.catalog import AUTHORS
from evaluator_agent.worldgen.mechanisms.base import (
    Mechanism,
    Plan,
    lag_curve,
    propagate,
    register,
    release,
    trigger_lead,
)
from evaluator_agent.worldgen.mechanisms.signatures import (
    commit_failed,
    crash_after_kill,
    gc_pause_line,
    heartbeat_failed,
    hikari_leak_warning,
    hikari_timeout,
    kafka_poll_timeout,
    kafka_revoke,
    oom_own_error,
    remaining_slots,
    slow_batch_line,
    stack_trace,
    startup_lines,
)
from evaluator_agent.worldgen.telemetry import MIN, World
from evaluator_agent.worldgen.topology import Topo


@register
class OomKilled(Mechanism):
    name = "oom_killed"
    system_level = "platform"
    culprit_roles = ("api", "worker")
    climb_s = (480, 900)  # deploy -> first OOM kill
    period_s = (240, 420)  # between kills of one pod

    def apply(self, w: World, plan: Plan, rng: random.Random) -> None:
        c = plan.chain[0]
        p, clock = w.p[c], w.clock
        onset = plan.onset or plan.fired_at
        climb = max(plan.recipe.time_offset_s, rng.randint(*self.climb_s))
        climb = min(climb, onset - clock.start - 10 * MIN)
        t_dep = onset - climb
        new = release(w, plan, rng, c, t_dep, rng.randint(120, 240))
        pods = p.pods[new]
        period = rng.randint(*self.period_s)
        kills: list[tuple[float, str]] = []
        for j, pod in enumerate(pods):
            t = onset + j * period / len(pods)
            while t < clock.end:
                kills.append((t, pod))
                t += period * rng.uniform(0.85, 1.15)
        kills.sort()
        mem, restarts, killed = clock.zeros(), clock.zeros(), clock.zeros()
        floor = p.mem_base * 0.85
        for i in range(clock.n):
            t = clock.ts(i) + 30
            if t < onset:
                mem[i] = p.mem_base + (1.0 - p.mem_base) * max(0.0, (t - t_dep) / climb) * 0.97
            else:
                since = (t - onset) % period
                mem[i] = floor + (1.0 - floor) * since / period
        for t, _ in kills:
            k = clock.idx(t)
            killed[k] += 1
            for i in range(k, clock.n):
                restarts[i] += 1
        p.res[f"mem@{new}"] = mem
        p.res["restarts"], p.res["oomkilled"] = restarts, killed
        p.res["gc"] = [5 + 900 * max(0.0, m - 0.8) ** 1.5 * 10 for m in mem]
        p.res["heap"] = [min(0.99, m * 0.98) for m in mem]
        err, lat = clock.zeros(), clock.zeros()
        for i in range(clock.n):
            if clock.ts(i) + 30 >= onset:
                err[i] = min(
                    0.6, 0.07 + 0.3 * (killed[i] + (killed[i - 1] if i else 0)) / len(pods)
                )
                lat[i] = p.base_lat * rng.uniform(2, 6)
        p.err_own, p.lat_add = list(err), list(lat)
        p.res["unreachable"] = [e * 0.6 for e in err]
        p.own_error = oom_own_error(p)
        propagate(w, plan, rng, err, lat, "5xx")
        restarts_left = 12
        for t, pod in kills:
            if restarts_left <= 0:
                break
            restarts_left -= 1
            events.oom_kill(w, t, p, pod, rng.choice(p.hosts), rng)
            if rng.random() < 0.5:
                w.backoff(t + rng.uniform(20, 90), c, pod)
            for k, line in enumerate(startup_lines(p, rng, new)):
                w.log(t + 8 + 2 * k, c, "info", line, {"version": new, "pod_name": pod}, rng=rng)
            crash = crash_after_kill(p, rng)
            if crash:
                w.log(
                    t - rng.uniform(0.5, 3),
                    c,
                    crash[0],
                    crash[1],
                    {"version": new, "pod_name": pod, **crash[2]},
                    rng=rng,
                )
        if p.language == "java":
            w.stream(c, onset - climb * 0.4, plan.end, 1.2, gc_pause_line(p), ramp_s=climb * 0.4)
        plan.evidence_for(
            "get_events",
            {"query": f"source:kubernetes service:{c}", **plan.window()},
            "OOMKilling",
            "OOMKilling events on the new pods",
        )
        plan.evidence_for(
            "query_metrics",
            {
                "query": f"max:kubernetes.memory.usage{{service:{c}}} by {{version}}",
                **plan.window(3600),
            },
            new,
            "memory of the new version climbs to the limit",
        )
        plan.signals |= {"events", "metrics"}
        plan.technologies += ["kubernetes", p.language]


@register
class BadRelease(Mechanism):
    name = "bad_release"
    culprit_roles = ("api",)

    excludes_bff = True

    def apply(self, w: World, plan: Plan, rng: random.Random) -> None:
        c = plan.chain[0]
        p, clock = w.p[c], w.clock
        onset = plan.onset or plan.fired_at
        rollout = rng.randint(240, 600)
        t_dep = max(clock.start + 10 * MIN, onset - trigger_lead(plan, rng, 20, 75))
        new = release(w, plan, rng, c, t_dep, rollout)
        res, wgt = rng.choice(p.resources)
        level = rng.uniform(0.35, 0.8)
        p.err_version, p.err_resource = new, res
        err = clock.zeros()
        for i in range(clock.n):
            live = clock.ts(i) + 30 >= onset  # the broken path is hit from the onset on
            err[i] = level * p.share(clock.ts(i) + 30).get(new, 0.0) * wgt if live else 0.0
        p.err_own = [level * (1 if e > 0 else 0) for e in err]
        p.own_error, exc = stack_trace(p, rng, res)
        propagate(w, plan, rng, err, clock.zeros(), "5xx")
        plan.evidence_for(
            "query_metrics",
            {
                "query": f"sum:trace.{p.op}.errors{{service:{c}}} by {{version}}",
                **plan.window(3600),
            },
            new,
            "errors come from the new version only",
        )
        plan.evidence_for(
            "search_logs",
            {"query": f"service:{c} status:error", **plan.window()},
            exc,
            "stack traces of the new code path",
        )
        plan.signals |= {"events", "metrics", "logs"}
        plan.technologies += [p.language]


@register
class ConnectionPoolExhaustion(Mechanism):
    name = "connection_pool_exhaustion"
    system_level = "data"
    culprit_roles = ("api",)

    def accept(self, topo: Topo, name: str) -> bool:
        return topo.entries[name].language == "java" and bool(self._dbs(topo, name))

    @staticmethod
    def _dbs(topo: Topo, name: str) -> list[str]:
        return [d for d in topo.calls.get(name, []) if topo.entries[d].language == "postgres"]

    def apply(self, w: World, plan: Plan, rng: random.Random) -> None:
        c = plan.chain[0]
        p, clock = w.p[c], w.clock
        db = rng.choice(self._dbs(w.topo, c))
        onset = plan.onset or plan.fired_at
        t_dep = max(clock.start + 10 * MIN, onset - trigger_lead(plan, rng, 90, 300))
        release(w, plan, rng, c, t_dep, rng.randint(120, 240))
        level = rng.uniform(0.25, 0.5)
        err = clock.ramp(onset, onset + rng.randint(180, 360), level)
        lat = clock.ramp(onset, onset + 240, rng.uniform(6, 14))
        p.err_own, p.lat_add = list(err), list(lat)
        total, pending = rng.choice((10, 20, 30)), rng.randint(12, 60)
        p.own_error = hikari_timeout(total, pending)
        w.stream(c, t_dep + 60, plan.end, 0.4, hikari_leak_warning(), ramp_s=120)
        q = w.p[db]
        base = rng.uniform(0.3, 0.45)
        conn = clock.ramp(t_dep + 30, onset, 1.0 - base)
        q.res["conn"] = [
            min(
                1.0,
                base
                + x
                + (rng.uniform(-0.01, 0.0) if x >= 1.0 - base - 1e-9 else rng.gauss(0, 0.01)),
            )
            for x in conn
        ]
        add_lat = clock.ramp(onset, onset + 240, q.base_lat * 2)
        q.lat_add = [a + b for a, b in zip(q.lat_add, add_lat, strict=True)]
        w.stream(db, onset, plan.end, 0.8, remaining_slots)
        propagate(w, plan, rng, err, lat, "timeout")
        plan.partial.append(
            {
                "entity": db,
                "credit": 0.3,
                "why": f"{db} ran out of connection slots, held by {c}'s pool (a victim, not the cause)",
            }
        )
        plan.protect.add(db)
        plan.evidence_for(
            "search_logs",
            {"query": f'service:{c} status:error "Connection is not available"', **plan.window()},
            "Connection is not available",
            "HikariCP pool timeouts in the culprit",
        )
        plan.evidence_for(
            "query_metrics",
            {
                "query": f"max:postgresql.percent_usage_connections{{service:{db}}}",
                **plan.window(3600),
            },
            "postgresql.percent_usage_connections",
            "database connections saturated",
        )
        plan.signals |= {"events", "metrics", "logs"}
        plan.technologies += ["java", "hikaricp", "postgresql"]


@register
class ConsumerLag(Mechanism):
    name = "consumer_lag"
    system_level = "application"
    culprit_roles = ("worker",)
    max_chain = 1
    monitor_kind = "lag"

    def schedule(self, plan: Plan, rng: random.Random) -> None:
        plan.hop_delays = []
        plan.symptom_start = plan.fired_at - rng.randint(60, 180)
        plan.onset = plan.symptom_start - max(plan.recipe.time_offset_s, rng.randint(12, 28) * MIN)

    def apply(self, w: World, plan: Plan, rng: random.Random) -> None:
        c = plan.chain[0]
        p, clock = w.p[c], w.clock
        onset = plan.onset or plan.fired_at
        topic = w.topo.consumed_topic(c)
        new = release(w, plan, rng, c, onset - rng.randint(20, 60), rng.randint(60, 150))
        cap = rng.uniform(0.35, 0.6)
        slow = clock.ramp(onset, onset + 90, 1.0)
        p.traffic = [1 - (1 - cap) * s for s in slow]
        p.lat_add = [s * p.base_lat * rng.uniform(6, 12) for s in slow]
        p.err_own = [s * rng.uniform(0.004, 0.012) for s in slow]
        p.own_error = kafka_poll_timeout(c, topic)
        p.res["lag"] = lag_curve(w, p, onset, cap, rng)
        w.stream(c, onset, plan.end, 1.0, slow_batch_line(topic))
        for k, line in enumerate(kafka_revoke(p, c, topic)):
            w.log(onset - 30 + k, c, "info", line, {"version": new}, rng=rng)
        plan.evidence_for(
            "query_metrics",
            {
                "query": f"max:kafka.consumer_lag{{consumer_group:{c}}} by {{topic}}",
                **plan.window(3600),
            },
            "kafka.consumer_lag",
            "lag grows on this consumer group only",
        )
        plan.evidence_for(
            "query_metrics",
            {
                "query": f"avg:trace.kafka.consume.duration{{service:{c}}} by {{version}}",
                **plan.window(3600),
            },
            new,
            "processing time per message up on the new version",
        )
        plan.onset_tolerance_s = 420
        plan.signals |= {"events", "metrics"}
        plan.technologies += ["kafka", p.language]




@register
class MemoryLeak(OomKilled):
    """A slow leak: memory grows for hours after an older deploy, then the pods start dying."""

    name = "memory_leak"
    system_level = "application"
    climb_s = (95 * MIN, 150 * MIN)
    period_s = (900, 1500)

    def apply(self, w: World, plan: Plan, rng: random.Random) -> None:
        super().apply(w, plan, rng)
        plan.onset_tolerance_s = 600




@register
class FeatureFlag(Mechanism):
    name = "feature_flag"
    culprit_roles = ("api",)

    excludes_bff = True

    def apply(self, w: World, plan: Plan, rng: random.Random) -> None:
        c = plan.chain[0]
        p, clock = w.p[c], w.clock
        onset = plan.onset or plan.fired_at
        flag = events.flag_name(c, rng)
        author = rng.choice(AUTHORS)
        t1 = onset - rng.randint(20, 60)
        t2 = onset + rng.randint(150, 300)
        first = rng.choice((10, 20, 25))
        if plan.story == "knight-capital-2012":
            self._knight(w, plan, rng, c, flag, author, t1)
            return
        events.feature_flag(w, t1, c, flag, first, 0, author)
        if t2 < plan.fired_at - 60:
            events.feature_flag(w, t2, c, flag, 100, first, author)
        else:
            t2 = clock.end + 3600
        res, wgt = rng.choice(p.resources)
        level = rng.uniform(0.45, 0.85)
        frac = [
            0.0 if clock.ts(i) + 30 < t1 else (first / 100 if clock.ts(i) + 30 < t2 else 1.0)
            for i in range(clock.n)
        ]
        p.err_resource = res
        p.err_own = [level * f for f in frac]
        make, exc = stack_trace(p, rng, res)
        # structured error logs carry the flag evaluation context of the request
        p.own_error = lambda r, ts: (
            lambda s, m, a: (
                s,
                f"{m}\n[feature flag {flag} enabled for this request]",
                {**a, "feature_flag": flag},
            )
        )(*make(r, ts))
        propagate(w, plan, rng, [level * f * wgt for f in frac], clock.zeros(), "5xx")
        plan.trigger = {
            "kind": "flag",
            "entity": flag,
            "at": int(t1),
            "description": f"Feature flag {flag} turned on for {first}% of users, exposing a broken code path",
        }
        plan.aliases += [flag]
        plan.evidence_for(
            "get_events",
            {"query": f"source:feature_flag service:{c}", **plan.window()},
            flag,
            "the flag change right before the errors",
        )
        plan.evidence_for(
            "search_logs",
            {"query": f"service:{c} status:error", **plan.window()},
            exc,
            "exceptions on the flagged path",
        )
        plan.evidence_for(
            "query_metrics",
            {
                "query": f"sum:trace.{p.op}.errors{{service:{c}}} by {{resource_name}}",
                **plan.window(3600),
            },
            res,
            "errors on one endpoint only",
        )
        plan.signals |= {"events", "logs", "metrics"}
        plan.technologies += [p.language, "launchdarkly"]

    def _knight(
        self, w: World, plan: Plan, rng: random.Random, c: str, flag: str, author: str, t1: float
    ) -> None:
        """A deploy that missed one instance, then a reused flag that wakes the old code there."""
        p, clock = w.p[c], w.clock
        old = p.version
        t_dep = t1 - rng.randint(25, 70) * MIN
        new = release(w, plan, rng, c, t_dep, rng.randint(120, 300))
        # the release is the story's first step, the flag its trigger
        w.p[c].deploys[-1].final = 1.0 - 1.0 / max(2, len(p.pods.get(old, [])) or 2)
        flag = f"{c.removesuffix('-api')}.legacy-router"
        events.feature_flag(w, t1, c, flag, 100, 0, author)
        res, wgt = rng.choice(p.resources)
        p.err_version = old
        share_old = [p.share(clock.ts(i) + 30).get(old, 0.0) for i in range(clock.n)]
        level = rng.uniform(0.8, 0.98)
        on = [1.0 if clock.ts(i) + 30 >= t1 else 0.0 for i in range(clock.n)]
        p.err_own = [level * f for f in on]
        make, exc = stack_trace(p, rng, res)
        p.own_error = make
        propagate(w, plan, rng, [level * f * s for f, s in zip(on, share_old, strict=True)], clock.zeros(), "5xx")
        plan.trigger = {
            "kind": "flag",
            "entity": flag,
            "at": int(t1),
            "description": f"Flag {flag} reused and switched on; the one instance still on {old} "
            f"(missed by the {new} deploy) runs the retired code path",
        }
        plan.aliases += [flag, f"{c}@{old}"]
        plan.evidence_for(
            "get_events",
            {"query": f"source:feature_flag service:{c}", **plan.window()},
            flag,
            "the reused flag switched on",
        )
        plan.evidence_for(
            "query_metrics",
            {"query": f"sum:trace.{p.op}.errors{{service:{c}}} by {{version}}", **plan.window(3600)},
            old,
            "errors only from the instance left on the old version",
        )
        plan.signals |= {"events", "logs", "metrics"}
        plan.technologies += [p.language, "launchdarkly"]


@register
class RebalanceStorm(Mechanism):
    """A consumer group that cannot stay stable: a session timeout set below the poll loop's
    pauses makes members drop out and rejoin; every rebalance stops consumption and lag grows."""

    name = "rebalance_storm"
    system_level = "application"
    culprit_roles = ("worker",)
    max_chain = 1
    monitor_kind = "lag"

    def schedule(self, plan: Plan, rng: random.Random) -> None:
        plan.hop_delays = []
        plan.symptom_start = plan.fired_at - rng.randint(60, 180)
        plan.onset = plan.symptom_start - max(plan.recipe.time_offset_s, rng.randint(12, 25) * MIN)

    def apply(self, w: World, plan: Plan, rng: random.Random) -> None:
        c = plan.chain[0]
        p, clock = w.p[c], w.clock
        onset = plan.onset or plan.fired_at
        topic = w.topo.consumed_topic(c)
        t_cfg = onset - rng.randint(40, 120)
        author = rng.choice(AUTHORS)
        old_to, new_to = rng.choice(((45000, 6000), (30000, 3000), (45000, 8000)))
        events.configmap(
            w, t_cfg, c, f"kafka.consumer.session.timeout.ms: {old_to} -> {new_to}", author, rng
        )
        cap = rng.uniform(0.15, 0.4)
        stall = clock.ramp(onset, onset + 120, 1.0)
        p.traffic = [1 - (1 - cap) * s for s in stall]
        p.err_own = [s * rng.uniform(0.01, 0.03) for s in stall]
        p.own_error = commit_failed(c, topic, onset)
        p.res["lag"] = lag_curve(w, p, onset, cap, rng)
        w.stream(c, onset, plan.end, 3.0, heartbeat_failed(c, topic))
        t = onset
        k = 0
        while t < plan.end and k < 40:
            for j, line in enumerate(kafka_revoke(p, c, topic)):
                w.log(t + j, c, "info", line, {}, rng=rng)
            t += rng.randint(25, 70)
            k += 1
        plan.trigger = {
            "kind": "config",
            "entity": f"{c}-config",
            "at": int(t_cfg),
            "description": f"session.timeout.ms of consumer group {c} lowered {old_to} -> {new_to}",
        }
        plan.aliases += [f"{c}-config", f"deployment/{c}", f"consumer_group:{c}"]
        plan.evidence_for(
            "search_logs",
            {"query": f"service:{c} rebalancing", **plan.window(600)},
            "rebalancing",
            "members keep leaving and rejoining the group",
        )
        plan.evidence_for(
            "query_metrics",
            {
                "query": f"max:kafka.consumer_lag{{consumer_group:{c}}} by {{topic}}",
                **plan.window(3600),
            },
            "kafka.consumer_lag",
            "lag grows on this group",
        )
        plan.onset_tolerance_s = 420
        plan.signals |= {"events", "metrics", "logs"}
        plan.technologies += ["kafka", p.language]
