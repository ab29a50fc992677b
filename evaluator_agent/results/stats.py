"""Statistics of one run: what a result means (DESIGN.md section 7).

Pure Python (math, statistics); no numpy/scipy.

Unit of analysis
    The *label* (one incident scenario). Attempts of one label are averaged first, so a
    label run five times weighs as much as a label run once. Labels that share a scenario
    ``family`` are not independent (they are variations of one incident), so standard
    errors are cluster-robust with the family as the cluster; a label without a family is
    its own cluster.

Infra errors
    Investigations whose ``error_kind`` is ``"network"`` or ``"harness"`` say nothing about
    the agent: they are removed before any agent statistic and counted apart
    (``errors``, ``errors_by_kind``). A label whose every attempt was an infra error is
    left out of the label-level statistics (``labels_without_scored_attempt``). Only the
    proctor's own faults and a target unreachable before its first reply of the run get an
    infra ``error_kind`` (see :mod:`evaluator_agent.engine.investigation`); whatever else the target
    causes is a failure and stays in the pass rate.

Degraded runs
    A run whose share of infra errors (``infra_error_rate`` = errors / n) exceeds
    ``degraded_threshold`` (``PROCTOR_DEGRADED_INFRA_RATE``, default 0.05) is ``degraded``:
    its pass rate rests on a subset the harness or the network chose, not on the label set,
    so it must not be read as the target's result. ``proctor run --fail-on ...`` exits
    non-zero on it.

pass@1 interval
    The mean over labels of each label's pass rate, with a cluster-robust standard error
    (clusters = families) and a Wilson/t interval on the effective sample size: see
    :mod:`evaluator_agent.results.estimators`, which holds the estimators and intervals
    (re-exported here).

Accuracies (beside the pass rate)
    ``ac_at_1`` / ``ac_at_3``: the share of scored investigations whose top 1 / top 3
    root-cause candidates include a root cause of the label (after alias normalisation).
    ``mechanism_accuracy``: the share whose chosen candidate (the first correct one, else the
    top one) names exactly the ground-truth mechanism (a near-synonym is wrong here). On a
    no-fault control each is correct iff the diagnosis declares no fault; a "no fault"
    answer on a fault label and a missing diagnosis are wrong on all three. Infra errors are
    excluded as for the pass rate. Each comes as a share of scored investigations (like
    ``pass_rate``) and as a label-level estimate with the pass@1 interval method (clustered
    by family). Per investigation they are read from the scorer's
    ``score_details["accuracy"]``; rows scored before it existed fall back to what they
    carry (``ac_at_k`` in the details, a full root-cause or mechanism sub-score), so stored
    runs summarise without a migration.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from evaluator_agent.core.envvars import env_float
from evaluator_agent.core.vocab import INFRA_ERROR_KINDS
from evaluator_agent.results.estimators import (
    betainc,
    binom_two_sided_p,
    clustered_mean,
    clustered_proportion,
    critical_value,
    pass_at_k,
    pass_hat_k,
    proportion_ci,
    t_ppf,
)

__all__ = [
    "ACCURACY_METRICS",
    "BREAKDOWN_DIMENSIONS",
    "DEGRADED_INFRA_RATE",
    "DEGRADED_INFRA_RATE_ENV",
    "TRAJECTORY_FIELDS",
    "betainc",
    "binom_two_sided_p",
    "cluster_of",
    "clustered_mean",
    "clustered_proportion",
    "critical_value",
    "degraded_threshold",
    "describe",
    "dimension_values",
    "investigation_accuracy",
    "is_degraded",
    "is_infra_error",
    "label_meta_of",
    "pass_at_k",
    "pass_hat_k",
    "per_label",
    "proportion_ci",
    "run_statistics",
    "scored_rows",
    "t_ppf",
    "token_totals",
    "trajectory_stats",
]

TRAJECTORY_FIELDS: tuple[str, ...] = ("turns", "tool_calls", "invalid_calls", "red_herrings_chased", "duration_s")
BREAKDOWN_DIMENSIONS: tuple[str, ...] = ("tier", "segment", "technology", "problem_category", "monitor_type", "mechanism")
# Accuracies reported beside the pass rate (module docstring), keyed as in the summary.
ACCURACY_METRICS: tuple[str, ...] = ("ac_at_1", "ac_at_3", "mechanism_accuracy")

# A run with a larger share of infra errors than this is ``degraded`` (module docstring).
DEGRADED_INFRA_RATE: float = 0.05
DEGRADED_INFRA_RATE_ENV = "PROCTOR_DEGRADED_INFRA_RATE"


def degraded_threshold() -> float:
    """The infra-error share above which a run is degraded: ``$PROCTOR_DEGRADED_INFRA_RATE``
    (a fraction, e.g. 0.05), else :data:`DEGRADED_INFRA_RATE`; clamped to [0, 1]."""
    return min(1.0, env_float(DEGRADED_INFRA_RATE_ENV, DEGRADED_INFRA_RATE))


def is_degraded(errors: int, n: int, threshold: float | None = None) -> bool:
    """More than ``threshold`` (default :func:`degraded_threshold`) of ``n`` investigations were infra errors."""
    if n <= 0:
        return False
    return errors / n > (degraded_threshold() if threshold is None else threshold)


# --------------------------------------------------------------------------- rows -> labels


def is_infra_error(row: Mapping[str, Any]) -> bool:
    return row.get("error_kind") in INFRA_ERROR_KINDS


def scored_rows(rows: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [r for r in rows if not is_infra_error(r)]


def investigation_accuracy(row: Mapping[str, Any]) -> dict[str, bool]:
    """{ac_at_1, ac_at_3, mechanism_accuracy} of one stored investigation (module docstring).

    Read from ``score_details["accuracy"]`` when the scorer wrote it; else derived from what
    older rows carry: AC@k from ``score_details["ac_at_k"]`` (fault labels with a candidate),
    otherwise a full root-cause sub-score (a correct no-fault answer); mechanism from a full
    mechanism sub-score. A row with neither (no diagnosis) is wrong on all three.
    """
    details = row.get("score_details")
    details = details if isinstance(details, Mapping) else {}
    acc = details.get("accuracy")
    if isinstance(acc, Mapping):
        return {
            "ac_at_1": bool(acc.get("ac_at_1")),
            "ac_at_3": bool(acc.get("ac_at_3")),
            "mechanism_accuracy": bool(acc.get("mechanism")),
        }
    sub = row.get("subscores")
    sub = sub if isinstance(sub, Mapping) else {}
    ac = details.get("ac_at_k")
    out: dict[str, bool] = {}
    for k in ("1", "3"):
        if isinstance(ac, Mapping) and k in ac:
            out[f"ac_at_{k}"] = float(ac[k] or 0.0) > 0.0
        else:
            out[f"ac_at_{k}"] = float(sub.get("root_cause") or 0.0) >= 1.0
    out["mechanism_accuracy"] = float(sub.get("mechanism") or 0.0) >= 1.0
    return out


def per_label(rows: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Scored attempts grouped by label: {label_id: {n, c, rate, mean_score, outcomes, accuracy}}.

    ``accuracy`` holds the label's share of attempts right on each of ``ACCURACY_METRICS``.

    Infra-error attempts are dropped; labels with no scored attempt do not appear.
    """
    groups: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for r in scored_rows(rows):
        groups[r["label_id"]].append(r)
    out: dict[str, dict[str, Any]] = {}
    for lid in sorted(groups):
        rs = sorted(groups[lid], key=lambda r: r.get("attempt") or 0)
        outcomes = [bool(r["passed"]) for r in rs]
        c = sum(outcomes)
        out[lid] = {
            "n": len(rs),
            "c": c,
            "rate": c / len(rs),
            "mean_score": math.fsum(float(r.get("score") or 0.0) for r in rs) / len(rs),
            "outcomes": outcomes,
            "accuracy": {
                m: math.fsum(float(investigation_accuracy(r)[m]) for r in rs) / len(rs)
                for m in ACCURACY_METRICS
            },
        }
    return out


