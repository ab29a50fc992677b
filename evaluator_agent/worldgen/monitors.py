"""Monitors: the one that paged, and the ordinary ones around it.

The paging monitor watches the *symptom* (the last entity of the causal chain, or the busy
service of a no-fault page). Its threshold is set from the rendered data so that it crosses
exactly at ``fired_at`` (Warn first when the series passed the warning level earlier).
Every other monitor is evaluated honestly against the rendered series with conventional
thresholds, so its state and transitions are what Datadog would have shown: chronic-noise
services flap, an unrelated error burst alerts, an exhausted database's connection monitor
alerts. The culprit and the services between it and the symptom carry no error monitor
(incomplete coverage is the common case), except a low-priority one on easy labels.
"""

from __future__ import annotations

import random

from evaluator_agent.worldgen.mechanisms.base import Plan
from evaluator_agent.worldgen.telemetry import World, sig


def _sum(w: World, metric: str, **match: str) -> list[float]:
    out = [0.0] * w.clock.n
    for (m, _), s in w.metrics.items():
        if m == metric and all(s["tags"].get(k) == v for k, v in match.items()):
            for i, v in enumerate(s["values"]):
                if v is not None:
                    out[i] += v
    return out


def _roll(vals: list[float], k: int = 5) -> list[float]:
    out, acc = [], 0.0
    for i, v in enumerate(vals):
        acc += v - (vals[i - k] if i >= k else 0.0)
        out.append(acc)
    return out


def _rate(num: list[float], den: list[float]) -> list[float]:
    """Rolling 5-minute ratio ``num / den`` (0 where ``den`` rolled to nothing)."""
    rn, rd = _roll(num), _roll(den)
    return [rn[i] / rd[i] if rd[i] else 0.0 for i in range(len(rd))]


def _nice(x: float) -> float | int:
    if x <= 0:
        return 0
    return sig(x, 2)


def _signal(w: World, kind: str, svc: str) -> tuple[list[float], str, str, str]:
    """Rolling 5-minute value of a monitor kind on ``svc``: (values, query prefix, type, name template)."""
    p = w.p[svc]
    q = f"{{service:{svc},env:prod}}"
    if kind == "lag":
        lag = _sum(w, "kafka.consumer_lag", consumer_group=svc)
        return (
            lag,
            f"max(last_5m):max:kafka.consumer_lag{{consumer_group:{svc},env:prod}}",
            "metric alert",
            f"{svc} consumer lag is high",
        )
    if kind == "saturation":
        cpu = _sum(w, "kubernetes.cpu.usage.total", service=svc)
        limit = max(p.cpu_limit, 1e-9) * 1e9
        roll = _roll(cpu)
        return (
            [roll[i] / (min(i + 1, 5) * limit) for i in range(len(roll))],
            f"avg(last_5m):avg:kubernetes.cpu.usage.total{q} / avg:kubernetes.cpu.limits{q} / 1e9",
            "metric alert",
            f"{svc} CPU usage is high",
        )
    hits = _sum(w, f"trace.{p.op}.hits", service=svc)
    if kind in ("hits", "throughput"):
        return (
            _roll(hits),
            f"sum(last_5m):sum:trace.{p.op}.hits{q}.as_count()",
            "query alert",
            f"{svc} throughput is low",
        )
    if kind == "latency":
        durs = [0.0] * w.clock.n
        for (m, tagkey), s in w.metrics.items():
            if m == f"trace.{p.op}.duration" and s["tags"].get("service") == svc:
                hs = w.metrics[(f"trace.{p.op}.hits", tagkey)]["values"]
                for i, v in enumerate(s["values"]):
                    if v is not None and hs[i]:
                        durs[i] += v * hs[i]
        return (
            _rate(durs, hits),
            f"avg(last_5m):avg:trace.{p.op}.duration{q}",
            "metric alert",
            f"{svc} average latency is high",
        )
    errs = _sum(w, f"trace.{p.op}.errors", service=svc)
    return (
        _rate(errs, hits),
        f"sum(last_5m):sum:trace.{p.op}.errors{q}.as_count() / sum:trace.{p.op}.hits{q}.as_count()",
        "query alert",
        f"{svc} error rate is high",
    )


