"""Paired comparison of two runs: McNemar against an exact binomial, verdicts on synthetic
runs (strong vs weak, identical, one segment broken), flips, pairing and deltas."""

from __future__ import annotations

import json
import random
from fractions import Fraction
from math import comb

import pytest

from evaluator_agent.results.compare import compare_runs, verdict_of
from evaluator_agent.results.stats import binom_two_sided_p


def _exact_binomial_two_sided(k: int, n: int) -> float:
    """Two-sided exact binomial test against p = 1/2, by its definition: the total
    probability of the outcomes no more likely than the observed one."""
    if n == 0:
        return 1.0
    probs = [Fraction(comb(n, i), 2**n) for i in range(n + 1)]
    return float(min(Fraction(1), sum(q for q in probs if q <= probs[k])))


def test_mcnemar_matches_exact_binomial() -> None:
    for b in range(0, 16):
        for c in range(0, 16):
            assert binom_two_sided_p(b, c) == pytest.approx(_exact_binomial_two_sided(b, b + c), abs=1e-12), (b, c)
    assert binom_two_sided_p(0, 0) == 1.0
    assert binom_two_sided_p(6, 0) == pytest.approx(2 / 64)


def _rows(outcomes: dict[str, list[bool]], *, duration: float = 2.0, turns: int = 5, tokens=None) -> list[dict]:
    rows = []
    for lid, outs in outcomes.items():
        for a, ok in enumerate(outs, 1):
            rows.append({
                "label_id": lid, "attempt": a, "passed": ok, "score": 1.0 if ok else 0.2, "error_kind": None,
                "end_reason": "diagnosis", "turns": turns, "tool_calls": 2 * turns, "invalid_calls": 0,
                "red_herrings_chased": 0, "duration_s": duration, "tokens": tokens,
            })
    return rows


def _meta(ids, segment_of=lambda i: "web", family_of=lambda i: None):
    return {lid: {"family": family_of(lid), "segment": segment_of(lid), "tier": "medium"} for lid in ids}


def test_mcnemar_in_compare_uses_majority_collapsed_flips() -> None:
    ids = [f"l{i:02d}" for i in range(20)]
    base = {lid: [True, True, False] for lid in ids}  # majority pass everywhere
    new = {lid: ([False, False, True] if i < 7 else [True, False, True]) for i, lid in enumerate(ids)}
    new[ids[19]] = [True, True, True]
    base[ids[18]] = [False, False, True]  # base majority fail, new majority pass
    r = compare_runs(_rows(base), _rows(new), _meta(ids))
    assert r["flips"]["pass_to_fail"] == ids[:7] and r["flips"]["fail_to_pass"] == [ids[18]]
    assert r["mcnemar_p"] == pytest.approx(_exact_binomial_two_sided(7, 8), abs=1e-6)


def test_strong_vs_weak_is_a_regression_and_back_an_improvement() -> None:
    rng = random.Random(11)
    ids = [f"lbl_{i:03d}" for i in range(30)]
    strong = {lid: [rng.random() < 0.85 for _ in range(3)] for lid in ids}
    weak = {lid: [rng.random() < 0.10 for _ in range(3)] for lid in ids}
    meta = _meta(ids, family_of=lambda lid: f"fam{int(lid[-3:]) // 2}")
    r = compare_runs(_rows(strong), _rows(weak, duration=1.0), meta)
    json.dumps(r)
    assert r["verdict"] == "regression"
    assert r["delta"] < -0.5 and r["ci95"][1] < -0.05 and r["mcnemar_p"] < 1e-4
    assert len(r["flips"]["pass_to_fail"]) > 15 and r["n_shared"] == 30 and r["n_clusters"] == 15
    assert r["cost_latency"]["duration_s"]["delta"] == pytest.approx(-1.0)
    assert {"label_id", "base", "new", "diff"} <= set(r["per_label"][0])
    back = compare_runs(_rows(weak), _rows(strong), meta)
    assert back["verdict"] == "improvement" and back["delta"] == pytest.approx(-r["delta"])
    assert back["flips"]["fail_to_pass"] == r["flips"]["pass_to_fail"]


def test_identical_runs_are_inconclusive() -> None:
    rng = random.Random(5)
    ids = [f"lbl_{i:03d}" for i in range(25)]
    outs = {lid: [rng.random() < 0.6 for _ in range(2)] for lid in ids}
    r = compare_runs(_rows(outs), _rows(outs), _meta(ids))
    assert r["verdict"] == "inconclusive"
    assert r["delta"] == 0.0 and r["mcnemar_p"] == 1.0 and r["ci95"] == [0.0, 0.0]
    assert r["flips"] == {"pass_to_fail": [], "fail_to_pass": []} and r["regressed_segments"] == []
    assert all(v["delta"] == 0 for v in r["cost_latency"].values())


