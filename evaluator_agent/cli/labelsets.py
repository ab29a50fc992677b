"""``proctor labels`` (list, schema, lint, audit) and ``proctor env`` (world snapshots)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from evaluator_agent.cli.common import (
    EXIT_ERROR,
    EXIT_OK,
    EXIT_USAGE,
    Progress,
    _write_json,
)


def cmd_labels(a: argparse.Namespace) -> int:
    from evaluator_agent.core.labels import LabelError, load_labelset

    if a.labels_cmd == "lint":
        from evaluator_agent.lint.checks import lint_labelset

        report = lint_labelset(a.set, jobs=a.jobs)
        if a.json:
            _write_json("-", report.to_dict())
        else:
            print(report.render())
        return EXIT_OK if report.ok else EXIT_ERROR
    try:
        ls = load_labelset(a.set)
    except LabelError as e:
        print(f"proctor labels: {e}", file=sys.stderr)
        return EXIT_ERROR
    items = [
        {"id": lb.id, "segment": lb.taxonomy.segment, "difficulty": lb.difficulty.tier, "no_fault": lb.ground_truth.no_fault,
         "mechanism": lb.taxonomy.mechanism, "status": lb.status, "title": lb.task.trigger.title}
        for lb in ls.labels
    ]
    if a.json:
        _write_json("-", items)
    else:
        from evaluator_agent.results.text import table

        print(table(["id", "segment", "tier", "no_fault", "mechanism", "title"],
                    [[i["id"], i["segment"], i["difficulty"], i["no_fault"], i["mechanism"], i["title"]] for i in items]))
    return EXIT_OK


def cmd_labels_audit(a: argparse.Namespace) -> int:
    """Shortcut battery and leakage learner on a label set; exit 1 when it leaks (see audit.report)."""
    from evaluator_agent.audit import Thresholds, render, run_audit
    from evaluator_agent.cli.demo import reference_roster
    from evaluator_agent.core.labels import LabelError

    policies = [p for p in (a.policies or "").split(",") if p] or None
    thresholds = Thresholds(a.threshold, a.combination_threshold, a.learner_culprit_threshold,
                            a.learner_mechanism_margin)  # fmt: skip
    progress = None if a.json else Progress(0, quiet=False)

    def tick(done: int, total: int) -> None:
        if progress is not None:
            progress.total = total
            progress.update(done, 0)

    try:
        report = run_audit(a.set, reference_roster(), sample=a.sample, jobs=a.jobs, policies=policies, learner=not a.no_learner,
                           train=a.train, train_size=a.train_size, thresholds=thresholds, progress=tick)  # fmt: skip
    except (LabelError, ValueError) as e:
        print(f"proctor labels audit: {e}", file=sys.stderr)
        return EXIT_ERROR
    if a.json:
        _write_json("-", report.as_dict())
    else:
        print(render(report))
    return EXIT_OK if report.ok else EXIT_ERROR


def cmd_env(a: argparse.Namespace) -> int:
    """World generation: a whole label set from a recipe file, or one world from flags."""
    from pydantic import ValidationError

    from evaluator_agent.core.labels import dump_label, snapshots_dir
    from evaluator_agent.telemetry.world import write_snapshot
    from evaluator_agent.worldgen.build import build_from_file, generate_pair
    from evaluator_agent.worldgen.recipe import Recipe

    if a.recipes:
        try:
            labels = build_from_file(Path(a.recipes))
        except (OSError, ValidationError, ValueError) as e:
            print(f"proctor env generate: {a.recipes}: {e}", file=sys.stderr)
            return EXIT_ERROR
        for lb in labels:
            print(f"{lb.id}  {lb.taxonomy.segment:15s} {lb.difficulty.tier:6s} {lb.ground_truth.mechanism:28s} {lb.world.snapshot}")
        return EXIT_OK
    if not a.mechanism:
        print("proctor env generate: give --recipes FILE, or --mechanism and --seed", file=sys.stderr)
        return EXIT_USAGE
    try:
        recipe = Recipe(mechanism=a.mechanism, seed=a.seed, n_services=a.services, noise=a.noise,
                        chain_length=a.chain, red_herrings=a.herrings, time_offset_s=a.offset)
    except ValidationError as e:
        print(f"proctor env generate: {e}", file=sys.stderr)
        return EXIT_USAGE
    world, quiet_world, label = generate_pair(recipe)
    out = Path(a.out) if a.out else snapshots_dir()
    digest, quiet = write_snapshot(world, out), write_snapshot(quiet_world, out)
    if a.label:
        Path(a.label).write_text(dump_label(label))
    print(json.dumps({"label_id": label.id, "snapshot": digest, "snapshot_noise_free": quiet, "directory": str(out),
                      "tier": label.difficulty.tier, "services": len(world["topology"]["services"]),
                      "logs": len(world["logs"]), "metric_series": len(world["metrics"]), "spans": len(world["spans"])}, indent=2))
    return EXIT_OK
