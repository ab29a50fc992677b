"""The shortcut battery: non-reasoning policies and the reference agents over a label set.

Every policy runs through :func:`evaluator_agent.worldgen.calibrate.calibrate`, i.e. through
:func:`~evaluator_agent.engine.investigation.investigate` with an in-process target: the briefing,
tools, limits and scorer an A2A target gets. :func:`summarize` turns the rows into one line
per policy: pass rate with a 95% interval clustered by scenario family (as every run's
statistics are), pass rate per tier, the pass rate with the mechanism right, and the mean
score.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from evaluator_agent.engine.local import Roster
from evaluator_agent.results.stats import clustered_proportion
from evaluator_agent.worldgen.calibrate import calibrate

TIERS = ("easy", "medium", "hard")


@dataclass
class PolicySummary:
    """One policy's figures over the label set."""

    policy: str
    kind: str
    n: int
    passed: int
    pass_rate: float
    ci95: list[float]
    tiers: dict[str, float | None]
    pass_mechanism_rate: float  # passed with the mechanism right
    mechanism_rate: float  # mechanism right, passed or not
    mean_score: float
    errors: int = 0
    per_segment: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def run_battery(
    set_name: str,
    roster: Roster,
    policies: Sequence[str] | None = None,
    *,
    sample: int | None = None,
    jobs: int = 2,
    noise: str = "on",
    root: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[dict[str, Any]]:
    """Calibration rows of every policy (default: the reference agents and every shortcut)."""
    chosen = tuple(policies) if policies else (*roster.references, *roster.shortcuts)
    return calibrate(set_name, chosen, roster, noise, jobs, sample, root, progress)


def summarize(rows: list[dict[str, Any]], roster: Roster) -> list[PolicySummary]:
    """One :class:`PolicySummary` per policy, in the rows' order. Infra errors (there should
    be none in-process) are left out of the rates, as in every run's statistics."""
    order = list(dict.fromkeys(r["policy"] for r in rows))
    out = []
    for p in order:
        mine = [r for r in rows if r["policy"] == p]
        scored = [r for r in mine if not r.get("error_kind")]
        values = [1.0 if r["passed"] else 0.0 for r in scored]
        ci = clustered_proportion(values, [r["family"] for r in scored], len(scored))
        tiers: dict[str, float | None] = {}
        for t in TIERS:
            tv = [r["passed"] for r in scored if r["tier"] == t]
            tiers[t] = round(sum(tv) / len(tv), 4) if tv else None
        segs: dict[str, list[bool]] = {}
        for r in scored:
            segs.setdefault(r["segment"], []).append(r["passed"])
        n = max(1, len(scored))
        out.append(
            PolicySummary(
                policy=p,
                kind=roster.kind_of(p),
                n=len(scored),
                passed=sum(r["passed"] for r in scored),
                pass_rate=round(sum(values) / n, 4),
                ci95=[round(x, 4) for x in ci["ci95"]],
                tiers=tiers,
                pass_mechanism_rate=round(sum(r["passed_mechanism"] for r in scored) / n, 4),
                mechanism_rate=round(sum(r["mechanism_ok"] for r in scored) / n, 4),
                mean_score=round(sum(r["score"] for r in scored) / n, 4),
                errors=len(mine) - len(scored),
                per_segment={s: round(sum(v) / len(v), 4) for s, v in sorted(segs.items())},
            )
        )
    return out