def test_a_broken_segment_is_reported_while_the_whole_is_inconclusive() -> None:
    seg = {f"w{i:02d}": "web" for i in range(60)} | {f"d{i:02d}": "data" for i in range(10)}
    base, new = {}, {}
    for i in range(60):  # web: 6 labels now pass that failed, the rest unchanged
        lid = f"w{i:02d}"
        base[lid] = [i % 2 == 0]
        new[lid] = [True] if i in (1, 3, 5, 7, 9, 11) else base[lid]
    for i in range(10):  # data: 8 of 10 labels went from pass to fail
        lid = f"d{i:02d}"
        base[lid] = [True]
        new[lid] = [i >= 8]
    r = compare_runs(_rows(base), _rows(new), _meta(seg, segment_of=seg.get))
    assert r["verdict"] == "inconclusive"
    assert r["segments"]["data"]["regressed"] is True and r["segments"]["data"]["verdict"] == "regression"
    assert r["segments"]["data"]["delta"] == pytest.approx(-0.8)
    assert r["segments"]["web"]["regressed"] is False
    assert r["regressed_segments"] == ["data"]
    assert set(r["segments"]["data"]) >= {"n", "base", "new", "delta", "regressed"}


def test_pairing_ignores_infra_errors_and_lists_unshared_labels() -> None:
    base = _rows({"a": [True], "b": [True], "c": [False]})
    new = _rows({"a": [True], "b": [False], "d": [True]})
    new[1]["error_kind"] = "network"  # b's only attempt in new is an infra error
    r = compare_runs(base, new, {})
    assert r["n_shared"] == 1 and r["only_in_base"] == ["b", "c"] and r["only_in_new"] == ["d"]
    assert r["errors"] == {"base": 0, "new": 1}
    assert r["flips"] == {"pass_to_fail": [], "fail_to_pass": []}


def test_token_and_cost_deltas_when_both_report_them() -> None:
    outs = {"a": [True, False], "b": [True, True]}
    base = _rows(outs, tokens={"total": 1000, "cost_usd": 0.02})
    new = _rows(outs, tokens={"total": 1500, "cost_usd": 0.01}, turns=7)
    cl = compare_runs(base, new, {})["cost_latency"]
    assert cl["tokens.total"]["delta"] == pytest.approx(500) and cl["tokens.total"]["rel"] == pytest.approx(0.5)
    assert cl["tokens.cost_usd"]["delta"] == pytest.approx(-0.01)
    assert cl["turns"]["delta"] == pytest.approx(2) and cl["tool_calls"]["delta"] == pytest.approx(4)


def test_verdict_rule() -> None:
    assert verdict_of(-0.2, [-0.3, -0.1], 0.5, margin=0.05, alpha=0.05) == "regression"
    assert verdict_of(-0.06, [-0.2, 0.08], 0.01, margin=0.05, alpha=0.05) == "regression"
    assert verdict_of(-0.03, [-0.2, 0.08], 0.01, margin=0.05, alpha=0.05) == "inconclusive"  # below the margin
    assert verdict_of(-0.2, [-0.4, 0.01], 0.2, margin=0.05, alpha=0.05) == "inconclusive"
    assert verdict_of(0.2, [0.1, 0.3], 0.5, margin=0.05, alpha=0.05) == "improvement"
    assert verdict_of(0.0, [0.0, 0.0], 1.0, margin=0.05, alpha=0.05) == "inconclusive"


def test_a_few_identical_flips_do_not_make_a_verdict_alone() -> None:
    # Two labels both flipped: every difference is -1 (SE 0), McNemar p = 0.5: inconclusive,
    # and a one-label segment that flipped is not called regressed.
    meta = {"a": {"segment": "x"}, "b": {"segment": "y"}}
    r = compare_runs(_rows({"a": [True], "b": [True]}), _rows({"a": [False], "b": [False]}), meta)
    assert r["delta"] == -1.0 and r["ci_informative"] is False and r["mcnemar_p"] == 0.5
    assert r["verdict"] == "inconclusive" and r["regressed_segments"] == []
    # Eight such labels (the smoke set, methodical vs random_guess): McNemar decides.
    ids = [f"l{i}" for i in range(8)]
    r = compare_runs(_rows({i: [True] for i in ids}), _rows({i: [False] for i in ids}), {})
    assert r["mcnemar_p"] == pytest.approx(2 / 256) and r["verdict"] == "regression"
