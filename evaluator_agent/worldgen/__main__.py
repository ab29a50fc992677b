"""``python -m evaluator_agent.worldgen build-smoke | build-core | build <recipes.json> | show <recipes.json> <i> | calibrate <set> [--noise off] | fit-tiers <set> | gc``."""

from __future__ import annotations

import argparse
import gzip
import sys
from pathlib import Path

from evaluator_agent.core.labels import project_root, snapshots_dir
from evaluator_agent.worldgen.build import build_from_file, build_smoke, gc_snapshots, generate
from evaluator_agent.worldgen.recipe import load_recipes


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m evaluator_agent.worldgen")
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser(
        "build-smoke", help="regenerate labelsets/smoke from environments/recipes/smoke.json"
    )
    b = sub.add_parser("build", help="build the label set described by a recipe file")
    b.add_argument("recipes", type=Path)
    bc = sub.add_parser(
        "build-core", help="regenerate labelsets/core from environments/recipes/core.json"
    )
    bc.add_argument(
        "--rewrite-recipes",
        action="store_true",
        help="first rewrite core.json from evaluator_agent/worldgen/core_recipes.py",
    )
    bc.add_argument("--jobs", type=int, default=2)
    c = sub.add_parser("calibrate", help="pass rates of the mock policies on a label set")
    c.add_argument("labelset")
    c.add_argument("--noise", choices=("on", "off"), default="on")
    c.add_argument("--jobs", type=int, default=2)
    c.add_argument("--detail", action="store_true", help="one line per label")
    c.add_argument("--sample", type=int, help="a deterministic sample of N labels")
    c.add_argument("--policies", help="comma-separated policies (default: the reference agents)")
    sub.add_parser("gc", help="delete snapshots no label set points at")
    ft = sub.add_parser(
        "fit-tiers", help="calibrate the agent pool on a set, refit its tiers from the outcomes"
    )
    ft.add_argument("labelset")
    ft.add_argument("--jobs", type=int, default=2)
    ft.add_argument("--dry-run", action="store_true", help="print, do not rewrite the labels")
    ft.add_argument("--json", type=Path, help="also write the fit and cross-validation here")
    s = sub.add_parser("show", help="print the label of one recipe of a file (no files written)")
    s.add_argument("recipes", type=Path)
    s.add_argument("index", type=int)
    args = ap.parse_args(argv)
    if args.cmd == "show":
        world, label = generate(load_recipes(args.recipes).recipes[args.index])
        print(label.model_dump_json(indent=2))
        return 0
    if args.cmd == "calibrate":
        from evaluator_agent.cli.demo import reference_roster
        from evaluator_agent.worldgen.calibrate import main as calibrate_main

        policies = tuple(p for p in (args.policies or "").split(",") if p)
        return calibrate_main(
            args.labelset, reference_roster(), args.noise, args.jobs, args.detail, args.sample, policies
        )
    if args.cmd == "fit-tiers":
        return _fit_tiers(args.labelset, args.jobs, args.dry_run, args.json)
    if args.cmd == "gc":
        for p in gc_snapshots():
            print(f"removed {p.name}")
        return 0
    if args.cmd == "build-smoke":
        labels = build_smoke()
    elif args.cmd == "build-core":
        if args.rewrite_recipes:
            from evaluator_agent.worldgen.core_recipes import write_core_recipes

            write_core_recipes()
        labels = build_from_file(
            project_root() / "environments" / "recipes" / "core.json", jobs=args.jobs
        )
    else:
        labels = build_from_file(args.recipes)
    snaps = snapshots_dir()
    for lb in labels:
        size = (snaps / f"{lb.world.snapshot}.json.gz").stat().st_size
        raw = len(gzip.decompress((snaps / f"{lb.world.snapshot}.json.gz").read_bytes()))
        print(
            f"{lb.id}  {lb.ground_truth.mechanism:28s} {lb.difficulty.tier:6s} chain={len(lb.ground_truth.causal_chain)} "
            f"herrings={len(lb.ground_truth.must_not_blame)} {size / 1024:6.1f} KB gz ({raw / 1024:.0f} KB raw)"
        )
    return 0


def _fit_tiers(set_name: str, jobs: int, dry_run: bool, out: Path | None) -> int:
    import time

    from evaluator_agent.cli.demo import reference_roster
    from evaluator_agent.core.labels import load_labelset
    from evaluator_agent.worldgen import tiers
    from evaluator_agent.worldgen.calibrate import calibrate

    t0 = time.time()
    roster = reference_roster()
    pool = roster.pool
    labels = load_labelset(set_name).labels
    rows = calibrate(set_name, pool, roster, jobs=jobs)
    a, b = tiers.split_pool(pool)
    cv = tiers.crossval(rows, labels, a, b)
    fitted = tiers.fit(rows, labels)
    print(tiers.report(fitted, cv))
    if out:
        out.write_text(tiers.dumps(fitted, cv))
    if not dry_run:
        print(f"rewrote {tiers.write_tiers(set_name, fitted)} labels of {set_name}")
    print(f"{len(rows)} investigations by {len(pool)} agents in {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
