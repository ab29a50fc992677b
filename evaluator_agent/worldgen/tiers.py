"""Difficulty tiers from evidence: fitted on outcomes, with the build factors as prior.

A label's tier used to be a formula over how it was built (chain length, decoys, size ...).
Those factors are a guess; what makes a label hard is that agents fail it. So after a set is
built and calibrated, the tiers are refitted:

1. Run an agent pool over the set (:func:`calibrate.calibrate`): the reference agents, the
   shortcut battery and weaker variants of ``methodical``, each a policy of known skill.
2. Fit a Rasch model (``irt.fit_rasch``) to the (agent, label, passed) outcomes, each label's
   difficulty prior centred on its build-factor guess (:func:`prior_difficulty`): outcomes
   decide where they speak, the factors only order labels every agent passed or failed alike.
3. Cut the fitted difficulties into three tiers at the terciles (:func:`assign`).

Whether tiers mean anything is checked on agents they were not fitted on
(:func:`crossval`): fit on one half of the pool, then the Spearman correlation between tier
(easy 0, medium 1, hard 2) and each label's pass rate over the other half must be strongly
negative.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from evaluator_agent.core.labels import Label, dump_label, labelsets_dir
from evaluator_agent.results.irt import fit_rasch

TIER_VALUE = {"easy": 0, "medium": 1, "hard": 2}
PRIOR_SD = 1.0  # logits: the factor guess is weak next to a handful of outcomes


def factor_points(label: Label) -> float:
    """The build-factor guess of difficulty (higher = harder).

    Each decoy counts little (a decoy alone rarely makes a label hard); depth, a cause long
    before its symptom, sampled-away logs, an earlier-changing decoy and a large world count
    more.
    """
    f = label.difficulty.factors
    tags = set(label.taxonomy.tags)
    return (
        max(0, f.chain_length - 1)
        + 0.25 * f.red_herrings
        + (1.0 if f.time_offset_s >= 1800 else 0.0)
        + (0.5 if f.services >= 60 else 0.0)
        + (1.0 if "telemetry:sampled-logs" in tags else 0.0)
        + (0.75 if "herring:earlier-change" in tags else 0.0)
    )


def prior_difficulty(labels: Sequence[Label]) -> dict[str, float]:
    """Factor points standardised to mean 0, sd 1 over the set (the Rasch prior means)."""
    pts = {lb.id: factor_points(lb) for lb in labels}
    if not pts:
        return {}
    mean = sum(pts.values()) / len(pts)
    sd = math.sqrt(sum((v - mean) ** 2 for v in pts.values()) / len(pts)) or 1.0
    return {k: (v - mean) / sd for k, v in pts.items()}


def fit(rows: Iterable[Mapping[str, Any]], labels: Sequence[Label]) -> dict[str, dict[str, Any]]:
    """label id -> {difficulty, se, tier, prior} from calibration rows (``label``, ``policy``,
    ``passed``; infra errors are dropped)."""
    obs = [
        (r["policy"], r["label"], bool(r["passed"]))
        for r in rows
        if r.get("error_kind") not in ("network", "harness")
    ]
    prior = prior_difficulty(labels)
    fitted = fit_rasch(obs, prior_sd=PRIOR_SD, prior_means=prior)["labels"]
    out = {
        lid: {
            "difficulty": v["difficulty"],
            "se": v["se"],
            "prior": round(prior.get(lid, 0.0), 4),
        }
        for lid, v in fitted.items()
    }
    for lid, tier in assign({k: v["difficulty"] for k, v in out.items()}).items():
        out[lid]["tier"] = tier
    return out


def assign(difficulty: Mapping[str, float]) -> dict[str, str]:
    """Terciles of difficulty: the easiest third easy, the hardest third hard (ties by id)."""
    order = sorted(difficulty, key=lambda k: (difficulty[k], k))
    n = len(order)
    out = {}
    for i, lid in enumerate(order):
        out[lid] = "easy" if i < n / 3 else "medium" if i < 2 * n / 3 else "hard"
    return out


def _ranks(xs: Sequence[float]) -> list[float]:
    order = sorted(range(len(xs)), key=lambda i: xs[i])
    ranks = [0.0] * len(xs)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and xs[order[j + 1]] == xs[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def spearman(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Spearman's rank correlation (average ranks for ties); 0 when either side is constant."""
    rx, ry = _ranks(xs), _ranks(ys)
    n = len(xs)
    mx, my = sum(rx) / n, sum(ry) / n
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry, strict=True))
    vx = math.sqrt(sum((a - mx) ** 2 for a in rx))
    vy = math.sqrt(sum((b - my) ** 2 for b in ry))
    return cov / (vx * vy) if vx and vy else 0.0


