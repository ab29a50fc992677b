"""Empirical difficulty and ability: a Rasch (1PL) item-response model.

Model
    ``P(target t passes label l) = logistic(theta_t - b_l)`` with ability ``theta_t`` per
    target agent and difficulty ``b_l`` per label, fitted over every stored (target, label,
    passed) observation (attempts are binomial replicates; infra errors must be removed
    before, see :func:`observations_from_rows`).

Fit
    Maximum a posteriori (regularised joint maximum likelihood) with weak independent
    normal priors ``b_l ~ N(0, prior_sd^2)`` and ``theta_t ~ N(0, ability_prior_sd^2)``.
    The priors keep the estimates finite for labels every target passes (or fails) and
    pin the location of the scale, which the likelihood alone leaves free. The posterior is
    strictly concave; it is maximised by full Newton steps with step halving. The Newton
    system is solved through the Schur complement on the (few) targets, so one step costs
    O(L T^2 + T^3) for L labels and T targets.

Uncertainty
    Standard errors are the square roots of the diagonal of the inverse negative Hessian at
    the mode (Laplace approximation of the posterior), including the label-target
    covariance: a label seen only by an uncertain target is itself uncertain.

Tier disagreement
    See :func:`flag_tier_disagreements`.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from evaluator_agent.core.vocab import DIFFICULTY_TIERS
from evaluator_agent.results.stats import scored_rows


def _sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


def _log1pexp(x: float) -> float:
    return x + math.log1p(math.exp(-x)) if x > 0 else math.log1p(math.exp(x))


def _invert(m: list[list[float]]) -> list[list[float]]:
    """Inverse of a small dense matrix (Gauss-Jordan, partial pivoting)."""
    n = len(m)
    a = [row[:] + [1.0 if i == j else 0.0 for j in range(n)] for i, row in enumerate(m)]
    for col in range(n):
        piv = max(range(col, n), key=lambda r: abs(a[r][col]))
        if abs(a[piv][col]) < 1e-300:
            raise ZeroDivisionError("singular matrix")
        a[col], a[piv] = a[piv], a[col]
        pv = a[col][col]
        a[col] = [x / pv for x in a[col]]
        for r in range(n):
            if r != col and a[r][col] != 0.0:
                f = a[r][col]
                a[r] = [x - f * y for x, y in zip(a[r], a[col], strict=True)]
    return [row[n:] for row in a]


def observations_from_rows(rows: Iterable[Mapping[str, Any]], target: str) -> list[tuple[str, str, bool]]:
    """(target, label_id, passed) triples of one run's stored investigations, infra errors dropped."""
    return [(target, r["label_id"], bool(r["passed"])) for r in scored_rows(rows)]


