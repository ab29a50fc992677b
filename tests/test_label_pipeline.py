"""A team's own incident becomes a label, end to end over HTTP, through the CLI a user types:

1. a generated world is served by the Datadog REST facade (uvicorn on 127.0.0.1);
2. ``proctor capture --monitor ID`` reads it through ``datadog-api-client`` into a snapshot;
3. a feedback record, the issue's own words: "<paged service> was slow after the deploy", the
   agent's diagnosis marked wrong, no correction;
4. ``proctor labels draft`` -> ``proctor labels validate`` (the reference investigator resolves
   the vague claim; lint and the shortcut battery run on the grounded label) -> validated
   with confidence, the generator's truth;
5. ``proctor labels review accept`` promotes it into a label set with provenance;
6. ``proctor labels lint`` finds it clean;
7. ``proctor run`` evaluates ``methodical`` (an ADK mock agent over A2A) on it.

The generator's truth is never shown to the pipeline: it only checks the result.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio.to_thread
import pytest

from evaluator_agent.cli.main import main as cli_main
from evaluator_agent.core.labels import load_labelset, snapshots_dir
from evaluator_agent.telemetry.world import load_snapshot_dict
from tests.conftest import serve_app
from tests.test_capture import serve_world

pytestmark = pytest.mark.anyio

#: smoke world: orders -> partner-api -> api-gateway, a deploy of orders; the page is api-gateway's latency
LABEL = "lbl_f2ac2901c2"


def _cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = cli_main(args)
    out = capsys.readouterr().out
    return code, out


async def test_capture_feedback_validate_accept_lint_evaluate(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    truth = load_labelset("smoke").get(LABEL)
    gt = truth.ground_truth
    data = load_snapshot_dict(truth.world.snapshot, snapshots_dir())
    snaps, sets, queue = tmp_path / "snapshots", tmp_path / "labelsets", tmp_path / "queue.db"

    # 1-2: the capture, through the CLI, against the world served as the Datadog API
    with serve_world(data) as served:
        monkeypatch.setenv("DD_API_KEY", served.token)
        monkeypatch.setenv("DD_APP_KEY", served.token)
        code, _ = _cli(["capture", "--monitor", str(truth.task.trigger.monitor_id), "--api-url", served.url,
                        "--dir", str(tmp_path / "capture"), "--snapshots", str(snaps),
                        "--label-out", str(tmp_path / "draft.json"), "--quiet"], capsys)
    for key in ("DD_API_KEY", "DD_APP_KEY"):  # with keys set, `proctor run` would report to Datadog
        monkeypatch.delenv(key)
    assert code == 0
    captured = json.loads((tmp_path / "draft.json").read_text())
    digest = captured["world"]["snapshot"]
    assert (snaps / f"{digest}.json.gz").is_file() and digest != truth.world.snapshot  # a new world, its own hash

    # 3: the feedback: vague, the agent's culprit marked wrong, no correction
    trig = captured["task"]["trigger"]
    blamed = gt.must_not_blame[0].entity
    record = {"id": "fb-0042", "kind": "feedback", "verdict": "wrong",
              "comment": f"{gt.first_symptom} was slow after the deploy",
              "investigation": {"agent": "acme-sre 2.1", "fired_at": trig["fired_at"],
                                "monitor": {"id": trig["monitor_id"], "name": trig["title"]},
                                "diagnosis": {"root_causes": [{"entity": blamed, "mechanism": "bad_release"}]}},
              "world": {"snapshot": digest, **{k: captured["world"][k] for k in ("incident_window", "baseline_window")}},
              "provenance": {"source_incident": "INC-4242", "reporter": "alice"}}
    feedback = tmp_path / "feedback.jsonl"
    feedback.write_text(json.dumps(record) + "\n")

    # 4: draft, validate
    code, out = _cli(["labels", "draft", str(feedback), "--into", str(queue), "--json"], capsys)
    assert code == 0, out
    code, out = _cli(["labels", "validate", "--queue", str(queue), "--snapshots", str(snaps), "--json"], capsys)
    assert code == 0, out
    report: dict[str, Any] = json.loads(out)
    (o,) = report["outcomes"]
    assert o["status"] == "validated" and o["confidence"] >= 0.7, o
    assert o["root_cause"] == gt.root_causes[0].entity  # the generator's truth, never shown to the pipeline
    assert report["seconds_per_label"] > 0

    # 5: a reviewer accepts it
    code, out = _cli(["labels", "review", "accept", o["candidate_id"], "--queue", str(queue), "--reviewer", "bob",
                      "--into", "ours", "--labelsets-root", str(sets), "--json"], capsys)
    assert code == 0, out
    monkeypatch.setenv("PROCTOR_LABELSETS", str(sets))
    monkeypatch.setenv("PROCTOR_SNAPSHOTS", str(snaps))
    ours = load_labelset("ours")
    (label,) = ours.labels
    assert label.ground_truth.root_causes[0].entity == gt.root_causes[0].entity
    assert label.ground_truth.causal_chain == gt.causal_chain
    assert label.ground_truth.mechanism == gt.mechanism
    assert label.world.snapshot == digest
    prov = json.loads((sets / "ours" / "provenance" / f"{label.id}.json").read_text())
    assert prov["reviewer"] == "bob" and "INC-4242" in json.dumps(prov)
    assert prov["validation"]["confidence"] == o["confidence"]

    # 6: lint clean
    code, out = _cli(["labels", "lint", "ours", "--json"], capsys)
    lint = json.loads(out)
    assert code == 0 and not [p for p in lint["problems"] if p["severity"] == "error"], lint["problems"]

    # 7: methodical is evaluated on it, over A2A
    from mock_agents.server import create_app

    async with serve_app(lambda base: create_app(agents=["methodical"], base_url=base)) as agents:
        card = f"{agents}/methodical/.well-known/agent-card.json"
        result = tmp_path / "run.json"
        code = await anyio.to_thread.run_sync(lambda: cli_main(
            ["run", "--target", card, "--labelset", "ours", "--db", str(tmp_path / "runs.db"), "--json", str(result),
             "--quiet"]))
    assert code == 0
    run = json.loads(result.read_text())
    assert run["labelset"]["name"] == "ours" and run["labelset"]["hash"] == ours.content_hash
    (inv,) = run["investigations"]
    assert inv["label_id"] == label.id and inv["end_reason"] == "diagnosis"
    assert inv["passed"], inv
