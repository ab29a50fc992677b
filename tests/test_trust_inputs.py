"""Inputs a hostile target or client controls (issue 11, items 3, 9, 12, 13).

- Replies and cards are capped in *decoded* bytes: a gzip bomb is refused after the cap, with
  memory flat, and recorded as a clear failure ("reply_too_large", "agent card too large").
- A target task left SUBMITTED/WORKING is polled with GetTask until it ends or the turn times out.
- NaN / Infinity / huge numbers are refused at the guard, and ListTasks keeps working for everyone.
- A search query nested too deep is a tool error saying so, not an internal error with a traceback.
- A client that sends its whole oversized body before reading (urllib, http.client) reads the 413.

Everything runs on real uvicorn servers on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import gzip
import http.client
import json
import logging
import tracemalloc
import urllib.error
import urllib.request
import zlib
from functools import cache
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from a2a.helpers import new_data_part, new_message
from a2a.types import Artifact, Role, Task, TaskState, TaskStatus
from google.protobuf.json_format import MessageToDict
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from evaluator_agent.core.labels import load_labelset
from evaluator_agent.core.records import RequestError
from evaluator_agent.engine.conversation import ReplyTooLarge, TargetProtocolError
from evaluator_agent.engine.orchestrator import run_request
from evaluator_agent.engine.request import parse_request
from evaluator_agent.engine.target import MAX_CARD_BYTES
from evaluator_agent.engine.transport import make_http_client
from evaluator_agent.results.store import Store
from evaluator_agent.service.guard import MAX_NUMBER_CHARS
from evaluator_agent.telemetry.query import MAX_QUERY_DEPTH, QueryError, parse_search_query
from tests.conftest import serve_app
from tests.targets import agent_routes, build_targets_app, card_for

pytestmark = pytest.mark.anyio

A2A = {"A2A-Version": "1.0", "Content-Type": "application/json"}
MiB = 1024 * 1024
DIAGNOSIS = {"diagnosis": {"no_fault": True}}
BOMB_DECODED = 100 * MiB


@cache
def gzip_bomb() -> bytes:
    """~100 KB of gzip that inflates to 100 MiB of spaces (built incrementally: 1 MiB at a time)."""
    c = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = b" " * MiB
    out = [c.compress(block) for _ in range(BOMB_DECODED // MiB)]
    out.append(c.flush())
    return b"".join(out)


def _task_dict(task_id: str, context_id: str, state: int, reply: dict[str, Any] | None = None) -> dict[str, Any]:
    task = Task(id=task_id, context_id=context_id, status=TaskStatus(state=state))
    if reply is not None:
        task.artifacts.append(Artifact(artifact_id="a-" + task_id, parts=[new_data_part(reply)]))
    return MessageToDict(task)


class RawTargets:
    """Hand-written JSON-RPC A2A 1.0 targets, each at ``/<name>`` with its card, misbehaving on purpose:

    gzip-ok      answers gzip-compressed (a well-behaved compressed reply must still work)
    deflate-ok   answers raw-deflate-compressed
    gzip-bomb    answers a 100 KB gzip body that inflates to 100 MiB
    brotli       claims Content-Encoding br (which the proctor did not ask for)
    working      leaves each task WORKING; GetTask reports it WORKING once more, then COMPLETED
    stuck        leaves each task WORKING for ever
    card-bomb    its card is a gzip bomb
    card-big     its card is 2 MiB of plain JSON (over the transport's 1 MB cap)
    card-300k    its card is 300 KB (over MAX_CARD_BYTES, under the transport cap)
    """

    def __init__(self, base: str):
        self.base = base
        self.get_task_calls: dict[str, int] = {}
        self.tasks: dict[str, dict[str, Any]] = {}

    def card(self, name: str) -> dict[str, Any]:
        return MessageToDict(card_for(name, self.base))

    async def card_route(self, request: Request) -> Response:
        name = request.path_params["name"]
        if name == "card-bomb":
            return Response(gzip_bomb(), media_type="application/json", headers={"Content-Encoding": "gzip"})
        card = self.card(name)
        if name in ("card-big", "card-300k"):
            size = 2 * MiB if name == "card-big" else 300_000
            card["description"] = "x" * size
        return JSONResponse(card)

    async def rpc_route(self, request: Request) -> Response:
        name = request.path_params["name"]
        if name == "gzip-bomb":
            return Response(gzip_bomb(), media_type="application/json", headers={"Content-Encoding": "gzip"})
        body = await request.json()
        rid, method, params = body.get("id"), body.get("method"), body.get("params") or {}
        if method == "SendMessage":
            msg = params.get("message") or {}
            ctx = msg.get("contextId") or "ctx"
            if name in ("working", "stuck"):
                task_id = f"task-{len(self.tasks) + 1}"
                self.tasks[task_id] = {"name": name, "context": ctx}
                self.get_task_calls[task_id] = 0
                result = {"task": _task_dict(task_id, ctx, TaskState.TASK_STATE_WORKING)}
            else:
                reply = new_message([new_data_part(DIAGNOSIS)], context_id=ctx, role=Role.ROLE_AGENT)
                result = {"message": MessageToDict(reply)}
        elif method == "GetTask":
            task_id = params.get("id", "")
            known = self.tasks.get(task_id)
            if known is None:
                return JSONResponse({"jsonrpc": "2.0", "id": rid, "error": {"code": -32001, "message": "task not found"}})
            self.get_task_calls[task_id] += 1
            done = known["name"] == "working" and self.get_task_calls[task_id] >= 2
            result = _task_dict(task_id, known["context"],
                                TaskState.TASK_STATE_COMPLETED if done else TaskState.TASK_STATE_WORKING,
                                DIAGNOSIS if done else None)
        else:
            return JSONResponse({"jsonrpc": "2.0", "id": rid, "error": {"code": -32601, "message": f"no {method}"}})
        payload = json.dumps({"jsonrpc": "2.0", "id": rid, "result": result}).encode()
        if name == "gzip-ok":
            return Response(gzip.compress(payload), media_type="application/json", headers={"Content-Encoding": "gzip"})
        if name == "deflate-ok":
            c = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
            return Response(c.compress(payload) + c.flush(), media_type="application/json",
                            headers={"Content-Encoding": "deflate"})
        if name == "brotli":
            return Response(payload, media_type="application/json", headers={"Content-Encoding": "br"})
        return Response(payload, media_type="application/json")

    def app(self) -> Starlette:
        return Starlette(routes=[
            Route("/{name}/.well-known/agent-card.json", self.card_route),
            Route("/{name}", self.rpc_route, methods=["POST"]),
        ])


async def _evaluate(base: str, name: str, db: Store, **budget: Any) -> dict[str, Any]:
    label = load_labelset("smoke").labels[0]
    req = parse_request({
        "target": f"{base}/{name}/.well-known/agent-card.json", "labelset": "smoke", "labels": [label.id],
        "budget": {"max_turns": 4, "timeout_s": 20, "turn_timeout_s": 3, **budget},
    })
    http = make_http_client(max_reply_bytes=1_000_000)
    try:
        return await run_request(req, db, http=http)
    finally:
        await http.aclose()


# ----------------------------------------------------------------------------- item 3: decoded caps


async def test_compressed_replies_work_and_a_gzip_bomb_reply_is_refused_at_the_cap(tmp_path) -> None:
    db = Store(tmp_path / "p.db")
    async with serve_app(lambda base: RawTargets(base).app()) as base:
        for name in ("gzip-ok", "deflate-ok"):
            r = await _evaluate(base, name, db)
            assert r["investigations"][0]["end_reason"] == "diagnosis", (name, r["investigations"][0])

        r = await _evaluate(base, "gzip-bomb", db)
        inv = db.investigations(r["run_id"])[0]
        assert inv["end_reason"] == "reply_too_large", inv
        assert "decoded" in (inv.get("error") or ""), inv.get("error")

        r = await _evaluate(base, "brotli", db)
        inv = db.investigations(r["run_id"])[0]
        assert inv["end_reason"] == "target_error" and "Content-Encoding" in inv["error"], inv

        # The decoded read stops at the cap: memory stays far below the bomb's 100 MiB.
        http = make_http_client(max_reply_bytes=1_000_000)
        try:
            tracemalloc.start()
            try:
                with pytest.raises(ReplyTooLarge, match="once decoded"):
                    await http.post(f"{base}/gzip-bomb", json={"jsonrpc": "2.0", "id": 1, "method": "SendMessage"})
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
        finally:
            await http.aclose()
        assert peak < 16 * MiB, f"peak {peak / MiB:.1f} MiB while reading a {BOMB_DECODED // MiB} MiB bomb"


async def test_oversized_or_bomb_cards_are_reported_as_card_too_large(tmp_path) -> None:
    db = Store(tmp_path / "p.db")
    async with serve_app(lambda base: RawTargets(base).app()) as base:
        for name in ("card-bomb", "card-big", "card-300k"):
            tracemalloc.start()
            try:
                with pytest.raises(RequestError, match="card too large") as caught:
                    await _evaluate(base, name, db)
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
            assert "unreachable" not in str(caught.value), name
            if name != "card-big":  # card-big is refused on its Content-Length by the transport's cap
                assert f"over {MAX_CARD_BYTES} bytes" in str(caught.value), str(caught.value)
            assert peak < 16 * MiB, f"{name}: peak {peak / MiB:.1f} MiB"
        # Just under the card cap is fine (a big but honest card).
        http = make_http_client()
        try:
            from evaluator_agent.engine.target import Target

            t = await Target.connect(f"{base}/gzip-ok/.well-known/agent-card.json", http)
            assert t.info.name == "gzip-ok"
        finally:
            await http.aclose()
    assert db.list_runs() == []
    assert MAX_CARD_BYTES < 300_000


async def test_unknown_content_coding_is_a_protocol_error_not_garbage() -> None:
    app = Starlette(routes=[Route("/", lambda r: Response(b"\x00\x01", headers={"Content-Encoding": "zstd, gzip"}))])
    async with serve_app(lambda base: app) as base:
        http = make_http_client()
        try:
            with pytest.raises(TargetProtocolError, match="Content-Encoding"):
                await http.get(base + "/")
            # The proctor asks for what it can decode, and nothing else.
            assert http.headers["accept-encoding"] == "gzip, deflate"
        finally:
            await http.aclose()


# ----------------------------------------------------------------------------- item 13: polling


async def test_a_task_left_working_is_polled_with_get_task_until_it_completes(tmp_path) -> None:
    db = Store(tmp_path / "p.db")
    targets: RawTargets | None = None

    def make(base: str) -> Starlette:
        nonlocal targets
        targets = RawTargets(base)
        return targets.app()

    async with serve_app(make) as base:
        r = await _evaluate(base, "working", db)
        inv = r["investigations"][0]
        assert inv["end_reason"] == "diagnosis", inv
        assert targets is not None and targets.get_task_calls and all(n >= 2 for n in targets.get_task_calls.values())

        # A task that never finishes: polled until the turn's deadline, then a timeout that says why.
        r = await _evaluate(base, "stuck", db, turn_timeout_s=1.0, max_turns=2)
        inv = db.investigations(r["run_id"])[0]
        assert inv["end_reason"] == "turn_timeout", inv
        assert "still TASK_STATE_WORKING" in inv["error"] and "GetTask" in inv["error"], inv["error"]
        stuck = [t for t, v in targets.tasks.items() if v["name"] == "stuck"]
        assert stuck and targets.get_task_calls[stuck[0]] >= 2


class _SlowExecutor:
    """An a2a-sdk agent that works in the background: the task is WORKING when SendMessage returns
    (the handler below answers at once), and COMPLETED with the diagnosis a moment later."""

    def __init__(self, delay: float):
        self.delay = delay

    async def execute(self, context: Any, event_queue: Any) -> None:
        from a2a.helpers import new_task_from_user_message
        from a2a.server.tasks import TaskUpdater

        task = new_task_from_user_message(context.message)
        await event_queue.enqueue_event(task)
        up = TaskUpdater(event_queue, task.id, task.context_id)
        await up.start_work()
        await asyncio.sleep(self.delay)
        await up.add_artifact([new_data_part(DIAGNOSIS)], name="result", last_chunk=True)
        await up.complete()

    async def cancel(self, context: Any, event_queue: Any) -> None:
        return None


def _sdk_async_targets(base: str) -> Starlette:
    """The slow agent behind a stock a2a-sdk server whose SendMessage returns at once
    (``return_immediately``), at /async (1.0 card) and /async-legacy (0.3 card)."""
    from a2a.server.agent_execution import AgentExecutor
    from a2a.server.request_handlers import DefaultRequestHandler
    from a2a.server.tasks import InMemoryTaskStore

    class Executor(_SlowExecutor, AgentExecutor):
        pass

    class ReturnAtOnce(DefaultRequestHandler):
        async def on_message_send(self, params: Any, context: Any) -> Any:
            params.configuration.return_immediately = True
            return await super().on_message_send(params, context)

    routes: list[Any] = []
    for name, legacy in (("async", False), ("async-legacy", True)):
        handler = ReturnAtOnce(agent_executor=Executor(0.4), task_store=InMemoryTaskStore(),
                               agent_card=card_for(name, base))
        routes.extend(agent_routes(name, card_for(name, base, legacy), handler))
    return Starlette(routes=routes)


async def test_a_stock_sdk_agent_answering_before_it_finishes_is_polled_over_1_0_and_0_3(tmp_path) -> None:
    db = Store(tmp_path / "p.db")
    async with serve_app(_sdk_async_targets) as base:
        for name in ("async", "async-legacy"):
            r = await _evaluate(base, name, db)
            inv = db.investigations(r["run_id"])[0]
            assert inv["end_reason"] == "diagnosis", (name, inv["end_reason"], inv.get("error"))


# ----------------------------------------------------------------------------- item 9: numbers, nesting


def _proctor(db: Any):
    from evaluator_agent.service.server import create_app

    return lambda base: create_app(str(db), public_url=base)


async def _list_tasks_ok(http: httpx.AsyncClient, proctor: str) -> None:
    r = await http.post(proctor + "/", json={"jsonrpc": "2.0", "id": 7, "method": "ListTasks", "params": {}}, headers=A2A)
    assert r.status_code == 200 and "result" in r.json(), r.text[:300]
    r = await http.get(proctor + "/v1/tasks", headers=A2A)
    assert r.status_code == 200, r.text[:300]


async def test_nan_infinity_and_huge_numbers_are_refused_and_list_tasks_keeps_working(tmp_path) -> None:
    template = ('{"jsonrpc":"2.0","id":1,"method":"SendMessage","params":{"message":{"messageId":"m1",'
                '"role":"ROLE_USER","parts":[{"data":{"action":"list_labelsets","x":VALUE}}]}}}')
    cases = [
        (template.replace("VALUE", "NaN"), -32700, "NaN is not JSON"),
        (template.replace("VALUE", "Infinity"), -32700, "Infinity is not JSON"),
        (template.replace("VALUE", "-Infinity"), -32700, "Infinity is not JSON"),
        (template.replace("VALUE", "1" * 5000), -32600, f"longer than {MAX_NUMBER_CHARS} characters"),
        (template.replace("VALUE", "1e400"), -32600, "out of range"),
        (template.replace("VALUE", "-" + "9" * 200 + ".5"), -32600, "longer than"),
        (template.replace('"m1"', "1" * 5000).replace("VALUE", "1"), -32600, "longer than"),
        (template.replace('"id":1', '"id":' + "2" * 5000).replace("VALUE", "1"), -32600, "longer than"),
    ]
    async with serve_app(_proctor(tmp_path / "p.db")) as proctor, httpx.AsyncClient(timeout=20) as http:
        for body, code, text in cases:
            r = await http.post(proctor + "/", content=body.encode(), headers=A2A)
            assert r.status_code == 200, (body[:80], r.status_code, r.text[:200])
            err = r.json()["error"]
            assert err["code"] == code and text in err["message"], (body[:80], err)
            if "longer than" in text:
                assert err["data"] == {"max_number_chars": MAX_NUMBER_CHARS}
            # REST: HTTP 400 with the same message.
            r = await http.post(f"{proctor}/v1/message:send", content=body.encode(), headers=A2A)
            assert r.status_code == 400 and text in r.json()["error"]["message"], r.text[:200]
            await _list_tasks_ok(http, proctor)
        # Ordinary numbers, long-ish ones included, still pass.
        ok = template.replace("VALUE", "[1, -2.5, 1e300, 123456789012345678901234567890, 0.1000000000000000055511151231257827]")
        r = await http.post(proctor + "/", content=ok.encode(), headers=A2A)
        assert r.json()["result"]["task"]["status"]["state"] == "TASK_STATE_COMPLETED", r.text[:300]
        await _list_tasks_ok(http, proctor)
        # Inside strings these are text.
        text_ok = template.replace("VALUE", '"NaN Infinity ' + "1" * 5000 + '"')
        r = await http.post(proctor + "/", content=text_ok.encode(), headers=A2A)
        assert r.json()["result"]["task"]["status"]["state"] == "TASK_STATE_COMPLETED", r.text[:300]
        await _list_tasks_ok(http, proctor)


def test_query_nesting_limit_is_a_clear_query_error() -> None:
    at_limit = "(" * MAX_QUERY_DEPTH + "error" + ")" * MAX_QUERY_DEPTH
    parse_search_query(at_limit)
    parse_search_query("service:" + "(" * (MAX_QUERY_DEPTH - 1) + "a OR b" + ")" * (MAX_QUERY_DEPTH - 1))
    for q in (
        "(" * 1990 + "error" + ")" * 1990,
        "(" * (MAX_QUERY_DEPTH + 1) + "error" + ")" * (MAX_QUERY_DEPTH + 1),
        "NOT " * 990 + "error",
        "-(" * 1000 + "error" + ")" * 1000,
        "service:" + "(" * 1990 + "a" + ")" * 1990,
        "service:(" + "NOT " * 900 + "a)",
        "(" * 1999,
    ):
        with pytest.raises(QueryError, match=r"more than 32 levels deep|not closed"):
            parse_search_query(q)
    # Tokens are read as the parser needs them: a query refused for its depth is not read past
    # that point (what follows, here an unterminated quote, is never reached).
    with pytest.raises(QueryError, match="more than 32 levels deep"):
        parse_search_query("(" * 3000 + 'error "never closed')
    with pytest.raises(QueryError, match="unterminated quote"):
        parse_search_query("(" * 3 + 'error "never closed')


def _deep_query_target(seen: list[dict[str, Any]]):
    deep = "(" * 1990 + "error" + ")" * 1990

    def fn(turn: int, msg: dict[str, Any]) -> dict[str, Any]:
        seen.append(msg)
        if turn == 1:
            return {"tool_calls": [
                {"id": "deep", "name": "search_logs", "arguments": {"query": deep}},
                {"id": "nots", "name": "search_spans", "arguments": {"query": "NOT " * 990 + "x"}},
                {"id": "fine", "name": "search_logs", "arguments": {"query": "(" * 5 + "error" + ")" * 5}},
            ]}
        return DIAGNOSIS

    return fn


async def test_deeply_nested_query_is_a_tool_error_without_traceback(tmp_path, caplog) -> None:
    seen: list[dict[str, Any]] = []
    db = Store(tmp_path / "p.db")
    caplog.set_level(logging.WARNING)
    async with serve_app(lambda base: build_targets_app(base, {"deep": (_deep_query_target(seen), False)})) as base:
        r = await _evaluate(base, "deep", db)
    inv = r["investigations"][0]
    assert inv["end_reason"] == "diagnosis", inv
    results = {x["id"]: x for x in seen[1]["tool_results"]}
    for cid in ("deep", "nots"):
        assert results[cid]["ok"] is False
        assert "more than 32 levels deep" in results[cid]["error"], results[cid]
        assert "internal error" not in results[cid]["error"] and "RecursionError" not in results[cid]["error"]
    assert results["fine"]["ok"] is True, results["fine"]
    assert not [rec for rec in caplog.records if rec.exc_info], [rec.getMessage()[:200] for rec in caplog.records]


# ----------------------------------------------------------------------------- item 12: linger


def _urllib_post(url: str, size: int) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=b" " * size, headers=A2A)
    try:
        with urllib.request.urlopen(req, timeout=20) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def _http_client_post(base: str, path: str, size: int) -> tuple[int, bytes, str | None]:
    u = urlsplit(base)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=20)
    try:
        conn.request("POST", path, body=b"x" * size, headers=A2A)  # sends the whole body, then reads
        resp = conn.getresponse()
        return resp.status, resp.read(), resp.getheader("connection")
    finally:
        conn.close()


async def test_clients_that_send_the_whole_body_first_receive_the_413(tmp_path) -> None:
    async with serve_app(_proctor(tmp_path / "p.db")) as proctor:
        for size in (MiB + 1, 3 * MiB, 6 * MiB):
            status, body = await asyncio.to_thread(_urllib_post, proctor + "/", size)
            assert status == 413, (size, status)
            assert "payload too large" in json.loads(body)["error"]["message"]
            status, body, conn = await asyncio.to_thread(_http_client_post, proctor, "/v1/message:send", size)
            assert status == 413 and json.loads(body)["error"]["code"] == 413, (size, status)
            assert conn != "close", "the whole body was read: the connection may stay open"
        # The server still serves ordinary requests.
        health = await asyncio.to_thread(lambda: urllib.request.urlopen(proctor + "/health", timeout=20).status)
        assert health == 200


def test_a_reply_text_with_a_huge_integer_is_unusable_not_a_crash() -> None:
    from evaluator_agent.core.protocol import extract_json_object

    assert extract_json_object('{"diagnosis": {"no_fault": true}, "n": ' + "1" * 5000 + "}") is None
    assert extract_json_object('{"diagnosis": {"no_fault": true}, "n": 12345}') == {"diagnosis": {"no_fault": True}, "n": 12345}


@pytest.mark.parametrize(
    ("raised", "said"),
    [
        (ValueError("Exceeds the limit (4300 digits) for integer string conversion; use sys.set_int_max_str_digits()"),
         "more than 4,300 digits"),
        (ValueError("Fail to serialize NaN for Value.number_value"), "NaN, which JSON cannot carry"),
        (ValueError("Fail to serialize Infinity for Value.number_value"), "Infinity, which JSON cannot carry"),
    ],
)
def test_unreadable_replies_are_said_plainly(raised: Exception, said: str) -> None:
    from evaluator_agent.engine.conversation import TargetProtocolError
    from evaluator_agent.engine.transport import classify

    err = classify(raised)
    assert isinstance(err, TargetProtocolError) and said in str(err) and "sys.set_int" not in str(err)