def pass_rates(rows: Iterable[Mapping[str, Any]], policies: Iterable[str]) -> dict[str, float]:
    keep = set(policies)
    acc: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for r in rows:
        if r["policy"] in keep and r.get("error_kind") not in ("network", "harness"):
            acc[r["label"]][0] += 1
            acc[r["label"]][1] += 1 if r["passed"] else 0
    return {k: v[1] / v[0] for k, v in acc.items() if v[0]}


def crossval(
    rows: Sequence[Mapping[str, Any]],
    labels: Sequence[Label],
    fit_on: Sequence[str],
    test_on: Sequence[str],
) -> dict[str, Any]:
    """Tiers fitted on the agents ``fit_on``, judged on the agents ``test_on``."""
    fitted = fit([r for r in rows if r["policy"] in set(fit_on)], labels)
    rates = pass_rates(rows, test_on)
    ids = sorted(set(fitted) & set(rates))
    rho = spearman([TIER_VALUE[fitted[i]["tier"]] for i in ids], [rates[i] for i in ids])
    by_tier: dict[str, list[float]] = defaultdict(list)
    for i in ids:
        by_tier[fitted[i]["tier"]].append(rates[i])
    return {
        "fit_on": list(fit_on),
        "test_on": list(test_on),
        "labels": len(ids),
        "spearman": round(rho, 4),
        "pass_rate_by_tier": {
            t: round(sum(v) / len(v), 4) for t, v in sorted(by_tier.items(), key=lambda x: TIER_VALUE[x[0]])
        },
    }


def split_pool(policies: Sequence[str]) -> tuple[list[str], list[str]]:
    """Two halves of an agent pool with skill on both sides: alternate through the pool
    sorted by name within its kind (reference, methodical variants, shortcuts)."""
    a: list[str] = []
    b: list[str] = []
    groups: dict[str, list[str]] = defaultdict(list)
    for p in policies:
        kind = "methodical" if p.startswith("methodical") else "other"
        groups[kind].append(p)
    for kind in sorted(groups):
        for i, p in enumerate(sorted(groups[kind])):
            (a if i % 2 == 0 else b).append(p)
    return a, b


def write_tiers(set_name: str, fitted: Mapping[str, Mapping[str, Any]], root: Path | None = None) -> int:
    """Rewrite the label files of a set (under ``root``, default ``labelsets/``) with their
    fitted tier and empirical difficulty."""
    folder = (root or labelsets_dir()) / set_name
    n = 0
    for path in sorted(folder.glob("lbl_*.json")):
        f = fitted.get(path.stem)
        if f is None:
            continue
        label = Label.model_validate_json(path.read_bytes())
        label.difficulty.tier = str(f["tier"])
        label.difficulty.empirical = float(f["difficulty"])
        path.write_text(dump_label(label))
        n += 1
    return n


def report(fitted: Mapping[str, Mapping[str, Any]], cv: Mapping[str, Any]) -> str:
    counts: dict[str, int] = defaultdict(int)
    for v in fitted.values():
        counts[v["tier"]] += 1
    lines = [
        "tiers: " + ", ".join(f"{t} {counts[t]}" for t in ("easy", "medium", "hard")),
        f"cross-validated: fit on {', '.join(cv['fit_on'])}",
        f"                 tested on {', '.join(cv['test_on'])}",
        f"  Spearman(tier, pass rate) = {cv['spearman']:+.3f} over {cv['labels']} labels; "
        "held-out pass rate by tier: "
        + ", ".join(f"{t} {100 * r:.1f}%" for t, r in cv["pass_rate_by_tier"].items()),
    ]
    return "\n".join(lines)


def dumps(fitted: Mapping[str, Any], cv: Mapping[str, Any]) -> str:
    return json.dumps({"labels": fitted, "crossval": cv}, indent=2, sort_keys=True)
