from __future__ import annotations

import pytest

from evaluator_agent.core.records import RequestError
from evaluator_agent.engine.request import parse_request

CARD = "http://127.0.0.1:9/agent/.well-known/agent-card.json"


def test_plain_shape_with_defaults() -> None:
    r = parse_request({"target": CARD})
    assert (r.labelset, r.attempts, r.concurrency, r.budget.max_turns, r.noise) == ("smoke", 1, 4, 30, "on")


def test_agentbeats_shape() -> None:
    r = parse_request({"participants": {"target": CARD}, "config": {"labelset": "core", "attempts": 3}})
    assert (r.target, r.labelset, r.attempts) == (CARD, "core", 3)
    r = parse_request({"participants": {"sre": CARD}})
    assert r.target == CARD


@pytest.mark.parametrize(
    "obj, match",
    [
        ({"target": "not a url"}, "not an http"),
        ({"target": "ftp://x/y"}, "not an http"),
        ({"target": CARD, "attempts": 0}, "attempts"),
        ({"target": CARD, "attempts": 1000}, "attempts"),
        ({"target": CARD, "concurrency": 0}, "concurrency"),
        ({"target": CARD, "budget": {"max_turns": -1}}, "max_turns"),
        ({"target": CARD, "surprise": 1}, "surprise"),
        ({"labelset": "smoke"}, "missing \"target\""),
        ({"participants": {"a": CARD, "b": CARD}}, "several participants"),
        ({"participants": "x"}, "participants must be"),
        ([1, 2], "JSON object"),
        ({"target": CARD, "run_id": "../etc"}, "run_id"),
    ],
)
def test_bad_requests_name_the_problem(obj, match) -> None:
    with pytest.raises(RequestError, match=match):
        parse_request(obj)
