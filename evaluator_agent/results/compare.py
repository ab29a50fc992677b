"""Compare two runs on their shared labels (``proctor compare BASE NEW``).

Pairing
    Both runs are reduced to per-label pass rates over *scored* attempts (infra errors,
    ``error_kind`` network/harness, are dropped as in :mod:`evaluator_agent.results.stats`). Only
    labels with at least one scored attempt in both runs are compared (``n_shared``);
    labels scored in only one run are listed in ``only_in_base`` / ``only_in_new`` (a label
    whose every attempt on one side was an infra error counts as missing on that side).

    Runs of instances drawn from a family's recipes (their manifests' ``instances``) have label
    ids of their own draw: two such runs of the same recipe file pair by recipe index instead,
    and so do a run of the stored labels and a run of instances of the same family (the stored
    label of recipe i with the instance of recipe i; the instance run's manifest says which
    stored label was generated from which recipe). The paired label is then named by the new
    run's id (``per_label`` adds ``recipe`` and ``base_label_id``); ``paired_by`` says which.

Effect size
    ``delta`` = mean over shared labels of (new pass rate - base pass rate). ``ci95`` =
    ``delta +- t(G-1) * SE`` with SE the cluster-robust standard error of the paired
    differences, clusters = scenario families (a label without a family is its own
    cluster). With fewer than two clusters there is no variance information and the
    interval is [-1, 1]. When every paired difference is equal (SE = 0) the interval
    degenerates to the point ``[delta, delta]``; it is reported but not used for the verdict
    (``ci_informative`` false), so a handful of labels that all flipped the same way cannot
    make a verdict on their own: McNemar decides then.

McNemar
    Each label's outcome is collapsed to pass/fail by *strict majority* of its scored
    attempts (pass when more than half passed; with one attempt, that attempt). Labels that
    pass in one run and fail in the other are the discordant pairs; ``mcnemar_p`` is the
    exact two-sided binomial test of the pass->fail count among them against 1/2. The same
    collapse defines ``flips.pass_to_fail`` and ``flips.fail_to_pass``.

Verdict (``margin`` = the smallest difference that matters, ``alpha`` = test level)
    * ``regression`` when the CI's upper bound < -margin (informative CI only, see above),
      or when mcnemar_p < alpha and delta <= -margin;
    * ``improvement`` symmetrically (CI lower bound > margin, or mcnemar_p < alpha and
      delta >= margin);
    * ``inconclusive`` otherwise. Identical runs give delta 0, p = 1: inconclusive.

Segments
    The same paired analysis and verdict rule is applied within each ``segment`` of the
    label metadata; ``regressed`` is true when the segment's verdict is ``regression``,
    which can happen while the overall verdict is not. No multiplicity correction is made:
    segment verdicts are a pointer for where to look, the overall verdict is the test.

Accuracies
    ``accuracy`` {ac_at_1, ac_at_3, mechanism_accuracy: {base, new, delta}}: the mean over
    shared labels of each label's share of scored attempts right on that measure (see
    :mod:`evaluator_agent.results.stats`), in each run. Descriptive only; the verdict is on pass rate.

Cost and latency
    For duration_s, turns, tool_calls, invalid_calls, red_herrings_chased and each token /
    cost key reported by both runs: mean per investigation on the shared labels in each run
    (per-label means first, then averaged over labels), their difference and relative
    change.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from evaluator_agent.results.stats import (
    ACCURACY_METRICS,
    TRAJECTORY_FIELDS,
    binom_two_sided_p,
    cluster_of,
    clustered_mean,
    critical_value,
    per_label,
    scored_rows,
)

VERDICTS: tuple[str, ...] = ("regression", "improvement", "inconclusive")


def majority_pass(rate: float) -> bool:
    """A label passes when strictly more than half of its scored attempts passed."""
    return rate > 0.5


def verdict_of(delta: float, ci95: Sequence[float] | None, mcnemar_p: float, *, margin: float, alpha: float) -> str:
    """The verdict rule of the module docstring; ``ci95=None`` when the interval carries no
    information (then McNemar alone decides)."""
    if (ci95 is not None and ci95[1] < -margin) or (mcnemar_p < alpha and delta <= -margin):
        return "regression"
    if (ci95 is not None and ci95[0] > margin) or (mcnemar_p < alpha and delta >= margin):
        return "improvement"
    return "inconclusive"


def paired_analysis(
    base: Mapping[str, Mapping[str, Any]],
    new: Mapping[str, Mapping[str, Any]],
    label_ids: Sequence[str],
    label_meta: Mapping[str, Mapping[str, Any]] | None,
    *,
    margin: float,
    alpha: float,
    confidence: float = 0.95,
) -> dict[str, Any]:
    """delta, ci95, mcnemar_p, flips and verdict on ``label_ids`` (present in both)."""
    diffs = [new[lid]["rate"] - base[lid]["rate"] for lid in label_ids]
    clusters = [cluster_of(lid, label_meta) for lid in label_ids]
    delta, se, g = clustered_mean(diffs, clusters)
    informative = g >= 2 and se > 0.0
    if g >= 2:
        half = critical_value(confidence, g - 1) * se
        ci = [max(-1.0, delta - half), min(1.0, delta + half)]
    else:
        ci = [-1.0, 1.0] if label_ids else [0.0, 0.0]
    p2f = [lid for lid in label_ids if majority_pass(base[lid]["rate"]) and not majority_pass(new[lid]["rate"])]
    f2p = [lid for lid in label_ids if not majority_pass(base[lid]["rate"]) and majority_pass(new[lid]["rate"])]
    p = binom_two_sided_p(len(p2f), len(f2p))
    return {
        "n": len(label_ids),
        "n_clusters": g,
        "base": round(math.fsum(base[lid]["rate"] for lid in label_ids) / len(label_ids), 6) if label_ids else 0.0,
        "new": round(math.fsum(new[lid]["rate"] for lid in label_ids) / len(label_ids), 6) if label_ids else 0.0,
        "delta": round(delta, 6),
        "stderr": round(se, 6),
        "ci95": [round(ci[0], 6), round(ci[1], 6)],
        "mcnemar_p": p,
        "flips": {"pass_to_fail": p2f, "fail_to_pass": f2p},
        "ci_informative": informative,
        "verdict": verdict_of(delta, ci if informative else None, p, margin=margin, alpha=alpha) if label_ids else "inconclusive",
    }


def _per_label_means(rows: Sequence[Mapping[str, Any]], label_ids: set[str]) -> dict[str, dict[str, float]]:
    """Per-label means of trajectory fields and numeric token keys (scored rows only)."""
    groups: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for r in scored_rows(rows):
        if r["label_id"] in label_ids:
            groups[r["label_id"]].append(r)
    out: dict[str, dict[str, float]] = {}
    for lid, rs in groups.items():
        m: dict[str, float] = {f: math.fsum(float(r.get(f) or 0) for r in rs) / len(rs) for f in TRAJECTORY_FIELDS}
        tok_sums: dict[str, float] = defaultdict(float)
        tok_n: dict[str, int] = defaultdict(int)
        for r in rs:
            tok = r.get("tokens")
            if isinstance(tok, Mapping):
                for k, v in tok.items():
                    if isinstance(v, (int, float)) and not isinstance(v, bool):
                        tok_sums[k] += v
                        tok_n[k] += 1
        for k in tok_sums:
            m[f"tokens.{k}"] = tok_sums[k] / tok_n[k]
        out[lid] = m
    return out


def cost_latency_deltas(
    base_rows: Sequence[Mapping[str, Any]], new_rows: Sequence[Mapping[str, Any]], shared: Sequence[str]
) -> dict[str, Any]:
    """{metric: {base, new, delta, rel}} over the shared labels (see module docstring)."""
    ids = set(shared)
    b = _per_label_means(base_rows, ids)
    n = _per_label_means(new_rows, ids)
    metrics = list(TRAJECTORY_FIELDS)
    tok_keys = sorted(
        {k for m in b.values() for k in m if k.startswith("tokens.")} & {k for m in n.values() for k in m if k.startswith("tokens.")}
    )
    out: dict[str, Any] = {}
    for metric in metrics + tok_keys:
        lids = [lid for lid in shared if metric in b.get(lid, {}) and metric in n.get(lid, {})]
        if not lids:
            continue
        bm = math.fsum(b[lid][metric] for lid in lids) / len(lids)
        nm = math.fsum(n[lid][metric] for lid in lids) / len(lids)
        out[metric] = {
            "base": round(bm, 6),
            "new": round(nm, 6),
            "delta": round(nm - bm, 6),
            "rel": round((nm - bm) / bm, 6) if bm else None,
            "n_labels": len(lids),
        }
    return out


def _recipes_of(manifest: Mapping[str, Any] | None) -> tuple[str | None, dict[str, Any] | None]:
    """(label set name, ``instances``) of a run manifest."""
    m = manifest or {}
    return (m.get("labelset") or {}).get("name"), m.get("instances") or None


def recipe_pairing(base_manifest: Mapping[str, Any] | None,
                   new_manifest: Mapping[str, Any] | None) -> tuple[dict[str, int], dict[str, int]] | None:
    """(base label id -> recipe index, new label id -> recipe index) when the two runs pair by
    recipe (module docstring), else None."""
    (bset, bi), (nset, ni) = _recipes_of(base_manifest), _recipes_of(new_manifest)
    if bset is None or bset != nset or (bi is None and ni is None):
        return None

    def items(inst: Mapping[str, Any]) -> dict[str, int]:
        return {lid: int(v["recipe"]) for lid, v in (inst.get("items") or {}).items()}

    if bi is not None and ni is not None:
        if (bi.get("recipes") or {}).get("hash") != (ni.get("recipes") or {}).get("hash"):
            return None  # other recipes: recipe i is not the same scenario on both sides
        return items(bi), items(ni)
    inst = bi if bi is not None else ni
    stored = {lid: int(i) for lid, i in (inst.get("stored") or {}).items()}
    if not stored:
        return None
    return (items(bi), stored) if bi is not None else (stored, items(ni))


def _rekeyed(rows: Sequence[Mapping[str, Any]], key: Mapping[str, str]) -> list[Mapping[str, Any]]:
    return [dict(r, label_id=key[r["label_id"]]) if r["label_id"] in key else r for r in rows]


def compare_runs(
    base_rows: Sequence[Mapping[str, Any]],
    new_rows: Sequence[Mapping[str, Any]],
    label_meta: Mapping[str, Mapping[str, Any]] | None = None,
    *,
    margin: float = 0.05,
    alpha: float = 0.05,
    confidence: float = 0.95,
    base_manifest: Mapping[str, Any] | None = None,
    new_manifest: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Paired comparison of two runs (rules in the module docstring). JSON-serialisable.
    ``base_manifest``/``new_manifest``: the runs' manifests, for runs of instances (paired by recipe).

    Keys: verdict, delta, stderr, ci95, mcnemar_p, flips {pass_to_fail, fail_to_pass}, accuracy,
    per_label [{label_id, base, new, diff, base_passed, new_passed}], segments {segment:
    {n, base, new, delta, ci95, mcnemar_p, verdict, regressed}}, regressed_segments,
    cost_latency, n_shared, only_in_base, only_in_new, errors {base, new}, margin, alpha, paired_by.
    """
    pairing = recipe_pairing(base_manifest, new_manifest)
    base_of: dict[str, str] = {}  # new label id -> the base label of its recipe
    if pairing is not None:
        base_recipe, new_recipe = pairing
        new_by_recipe = {i: lid for lid, i in new_recipe.items()}
        base_of = {new_by_recipe[i]: lid for lid, i in base_recipe.items() if i in new_by_recipe}
        base_rows = _rekeyed(base_rows, {b: n for n, b in base_of.items()})
        if label_meta:  # the new run's labels' metadata, or else the base's
            label_meta = {**{n: label_meta[b] for n, b in base_of.items() if b in label_meta}, **label_meta}
    base = per_label(base_rows)
    new = per_label(new_rows)
    shared = sorted(set(base) & set(new))
    overall = paired_analysis(base, new, shared, label_meta, margin=margin, alpha=alpha, confidence=confidence)

    seg_groups: dict[str, list[str]] = defaultdict(list)
    for lid in shared:
        seg = ((label_meta or {}).get(lid) or {}).get("segment") or "unknown"
        seg_groups[str(seg)].append(lid)
    segments: dict[str, Any] = {}
    for seg in sorted(seg_groups):
        a = paired_analysis(base, new, seg_groups[seg], label_meta, margin=margin, alpha=alpha, confidence=confidence)
        segments[seg] = {
            "n": a["n"],
            "base": a["base"],
            "new": a["new"],
            "delta": a["delta"],
            "ci95": a["ci95"],
            "n_clusters": a["n_clusters"],
            "mcnemar_p": a["mcnemar_p"],
            "pass_to_fail": a["flips"]["pass_to_fail"],
            "fail_to_pass": a["flips"]["fail_to_pass"],
            "verdict": a["verdict"],
            "regressed": a["verdict"] == "regression",
        }

    per = [
        {
            "label_id": lid,
            "base": round(base[lid]["rate"], 6),
            "new": round(new[lid]["rate"], 6),
            "diff": round(new[lid]["rate"] - base[lid]["rate"], 6),
            "base_passed": majority_pass(base[lid]["rate"]),
            "new_passed": majority_pass(new[lid]["rate"]),
            **({"base_label_id": base_of[lid], "recipe": new_recipe[lid]} if lid in base_of else {}),
        }
        for lid in shared
    ]

    def _acc(side: Mapping[str, Mapping[str, Any]], m: str) -> float:
        return math.fsum(side[lid]["accuracy"][m] for lid in shared) / len(shared)

    accuracy = {
        m: {"base": round(_acc(base, m), 6), "new": round(_acc(new, m), 6),
            "delta": round(_acc(new, m) - _acc(base, m), 6)}
        for m in ACCURACY_METRICS
    } if shared else {}

    def _errors(rows: Sequence[Mapping[str, Any]]) -> int:
        return len(rows) - len(scored_rows(rows))

    return {
        "verdict": overall["verdict"],
        "delta": overall["delta"],
        "stderr": overall["stderr"],
        "ci95": overall["ci95"],
        "mcnemar_p": overall["mcnemar_p"],
        "flips": overall["flips"],
        "base_pass_at_1": overall["base"],
        "new_pass_at_1": overall["new"],
        "accuracy": accuracy,
        "n_shared": len(shared),
        "n_clusters": overall["n_clusters"],
        "ci_informative": overall["ci_informative"],
        "only_in_base": sorted(base_of.get(x, x) for x in set(base) - set(new)),
        "only_in_new": sorted(set(new) - set(base)),
        "per_label": per,
        "segments": segments,
        "regressed_segments": [s for s, v in segments.items() if v["regressed"]],
        "cost_latency": cost_latency_deltas(base_rows, new_rows, shared),
        "errors": {"base": _errors(base_rows), "new": _errors(new_rows)},
        "margin": margin,
        "alpha": alpha,
        "paired_by": "recipe" if pairing is not None else "label",
        "method": {
            "pairing": ("per-recipe pass rate over scored attempts, recipes of one family run on both sides"
                        if pairing is not None else "per-label pass rate over scored attempts, shared labels"),
            "ci95": "cluster-robust SE of paired differences (family clusters), t(G-1)",
            "mcnemar": "exact two-sided binomial on discordant labels, attempts collapsed by strict majority",
        },
    }
