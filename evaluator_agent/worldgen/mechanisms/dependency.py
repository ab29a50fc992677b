"""Mechanisms that come from a dependency: a partner API failing, and a retry storm that
multiplies the load on the first service to slow down."""

from __future__ import annotations

import random

from evaluator_agent.worldgen import events, messages
from evaluator_agent.worldgen.catalog import vendor_of
from evaluator_agent.worldgen.mechanisms.base import (
    Mechanism,
    Plan,
    propagate,
    register,
    release,
    trigger_lead,
)
from evaluator_agent.worldgen.mechanisms.infra_signatures import partner_error, retry_warning
from evaluator_agent.worldgen.mechanisms.signatures import overload_error
from evaluator_agent.worldgen.telemetry import MIN, World
from evaluator_agent.worldgen.topology import CHAIN_ROLES, Topo

messages.STYLE_HOOKS["partner"] = lambda p, child, style, rng: partner_error(
    p, child, int(style.split(":")[1]), rng
)


@register
class ThirdPartyOutage(Mechanism):
    name = "third_party_outage"
    system_level = "external"
    culprit_roles = ("external",)
    min_chain = 2

    def accept(self, topo: Topo, name: str) -> bool:
        return any(topo.role(c) in CHAIN_ROLES for c in topo.callers.get(name, []))

    def apply(self, w: World, plan: Plan, rng: random.Random) -> None:
        c, caller = plan.chain[0], plan.chain[1]
        p, clock = w.p[c], w.clock
        onset = plan.onset or plan.fired_at
        code = rng.choice((429, 503))
        level = rng.uniform(0.4, 0.9)
        err = clock.ramp(onset, onset + 90, level)
        lat = clock.ramp(onset, onset + 90, p.base_lat * rng.uniform(3, 10))
        p.err_own, p.lat_add = list(err), list(lat)
        propagate(w, plan, rng, err, lat, f"partner:{code}")
        host = messages.dns(p)
        w.stream(caller, onset + 30, plan.end, 1.5, retry_warning(c, host))
        vendor = vendor_of(c)
        t_status = onset + rng.randint(8, 20) * MIN
        if rng.random() < 0.5 and t_status < clock.end:
            events.statuspage(
                w,
                t_status,
                c,
                vendor,
                "Elevated error rates",
                f"Investigating - We are seeing elevated {code} responses on some API requests. "
                "Next update in 30 minutes.",
            )
        plan.trigger = {
            "kind": "external",
            "entity": c,
            "at": onset,
            "description": f"{vendor} ({host}) started answering {code} to a large share of requests",
        }
        plan.aliases += [host, vendor]
        plan.evidence_for(
            "search_logs",
            {"query": f'service:{caller} status:error "{host}"', **plan.window(600)},
            f"{host}",
            f"{caller} gets {code}s from {host}",
        )
        plan.evidence_for(
            "query_metrics",
            {"query": f"sum:trace.http.request.errors{{service:{c}}}", **plan.window(3600)},
            "trace.http.request.errors",
            "errors on the partner's requests",
        )
        plan.signals |= {"logs", "metrics"}
        plan.technologies += ["https", w.p[caller].language]


@register
class RetryStorm(Mechanism):
    name = "retry_storm"
    system_level = "application"
    culprit_roles = ("api",)
    min_chain = 2

    excludes_bff = True

    def apply(self, w: World, plan: Plan, rng: random.Random) -> None:
        c = plan.chain[0]
        p, clock = w.p[c], w.clock
        onset = plan.onset or plan.fired_at
        t_dep = max(clock.start + 10 * MIN, onset - trigger_lead(plan, rng, 30, 90))
        release(w, plan, rng, c, t_dep, rng.randint(90, 180))
        slow = clock.ramp(onset, onset + 120, 1.0)
        amp = rng.uniform(2.5, 4.0)
        p.lat_add = [s * rng.uniform(0.8, 2.5) for s in slow]
        p.traffic = [1 + s * (amp - 1) for s in slow]
        p.err_own = [s * rng.uniform(0.12, 0.3) for s in slow]
        p.own_error = overload_error(p)
        for k, svc in enumerate(plan.chain[1:-1], start=1):
            q = w.p[svc]
            q.traffic = [1 + s * (amp - 1) / (2 * k) for s in slow]
        err = [s * rng.uniform(0.3, 0.55) for s in slow]
        lat = [s * rng.uniform(1.0, 3.0) for s in slow]
        propagate(w, plan, rng, err, lat, "timeout")
        caller = plan.chain[1]
        w.stream(caller, onset + 30, plan.end, 2.5, retry_warning(c, messages.dns(p)))
        plan.evidence_for(
            "query_metrics",
            {"query": f"sum:trace.{p.op}.hits{{service:{c}}}", **plan.window(3600)},
            f"trace.{p.op}.hits",
            "requests to the origin multiplied while user traffic stayed flat",
        )
        plan.evidence_for(
            "search_logs",
            {"query": f'service:{caller} "Retrying request"', **plan.window(600)},
            "attempt",
            f"{caller} retries every timeout without backoff",
        )
        plan.signals |= {"metrics", "logs", "events"}
        plan.technologies += [p.language]
