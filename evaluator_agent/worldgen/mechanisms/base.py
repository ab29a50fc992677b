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

from evaluator_agent.worldgen.baseline import bump
from evaluator_agent.worldgen.recipe import Recipe
from evaluator_agent.worldgen.telemetry import MIN, World, add, iso, shift
from evaluator_agent.worldgen.topology import CHAIN_ROLES, Topo


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
    def story(self) -> str | None:
        """The public postmortem this incident recreates (``postmortems.STORIES``), if any."""
        return self.recipe.postmortem

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
    hop_range = (20, 330)  # seconds between a service failing and its caller failing
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
        plan.symptom_start = plan.fired_at - monitor_delay(rng)
        plan.onset = plan.symptom_start - sum(plan.hop_delays)

    def apply(self, w: World, plan: Plan, rng: random.Random) -> None:
        raise NotImplementedError


def trigger_lead(plan: Plan, rng: random.Random, lo: int, hi: int) -> int:
    """Seconds from the triggering change to the first failure.

    Often minutes (``lo``..``hi``), but a change is as often latent: the code path it broke is
    hit at the next traffic peak, the job that reads the new data runs later, the lowered limit
    only bites under load. Then the change is 12 to 55 minutes old when things start failing,
    and other changes have happened since. The recipe's ``time_offset_s`` is a floor.
    """
    lead = rng.randint(lo, hi) if rng.random() < 0.45 else rng.randint(12 * MIN, 55 * MIN)
    return max(plan.recipe.time_offset_s, lead)


def monitor_delay(rng: random.Random) -> int:
    """Seconds from the symptom's start to the page: a monitor's evaluation window, its
    "for N minutes" condition and a slow ramp make it anything from two to twenty minutes."""
    if rng.random() < 0.55:
        return rng.randint(120, 420)
    return rng.randint(420, 1200)


REGISTRY: dict[str, Mechanism] = {}


def register(cls: type[Mechanism]) -> type[Mechanism]:
    REGISTRY[cls.name] = cls()
    return cls


def propagate(
    w: World, plan: Plan, rng: random.Random, err: list[float], lat: list[float], style: str
) -> None:
    """Carry the culprit's failure up the chain: each caller later than its callee.

    Callers see only what a caller can see. The direct caller of the culprit reports the
    failure as its client library does (``style``: an x509 error, a DNS lookup failure, the
    database's own error text ...); every caller above it sees its own direct callee fail with
    5xx answers or timeouts, naming that callee, never the culprit's signature. How much of a
    caller's traffic fails depends on how much of it goes through the failing callee, and
    fan-out or retries can make a caller's error ratio larger than its callee's.

    Callers off the chain of any chain member feel a fraction of it one minute later (blast
    radius). ``err`` and ``lat`` are the culprit's visible error ratio and added latency.
    """
    chain = plan.chain
    cum, f_err = 0, 1.0
    onset_i = w.clock.idx(plan.onset or plan.fired_at)
    effect: dict[str, tuple[list[float], list[float]]] = {chain[0]: (err, lat)}
    slow = any(x > 0 for x in lat)
    for k in range(1, len(chain)):
        child, svc = chain[k - 1], chain[k]
        cum += plan.hop_delays[k - 1]
        steps = round(cum / MIN)
        share = rng.uniform(0.3, 1.0)
        if rng.random() < 0.3:  # fan-out or client retries amplify what the caller sees
            share *= rng.uniform(1.2, 2.2)
        f_err *= share
        lat_share = min(1.0, share)
        p = w.p[svc]
        e, la = shift(err, steps), shift(lat, steps)
        add(p.err_prop, [min(1.0, x * f_err) for x in e])
        add(p.lat_add, la, lat_share)
        # a failing callee is also a slow one (retries, connection timeouts), and a slow callee
        # times some requests out: a caller sees both, whatever the cause
        retry_s = rng.uniform(0.05, 0.4)
        add(p.lat_add, [x * f_err * retry_s for x in e])
        add(p.err_prop, [min(0.3, x * lat_share * rng.uniform(0.03, 0.12)) for x in la])
        hop_style = style if k == 1 else ("timeout" if slow and rng.random() < 0.6 else "5xx")
        p.upstream.append((onset_i + steps, child, hop_style))
        effect[svc] = ([min(1.0, x * f_err) for x in e], [x * lat_share for x in la])
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
    rollout_s: float,
    message: str | None = None,
) -> str:
    """Deploy a new version of ``svc`` as the incident's triggering change (event, aliases, evidence).

    The commit message comes from the vocabulary every deploy of the world uses
    (``commits.py``) unless the change has a wording of its own (a migration's file name).
    """
    from evaluator_agent.worldgen.commits import commit_message

    p = w.p[svc]
    old, new = p.version, bump(p.version, rng)
    msg = message or commit_message(rng, svc)
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
    from evaluator_agent.worldgen.catalog import AUTHORS

    return rng.choice(AUTHORS)
