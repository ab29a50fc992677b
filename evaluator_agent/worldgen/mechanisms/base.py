"""What every mechanism shares: the incident plan, the registry, and failure propagation.

A mechanism picks its culprit among entities of the right shape, schedules the incident
backwards from the page (``fired_at`` = symptom start + monitor delay; symptom start = onset
+ the delay of every hop of the chain), then edits world state: the culprit's own failure,
its signature logs and change events, and the weaker, later failure of each caller up the
chain (``propagate``). It records the ground truth it created in the plan.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from ..baseline import bump
from ..recipe import Recipe
from ..telemetry import MIN, World, add, iso, shift
from ..topology import CHAIN_ROLES, Topo


@dataclass
class Plan:
    recipe: Recipe
    mechanism: str
    fired_at: int
    end: int
    culprit: str | None = None
    chain: list[str] = field(default_factory=list)  # culprit first, paged service last
    hop_delays: list[int] = field(default_factory=list)  # seconds, one per edge of the chain
    onset: int | None = None
    symptom_start: int = 0
    trigger: dict[str, Any] | None = None  # kind, entity, description, at (epoch)
    aliases: list[str] = field(default_factory=list)
    evidence: list[dict[str, Any]] = field(default_factory=list)
    partial: list[dict[str, Any]] = field(default_factory=list)
    herrings: list[dict[str, str]] = field(default_factory=list)
    signals: set[str] = field(default_factory=lambda: {"monitors", "topology"})
    technologies: list[str] = field(default_factory=list)
    monitor_kind: str = "errors"  # errors | latency | hits | lag
    monitor_service: str | None = None
    protect: set[str] = field(default_factory=set)  # entities noise must leave alone
    onset_tolerance_s: int = 300
    baseline_end: int | None = None

    @property
    def symptom(self) -> str | None:
        return self.monitor_service or (self.chain[-1] if self.chain else None)

    def window(self, before_s: int = 1800, at: float | None = None) -> dict[str, str]:
        t = at if at is not None else (self.trigger or {}).get("at") or self.onset or self.fired_at
        return {"from": iso(t - before_s), "to": iso(self.end)}

    def evidence_for(
        self, tool: str, arguments: dict[str, Any], expect: str, description: str
    ) -> None:
        self.evidence.append(
            {"tool": tool, "arguments": arguments, "expect": expect, "description": description}
        )


class Mechanism:
    name = ""
    system_level = "application"
    culprit_roles: tuple[str, ...] = ("api",)
    max_chain = 5
    min_chain = 1
    monitor_kind = "errors"
    hop_range = (60, 150)  # seconds between a service failing and its caller failing
    # Backends-for-frontends only fan out: a fault "in" a BFF would be a gateway incident.
    excludes_bff = False

    def accept(self, topo: Topo, name: str) -> bool:
        return not (self.excludes_bff and name.endswith("-bff"))

    def candidates(self, topo: Topo) -> list[str]:
        return [n for n in topo.names(*self.culprit_roles) if self.accept(topo, n)]

    def chains(self, topo: Topo, length: int) -> list[list[str]]:
        out: list[list[str]] = []
        for c in self.candidates(topo):
            out.extend(ch for ch in topo.chains(c, length) if topo.role(ch[-1]) in CHAIN_ROLES)
        return out

    def schedule(self, plan: Plan, rng: random.Random) -> None:
        plan.hop_delays = [rng.randint(*self.hop_range) for _ in plan.chain[1:]]
        plan.symptom_start = plan.fired_at - rng.randint(150, 330)
        plan.onset = plan.symptom_start - sum(plan.hop_delays)

    def apply(self, w: World, plan: Plan, rng: random.Random) -> None:
        raise NotImplementedError


REGISTRY: dict[str, Mechanism] = {}


def register(cls: type[Mechanism]) -> type[Mechanism]:
    REGISTRY[cls.name] = cls()
    return cls


def propagate(
    w: World, plan: Plan, rng: random.Random, err: list[float], lat: list[float], style: str
) -> None:
    """Carry the culprit's failure up the chain: each caller later and weaker than its callee.

    Callers off the chain of any chain member feel a fraction of it one minute later (blast
    radius). ``err`` and ``lat`` are the culprit's visible error ratio and added latency.
    """
    chain = plan.chain
    cum, f_err = 0, 1.0
    onset_i = w.clock.idx(plan.onset or plan.fired_at)
    effect: dict[str, tuple[list[float], list[float]]] = {chain[0]: (err, lat)}
    for k in range(1, len(chain)):
        child, svc = chain[k - 1], chain[k]
        cum += plan.hop_delays[k - 1]
        steps = round(cum / MIN)
        share = rng.uniform(0.4, 0.85)
        f_err *= share
        p = w.p[svc]
        e, la = shift(err, steps), shift(lat, steps)
        add(p.err_prop, e, f_err)
        add(p.lat_add, la, share)
        p.upstream.append((onset_i + steps, child, style))
        effect[svc] = ([x * f_err for x in e], [x * share for x in la])
    # Other callers feel it as soon as a chain caller would (one hop after the node they call).
    hop = (
        max(1, round(sum(plan.hop_delays) / max(1, len(plan.hop_delays)) / MIN))
        if plan.hop_delays
        else 1
    )
    for node in chain:
        e, la = effect[node]
        for c in w.topo.callers.get(node, []):
            if c in chain or w.p[c].role not in CHAIN_ROLES:
                continue
            f = rng.uniform(0.08, 0.25)
            add(w.p[c].err_prop, shift(e, hop), f)
            add(w.p[c].lat_add, shift(la, hop), f)
            w.p[c].upstream.append((onset_i + hop, node, style if node == chain[0] else "5xx"))


def release(
    w: World,
    plan: Plan,
    rng: random.Random,
    svc: str,
    ts: float,
    commits: tuple[str, ...],
    rollout_s: float,
) -> str:
    """Deploy a new version of ``svc`` as the incident's triggering change (event, aliases, evidence)."""
    p = w.p[svc]
    old, new = p.version, bump(p.version, rng)
    msg = rng.choice(commits).replace("{noun}", svc.removesuffix("-api").replace("-", " "))
    w.deploy(
        svc,
        ts,
        new,
        pick_author(rng),
        msg,
        rollout_s=rollout_s,
        pipeline=rng.choice(("argo-cd", "spinnaker")),
    )
    plan.trigger = {
        "kind": "deploy",
        "entity": svc,
        "at": int(ts),
        "description": f"Deploy of {svc} {old} -> {new} ({msg})",
    }
    plan.aliases += [f"deployment/{svc}", f"{p.namespace}/{svc}", f"{svc}@{new}"]
    plan.evidence_for(
        "get_events",
        {"query": f"source:deploy service:{svc}", **plan.window()},
        new,
        f"deploy of {svc} {new} shortly before the onset",
    )
    return new


def lag_curve(w: World, p: Any, onset: float, cap: float, rng: random.Random) -> list[float]:
    """Consumer lag of a group that keeps only ``cap`` of its throughput from ``onset`` on:
    a small steady backlog, then linear growth by the per-minute deficit."""
    clock = w.clock
    deficit = p.rps * (1 - cap) * MIN
    return [
        rng.uniform(30, 200)
        + max(0.0, (clock.ts(i) + 30 - onset) / MIN) * deficit * rng.uniform(0.9, 1.1)
        for i in range(clock.n)
    ]


def pick_author(rng: random.Random) -> str:
    from ..catalog import AUTHORS

    return rng.choice(AUTHORS)
