"""CLI commands that need no running target."""

from __future__ import annotations

import json

from evaluator_agent.cli.main import main
from evaluator_agent.core.labels import Label, load_labelset
from evaluator_agent.telemetry.world import load_snapshot


def test_env_generate_is_deterministic(tmp_path, capsys) -> None:
    outs = []
    for i in range(2):
        code = main(["env", "generate", "--mechanism", "connection_pool_exhaustion", "--seed", "11", "--services", "24",
                     "--out", str(tmp_path / f"w{i}"), "--label", str(tmp_path / f"l{i}.json")])
        assert code == 0
        outs.append(json.loads(capsys.readouterr().out))
    assert outs[0]["snapshot"] == outs[1]["snapshot"] and outs[0]["snapshot_noise_free"] == outs[1]["snapshot_noise_free"]
    a = (tmp_path / "w0" / f"{outs[0]['snapshot']}.json.gz").read_bytes()
    b = (tmp_path / "w1" / f"{outs[1]['snapshot']}.json.gz").read_bytes()
    assert a == b
    label = Label.model_validate_json((tmp_path / "l0.json").read_text())
    assert label.world.snapshot == outs[0]["snapshot"]
    world = load_snapshot(outs[0]["snapshot"], tmp_path / "w0")
    assert len(world.topology.services) >= 20


def test_env_generate_usage_errors(capsys) -> None:
    assert main(["env", "generate"]) == 2
    assert main(["env", "generate", "--mechanism", "no_such_thing"]) == 2
    assert "unknown mechanism" in capsys.readouterr().err


def test_labels_list_json(capsys) -> None:
    assert main(["labels", "list", "smoke", "--json"]) == 0
    items = json.loads(capsys.readouterr().out)
    assert len(items) == len(load_labelset("smoke").labels)
    for it in items:
        assert {"id", "segment", "difficulty", "no_fault", "mechanism"} <= set(it)
        assert it["difficulty"] in ("easy", "medium", "hard") and isinstance(it["no_fault"], bool)


def test_schemas_and_unknown_set(capsys) -> None:
    assert main(["labels", "schema"]) == 0
    assert "ground_truth" in json.loads(capsys.readouterr().out)["properties"]
    assert main(["protocol", "schema"]) == 0
    proto = json.loads(capsys.readouterr().out)
    assert set(proto["target_to_proctor"]) == {"tool_calls", "diagnosis"}
    assert main(["labels", "list", "nope"]) == 1
    assert "unknown label set" in capsys.readouterr().err


def test_run_rejects_bad_arguments(capsys, tmp_path) -> None:
    assert main(["run", "--target", "not-a-url", "--db", str(tmp_path / "x.db")]) == 2
    assert "not an http" in capsys.readouterr().err
    assert main(["run", "--db", str(tmp_path / "x.db")]) == 2
    assert "--target" in capsys.readouterr().err
    assert main(["run", "--resume", "run_nope", "--db", str(tmp_path / "x.db")]) == 2
    assert "no run 'run_nope' to resume" in capsys.readouterr().err


def test_labels_lint_exit_codes(tmp_path, capsys) -> None:
    import shutil

    assert main(["labels", "lint", "smoke"]) == 0
    assert "PASS" in capsys.readouterr().out
    broken = tmp_path / "broken"
    shutil.copytree(load_labelset("smoke").path, broken)
    victim = sorted(broken.glob("lbl_*.json"))[0]
    victim.write_text(victim.read_text().replace('"schema_version"', '"schema_versoin"'))
    assert main(["labels", "lint", str(broken)]) == 1
    out = capsys.readouterr().out
    assert "label.schema" in out and victim.stem in out
