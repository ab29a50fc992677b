"""Proctor throughput: investigations/s and turns/s against a minimal scripted target,
beside the round trips/s of a bare a2a-sdk echo agent measured the same way, and the same
run against the ADK ``methodical`` mock agent.

    .venv/bin/python tests/benchmarks/bench_proctor.py [--investigations 120] [--turns 10]

Targets run in a separate process (as they would in production), the proctor and the echo
client in this one. Goal: proctor turns/s against the scripted target written without the SDK
(``raw``) >= 0.67 x bare a2a-sdk echo round trips/s (sequential); the proctor CPU per turn is
this process's CPU time over the run divided by its turns.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("ADK_SUPPRESS_A2A_EXPERIMENTAL_FEATURE_WARNINGS", "1")

SCRIPT_CALLS = [
    ("get_monitors", {"query": "status:alert"}),
    ("list_services", {}),
    ("aggregate_logs", {"query": "status:error", "from": "now-1h", "group_by": ["service"]}),
    ("search_logs", {"query": "status:error", "from": "now-30m", "limit": 20}),
    ("get_events", {"query": "source:deploy", "from": "now-3h"}),
    ("query_metrics", {"query": "sum:trace.http.request.errors{*} by {service}", "from": "now-1h"}),
    ("search_spans", {"query": "status:error", "from": "now-30m", "limit": 20}),
    ("list_metrics", {"query": "kubernetes"}),
    ("get_events", {"query": "source:kubernetes", "from": "now-2h"}),
    ("search_logs", {"query": "status:warn", "from": "now-1h", "limit": 20}),
]


def scripted_replies(turns: int) -> list[dict[str, Any]]:
    replies: list[dict[str, Any]] = []
    for i in range(turns - 1):
        name, args = SCRIPT_CALLS[i % len(SCRIPT_CALLS)]
        replies.append({"tool_calls": [{"id": f"c{i}", "name": name, "arguments": args}]})
    replies.append({"diagnosis": {"root_causes": [{"entity": "checkout", "mechanism": "bad_release", "confidence": 0.5}],
                                  "summary": "scripted"}})
    return replies


def _free_socket() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    return s


def raw_scripted_routes(base: str, turns: int) -> list[Any]:
    """The scripted target without the SDK: its card (written once with the SDK's encoder) and a
    JSON-RPC SendMessage handler that reads and writes JSON with orjson and answers with the
    context's next scripted reply as a DataPart. What it costs per turn is close to nothing, so
    the proctor's own cost per turn is what the figure shows."""
    import uuid

    import orjson
    from google.protobuf.json_format import MessageToDict
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    from tests.targets import card_for

    card = orjson.dumps(MessageToDict(card_for("raw", base)))
    replies = scripted_replies(turns)
    seen: dict[str, int] = {}

    async def card_route(_: Request) -> Response:
        return Response(card, media_type="application/json")

    async def rpc(request: Request) -> Response:
        req = orjson.loads(await request.body())
        ctx = req["params"]["message"]["contextId"]
        n = seen.get(ctx, 0)
        seen[ctx] = n + 1
        if n + 1 >= len(replies):
            seen.pop(ctx, None)
        msg = {"messageId": uuid.uuid4().hex, "contextId": ctx, "role": "ROLE_AGENT",
               "parts": [{"data": replies[min(n, len(replies) - 1)]}]}
        return Response(orjson.dumps({"jsonrpc": "2.0", "id": req.get("id"), "result": {"message": msg}}),
                        media_type="application/json")

    return [Route("/raw/.well-known/agent-card.json", card_route), Route("/raw", rpc, methods=["POST"])]


def _serve_targets(port: int, turns: int, ready: Any) -> None:
    import uvicorn

    from tests.targets import build_targets_app, echo_fn, script_fn

    base = f"http://127.0.0.1:{port}"
    app = build_targets_app(base, {
        "scripted": (script_fn(scripted_replies(turns)), False),
        "echo": (echo_fn, False),
        "sink": (script_fn([{"ok": True}]), False),  # replies at once, like the scripted target
    })
    app.router.routes[:0] = raw_scripted_routes(base, turns)
    ready.set()
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="error", access_log=False)


