"""The LLM investigator (engine/llm_target.py) on the real investigation loop, with a fake
``completion`` that plays a model: what the model is sent, how its text is read, the prompt
budget. No network: litellm itself is exercised only through ``mock_response``, when installed."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from types import SimpleNamespace
from typing import Any

import pytest

from evaluator_agent.core.labels import load_labelset
from evaluator_agent.core.protocol import PROTOCOL_ID, Budget
from evaluator_agent.core.records import EndReason
from evaluator_agent.engine.investigation import investigate
from evaluator_agent.engine.llm_target import (
    LLM_EXTRA_HINT,
    MIN_PROMPT_CHARS,
    SYSTEM_PROMPT,
    chat_messages,
    fit_prompt,
    make_llm_target,
    prompt_size,
    reply_object,
)
from evaluator_agent.engine.local import LocalTarget
from evaluator_agent.engine.worlds import WorldCache

LABEL = load_labelset("smoke").labels[0]
WORLDS = WorldCache(capacity=2)
GT = LABEL.ground_truth


def culprit() -> dict[str, Any]:
    return {"diagnosis": {"root_causes": [{"entity": GT.root_causes[0].entity, "mechanism": GT.mechanism,
                                           "confidence": 0.9}],
                          "causal_chain": list(GT.causal_chain), "onset": GT.onset.isoformat(),
                          "evidence": [{"tool_call_id": "c2", "description": "maxmemory lowered"}],
                          "summary": "catalog-redis lost its hot keys"}}


def calls(*specs: tuple[str, str, dict[str, Any]]) -> dict[str, Any]:
    return {"tool_calls": [{"id": i, "name": n, "arguments": a} for i, n, a in specs]}


def response(text: str, prompt_tokens: int = 100, completion_tokens: int = 20) -> dict[str, Any]:
    """A chat completion of litellm's shape, as a dict."""
    return {"choices": [{"message": {"role": "assistant", "content": text}}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens}}


class FakeModel:
    """A ``completion`` that answers with ``steps`` in turn (text, or a function of the chat
    returning text) and keeps every call's keyword arguments."""

    def __init__(self, steps: list[Any]):
        self.steps = list(steps)
        self.calls: list[dict[str, Any]] = []

    def __call__(self, **kwargs: Any) -> Any:
        self.calls.append(kwargs)
        step = self.steps[len(self.calls) - 1]
        text = step(kwargs["messages"]) if callable(step) else step
        return text if not isinstance(text, str) else response(text)


def run(target: LocalTarget, budget: Budget | None = None) -> Any:
    return asyncio.run(investigate(LABEL, 1, target, WORLDS, budget or Budget()))


def test_a_tool_calling_session_ends_with_the_models_diagnosis() -> None:
    seen: dict[str, Any] = {}

    def after_events(chat: list[dict[str, str]]) -> str:
        seen["results"] = chat[-1]["content"]
        return "no idea what to do next"  # no JSON at all

    def after_garbage(chat: list[dict[str, str]]) -> str:
        seen["notice"] = chat[-1]["content"]
        seen["placeholder"] = chat[-2]["content"]
        return ('The config change looks suspicious. Let me check evictions: '
                + json.dumps(calls(("c3", "query_metrics", {"query": "sum:redis.keys.evicted{service:catalog-redis}"})))
                + " and then I will conclude.")

    fake = FakeModel([
        "I will start with the monitors and recent changes.\n```json\n"
        + json.dumps(calls(("c1", "get_monitors", {}), ("c2", "get_events", {"query": "service:catalog-redis"})))
        + "\n```",
        after_events,
        after_garbage,
        json.dumps(culprit()),
    ])
    target = make_llm_target("fake/model", completion=fake, name="llm-test", max_tokens=777)
    res = run(target)

    assert res.end_reason == EndReason.DIAGNOSIS and res.turns == 4
    assert [t.kind for t in res.turn_records] == ["tool_calls", "invalid", "tool_calls", "diagnosis"]
    assert res.tool_calls == 3 and res.passed, res.explanation
    assert res.diagnosis["root_causes"][0]["entity"] == GT.root_causes[0].entity
    # what the model was sent: the briefing, its own replies, the tool results
    first = fake.calls[0]
    assert first["model"] == "fake/model" and first["temperature"] == 0.0 and first["max_tokens"] == 777
    assert [m["role"] for m in first["messages"]] == ["system", "user"]
    assert first["messages"][0]["content"] == SYSTEM_PROMPT
    briefing = first["messages"][1]["content"]
    assert LABEL.task.trigger.title in briefing and "get_service_dependencies:" in briefing
    assert "Schema of a diagnosis reply" in briefing and "Usage" not in briefing
    last = fake.calls[-1]["messages"]
    assert [m["role"] for m in last] == ["system"] + ["user", "assistant"] * 3 + ["user"]
    assert json.loads(last[2]["content"]) == calls(("c1", "get_monitors", {}),
                                                   ("c2", "get_events", {"query": "service:catalog-redis"}))
    assert seen["results"].startswith(f"[{PROTOCOL_ID}] Tool results (turn 1")
    assert '"id":"c2"' in seen["results"].replace(" ", "") and "maxmemory" in seen["results"]
    assert "could not be used" in seen["notice"] and "no JSON object" in seen["placeholder"]
    assert "redis.keys.evicted" in last[-1]["content"]
    # usage: every response's tokens but the unusable reply's (the loop reads usage off replies it can use)
    assert res.tokens == {"input_tokens": 300, "output_tokens": 60, "total_tokens": 360}


