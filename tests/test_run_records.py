"""A stored run is a self-contained record: the summary stored when it ended is the one every
command shows, and its figures never change when its label set is edited or deleted afterwards
(issue 12)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import anyio.to_thread
import pytest

from evaluator_agent.cli.main import main
from evaluator_agent.core.labels import labelsets_dir
from tests.conftest import serve_app
from tests.targets import build_targets_app

pytestmark = pytest.mark.anyio
# added by `show` (they depend on the runs stored since), never part of the stored summary
_LIVE_KEYS = {"previous_run", "newly_failing", "newly_passing"}


def _no_fault(_turn: int, _msg: dict[str, Any]) -> dict[str, Any]:
    return {"diagnosis": {"no_fault": True, "summary": "nothing wrong"}}


async def _cli(capsys: Any, *args: str) -> Any:
    code = await anyio.to_thread.run_sync(lambda: main(list(args)))
    out = capsys.readouterr().out
    assert code == 0, out
    return json.loads(out) if args[-1] == "--json" else out


async def _views(capsys: Any, db: str, run_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    listed = {r["run_id"]: r for r in await _cli(capsys, "runs", "--db", db, "--json")}
    shown = await _cli(capsys, "show", run_id, "--db", db, "--json")
    return listed[run_id]["summary"], {k: v for k, v in shown["summary"].items() if k not in _LIVE_KEYS}


async def test_runs_and_show_agree_after_the_label_set_is_edited_or_deleted(tmp_path: Path, monkeypatch, capsys) -> None:
    home = tmp_path / "labelsets"
    shutil.copytree(labelsets_dir() / "smoke", home / "smoke")
    monkeypatch.setenv("PROCTOR_LABELSETS", str(home))
    files = sorted((home / "smoke").glob("lbl_*.json"))[:3]
    ids = [f.stem for f in files]
    db = str(tmp_path / "r.db")
    async with serve_app(lambda b: build_targets_app(b, {"t": (_no_fault, False)})) as targets:
        out = tmp_path / "run.json"
        await _cli(capsys, "run", "--target", f"{targets}/t/.well-known/agent-card.json", "--db", db,
                   "--labels", *ids, "--json", str(out), "--quiet")
    run_id = json.loads(out.read_text())["run_id"]
    listed, shown = await _views(capsys, db, run_id)
    assert listed == shown and listed["n"] == 3
    tiers_before = listed["breakdown"]["tier"]

    # Edit every label's tier and taxonomy: the run's figures are those of the labels it ran.
    for f in files:
        doc = json.loads(f.read_text())
        doc["difficulty"]["tier"] = "hard" if doc["difficulty"]["tier"] != "hard" else "easy"
        doc["taxonomy"]["segment"] = "edited-afterwards"
        f.write_text(json.dumps(doc))
    listed, shown = await _views(capsys, db, run_id)
    assert listed == shown and listed["breakdown"]["tier"] == tiers_before
    assert "edited-afterwards" not in json.dumps(shown)

    # Delete the label set: the run is still whole.
    shutil.rmtree(home / "smoke")
    listed, shown = await _views(capsys, db, run_id)
    assert listed == shown and listed["breakdown"]["tier"] == tiers_before
    report = await _cli(capsys, "report", run_id, "--db", db, "--markdown")
    assert "pass@1" in report


async def test_a_private_run_keeps_no_truth_in_its_manifest(tmp_path: Path, monkeypatch, capsys) -> None:
    """The frozen label metadata of a private set holds what the target is shown anyway."""
    from evaluator_agent.results.store import Store

    home = tmp_path / "labelsets"
    shutil.copytree(labelsets_dir() / "smoke", home / "smoke")
    meta = json.loads((home / "smoke" / "labelset.json").read_text())
    (home / "smoke" / "labelset.json").write_text(json.dumps(meta | {"private": True}))
    monkeypatch.setenv("PROCTOR_LABELSETS", str(home))
    ids = [f.stem for f in sorted((home / "smoke").glob("lbl_*.json"))[:2]]
    db = str(tmp_path / "p.db")
    async with serve_app(lambda b: build_targets_app(b, {"t": (_no_fault, False)})) as targets:
        await _cli(capsys, "run", "--target", f"{targets}/t/.well-known/agent-card.json", "--db", db,
                   "--labels", *ids, "--quiet")
    store = Store(db)
    try:
        (run,) = store.list_runs()
        frozen = run["manifest"]["label_meta"]
    finally:
        store.close()
    assert set(frozen) == set(ids)
    truth = json.loads((home / "smoke" / f"{ids[0]}.json").read_text())["taxonomy"]
    for m in frozen.values():
        assert set(m) == {"tier", "monitor_type", "family"}
    assert truth["mechanism"] not in json.dumps(frozen) and truth["segment"] not in json.dumps(frozen)
