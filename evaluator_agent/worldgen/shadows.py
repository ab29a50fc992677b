"""Shadow incidents: whole incidents that did not page, on services unrelated to the one that did.

A big fleet rarely has one problem at a time. While the paged incident unfolds, some
low-priority service may be OOM-killed after its own bad deploy, a consumer group may be stuck
rebalancing, a partner may be failing for the one service that calls it. Nobody paged for
those (no monitor, or a low-priority one), but they are complete: the change, the failure, the
signature lines, the events, the metrics, the callers' errors, exactly as the mechanism's own
code writes them, because they are written by that code (``Mechanism.schedule`` and ``apply``
on a plan of their own).

So an artifact, or even the whole set of artifacts of a mechanism, says nothing about which
incident the page is about. Only following the page does: from the paged service, along the
errors its callees return, to where they start. A shadow's causal chain never touches the
paged service, the paged incident's chain or the services the incident depends on, and it is
not recorded in the label (it is not what the page asks about).
"""

from __future__ import annotations

import random

from evaluator_agent.worldgen.mechanisms import REGISTRY
from evaluator_agent.worldgen.mechanisms.base import Plan
from evaluator_agent.worldgen.telemetry import MIN, World

# a shadow needs its own culprit and chain; these mechanisms have them
SHADOWABLE = tuple(sorted(m for m in REGISTRY if m != "no_fault"))


def add_shadows(w: World, plan: Plan, rng: random.Random, count: int) -> list[Plan]:
    """Up to ``count`` unpaged incidents of random mechanisms; returns their plans."""
    busy = set(plan.chain) | plan.protect
    if plan.symptom:
        busy.add(plan.symptom)
    # a shadow must not reach the page: none of its services may be called by the paged
    # service or by the incident's chain (their callers feel a failing callee)
    near = set(busy)
    for s in busy:
        near |= set(w.topo.calls.get(s, []))
    shadows: list[Plan] = []
    for _ in range(6 * count):
        if len(shadows) >= count:
            break
        name = rng.choice(SHADOWABLE)
        mech = REGISTRY[name]
        length = rng.randint(mech.min_chain, min(mech.max_chain, 3))
        chains = [
            ch
            for ch in mech.chains(w.topo, length)
            if not (set(ch) & near)
            and not w.deployed_in_window(ch[0])
            and not (set(ch) & {c for s in shadows for c in s.chain})
        ]
        if not chains:
            continue
        chain = rng.choice(sorted(chains))
        # its own virtual page: mostly around the real one (trouble clusters: busy hours, shared
        # platforms), sometimes earlier in the window
        if rng.random() < 0.7:
            fired = int(rng.uniform(plan.fired_at - 25 * MIN, plan.fired_at + 3 * MIN))
        else:
            fired = int(rng.uniform(w.clock.start + 50 * MIN, plan.fired_at))
        recipe = plan.recipe.model_copy(update={"postmortem": None, "time_offset_s": 0})
        shadow = Plan(
            recipe=recipe,
            mechanism=name,
            fired_at=fired,
            end=plan.end,
            culprit=chain[0],
            chain=list(chain),
            monitor_kind=mech.monitor_kind,
        )
        mech.schedule(shadow, rng)
        if (shadow.onset or shadow.symptom_start) < w.clock.start + 20 * MIN:
            continue
        mech.apply(w, shadow, rng)
        shadows.append(shadow)
        busy |= set(shadow.chain) | shadow.protect
    return shadows
