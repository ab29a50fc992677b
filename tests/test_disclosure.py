"""The disclosure policy (issue 11 item 1): results never hand a target or client the answer key.

Over real HTTP on 127.0.0.1: the proctor, and a hostile target that first probes every label
with a marker answer, then reads the run's results as the proctor serves them and replays the
root cause and mechanism it finds there. Under ``full`` that attack passes nearly everything
(the test shows the channel is real); under ``scores`` (a server's default) it scores no better
than a blind target. A private label set discloses nothing even under ``full``.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import anyio.to_thread
import pytest

from evaluator_agent.cli.main import main as cli_main
from evaluator_agent.core.labels import labelsets_dir, load_labelset
from evaluator_agent.datadog import observability
from evaluator_agent.results import disclosure
from evaluator_agent.service.client import ProctorTaskFailed, call_proctor
from tests.conftest import serve_app
from tests.targets import build_targets_app

pytestmark = pytest.mark.anyio

PROBE_MECHANISM = "disk_full"  # in the vocabulary, the truth of no smoke label


def _key(briefing: dict[str, Any]) -> str:
    """What a target can tell one incident from another by: the page that fired."""
    p = briefing.get("problem") or {}
    return hashlib.sha1(f"{p.get('title')}|{p.get('fired_at')}".encode()).hexdigest()[:10]


class Hostile:
    """A target that answers from what earlier results revealed, else with a marker ("probe-<key>")
    that makes the scorer's explanation say which incident it was about."""

    def __init__(self) -> None:
        self.known: dict[str, dict[str, Any]] = {}

    def reply(self, turn: int, msg: dict[str, Any]) -> dict[str, Any]:
        key = _key(msg)
        if key in self.known:
            return {"diagnosis": self.known[key]}
        return {"diagnosis": {"root_causes": [{"entity": f"probe-{key}", "mechanism": PROBE_MECHANISM, "confidence": 0.5}],
                              "summary": "probe"}}

    def learn(self, result: dict[str, Any]) -> int:
        """Read every explanation of a served result; returns how many incidents it learnt."""
        for inv in result["investigations"]:
            text = str(inv.get("explanation") or "")
            m = re.search(r"probe-([0-9a-f]{10})", text)
            if not m:
                continue
            if "on a no-fault control" in text:
                self.known[m.group(1)] = {"no_fault": True, "summary": "replayed"}
                continue
            ent = re.search(r"No candidate names ([^\s/]+?)[./ ]", text)
            mech = re.search(r"\(expected (\w+)\)|near-synonym of (\w+)|Mechanism (\w+) correct", text)
            if ent:
                mechanism = next((g for g in mech.groups() if g), None) if mech else None
                self.known[m.group(1)] = {"root_causes": [{"entity": ent.group(1), "mechanism": mechanism, "confidence": 0.9}],
                                          "summary": "replayed"}
        return len(self.known)


def truth_strings(labelset: str) -> dict[str, set[str]]:
    """Per kind, the strings only the ground truth knows: root-cause names and aliases, mechanisms
    (the probe never says one of them), key-evidence expects, red herrings, partial-credit names."""
    out: dict[str, set[str]] = {"entities": set(), "mechanisms": set(), "evidence": set(), "herrings": set()}
    for lb in load_labelset(labelset).labels:
        gt = lb.ground_truth
        for rc in gt.root_causes:
            out["entities"] |= {rc.entity, *rc.aliases}
        out["entities"] |= {p.entity for p in gt.partial_credit}
        if not gt.no_fault:
            out["mechanisms"].add(gt.mechanism)
        out["evidence"] |= {k.expect for k in gt.key_evidence}
        out["herrings"] |= {h.entity for h in gt.must_not_blame}
    return out


def leaked(payload: Any, truths: dict[str, set[str]]) -> dict[str, list[str]]:
    text = payload if isinstance(payload, str) else json.dumps(payload)
    found = {kind: sorted(s for s in strings if s and s in text) for kind, strings in truths.items()}
    return {k: v for k, v in found.items() if v}


