"""``proctor labels validate`` over a feedback corpus on generated worlds: how often the validated
ground truth is the generator's, how much is validated (accepted without edits), how long it
takes per label.

    .venv/bin/python tests/benchmarks/bench_validate.py [--set core] [--labels 40] [--shortcuts]
                                                        [--investigator reference|none]

The corpus is the one ``tests/test_validate.py`` builds (per fault label: right, wrong with the
true correction, wrong with a loosely worded correction, the agent's wrong culprit marked right,
a contradictory correction, "<symptom> was slow after the <change>", "it was slow", a "wrong" on
the true answer; per no-fault label: a right no-fault, a culprit blamed on it). Every
validated candidate is then accepted as is into a scratch label set, and the set linted: the
share accepted without edits is the share validated whose label lints clean.
"""

from __future__ import annotations

import argparse
import collections
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def main() -> int:
    from evaluator_agent.core.labels import load_labelset
    from evaluator_agent.labelops.drafting import draft_candidate
    from evaluator_agent.labelops.investigator import TargetInvestigator
    from evaluator_agent.labelops.queue import Queue
    from evaluator_agent.labelops.records import parse_record
    from evaluator_agent.labelops.sources import to_source
    from evaluator_agent.labelops.validate import Validator
    from evaluator_agent.lint.checks import lint_labelset
    from mock_agents.inprocess import ROSTER
    from tests.test_validate import RESOLVABLE, WRONG, corpus

    ap = argparse.ArgumentParser()
    ap.add_argument("--set", default="core")
    ap.add_argument("--labels", type=int, default=40, help="first N labels of the set (0: all)")
    ap.add_argument("--investigator", choices=("reference", "none"), default="reference")
    ap.add_argument("--shortcuts", action="store_true", help="also run the shortcut battery on each grounded label")
    ap.add_argument("--threshold", type=float, default=0.7)
    a = ap.parse_args()
    labels = load_labelset(a.set).labels
    labels = labels[: a.labels] if a.labels else labels
    inv = TargetInvestigator(lambda: ROSTER.make_target("methodical"), "methodical") if a.investigator == "reference" else None
    tmp = Path(tempfile.mkdtemp(prefix="bench-validate-"))
    cases = {}
    chains = {lb.id: lb.ground_truth.causal_chain for lb in labels}
    with Queue(tmp / "q.db") as q:
        for kind, truth, rec in corpus(labels):
            c, _ = q.add(draft_candidate(to_source(parse_record(rec))))
            cases[c.id] = (kind, truth)
        t0 = time.perf_counter()
        outs = Validator(threshold=a.threshold, investigator=inv, shortcuts=ROSTER if a.shortcuts else None).run(q)
        wall = time.perf_counter() - t0
        by: dict[str, list[tuple[str, bool]]] = collections.defaultdict(list)
        chain_ok: dict[str, int] = collections.Counter()
        bands: dict[str, list[int]] = {}  # confidence band -> [right, wrong] (root cause vs truth)
        for o in outs:
            kind, truth = cases[o.candidate_id]
            by[kind].append((o.status, o.root_cause == truth))
            if o.confidence is not None and kind in RESOLVABLE | WRONG:
                band = f"{min(0.95, int(o.confidence * 20) / 20):.2f}"
                bands.setdefault(band, [0, 0])[0 if o.root_cause == truth else 1] += 1
            c = q.get(o.candidate_id)
            if o.status == "validated" and o.root_cause == truth:
                chain_ok[kind] += c.draft["ground_truth"].get("causal_chain") == chains[c.feedback_id.split("-")[0]]
            if o.status == "validated" and o.root_cause != truth:
                print(f"validated wrong: {kind} {q.get(o.candidate_id).feedback_id}: {o.root_cause} (truth {truth}), "
                      f"confidence {o.confidence}; " + "; ".join(o.reasons[:6]), file=sys.stderr)
        accepted = 0
        for o in outs:
            if o.status == "validated":
                q.accept(o.candidate_id, "bench", "accepted", tmp / "sets")
                accepted += 1
        lint = lint_labelset("accepted", labelsets_root=tmp / "sets") if accepted else None
    bad = {p.label_id for p in lint.problems if p.severity == "error"} if lint else set()
    print(f"validate benchmark: {a.set}, {len(labels)} labels, {len(outs)} feedback records, investigator "
          f"{a.investigator}, shortcuts {'on' if a.shortcuts else 'off'}, threshold {a.threshold}\n")
    print(f"{'kind':16s} {'n':>4s} {'validated':>9s} {'truth':>6s} {'validated wrong':>15s} {'chain = truth':>13s}")
    for kind in sorted(by):
        v = by[kind]
        print(f"{kind:16s} {len(v):4d} {sum(s == 'validated' for s, _ in v):9d} {sum(m for _, m in v):6d} "
              f"{sum(s == 'validated' and not m for s, m in v):15d} {chain_ok[kind]:13d}")
    res = [x for k, v in by.items() if k in RESOLVABLE for x in v]
    wrong = [x for k, v in by.items() if k in WRONG for x in v]
    n_valid = sum(s == "validated" for k, v in by.items() for s, _ in v)
    print(f"\nresolvable: truth on {sum(m for _, m in res)}/{len(res)} ({sum(m for _, m in res) / len(res):.1%}), "
          f"validated {sum(s == 'validated' for s, _ in res)}/{len(res)}")
    print(f"wrong or contradictory: validated {sum(s == 'validated' for s, _ in wrong)}/{len(wrong)}")
    print(f"validated with a wrong root cause: {sum(s == 'validated' and not m for v in by.values() for s, m in v)}")
    print(f"accepted without edits: {accepted - len(bad)}/{len(outs)} ({(accepted - len(bad)) / len(outs):.1%}) "
          f"(validated {n_valid}; {len(bad)} of them fail lint once promoted)")
    print(f"seconds of validation per label: {wall / len(outs):.3f} (wall {wall:.1f} s)")
    print("\nconfidence band: candidates whose root cause is the truth / is not")
    for band in sorted(bands, reverse=True):
        right, wrong = bands[band]
        print(f"  >= {band}: {right:4d} / {wrong:3d}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
