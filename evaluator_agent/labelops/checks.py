"""Lint and the leak audit of one candidate, run by the validator on its grounded draft.

- :func:`lint_candidate`: every per-label check of ``proctor labels lint`` (schema and
  taxonomy, entities, trigger and times, key evidence that must return its text, red herrings,
  the briefing's leaks of the mechanism or a root-cause name, difficulty factors), on the draft
  as the label it would become, against its world. The set-level census (values that only
  culprits carry across a set's worlds) needs a set: ``proctor labels lint`` runs it after
  promotion.
- :func:`shortcut_audit`: the leak audit's shortcut battery on this one label: every
  non-reasoning policy of the roster (``lookup``, ``last_change``, ``metric_jump``, ``loudest``,
  ...) investigates it through the real loop; a policy that passes is a leak of this label (a
  lazy agent would pass it without reasoning). The set-level learner needs a set: ``proctor
  labels audit``.

Errors of lint keep a candidate out of ``validated`` (accepting it would put a failing label
into a set); a passing shortcut is a warning the reviewer sees (the label may be true but
too easy to measure skill).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from evaluator_agent.core.labels import Label

__all__ = ["CheckFinding", "lint_candidate", "shortcut_audit"]


@dataclass(frozen=True)
class CheckFinding:
    kind: str  # lint | leak
    check: str
    message: str
    severity: str  # error | warning

    def as_dict(self) -> dict[str, str]:
        return asdict(self)

    def line(self) -> str:
        return f"{self.kind} {self.check}: {self.message}"


def lint_candidate(label: Label, snapshots: Path) -> list[CheckFinding]:
    """The per-label checks of lint on one label (not yet in any set)."""
    from evaluator_agent.lint.checks import Linter
    from evaluator_agent.lint.label import LabelCheck

    linter = Linter(Path("(candidate)"), snapshots)
    try:
        LabelCheck(linter, label, f"{label.id}.json").run()
    except Exception as e:  # noqa: BLE001 - a lint bug must not lose the validation
        return [CheckFinding("lint", "lint.internal", f"lint failed on this label: {type(e).__name__}: {e}"[:300], "error")]
    return [CheckFinding("lint", p.check, p.message, p.severity) for p in linter.problems]


def shortcut_audit(label: Label, snapshots: Path, roster: Any, worlds: Any = None) -> list[CheckFinding]:
    """The shortcut policies of ``roster`` (an ``engine.local.Roster``) on one label: one
    warning per policy that passes it."""
    from evaluator_agent.core.protocol import Budget
    from evaluator_agent.engine.investigation import investigate
    from evaluator_agent.engine.worlds import WorldCache
    from evaluator_agent.labelops.investigator import run_async

    cache = worlds or WorldCache(snapshots, capacity=2)
    names = list(dict.fromkeys([*roster.shortcuts, *([roster.combination] if roster.combination else [])]))

    async def run_all() -> list[tuple[str, Any]]:
        out = []
        for name in names:
            out.append((name, await investigate(label, 1, roster.make_target(name), cache, Budget())))
        return out

    found = []
    for name, res in run_async(run_all):
        if res.error_kind == "harness":
            found.append(CheckFinding("leak", "leak.shortcut_error", f"{name} could not run: {res.error}"[:300], "warning"))
        elif res.passed:
            found.append(CheckFinding("leak", "leak.shortcut", f"the shortcut policy {name} passes this label "
                                      f"(score {res.score:.2f}) without reasoning", "warning"))
    return found
