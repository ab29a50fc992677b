"""Run statistics checked against independent computations: brute-force enumeration of
attempt subsets, textbook intervals and quantiles, and coverage on simulated runs."""

from __future__ import annotations

import itertools
import json
import math
import random
from fractions import Fraction

import pytest

from evaluator_agent.results.stats import (
    betainc,
    clustered_mean,
    clustered_proportion,
    pass_at_k,
    pass_hat_k,
    per_label,
    proportion_ci,
    run_statistics,
    t_ppf,
)

# --------------------------------------------------------------------------- pass@k, pass^k


def _brute(n: int, c: int, k: int) -> tuple[Fraction, Fraction]:
    """Over every k-subset of n attempts (c of them passed): the fraction with at least one
    pass and the fraction with all passes."""
    outcomes = [True] * c + [False] * (n - c)
    subsets = list(itertools.combinations(range(n), k))
    any_pass = sum(1 for s in subsets if any(outcomes[i] for i in s))
    all_pass = sum(1 for s in subsets if all(outcomes[i] for i in s))
    return Fraction(any_pass, len(subsets)), Fraction(all_pass, len(subsets))


@pytest.mark.parametrize("n", range(1, 11))
def test_pass_at_k_and_pass_hat_k_match_subset_enumeration(n: int) -> None:
    for c in range(n + 1):
        for k in range(1, n + 1):
            any_pass, all_pass = _brute(n, c, k)
            assert pass_at_k(n, c, k) == pytest.approx(float(any_pass), abs=1e-12), (n, c, k)
            assert pass_hat_k(n, c, k) == pytest.approx(float(all_pass), abs=1e-12), (n, c, k)


def test_pass_at_k_stable_for_large_n_and_bad_arguments_rejected() -> None:
    # 1 - C(n-c, k)/C(n, k) with exact integers, for n where a naive float ratio overflows.
    n, c, k = 2000, 7, 100
    exact = 1 - Fraction(math.comb(n - c, k), math.comb(n, k))
    assert pass_at_k(n, c, k) == pytest.approx(float(exact), rel=1e-9)
    assert pass_hat_k(n, n, k) == 1.0 and pass_hat_k(n, 0, k) == 0.0
    assert pass_at_k(5, 1, 1) == pytest.approx(0.2)
    for bad in ((3, 4, 1), (3, 1, 0), (3, 1, 4), (0, 0, 1)):
        with pytest.raises(ValueError):
            pass_at_k(*bad)


# --------------------------------------------------------------------------- distributions, intervals


def test_t_quantiles_match_tables() -> None:
    table = {1: 12.7062, 2: 4.3027, 4: 2.7764, 9: 2.2622, 29: 2.0452, 120: 1.9799}
    for df, q in table.items():
        assert t_ppf(0.975, df) == pytest.approx(q, abs=1e-4)
    assert t_ppf(0.025, 9) == pytest.approx(-2.2622, abs=1e-4)
    # I_x(1, 1) = x ; I_x(a, 1) = x^a
    assert betainc(1, 1, 0.3) == pytest.approx(0.3)
    assert betainc(3, 1, 0.5) == pytest.approx(0.125)


def test_wilson_interval_matches_closed_form() -> None:
    # Wilson (1927), 8 of 10 at 95 %: the textbook [0.4902, 0.9433].
    lo, hi = proportion_ci(8, 10)
    assert lo == pytest.approx(0.4902, abs=1e-4) and hi == pytest.approx(0.9433, abs=1e-4)
    lo, hi = proportion_ci(0, 20)
    assert lo == 0.0 and hi == pytest.approx(0.1611, abs=1e-4)
    assert proportion_ci(0, 0) == [0.0, 1.0]


