"""Fresh instances are calibrated, the full figures (issue 16): every reference agent and every
shortcut policy on the whole stored label set vs fresh draws of its recipes.

    .venv/bin/python tests/benchmarks/bench_fresh_calibration.py [--set core] [--seeds 16[,17]]
        [--jobs 2] [--sample N] [--policies a,b] [--no-memoriser] [--cache DIR] [--out rows.json]

For each draw: per policy the stored and the fresh pass rate with their 95% intervals clustered by
family, and the difference fresh - stored paired by recipe, with its 95% interval, McNemar's exact
p and the verdict of ``proctor compare`` at margin 0 (``tests/test_fresh_calibration.py`` says why
the comparison is paired). The two memorisers (``mock_agents/memoriser.py``, by name, not in the
battery) run beside them: ``memoriser`` knows every stored world, ``recipe_memoriser`` recognises
an instance's recipe (its page keeps the recipe's weekday and time of day, its catalog the
recipe's size). Last, per policy, how many fresh instances it had the culprit right on top but
the mechanism wrong and would pass with the mechanism right: what knowing the recipe adds to it.

Generation uses ``--jobs`` worker processes into ``--cache`` (default: a temporary directory).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def recipe_gain(rows: list[dict], weight: float, threshold: float) -> int:
    """Fresh instances passed if the mechanism were known: culprit right on top, mechanism not
    fully right, and the score with full mechanism credit over the pass threshold."""
    return sum(
        1 for r in rows
        if not r["passed"] and not r["no_fault"] and r["subscores"].get("root_cause", 0.0) >= 1 - 1e-9
        and r["score"] + weight * (1 - r["subscores"].get("mechanism", 0.0)) >= threshold
    )  # fmt: skip


def main() -> int:
    from evaluator_agent.core.labels import load_labelset
    from evaluator_agent.engine.scoring import DEFAULT_WEIGHTS, PASS_THRESHOLD
    from evaluator_agent.worldgen.cache import FreshCache
    from evaluator_agent.worldgen.calibrate import sample_labels
    from evaluator_agent.worldgen.fresh import draw
    from mock_agents.inprocess import ROSTER
    from tests.test_fresh_calibration import compare, recipe_of, run_policies, table

    ap = argparse.ArgumentParser()
    ap.add_argument("--set", default="core")
    ap.add_argument("--seeds", default="16", help="draw seeds, comma-separated")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--sample", type=int, default=0, help="a deterministic sample of N labels (0: all)")
    ap.add_argument("--policies", default="", help="default: the reference agents and every shortcut")
    ap.add_argument("--no-memoriser", action="store_true", help="leave out memoriser and recipe_memoriser")
    ap.add_argument("--cache", type=Path, default=None, help="fresh-world cache (default: a temporary directory)")
    ap.add_argument("--out", type=Path, default=None, help="write the rows and comparisons as JSON")
    a = ap.parse_args()

    policies = tuple(a.policies.split(",")) if a.policies else (*ROSTER.references, *ROSTER.shortcuts)
    if not a.no_memoriser:
        policies = (*policies, "memoriser", "recipe_memoriser")
    stored = sample_labels(load_labelset(a.set).labels, a.sample or None)
    index = recipe_of(a.set)
    recipes = [index[lb.id] for lb in stored]
    directory = a.cache or Path(tempfile.mkdtemp(prefix="bench-fresh-"))
    print(f"{a.set}: {len(stored)} labels x {len(policies)} policies, jobs {a.jobs}, fresh cache {directory}", flush=True)

    t0 = time.monotonic()
    stored_rows = run_policies(list(zip(recipes, stored, strict=True)), policies, jobs=a.jobs)
    print(f"stored: {len(stored_rows)} investigations in {time.monotonic() - t0:.0f} s", flush=True)
    out: dict = {"set": a.set, "policies": policies, "stored_rows": stored_rows, "draws": {}}
    for seed in (int(s) for s in a.seeds.split(",") if s.strip()):
        t1 = time.monotonic()
        fresh = draw(a.set, seed, indices=recipes, cache=FreshCache(directory), jobs=a.jobs)
        t2 = time.monotonic()
        fresh_rows = run_policies(list(zip(recipes, fresh, strict=True)), policies, fresh=directory, jobs=a.jobs)
        t3 = time.monotonic()
        comparisons = [compare(stored_rows, fresh_rows, p) for p in policies]
        print(f"\ndraw {seed}: generated {len(fresh)} instances in {t2 - t1:.0f} s, "
              f"{len(fresh_rows)} investigations in {t3 - t2:.0f} s")
        print(table(comparisons))
        errors = sum(1 for r in (*stored_rows, *fresh_rows) if r["error_kind"])
        off = [c["policy"] for c in comparisons if c["verdict"] != "inconclusive"]
        print(f"infra errors {errors}; verdict other than inconclusive: {', '.join(off) or 'none'}")
        gain = {p: recipe_gain([r for r in fresh_rows if r["policy"] == p], DEFAULT_WEIGHTS["mechanism"], PASS_THRESHOLD)
                for p in policies}
        added = ", ".join(f"{p} +{n}" for p, n in gain.items() if n) or "nothing"
        print(f"passes the mechanism of the recipe would add on this draw (of {len(fresh)}): {added}")
        out["draws"][seed] = {"fresh_rows": fresh_rows, "comparisons": comparisons, "recipe_gain": gain}
    if a.out:
        a.out.write_text(json.dumps(out, indent=1, default=str))
    print(f"\nwall time {time.monotonic() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
