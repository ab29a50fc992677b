"""The leak audit: the in-process seam, the shortcut policies, the leakage learner and the CLI.

- The seam: a policy run in-process (``LocalTarget``) gives the same investigation as the
  same policy served by the ADK mock agents over A2A (same score, sub-scores, diagnosis, end
  reason, turns and tool calls), on one smoke label.
- Every shortcut reaches a valid diagnosis through the real loop.
- The learner finds a planted leak (a metric name only the culprit carries, a log line only one
  mechanism writes) and finds nothing where nothing is planted.
- ``proctor labels audit`` runs on a small sample, prints JSON and exits 1 exactly when a
  threshold is crossed.
"""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from evaluator_agent.cli.main import main as cli_main
from evaluator_agent.core.labels import load_labelset
from evaluator_agent.core.protocol import Budget, parse_reply
from evaluator_agent.core.vocab import MECHANISMS
from evaluator_agent.engine.investigation import investigate
from evaluator_agent.engine.local import LocalTarget
from evaluator_agent.engine.target import Target
from evaluator_agent.engine.transport import make_http_client
from evaluator_agent.engine.worlds import WorldCache
from mock_agents.inprocess import policy_target
from mock_agents.shortcuts import SHORTCUT_NAMES
from mock_agents.transcript import Transcript
from tests.conftest import serve_app


def _smoke_fault_label() -> Any:
    return next(lb for lb in load_labelset("smoke").labels if not lb.ground_truth.no_fault)


def _same(a: Any, b: Any) -> dict[str, Any]:
    return {
        "score": round(a.score, 6) == round(b.score, 6),
        "passed": a.passed == b.passed,
        "subscores": a.subscores == b.subscores,
        "end_reason": a.end_reason == b.end_reason,
        "turns": a.turns == b.turns,
        "tool_calls": a.tool_calls == b.tool_calls,
        "diagnosis": a.diagnosis == b.diagnosis,
    }


# --------------------------------------------------------------------------- the seam


@pytest.mark.anyio
async def test_local_target_matches_a2a() -> None:
    """methodical (many turns, floats everywhere) and random_guess (seeded by the monitor id,
    which A2A turns into a float) give the same investigation in-process and over A2A."""
    from mock_agents.server import create_app

    label = _smoke_fault_label()
    names = ["methodical", "random_guess"]
    async with serve_app(lambda base: create_app(agents=names, base_url=base)) as agents:
        async with make_http_client() as http:
            for name in names:
                remote = await Target.connect(f"{agents}/{name}/.well-known/agent-card.json", http)
                over_a2a = await investigate(label, 1, remote, WorldCache(), Budget())
                local = await investigate(label, 1, policy_target(name), WorldCache(), Budget())
                assert over_a2a.end_reason == "diagnosis" and over_a2a.tool_calls > 0
                assert all(_same(local, over_a2a).values()), (name, _same(local, over_a2a))
                assert [c.name for c in local.call_records] == [c.name for c in over_a2a.call_records]


@pytest.mark.anyio
async def test_local_target_carries_the_a2a_contract() -> None:
    """Numbers arrive as floats, replies are read from JSON text, a failing function is the
    target's fault (target_error), and every message is in the history it is handed."""
    label = _smoke_fault_label()
    seen: list[list[tuple[str, Any]]] = []

    def fn(messages: list[tuple[str, Any]]) -> dict[str, Any]:
        seen.append(list(messages))
        if len(messages) == 1:
            return {"tool_calls": [{"id": "c1", "name": "list_services", "arguments": {"limit": 5}}]}
        return {"diagnosis": {"no_fault": True, "summary": "benign"}}

    res = await investigate(label, 1, LocalTarget(fn, "scripted"), WorldCache(), Budget())
    assert res.end_reason == "diagnosis" and res.turns == 2 and res.tool_calls == 1
    briefing = seen[0][0][1]
    assert briefing["type"] == "briefing" and isinstance(briefing["budget"]["max_turns"], float)
    roles = [r for r, _ in seen[1]]
    assert roles == ["user", "model", "user"]
    conv = Transcript.from_messages(seen[1])
    assert conv.briefing["investigation_id"] == res.investigation_id
    assert conv.calls["c1"]["name"] == "list_services" and conv.content("c1")["services"]
    assert isinstance(conv.content("c1")["total"], float)

    def broken(messages: list[tuple[str, Any]]) -> dict[str, Any]:
        raise RuntimeError("policy bug")

    res = await investigate(label, 1, LocalTarget(broken, "broken"), WorldCache(), Budget())
    assert res.end_reason == "target_error" and res.error_kind is None and "policy bug" in (res.error or "")

    res = await investigate(label, 1, LocalTarget(lambda m: {"nonsense": 1}, "garbage"), WorldCache(), Budget())
    assert res.end_reason == "malformed_replies" and not res.passed