def cluster_of(label_id: str, label_meta: Mapping[str, Mapping[str, Any]] | None) -> str:
    """The cluster of a label: its family when it has one, else the label itself."""
    meta = (label_meta or {}).get(label_id) or {}
    fam = meta.get("family")
    return f"family:{fam}" if fam else f"label:{label_id}"


def dimension_values(label_id: str, dim: str, label_meta: Mapping[str, Mapping[str, Any]] | None) -> list[str]:
    """The values of one breakdown dimension for a label (technology may have several)."""
    meta = (label_meta or {}).get(label_id) or {}
    if dim == "technology":
        techs = meta.get("technologies") or []
        return sorted({str(t) for t in techs}) or ["unknown"]
    v = meta.get(dim)
    return [str(v) if v not in (None, "") else "unknown"]


def _quantile(xs: Sequence[float], q: float) -> float:
    """Linear-interpolation quantile (numpy's default) of a non-empty sequence."""
    s = sorted(xs)
    if len(s) == 1:
        return float(s[0])
    pos = q * (len(s) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(s) - 1)
    return float(s[lo] + (s[hi] - s[lo]) * (pos - lo))


def describe(xs: Sequence[float]) -> dict[str, float]:
    """mean, median, p95, max and total of a sequence (zeros when empty)."""
    if not xs:
        return {"mean": 0.0, "median": 0.0, "p95": 0.0, "max": 0.0, "total": 0.0}
    return {
        "mean": round(math.fsum(xs) / len(xs), 4),
        "median": round(_quantile(xs, 0.5), 4),
        "p95": round(_quantile(xs, 0.95), 4),
        "max": round(float(max(xs)), 4),
        "total": round(math.fsum(xs), 4),
    }


