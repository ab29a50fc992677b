"""Mechanisms that start below the application: an expired certificate, a cache that lost its
keys, and the control case where nothing is broken (a benign, explained traffic spike)."""

from __future__ import annotations

import random

from evaluator_agent.worldgen import events, messages
from evaluator_agent.worldgen.catalog import AUTHORS
from evaluator_agent.worldgen.mechanisms.base import (
    Mechanism,
    Plan,
    monitor_delay,
    propagate,
    register,
)
from evaluator_agent.worldgen.mechanisms.infra_signatures import (
    X509_EXPECT,
    crawler_line,
    rate_limited,
    redis_restart_lines,
    slow_query_line,
    tls_server_error,
    x509_error,
)
from evaluator_agent.worldgen.mechanisms.signatures import no_healthy_upstream, startup_failure
from evaluator_agent.worldgen.telemetry import MIN, LogMaker, Profile, World, add, iso, shift
from evaluator_agent.worldgen.topology import CHAIN_ROLES, Topo

messages.STYLE_HOOKS["tls"] = lambda p, child, style, rng: x509_error(
    p, child, float(style.split(":", 1)[1]), rng
)
X509_QUERY = {
    "go": "x509",
    "envoy": "x509",
    "java": "validity check failed",
    "python": "certificate has expired",
    "node": "CERT_HAS_EXPIRED",
}


@register
class CertificateExpiry(Mechanism):
    name = "certificate_expiry"
    system_level = "network"
    culprit_roles = ("api", "external")
    min_chain = 2

    def accept(self, topo: Topo, name: str) -> bool:
        return not name.endswith("-bff") and any(
            topo.role(c) in CHAIN_ROLES for c in topo.callers.get(name, [])
        )

    def schedule(self, plan: Plan, rng: random.Random) -> None:
        plan.hop_delays = [0] + [rng.randint(*self.hop_range) for _ in plan.chain[2:]]
        plan.symptom_start = plan.fired_at - monitor_delay(rng)
        plan.onset = plan.symptom_start - sum(plan.hop_delays)
        plan.onset_tolerance_s = 120

    def apply(self, w: World, plan: Plan, rng: random.Random) -> None:
        c, caller = plan.chain[0], plan.chain[1]
        p, clock = w.p[c], w.clock
        onset = plan.onset or plan.fired_at
        step = clock.ramp(onset - 30, onset - 29, 1.0)
        host = messages.dns(p)
        if p.role == "external":
            p.err_own = list(step)
            plan.trigger = {
                "kind": "external",
                "entity": c,
                "at": onset,
                "description": f"The TLS certificate served by {host} expired at {iso(onset)}",
            }
        else:
            p.traffic = [1 - 0.97 * s for s in step]
            p.res["unreachable"] = list(step)
            w.stream(c, onset, plan.end, 3.0, tls_server_error(p))
            plan.trigger = {
                "kind": "none",
                "entity": c,
                "at": onset,
                "description": f"Certificate {c}-tls (CN={host}) expired at {iso(onset)}; its renewal had failed",
            }
            lead = max(plan.recipe.time_offset_s, rng.randint(40, 150) * MIN)
            if onset - lead > clock.start:
                events.certificate(w, onset - lead, c, False, rng)
                plan.evidence_for(
                    "get_events",
                    {"query": f"{c}-tls", **plan.window(lead + 900)},
                    "Failed",
                    "cert-manager could not renew the certificate",
                )
        plan.aliases += [f"{c}-tls", host]
        err = list(step)
        propagate(w, plan, rng, err, clock.zeros(), f"tls:{onset}")
        q = w.p[caller]
        lang = "envoy" if q.role == "gateway" else q.language
        phrase = X509_QUERY.get(lang, "x509")
        plan.evidence_for(
            "search_logs",
            {"query": f'service:{caller} status:error "{phrase}"', **plan.window(900)},
            X509_EXPECT.get(lang, "certificate"),
            f"{caller} rejects the expired certificate of {c}",
        )
        plan.signals |= {"logs"}
        plan.technologies += ["tls", q.language]


