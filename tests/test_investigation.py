"""The investigation loop on the scripted conversation: every end reason, the messages the
target is sent, the records kept. No sockets: the A2A transport has tests of its own (e2e,
interop, fast path); what is tested here is the loop every kind of target goes through."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from evaluator_agent.core.labels import load_labelset
from evaluator_agent.core.protocol import Budget
from evaluator_agent.core.records import EndReason, ErrorKind
from evaluator_agent.engine.briefing import build_briefing
from evaluator_agent.engine.conversation import ReplyTooLarge, TargetTimeout, TargetUnavailable
from evaluator_agent.engine.investigation import RunContact, investigate
from evaluator_agent.engine.local import ScriptedTarget
from evaluator_agent.engine.worlds import WorldCache

LABEL = load_labelset("smoke").labels[0]
WORLDS = WorldCache(capacity=2)

CALL = {"tool_calls": [{"id": "c1", "name": "get_monitors", "arguments": {}}]}
NO_FAULT = {"diagnosis": {"no_fault": True, "summary": "benign"}}


def culprit() -> dict[str, Any]:
    gt = LABEL.ground_truth
    entity = gt.root_causes[0].entity if gt.root_causes else "x"
    return {"diagnosis": {"root_causes": [{"entity": entity, "mechanism": gt.mechanism, "confidence": 0.9}],
                          "causal_chain": list(gt.causal_chain), "summary": "found it"}}


def run(script: list[Any], budget: Budget | None = None, contact: RunContact | None = None) -> tuple[Any, ScriptedTarget]:
    target = ScriptedTarget(script)
    res = asyncio.run(investigate(LABEL, 1, target, WORLDS, budget or Budget(), contact=contact))
    return res, target


def test_the_first_message_is_the_briefing_every_target_gets() -> None:
    res, target = run([NO_FAULT])
    first = target.sent[0][0]
    _, header = asyncio.run(WORLDS.get(LABEL.world.snapshot))
    expected = build_briefing(LABEL, header, Budget().effective(LABEL.task.budget), res.investigation_id)
    assert first == expected.model_dump(mode="json")
    assert res.end_reason == EndReason.DIAGNOSIS and res.turns == 1 and res.tool_calls == 0


def test_tool_calls_then_diagnosis_is_scored_with_records() -> None:
    res, target = run([CALL, culprit()])
    assert res.end_reason == "diagnosis" and res.error_kind is None
    assert res.turns == 2 and res.tool_calls == 1 and res.invalid_calls == 0
    assert [t.kind for t in res.turn_records] == ["tool_calls", "diagnosis"]
    (call,) = res.call_records
    assert call.name == "get_monitors" and call.ok and call.result_size > 0
    second = target.sent[0][1]
    assert second["turn"] == 1 and second["tool_results"][0]["id"] == "c1" and second["tool_results"][0]["ok"]
    assert res.passed and res.score > 0.5, res.explanation


def test_a_wrong_answer_fails() -> None:
    res, _ = run([NO_FAULT])
    assert LABEL.ground_truth.no_fault or (not res.passed and res.end_reason == "diagnosis")


def test_the_budget_of_turns_ends_the_investigation_with_a_warning_before() -> None:
    res, target = run([CALL] * 3, budget=Budget(max_turns=3))
    assert res.end_reason == EndReason.MAX_TURNS and res.turns == 3 and not res.passed and res.score == 0
    assert target.sent[0][2].get("notice", "").startswith("Last reply")


def test_three_unusable_replies_in_a_row_end_it_one_resets_the_count() -> None:
    res, target = run([{"hello": 1}, "garbage", CALL, {"nope": 0}, {"x": 1}, {"y": 2}])
    assert res.end_reason == EndReason.MALFORMED_REPLIES and res.turns == 6
    assert "could not be used" in target.sent[0][1]["notice"]
    assert [t.kind for t in res.turn_records].count("invalid") == 5


def test_calls_beyond_the_per_turn_cap_are_skipped_and_counted() -> None:
    many = {"tool_calls": [{"id": f"c{i}", "name": "get_monitors", "arguments": {}} for i in range(5)]}
    res, target = run([many, NO_FAULT], budget=Budget(max_calls_per_turn=2))
    results = target.sent[0][1]["tool_results"]
    assert [r["ok"] for r in results] == [True, True, False, False, False]
    assert "call skipped" in results[-1]["error"] and res.tool_calls == 2 and res.invalid_calls == 3


def test_an_unknown_tool_is_an_invalid_call_not_an_end() -> None:
    res, target = run([{"tool_calls": [{"id": "z", "name": "rm_rf", "arguments": {}}]}, NO_FAULT])
    assert res.end_reason == "diagnosis" and res.invalid_calls == 1
    assert target.sent[0][1]["tool_results"][0]["ok"] is False


@pytest.mark.parametrize(("error", "reason"), [
    (TargetTimeout("slow"), EndReason.TURN_TIMEOUT),
    (ReplyTooLarge("big"), EndReason.REPLY_TOO_LARGE),
])
def test_transport_failures_end_it_as_the_targets_failure(error: Exception, reason: str) -> None:
    res, _ = run([CALL, error])
    assert res.end_reason == reason and res.error_kind is None and not res.passed
    assert res.turn_records[-1].kind == "error"


def test_unreachable_before_any_reply_of_the_run_is_an_infra_error_after_it_is_not() -> None:
    contact = RunContact()
    first, _ = run([TargetUnavailable("refused")], contact=contact)
    assert first.end_reason == EndReason.TARGET_UNREACHABLE and first.error_kind == ErrorKind.NETWORK
    run([NO_FAULT], contact=contact)  # the target answers once in this run
    later, _ = run([TargetUnavailable("reset")], contact=contact)
    assert later.end_reason == EndReason.TARGET_UNREACHABLE and later.error_kind is None


def test_a_script_that_runs_out_is_a_target_error() -> None:
    res, _ = run([CALL])
    assert res.end_reason == EndReason.TARGET_ERROR and "script" in (res.error or "")


def test_usage_reported_beside_replies_is_summed() -> None:
    usage = {"usage": {"input_tokens": 10, "output_tokens": 3, "cost_usd": 0.5}}
    res, _ = run([CALL | usage, NO_FAULT | usage])
    assert res.tokens == {"input_tokens": 20, "output_tokens": 6, "cost_usd": 1.0}


def test_a_missing_world_is_a_harness_error_not_the_targets() -> None:
    label = LABEL.model_copy(deep=True)
    label.world.snapshot = "0" * 64
    res = asyncio.run(investigate(label, 1, ScriptedTarget([NO_FAULT]), WORLDS, Budget()))
    assert res.end_reason == EndReason.HARNESS_ERROR and res.error_kind == ErrorKind.HARNESS
