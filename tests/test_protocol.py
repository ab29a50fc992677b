"""The one place that reads JSON out of A2A parts (protocol.py), used by the target side, the
server, the client and the traffic generator alike."""

from __future__ import annotations

from typing import Any

import pytest
from a2a.helpers import new_data_part, new_text_part
from a2a.types import Part
from google.protobuf import struct_pb2

from evaluator_agent.core.protocol import (
    ReplyError,
    data_object,
    extract_json_object,
    json_object_in,
    parse_reply,
    part_value,
)
from evaluator_agent.engine.target import _part_payload


def _list_part(values: list[Any]) -> Part:
    v = struct_pb2.Value()
    v.list_value.extend(values)
    return Part(data=v)


def test_part_value_tells_data_text_and_neither_apart() -> None:
    assert part_value(new_data_part({"a": 1})) == ({"a": 1.0}, None)  # a Struct carries doubles
    assert part_value(new_text_part("hi")) == (None, "hi")
    assert part_value(Part()) == (None, None)
    assert part_value(_list_part([1, 2])) == ([1.0, 2.0], None)


def test_data_object_takes_the_first_object_and_skips_other_data() -> None:
    parts = [new_text_part('{"from": "text"}'), _list_part([1]), new_data_part({"n": 1}), new_data_part({"n": 2})]
    assert data_object(parts) == {"n": 1.0}
    assert data_object([new_text_part('{"a": 1}'), _list_part([1])]) is None


def test_json_object_in_prefers_data_then_json_in_text() -> None:
    assert json_object_in([new_text_part('{"t": 1}'), new_data_part({"d": 1})]) == {"d": 1.0}
    fenced = 'I will look at the logs.\n```json\n{"tool_calls": []}\n```'
    assert json_object_in([new_text_part("no json here"), new_text_part(fenced)]) == {"tool_calls": []}
    assert json_object_in([new_text_part("hello"), _list_part([1])]) is None
    assert json_object_in([]) is None


def test_a_target_part_that_is_not_an_object_is_read_as_text() -> None:
    assert _part_payload(new_data_part({"diagnosis": {}})) == ({"diagnosis": {}}, "")
    assert _part_payload(_list_part([1, "x"])) == (None, '[1.0, "x"]')
    assert _part_payload(new_text_part("t")) == (None, "t")
    assert _part_payload(Part()) == (None, "")


@pytest.mark.parametrize("text, expected", [
    ('{"a": 1}', {"a": 1}),
    ('  prose {"a": {"b": 2}} more prose ', {"a": {"b": 2}}),
    ("```\n{\"x\": true}\n```", {"x": True}),
    ("[1, 2]", None),
    ("{not json}", None),
    ('{"n": ' + "9" * 5000 + "}", None),  # over Python's 4,300-digit limit: not a crash
    ("", None),
])
def test_extract_json_object(text: str, expected: Any) -> None:
    assert extract_json_object(text) == expected


def test_parse_reply_raises_only_reply_errors() -> None:
    assert parse_reply({"tool_calls": [{"name": "list_services"}]}).tool_calls[0].name == "list_services"
    for bad in ({}, {"tool_calls": "x"}, {"diagnosis": 5}, {"tool_calls": [{"name": 1}]}):
        with pytest.raises(ReplyError):
            parse_reply(bad)


def test_one_budget_for_request_harness_and_briefing() -> None:
    from pydantic import ValidationError

    from evaluator_agent.core.labels import TaskBudget
    from evaluator_agent.core.protocol import Budget
    from evaluator_agent.engine.request import parse_request

    asked = parse_request({"target": "http://127.0.0.1:9/a", "budget": {"max_turns": 50, "turn_timeout_s": 5}}).budget
    assert isinstance(asked, Budget) and asked.max_turns == 50 and asked.max_calls_per_turn == 8
    tight = asked.effective(TaskBudget(max_turns=12, timeout_s=900))
    assert (tight.max_turns, tight.timeout_s, tight.turn_timeout_s) == (12, 300.0, 5.0)  # the tighter of each
    assert asked.max_turns == 50  # the request's own is untouched
    for bad in ({"max_turns": 0}, {"max_turns": 201}, {"turn_timeout_s": 601}, {"max_calls_per_turn": 33}, {"retries": 3}):
        with pytest.raises(ValidationError):
            Budget(**bad)
