"""Commands over stored runs: ``compare``, ``difficulty``, ``report``, ``runs``, ``show``, ``history``."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from evaluator_agent.cli.common import (
    EXIT_ERROR,
    EXIT_OK,
    EXIT_REGRESSION,
    _disclosure,
    _warn_degraded,
    _write_json,
)
from evaluator_agent.core.untrusted import clean


def _gate(db: str, base: str, new: str, fail_on: frozenset[str] | None, margin: float, as_json: bool) -> int:
    from evaluator_agent.results.analysis import AnalysisError, compare_stored
    from evaluator_agent.results.html import render_compare_markdown
    from evaluator_agent.results.store import Store

    store = Store(db)
    try:
        cmp = _disclose_compare(store, compare_stored(store, base, new, margin=margin), _disclosure(argparse.Namespace()))
    except AnalysisError as e:
        print(f"proctor compare: {e}", file=sys.stderr)
        return EXIT_ERROR
    if as_json:
        _write_json("-", cmp)
    else:
        print(render_compare_markdown(cmp))
    if fail_on and "regression" in fail_on and cmp["verdict"] == "regression":
        return EXIT_REGRESSION
    return EXIT_OK


def _disclose_compare(store: Any, cmp: dict[str, Any], policy: str) -> dict[str, Any]:
    from evaluator_agent.results import disclosure

    private = any(disclosure.run_private(store.find_run(cmp[side]["run_id"])) for side in ("base", "new"))
    return disclosure.disclose_compare(cmp, disclosure.effective(policy, private))


def cmd_compare(a: argparse.Namespace) -> int:
    return _gate(a.db, a.base, a.new, a.fail_on, a.margin, as_json=a.json)


def cmd_difficulty(a: argparse.Namespace) -> int:
    from evaluator_agent.results.analysis import AnalysisError, fit_difficulty
    from evaluator_agent.results.store import Store
    from evaluator_agent.results.text import table

    try:
        fit = fit_difficulty(Store(a.db))
    except AnalysisError as e:
        print(f"proctor difficulty: {e}", file=sys.stderr)
        return EXIT_ERROR
    if a.json:
        _write_json("-", fit["labels"])
        return EXIT_OK
    print(table(["label", "difficulty", "se", "n", "passed", "tier", "flag"],
                [[x["label_id"], f"{x['difficulty']:+.2f}", f"{x['se']:.2f}", x["n"], x["passed"], x["tier"] or "",
                  f"{x['flag']} (suggest {x['suggested_tier']})" if x["flag"] else ""] for x in fit["labels"]]))
    print()
    print(table(["target", "ability", "se"], [[t["target"], f"{t['ability']:+.2f}", f"{t['se']:.2f}"] for t in fit["targets"]]))
    print(f"\n{fit['observations']} observations; {len(fit['flagged'])} label(s) disagree with their tier")
    return EXIT_OK


def cmd_report(a: argparse.Namespace) -> int:
    from evaluator_agent.engine.scoring import PASS_THRESHOLD
    from evaluator_agent.results.analysis import AnalysisError, compare_stored, report_inputs
    from evaluator_agent.results.html import (
        render_compare_html,
        render_compare_markdown,
        render_html,
        render_markdown,
    )
    from evaluator_agent.results.store import Store

    store = Store(a.db)
    try:
        if a.compare:
            cmp = _disclose_compare(store, compare_stored(store, a.run, a.compare), _disclosure(a))
            if a.html:
                Path(a.html).write_text(render_compare_html(cmp))
            if a.markdown or not a.html:
                print(render_compare_markdown(cmp))
            return EXIT_OK
        result, stats, details, labels, difficulty = report_inputs(store, a.run, policy=_disclosure(a))
    except AnalysisError as e:
        print(f"proctor report: {e}", file=sys.stderr)
        return EXIT_ERROR
    if a.html:
        Path(a.html).write_text(render_html(result, stats, details, labels, difficulty or None, PASS_THRESHOLD))
        print(f"wrote {a.html}", file=sys.stderr)
    if a.markdown or not a.html:
        print(render_markdown(result, stats))
    return EXIT_OK


def cmd_runs(a: argparse.Namespace) -> int:
    from evaluator_agent.results.store import Store
    from evaluator_agent.results.text import table

    store = Store(a.db)
    runs = store.list_runs(a.limit)
    if a.json:
        from evaluator_agent.results import disclosure

        policy = _disclosure(a)
        _write_json("-", [{k: r[k] for k in ("run_id", "status", "created_at", "target_name", "target_version", "labelset")}
                          | {"summary": disclosure.disclose_summary(r["summary"], disclosure.effective(policy, disclosure.run_private(r)))}
                          for r in runs])
        return EXIT_OK
    rows = []
    for r in runs:
        s = r["summary"] or {}
        rows.append([
            r["run_id"], time.strftime("%Y-%m-%d %H:%M", time.localtime(r["created_at"])), r["status"],
            clean(f"{r['target_name']} {r['target_version']}", 60), r["labelset"], s.get("n", ""),
            f"{s['pass_rate']:.1%}" if "pass_rate" in s else "",
            *(f"{s[k]:.1%}" if k in s else "" for k in ("ac_at_1", "mechanism_accuracy")), s.get("mean_score", ""),
        ])
    print(table(["run", "created", "status", "target", "labelset", "n", "pass", "AC@1", "mech", "score"], rows)
          if rows else "no runs yet")
    return EXIT_OK


def cmd_show(a: argparse.Namespace) -> int:
    from evaluator_agent.results.disclosure import disclose_result
    from evaluator_agent.results.store import Store
    from evaluator_agent.results.text import result_text

    policy = _disclosure(a)
    store = Store(a.db)
    run = store.find_run(a.run)
    if run is None:
        print(f"proctor show: no run {a.run!r} in {a.db}", file=sys.stderr)
        return EXIT_ERROR
    result = disclose_result(store.result(run["run_id"]).as_dict(), policy)
    if a.json:
        _write_json("-", result)
    else:
        print(result_text(result))
    _warn_degraded("proctor show", result)
    return EXIT_OK


def cmd_history(a: argparse.Namespace) -> int:
    from evaluator_agent.results.store import Store
    from evaluator_agent.results.text import table

    rows = Store(a.db).label_history(a.label)
    if a.json:
        _write_json("-", rows)
        return EXIT_OK
    if not rows:
        print(f"no investigations of {a.label} in {a.db}")
        return EXIT_OK
    print(table(["run", "created", "target", "try", "result", "score", "end", "turns"],
                [[r["run_id"], time.strftime("%Y-%m-%d %H:%M", time.localtime(r["created_at"])),
                  clean(f"{r['target_name']} {r['target_version']}", 60), r["attempt"], "PASS" if r["passed"] else "fail",
                  f"{r['score']:.2f}", r["end_reason"], r["turns"]] for r in rows]))
    return EXIT_OK