def _serve_mock_agents(port: int, ready: Any) -> None:
    import uvicorn

    from mock_agents.server import build_app, quiet_logs

    quiet_logs()
    app = build_app(port=port, agents=["methodical"], base_url=f"http://127.0.0.1:{port}")
    ready.set()
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="error", access_log=False)


def _start(target: Any, *args: Any) -> tuple[mp.Process, int]:
    s = _free_socket()
    port = s.getsockname()[1]
    s.close()
    ctx = mp.get_context("spawn")
    ready = ctx.Event()
    p = ctx.Process(target=target, args=(port, *args, ready), daemon=True)
    p.start()
    ready.wait(60)
    import httpx

    for _ in range(300):
        try:
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=0.5)
            break
        except httpx.HTTPError:
            time.sleep(0.05)
    return p, port


def proctor_payloads() -> list[dict[str, Any]]:
    """The tool_results messages the proctor sends for SCRIPT_CALLS on the first smoke label."""
    from evaluator_agent.core.labels import load_labelset
    from evaluator_agent.core.protocol import ToolResult, ToolResultsMessage
    from evaluator_agent.engine.worlds import WorldCache
    from evaluator_agent.telemetry.tools import Toolbox

    label = load_labelset("smoke").labels[0]
    index, header = asyncio.run(WorldCache().get(label.world.snapshot))
    tb = Toolbox(index, now=float(header["end"]))
    out = []
    for i, (name, args) in enumerate(SCRIPT_CALLS):
        o = tb.call(name, args)
        msg = ToolResultsMessage(tool_results=[ToolResult(id=f"c{i}", ok=o.ok, content=o.content, error=o.error)], turn=i, remaining_turns=5)
        out.append(msg.model_dump(mode="json", exclude_none=True))
    return out


async def echo_round_trips(base: str, n: int, concurrency: int, payloads: list[dict[str, Any]] | None = None) -> float:
    import httpx
    from a2a.client import ClientConfig, ClientFactory
    from a2a.helpers import new_data_part, new_message
    from a2a.types import Role, SendMessageRequest

    async with httpx.AsyncClient() as http:
        path = "sink" if payloads else "echo"
        client = await ClientFactory(ClientConfig(streaming=False, httpx_client=http)).create_from_url(f"{base}/{path}")
        sem = asyncio.Semaphore(concurrency)

        async def one(i: int) -> None:
            async with sem:
                if payloads:
                    import json

                    from a2a.helpers import new_text_part

                    from evaluator_agent.engine.target import data_part

                    p = payloads[i % len(payloads)]
                    parts = [data_part(p), new_text_part(json.dumps(p))]
                else:
                    parts = [new_data_part({"n": i})]
                msg = new_message(parts, role=Role.ROLE_USER, context_id=f"ctx-{i % concurrency}")
                async for _ in client.send_message(SendMessageRequest(message=msg)):
                    pass

        for i in range(10):  # warm up
            await one(i)
        t0 = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(n)))
        return n / (time.perf_counter() - t0)


