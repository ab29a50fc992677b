"""Fresh instances are calibrated (issue 16): on a fresh draw of ``core`` the reference agents and
shortcut policies pass as often as on the stored labels of the same recipes, and ``methodical``
stays the best.

A deterministic sample of 20 core recipes (one per mechanism), stratified across mechanisms (:func:`stratified_sample`:
every mechanism once, then again, in the hash order of ``calibrate.sample_labels``), is run by the
four reference agents and two shortcut policies with a non-zero pass rate on core (``metric_jump``,
``last_change``) through the real investigation loop, once on the stored labels and
once on draw :data:`SEED` of the same recipes (generated with two worker processes).

The comparison, and why it is paired
    Checking the fresh pass rate against the stored pass rate's 95% interval would be the wrong
    test: that interval holds only the stored sample's sampling error, while the fresh rate carries
    its own, so even two draws of one distribution would fall outside it far more often than 5% of
    the time (about 17% for independent samples of equal size; the difference has sqrt(2) times
    the standard error). The two samples are not independent either: instance i and stored label i
    come from the same recipe (mechanism, size, chain length, decoys), so their outcomes go
    together. The test is therefore on the *paired* differences, one per recipe (fresh outcome
    minus stored outcome), exactly as ``proctor compare`` pairs two runs by recipe
    (:func:`evaluator_agent.results.compare.paired_analysis`): a 95% interval of the mean
    difference from the cluster-robust standard error (clusters: the mechanism family, as in
    every run's statistics; Student's t on G - 1 degrees of freedom) and the exact McNemar test on
    the recipes that flipped. A policy is calibrated when its verdict is ``inconclusive`` at margin
    0: the interval contains 0 and McNemar does not reject at 5%. Pairing removes the spread
    between recipes (a hard recipe is hard in both), so it is stricter than comparing two
    unpaired intervals, and it needs no correction for a fixed seed: the outcome is deterministic.

The full figures (every reference agent and every shortcut on all of core, stored vs a fresh draw)
are ``tests/benchmarks/bench_fresh_calibration.py`` and the README. They show one policy off, which
a sample of 20 has no power to see: ``greedy_anomaly`` passes more often on fresh draws (8.5%
stored, 14.0% on draw 16, McNemar p 0.06; 16.5% and 15.5% on draws 16 and 17 when instances only
moved by whole weeks). Other seeds are the cause (the stored seeds plus 500000 give 16.5% too):
the generator's defences against
"blame the largest error growth" hold better on the 200 seeds of core than on seeds in general.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from evaluator_agent.core.labels import Label, load_labelset
from evaluator_agent.results.compare import paired_analysis
from evaluator_agent.results.stats import clustered_proportion
from evaluator_agent.worldgen.cache import FreshCache
from evaluator_agent.worldgen.calibrate import result_row
from evaluator_agent.worldgen.fresh import FreshInstances, draw
from mock_agents.inprocess import ROSTER

SET = "core"
SEED = 16  # the draw (issue 16)
SAMPLE = 20  # one recipe of every mechanism (a bigger sample is the benchmark's job)
SHORTCUTS = ("metric_jump", "last_change")
POLICIES = (*ROSTER.references, *SHORTCUTS)


# --------------------------------------------------------------------------- running policies


def stratified_sample(labels: Sequence[Label], n: int) -> list[Label]:
    """``n`` labels spread over mechanisms: each mechanism's labels in the hash order of
    ``calibrate.sample_labels``; the first of every mechanism, then the second, ... (ties by hash)."""
    def h(lb: Label) -> bytes:
        return hashlib.sha256(b"sample\0" + lb.id.encode()).digest()

    by_mech: dict[str, list[Label]] = {}
    for lb in sorted(labels, key=h):
        by_mech.setdefault(lb.ground_truth.mechanism, []).append(lb)
    ranked = sorted(((i, h(lb), lb) for group in by_mech.values() for i, lb in enumerate(group)), key=lambda t: t[:2])
    keep = {lb.id for _, _, lb in ranked[:n]}
    return [lb for lb in labels if lb.id in keep]


def recipe_of(set_name: str = SET) -> dict[str, int]:
    """Stored label id -> index of the recipe it was generated from."""
    family = FreshInstances().family(set_name)
    assert family is not None, f"{set_name} has no recipe file"
    return dict(family.stored)


async def _investigate_all(pairs: list[tuple[int, str]], policies: Sequence[str], fresh: str | None) -> list[dict[str, Any]]:
    from evaluator_agent.core.protocol import Budget
    from evaluator_agent.engine.investigation import investigate
    from evaluator_agent.engine.worlds import WorldCache

    worlds = WorldCache(capacity=2, fresh=Path(fresh) if fresh else None)
    targets = {p: ROSTER.make_target(p) for p in policies}
    rows = []
    for recipe, raw in pairs:
        label = Label.model_validate_json(raw)
        for p in policies:
            res = await investigate(label, 1, targets[p], worlds, Budget())
            rows.append({**result_row(label, p, res), "recipe": recipe})
    return rows


def _chunk(args: tuple[list[tuple[int, str]], tuple[str, ...], str | None]) -> list[dict[str, Any]]:
    """Worker entry: one event loop over one chunk of labels."""
    os.environ.setdefault("DD_TRACE_ENABLED", "false")
    return asyncio.run(_investigate_all(*args))


def run_policies(labels: Sequence[tuple[int, Label]], policies: Sequence[str], *, fresh: Path | None = None,
                 jobs: int = 2) -> list[dict[str, Any]]:
    """``calibrate.result_row`` rows (plus ``recipe``) of every policy on every (recipe index, label),
    worlds read from the snapshots and then ``fresh``; ``jobs`` worker processes (0 or 1: in this one)."""
    pairs = [(i, lb.model_dump_json()) for i, lb in labels]
    n = max(1, min(len(pairs), max(1, jobs) * 4))
    tasks = [(pairs[k::n], tuple(policies), str(fresh) if fresh else None) for k in range(n) if pairs[k::n]]
    if jobs <= 1:
        chunks = [_chunk(t) for t in tasks]
    else:
        with ProcessPoolExecutor(max_workers=jobs) as ex:
            chunks = list(ex.map(_chunk, tasks))
    order = {p: k for k, p in enumerate(policies)}
    return sorted((r for c in chunks for r in c), key=lambda r: (r["recipe"], order[r["policy"]]))


# --------------------------------------------------------------------------- comparing


def pass_rate(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Pass rate with its 95% interval clustered by family (as the battery reports it)."""
    return clustered_proportion([float(r["passed"]) for r in rows], [r["family"] for r in rows], len(rows))


