"""Analyses over stored runs: paired comparison, empirical difficulty (IRT), reports.

The CLI and the A2A server both call these, so "compare two runs" means the same thing
everywhere.
"""

from __future__ import annotations

import time
from typing import Any

from evaluator_agent.core.labels import LabelError, available_labelsets, load_labelset
from evaluator_agent.results.runs import run_label_meta
from evaluator_agent.results.store import Store


class AnalysisError(ValueError):
    """A run id that is not in the store, or runs that cannot be compared."""


def _run(store: Store, run_id: str) -> dict[str, Any]:
    run = store.find_run(run_id)
    if run is None:
        raise AnalysisError(f"no run {run_id!r} in {store.path}")
    return run


def compare_stored(store: Store, base_id: str, new_id: str, *, margin: float = 0.05) -> dict[str, Any]:
    """Paired comparison of two stored runs on their shared labels (see compare.compare_runs)."""
    from evaluator_agent.results.compare import compare_runs

    base, new = _run(store, base_id), _run(store, new_id)
    meta = run_label_meta(new) or run_label_meta(base)
    out = compare_runs(store.investigations(base["run_id"]), store.investigations(new["run_id"]), meta, margin=margin,
                       base_manifest=base.get("manifest"), new_manifest=new.get("manifest"))  # draws pair by recipe
    if out.get("n_shared", 0) == 0:
        raise AnalysisError(f"runs {base['run_id']} and {new['run_id']} share no labels")
    out["base"] = {"run_id": base["run_id"], "target": base["target_name"], "version": base["target_version"], "labelset": base["labelset"]}
    out["new"] = {"run_id": new["run_id"], "target": new["target_name"], "version": new["target_version"], "labelset": new["labelset"]}
    return out


def _label_tiers() -> dict[str, str]:
    tiers: dict[str, str] = {}
    for name in available_labelsets():
        try:
            for lb in load_labelset(name).labels:
                tiers[lb.id] = lb.difficulty.tier
        except LabelError:
            continue
    return tiers


def fit_difficulty(store: Store) -> dict[str, Any]:
    """Rasch fit over every stored investigation (targets = agent name + version); stores
    each label's difficulty and each target's ability, with standard errors."""
    from evaluator_agent.results.irt import fit_rasch, flag_tier_disagreements

    obs = [(f"{r['target_name']} {r['target_version']}".strip(), r["label_id"], bool(r["passed"]))
           for r in store.all_outcomes()]
    if not obs:
        raise AnalysisError("no stored investigations to fit")
    fit = fit_rasch(obs)
    tiers = _label_tiers()
    known = {k: v for k, v in fit["labels"].items() if k in tiers}
    flags = flag_tier_disagreements(known, {k: tiers[k] for k in known}) if known else []
    flagged = {f["label_id"]: f for f in flags}
    labels = [
        {"label_id": lid, "difficulty": round(v["difficulty"], 4), "se": round(v["se"], 4), "n": v["n"],
         "passed": v["passed"], "tier": tiers.get(lid), "flag": flagged.get(lid, {}).get("direction"),
         "suggested_tier": flagged.get(lid, {}).get("suggested_tier")}
        for lid, v in sorted(fit["labels"].items(), key=lambda kv: -kv[1]["difficulty"])
    ]
    targets = [{"target": t, "ability": round(v["ability"], 4), "se": round(v["se"], 4), "n": v.get("n", 0)}
               for t, v in sorted(fit["targets"].items(), key=lambda kv: -kv[1]["ability"])]
    store.save_difficulty(labels, targets, fitted_at=time.time())
    return {"labels": labels, "targets": targets, "flagged": [x for x in labels if x["flag"]],
            "converged": fit.get("converged"), "observations": len(obs)}


def report_inputs(store: Store, run_id: str, *, policy: str = "full") -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]], dict[str, Any], dict[str, float]]:
    """(result, stats, investigation details with tool calls, label info, IRT difficulties), as the
    disclosure ``policy`` shows them: under ``scores`` (always, for a private label set) no
    explanations, no truth-taxonomy breakdowns and no ground truth in the label info."""
    from evaluator_agent.results.disclosure import FULL, disclose_result, disclose_rows

    run = _run(store, run_id)
    result = disclose_result(store.result(run["run_id"]).as_dict(), policy)
    shown = result["disclosure"]["policy"]
    details = disclose_rows(store.investigations(run["run_id"]), shown)
    for d in details:
        d["calls"] = store.tool_calls(d["id"])
    labels: dict[str, Any] = {}
    try:
        for lb in load_labelset(run["labelset"]).labels:
            gt = lb.ground_truth
            if shown != FULL:
                labels[lb.id] = {"tier": lb.difficulty.tier, "segment": None, "ground_truth": {"withheld": True}}
                continue
            labels[lb.id] = {
                "tier": lb.difficulty.tier, "segment": lb.taxonomy.segment,
                "ground_truth": {"no_fault": gt.no_fault, "mechanism": gt.mechanism,
                                 "root_causes": [{"entity": rc.entity} for rc in gt.root_causes],
                                 "causal_chain": list(gt.causal_chain)},
            }
    except LabelError:
        pass
    difficulty = {d["label_id"]: d["difficulty"] for d in store.get_difficulty()}
    return result, result["summary"], details, labels, difficulty
