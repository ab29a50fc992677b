"""History across runs: `proctor history LABEL` and newly failing/passing labels per run."""

from __future__ import annotations

import json
import time

from evaluator_agent.cli.main import main
from evaluator_agent.core.records import InvestigationResult
from evaluator_agent.results.store import Store


def _run(store: Store, run_id: str, target: str, outcomes: dict[str, list[bool]]) -> None:
    store.create_run(run_id, {"target": {"name": target, "version": "1", "url": "http://x"}, "labelset": {"name": "smoke", "hash": "h"}})
    for label, attempts in outcomes.items():
        for i, ok in enumerate(attempts, 1):
            store.record_investigation(run_id, InvestigationResult(
                f"inv-{run_id}-{label}-{i}", label, i, "ctx", time.time(), finished_at=time.time() + 1,
                end_reason="diagnosis", score=0.9 if ok else 0.1, passed=ok))
    store.finish_run(run_id, "completed", {})
    time.sleep(0.01)  # distinct created_at ordering


def test_newly_failing_and_passing_against_previous_run_of_same_target(tmp_path) -> None:
    db = Store(tmp_path / "h.db")
    _run(db, "r1", "agent-a", {"lbl_a": [True], "lbl_b": [False], "lbl_c": [True, True]})
    _run(db, "r_other", "agent-b", {"lbl_a": [False], "lbl_b": [True]})  # another target: ignored
    _run(db, "r2", "agent-a", {"lbl_a": [False], "lbl_b": [True], "lbl_c": [True, False, True], "lbl_new": [True]})
    s = db.result("r2").as_dict()["summary"]
    assert s["previous_run"] == "r1"
    assert s["newly_failing"] == ["lbl_a"] and s["newly_passing"] == ["lbl_b"]
    first = db.result("r1").as_dict()["summary"]
    assert first["previous_run"] is None and first["newly_failing"] == []


def test_history_command(tmp_path, capsys) -> None:
    db = Store(tmp_path / "h.db")
    _run(db, "r1", "agent-a", {"lbl_a": [True]})
    _run(db, "r2", "agent-b", {"lbl_a": [False, True]})
    db.close()
    assert main(["history", "lbl_a", "--db", str(tmp_path / "h.db"), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["run_id"], r["target_name"], r["attempt"], r["passed"]) for r in rows] == [
        ("r2", "agent-b", 1, False), ("r2", "agent-b", 2, True), ("r1", "agent-a", 1, True)]
    assert main(["history", "lbl_a", "--db", str(tmp_path / "h.db")]) == 0
    assert "agent-b" in capsys.readouterr().out