def compare(stored: Sequence[dict[str, Any]], fresh: Sequence[dict[str, Any]], policy: str) -> dict[str, Any]:
    """One policy, fresh vs stored, paired by recipe (module docstring): ``paired_analysis`` of
    ``proctor compare`` with margin 0 (``delta`` = fresh - stored), plus each side's clustered rate."""
    base = {f"recipe:{r['recipe']}": r for r in stored if r["policy"] == policy}
    new = {f"recipe:{r['recipe']}": r for r in fresh if r["policy"] == policy}
    keys = sorted(base.keys() & new.keys())
    meta = {k: {"family": base[k]["family"]} for k in keys}
    out = paired_analysis({k: {"rate": float(base[k]["passed"])} for k in keys},
                          {k: {"rate": float(new[k]["passed"])} for k in keys}, keys, meta, margin=0.0, alpha=0.05)
    return {"policy": policy, **out, "stored": pass_rate([base[k] for k in keys]), "fresh": pass_rate([new[k] for k in keys])}


def _pct(x: float) -> str:
    return f"{100 * x:5.1f}%"


def table(comparisons: Sequence[dict[str, Any]]) -> str:
    """One line per policy: stored and fresh pass rates (clustered 95% CI), the paired difference
    (95% CI), McNemar's p and the verdict."""
    head = f"{'policy':18s} {'n':>4s} {'stored (95% CI)':>24s} {'fresh (95% CI)':>24s} {'fresh - stored (95% CI)':>30s} {'McNemar p':>9s}  verdict"
    lines = [head, "-" * len(head)]
    for c in comparisons:
        s, f = c["stored"], c["fresh"]
        lines.append(
            f"{c['policy']:18s} {c['n']:4d} "
            f"{_pct(s['value']):>7s} ({_pct(s['ci95'][0])}-{_pct(s['ci95'][1])}) "
            f"{_pct(f['value']):>7s} ({_pct(f['ci95'][0])}-{_pct(f['ci95'][1])}) "
            f"{100 * c['delta']:+7.1f} pts ({100 * c['ci95'][0]:+6.1f} to {100 * c['ci95'][1]:+6.1f}) "
            f"{c['mcnemar_p']:9.3f}  {c['verdict']}"
        )
    return "\n".join(lines)


