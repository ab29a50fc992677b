"""The audit report: the battery table, the learner block, and the verdict against thresholds.

A label set fails its audit when any of these holds (thresholds are flags of ``proctor labels
audit``; the defaults are issue 10's bar for a benchmark):

- a single shortcut passes more than ``shortcut`` (15%) of the labels;
- the combination passes more than ``combination`` (20%);
- the learner's culprit top-1 accuracy exceeds ``learner_culprit`` (15%);
- the learner's mechanism accuracy is more than ``learner_mechanism_margin`` (15 points) above
  the majority-class baseline.

The reference agents are reported beside the shortcuts and never judged.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from evaluator_agent.audit.battery import PolicySummary
from evaluator_agent.audit.learner import LearnerReport


@dataclass
class Thresholds:
    shortcut: float = 0.15
    combination: float = 0.20
    learner_culprit: float = 0.15
    learner_mechanism_margin: float = 0.15


@dataclass
class AuditReport:
    labelset: str
    n_labels: int
    sample: int | None
    battery: list[PolicySummary]
    learner: LearnerReport | None
    learner_skipped: str | None
    thresholds: Thresholds
    times: dict[str, float] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures

    def judge(self) -> AuditReport:
        """Fill :attr:`failures` from the figures and the thresholds."""
        t, out = self.thresholds, []
        for s in self.battery:
            limit = {"shortcut": t.shortcut, "combination": t.combination}.get(s.kind)
            if limit is not None and s.pass_rate > limit:
                out.append(f"{s.kind} {s.policy} passes {s.pass_rate:.1%} > {limit:.0%}")
        lr = self.learner
        if lr is not None:
            if lr.culprit_top1 > t.learner_culprit:
                out.append(
                    f"learner culprit top-1 {lr.culprit_top1:.1%} > {t.learner_culprit:.0%}"
                )
            margin = lr.mechanism_accuracy - lr.mechanism_baseline
            if margin > t.learner_mechanism_margin:
                out.append(
                    f"learner mechanism accuracy {lr.mechanism_accuracy:.1%} is {100 * margin:.1f} "
                    f"points above the majority baseline {lr.mechanism_baseline:.1%} "
                    f"(> {100 * t.learner_mechanism_margin:.0f})"
                )
        self.failures = out
        return self

    def as_dict(self) -> dict[str, Any]:
        return {
            "labelset": self.labelset,
            "n_labels": self.n_labels,
            "sample": self.sample,
            "ok": self.ok,
            "failures": self.failures,
            "thresholds": asdict(self.thresholds),
            "battery": [s.as_dict() for s in self.battery],
            "learner": self.learner.as_dict() if self.learner else None,
            "learner_skipped": self.learner_skipped,
            "times": self.times,
        }


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def render(rep: AuditReport) -> str:
    """The battery table (best shortcut and combination marked), the learner block, the verdict."""
    from evaluator_agent.results.text import table

    shortcuts = [s for s in rep.battery if s.kind == "shortcut"]
    best = max(shortcuts, key=lambda s: (s.pass_rate, s.policy), default=None)
    rows = []
    for kind in ("shortcut", "combination", "reference"):
        for s in (x for x in rep.battery if x.kind == kind):
            mark = " <- best shortcut" if s is best else (" <- combination" if kind == "combination" else "")
            rows.append([
                s.policy + (" (reference)" if kind == "reference" else "") + mark,
                f"{_pct(s.pass_rate)} ({_pct(s.ci95[0])}-{_pct(s.ci95[1])})",
                *(_pct(s.tiers.get(t)) for t in ("easy", "medium", "hard")),
                _pct(s.pass_mechanism_rate),
                f"{s.mean_score:.3f}",
            ])  # fmt: skip
    head = f"Leak audit of label set {rep.labelset}: {rep.n_labels} labels"
    if rep.sample:
        head += f" (a deterministic sample of {rep.sample})"
    lines = [head, ""]
    lines.append(
        table(["policy", "pass (95% CI)", "easy", "medium", "hard", "pass, mech. right", "score"], rows)
    )
    lines.append("")
    lr = rep.learner
    if lr is None:
        lines.append(f"leakage learner: skipped ({rep.learner_skipped or 'not run'})")
    else:
        lines += [
            f"leakage learner: trained on {lr.train} ({lr.n_train} worlds), tested on {lr.test} "
            f"({lr.n_test} worlds, {lr.n_test_with_culprit} with a culprit)",
            f"  mechanism accuracy  {_pct(lr.mechanism_accuracy)} ({lr.best_mechanism_model})"
            f"   majority baseline {_pct(lr.mechanism_baseline)} ({lr.mechanism_majority})",
            f"  culprit top-1       {_pct(lr.culprit_top1)} ({lr.best_culprit_model})"
            f"   random service {_pct(lr.culprit_random_top1)}",
            f"  culprit top-3       {_pct(lr.culprit_top3)}"
            f"   random service {_pct(lr.culprit_random_top3)}",
            "  per model: " + "; ".join(
                f"{m.model} mechanism {_pct(m.mechanism_accuracy)}, culprit top-1 "
                f"{_pct(m.culprit_top1)}, top-3 {_pct(m.culprit_top3)}" for m in lr.models
            ),  # fmt: skip
        ]
        if lr.extended:
            lines.append(
                "  with the features an investigation derives (hops below the page, kind, lines "
                f"naming the service; not judged): culprit top-1 {_pct(lr.extended['culprit_top1'])}, "
                f"top-3 {_pct(lr.extended['culprit_top3'])}"
            )
        if lr.top_mechanism_features:
            lines.append("  telling mechanism features: " + ", ".join(f for f, _ in lr.top_mechanism_features[:5]))
        if lr.top_culprit_features:
            lines.append("  telling culprit features: " + ", ".join(f for f, _ in lr.top_culprit_features[:5]))
    lines.append("")
    if rep.times:
        lines.append("wall time: " + ", ".join(f"{k} {v:.1f} s" for k, v in rep.times.items()))
    t = rep.thresholds
    if rep.ok:
        lines.append(
            f"PASS: no shortcut above {t.shortcut:.0%}, combination <= {t.combination:.0%}, "
            f"learner within bounds"
        )
    else:
        lines.append("FAIL: the label set leaks its answers")
        lines += [f"  - {f}" for f in rep.failures]
    return "\n".join(lines)
