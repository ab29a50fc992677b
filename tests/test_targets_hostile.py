"""Broken and hostile targets never break a run: each ends its investigation with a recorded reason."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from evaluator_agent.core.labels import load_labelset
from evaluator_agent.core.records import RequestError
from evaluator_agent.engine.orchestrator import run_request
from evaluator_agent.engine.request import parse_request
from evaluator_agent.engine.transport import make_http_client
from evaluator_agent.results.store import Store
from tests.conftest import bound_socket, serve_app
from tests.targets import build_targets_app, script_fn

pytestmark = pytest.mark.anyio


def _first_label() -> Any:
    return load_labelset("smoke").labels[0]


async def _hang(_turn: int, _msg: dict[str, Any]) -> dict[str, Any]:
    await asyncio.sleep(30)
    return {}


def _huge(_turn: int, _msg: dict[str, Any]) -> str:
    return "x" * 3_000_000


def _good_then_diag(turn: int, _msg: dict[str, Any]) -> dict[str, Any]:
    if turn == 1:
        return {"tool_calls": [{"id": "c1", "name": "list_services", "arguments": {}},
                               {"id": "c2", "name": "no_such_tool", "arguments": {}},
                               {"id": "c3", "name": "search_logs", "arguments": {"query": "service:(", "from": "yesterday"}}]}
    return {"diagnosis": {"root_causes": [{"entity": "nothing-real", "mechanism": "bad_release"}], "summary": "guess"}}


TARGETS = {
    "hang": (_hang, False),
    "garbage": (lambda t, m: "I think the database is slow, maybe?", False),
    "huge": (_huge, False),
    "fails": (lambda t, m: "__fail__", False),
    "empty": (lambda t, m: "", False),
    "bad_calls": (_good_then_diag, False),
    "legacy": (_good_then_diag, True),
    "loops": (script_fn([{"tool_calls": [{"id": "a", "name": "list_services", "arguments": {}}]}]), False),
}


async def _run(base: str, name: str, db: Store, **budget: Any) -> dict[str, Any]:
    label = _first_label()
    req = parse_request({
        "target": f"{base}/{name}/.well-known/agent-card.json", "labelset": "smoke", "labels": [label.id],
        "budget": {"max_turns": 6, "timeout_s": 20, "turn_timeout_s": 1.5, **budget},
    })
    http = make_http_client(max_reply_bytes=1_000_000)
    try:
        return await run_request(req, db, http=http)
    finally:
        await http.aclose()


async def test_hostile_targets_each_end_with_a_reason(tmp_path) -> None:
    db = Store(tmp_path / "p.db")
    async with serve_app(lambda base: build_targets_app(base, TARGETS)) as base:
        results = {}
        for name in TARGETS:
            results[name] = await _run(base, name, db)
        # The server and the store are still fine after all of them.
        assert len(db.list_runs()) == len(TARGETS)
    reasons = {k: v["investigations"][0]["end_reason"] for k, v in results.items()}
    assert reasons["hang"] == "turn_timeout"
    assert reasons["garbage"] == "malformed_replies"
    assert reasons["empty"] == "malformed_replies"
    assert reasons["huge"] == "reply_too_large"
    assert reasons["fails"] == "target_error"
    assert reasons["bad_calls"] == "diagnosis"
    assert reasons["legacy"] == "diagnosis", "an A2A 0.3 target must be driven too"
    assert reasons["loops"] == "max_turns"
    for name, r in results.items():
        inv = r["investigations"][0]
        assert inv["passed"] is False and r["summary"]["errors"] == 0, name
    bad = results["bad_calls"]["investigations"][0]
    assert bad["tool_calls"] == 3 and bad["invalid_calls"] == 2
    assert results["loops"]["investigations"][0]["turns"] == 6


async def test_wall_time_cap(tmp_path) -> None:
    db = Store(tmp_path / "p.db")
    async with serve_app(lambda base: build_targets_app(base, TARGETS)) as base:
        r = await _run(base, "hang", db, timeout_s=1.0, turn_timeout_s=10)
    assert r["investigations"][0]["end_reason"] == "timeout"
    assert r["investigations"][0]["duration_s"] < 5


async def test_target_down_mid_run_is_a_network_error_not_an_agent_failure(tmp_path) -> None:
    db = Store(tmp_path / "p.db")
    async with serve_app(lambda base: build_targets_app(base, TARGETS)) as base:
        label = _first_label()
        req = parse_request({"target": f"{base}/bad_calls/.well-known/agent-card.json", "labels": [label.id]})
        http = make_http_client()
        from evaluator_agent.engine.orchestrator import execute, prepare

        prep = await prepare(req, http)
    # The server is gone now: the card was resolved, every turn is refused.
    result = await execute(prep, db)
    await http.aclose()
    inv = result["investigations"][0]
    assert inv["end_reason"] == "target_unreachable" and inv["error_kind"] == "network"
    assert result["summary"]["errors"] == 1 and result["summary"]["scored"] == 0


async def test_unreachable_or_broken_card_is_a_request_error(tmp_path) -> None:
    db = Store(tmp_path / "p.db")
    sock = bound_socket()  # bound, never listening: connection refused
    port = sock.getsockname()[1]
    with pytest.raises(RequestError, match="unreachable"):
        await run_request(parse_request({"target": f"http://127.0.0.1:{port}/x/.well-known/agent-card.json"}), db)
    sock.close()
    async with serve_app(lambda base: build_targets_app(base, TARGETS)) as base:
        with pytest.raises(RequestError, match="not a valid A2A agent card"):
            await run_request(parse_request({"target": f"{base}/not-a-card/.well-known/agent-card.json"}), db)
        with pytest.raises(RequestError, match="HTTP 404"):
            await run_request(parse_request({"target": f"{base}/nobody/.well-known/agent-card.json"}), db)
    assert db.list_runs() == []


async def test_ssrf_guard_refuses_metadata_and_optionally_private_addresses(tmp_path) -> None:
    from evaluator_agent.engine.conversation import TargetBlocked
    from evaluator_agent.engine.orchestrator import prepare
    from evaluator_agent.engine.transport import resolve_destination

    # Link-local (cloud metadata) is refused always, before any connection is attempted.
    with pytest.raises(TargetBlocked, match="link-local"):
        await resolve_destination("169.254.169.254", 80, allow_private=True)
    http = make_http_client()
    with pytest.raises(RequestError, match="refusing to contact 169.254.169.254"):
        await prepare(parse_request({"target": "http://169.254.169.254/latest/.well-known/agent-card.json"}), http)
    await http.aclose()
    # A public deployment can refuse private and loopback targets too.
    async with serve_app(lambda base: build_targets_app(base, TARGETS)) as base:
        strict = make_http_client(allow_private=False)
        with pytest.raises(RequestError, match="not a public address"):
            await prepare(parse_request({"target": f"{base}/bad_calls/.well-known/agent-card.json"}), strict)
        await strict.aclose()
        relaxed = make_http_client(allow_private=True)
        prep = await prepare(parse_request({"target": f"{base}/bad_calls/.well-known/agent-card.json"}), relaxed)
        assert prep.target.info.name == "bad_calls"
        await relaxed.aclose()


def _reports_usage(turn: int, _msg: dict[str, Any]) -> dict[str, Any]:
    usage = {"input_tokens": 1000, "output_tokens": 50, "cost_usd": 0.002}
    if turn == 1:
        return {"tool_calls": [{"id": "c1", "name": "list_services", "arguments": {}}], "usage": usage}
    if turn == 2:  # malformed usage is dropped, the reply still counts
        return {"tool_calls": [{"id": "c2", "name": "get_monitors", "arguments": {}}], "usage": {"input_tokens": -3}}
    return {"diagnosis": {"no_fault": True}, "usage": usage}


async def test_reported_usage_is_summed_per_investigation(tmp_path) -> None:
    db = Store(tmp_path / "p.db")
    async with serve_app(lambda base: build_targets_app(base, {"usage": (_reports_usage, False)})) as base:
        r = await _run(base, "usage", db)
    inv = db.investigations(r["run_id"])[0]
    assert inv["end_reason"] == "diagnosis" and inv["turns"] == 3
    assert inv["tokens"] == {"input_tokens": 2000, "output_tokens": 100, "cost_usd": pytest.approx(0.004)}
    assert r["summary"]["trajectory"]["tokens"]["input_tokens"] == 2000