# --------------------------------------------------------------------------- the test


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The stored sample, its fresh draw, and every policy's rows on both."""
    stored = stratified_sample(load_labelset(SET).labels, SAMPLE)
    index = recipe_of()
    recipes = [index[lb.id] for lb in stored]
    cache = FreshCache(tmp_path_factory.mktemp("fresh-calibration"))
    fresh = draw(SET, SEED, indices=recipes, cache=cache, jobs=2)
    return {
        "stored": stored, "fresh": fresh, "recipes": recipes,
        "stored_rows": run_policies(list(zip(recipes, stored, strict=True)), POLICIES),
        "fresh_rows": run_policies(list(zip(recipes, fresh, strict=True)), POLICIES, fresh=cache.directory),
    }


def test_the_sample_spreads_over_every_mechanism(sample: dict[str, Any]) -> None:
    mechanisms = {lb.ground_truth.mechanism for lb in load_labelset(SET).labels}
    assert len(sample["stored"]) == SAMPLE and {lb.ground_truth.mechanism for lb in sample["stored"]} == mechanisms


def test_the_draw_is_new_worlds_of_the_same_recipes(sample: dict[str, Any]) -> None:
    for lb, inst in zip(sample["stored"], sample["fresh"], strict=True):
        assert inst.id != lb.id and inst.world.snapshot != lb.world.snapshot
        assert inst.family == lb.family and inst.ground_truth.mechanism == lb.ground_truth.mechanism
        assert inst.task.trigger.fired_at != lb.task.trigger.fired_at


def test_every_policy_passes_fresh_instances_as_often_as_stored_ones(sample: dict[str, Any]) -> None:
    comparisons = [compare(sample["stored_rows"], sample["fresh_rows"], p) for p in POLICIES]
    report = table(comparisons)
    assert all(c["n"] == SAMPLE for c in comparisons), report
    assert not any(r["error_kind"] for r in (*sample["stored_rows"], *sample["fresh_rows"])), report
    off = [c["policy"] for c in comparisons if c["verdict"] != "inconclusive"]
    assert not off, f"fresh pass rate differs from stored for {off}:\n{report}"
    for c in comparisons:  # the interval of the difference holds 0 (or is the point 0)
        assert c["ci95"][0] <= 0.0 <= c["ci95"][1], report


def test_methodical_stays_the_best_on_fresh_instances(sample: dict[str, Any]) -> None:
    comparisons = {p: compare(sample["stored_rows"], sample["fresh_rows"], p) for p in POLICIES}
    best = comparisons["methodical"]["fresh"]["value"]
    report = table(list(comparisons.values()))
    assert best >= 0.8, report
    assert all(c["fresh"]["value"] < best for p, c in comparisons.items() if p != "methodical"), report
