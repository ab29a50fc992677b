"""The conversation's fast path (target.py, ``_fast_sender``): a SendMessage body written with
orjson instead of through protobuf. It must be the request the SDK would send, and everything a
target can answer must be read exactly as the SDK's own path reads it (issue 12, hot path)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from evaluator_agent.engine.conversation import TargetError
from evaluator_agent.engine.target import A2AConversation, Target, _fast_sender
from evaluator_agent.engine.transport import make_http_client
from tests.conftest import serve_app
from tests.targets import build_targets_app, card_for

pytestmark = pytest.mark.anyio

DATA = {"type": "tool_results", "turn": 3, "remaining_turns": 7, "ratio": 0.25, "ok": True, "none": None,
        "tool_results": [{"id": "c1", "ok": True, "content": {"logs": [{"message": "é ✓ \"quoted\"\n", "n": 12}]}}],
        "nested": {"empty": {}, "list": [], "deep": [[1, 2], {"x": -3.5e-7}]}}
TEXT = "Results of your 1 tool call:\n```json\n{...}\n```"


def _floats(v: Any) -> Any:
    """JSON as an SDK-built target sees it: every number a double (a Struct holds no integers)."""
    if isinstance(v, bool) or v is None or isinstance(v, str):
        return v
    if isinstance(v, int | float):
        return float(v)
    if isinstance(v, list):
        return [_floats(x) for x in v]
    return {k: _floats(x) for k, x in v.items()}


def _without_ids(body: dict[str, Any]) -> dict[str, Any]:
    body = json.loads(json.dumps(body))
    body.pop("id", None)
    body["params"]["message"].pop("messageId", None)
    return body


def _capture_app(base: str, bodies: list[dict[str, Any]], answer: Any) -> Starlette:
    """A raw JSON-RPC target: records each request body and answers with ``answer(body)``
    (a JSON-able object, or a (status, bytes) pair)."""
    from google.protobuf.json_format import MessageToDict

    card = json.dumps(MessageToDict(card_for("cap", base))).encode()

    async def card_route(_: Request) -> Response:
        return Response(card, media_type="application/json")

    async def rpc(request: Request) -> Response:
        body = json.loads(await request.body())
        bodies.append(body)
        out = answer(body)
        if isinstance(out, tuple):
            return Response(out[1], status_code=out[0], media_type="application/json")
        return Response(json.dumps(out), media_type="application/json")

    return Starlette(routes=[Route("/cap/.well-known/agent-card.json", card_route), Route("/cap", rpc, methods=["POST"])])


def _message(body: dict[str, Any], parts: list[dict[str, Any]]) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": body["id"], "result": {"message": {
        "messageId": "m1", "contextId": body["params"]["message"]["contextId"], "role": "ROLE_AGENT", "parts": parts}}}


async def _both(base: str, http: httpx.AsyncClient, data: dict[str, Any], text: str, task_id: str | None = None) -> list[Any]:
    """Send the same message once by each path; what each returned or raised."""
    target = await Target.connect(f"{base}/cap/.well-known/agent-card.json", http)
    fast = target.conversation()
    assert fast._fast_send is not None
    slow = A2AConversation(target._client, None)
    out = []
    for conv in (fast, slow):
        conv._task_id = task_id
        try:
            out.append(await conv.send(data, text, 10))
        except TargetError as e:
            out.append((type(e).__name__, e.kind))
    return out


async def test_the_body_is_the_one_the_sdk_sends() -> None:
    bodies: list[dict[str, Any]] = []
    reply = {"tool_calls": [{"id": "a", "name": "list_services", "arguments": {}}]}
    async with serve_app(lambda b: _capture_app(b, bodies, lambda body: _message(body, [{"data": reply}]))) as base, \
            make_http_client() as http:
        fast, slow = await _both(base, http, DATA, TEXT)
        assert fast == slow and fast.obj == reply
        fast_body, slow_body = (_without_ids(b) for b in bodies)
        assert fast_body["params"]["message"]["contextId"] and fast_body["method"] == slow_body["method"] == "SendMessage"
        fast_body["params"]["message"]["contextId"] = slow_body["params"]["message"]["contextId"]
        assert _floats(fast_body) == _floats(slow_body)
        # the numbers themselves are JSON numbers either way; the SDK writes integers as doubles
        assert fast_body["params"]["message"]["parts"][0]["data"]["turn"] == 3

        bodies.clear()  # continuing a task the target asked input for
        await _both(base, http, {"x": 1}, "t", task_id="task-9")
        assert [b["params"]["message"]["taskId"] for b in bodies] == ["task-9", "task-9"]


ANSWERS = {
    "data part": lambda b: _message(b, [{"data": {"diagnosis": {"no_fault": True, "summary": "s"}}}]),
    "text part with JSON": lambda b: _message(b, [{"text": 'thinking...\n```json\n{"diagnosis": {"no_fault": true}}\n```'}]),
    "completed task": lambda b: {"jsonrpc": "2.0", "id": b["id"], "result": {"task": {
        "id": "t1", "contextId": "c", "status": {"state": "TASK_STATE_COMPLETED"},
        "artifacts": [{"artifactId": "a", "parts": [{"data": {"tool_calls": []}}]}]}}},
    "input-required task": lambda b: {"jsonrpc": "2.0", "id": b["id"], "result": {"task": {
        "id": "t2", "contextId": "c", "status": {"state": "TASK_STATE_INPUT_REQUIRED", "message": {
            "messageId": "m", "role": "ROLE_AGENT", "parts": [{"data": {"tool_calls": [{"name": "list_services"}]}}]}}}}},
    "failed task": lambda b: {"jsonrpc": "2.0", "id": b["id"], "result": {"task": {
        "id": "t3", "contextId": "c", "status": {"state": "TASK_STATE_FAILED"}}}},
    "JSON-RPC error": lambda b: {"jsonrpc": "2.0", "id": b["id"], "error": {"code": -32603, "message": "boom"}},
    "neither result nor error": lambda b: {"jsonrpc": "2.0", "id": b["id"]},
    "empty result": lambda b: {"jsonrpc": "2.0", "id": b["id"], "result": {}},
    "HTTP 500": lambda b: (500, b"oops"),
    "not JSON": lambda b: (200, b"\xff not json"),
    "a list": lambda b: (200, b"[1, 2]"),
    "NaN in a part": lambda b: (200, json.dumps(_message(b, [{"data": {"tool_calls": [], "x": float("nan")}}])).encode()),
    "5,000-digit integer": lambda b: (200, json.dumps(_message(b, [{"data": {"n": 0}}])).replace(
        '"n": 0', '"n": ' + "9" * 5000).encode()),
}


@pytest.mark.parametrize("case", list(ANSWERS))
async def test_every_answer_is_read_as_the_sdk_reads_it(case: str) -> None:
    bodies: list[dict[str, Any]] = []
    async with serve_app(lambda b: _capture_app(b, bodies, ANSWERS[case])) as base, make_http_client() as http:
        fast, slow = await _both(base, http, {"type": "briefing"}, "hello")
    assert fast == slow, case


async def test_only_a_one_dot_x_json_rpc_target_takes_the_fast_path() -> None:
    async with serve_app(lambda b: build_targets_app(b, {"new": (lambda *_: {"ok": 1}, False),
                                                         "old": (lambda *_: {"ok": 1}, True)})) as base, \
            make_http_client() as http:
        new = await Target.connect(f"{base}/new/.well-known/agent-card.json", http)
        old = await Target.connect(f"{base}/old/.well-known/agent-card.json", http)
        assert _fast_sender(new._client) is not None
        assert _fast_sender(old._client) is None  # 0.3: the SDK's compat transport, as before