async def proctor_run(card: str, investigations: int, concurrency: int, db: str) -> dict[str, Any]:
    from evaluator_agent.core.labels import load_labelset
    from evaluator_agent.engine.orchestrator import execute, prepare
    from evaluator_agent.engine.request import parse_request
    from evaluator_agent.engine.transport import make_http_client
    from evaluator_agent.results.store import Store

    labels = load_labelset("smoke").labels
    attempts = max(1, investigations // len(labels))
    req = parse_request({"target": card, "labelset": "smoke", "attempts": attempts, "concurrency": concurrency,
                         "budget": {"max_turns": 40, "timeout_s": 600, "turn_timeout_s": 120}})
    store = Store(db)
    http = make_http_client()
    try:
        prep = await prepare(req, http)
        # Warm the world cache so the figure is the steady state, not snapshot loading.
        from evaluator_agent.engine.worlds import WorldCache

        worlds = WorldCache()
        for lb in prep.labels:
            await worlds.get(lb.world.snapshot)
        t0, c0 = time.perf_counter(), time.process_time()
        result = await execute(prep, store, worlds=worlds)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    finally:
        await http.aclose()
        store.close()
    n = result["summary"]["n"]
    turns = sum(i["turns"] for i in result["investigations"])
    calls = sum(i["tool_calls"] for i in result["investigations"])
    return {"n": n, "turns": turns, "tool_calls": calls, "wall_s": wall, "inv_per_s": n / wall, "turns_per_s": turns / wall,
            "cpu_ms_per_turn": cpu / max(turns, 1) * 1000,
            "pass_rate": result["summary"]["pass_rate"], "errors": result["summary"]["errors"]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--investigations", type=int, default=120)
    ap.add_argument("--turns", type=int, default=10)
    ap.add_argument("--echo", type=int, default=600)
    ap.add_argument("--skip-adk", action="store_true")
    a = ap.parse_args()

    proc, port = _start(_serve_targets, a.turns)
    base = f"http://127.0.0.1:{port}"
    rows: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        try:
            echo_seq = asyncio.run(echo_round_trips(base, a.echo, 1))
            echo_c8 = asyncio.run(echo_round_trips(base, a.echo, 8))
            echo_payload = asyncio.run(echo_round_trips(base, a.echo // 2, 1, proctor_payloads()))
            seq = asyncio.run(proctor_run(f"{base}/scripted/.well-known/agent-card.json", a.investigations, 1, f"{tmp}/seq.db"))
            c8 = asyncio.run(proctor_run(f"{base}/scripted/.well-known/agent-card.json", a.investigations, 8, f"{tmp}/c8.db"))
            raw1 = asyncio.run(proctor_run(f"{base}/raw/.well-known/agent-card.json", a.investigations, 1, f"{tmp}/raw1.db"))
            raw8 = asyncio.run(proctor_run(f"{base}/raw/.well-known/agent-card.json", a.investigations, 8, f"{tmp}/raw8.db"))
        finally:
            proc.terminate()

        def line(r: dict[str, Any]) -> str:
            return (f"{r['inv_per_s']:.2f} inv/s, {r['turns_per_s']:.0f} turns/s, proctor CPU {r['cpu_ms_per_turn']:.1f} ms/turn "
                    f"({r['n']} inv, {r['turns']} turns, {r['errors']} errors)")

        rows += [
            ("proctor vs scripted target without the SDK, concurrency 1", line(raw1)),
            ("proctor vs scripted target without the SDK, concurrency 8", line(raw8)),
            ("ratio proctor turns/s (no-SDK target) : echo round trips/s, sequential (goal >= 0.67)",
             f"{raw1['turns_per_s'] / echo_seq:.2f}"),
        ]
        rows += [
            ("bare a2a-sdk echo, sequential", f"{echo_seq:.0f} round trips/s"),
            ("bare a2a-sdk echo, concurrency 8", f"{echo_c8:.0f} round trips/s"),
            ("bare a2a-sdk echo of the proctor's own payloads, sequential", f"{echo_payload:.0f} round trips/s"),
            ("proctor vs scripted a2a-sdk target, concurrency 1", line(seq)),
            ("proctor vs scripted a2a-sdk target, concurrency 8", line(c8)),
            ("ratio proctor turns/s : echo round trips/s (sequential)", f"{seq['turns_per_s'] / echo_seq:.2f}"),
            ("ratio proctor turns/s : echo round trips/s (concurrency 8)", f"{c8['turns_per_s'] / echo_c8:.2f}"),
            ("ratio proctor turns/s : same-payload echo (sequential)", f"{seq['turns_per_s'] / echo_payload:.2f}"),
        ]
        if not a.skip_adk:
            mproc, mport = _start(_serve_mock_agents)
            try:
                adk = asyncio.run(proctor_run(f"http://127.0.0.1:{mport}/methodical/.well-known/agent-card.json",
                                              a.investigations // 2, 4, f"{tmp}/adk.db"))
            finally:
                mproc.terminate()
            rows.append(("proctor vs ADK methodical, concurrency 4",
                         f"{adk['inv_per_s']:.2f} inv/s, {adk['turns_per_s']:.0f} turns/s ({adk['n']} inv, {adk['turns']} turns, "
                         f"pass rate {adk['pass_rate']:.0%}, {adk['errors']} errors)"))
    width = max(len(r[0]) for r in rows)
    print(f"\nproctor benchmark ({os.cpu_count()} cores, {a.turns} turns per scripted investigation)")
    for k, v in rows:
        print(f"  {k.ljust(width)}  {v}")


if __name__ == "__main__":
    main()