# --------------------------------------------------------------------------- the shortcuts


@pytest.mark.anyio
@pytest.mark.parametrize("name", SHORTCUT_NAMES)
async def test_every_shortcut_reaches_a_valid_diagnosis(name: str) -> None:
    worlds = WorldCache()
    for label in load_labelset("smoke").labels[:3]:
        res = await investigate(label, 1, policy_target(name), worlds, Budget())
        assert res.end_reason == "diagnosis", (name, label.id, res.end_reason, res.error)
        d = parse_reply({"diagnosis": res.diagnosis}).diagnosis
        assert "failed" not in d.summary, d.summary  # a policy that trips says "policy X failed"
        if d.no_fault:
            assert not d.root_causes
            continue
        assert d.root_causes and d.root_causes[0].mechanism in MECHANISMS
        index, _ = await worlds.get(label.world.snapshot)
        chain = [e.source for e in d.causal_chain] + [e.target for e in d.causal_chain[-1:]]
        assert all(index.known_entity(x) for x in [d.root_causes[0].entity, *chain]), (name, d)
        if chain:
            assert chain[0] == d.root_causes[0].entity
        cited = {c.call_id for c in res.call_records}
        assert all(e.tool_call_id in cited for e in d.evidence if e.tool_call_id)


# --------------------------------------------------------------------------- the learner