def _proctor(db: Path, policy: str | None):
    from evaluator_agent.service.server import create_app

    return lambda base: create_app(str(db), public_url=base, disclosure_policy=policy)


async def _cli(*args: str) -> int:
    return await anyio.to_thread.run_sync(lambda: cli_main(list(args)))


def _blind_pass_rate(labelset: str) -> float:
    """random_guess, in process through the same investigation and scorer: a blind target."""
    import asyncio

    from evaluator_agent.core.protocol import Budget
    from evaluator_agent.engine.investigation import investigate
    from evaluator_agent.engine.worlds import WorldCache
    from mock_agents.inprocess import policy_target

    async def go() -> float:
        target, worlds = policy_target("random_guess"), WorldCache()
        labels = load_labelset(labelset).labels
        results = [await investigate(lb, 1, target, worlds, Budget()) for lb in labels]
        return sum(r.passed for r in results) / len(results)

    return asyncio.run(go())


async def _attack(proctor: str, card: str, hostile: Hostile, labelset: str) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Probe once, read the run back with get_run, replay: (probe result, get_run result, replay result)."""
    probe = await call_proctor(proctor, {"target": card, "labelset": labelset})
    served = await call_proctor(proctor, {"action": "get_run", "run_id": probe["run_id"]})
    hostile.learn(probe)
    hostile.learn(served)
    replay = await call_proctor(proctor, {"target": card, "labelset": labelset})
    return probe, served, replay


# ----------------------------------------------------------------------------- policy parsing


def test_policy_resolution(monkeypatch) -> None:
    monkeypatch.delenv(disclosure.ENV, raising=False)
    assert disclosure.resolve(None, default=disclosure.SERVER_DEFAULT) == "scores"
    assert disclosure.resolve(None, default=disclosure.CLI_DEFAULT) == "full"
    monkeypatch.setenv(disclosure.ENV, "FULL")
    assert disclosure.resolve(None, default="scores") == "full"
    assert disclosure.resolve("scores", default="full") == "scores"  # a flag beats the environment
    monkeypatch.setenv(disclosure.ENV, "everything")
    with pytest.raises(disclosure.DisclosureError, match="full, scores"):
        disclosure.resolve(None, default="full")
    assert disclosure.effective("full", private=True) == "scores"


def test_cli_refuses_an_unknown_policy(monkeypatch, tmp_path, capsys) -> None:
    monkeypatch.setenv(disclosure.ENV, "all")
    assert cli_main(["show", "run_x", "--db", str(tmp_path / "x.db")]) == 2
    assert "disclosure policy 'all'" in capsys.readouterr().err


def test_server_refuses_an_unknown_policy(tmp_path) -> None:
    from evaluator_agent.service.server import create_app

    with pytest.raises(ValueError, match="disclosure policy"):
        create_app(str(tmp_path / "x.db"), disclosure_policy="some")


# ----------------------------------------------------------------------------- over A2A


async def test_replaying_served_results_is_no_better_than_blind(tmp_path, monkeypatch) -> None:
    """The done-when of issue 11: a target replaying everything earlier results revealed (under the
    server's default policy) scores no better than a blind one. Under ``full`` the same attack
    works, which shows what the default withholds."""
    monkeypatch.delenv(disclosure.ENV, raising=False)
    truths = truth_strings("smoke")
    n = len(load_labelset("smoke").labels)
    blind = await anyio.to_thread.run_sync(lambda: _blind_pass_rate("smoke"))
    outcomes = {}
    for policy in (None, "full"):  # None: the server's default
        hostile = Hostile()
        app = {"hostile": (hostile.reply, False)}
        async with serve_app(lambda b, app=app: build_targets_app(b, app)) as targets, \
                serve_app(_proctor(tmp_path / f"{policy}.db", policy)) as proctor:
            probe, served, replay = await _attack(proctor, f"{targets}/hostile/.well-known/agent-card.json", hostile, "smoke")
        assert probe["summary"]["passed"] == 0  # the probe alone is blind
        outcomes[policy] = (probe, served, replay, len(hostile.known))

    probe, served, replay, learnt = outcomes[None]
    for shown in (probe, served, replay):
        assert shown["disclosure"]["policy"] == "scores"
        assert leaked(shown, truths) == {}
        assert set(shown["summary"]["breakdown"]) <= {"tier", "monitor_type"}
        assert all(i["explanation"].startswith(disclosure.WITHHELD) for i in shown["investigations"])
        # what a client may still see: scores, pass/fail, sub-scores, end reasons
        assert {"score", "passed", "subscores", "end_reason"} <= set(shown["investigations"][0])
    assert learnt == 0
    assert replay["summary"]["pass_rate"] == 0.0 and replay["summary"]["pass_rate"] <= blind

    probe, served, replay, learnt = outcomes["full"]
    assert served["disclosure"]["policy"] == "full"
    assert leaked(served, truths).get("entities") and leaked(served, truths).get("mechanisms")
    assert learnt == n  # every incident's answer was in the results ...
    assert replay["summary"]["passed"] >= n - 1  # ... and replaying them passes (nearly) all


async def test_scores_keeps_the_statistics_and_compare_loses_segments(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv(disclosure.ENV, raising=False)
    hostile = Hostile()
    async with serve_app(lambda b: build_targets_app(b, {"hostile": (hostile.reply, False)})) as targets, \
            serve_app(_proctor(tmp_path / "p.db", None)) as proctor:
        card = f"{targets}/hostile/.well-known/agent-card.json"
        a = await call_proctor(proctor, {"target": card, "labelset": "smoke"})
        b = await call_proctor(proctor, {"target": card, "labelset": "smoke"})
        cmp = await call_proctor(proctor, {"action": "compare", "base": a["run_id"], "new": b["run_id"]})
        listing = await call_proctor(proctor, {"action": "list_labelsets"})
    s = a["summary"]
    assert {"n", "scored", "passed", "pass_rate", "mean_score", "ci95", "ac_at_1", "mechanism_accuracy"} <= set(s)
    assert "segments" not in cmp and cmp["verdict"] and cmp["disclosure"]["policy"] == "scores"
    assert {x["name"]: x.get("private") for x in listing["labelsets"]}["smoke"] is False
    # The local CLI reads the same store in full by default.
    db = str(tmp_path / "p.db")
    assert await _cli("show", a["run_id"], "--db", db, "--json") == 0


def _private_copy(tmp_path: Path, monkeypatch, name: str = "smoke-private") -> Path:
    """A copy of smoke marked private under a temporary labelsets root (snapshots stay shared)."""
    root = tmp_path / "labelsets"
    shutil.copytree(labelsets_dir() / "smoke", root / name)
    info = json.loads((root / name / "labelset.json").read_text())
    (root / name / "labelset.json").write_text(json.dumps(info | {"name": name, "private": True}))
    monkeypatch.setenv("PROCTOR_LABELSETS", str(root))
    assert load_labelset(name).info.private is True
    return root


async def test_a_private_label_set_discloses_nothing_even_under_full(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.delenv(disclosure.ENV, raising=False)
    name = "smoke-private"
    _private_copy(tmp_path, monkeypatch, name)
    truths = truth_strings(name)
    db = tmp_path / "p.db"
    dd = tmp_path / "dd.jsonl"
    monkeypatch.setenv("DD_API_KEY", "test-api-key")
    monkeypatch.setenv("PROCTOR_DATADOG_API_URL", "http://127.0.0.1:9")  # dry run: nothing is sent
    observability.configure(dry_run=str(dd))
    hostile = Hostile()
    try:
        async with serve_app(lambda b: build_targets_app(b, {"hostile": (hostile.reply, False)})) as targets, \
                serve_app(_proctor(db, "full")) as proctor:
            probe, served, replay = await _attack(proctor, f"{targets}/hostile/.well-known/agent-card.json", hostile, name)
            with pytest.raises(ProctorTaskFailed):  # the label files are not a served resource
                await call_proctor(proctor, {"action": "get_run", "run_id": "../labelsets"})
    finally:
        observability.configure(dry_run=None)
    for shown in (probe, served, replay):
        assert shown["disclosure"] == {"policy": "scores", "private_labelset": True,
                                       "withheld": shown["disclosure"]["withheld"]}
        assert shown["labelset"]["private"] is True
        assert leaked(shown, truths) == {}
    assert hostile.known == {} and replay["summary"]["passed"] == 0

    # Nothing truth-derived was stored: explanations withheld, score details without names.
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT explanation, score_details FROM investigations").fetchall()
    assert rows and all(e.startswith(disclosure.WITHHELD) for e, _ in rows)
    assert leaked([d for _, d in rows], truths) == {}
    assert all(json.loads(d).get("accuracy") is not None for _, d in rows)  # what the statistics read stays

    # The local CLI defaults to full, and still shows nothing of a private set.
    capsys.readouterr()
    assert await _cli("show", probe["run_id"], "--db", str(db), "--json", "--disclosure", "full") == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["disclosure"]["policy"] == "scores" and leaked(shown, truths) == {}
    assert await _cli("report", probe["run_id"], "--db", str(db), "--markdown") == 0
    assert leaked(capsys.readouterr().out, truths) == {}
    page = tmp_path / "r.html"
    assert await _cli("report", probe["run_id"], "--db", str(db), "--html", str(page)) == 0
    html = page.read_text()
    assert "withheld" in html
    # the page shows the target's own diagnosis and tool calls (here: markers), never the ground-truth column
    assert "probe-" in html and leaked(html, truths) == {}
    assert await _cli("runs", "--db", str(db), "--json") == 0
    assert leaked(capsys.readouterr().out, truths).get("mechanisms") is None

    # Datadog (dry run): no explanation and no truth taxonomy on the spans.
    spans = [json.loads(x)["span"] for x in dd.read_text().splitlines() if json.loads(x)["type"] == "llmobs_span"]
    tasks = [s for s in spans if s["kind"] == "task"]
    agents = [s for s in spans if s["kind"] == "agent"]
    assert tasks and agents
    assert all(disclosure.WITHHELD in json.dumps(s.get("metadata")) for s in tasks)
    assert all("mechanism" not in (s.get("metadata") or {}) for s in agents)
    assert leaked([s.get("metadata") for s in tasks + agents], truths).get("mechanisms") is None


async def test_full_cli_output_still_explains(tmp_path, monkeypatch, capsys) -> None:
    """Local use keeps its explanations: ``proctor show --json`` defaults to full, and
    ``--disclosure scores`` (or $PROCTOR_DISCLOSURE) withholds them there too."""
    monkeypatch.delenv(disclosure.ENV, raising=False)
    truths = truth_strings("smoke")
    hostile = Hostile()
    db = tmp_path / "p.db"
    async with serve_app(lambda b: build_targets_app(b, {"hostile": (hostile.reply, False)})) as targets:
        card = f"{targets}/hostile/.well-known/agent-card.json"
        out = tmp_path / "r.json"
        assert await _cli("run", "--target", card, "--db", str(db), "--json", str(out), "--quiet") == 0
    result = json.loads(out.read_text())
    assert result["disclosure"]["policy"] == "full" and leaked(result, truths).get("entities")
    capsys.readouterr()
    assert await _cli("show", result["run_id"], "--db", str(db), "--json", "--disclosure", "scores") == 0
    assert leaked(capsys.readouterr().out, truths) == {}
    monkeypatch.setenv(disclosure.ENV, "scores")
    assert await _cli("report", result["run_id"], "--db", str(db), "--markdown") == 0
    assert leaked(capsys.readouterr().out, truths) == {}