def test_three_replies_without_json_end_it_as_malformed() -> None:
    fake = FakeModel(["I think it is the database.", "", "Still thinking..."])
    res = run(make_llm_target("fake/model", completion=fake))
    assert res.end_reason == EndReason.MALFORMED_REPLIES and res.turns == 3 and not res.passed
    assert [t.kind for t in res.turn_records] == ["invalid"] * 3


def test_a_model_that_fails_ends_the_investigation_not_the_run() -> None:
    def broken(**_: Any) -> Any:
        raise ConnectionError("rate limited")

    res = run(make_llm_target("fake/model", completion=broken))
    assert res.end_reason == EndReason.TARGET_ERROR and "rate limited" in (res.error or "")


def test_litellm_objects_are_read_like_dicts() -> None:
    text = json.dumps({"diagnosis": {"no_fault": True, "summary": "benign"}})
    obj = SimpleNamespace(choices=[SimpleNamespace(message=SimpleNamespace(content=text))],
                          usage=SimpleNamespace(prompt_tokens=5, completion_tokens=2, total_tokens=7),
                          _hidden_params={"response_cost": 0.25})
    res = run(make_llm_target("fake/model", completion=FakeModel([obj]), temperature=None))
    assert res.end_reason == EndReason.DIAGNOSIS and res.diagnosis["no_fault"] is True
    assert res.tokens == {"input_tokens": 5, "output_tokens": 2, "total_tokens": 7, "cost_usd": 0.25}