def _tiny_world(rng: random.Random, *, plant: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    """A ten-service world; with ``plant`` the culprit alone carries ``cache.spill.bytes`` and
    each mechanism writes its own log line, without it nothing tells the answer."""
    names = rng.sample([f"svc-{w}" for w in "abcdefghijklmnopqrstuvwxyz"], 10)
    paged, culprit = names[0], rng.choice(names[1:])
    mechanism = rng.choice(["oom_killed", "dns_failure", "lock_contention"])
    start, end, fired = 1_700_000_000, 1_700_010_800, 1_700_010_000
    services = [{"name": n, "kind": "service"} for n in names]
    deps = [{"source": paged, "target": n, "protocol": "http"} for n in names[1:]]
    metrics, logs = [], []
    for n in names:
        for m in ("cpu.usage", "mem.usage"):
            metrics.append({"metric": m, "tags": {"service": n}, "type": "gauge", "start": start,
                            "interval": 60, "values": [1.0] * 10})  # fmt: skip
        for i in range(rng.randint(1, 4)):
            logs.append({"ts": fired - 60 * i, "service": n, "status": "error",
                         "message": rng.choice(["timeout calling upstream", "connection reset"])})  # fmt: skip
    noisy = rng.choice(names)
    if plant:
        metrics.append({"metric": "cache.spill.bytes", "tags": {"service": culprit}, "type": "gauge",
                        "start": start, "interval": 60, "values": [1.0] * 10})  # fmt: skip
        logs.append({"ts": fired - 30, "service": noisy, "status": "error", "message": f"signature of {mechanism}"})
    else:
        metrics.append({"metric": "cache.spill.bytes", "tags": {"service": noisy}, "type": "gauge",
                        "start": start, "interval": 60, "values": [1.0] * 10})  # fmt: skip
    world = {
        "schema_version": 1, "world_id": "w_test", "start": start, "end": end,
        "topology": {"services": services, "dependencies": deps},
        "metrics": metrics, "logs": logs, "spans": [], "events": [],
        "monitors": [{"id": 1, "name": f"{paged} error rate", "type": "query alert",
                      "query": f"sum:trace.http.request.errors{{service:{paged}}}", "tags": {"service": paged}}],
    }  # fmt: skip
    return world, {"culprit": culprit, "mechanism": mechanism}


def _cases(seed: int, n: int, plant: bool) -> list[Any]:
    from evaluator_agent.audit.learner import world_case

    rng = random.Random(seed)
    out = []
    for i in range(n):
        world, truth = _tiny_world(rng, plant=plant)
        out.append(world_case(world, label_id=f"t{i}", mechanism=truth["mechanism"], culprits={truth["culprit"]},
                              monitor_id=1, title="error rate high", fired_at=1_700_010_000))  # fmt: skip
    return out


def test_learner_finds_a_planted_leak_and_nothing_else() -> None:
    pytest.importorskip("sklearn")
    from evaluator_agent.audit.learner import evaluate

    leaky = evaluate(_cases(1, 40, True), _cases(2, 30, True), trees=50)
    assert leaky.culprit_top1 >= 0.9, leaky
    assert leaky.mechanism_accuracy >= 0.9 > leaky.mechanism_baseline + 0.3
    assert "metric:cache.spill.bytes" in {f for f, _ in leaky.top_culprit_features}

    clean = evaluate(_cases(3, 40, False), _cases(4, 30, False), trees=50)
    assert clean.culprit_top1 <= 0.35, clean  # random is 1 in 9 of the non-paged services
    assert clean.mechanism_accuracy <= clean.mechanism_baseline + 0.2, clean


def test_learner_features_mask_names_and_numbers() -> None:
    from evaluator_agent.audit.learner import _Masker, template

    m = _Masker(["orders-db", "orders", "web-bff"])
    line = "pq: could not extend file base/16384/4242 calling orders-db (orders_db) after 250ms id=9f3ab12c"
    assert template(line, m) == "pq: could not extend file base/<n>/<n> calling <svc> (<svc>) after <n> id=<hex>"
    assert template("orders failed to reach web-bff", m, own="orders") == "<self> failed to reach <svc>"


def test_fresh_training_worlds_come_from_the_recipes() -> None:
    from evaluator_agent.audit.learner import cases_from_recipes

    cases, refused = cases_from_recipes("smoke", size=2, jobs=1)
    assert len(cases) + len(refused) == 2 and cases, refused
    smoke_ids = {lb.id for lb in load_labelset("smoke").labels}
    assert not smoke_ids & {c.label_id for c in cases}  # shifted seeds: other worlds
    for c in cases:
        assert c.services and c.world and sum(c.culprit) <= 2 + len(c.services) // 10


# --------------------------------------------------------------------------- the CLI


def _audit(capsys: Any, *args: str) -> tuple[int, dict[str, Any]]:
    capsys.readouterr()
    rc = cli_main(["labels", "audit", "smoke", "--sample", "3", "--jobs", "1", "--json", *args])
    return rc, json.loads(capsys.readouterr().out)


def test_cli_audit_on_a_sample(capsys: Any) -> None:
    pytest.importorskip("sklearn")
    policies = "lookup_table,always_no_fault,combo,random_guess"
    rc, rep = _audit(capsys, "--policies", policies, "--train", "smoke")
    assert rep["n_labels"] == 3 and rep["sample"] == 3
    assert [s["policy"] for s in rep["battery"]] == policies.split(",")
    kinds = {s["policy"]: s["kind"] for s in rep["battery"]}
    assert kinds == {"lookup_table": "shortcut", "always_no_fault": "shortcut", "combo": "combination",
                     "random_guess": "reference"}  # fmt: skip
    for s in rep["battery"]:
        assert 0 <= s["ci95"][0] <= s["pass_rate"] <= s["ci95"][1] <= 1 and s["n"] == 3
        assert s["pass_mechanism_rate"] <= s["pass_rate"]
    lr = rep["learner"]
    assert lr["n_test"] == 3 and lr["train"] == "label set smoke"
    assert rc == (1 if rep["failures"] else 0)
    # trained on the very labels it is tested on, the learner must find the culprits
    assert lr["culprit_top1"] == 1.0 and any("learner culprit" in f for f in rep["failures"])

    rc, rep = _audit(capsys, "--policies", "always_no_fault,random_guess", "--no-learner",
                     "--threshold", "1", "--combination-threshold", "1")  # fmt: skip
    assert rc == 0 and rep["ok"] and rep["learner"] is None and rep["learner_skipped"] == "--no-learner"
