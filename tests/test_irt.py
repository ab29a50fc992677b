"""Rasch model: recovers known difficulties and abilities on simulated data, sits at a
stationary point of the penalised likelihood, stays finite on all-pass/all-fail labels, and
flags labels whose empirical difficulty disagrees with their tier."""

from __future__ import annotations

import json
import math
import random

import pytest

from evaluator_agent.results.irt import fit_rasch, flag_tier_disagreements, observations_from_rows


def _ranks(xs: list[float]) -> list[float]:
    order = sorted(range(len(xs)), key=lambda i: xs[i])
    r = [0.0] * len(xs)
    i = 0
    while i < len(order):  # average ranks for ties
        j = i
        while j + 1 < len(order) and xs[order[j + 1]] == xs[order[i]]:
            j += 1
        for k in range(i, j + 1):
            r[order[k]] = (i + j) / 2
        i = j + 1
    return r


def _spearman(x: list[float], y: list[float]) -> float:
    rx, ry = _ranks(x), _ranks(y)
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry, strict=True))
    return cov / math.sqrt(sum((a - mx) ** 2 for a in rx) * sum((b - my) ** 2 for b in ry))


def _simulate(seed: int, labels: int = 40, targets: int = 8, attempts: int = 5):
    rng = random.Random(seed)
    b = {f"lbl_{i:03d}": rng.gauss(0, 1.5) for i in range(labels)}
    th = {f"agent{t}": rng.gauss(0, 1) for t in range(targets)}
    obs = [
        (t, lab, rng.random() < 1 / (1 + math.exp(-(th[t] - b[lab]))))
        for t in th for lab in b for _ in range(attempts)
    ]
    return b, th, obs


def test_rasch_recovers_known_difficulties_and_abilities() -> None:
    b, th, obs = _simulate(seed=42)
    fit = fit_rasch(obs)
    json.dumps(fit)
    assert fit["converged"]
    labs = sorted(b)
    rho = _spearman([b[lab] for lab in labs], [fit["labels"][lab]["difficulty"] for lab in labs])
    assert rho > 0.9
    ts = sorted(th)
    assert _spearman([th[t] for t in ts], [fit["targets"][t]["ability"] for t in ts]) > 0.9
    # Standard errors are positive and honest-ish: most true values within 2 SE (location
    # is pinned by the prior, so compare after centring both scales).
    est = {lab: fit["labels"][lab] for lab in labs}
    shift = sum(b.values()) / len(b) - sum(v["difficulty"] for v in est.values()) / len(est)
    inside = sum(abs(b[lab] - (est[lab]["difficulty"] + shift)) <= 2 * est[lab]["se"] for lab in labs)
    assert all(v["se"] > 0 for v in est.values()) and inside / len(labs) >= 0.85
    assert fit["labels"][labs[0]]["n"] == 8 * 5 and fit["targets"][ts[0]]["labels"] == 40


def test_fit_is_a_stationary_point_of_the_penalised_likelihood() -> None:
    _, _, obs = _simulate(seed=7, labels=12, targets=3, attempts=3)
    sd = 2.0
    fit = fit_rasch(obs, prior_sd=sd)
    b = {k: v["difficulty"] for k, v in fit["labels"].items()}
    th = {k: v["ability"] for k, v in fit["targets"].items()}
    g_b = {k: -v / sd**2 for k, v in b.items()}
    g_t = {k: -v / sd**2 for k, v in th.items()}
    for t, lab, ok in obs:
        r = float(ok) - 1 / (1 + math.exp(-(th[t] - b[lab])))
        g_b[lab] -= r
        g_t[t] += r
    assert max(abs(v) for v in list(g_b.values()) + list(g_t.values())) < 1e-4


def test_all_pass_and_all_fail_labels_stay_finite_and_ordered() -> None:
    obs = []
    for t in ("a", "b"):
        for _ in range(3):
            obs += [(t, "always", True), (t, "never", False), (t, "half", _ % 2 == 0)]
    fit = fit_rasch(obs)
    d = {k: v["difficulty"] for k, v in fit["labels"].items()}
    assert all(math.isfinite(x) for x in d.values())
    assert d["always"] < d["half"] < d["never"]
    assert fit_rasch([])["labels"] == {}


def test_observations_from_rows_drop_infra_errors() -> None:
    rows = [
        {"label_id": "x", "passed": True, "error_kind": None},
        {"label_id": "x", "passed": False, "error_kind": "network"},
        {"label_id": "y", "passed": False, "error_kind": "harness"},
    ]
    assert observations_from_rows(rows, "m@1") == [("m@1", "x", True)]


def test_tier_disagreements_are_flagged() -> None:
    diffs = {
        "e1": -2.0, "e2": -1.5, "e3": -1.8, "e_bad": 1.9,  # an "easy" label harder than most
        "m1": 0.0, "m2": 0.3, "m3": -0.2,
        "h1": 1.5, "h2": 2.0, "h3": 1.7, "h_bad": -2.2,  # a "hard" label everyone solves
    }
    tiers = {k: {"e": "easy", "m": "medium", "h": "hard"}[k[0]] for k in diffs}
    flags = flag_tier_disagreements(diffs, tiers, z=0.0)
    got = {f["label_id"]: f for f in flags}
    assert set(got) == {"e_bad", "h_bad"}
    assert got["e_bad"]["direction"] == "harder" and got["e_bad"]["suggested_tier"] == "hard"
    assert got["h_bad"]["direction"] == "easier" and got["h_bad"]["suggested_tier"] == "easy"
    # With uncertainty: a wide standard error keeps a label from being flagged on noise.
    with_se = {k: {"difficulty": v, "se": 0.3} for k, v in diffs.items()}
    with_se["e_bad"]["se"] = 3.0
    assert [f["label_id"] for f in flag_tier_disagreements(with_se, tiers)] == ["h_bad"]


def test_tier_flags_from_a_fit() -> None:
    """Simulated labels with declared tiers; two are mislabelled and get flagged."""
    rng = random.Random(9)
    true_b = {}
    tiers = {}
    for i, (tier, centre) in enumerate([("easy", -2.0)] * 10 + [("medium", 0.0)] * 10 + [("hard", 2.0)] * 10):
        lab = f"lbl_{i:02d}"
        true_b[lab], tiers[lab] = centre + rng.gauss(0, 0.3), tier
    true_b["lbl_00"] = 3.0  # declared easy, is very hard
    true_b["lbl_29"] = -3.0  # declared hard, is very easy
    th = {f"t{j}": rng.gauss(0, 1) for j in range(6)}
    obs = [(t, lab, rng.random() < 1 / (1 + math.exp(-(th[t] - b)))) for t in th for lab, b in true_b.items() for _ in range(4)]
    fit = fit_rasch(obs)
    flagged = {f["label_id"]: f["direction"] for f in flag_tier_disagreements(fit["labels"], tiers)}
    assert flagged == {"lbl_00": "harder", "lbl_29": "easier"}


@pytest.mark.parametrize("targets", [1, 3])
def test_few_targets_still_fit(targets: int) -> None:
    _, _, obs = _simulate(seed=3, labels=10, targets=targets, attempts=2)
    fit = fit_rasch(obs)
    assert fit["converged"] and len(fit["targets"]) == targets
    assert all(v["se"] > 0 for v in fit["labels"].values())