@register
class CacheStampede(Mechanism):
    name = "cache_stampede"
    system_level = "data"
    culprit_roles = ("redis",)
    min_chain = 2

    @staticmethod
    def _dbs(topo: Topo, svc: str) -> list[str]:
        return [
            d for d in topo.calls.get(svc, []) if topo.entries[d].language in ("postgres", "mysql")
        ]

    def accept(self, topo: Topo, name: str) -> bool:
        return any(self._dbs(topo, c) for c in topo.callers.get(name, []))

    def chains(self, topo: Topo, length: int) -> list[list[str]]:
        return [ch for ch in super().chains(topo, length) if len(ch) > 1 and self._dbs(topo, ch[1])]

    def apply(self, w: World, plan: Plan, rng: random.Random) -> None:
        c, x = plan.chain[0], plan.chain[1]
        r, clock = w.p[c], w.clock
        db = rng.choice(self._dbs(w.topo, x))
        q = w.p[db]
        onset = plan.onset or plan.fired_at
        base_hit = rng.uniform(0.92, 0.96)
        recover = rng.randint(35, 60) * MIN
        pod = f"{c}-0"
        if rng.random() < 0.6:
            host = r.hosts[0] if r.hosts else "node"
            other = rng.choice(
                [h["name"] for h in w.topo.hosts if h["cluster"] == r.cluster and h["name"] != host]
                or [host]
            )
            events.node_upgrade(w, onset - 45, host, r.cluster)
            w.k8s_event(
                onset - 20,
                c,
                "Killing",
                "Stopping container redis",
                pod,
                extra={"kube_stateful_set": c},
            )
            w.k8s_event(
                onset + 12,
                c,
                "Scheduled",
                f"Successfully assigned {r.namespace}/{pod} to {other}",
                pod,
            )
            w.k8s_event(onset + 31, c, "Started", "Started container redis", pod)
            before, after = redis_restart_lines(rng)
            for k, (st, line) in enumerate(before):
                w.log(onset - 19 + k, c, st, line, {"pod_name": pod}, rng=rng)
            for k, (st, line) in enumerate(after):
                w.log(onset + 33 + k, c, st, line, {"pod_name": pod}, rng=rng)
            hit = [
                base_hit
                if clock.ts(i) + 30 < onset
                else 0.02 + (base_hit - 0.02) * min(1.0, (clock.ts(i) + 30 - onset) / recover) ** 2
                for i in range(clock.n)
            ]
            r.res["mem"] = [
                r.mem_base
                if clock.ts(i) + 30 < onset
                else r.mem_base * min(1.0, 0.01 + (clock.ts(i) + 30 - onset) / recover)
                for i in range(clock.n)
            ]
            r.res["clients"] = [
                1.0
                if clock.ts(i) + 30 < onset
                else (0.0 if clock.ts(i) + 30 < onset + 60 else 1.35)
                for i in range(clock.n)
            ]
            blip = clock.ramp(onset - 20, onset - 19, 1.0, until=onset + 40)
            r.err_own, r.res["unreachable"] = list(blip), list(blip)
            plan.trigger = {
                "kind": "infrastructure",
                "entity": c,
                "at": onset - 20,
                "description": f"{pod} restarted during a node upgrade of {host} and came back empty",
            }
            plan.evidence_for(
                "get_events",
                {"query": f"source:kubernetes service:{c}", **plan.window()},
                "Killing",
                f"{pod} was stopped and rescheduled",
            )
            plan.evidence_for(
                "search_logs",
                {"query": f"service:{c}", **plan.window()},
                "Ready to accept connections",
                "redis restarted with an empty dataset",
            )
        else:
            old, new = rng.choice((("8gb", "2gb"), ("4gb", "1gb"), ("6gb", "1536mb")))
            events.configmap(
                w,
                onset - rng.randint(20, 60),
                c,
                f"maxmemory: {old} -> {new}\nmaxmemory-policy: allkeys-lru",
                rng=rng,
                restart=False,
                how=f"terraform apply, run-{rng.getrandbits(40):010x}",
            )
            low = rng.uniform(0.3, 0.5)
            hit = [base_hit if clock.ts(i) + 30 < onset else low for i in range(clock.n)]
            r.res["evicted"] = [
                0.0
                if clock.ts(i) + 30 < onset
                else (
                    rng.uniform(3000, 9000) if clock.ts(i) < onset + 120 else rng.uniform(200, 900)
                )
                for i in range(clock.n)
            ]
            r.res["mem"] = [
                r.mem_base if clock.ts(i) + 30 < onset else 0.25 for i in range(clock.n)
            ]
            plan.trigger = {
                "kind": "config",
                "entity": c,
                "at": onset,
                "description": f"{c} maxmemory lowered from {old} to {new}; hot keys evicted",
            }
            plan.evidence_for(
                "get_events",
                {"query": f"service:{c}", **plan.window()},
                "maxmemory",
                "maxmemory lowered just before the onset",
            )
            plan.evidence_for(
                "query_metrics",
                {"query": f"sum:redis.keys.evicted{{service:{c}}}", **plan.window(3600)},
                "redis.keys.evicted",
                "evictions spike at the onset",
            )
        r.res["hit"] = hit
        miss = [(1 - h) / (1 - base_hit) for h in hit]
        load = shift([min(6.0, 1 + (m - 1) * 0.3) for m in miss], 1)
        load = [v if v > 0 else 1.0 for v in load]
        q.traffic = load
        q.lat_add = [(v - 1) * q.base_lat * rng.uniform(8, 20) for v in load]
        q.res["conn"] = [min(0.97, rng.uniform(0.25, 0.35) + 0.13 * (v - 1)) for v in load]
        for h in q.hosts[:1]:
            w.host_res.setdefault(h, {})["cpu"] = [
                min(97.0, rng.uniform(20, 30) + 16 * (v - 1)) for v in load
            ]
        w.stream(
            db,
            onset + 60,
            onset + recover,
            2.5,
            slow_query_line(db.removesuffix("-db").replace("-", "_")),
        )
        err = [min(0.35, 0.04 * (v - 1)) for v in load]
        lat = [(v - 1) * rng.uniform(0.15, 0.35) for v in load]
        propagate(w, plan, rng, err, lat, "refused")
        if (
            plan.trigger["kind"] == "config"
        ):  # evictions do not break connections: callers only see the database
            w.p[x].upstream = [u for u in w.p[x].upstream if u[1] != c]
        w.p[x].upstream.append((clock.idx(onset) + 1, db, "timeout"))
        plan.aliases += [pod, f"statefulset/{c}"]
        plan.partial.append(
            {
                "entity": db,
                "credit": 0.3,
                "why": f"{db} was overloaded by the cache misses (a victim that looks like the cause)",
            }
        )
        plan.protect.add(db)
        plan.signals |= {"metrics", "events", "logs"}
        plan.technologies += ["redis", q.language, "kubernetes"]


