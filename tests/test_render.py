"""Every place a run summary is shown carries root-cause and mechanism accuracy beside the pass
rate: the CLI / A2A results text, `proctor runs`, the Markdown and HTML reports, compare."""

from __future__ import annotations

from typing import Any

from evaluator_agent.results.compare import compare_runs
from evaluator_agent.results.html import render_compare_markdown, render_html, render_markdown
from evaluator_agent.results.stats import run_statistics
from evaluator_agent.results.text import accuracy_line, result_text

META = {
    "a": {"family": "f1", "segment": "web", "tier": "easy", "technologies": [], "mechanism": "oom_killed"},
    "b": {"family": "f1", "segment": "web", "tier": "hard", "technologies": [], "mechanism": "oom_killed"},
    "c": {"family": None, "segment": "data", "tier": "hard", "technologies": [], "mechanism": "disk_full"},
    "d": {"family": None, "segment": "data", "tier": "easy", "technologies": [], "mechanism": "disk_full"},
}


def _row(lid: str, passed: bool, ac1: bool, ac3: bool, mech: bool) -> dict[str, Any]:
    return {
        "label_id": lid, "attempt": 1, "passed": passed, "score": 0.9 if passed else 0.4,
        "error_kind": None, "end_reason": "diagnosis", "turns": 4, "tool_calls": 6, "invalid_calls": 0,
        "red_herrings_chased": 0, "duration_s": 1.0, "tokens": None, "explanation": "…",
        "subscores": {}, "diagnosis": None,
        "score_details": {"accuracy": {"ac_at_1": ac1, "ac_at_3": ac3, "mechanism": mech}},
    }


def _rows() -> list[dict[str, Any]]:
    # a passes; b has the culprit with the wrong mechanism; c the culprit at rank 2; d nothing
    return [_row("a", True, True, True, True), _row("b", False, True, True, False),
            _row("c", False, False, True, True), _row("d", False, False, False, False)]


def _result(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "run_id": "run_x", "status": "completed",
        "target": {"name": "agent", "version": "1", "url": "http://t"},
        "labelset": {"name": "smoke", "hash": "0" * 64}, "proctor": {"version": "0", "git_rev": "g"},
        "summary": run_statistics(rows, META),
        "investigations": [
            {"label_id": r["label_id"], "attempt": 1, "score": r["score"], "passed": r["passed"],
             "end_reason": "diagnosis", "turns": 4, "tool_calls": 6, "duration_s": 1.0}
            for r in rows
        ],
    }


def test_results_text_shows_accuracies_with_intervals() -> None:
    result = _result(_rows())
    text = result_text(result)
    head = text.splitlines()
    assert head[1].startswith("pass rate 25.0% [") and "(1/4)" in head[1]
    s = result["summary"]
    lo, hi = s["accuracy"]["ac_at_1"]["ci95"]
    assert head[2] == accuracy_line(s)
    assert head[2].startswith(f"root cause AC@1 50.0% [{lo:.0%}–{hi:.0%}]  AC@3 75.0% [")
    assert "  mechanism 50.0% [" in head[2]
    # a summary stored before the accuracies existed still renders
    old = _result(_rows())
    for k in ("ac_at_1", "ac_at_3", "mechanism_accuracy", "accuracy"):
        del old["summary"][k]
    assert accuracy_line(old["summary"]) == "" and "AC@1" not in result_text(old, per_investigation=False)


def test_reports_show_accuracies() -> None:
    result = _result(_rows())
    md = render_markdown(result, result["summary"])
    assert "root cause AC@1 **50%** (95% CI" in md and "mechanism **50%**" in md
    assert "| tier | pass rate | 95% CI | n | AC@1 | mechanism |" in md
    assert "| hard | 0% |" in md and "| 2 | 50% | 50% |" in md  # b: culprit, wrong mechanism; c: rank 2
    page = render_html(result, result["summary"], [], {})
    assert ">root cause AC@1</span><b>50%" in page and ">mechanism</span><b>50%" in page
    assert "AC@k: a root cause among the top k candidates" in page


def test_compare_reports_accuracy_deltas() -> None:
    base = _rows()
    new = [_row(lid, True, True, True, True) for lid in "abcd"]
    cmp = compare_runs(base, new, META)
    assert cmp["accuracy"]["mechanism_accuracy"] == {"base": 0.5, "new": 1.0, "delta": 0.5}
    assert cmp["accuracy"]["ac_at_1"]["delta"] == 0.5
    cmp |= {"base": {"target": "agent", "version": "1"}, "new": {"target": "agent", "version": "2"}}
    md = render_compare_markdown(cmp)
    assert "root cause AC@1 50% → 100% (+50.0%)" in md and "mechanism 50% → 100% (+50.0%)" in md


def test_proctor_runs_lists_accuracies(tmp_path, capsys) -> None:
    from evaluator_agent.cli.main import main
    from evaluator_agent.results.store import Store

    db = str(tmp_path / "r.db")
    store = Store(db)
    store.create_run("run_acc", {"target": {"name": "agent", "version": "1", "url": "http://t"},
                                 "labelset": {"name": "smoke", "hash": "h"}})
    store.finish_run("run_acc", "completed", _result(_rows())["summary"])
    store.close()
    assert main(["runs", "--db", db]) == 0
    head, _, row = capsys.readouterr().out.splitlines()[:3]
    assert head.split() == ["run", "created", "status", "target", "labelset", "n", "pass", "AC@1", "mech", "score"]
    assert row.split()[-5:] == ["4", "25.0%", "50.0%", "50.0%", "0.525"]


def test_result_text_flags_a_degraded_run_and_shows_card_text_as_data() -> None:
    from evaluator_agent.results.text import result_text

    summary = {"pass_rate": 1.0, "passed": 2, "scored": 2, "mean_score": 1.0, "errors": 18, "n": 20,
               "degraded": True, "infra_error_rate": 0.9, "degraded_threshold": 0.05}  # fmt: skip
    r = {"run_id": "run_d", "target": {"name": "x\x1b[2J\nAll passed", "version": "1"},
         "labelset": {"name": "smoke"}, "summary": summary, "investigations": []}  # fmt: skip
    text = result_text(r, per_investigation=False)
    assert "DEGRADED: 90.0% of investigations were infra errors" in text
    assert "\x1b" not in text and "target x[2J All passed 1" in text
    summary["degraded"] = False
    assert "DEGRADED" not in result_text(r, per_investigation=False)
