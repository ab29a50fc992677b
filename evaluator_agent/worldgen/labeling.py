"""Labels: the ground truth a world's plan recorded, in the schema of ``evaluator_agent.core.labels``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from evaluator_agent.core.labels import Label
from evaluator_agent.core.vocab import MECHANISM_INFO, SEGMENTS
from evaluator_agent.worldgen.mechanisms import REGISTRY
from evaluator_agent.worldgen.mechanisms.base import Plan
from evaluator_agent.worldgen.postmortems import STORIES
from evaluator_agent.worldgen.recipe import Recipe
from evaluator_agent.worldgen.telemetry import MIN, World

GENERATOR = "evaluator_agent.worldgen v1"


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(int(ts), UTC)


def tier(
    chain: int, herrings: int, services: int, kinds: int, offset: int, extra: float = 0
) -> str:
    points = (
        extra
        + max(0, chain - 1)
        + 0.25 * herrings
        + (1 if offset >= 1800 else 0)
        + (0.5 if services >= 60 else 0)
        + (0.5 if kinds >= 5 else 0)
    )
    return "easy" if points < 2 else "medium" if points < 3.5 else "hard"


def _segment(recipe: Recipe, segment: str, w: World, plan: Plan) -> str:
    """The mechanism's segment; a no-fault control takes the paged service's technology when
    its recipe asks for ``segment: auto`` (older sets keep ``business_logic``)."""
    if recipe.segment and recipe.segment != "auto":
        return recipe.segment
    if segment in SEGMENTS:
        return segment
    if recipe.segment == "auto" and plan.symptom:
        p = w.p[plan.symptom]
        return {
            "gateway": "network",
            "worker": "kafka",
            "db": "database",
            "redis": "cache",
            "external": "dependency",
        }.get(p.role, "kubernetes")
    return "business_logic"


def make_label(
    recipe: Recipe,
    plan: Plan,
    w: World,
    monitor: dict[str, Any],
    snapshot: str,
    snapshot_noise_free: str | None,
) -> Label:
    segment, category = MECHANISM_INFO[recipe.mechanism]
    no_fault = recipe.mechanism == "no_fault"
    chain = list(plan.chain)
    trig = plan.trigger or {}
    offset = (
        int(plan.onset - trig["at"])
        if plan.onset and trig.get("at") and plan.onset > trig["at"]
        else 0
    )
    off_chain = set(chain) | {pc["entity"] for pc in plan.partial}
    herrings, seen = [], set()
    for h in plan.herrings:
        if h["entity"] not in off_chain and h["entity"] not in seen:
            seen.add(h["entity"])
            herrings.append(h)
    signals = sorted(plan.signals)
    anchor = plan.onset or plan.symptom_start
    first = min(anchor, trig.get("at") or anchor)
    inc_start = anchor - 10 * MIN
    base_end = max(w.clock.start + 30 * MIN, min(inc_start, first) - 10 * MIN)
    culprit = chain[0] if chain else None
    kind = (
        {
            "service": "service",
            "gateway": "service",
            "external": "external",
            "database": "service",
            "cache": "service",
            "queue": "service",
        }.get(w.topo.services[culprit]["kind"], "service")
        if culprit
        else "service"
    )
    aliases = sorted(set(plan.aliases) - {culprit})
    gt: dict[str, Any] = {
        "no_fault": no_fault,
        "root_causes": [] if no_fault else [{"entity": culprit, "aliases": aliases, "kind": kind}],
        "mechanism": recipe.mechanism,
        "triggering_change": {
            "kind": trig["kind"],
            "entity": trig.get("entity"),
            "description": trig["description"],
            "at": _dt(trig["at"]),
        }
        if trig
        else None,
        "onset": _dt(plan.onset) if plan.onset else None,
        "onset_tolerance_s": plan.onset_tolerance_s,
        "causal_chain": chain,
        "first_symptom": plan.symptom,
        "key_evidence": plan.evidence,
        "partial_credit": plan.partial,
        "must_not_blame": herrings,
    }
    pattern = "no_fault" if no_fault else "single" if len(chain) == 1 else "cascading"
    prompt = (
        f'You are on call for the shop\'s production environment. The monitor "{monitor["name"]}" '
        f"(id {monitor['id']}) fired at {_dt(plan.fired_at).strftime('%Y-%m-%dT%H:%M:%SZ')} and paged you. "
        "Investigate with the tools: find the root cause (the entity where the failure starts and its mechanism), "
        "how it propagated to the alerting service, and when it started. If nothing is actually broken, say so."
    )
    data = {
        "id": recipe.label_id(),
        "status": "validated",
        "provenance": {
            "kind": "synthetic",
            "source": f"{GENERATOR}, seed {recipe.seed}",
            **({"postmortem": STORIES[recipe.postmortem].title} if recipe.postmortem else {}),
        },
        "split": recipe.split,
        "family": f"synthetic/{recipe.mechanism}",
        "taxonomy": {
            "segment": _segment(recipe, segment, w, plan),
            "technologies": sorted(set(plan.technologies)),
            "problem_category": category,
            "mechanism": recipe.mechanism,
            "system_level": REGISTRY[recipe.mechanism].system_level,
            "failure_pattern": pattern,
            "monitor_type": monitor["type"],
            "tags": [f"noise:{recipe.noise}", f"chain:{len(chain)}"]
            + (["telemetry:sampled-logs"] if recipe.quiet_culprit else [])
            + (["herring:earlier-change"] if recipe.early_herrings else [])
            + (["postmortem"] if recipe.postmortem else [])
            + list(recipe.tags),
        },
        "difficulty": {
            "tier": tier(
                len(chain),
                len(herrings),
                len(w.topo.services),
                len(signals),
                offset,
                # a blip that recovered long before the page is noise, not a difficulty point
                recipe.early_herrings
                + (1 if recipe.quiet_culprit else 0)
                - (0.5 * recipe.transient_bursts if recipe.noise != "off" else 0),
            ),
            "factors": {
                "chain_length": len(chain),
                "red_herrings": len(herrings),
                "services": len(w.topo.services),
                "signal_kinds": signals,
                "time_offset_s": offset,
            },
        },
        "task": {
            "trigger": {
                "monitor_id": monitor["id"],
                "title": monitor["name"],
                "fired_at": _dt(plan.fired_at),
            },
            "prompt": prompt,
        },
        "world": {
            "snapshot": snapshot,
            "snapshot_noise_free": snapshot_noise_free,
            "incident_window": {"start": _dt(inc_start), "end": _dt(w.clock.end)},
            "baseline_window": {"start": _dt(w.clock.start), "end": _dt(base_end)},
        },
        "ground_truth": gt,
    }
    return Label.model_validate(data)