def test_clustered_standard_error_against_direct_formula() -> None:
    rng = random.Random(3)
    xs = [rng.random() for _ in range(30)]
    # One value per cluster: the ordinary standard error of the mean.
    mean, se, g = clustered_mean(xs, list(range(30)))
    s = math.sqrt(sum((x - mean) ** 2 for x in xs) / 29)
    assert g == 30 and se == pytest.approx(s / math.sqrt(30))
    # Clusters of three: CR1 from cluster totals, written out independently.
    cl = [i // 3 for i in range(30)]
    mean, se, g = clustered_mean(xs, cl)
    totals = [sum(xs[3 * j : 3 * j + 3]) - 3 * mean for j in range(10)]
    assert g == 10 and se == pytest.approx(math.sqrt(10 / 9 * sum(t * t for t in totals)) / 30)
    # Perfectly correlated clusters make the SE larger than the naive one.
    dup = [x for x in xs[:10] for _ in range(3)]
    _, se_naive, _ = clustered_mean(dup, list(range(30)))
    _, se_cl, _ = clustered_mean(dup, [i // 3 for i in range(30)])
    assert se_cl > 1.5 * se_naive


def _simulated_run(rng: random.Random, p: float, labels: int = 40, family: int = 2, attempts: int = 3):
    """Labels in families; a family's pass probability ~ Beta around p, each label's around
    its family's, attempts Bernoulli. The population mean pass probability is p."""
    rows, meta = [], {}
    for f in range(labels // family):
        pf = rng.betavariate(4 * p, 4 * (1 - p))
        for j in range(family):
            lid = f"lbl_{f:03d}_{j}"
            meta[lid] = {"family": f"fam{f}"}
            pl = rng.betavariate(8 * pf + 1e-9, 8 * (1 - pf) + 1e-9)
            for a in range(attempts):
                rows.append({"label_id": lid, "attempt": a + 1, "passed": rng.random() < pl, "score": 0.0})
    return rows, meta


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_pass_at_1_interval_covers_close_to_95_percent(p: float) -> None:
    rng = random.Random(20260322)
    reps, hits = 1000, 0
    for _ in range(reps):
        rows, meta = _simulated_run(rng, p)
        labels = per_label(rows)
        est = clustered_proportion(
            [v["rate"] for v in labels.values()], [meta[lid]["family"] for lid in labels], len(rows)
        )
        lo, hi = est["ci95"]
        hits += lo <= p <= hi
    assert 0.92 <= hits / reps <= 0.98


# --------------------------------------------------------------------------- run summary


def _row(lid: str, attempt: int, passed: bool, score: float | None = None, error_kind: str | None = None, **kw):
    r = {
        "label_id": lid, "attempt": attempt, "passed": passed, "score": score if score is not None else float(passed),
        "error_kind": error_kind, "end_reason": "diagnosis" if error_kind is None else "error",
        "turns": 4, "tool_calls": 6, "invalid_calls": 0, "red_herrings_chased": 0, "duration_s": 1.5, "tokens": None,
    }
    r.update(kw)
    return r


META = {
    "a": {"family": "f1", "segment": "web", "technologies": ["postgres", "kubernetes"], "problem_category": "latency",
          "monitor_type": "metric", "tier": "easy", "mechanism": "bad_deploy"},
    "b": {"family": "f1", "segment": "web", "technologies": ["postgres"], "problem_category": "latency",
          "monitor_type": "metric", "tier": "medium", "mechanism": "bad_deploy"},
    "c": {"family": None, "segment": "data", "technologies": ["kafka"], "problem_category": "errors",
          "monitor_type": "log", "tier": "hard", "mechanism": "disk_full"},
    "d": {"family": None, "segment": "data", "technologies": [], "problem_category": "errors",
          "monitor_type": "log", "tier": "hard", "mechanism": "disk_full"},
}


def _rows():
    return [
        _row("a", 1, True, tokens={"input": 100, "output": 20, "cost_usd": 0.01}),
        _row("a", 2, True, tokens={"input": 50, "output": 10, "cost_usd": 0.005}),
        _row("a", 3, True),
        _row("b", 1, True, turns=10, duration_s=9.0),
        _row("b", 2, False, score=0.4),
        _row("b", 3, False, score=0.3, red_herrings_chased=2, invalid_calls=1),
        _row("c", 1, False, score=0.1),
        _row("c", 2, False, error_kind="network", score=0.0),
        _row("c", 3, False, score=0.2),
        _row("d", 1, False, error_kind="harness", score=0.0),
        _row("d", 2, False, error_kind="network", score=0.0),
    ]


def test_run_statistics_shape_and_values() -> None:
    rows = _rows()
    s = run_statistics(rows, META)
    json.dumps(s)  # JSON-serialisable
    assert s["n"] == 11 and s["scored"] == 8 and s["passed"] == 4
    assert s["errors"] == 3 and s["errors_by_kind"] == {"harness": 1, "network": 2}
    assert s["pass_rate"] == 0.5
    # d has only infra errors: not an agent failure, not in label statistics.
    assert s["labels_without_scored_attempt"] == ["d"] and s["labels_scored"] == 3
    # Labels averaged first: a = 1, b = 1/3, c = 0.
    assert s["pass_at_1"]["value"] == pytest.approx((1 + 1 / 3 + 0) / 3, abs=1e-6)
    assert s["pass_at_1"]["n_clusters"] == 2  # a and b share family f1
    assert s["stderr"] == s["pass_at_1"]["stderr"] and s["ci95"] == s["pass_at_1"]["ci95"]
    lo, hi = s["ci95"]
    assert 0.0 <= lo <= s["pass_at_1"]["value"] <= hi <= 1.0
    # pass@k / pass^k up to the fewest scored attempts (c has 2), keyed by strings.
    assert set(s["pass_at_k"]) == {"1", "2"} and set(s["pass_hat_k"]) == {"1", "2"}
    assert s["pass_at_k"]["1"] == pytest.approx(s["pass_at_1"]["value"], abs=1e-6)
    assert s["pass_at_k"]["2"] == pytest.approx((1 + pass_at_k(3, 1, 2) + 0) / 3, abs=1e-6)
    assert s["pass_hat_k"]["2"] == pytest.approx((1 + 0 + 0) / 3, abs=1e-6)
    assert s["flaky_labels"] == ["b"]
    bd = s["breakdown"]
    assert set(bd) >= {"tier", "segment", "technology", "problem_category", "monitor_type"}
    assert bd["tier"]["easy"]["pass_rate"] == 1.0 and bd["tier"]["hard"]["n"] == 1
    assert bd["technology"]["postgres"]["n"] == 2 and bd["technology"]["kubernetes"]["n"] == 1
    assert bd["segment"]["web"]["pass_rate"] == pytest.approx(2 / 3, abs=1e-6)
    assert bd["segment"]["data"]["mean_score"] == pytest.approx(0.15)
    tr = s["trajectory"]
    assert tr["n"] == 8 and tr["turns"]["max"] == 10 and tr["red_herrings_chased"]["total"] == 2
    assert tr["duration_s"]["median"] == 1.5
    assert tr["tokens"]["input"] == 150 and tr["tokens"]["reported"] == 2 and tr["cost_usd"] == pytest.approx(0.015)


def test_run_statistics_keeps_summarize_compatible() -> None:
    from evaluator_agent.results.runs import summarize

    rows = _rows()
    # The run summary is these statistics, with the keys results always had.
    assert summarize(rows, META) == run_statistics(rows, META)
    legacy = {"n", "scored", "passed", "pass_rate", "mean_score", "errors", "errors_by_kind", "end_reasons",
              "mean_turns", "mean_tool_calls", "invalid_calls", "red_herrings_chased", "duration_s"}
    assert legacy <= set(summarize(rows))


def test_run_statistics_edge_cases() -> None:
    empty = run_statistics([], {})
    json.dumps(empty)
    assert empty["n"] == 0 and empty["pass_at_k"] == {} and empty["ci95"] == [0.0, 1.0]
    # All pass: the interval still has room below 1 (no zero-width interval at the boundary).
    rows = [_row(f"l{i}", a, True) for i in range(10) for a in (1, 2)]
    s = run_statistics(rows, {})
    assert s["pass_at_1"]["value"] == 1.0 and s["ci95"][1] == 1.0 and 0.5 < s["ci95"][0] < 1.0
    assert s["pass_hat_k"] == {"1": 1.0, "2": 1.0} and s["flaky_labels"] == []
    # Unknown metadata: grouped under "unknown".
    assert set(s["breakdown"]["tier"]) == {"unknown"}


# --------------------------------------------------------------------------- accuracies


def _acc(ac1: bool, ac3: bool, mech: bool) -> dict:
    return {"accuracy": {"ac_at_1": ac1, "ac_at_3": ac3, "mechanism": mech}}


def test_summary_carries_root_cause_and_mechanism_accuracy_with_intervals() -> None:
    from evaluator_agent.results.stats import ACCURACY_METRICS, investigation_accuracy

    rows = [
        _row("a", 1, True, score_details=_acc(True, True, True)),
        _row("a", 2, False, score_details=_acc(True, True, False)),  # right culprit, wrong mechanism
        _row("b", 1, False, score_details=_acc(False, True, True)),
        _row("b", 2, False, score_details=_acc(False, False, False)),
        _row("c", 1, False, score_details=_acc(False, False, False)),
        _row("c", 2, False, error_kind="network", score_details=_acc(True, True, True)),  # excluded
    ]
    s = run_statistics(rows, META)
    json.dumps(s)
    # shares of the 5 scored investigations, like pass_rate
    assert (s["ac_at_1"], s["ac_at_3"], s["mechanism_accuracy"]) == (0.4, 0.6, 0.4)
    assert s["pass_rate"] == 0.2
    # label-level estimates with the pass@1 method: a = 1, b = 0, c = 0 for AC@1
    acc = s["accuracy"]
    assert set(acc) == set(ACCURACY_METRICS)
    assert acc["ac_at_1"]["value"] == pytest.approx(1 / 3, abs=1e-6)
    assert acc["ac_at_3"]["value"] == pytest.approx((1 + 0.5 + 0) / 3, abs=1e-6)
    assert acc["mechanism_accuracy"]["value"] == pytest.approx((0.5 + 0.5 + 0) / 3, abs=1e-6)
    for est in acc.values():
        assert est["n_clusters"] == 2 and est["n_labels"] == 3  # a and b share family f1
        lo, hi = est["ci95"]
        assert 0.0 <= lo <= est["value"] <= hi <= 1.0 and est["stderr"] > 0
    # computed exactly as pass@1 is: the same estimator on the per-label accuracies
    labels = per_label(rows)
    same = clustered_proportion([labels[x]["accuracy"]["ac_at_3"] for x in labels],
                                [META[x]["family"] or x for x in labels], 5)
    assert acc["ac_at_3"]["ci95"] == same["ci95"]
    # breakdown rows carry the point values
    assert s["breakdown"]["segment"]["web"]["ac_at_1"] == pytest.approx(0.5)
    assert s["breakdown"]["segment"]["data"]["mechanism_accuracy"] == 0.0
    # a row with nothing to read (no diagnosis) is wrong on all three
    assert investigation_accuracy({"label_id": "x"}) == dict.fromkeys(ACCURACY_METRICS, False)


def test_accuracy_of_rows_stored_before_the_accuracy_details() -> None:
    from evaluator_agent.results.stats import investigation_accuracy

    # a fault label: the scorer's ac_at_k (share of root causes in the top k) and a full
    # mechanism sub-score
    old = {"score_details": {"ac_at_k": {"1": 0.0, "3": 1.0, "5": 1.0}},
           "subscores": {"root_cause": 0.3, "mechanism": 1.0}}
    assert investigation_accuracy(old) == {"ac_at_1": False, "ac_at_3": True, "mechanism_accuracy": True}
    # a correct no-fault answer had full marks and no ac_at_k; a wrong one zeros
    assert set(investigation_accuracy({"score_details": {"verdict": "no_fault"},
                                       "subscores": {"root_cause": 1.0, "mechanism": 1.0}}).values()) == {True}
    assert set(investigation_accuracy({"score_details": {"verdict": "fault"},
                                       "subscores": {"root_cause": 0.0, "mechanism": 0.0}}).values()) == {False}


def test_accuracy_from_the_real_scorer_through_the_summary() -> None:
    from evaluator_agent.core.protocol import Diagnosis
    from evaluator_agent.engine.scoring import score_investigation
    from tests.test_scoring import make_label

    label = make_label()
    answers = [
        {"root_causes": [{"entity": "payments-db", "mechanism": "connection_pool_exhaustion"}]},
        {"root_causes": [{"entity": "payments-db", "mechanism": "lock_contention"}]},
        {"root_causes": [{"entity": "checkout"}, {"entity": "payments-db", "mechanism": "lock_contention"}]},
        None,
    ]
    rows = []
    for i, a in enumerate(answers, start=1):
        r = score_investigation(label, Diagnosis.model_validate(a) if a else None, [])
        rows.append(_row(label.id, i, r.passed, score=r.score, subscores=r.subscores,
                         score_details=r.details))
    s = run_statistics(rows, {})
    # only the first passes (0.45 + 0.35, no chain, onset or evidence): the second has the
    # culprit with the wrong mechanism, the third the culprit at rank 2, the fourth no answer
    assert s["passed"] == 1 and [r["passed"] for r in rows] == [True, False, False, False]
    assert (s["ac_at_1"], s["ac_at_3"], s["mechanism_accuracy"]) == (0.5, 0.75, 0.25)