def fit_rasch(
    observations: Iterable[tuple[str, str, bool | int]],
    *,
    prior_sd: float = 2.0,
    ability_prior_sd: float | None = None,
    max_iter: int = 100,
    tol: float = 1e-9,
    prior_means: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """Fit the Rasch model (module docstring) to (target, label, passed) observations.

    ``prior_means`` centres a label's difficulty prior on an a-priori guess (e.g. from the
    factors a label was built with) instead of 0: labels the data says little about (all
    targets pass, or all fail) then keep their order from the guess.

    Returns a JSON-serialisable dict::

        {"model": "rasch", "labels": {label: {difficulty, se, n, passed, targets}},
         "targets": {target: {ability, se, n, passed, labels}}, "prior_sd",
         "ability_prior_sd", "iterations", "converged", "log_posterior"}

    Higher difficulty = harder; higher ability = better. Both are on the logit scale.
    """
    ability_prior_sd = prior_sd if ability_prior_sd is None else ability_prior_sd
    counts: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for t, lab, ok in observations:
        c = counts[(str(t), str(lab))]
        c[0] += 1
        c[1] += 1 if ok else 0
    targets = sorted({t for t, _ in counts})
    labels = sorted({lab for _, lab in counts})
    ti = {t: i for i, t in enumerate(targets)}
    li = {lab: i for i, lab in enumerate(labels)}
    T, L = len(targets), len(labels)
    # cells: (label index, target index, n, y)
    cells = [(li[lab], ti[t], n, y) for (t, lab), (n, y) in counts.items()]
    by_label: list[list[tuple[int, int, int]]] = [[] for _ in range(L)]
    for l_i, t_i, n, y in cells:
        by_label[l_i].append((t_i, n, y))
    tau_b = 1.0 / (prior_sd * prior_sd)
    tau_t = 1.0 / (ability_prior_sd * ability_prior_sd)
    mu = [float((prior_means or {}).get(lab, 0.0)) for lab in labels]

    theta = [0.0] * T
    b = mu[:]

    def log_post(th: Sequence[float], bb: Sequence[float]) -> float:
        s = 0.0
        for l_i, t_i, n, y in cells:
            eta = th[t_i] - bb[l_i]
            s += y * eta - n * _log1pexp(eta)
        s -= 0.5 * tau_b * math.fsum((x - m) * (x - m) for x, m in zip(bb, mu, strict=True))
        s -= 0.5 * tau_t * math.fsum(x * x for x in th)
        return s

    def derivatives(th: Sequence[float], bb: Sequence[float]):
        g_b = [-tau_b * (x - m) for x, m in zip(bb, mu, strict=True)]
        g_t = [-tau_t * x for x in th]
        d_b = [tau_b] * L
        d_t = [tau_t] * T
        w_cells: list[list[tuple[int, float]]] = [[] for _ in range(L)]  # label -> (target, w)
        for l_i in range(L):
            for t_i, n, y in by_label[l_i]:
                p = _sigmoid(th[t_i] - bb[l_i])
                r = y - n * p
                w = n * p * (1.0 - p)
                g_b[l_i] -= r
                g_t[t_i] += r
                d_b[l_i] += w
                d_t[t_i] += w
                w_cells[l_i].append((t_i, w))
        return g_b, g_t, d_b, d_t, w_cells

    def schur(d_b, d_t, w_cells) -> list[list[float]]:
        # Precision P = [[D_b, C], [C^T, D_t]] with C[l][t] = -w. S = D_t - C^T D_b^-1 C.
        s = [[0.0] * T for _ in range(T)]
        for t in range(T):
            s[t][t] = d_t[t]
        for l_i in range(L):
            inv = 1.0 / d_b[l_i]
            wc = w_cells[l_i]
            for t1, w1 in wc:
                for t2, w2 in wc:
                    s[t1][t2] -= w1 * w2 * inv
        return s

    current = log_post(theta, b)
    converged = False
    iterations = 0
    for iterations in range(1, max_iter + 1):  # noqa: B007 - reported after the loop
        g_b, g_t, d_b, d_t, w_cells = derivatives(theta, b)
        s_inv = _invert(schur(d_b, d_t, w_cells)) if T else []
        # rhs for theta: g_t - C^T D_b^-1 g_b = g_t + sum_l w_lt g_b[l] / d_b[l]
        rhs = g_t[:]
        for l_i in range(L):
            f = g_b[l_i] / d_b[l_i]
            for t_i, w in w_cells[l_i]:
                rhs[t_i] += w * f
        dt = [math.fsum(s_inv[i][j] * rhs[j] for j in range(T)) for i in range(T)]
        db = []
        for l_i in range(L):
            # D_b db + C dt = g_b  ->  db = (g_b + sum_t w dt_t) / d_b
            acc = g_b[l_i] + math.fsum(w * dt[t_i] for t_i, w in w_cells[l_i])
            db.append(acc / d_b[l_i])
        step = 1.0
        while True:
            nt = [x + step * d for x, d in zip(theta, dt, strict=True)]
            nb = [x + step * d for x, d in zip(b, db, strict=True)]
            val = log_post(nt, nb)
            if val >= current - 1e-12 or step < 1e-6:
                break
            step *= 0.5
        theta, b = nt, nb
        change = max([abs(step * d) for d in dt + db] or [0.0])
        improvement = val - current
        current = val
        if change < tol or (abs(improvement) < tol * 1e-3 and change < 1e-6):
            converged = True
            break

    _, _, d_b, d_t, w_cells = derivatives(theta, b)
    s_inv = _invert(schur(d_b, d_t, w_cells)) if T else []
    se_t = [math.sqrt(max(0.0, s_inv[i][i])) for i in range(T)]
    se_b = []
    for l_i in range(L):
        inv = 1.0 / d_b[l_i]
        quad = math.fsum(w1 * s_inv[t1][t2] * w2 for t1, w1 in w_cells[l_i] for t2, w2 in w_cells[l_i])
        se_b.append(math.sqrt(max(0.0, inv + inv * inv * quad)))

    label_n: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    target_n: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for (t, lab), (n, y) in counts.items():
        for acc in (label_n[lab], target_n[t]):
            acc[0] += n
            acc[1] += y
            acc[2] += 1
    return {
        "model": "rasch",
        "labels": _side(labels, li, "difficulty", b, se_b, label_n, "targets"),
        "targets": _side(targets, ti, "ability", theta, se_t, target_n, "labels"),
        "prior_sd": prior_sd,
        "ability_prior_sd": ability_prior_sd,
        "iterations": iterations,
        "converged": converged,
        "log_posterior": round(current, 6),
    }


def _side(
    names: Sequence[str],
    index: Mapping[str, int],
    key: str,
    estimate: Sequence[float],
    se: Sequence[float],
    totals: Mapping[str, list[int]],
    other: str,
) -> dict[str, dict[str, Any]]:
    """One side of the fit (labels or targets): {name: {key: estimate, se, n, passed, other}},
    ``other`` counting the names of the other side each was seen with."""
    return {
        name: {
            key: round(estimate[index[name]], 6),
            "se": round(se[index[name]], 6),
            "n": totals[name][0],
            "passed": totals[name][1],
            other: totals[name][2],
        }
        for name in names
    }


def _difficulty_and_se(v: Any) -> tuple[float, float]:
    if isinstance(v, Mapping):
        return float(v["difficulty"]), float(v.get("se") or 0.0)
    return float(v), 0.0


def flag_tier_disagreements(
    difficulties: Mapping[str, float | Mapping[str, Any]],
    tiers: Mapping[str, str],
    *,
    z: float = 1.0,
    order: Sequence[str] = DIFFICULTY_TIERS,
) -> list[dict[str, Any]]:
    """Labels whose empirical difficulty disagrees with their declared tier.

    ``difficulties`` maps label -> difficulty, or -> {"difficulty", "se"} (e.g.
    ``fit_rasch(...)["labels"]``); ``tiers`` maps label -> tier in ``order`` (easy, medium,
    hard). Labels missing from either, or with an unknown tier, are ignored.

    Rule: a label of tier i is flagged

    * ``"harder"`` when ``difficulty - z * se`` exceeds the median difficulty of all labels
      of the tiers above i (e.g. an easy label harder than the typical medium-or-hard one);
    * ``"easier"`` when ``difficulty + z * se`` is below the median difficulty of all labels
      of the tiers below i (e.g. a hard label easier than the typical easy-or-medium one).

    ``z`` (default 1) asks for the gap to exceed that many standard errors, so labels seen
    too few times are not flagged on noise; ``z=0`` compares point estimates. Each entry:
    {label_id, tier, difficulty, se, direction, reference_tiers, reference_median,
    suggested_tier (the tier whose median difficulty is nearest)}; sorted by label_id.
    """
    rank = {t: i for i, t in enumerate(order)}
    est = {lab: _difficulty_and_se(v) for lab, v in difficulties.items() if tiers.get(lab) in rank}
    by_tier: dict[str, list[float]] = defaultdict(list)
    for lab, (d, _) in est.items():
        by_tier[tiers[lab]].append(d)
    medians = {t: statistics.median(v) for t, v in by_tier.items() if v}
    out: list[dict[str, Any]] = []
    for lab in sorted(est):
        d, se = est[lab]
        tier = tiers[lab]
        i = rank[tier]
        above = [t for t in order[i + 1 :] if by_tier.get(t)]
        below = [t for t in order[:i] if by_tier.get(t)]
        entry: dict[str, Any] | None = None
        if above:
            ref = statistics.median([x for t in above for x in by_tier[t]])
            if d - z * se > ref:
                entry = {"direction": "harder", "reference_tiers": above, "reference_median": round(ref, 6)}
        if entry is None and below:
            ref = statistics.median([x for t in below for x in by_tier[t]])
            if d + z * se < ref:
                entry = {"direction": "easier", "reference_tiers": below, "reference_median": round(ref, 6)}
        if entry is None:
            continue
        suggested = min(medians, key=lambda t: (abs(medians[t] - d), rank[t]))
        out.append({
            "label_id": lab,
            "tier": tier,
            "difficulty": round(d, 6),
            "se": round(se, 6),
            **entry,
            "suggested_tier": suggested,
        })
    return out