def _message(w: World, svc: str, page: bool) -> str:
    team = w.p[svc].team
    who = f"@pagerduty-{team}-primary @slack-team-{team}" if page else f"@slack-team-{team}-alerts"
    return (
        f"{{{{#is_alert}}}}{svc} crossed its threshold ({{{{value}}}} > {{{{threshold}}}}).{{{{/is_alert}}}}\n"
        f"Runbook: https://runbooks.shop.example.com/{svc}\n{who}"
    )


def _t(ts: float, a: str, b: str, v: float) -> dict:
    return {"ts": round(ts, 1), "from": a, "to": b, "value": sig(v, 4) if v else 0}


# Monitor kinds that page, and how often a team has one on the paged service. The kind that
# pages is drawn among those whose signal really crossed at the page, with these weights and
# nothing else: what paged says how the symptom looked, never what caused it.
PAGE_KINDS = {"errors": 1.0, "latency": 1.0, "lag": 1.0, "throughput": 0.5, "saturation": 0.5}


def _label(kind: str, crit: float | int) -> str:
    if kind == "errors":
        return (
            f"error rate above {crit:.2%}"
            if isinstance(crit, float) and crit < 1
            else f"error rate above {crit}"
        )
    if kind == "latency":
        return f"average latency above {crit}s"
    if kind == "lag":
        return f"consumer lag above {crit} messages"
    if kind == "throughput":
        return f"throughput below {crit} requests per 5 min"
    return f"CPU usage above {crit:.0%} of its limit"


def paging_monitor(w: World, plan: Plan, rng: random.Random) -> dict:
    svc = plan.symptom
    assert svc is not None
    clock = w.clock
    p = w.p[svc]
    fi = clock.idx(plan.fired_at) - 1
    base_end = max(6, clock.idx(min(plan.onset or plan.symptom_start, plan.symptom_start)) - 1)
    kinds = ["errors", "latency", "throughput"]
    if p.role == "worker":
        kinds.append("lag")
    if p.role in ("api", "gateway", "worker"):
        kinds.append("saturation")
    eligible = []
    scored = []
    for kind in kinds:
        vals, query, typ, name = _signal(w, kind, svc)
        base_vals = vals[5:base_end] or [0.0]
        value = vals[fi]
        if kind == "throughput":
            base = min(base_vals)
            rise = (base - value) / (abs(base) + 1e-9)  # a drop
            ok = value < base * 0.7
        else:
            base = max(base_vals)
            rise = (value - base) / (abs(base) + 1e-9)
            floor = {"errors": 0.01, "latency": 0.0, "lag": 2000, "saturation": 0.85}[kind]
            ok = value > base * 1.3 and value - base > 1e-6 and value >= floor
        scored.append((rise, kind, vals, query, typ, name, base, value))
        if ok:
            eligible.append(scored[-1])
    if eligible:
        weights = [PAGE_KINDS[e[1]] for e in eligible]
        chosen = rng.choices(eligible, weights)[0]
    else:
        chosen = max(scored, key=lambda e: e[0])
    _, kind, vals, query, typ, name, base, value = chosen
    if kind == "throughput":
        crit = _nice(base - 0.6 * (base - value))
        if not value < crit < base:
            crit = _nice((base + value) / 2)
        op = "<"
    else:
        if kind == "saturation":  # nobody pages on a CPU below three quarters of its limit
            base = max(base, 0.75)
        crit = _nice(base + 0.6 * (value - base))
        if not base < crit < value:
            crit = _nice((base + value) / 2) if value > base else _nice(value * 0.95)
        op = ">"
    warn = _nice(base + 0.3 * (value - base))
    transitions = []
    if kind != "throughput":
        for i in range(base_end, fi):
            if vals[i] >= warn and warn < crit:
                transitions.append(_t(clock.ts(i) + rng.uniform(5, 55), "OK", "Warn", vals[i]))
                break
    transitions.append(
        _t(plan.fired_at, transitions[-1]["to"] if transitions else "OK", "Alert", value)
    )
    prio = "P2"
    tags = {"service": svc, "team": p.team, "env": "prod", "priority": prio}
    if kind == "lag":
        tags["consumer_group"] = svc
    plan.monitor_kind = kind
    return {
        "id": 10_000_000 + w.rng("paging").randrange(90_000_000),
        "name": f"[{prio}] {svc} {_label(kind, crit)}",
        "type": typ,
        "query": f"{query} {op} {crit}",
        "message": _message(w, svc, True),
        "tags": tags,
        "state": "Alert",
        "transitions": transitions,
        "_kind": kind,
    }


