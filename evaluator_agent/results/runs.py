"""What is read from a stored run besides its rows: the label metadata it froze, its summary,
and how its labels' outcomes changed against the target's previous run."""

from __future__ import annotations

import hashlib
from typing import Any

from evaluator_agent.core.labels import LabelError, load_labelset
from evaluator_agent.core.records import RunStatus
from evaluator_agent.results.compare import majority_pass
from evaluator_agent.results.stats import label_meta_of, per_label, run_statistics


def frozen_label_meta(labels: list[Any], private: bool) -> dict[str, dict[str, Any]]:
    """What a run keeps of its labels in its manifest: tier and taxonomy (stats.label_meta_of).
    For a private label set only what the target is shown anyway (tier, monitor type) and an
    opaque family (so intervals still cluster recreations of one incident): its truth stays in
    the label files."""
    meta = label_meta_of(labels)
    if not private:
        return meta
    return {lid: {"tier": m["tier"], "monitor_type": m["monitor_type"],
                  "family": hashlib.sha256(str(m["family"]).encode()).hexdigest()[:12] if m.get("family") else None}
            for lid, m in meta.items()}


def run_label_meta(run: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The label metadata of a stored run: as frozen in its manifest at its start; for runs made
    before manifests kept it, read from the label set as it is now."""
    frozen = (run.get("manifest") or {}).get("label_meta")
    return frozen if isinstance(frozen, dict) else labelset_meta(run["labelset"])


def labelset_meta(name: str) -> dict[str, dict[str, Any]]:
    """Taxonomy and tier of each label of a set, for breakdowns; empty when the set is gone."""
    try:
        return label_meta_of(load_labelset(name).labels)
    except LabelError:
        return {}


def summarize(rows: list[dict[str, Any]], label_meta: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """Statistics of stored investigations (see stats.run_statistics). Infra errors (network,
    harness) are counted apart and left out of pass rates: they say nothing about the agent."""
    return run_statistics(rows, label_meta or {})


def stored_or_live_summary(run: dict[str, Any], rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The summary stored when the run ended; while it runs (or for a run that ended without
    one), computed from its rows and its frozen label metadata."""
    if run["status"] != RunStatus.RUNNING and run.get("summary"):
        return run["summary"]
    return summarize(rows, run_label_meta(run))


def label_outcomes(rows: list[dict[str, Any]]) -> dict[str, bool]:
    """Per label: passed by majority of its scored attempts (the comparison's own rule)."""
    return {lid: majority_pass(v["rate"]) for lid, v in per_label(rows).items()}


def changes_vs_previous(store: Any, run_id: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Labels newly failing and newly passing against the same target's previous run."""
    prev = store.previous_run(run_id)
    if prev is None:
        return {"previous_run": None, "newly_failing": [], "newly_passing": []}
    now, before = label_outcomes(rows), label_outcomes(store.investigations(prev["run_id"]))
    shared = sorted(set(now) & set(before))
    return {
        "previous_run": prev["run_id"],
        "newly_failing": [k for k in shared if before[k] and not now[k]],
        "newly_passing": [k for k in shared if now[k] and not before[k]],
    }