def test_the_prompt_stays_under_its_budget_on_a_long_session() -> None:
    budget_chars = MIN_PROMPT_CHARS + 4_000
    turns = 12
    big = ("search_logs", {"query": "*", "limit": 500})  # ~65k characters of logs per call

    def step(k: int) -> Any:
        return lambda chat: json.dumps(calls((f"c{k}", *big)))

    fake = FakeModel([step(k) for k in range(1, turns)] + [json.dumps(culprit())])
    target = make_llm_target("fake/model", completion=fake, max_result_chars=3_000, prompt_chars=budget_chars)
    res = run(target)
    assert res.end_reason == EndReason.DIAGNOSIS and res.turns == turns
    for call in fake.calls:
        chat = call["messages"]
        assert prompt_size(chat) <= budget_chars
        assert chat[0]["content"] == SYSTEM_PROMPT and chat[1]["content"].startswith(f"[{PROTOCOL_ID}]")
        assert [m["role"] for m in chat[1:]] == ["user", "assistant"] * ((len(chat) - 2) // 2) + ["user"]
    assert prompt_size(fake.calls[1]["messages"]) > 3_000  # one turn of results fits whole...
    assert "elided" not in json.dumps(fake.calls[1]["messages"])
    last = fake.calls[-1]["messages"]  # ...eleven do not: the old ones are elided, the newest kept
    newest = last[-1]["content"]
    assert f'"c{turns - 1}"' in newest and "[cut: 3000 of" in newest  # its result capped
    elided = [m for m in last if "elided to keep the prompt short" in m["content"]]
    assert elided and elided[0] is last[3] and len(elided) < turns - 1  # oldest first, only as needed
    assert len(last) == 2 + 2 * (turns - 1)  # nothing had to be dropped


def test_fitting_elides_old_results_first_then_drops_turns_then_cuts() -> None:
    head = [{"role": "system", "content": "s" * 100}, {"role": "user", "content": "b" * 1000}]
    turn = [{"role": "assistant", "content": "a" * 50}, {"role": "user", "content": "r" * 5000}]
    chat = head + turn * 4
    assert fit_prompt(chat, 10**6) == chat
    mild = fit_prompt(chat, 12_000)
    assert prompt_size(mild) <= 12_000 and len(mild) == len(chat) and mild[-1] == chat[-1]
    assert "elided" in mild[3]["content"] and mild[3]["content"].startswith(f"[{PROTOCOL_ID}]")
    hard = fit_prompt(chat, 6_400)
    assert prompt_size(hard) <= 6_400 and hard[-1] == chat[-1] and "dropped" in hard[1]["content"]
    assert [m["role"] for m in hard] == ["system"] + ["user", "assistant"] * ((len(hard) - 2) // 2) + ["user"]
    tight = fit_prompt(chat, 2_000)
    assert prompt_size(tight) <= 2_000 and tight[0] == chat[0] and "[cut:" in tight[-1]["content"]
    assert chat[3]["content"] == "r" * 5000  # the input is left alone


@pytest.mark.parametrize(("text", "expected"), [
    ('{"diagnosis": {"no_fault": true}}', {"diagnosis": {"no_fault": True}}),
    ('Here you go:\n```json\n{"tool_calls": [{"id": "c1", "name": "get_monitors"}]}\n```\nDone.',
     {"tool_calls": [{"id": "c1", "name": "get_monitors"}]}),
    ('I looked at {the graph}. Next: {"tool_calls": [{"id": "c1", "name": "list_services"}]} then {more}.',
     {"tool_calls": [{"id": "c1", "name": "list_services"}]}),
    ('Thinking {"a": 1} then {"diagnosis": {"summary": "x"}} ok', {"diagnosis": {"summary": "x"}}),
    ('{"thoughts": "no reply keys"}', {"thoughts": "no reply keys"}),
    ("no object here", None),
    ("", None),
])
def test_the_reply_object_is_found_in_fences_and_prose(text: str, expected: Any) -> None:
    assert reply_object(text) == expected


def test_a_models_own_usage_claim_is_replaced_by_the_responses() -> None:
    fake = FakeModel([json.dumps({"diagnosis": {"no_fault": True}, "usage": {"input_tokens": 10**9}})])
    res = run(make_llm_target("fake/model", completion=fake))
    assert res.tokens == {"input_tokens": 100, "output_tokens": 20, "total_tokens": 120}


def test_each_tool_result_is_capped_in_the_prompt() -> None:
    msgs: list[tuple[str, Any]] = [
        ("user", {"type": "briefing"}),
        ("model", calls(("c1", "search_logs", {}), ("c2", "get_trace", {}))),
        ("user", {"type": "tool_results", "turn": 1, "remaining_turns": 3, "tool_results": [
            {"id": "c1", "ok": True, "content": {"logs": ["line"] * 5000}},
            {"id": "c2", "ok": False, "error": "e" * 900}]}),
    ]
    chat = chat_messages(msgs, max_result_chars=500)
    text = chat[-1]["content"]
    assert text.count("[cut: 500 of") == 2 and len(text) < 2_000
    assert chat[2] == {"role": "assistant", "content": json.dumps(msgs[1][1], separators=(",", ":"))}


def test_without_litellm_the_error_says_how_to_get_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LITELLM_LOCAL_MODEL_COST_MAP", raising=False)
    monkeypatch.setitem(sys.modules, "litellm", None)  # import litellm -> ImportError
    with pytest.raises(RuntimeError, match=LLM_EXTRA_HINT.replace("[", r"\[").replace("]", r"\]")):
        make_llm_target("openai/gpt-4o-mini")
    assert os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] == "True"  # set before the import was tried


def test_a_prompt_budget_too_small_is_refused() -> None:
    with pytest.raises(ValueError, match="prompt_chars"):
        make_llm_target("fake/model", completion=FakeModel([]), prompt_chars=MIN_PROMPT_CHARS - 1)


def test_one_call_through_litellm_with_a_mock_response(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # before the import: no cost map fetch
    pytest.importorskip("litellm")
    text = "Conclusion:\n```json\n" + json.dumps(culprit()) + "\n```"
    target = make_llm_target("openai/gpt-4o-mini", extra={"mock_response": text})
    res = run(target)
    assert res.end_reason == EndReason.DIAGNOSIS and res.turns == 1, res.error
    assert res.diagnosis["root_causes"][0]["entity"] == GT.root_causes[0].entity
    assert res.tokens is None or all(v >= 0 for v in res.tokens.values())