def fault_abort(p: Profile, experiment: str) -> LogMaker:
    """An injected 503, as Envoy's fault filter answers it."""

    def make(rng: random.Random, ts: float) -> tuple[str, str, dict]:
        method, path = messages.path_of(p, rng)
        return (
            "error",
            f'"{method} {path} HTTP/1.1" 503 FI fault filter abort',
            {"http.status_code": 503, "chaos.experiment": experiment},
        )

    return make


@register
class NoFault(Mechanism):
    """A page with nothing broken behind it: the symptom is real, its cause is benign.

    A marketing campaign or a load test that the service absorbs but slower; a crawler
    walking deep pages past the cache; a batch job that makes a database busy for a while; a
    planned chaos experiment injecting errors or latency. The page is on errors, latency or
    CPU like any other; only the cause, found in events and in who is sending the traffic,
    says nothing needs fixing.
    """

    name = "no_fault"
    culprit_roles = ("api", "gateway", "worker")
    max_chain = 1
    monitor_kind = "latency"
    CAUSES = ("campaign", "load_test", "crawler", "batch", "chaos")

    def accept(self, topo: Topo, name: str) -> bool:
        if topo.role(name) == "worker":  # a consumer a backfill floods
            return topo.role(topo.consumed_topic(name)) == "topic"
        # A customer-facing service: a campaign lands on it. Ingest and partner APIs do not see shoppers.
        edge = {"api-gateway", "web-bff", "mobile-bff"}
        shopper = name in edge or bool(set(topo.callers.get(name, [])) & edge)
        return shopper and name not in ("partner-api", "clickstream-ingest", "analytics-ingest")

    def chains(self, topo: Topo, length: int) -> list[list[str]]:
        return [[n] for n in self.candidates(topo)]

    def schedule(self, plan: Plan, rng: random.Random) -> None:
        plan.hop_delays = []
        plan.symptom_start = plan.fired_at - monitor_delay(rng)
        plan.onset = None

    def apply(self, w: World, plan: Plan, rng: random.Random) -> None:
        s = plan.chain[0]
        plan.monitor_service, plan.chain = s, []
        p, clock = w.p[s], w.clock
        t_c = plan.symptom_start - rng.randint(60, 240)
        dbs = sorted(
            d for d in w.topo.descendants(s) if w.p[d].role == "db" and w.p[d].language != "elasticsearch"
        )
        causes = [c for c in self.CAUSES if c != "batch" or dbs]
        cause = "backfill" if p.role == "worker" else rng.choice(causes)
        author = rng.choice(AUTHORS)
        ramp = clock.ramp(t_c, t_c + 300, 1.0)
        why = ""
        if cause == "campaign":
            name = rng.choice(events.CAMPAIGNS)
            events.campaign(w, t_c, name, s, rng.uniform(1.2, 3.5))
            mult = rng.uniform(1.8, 2.6)
            for k, n in enumerate([s, *sorted(w.topo.ancestors(s))]):
                add(w.p[n].traffic, ramp, (mult - 1) * (1.0 if k == 0 else rng.uniform(0.5, 0.9)))
            for d in sorted(x for x in w.topo.descendants(s) if w.p[x].role in ("api", "db", "redis")):
                add(w.p[d].traffic, ramp, (mult - 1) * 0.5)
            add(p.lat_add, ramp, p.base_lat * rng.uniform(0.6, 1.2))
            add(p.res.setdefault("+cpu", clock.zeros()), ramp, rng.uniform(0.45, 0.6))
            plan.evidence_for(
                "get_events", {"query": "source:marketing", **plan.window(1800, at=t_c)}, name,
                "the campaign that explains the traffic",
            )
            why = f'Marketing campaign "{name}" drove expected extra traffic to {s}'
        elif cause == "load_test":
            minutes = rng.randint(20, 45)
            events.load_test(w, t_c, s, rng.choice((200, 400, 800)), minutes, author)
            window = clock.ramp(t_c, t_c + 120, 1.0, until=t_c + minutes * MIN, decay_s=60)
            add(p.traffic, window, rng.uniform(1.2, 2.5))
            add(p.lat_add, window, p.base_lat * rng.uniform(0.7, 1.5))
            add(p.res.setdefault("+cpu", clock.zeros()), window, rng.uniform(0.45, 0.6))
            w.stream(s, t_c + 60, t_c + minutes * MIN, 2.0, rate_limited(p))
            plan.evidence_for(
                "search_logs", {"query": f"service:{s} loadtest-k6", **plan.window(1800, at=t_c)},
                "loadtest-k6", "the traffic comes from the perf team's load generator",
            )
            why = f"a scheduled k6 load test against {s}"
        elif cause == "crawler":
            add(p.traffic, ramp, rng.uniform(0.4, 0.9))
            add(p.lat_add, ramp, p.base_lat * rng.uniform(0.9, 2.0))
            w.stream(s, t_c, plan.end, 3.0, crawler_line(p))
            plan.evidence_for(
                "search_logs", {"query": f"service:{s} Bytespider", **plan.window(1800, at=t_c)},
                "Bytespider", "a crawler walking deep listing pages",
            )
            why = f"a search-engine crawler walking deep pages of {s} past the cache"
        elif cause == "backfill":
            topic = w.topo.consumed_topic(s)
            job = f"{topic}-backfill"
            n_events = rng.randint(2, 20) * 100_000
            events.backfill(w, t_c, topic, job, n_events, author)
            burst = rng.uniform(2.5, 5.0)
            for c in [x for x in w.topo.callers.get(topic, []) if w.p[x].role == "worker"]:
                add(w.p[c].res.setdefault("+lag", clock.zeros()), [
                    max(0.0, (clock.ts(i) + 30 - t_c) / MIN) * w.p[c].rps * MIN * (burst - 1) * 0.4
                    if clock.ts(i) + 30 >= t_c else 0.0
                    for i in range(clock.n)
                ])
            add(p.traffic, ramp, rng.uniform(0.3, 0.6))  # consuming flat out
            add(p.res.setdefault("+cpu", clock.zeros()), ramp, rng.uniform(0.3, 0.5))
            plan.evidence_for(
                "get_events", {"query": "source:cron", **plan.window(1800, at=t_c)}, job,
                "the backfill replaying history into the topic",
            )
            why = f"a backfill ({job}) flooded {topic}; {s} consumes at full speed and catches up"
        elif cause == "batch":
            d = rng.choice(dbs)
            q = w.p[d]
            jobs = [c for c in w.topo.callers.get(d, []) if w.p[c].role == "cron"]
            job = jobs[0] if jobs else f"{d.removesuffix('-db')}-export"
            ns = next((w.p[x].namespace for x in w.topo.callers.get(d, []) if w.p[x].namespace), "default")
            w.event(
                t_c,
                "cron",
                f"Job {job} started",
                f"CronJob {ns}/{job} started job {job}-{int(t_c) // 60} (monthly full export)",
                {"service": job if job in w.p else d, "kube_namespace": ns},
            )
            for h in q.hosts[:1]:
                w.host_res.setdefault(h, {})["+cpu"] = [x * rng.uniform(45, 60) for x in ramp]
            add(q.lat_add, ramp, q.base_lat * rng.uniform(5, 12))
            add(p.lat_add, ramp, p.base_lat * rng.uniform(0.8, 1.6))
            table = d.removesuffix("-db").replace("-", "_")
            w.stream(d, t_c + 30, plan.end, 1.5, slow_query_line(table))
            plan.herrings.append({"entity": d, "why": "busy with a monthly export job; nothing failed"})
            plan.evidence_for(
                "get_events", {"query": "source:cron", **plan.window(1800, at=t_c)}, "monthly full export",
                "the export job that made the database busy",
            )
            why = f"a monthly export job ({job}) made {d} busy; {s} got slower"
        else:
            name = f"{s}-gameday-{rng.randint(10, 99)}"
            minutes = rng.randint(25, 45)
            window = clock.ramp(t_c, t_c + 60, 1.0, until=t_c + minutes * MIN, decay_s=60)
            if rng.random() < 0.5:
                pct = rng.choice((5, 8, 10, 15))
                events.chaos(w, t_c, s, name, f"{pct}% HTTP 503 aborts", minutes, author)
                add(p.err_own, window, pct / 100)
                p.own_error = fault_abort(p, name)
            else:
                ms = rng.choice((300, 500, 800))
                events.chaos(w, t_c, s, name, f"{ms}ms of latency", minutes, author)
                add(p.lat_add, window, ms / 1000)
            plan.evidence_for(
                "get_events", {"query": "source:chaos", **plan.window(1800, at=t_c)}, name,
                "the planned chaos experiment",
            )
            why = f"a planned chaos experiment ({name}) on {s}"
        plan.trigger = {
            "kind": "none",
            "entity": None,
            "at": t_c,
            "description": f"{why}; nothing failed",
        }
        plan.herrings.append({"entity": s, "why": f"paged by {cause.replace('_', ' ')}, nothing broken"})
        plan.signals |= {"events", "metrics", "logs"}
        plan.technologies += [p.language]