def token_totals(rows: Iterable[Mapping[str, Any]]) -> dict[str, Any] | None:
    """Sums of every numeric key of ``tokens`` (input, output, total, cost_usd, ...) over the
    investigations that reported them, with ``reported`` = how many did; None if none did."""
    totals: dict[str, float] = defaultdict(float)
    reported = 0
    for r in rows:
        tok = r.get("tokens")
        if not isinstance(tok, Mapping) or not tok:
            continue
        reported += 1
        for k, v in tok.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                totals[k] += v
    if not reported:
        return None
    out: dict[str, Any] = {k: (round(v, 6) if k.startswith("cost") else round(v, 3)) for k, v in sorted(totals.items())}
    out["reported"] = reported
    out["mean_per_investigation"] = {k: round(v / reported, 6) for k, v in sorted(totals.items())}
    return out


def calls_by_surface(rows: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """Tool calls of all investigations by the surface they came in on (a2a, mcp, rest)."""
    out: dict[str, int] = {}
    for r in rows:
        by = r.get("calls_by_surface")
        if isinstance(by, Mapping) and by:
            for k, v in by.items():
                out[k] = out.get(k, 0) + int(v)
        elif r.get("tool_calls"):  # rows older than surfaces: every call was in-band
            out["a2a"] = out.get("a2a", 0) + int(r["tool_calls"])
    return dict(sorted(out.items()))


def trajectory_stats(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Aggregates of the investigation trajectories: mean/median/p95/max/total of turns,
    tool calls, invalid calls, red herrings chased and duration; token and cost totals
    when the target reported them."""
    out: dict[str, Any] = {"n": len(rows)}
    for f in TRAJECTORY_FIELDS:
        out[f] = describe([float(r.get(f) or 0) for r in rows])
    tok = token_totals(rows)
    if tok is not None:
        out["tokens"] = tok
        if "cost_usd" in tok:
            out["cost_usd"] = tok["cost_usd"]
    return out


# --------------------------------------------------------------------------- run summary


def _k_keyed(values: dict[int, float]) -> dict[str, float]:
    return {str(k): round(v, 6) for k, v in sorted(values.items())}


def run_statistics(
    rows: Sequence[Mapping[str, Any]],
    label_meta: Mapping[str, Mapping[str, Any]] | None = None,
    *,
    confidence: float = 0.95,
    degraded_above: float | None = None,
) -> dict[str, Any]:
    """The statistical summary of one run (JSON-serialisable).

    Keys kept compatible with ``orchestrator.summarize``: n (all investigations), scored,
    passed, pass_rate (over scored investigations), mean_score, errors (int: infra-error
    investigations), errors_by_kind, end_reasons, mean_turns, mean_tool_calls,
    invalid_calls, red_herrings_chased, duration_s (these six over all rows, as before).

    Added:
      * ``pass_at_1`` {value, stderr, ci95, n_labels, n_clusters, n_eff}: mean over labels of
        each label's pass rate, cluster-robust SE (clusters = families), Wilson/t interval
        on the effective sample size (module docstring). ``stderr`` and ``ci95`` repeat it
        at the top level.
      * ``ac_at_1``, ``ac_at_3``, ``mechanism_accuracy``: shares of scored investigations
        (module docstring), like ``pass_rate``; ``accuracy`` {ac_at_1, ac_at_3,
        mechanism_accuracy: {value, stderr, ci95, n_labels, n_clusters, n_eff}}: the same as
        label-level estimates with the pass@1 interval method.
      * ``pass_at_k`` / ``pass_hat_k`` {"1": .., "2": ..}: mean over labels of the unbiased
        per-label estimates, for k = 1 .. the fewest scored attempts of any label.
      * ``breakdown`` {dimension: {value: {n, n_investigations, pass_rate, stderr, ci95,
        mean_score, ac_at_1, ac_at_3, mechanism_accuracy}}} for tier, segment, technology,
        problem_category, monitor_type and mechanism (a label with several technologies
        counts under each; the accuracies are means over labels, without an interval).
      * ``flaky_labels``: labels whose scored attempts both passed and failed.
      * ``trajectory``: see :func:`trajectory_stats` (over scored investigations).
      * ``tool_calls_by_surface``: see :func:`calls_by_surface` (over all investigations).
      * ``infra_error_rate`` (errors / n), ``degraded`` (that rate above
        ``degraded_threshold``, from ``degraded_above`` or :func:`degraded_threshold`).
    """
    threshold = degraded_threshold() if degraded_above is None else degraded_above
    rows = list(rows)
    n = len(rows)
    infra = [r for r in rows if is_infra_error(r)]
    scored = scored_rows(rows)
    passed = sum(1 for r in scored if r["passed"])
    mean_score = math.fsum(float(r.get("score") or 0.0) for r in scored) / len(scored) if scored else 0.0

    labels = per_label(rows)
    all_label_ids = sorted({r["label_id"] for r in rows})
    lids = list(labels)
    rates = [labels[lid]["rate"] for lid in lids]
    clusters = [cluster_of(lid, label_meta) for lid in lids]
    p1 = clustered_proportion(rates, clusters, len(scored), confidence=confidence)
    acc_rows = [investigation_accuracy(r) for r in scored]
    accuracy_share = {
        m: round(sum(a[m] for a in acc_rows) / len(acc_rows), 4) if acc_rows else 0.0
        for m in ACCURACY_METRICS
    }
    accuracy = {
        m: clustered_proportion(
            [labels[lid]["accuracy"][m] for lid in lids], clusters, len(scored), confidence=confidence
        )
        for m in ACCURACY_METRICS
    }

    k_max = min((v["n"] for v in labels.values()), default=0)
    pak: dict[int, float] = {}
    phk: dict[int, float] = {}
    for k in range(1, k_max + 1):
        pak[k] = math.fsum(pass_at_k(v["n"], v["c"], k) for v in labels.values()) / len(labels)
        phk[k] = math.fsum(pass_hat_k(v["n"], v["c"], k) for v in labels.values()) / len(labels)

    breakdown: dict[str, dict[str, Any]] = {}
    for dim in BREAKDOWN_DIMENSIONS:
        groups: dict[str, list[str]] = defaultdict(list)
        for lid in lids:
            for v in dimension_values(lid, dim, label_meta):
                groups[v].append(lid)
        dim_out: dict[str, Any] = {}
        for value in sorted(groups):
            g_lids = groups[value]
            est = clustered_proportion(
                [labels[lid]["rate"] for lid in g_lids],
                [cluster_of(lid, label_meta) for lid in g_lids],
                sum(labels[lid]["n"] for lid in g_lids),
                confidence=confidence,
            )
            dim_out[value] = {
                "n": len(g_lids),
                "n_investigations": sum(labels[lid]["n"] for lid in g_lids),
                "pass_rate": est["value"],
                "stderr": est["stderr"],
                "ci95": est["ci95"],
                "mean_score": round(math.fsum(labels[lid]["mean_score"] for lid in g_lids) / len(g_lids), 4),
            } | {
                m: round(math.fsum(labels[lid]["accuracy"][m] for lid in g_lids) / len(g_lids), 4)
                for m in ACCURACY_METRICS
            }
        breakdown[dim] = dim_out

    flaky = [lid for lid in lids if 0 < labels[lid]["c"] < labels[lid]["n"]]

    return {
        "n": n,
        "scored": len(scored),
        "passed": passed,
        "pass_rate": round(passed / len(scored), 4) if scored else 0.0,
        "mean_score": round(mean_score, 4),
        "errors": len(infra),
        "errors_by_kind": dict(sorted(Counter(r["error_kind"] for r in infra).items())),
        "infra_error_rate": round(len(infra) / n, 4) if n else 0.0,
        "degraded": is_degraded(len(infra), n, threshold),
        "degraded_threshold": threshold,
        "end_reasons": dict(sorted(Counter(str(r.get("end_reason")) for r in rows).items())),
        "mean_turns": round(sum(r.get("turns") or 0 for r in rows) / n, 2) if n else 0.0,
        "mean_tool_calls": round(sum(r.get("tool_calls") or 0 for r in rows) / n, 2) if n else 0.0,
        "invalid_calls": sum(r.get("invalid_calls") or 0 for r in rows),
        "red_herrings_chased": sum(r.get("red_herrings_chased") or 0 for r in rows),
        "duration_s": round(sum(float(r.get("duration_s") or 0.0) for r in rows), 3),
        "labels": len(all_label_ids),
        "labels_scored": len(lids),
        "labels_without_scored_attempt": [lid for lid in all_label_ids if lid not in labels],
        "pass_at_1": p1,
        "stderr": p1["stderr"],
        "ci95": p1["ci95"],
        **accuracy_share,
        "accuracy": accuracy,
        "pass_at_k": _k_keyed(pak),
        "pass_hat_k": _k_keyed(phk),
        "attempts_per_label": {"min": k_max, "max": max((v["n"] for v in labels.values()), default=0)},
        "breakdown": breakdown,
        "flaky_labels": flaky,
        "trajectory": trajectory_stats(scored),
        "tool_calls_by_surface": calls_by_surface(rows),
        "method": {
            "unit": "label (attempts averaged first)",
            "cluster": "scenario family (label when none)",
            "stderr": "cluster-robust CR1",
            "ci95": "Wilson score on effective sample size, t(G-1) quantile",
            "excluded": list(INFRA_ERROR_KINDS),
            "accuracy": "ac_at_k: a root cause among the top k candidates; mechanism_accuracy: the"
            " chosen candidate's mechanism exactly right; no-fault controls: declared no fault;"
            " no diagnosis: wrong",
        },
    }


def label_meta_of(labels: Iterable[Any]) -> dict[str, dict[str, Any]]:
    """The label metadata mapping these statistics take, built from
    :class:`evaluator_agent.core.labels.Label` objects (duck-typed)."""
    out: dict[str, dict[str, Any]] = {}
    for lab in labels:
        tx = lab.taxonomy
        out[lab.id] = {
            "family": lab.family,
            "segment": tx.segment,
            "technologies": list(tx.technologies),
            "problem_category": tx.problem_category,
            "monitor_type": tx.monitor_type,
            "mechanism": tx.mechanism,
            "tier": lab.difficulty.tier,
        }
    return out
