"""The control case: a page with nothing broken behind it (a benign, explained traffic spike or
a planned chaos experiment), and the fault an experiment injects."""

from __future__ import annotations

import random

from evaluator_agent.worldgen import events, messages
from evaluator_agent.worldgen.catalog import AUTHORS, db_table
from evaluator_agent.worldgen.mechanisms.base import Mechanism, Plan, monitor_delay, register
from evaluator_agent.worldgen.mechanisms.infra_signatures import (
    crawler_line,
    rate_limited,
    slow_query_line,
)
from evaluator_agent.worldgen.telemetry import MIN, LogMaker, Profile, World, add
from evaluator_agent.worldgen.topology import Topo


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
            table = db_table(d)
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
