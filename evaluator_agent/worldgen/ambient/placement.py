"""Where background artifacts may land, and the primitives that write them.

``pool`` keeps every artifact off the paged service and the services the incident depends on,
and off the causal chain unless it is over well before the incident starts; ``focused``
(used by ``concurrent_noise``) narrows it to the services below the paged one. ``episode``
makes a service fail some of its requests for a while, the way an incident's errors reach
APM, logs and spans; the rest write curves, log lines and Kubernetes bookkeeping.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from evaluator_agent.worldgen import messages
from evaluator_agent.worldgen.mechanisms.base import Plan
from evaluator_agent.worldgen.mechanisms.signatures import stack_trace
from evaluator_agent.worldgen.telemetry import MIN, LogMaker, Profile, World, add

Blip = Callable[[World, Plan, random.Random, float], bool]

COLUMNS = ("customer_id", "sku", "merchant_id", "status", "external_ref", "created_at", "region")


def anchor_of(plan: Plan) -> float:
    """When the incident starts (its onset, or the symptom's start where it has none)."""
    return float(plan.onset or plan.symptom_start)


def pool(
    w: World,
    plan: Plan,
    t: float,
    dur: float,
    roles: tuple[str, ...] = ("api", "worker"),
    langs: tuple[str, ...] | None = None,
    need: Callable[[str], bool] | None = None,
) -> list[str]:
    """Services a background artifact may land on at ``t`` for ``dur`` seconds.

    Never the paged service, never a service the incident depends on (``plan.protect``), and a
    service of the causal chain only when the blip is over well before the incident starts.
    """
    early = t + dur < anchor_of(plan) - 30 * MIN
    out = []
    for n in sorted(w.p):
        p = w.p[n]
        if p.role not in roles or (langs and p.language not in langs) or not in_focus(w, n):
            continue
        if n == plan.symptom or n in plan.protect:
            continue
        if n in plan.chain and not early:
            continue
        if need and not need(n):
            continue
        out.append(n)
    return out


def in_focus(w: World, name: str) -> bool:
    """While concurrent noise is placed below the paged service, only there."""
    return w.blip_focus is None or name in w.blip_focus


@contextmanager
def focused(w: World, names: set[str]) -> Iterator[None]:
    """Blips placed inside the block land on ``names`` only."""
    w.blip_focus = names
    try:
        yield
    finally:
        w.blip_focus = None


def pick(rng: random.Random, xs: list[str]) -> str | None:
    """One of ``xs``, or None when there is none."""
    return rng.choice(xs) if xs else None


def callers_of(w: World, name: str) -> list[str]:
    """The services (not cron jobs) that call ``name``."""
    return [c for c in w.topo.callers.get(name, []) if w.p[c].role in ("api", "worker", "gateway")]


def stream(w: World, svc: str, t0: float, t1: float, per_min: float, make: LogMaker) -> None:
    """``svc`` logs ``make``'s lines at ``per_min`` a minute in [t0, t1) (cut at the window's end)."""
    w.stream(svc, t0, min(t1, w.clock.end), per_min, make)


def scatter(w: World, svc: str, t: float, n: int, spread: float, make: LogMaker, rng: random.Random) -> None:
    """``n`` of ``make``'s lines from ``svc`` at random times in [t, t + spread]."""
    for _ in range(n):
        ts = t + rng.uniform(0, spread)
        status, msg, attrs = make(rng, ts)
        w.log(ts, svc, status, msg, attrs, rng=rng)


def add_ramp(w: World, curve: list[float], t0: float, t1: float, level: float, ramp: float = 60) -> None:
    """Add ``level`` to ``curve`` over [t0, t1), ramping up and down in ``ramp`` seconds."""
    add(curve, w.clock.ramp(t0, t0 + ramp, level, until=t1, decay_s=ramp))


def res_curve(p: Profile, key: str, n: int) -> list[float]:
    """``p``'s resource curve ``key`` (created flat at zero)."""
    return p.res.setdefault(key, [0.0] * n)


def pg_dbs(w: World) -> list[str]:
    """The Postgres databases blips may use."""
    return [
        n for n in sorted(w.p) if w.p[n].role == "db" and w.p[n].language == "postgres" and in_focus(w, n)
    ]


def episode(
    w: World, svc: str, t0: float, t1: float, level: float, make: LogMaker, ramp: float = 30
) -> None:
    """``svc`` fails ``level`` of its requests in [t0, t1), its errors worded by ``make``: the
    errors reach its APM series, its sampled error logs and its spans like an incident's."""
    p = w.p[svc]
    add_ramp(w, p.err_own, t0, t1, level, ramp=ramp)
    p.episodes.append((t0, t1, make))


def caller_sees(w: World, caller: str, callee: str, style: str) -> LogMaker:
    """The errors ``caller`` logs when ``callee`` fails in ``style`` (timeout, dns, refused ...)."""
    def make(rng: random.Random, ts: float) -> tuple[str, str, dict]:
        return messages.upstream_error(w.p[caller], w.p[callee], style, rng)

    return make


def bug_trace(p: Profile, rng: random.Random) -> LogMaker:
    """The stack traces of a bug in one of ``p``'s endpoints."""
    res, _ = rng.choice(p.resources)
    make, _ = stack_trace(p, rng, res)
    return make


def count_restart(w: World, p: Profile, t: float) -> None:
    """A container of ``p`` restarted at ``t``: its restart count is one higher from then on."""
    n = w.clock.n
    for j in range(w.clock.idx(t), n):
        res_curve(p, "+restarts", n)[j] += 1


def count_kill(w: World, p: Profile, t: float) -> None:
    """A container of ``p`` OOM-killed at ``t`` (and restarted), in its Kubernetes series."""
    res_curve(p, "+oomkilled", w.clock.n)[w.clock.idx(t)] += 1
    count_restart(w, p, t)


def crash_loop(
    w: World, svc: str, pod: str, make: LogMaker, t0: float, t1: float, rng: random.Random
) -> None:
    """``svc``'s container in ``pod`` failing at start-up from ``t0`` until ``t1`` (its error
    worded by ``make``), restarted by the kubelet with a doubling back-off."""
    tc, backoff = t0, 10
    while tc < t1:
        status, msg, attrs = make(rng, tc)
        w.log(tc + 2, svc, status, msg, {**attrs, "pod_name": pod}, rng=rng)
        w.backoff(tc + 3, svc, pod)
        count_restart(w, w.p[svc], tc)
        tc += backoff + 5
        backoff = min(300, backoff * 2)
