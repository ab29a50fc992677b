"""Ambient: what a healthy fleet shows anyway, so that no artifact exists only when it is the answer.

A world in which an OOM kill, a lock wait, a DNS lookup failure or a config change appears only
when it caused the page teaches agents to grep. Real fleets show all of them all day, on
services that have nothing to do with the incident. This package adds, to every noisy world:

- routine changes of every kind an incident uses, spread over the whole window with no quiet
  period around the onset: deploys, ConfigMap edits, feature-flag rollouts, terraform applies
  (DNS automation included), schema migrations and grants, vendor status notices, marketing
  campaigns, load tests, certificate renewals, node upgrades, cron runs, autoscaling;
- chronic streams of the lines mechanisms are known by, on the services that plausibly log
  them all day: scanners' TLS handshake errors at the edge, DNS lookup timeouts, slow-query and
  lock-wait logs on busy databases, pool-wait and GC warnings, N+1 statistics, retries,
  rebalances, malformed-record warnings;
- blips: short, mild, resolved versions of every mechanism (:data:`BLIPS`, one per mechanism,
  drawn uniformly) on unrelated services at random times, many inside the incident window: a
  batch pod OOM-killed once, a bad config value caught on one pod and reverted, a lock pile-up
  during a vacuum, a partner's brief 429s, a cache pod rescheduled during a node upgrade ...

Blips use the very same line makers and event formats as the mechanisms (``events.py``,
``mechanisms/signatures.py``), so a template's presence says nothing; what tells an incident
apart is where it sits in the dependency graph, when it starts relative to the page and the
changes, and whether it is still going on. A blip lands on a service of the causal chain only
if it is over half an hour before the incident starts; it never lands on the service that paged.

Here: the entry point (``apply_ambient``), the blip table and the trouble placed below the paged
service around the page (``concurrent_noise``). ``routine.py`` holds the changes,
``chronic.py`` the chronic streams, ``service_blips.py`` and ``dependency_blips.py`` the blips,
``placement.py`` where they may land and the primitives that write them.
"""

from __future__ import annotations

import random

from evaluator_agent.worldgen import events, messages
from evaluator_agent.worldgen.ambient.chronic import chronic_streams, loud_chronic
from evaluator_agent.worldgen.ambient.dependency_blips import (
    blip_baddata,
    blip_cache,
    blip_dbslow,
    blip_disk,
    blip_dns,
    blip_locks,
    blip_migration,
    blip_partner,
    blip_pool_wait,
    blip_retries,
    blip_tls,
)
from evaluator_agent.worldgen.ambient.placement import Blip, anchor_of, focused
from evaluator_agent.worldgen.ambient.routine import (
    config_change,
    publishers,
    routine_changes,
    routine_deploy,
)
from evaluator_agent.worldgen.ambient.service_blips import (
    blip_benign_load,
    blip_crashloop,
    blip_flag,
    blip_lag,
    blip_nplus1,
    blip_oom,
    blip_rebalance,
    blip_rollback,
    blip_stack,
    blip_throttle,
)
from evaluator_agent.worldgen.catalog import AUTHORS
from evaluator_agent.worldgen.mechanisms import REGISTRY
from evaluator_agent.worldgen.mechanisms.base import Plan
from evaluator_agent.worldgen.telemetry import MIN, World

__all__ = ["BLIPS", "apply_ambient", "below_paged", "check_coverage", "concurrent_noise", "publishers"]

# Every mechanism's mild, resolved background version: the lint test checks the keys.
BLIPS: dict[str, Blip] = {
    "oom_killed": blip_oom,
    "memory_leak": blip_oom,
    "crashloop_bad_config": blip_crashloop,
    "cpu_throttling": blip_throttle,
    "consumer_lag": blip_lag,
    "rebalance_storm": blip_rebalance,
    "bad_release": blip_stack,
    "latency_regression": blip_nplus1,
    "feature_flag": blip_flag,
    "connection_pool_exhaustion": blip_pool_wait,
    "slow_query_migration": blip_migration,
    "lock_contention": blip_locks,
    "certificate_expiry": blip_tls,
    "dns_failure": blip_dns,
    "cache_stampede": blip_cache,
    "third_party_outage": blip_partner,
    "retry_storm": blip_retries,
    "disk_full": blip_disk,
    "bad_data": blip_baddata,
    "no_fault": blip_benign_load,
}


