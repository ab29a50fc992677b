"""``proctor labels validate``: ground the pending candidates of a review queue in their worlds.

Wiring (``cli/main.py``): a ``validate`` parser under ``labels`` with ``add_arguments(p)`` and
``fn=cmd_labels_validate``.

Usage::

    proctor labels validate [--queue QUEUE.db] [--id ID ...] [--threshold 0.7] [--snapshots DIR]
                            [--investigator reference|llm|none] [--model NAME] [--no-shortcuts]
                            [--no-lint] [--json]

Every pending candidate (or those of ``--id``) whose draft names a world snapshot is validated
(see ``evaluator_agent/labelops/validate.py``): grounded in its world with the agent's tools and
investigated a second time by the reference policy (offline, deterministic) or, when a model
is configured, by an LLM through litellm; the grounded draft is linted and meets the shortcut
battery (a shortcut policy that passes it is a leak warning). Its scores, reasons, checks and
grounded draft are stored in the queue. A lint error keeps a candidate for review. At or above ``--threshold`` it is marked validated,
still pending a reviewer's acceptance (never accepted here); below, it stays for review.
Exit codes: 0 ok, 1 some candidates could not be validated, 2 usage.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from evaluator_agent.cli.common import EXIT_ERROR, EXIT_OK, EXIT_USAGE, _write_json
from evaluator_agent.cli.labelops import default_queue
from evaluator_agent.core.untrusted import clean

#: the litellm model of the LLM investigator, when one is wanted
MODEL_ENV = "PROCTOR_VALIDATOR_MODEL"
#: the reference investigation policy (mock_agents, through cli/demo's roster door)
REFERENCE = "methodical"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--queue", default=default_queue(), metavar="QUEUE.db",
                   help="the review queue (default $PROCTOR_LABEL_QUEUE, else label-queue.db)")
    p.add_argument("--id", dest="ids", action="append", default=[], metavar="ID",
                   help="validate only this candidate (repeatable; default every pending one)")
    p.add_argument("--threshold", type=float, default=0.7, metavar="X",
                   help="confidence at or above which a candidate is marked validated (default 0.7)")
    p.add_argument("--snapshots", default=None, metavar="DIR", help="world snapshots folder (default the project's)")
    p.add_argument("--investigator", choices=("reference", "llm", "none"), default=None,
                   help="who investigates the world a second time: the reference policy (methodical, offline, "
                        f"deterministic), an LLM through litellm (--model or ${MODEL_ENV}), or none (the grounding "
                        f"checks only). Default: llm when ${MODEL_ENV} is set, else reference")
    p.add_argument("--model", default=None, metavar="NAME",
                   help=f"litellm model name for --investigator llm (default ${MODEL_ENV})")
    p.add_argument("--no-shortcuts", action="store_true",
                   help="skip the shortcut battery on each grounded label (the leak audit of one label)")
    p.add_argument("--no-lint", action="store_true", help="skip lint of each grounded label")
    p.add_argument("--json", action="store_true")


def make_investigator(kind: str | None, model: str | None) -> Any:
    """The validator's second investigator (``labelops/investigator.py``), or None."""
    from evaluator_agent.labelops.investigator import TargetInvestigator

    model = model or os.environ.get(MODEL_ENV) or None
    kind = kind or ("llm" if model else "reference")
    if kind == "none":
        return None
    if kind == "llm":
        if not model:
            raise ValueError(f"--investigator llm needs --model or ${MODEL_ENV}")
        from evaluator_agent.engine.llm_target import make_llm_target

        return TargetInvestigator(lambda: make_llm_target(model, name="validator-llm"), f"llm {model}")
    from evaluator_agent.cli.demo import reference_roster

    roster = reference_roster()
    return TargetInvestigator(lambda: roster.make_target(REFERENCE), REFERENCE)


def cmd_labels_validate(a: argparse.Namespace) -> int:
    from evaluator_agent.labelops.queue import Queue, QueueError
    from evaluator_agent.labelops.validate import Validator

    if not 0.0 <= a.threshold <= 1.0:
        print("proctor labels validate: --threshold must be in [0, 1]", file=sys.stderr)
        return EXIT_USAGE
    if a.queue != ":memory:" and not Path(a.queue).is_file():
        print(f"proctor labels validate: {a.queue}: no such queue (draft into it first)", file=sys.stderr)
        return EXIT_USAGE
    try:
        investigator = make_investigator(a.investigator, a.model)
    except ValueError as e:
        print(f"proctor labels validate: {e}", file=sys.stderr)
        return EXIT_USAGE
    from evaluator_agent.cli.demo import reference_roster

    v = Validator(Path(a.snapshots) if a.snapshots else None, threshold=a.threshold, investigator=investigator,
                  shortcuts=None if a.no_shortcuts else reference_roster(), lint=not a.no_lint)
    with Queue(a.queue) as q:
        try:
            outcomes = v.run(q, ids=a.ids or None)
        except QueueError as e:
            print(f"proctor labels validate: {clean(str(e), 400)}", file=sys.stderr)
            return EXIT_USAGE
    counts: dict[str, int] = {}
    for o in outcomes:
        counts[o.status] = counts.get(o.status, 0) + 1
    secs = [o.seconds for o in outcomes if o.status in ("validated", "review")]
    summary = {"counts": counts, "threshold": a.threshold,
               "seconds_per_label": round(sum(secs) / len(secs), 4) if secs else None}
    if a.json:
        _write_json("-", {**summary, "outcomes": [asdict(o) for o in outcomes]})
    else:
        for o in outcomes:
            conf = f"{o.confidence:.2f}" if o.confidence is not None else "-"
            print(f"{o.candidate_id}  {o.status:9s} confidence {conf}  root cause {o.root_cause or '-'}")
            if o.status != "validated":
                for r in o.reasons[:4]:
                    print(f"    - {clean(r, 300)}")
        listed = ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "nothing pending"
        per = f"; {summary['seconds_per_label']:.3f} s per label" if secs else ""
        print(f"{listed} (threshold {a.threshold}){per}")
    return EXIT_ERROR if counts.get("error") else EXIT_OK