def _honest(
    w: World,
    rng: random.Random,
    svc: str,
    kind: str,
    crit: float,
    warn: float | None,
    prio: str,
    name: str | None = None,
    series: tuple[list[float], str, str, str] | None = None,
) -> dict:
    vals, query, typ, default_name = series or _signal(w, kind, svc)
    state, trans = "OK", []
    for i in range(5, len(vals)):
        v = vals[i]
        new = "Alert" if v > crit else "Warn" if warn is not None and v > warn else "OK"
        if new != state:
            trans.append(_t(w.clock.ts(i) + rng.uniform(5, 55), state, new, v))
            state = new
    return {
        "id": w.monitor_id(),
        "name": f"[{prio}] {name or default_name}",
        "type": typ,
        "query": f"{query} > {crit}",
        "message": _message(w, svc, False),
        "tags": {"service": svc, "team": w.p[svc].team, "env": "prod", "priority": prio},
        "state": state,
        "transitions": trans[-6:],
    }


def build_monitors(w: World, plan: Plan) -> int:
    """Create every monitor; returns the id of the paging one."""
    rng = w.rng("monitors")
    page = paging_monitor(w, plan, rng)
    page.pop("_kind")
    w.monitors.append(page)
    # Coverage is patchy and does not follow the incident: every service, on the causal chain
    # or not, has the same chance of a monitor of each kind.
    for svc in sorted(w.p):
        p = w.p[svc]
        roll = rng.random()
        if svc == plan.symptom or svc in w.chronic or svc in w.burst or svc in w.warned:
            continue
        if p.role in ("api", "gateway", "worker") and rng.random() < 0.25:
            w.monitors.append(_honest(w, rng, svc, "latency", _nice(p.base_lat * 4), _nice(p.base_lat * 2.5), "P3"))
        if p.role in ("api", "gateway", "worker") and rng.random() < 0.15:
            w.monitors.append(_honest(w, rng, svc, "saturation", 0.9, 0.8, "P3"))
        if p.role in ("api", "gateway") and roll < 0.5:
            w.monitors.append(_honest(w, rng, svc, "errors", 0.05, 0.02, "P3"))
        elif p.role == "worker" and roll < 0.6:
            w.monitors.append(_honest(w, rng, svc, "lag", 50000, 20000, "P3"))
        elif p.role == "db" and p.language == "postgres" and roll < 0.7:
            conn = _sum(w, "postgresql.percent_usage_connections", service=svc)
            w.monitors.append(
                _honest(
                    w,
                    rng,
                    svc,
                    "",
                    0.9,
                    0.8,
                    "P3",
                    f"{svc} connection usage above 90%",
                    (
                        conn,
                        f"avg(last_5m):avg:postgresql.percent_usage_connections{{service:{svc}}}",
                        "metric alert",
                        "",
                    ),
                )
            )
        elif p.role == "redis" and roll < 0.4:
            mem = [v / p.mem_limit for v in _sum(w, "redis.mem.used", service=svc)]
            w.monitors.append(
                _honest(
                    w,
                    rng,
                    svc,
                    "",
                    0.95,
                    0.9,
                    "P3",
                    f"{svc} memory above 95% of maxmemory",
                    (
                        mem,
                        f"avg(last_5m):avg:redis.mem.used{{service:{svc}}} / {int(p.mem_limit)}",
                        "metric alert",
                        "",
                    ),
                )
            )
    nrng = w.rng("monitors", "noise")
    for svc in w.chronic:
        vals = sorted(_signal(w, "errors", svc)[0][5:])
        mid = vals[len(vals) // 2] if vals else 0.05
        w.monitors.append(
            _honest(w, nrng, svc, "errors", _nice(mid * 1.04), _nice(mid * 0.97), "P3")
        )
    for svc in sorted(w.burst):
        w.monitors.append(_honest(w, nrng, svc, "errors", 0.2, 0.1, "P2"))
    for svc in sorted(w.warned):
        if not w.p[svc].op:
            continue
        kind = "latency"
        vals = _signal(w, kind, svc)[0]
        cur = max(vals[-10:]) if vals else 0.0
        base = max(vals[5 : max(6, w.clock.idx(w.warned[svc]) - 3)])
        warn = _nice(max(base * 1.05, cur * 0.8))
        crit = _nice(max(cur * 1.5, warn * 1.3))
        w.monitors.append(_honest(w, nrng, svc, kind, crit, warn if warn < cur else None, "P3"))
    return page["id"]