@register
class CrashloopBadConfig(Mechanism):
    name = "crashloop_bad_config"
    system_level = "platform"
    culprit_roles = ("api",)

    excludes_bff = True

    def apply(self, w: World, plan: Plan, rng: random.Random) -> None:
        c = plan.chain[0]
        p, clock = w.p[c], w.clock
        onset = plan.onset or plan.fired_at
        key, old, bad, make = startup_failure(p)
        t_cfg = onset - rng.randint(30, 90)
        events.configmap(w, t_cfg, c, f'{key}: "{old}" -> "{bad}"', rng=rng)
        pods = list(p.pods.get(p.version, []))
        n = len(pods)
        keep = max(1, round(n * rng.uniform(0.35, 0.6)))
        capacity = [1.0] * clock.n
        restarts = clock.zeros()
        count = 0
        for j, pod in enumerate(pods[: n - keep]):
            t = onset + j * 25
            w.k8s_event(t - 5, c, "Killing", f"Stopping container {c}", pod)
            backoff = 10
            while t < clock.end:
                status, msg, attrs = make(rng, t)
                w.log(t + 2, c, status, msg, {**attrs, "pod_name": pod}, rng=rng)
                count += 1
                for i in range(clock.idx(t), clock.n):
                    restarts[i] += 1
                if count <= 10:
                    w.k8s_event(
                        t + 3,
                        c,
                        "BackOff",
                        f"Back-off restarting failed container {c} in pod {pod}_{p.namespace}",
                        pod,
                    )
                t += backoff + 5
                backoff = min(300, backoff * 2)
        for i in range(clock.n):
            down = sum(1 for j in range(n - keep) if clock.ts(i) + 30 >= onset + j * 25)
            capacity[i] = (n - down) / n
        p.res["replicas"] = [n * x for x in capacity]
        p.res["restarts"] = restarts
        err = [min(0.9, (1 - x) * rng.uniform(0.6, 0.9)) for x in capacity]
        lat = [(1 - x) * p.base_lat * 4 for x in capacity]
        p.err_own, p.lat_add = list(err), list(lat)
        p.own_error = no_healthy_upstream
        propagate(w, plan, rng, err, lat, "5xx")
        plan.trigger = {
            "kind": "config",
            "entity": f"{c}-config",
            "at": int(t_cfg),
            "description": f"{key} set to an invalid value in {c}-config; restarted pods crash on boot",
        }
        plan.aliases += [f"{c}-config", f"deployment/{c}", key]
        plan.evidence_for(
            "get_events",
            {"query": f"source:config service:{c}", **plan.window()},
            key,
            "the ConfigMap change",
        )
        plan.evidence_for(
            "get_events",
            {"query": f"source:kubernetes service:{c}", **plan.window()},
            "BackOff",
            "pods crash-looping",
        )
        plan.evidence_for(
            "search_logs",
            {"query": f"service:{c} status:error", **plan.window()},
            key,
            "startup fails on the bad value",
        )
        plan.signals |= {"events", "logs", "metrics"}
        plan.technologies += ["kubernetes", p.language]