def apply_ambient(w: World, plan: Plan, rng: random.Random) -> None:
    """Routine changes, chronic streams and blips of every mechanism (noisy worlds only)."""
    high = w.noise == "high"
    routine_changes(w, plan, random.Random(f"{w.seed}|routine"), high)
    chronic_streams(w, plan, random.Random(f"{w.seed}|chronic"))
    brng = random.Random(f"{w.seed}|blips")
    clock = w.clock

    def when() -> float:
        # a third of the blips fall in the hour before the page, where an incident would be
        if brng.random() < 0.35:
            return brng.uniform(max(clock.start + 10 * MIN, plan.fired_at - 3600), clock.end - 3 * MIN)
        return brng.uniform(clock.start + 10 * MIN, clock.end - 3 * MIN)

    # every mechanism's background version at least once, so that no kind of artifact is
    # present only when it is the answer; then a few more at random
    funcs = sorted(set(BLIPS.values()) | {blip_rollback, blip_dbslow}, key=lambda f: f.__name__)
    for blip in funcs:
        for _ in range(4):
            if blip(w, plan, brng, when()):
                break
    extra = brng.randint(4, 8) if high else brng.randint(2, 5)
    made = 0
    for _ in range(4 * extra):
        if made >= extra:
            break
        if brng.choice(funcs)(w, plan, brng, when()):
            made += 1
    concurrent_noise(w, plan, random.Random(f"{w.seed}|concurrent"), high)
    loud_chronic(w, plan, random.Random(f"{w.seed}|loud"), high)


def below_paged(w: World, plan: Plan) -> set[str]:
    """The paged service's dependencies, off the causal chain (what an incident's own
    investigation walks through)."""
    if not plan.symptom:
        return set()
    return (w.topo.descendants(plan.symptom) | {plan.symptom}) - set(plan.chain) - plan.protect - {plan.symptom}


def concurrent_noise(w: World, plan: Plan, rng: random.Random, high: bool) -> None:
    """Unrelated trouble and routine changes below the paged service around the page.

    A real incident rarely has its dependency tree to itself: a dependency throttled for a
    while, a partner's brief 429s, a lock pile-up during a vacuum, a config edit or a deploy
    minutes before the page. None of it explains the page (it is off the causal chain and
    its callers absorb it), but "the deepest thing that errors", "the biggest jump below the
    paged service" and "the latest change below it" now point at it as often as not.
    """
    below = below_paged(w, plan)
    if not below:
        return
    fired = plan.fired_at
    anchor = anchor_of(plan)
    with focused(w, below):
        funcs = sorted(
            (set(BLIPS.values()) | {blip_rollback, blip_dbslow}) - {blip_benign_load, blip_migration, blip_nplus1},
            key=lambda f: f.__name__,
        )
        want = rng.randint(4, 6) if high else rng.randint(3, 5)
        made = 0
        for _ in range(6 * want):
            if made >= want:
                break
            t = rng.uniform(fired - 20 * MIN, fired - 4 * MIN)
            if rng.choice(funcs)(w, plan, rng, t):
                made += 1
    # and anywhere else in the last half hour: the busy hour does not stop for an incident
    others = [n for n in sorted(w.p) if w.p[n].role in ("api", "worker", "redis") and n not in plan.chain]
    for _ in range(rng.randint(5, 9) if not high else rng.randint(6, 10)):
        if not others:
            break
        name = rng.choice(others)
        t = rng.uniform(fired - 25 * MIN, fired - 60)
        p = w.p[name]
        if p.role in ("api", "worker") and rng.random() < 0.5 and not w.deployed_in_window(name):
            routine_deploy(w, name, t, rng)
        else:
            config_change(w, name, t, rng)
    # the DNS automation refreshes endpoint records all the time, and node upgrades move
    # cache pods (they come back warm)
    stores = [n for n in sorted(w.p) if w.p[n].role in ("db", "redis") and n not in plan.chain and n not in plan.protect]
    for _ in range(rng.randint(1, 3)):
        if stores:
            name = rng.choice(stores)
            events.dns_plan(
                w, rng.uniform(fired - 25 * MIN, fired - 60), name, messages.dns(w.p[name]),
                rng.randint(100000, 999999), rng.randint(1, 4),
            )
    for _ in range(rng.randint(1, 2)):
        with focused(w, {n for n in stores if w.p[n].role == "redis"}):
            blip_cache(w, plan, rng, rng.uniform(fired - 40 * MIN, fired - 2 * MIN))
    # routine changes below the paged service between the incident's start and the page, on
    # the paged service itself and on the callers along the way too (never the culprit)
    targets = sorted(n for n in below if w.p[n].role in ("api", "worker", "redis", "db"))
    targets += [n for n in [plan.symptom, *plan.chain[1:]] if n and w.p[n].role in ("api", "worker")]
    for _ in range(rng.randint(3, 6) if not high else rng.randint(4, 7)):
        if not targets:
            break
        name = rng.choice(targets)
        t = rng.uniform(anchor - 15 * MIN, fired - 60)
        p = w.p[name]
        kind = rng.random()
        if p.role in ("api", "worker") and kind < 0.45 and not w.deployed_in_window(name):
            routine_deploy(w, name, t, rng)
        elif p.role == "db" and kind < 0.6:
            with focused(w, {name}):
                blip_migration(w, plan, rng, t)
        elif p.role == "api" and kind < 0.75:
            pct = rng.choice((10, 25, 50))
            events.feature_flag(w, t, name, events.flag_name(name, rng), pct, {10: 0, 25: 10, 50: 25}[pct], rng.choice(AUTHORS))
        else:
            config_change(w, name, t, rng)


def check_coverage() -> list[str]:
    """Mechanisms without a background blip (must be empty)."""
    return sorted(set(REGISTRY) - set(BLIPS))
