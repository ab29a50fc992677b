"""The leak audit of a label set: the shortcut battery and the leakage learner.

``proctor labels audit SET`` runs :func:`run_audit`: every non-reasoning policy of
:class:`~evaluator_agent.engine.local.Roster` (the shortcuts and the reference agents, handed in by the entry point) through the real investigation loop and
scorer (:mod:`.battery`), then a classifier trained on other generated worlds that predicts
the mechanism and the culprit from features a target can see (:mod:`.learner`), and judges the
figures against thresholds (:mod:`.report`). A label set on which a trick or the learner does
well leaks its answers; its pass rates do not measure investigation.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from evaluator_agent.audit.battery import PolicySummary, run_battery, summarize
from evaluator_agent.audit.report import AuditReport, Thresholds, render
from evaluator_agent.engine.local import Roster

__all__ = ["AuditReport", "PolicySummary", "Thresholds", "render", "run_audit"]


def run_audit(
    set_name: str,
    roster: Roster,
    *,
    sample: int | None = None,
    jobs: int = 2,
    policies: Sequence[str] | None = None,
    learner: bool = True,
    train: str | None = None,
    train_size: int | None = None,
    thresholds: Thresholds | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> AuditReport:
    """Battery and learner on ``set_name`` (or a deterministic ``sample`` of its labels).

    The learner trains on ``train`` (a label set) or on fresh worlds from the set's recipe
    file: all of its recipes, or with a ``sample`` twice as many as sampled (at least 20),
    unless ``train_size`` says otherwise. Without scikit-learn the learner is skipped and the
    report says why.
    """
    rows_t0 = time.monotonic()
    rows = run_battery(set_name, roster, policies, sample=sample, jobs=jobs, progress=progress)
    times = {"battery_s": round(time.monotonic() - rows_t0, 1)}
    label_ids = list(dict.fromkeys(r["label"] for r in rows))
    report = AuditReport(
        labelset=set_name,
        n_labels=len(label_ids),
        sample=sample,
        battery=summarize(rows, roster),
        learner=None,
        learner_skipped=None if learner else "--no-learner",
        thresholds=thresholds or Thresholds(),
        times=times,
    )
    if learner:
        from evaluator_agent.audit.learner import LearnerUnavailable, run_learner

        size = train_size if train_size is not None else (max(20, 2 * sample) if sample else None)
        try:
            lr, ltimes = run_learner(
                set_name, train=train, label_ids=label_ids if sample else None, jobs=jobs,
                train_size=size,
            )  # fmt: skip
            report.learner = lr
            report.times.update(ltimes)
        except (LearnerUnavailable, FileNotFoundError, RuntimeError) as e:
            report.learner_skipped = str(e)
    report.times["total_s"] = round(time.monotonic() - rows_t0, 1)
    return report.judge()
