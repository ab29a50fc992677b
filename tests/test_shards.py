"""Batch sharding: `proctor run --shard I/N` slices labels x attempts; `proctor merge` joins the
shard databases into one run equal to the unsharded run for a deterministic target."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path
from typing import Any

import anyio
import pytest

from evaluator_agent.cli.main import main
from evaluator_agent.core.labels import load_labelset
from evaluator_agent.core.records import RequestError
from evaluator_agent.datadog import observability
from evaluator_agent.engine.orchestrator import parse_shard, shard_slice
from evaluator_agent.results.store import Store
from tests.conftest import serve_app
from tests.targets import build_targets_app

pytestmark = pytest.mark.anyio


def _deterministic(turn: int, msg: dict[str, Any]) -> dict[str, Any]:
    """Looks at the monitors, then blames the first service they name: label-dependent outcomes."""
    if turn == 1:
        return {"tool_calls": [{"id": "m", "name": "get_monitors", "arguments": {}}]}
    found = re.findall(r"service:([a-z0-9][a-z0-9_.-]*)", json.dumps(msg.get("tool_results", [])))
    if not found:
        return {"diagnosis": {"no_fault": True}}
    return {"diagnosis": {"root_causes": [{"service": found[0], "mechanism": "bad_deploy", "confidence": 0.6}],
                          "summary": f"{found[0]} alerts first"}}


TIMING = re.compile(r"duration|_at$|^run_id$|previous_run")


def _strip(obj: Any) -> Any:
    """Drop what legitimately differs between two runs of the same work: ids and timings."""
    if isinstance(obj, dict):
        return {k: _strip(v) for k, v in obj.items() if not TIMING.search(k)}
    if isinstance(obj, list):
        return [_strip(v) for v in obj]
    return obj


async def _cli(*argv: str) -> int:
    return await anyio.to_thread.run_sync(main, list(argv))


def test_shard_slices_cover_every_pair_once() -> None:
    labels = load_labelset("smoke").labels
    pairs = [(lb, a) for a in (1, 2, 3) for lb in labels]
    for n in range(1, 6):
        slices = [shard_slice(pairs, (i, n)) for i in range(n)]
        keys = [(lb.id, a) for s in slices for lb, a in s]
        assert sorted(keys) == sorted((lb.id, a) for lb, a in pairs) and len(keys) == len(set(keys))
        assert max(map(len, slices)) - min(map(len, slices)) <= 1
    assert shard_slice(pairs, (1, 3)) == shard_slice(list(reversed(pairs)), (1, 3)), "independent of input order"
    assert parse_shard(None) is None and parse_shard("2/4") == (2, 4)
    for bad in ("4/4", "-1/3", "1", "a/b", "0/0"):
        with pytest.raises(RequestError):
            parse_shard(bad)


async def test_sharded_then_merged_equals_unsharded(tmp_path: Path, monkeypatch, capsys) -> None:
    async with serve_app(lambda base: build_targets_app(base, {"det": (_deterministic, False)})) as base:
        card = f"{base}/det/.well-known/agent-card.json"
        common = ["run", "--target", card, "--labelset", "smoke", "--attempts", "2", "--quiet", "--concurrency", "4"]
        assert await _cli(*common, "--run-id", "run_whole", "--db", str(tmp_path / "whole.db"),
                          "--json", str(tmp_path / "whole.json")) == 0
        shards = [tmp_path / f"shard{i}.db" for i in range(3)]
        for i in (0, 1):
            assert await _cli(*common, "--run-id", "run_sharded", "--shard", f"{i}/3", "--db", str(shards[i]),
                              "--datadog-dry-run", str(tmp_path / "dd_shards.jsonl")) == 0
        # the third shard as Cloud Run Jobs starts it: shard and run id from the environment
        monkeypatch.setenv("CLOUD_RUN_TASK_INDEX", "2")
        monkeypatch.setenv("CLOUD_RUN_TASK_COUNT", "3")
        monkeypatch.setenv("CLOUD_RUN_EXECUTION", "run_sharded")
        assert await _cli(*common, "--db", str(shards[2])) == 0
    whole = json.loads((tmp_path / "whole.json").read_text())
    n = whole["summary"]["n"]
    assert n == 16 and 0 < whole["summary"]["passed"] < n, "the target must give label-dependent outcomes"
    sizes = [len(Store(p).investigations("run_sharded")) for p in shards]
    assert sorted(sizes) == [5, 5, 6] and sum(sizes) == n
    capsys.readouterr()

    merged = tmp_path / "merged.db"
    # Two of three shards: the run is partial, and the merge says which shard is missing.
    assert await _cli("merge", "--into", str(merged), str(shards[0]), str(shards[1])) == 1
    err = capsys.readouterr().err
    assert "missing shard(s) 2" in err
    assert Store(merged).get_run("run_sharded")["status"] == "partial"
    # The third shard completes it; merging everything again changes nothing.
    assert await _cli("merge", "--into", str(merged), str(shards[2]), "--datadog-dry-run", str(tmp_path / "dd_merge.jsonl")) == 0
    observability.configure(dry_run=None)
    capsys.readouterr()
    assert await _cli("merge", "--into", str(merged), *map(str, shards), "--json") == 0
    facts = json.loads(capsys.readouterr().out)
    assert facts == [{"run_id": "run_sharded", "status": "completed", "shards": "3/3", "missing_shards": [],
                      "investigations": n, "expected": n}]
    counts = Store(merged).counts("run_sharded")
    assert counts["investigations"] == n
    whole_counts = Store(tmp_path / "whole.db").counts("run_whole")
    assert counts == whole_counts, "turns and tool calls travel with their investigations"

    assert await _cli("show", "run_sharded", "--db", str(merged), "--json") == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown.keys() == whole.keys()
    assert shown["status"] == "completed" and shown["run_id"] == "run_sharded"
    assert _strip(shown) == _strip(whole)
    manifest = Store(merged).get_run("run_sharded")["manifest"]
    assert manifest["shards"] == {"count": 3, "merged": [0, 1, 2]} and "shard" not in manifest

    # Datadog: shards send investigation metrics but no run-level figures (they would be partial);
    # the merge sends the run's, once, for the whole run.
    def run_points(path: Path) -> list[dict[str, Any]]:
        lines = [json.loads(x) for x in path.read_text().splitlines()]
        return [s for x in lines if x["type"] == "metrics" for s in x["payload"]["series"] if s["metric"] == "proctor.run.pass_rate"]

    shard_series = [json.loads(x) for x in (tmp_path / "dd_shards.jsonl").read_text().splitlines()]
    assert any(x["type"] == "metrics" for x in shard_series) and run_points(tmp_path / "dd_shards.jsonl") == []
    merged_points = run_points(tmp_path / "dd_merge.jsonl")
    assert len(merged_points) == 1 and merged_points[0]["points"][0]["value"] == pytest.approx(whole["summary"]["pass_rate"])


def test_a_shard_without_a_run_id_is_refused(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.delenv("CLOUD_RUN_EXECUTION", raising=False)
    assert main(["run", "--target", "http://127.0.0.1:9/card", "--shard", "0/2", "--db", str(tmp_path / "x.db")]) == 2
    assert "--shard needs --run-id" in capsys.readouterr().err
    assert main(["run", "--target", "http://127.0.0.1:9/card", "--shard", "2/2", "--run-id", "r", "--db", str(tmp_path / "x.db")]) == 2
    assert "need 0 <= I < N" in capsys.readouterr().err


async def test_merge_refuses_inconsistent_or_broken_shards_and_writes_nothing(tmp_path: Path, capsys) -> None:
    async with serve_app(lambda base: build_targets_app(base, {"det": (_deterministic, False)})) as base:
        card = f"{base}/det/.well-known/agent-card.json"
        for i, labelset in ((0, "smoke"), (1, "smoke")):
            assert await _cli("run", "--target", card, "--labelset", labelset, "--labels", _first_label(), "--quiet",
                              "--run-id", "run_x", "--shard", f"{i}/2", "--db", str(tmp_path / f"s{i}.db")) == 0
    # Tamper: shard 1 claims another target.
    with sqlite3.connect(tmp_path / "s1.db") as c:
        c.execute("UPDATE runs SET target_url = 'http://elsewhere.example/card'")
    into = tmp_path / "into.db"
    capsys.readouterr()
    assert await _cli("merge", "--into", str(into), str(tmp_path / "s0.db"), str(tmp_path / "s1.db")) == 1
    assert "target_url differs" in capsys.readouterr().err
    assert Store(into).list_runs() == [] and Store(into).counts("run_x")["investigations"] == 0

    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite" * 100)
    assert await _cli("merge", "--into", str(into), str(junk)) == 1
    assert "not a proctor results database" in capsys.readouterr().err
    assert await _cli("merge", "--into", str(into), str(tmp_path / "missing.db")) == 1
    assert "no such file" in capsys.readouterr().err
    assert Store(into).list_runs() == []


def _first_label() -> str:
    return load_labelset("smoke").labels[0].id


async def test_the_last_shard_to_finish_merges_the_run_into_the_checkpoint_dir(tmp_path: Path, capsys) -> None:
    """Cloud Run Jobs: no one has to run `proctor merge`; the last task merges into DIR/RUN.db."""
    bucket = tmp_path / "bucket"
    async with serve_app(lambda base: build_targets_app(base, {"det": (_deterministic, False)})) as base:
        common = ["run", "--target", f"{base}/det/.well-known/agent-card.json", "--quiet", "--brief",
                  "--run-id", "exec-1", "--checkpoint-dir", str(bucket)]
        assert await _cli(*common, "--shard", "1/2", "--db", str(tmp_path / "t1.db")) == 0
        assert not (bucket / "exec-1.db").exists(), "one shard of two: nothing to merge yet"
        assert await _cli(*common, "--shard", "0/2", "--db", str(tmp_path / "t0.db")) == 0
    assert "all 2 shards of exec-1 are done; merged into" in capsys.readouterr().err
    assert sorted(p.name for p in bucket.iterdir()) == ["exec-1.db", "exec-1.shard-0-of-2.db", "exec-1.shard-1-of-2.db"]
    store = Store(bucket / "exec-1.db")
    run = store.get_run("exec-1")
    assert run["status"] == "completed" and run["manifest"]["shards"] == {"count": 2, "merged": [0, 1]}
    assert store.counts("exec-1")["investigations"] == len(load_labelset("smoke").labels)
