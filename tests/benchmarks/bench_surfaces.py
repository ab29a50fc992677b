"""What the out-of-band surfaces add per tool call: MCP (official ``mcp`` client, Streamable HTTP)
and the Datadog REST facade (plain HTTP, as ``datadog-api-client`` sends it), against the same
call made in-band (``Toolbox.call`` on the same world), on the smoke world.

    .venv/bin/python tests/benchmarks/bench_surfaces.py [--rounds 20]

The surfaces run in a separate process (``proctor serve``'s routes: ``service/surfaces_app.py``),
the clients in this one, sequentially. "Added" is a call's round trip minus the in-band call's
own time for the same question (its median over the rounds); the goal is an added p95 under
5 ms for MCP.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DD_TRACE_ENABLED", "false")

# (in-band tool, in-band args, MCP tool, MCP args, REST method, REST path, REST params/body)
QUESTIONS: list[tuple[str, dict[str, Any], str, dict[str, Any], str, str, dict[str, Any]]] = [
    ("search_logs", {"query": "status:error", "from": "now-1h", "limit": 50},
     "search_datadog_logs", {"query": "status:error", "from": "now-1h", "limit": 50},
     "POST", "/api/v2/logs/events/search", {"filter": {"query": "status:error", "from": "now-1h"}, "page": {"limit": 50}}),
    ("query_metrics", {"query": "avg:trace.http.request.duration{*} by {service}", "from": "now-1h"},
     "get_datadog_metric", {"queries": ["avg:trace.http.request.duration{*} by {service}"], "from": "now-1h"},
     "GET", "/api/v1/query", {"query": "avg:trace.http.request.duration{*} by {service}", "from": "now-1h", "to": "now"}),
    ("search_spans", {"query": "status:error", "from": "now-30m", "limit": 20},
     "search_datadog_spans", {"query": "status:error", "from": "now-30m", "limit": 20},
     "POST", "/api/v2/spans/events/search",
     {"data": {"type": "search_request", "attributes": {"filter": {"query": "status:error", "from": "now-30m"}, "page": {"limit": 20}}}}),
    ("get_monitors", {"query": "status:alert"}, "search_datadog_monitors", {"query": "status:alert"},
     "GET", "/api/v1/monitor", {}),
    ("get_events", {"query": "source:deploy", "from": "now-3h"}, "search_datadog_events", {"query": "source:deploy", "from": "now-3h"},
     "GET", "/api/v2/events", {"filter[query]": "source:deploy", "filter[from]": "now-3h"}),
    ("list_services", {}, "search_datadog_services", {}, "GET", "/api/v2/services/definitions", {}),
]


def _serve(port_q: Any, token_q: Any) -> None:
    """The surfaces on a free loopback port, one session on the smoke world (child process)."""
    import uvicorn
    from starlette.applications import Starlette

    from evaluator_agent.cli.demo import loopback_socket
    from evaluator_agent.core.labels import load_labelset, snapshots_dir
    from evaluator_agent.engine.surfaces import SurfaceRegistry
    from evaluator_agent.service.surfaces_app import Surfaces
    from evaluator_agent.telemetry.index import WorldIndex
    from evaluator_agent.telemetry.tools import Toolbox
    from evaluator_agent.telemetry.world import load_snapshot_dict

    lb = load_labelset("smoke").labels[0]
    data = load_snapshot_dict(lb.world.snapshot, snapshots_dir())
    tb = Toolbox(WorldIndex.from_dict(data), now=float(data["end"]))
    registry = SurfaceRegistry()
    session = registry.open(tb, offered={"a2a", "mcp", "rest"}, max_calls=10**9, record=lambda *a: None, now=float(data["end"]))
    surfaces = Surfaces(registry)

    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def lifespan(_: Any):
        async with surfaces.lifespan():
            yield

    sock = loopback_socket()
    port_q.put(sock.getsockname()[1])
    token_q.put(session.token)
    server = uvicorn.Server(uvicorn.Config(Starlette(routes=surfaces.routes, lifespan=lifespan), log_level="warning"))
    server.run(sockets=[sock])


def _pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q / 100 * len(s) + 0.5) - 1))]


def in_band(rounds: int) -> dict[str, float]:
    from evaluator_agent.core.labels import load_labelset, snapshots_dir
    from evaluator_agent.telemetry.index import WorldIndex
    from evaluator_agent.telemetry.tools import Toolbox
    from evaluator_agent.telemetry.world import load_snapshot_dict

    lb = load_labelset("smoke").labels[0]
    data = load_snapshot_dict(lb.world.snapshot, snapshots_dir())
    tb = Toolbox(WorldIndex.from_dict(data), now=float(data["end"]))
    out = {}
    for tool, args, *_ in QUESTIONS:
        times = []
        for _ in range(rounds):
            t0 = time.perf_counter()
            r = tb.call(tool, args)
            times.append((time.perf_counter() - t0) * 1000)
            assert r.ok, r.error
        out[tool] = statistics.median(times)
    return out


async def over_mcp(url: str, token: str, rounds: int) -> dict[str, list[float]]:
    import httpx2
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    headers = {"DD-API-KEY": token, "DD-APPLICATION-KEY": token}
    out: dict[str, list[float]] = {}
    async with (httpx2.AsyncClient(headers=headers) as http, streamable_http_client(url, http_client=http) as (r, w),
                ClientSession(r, w) as session):
        await session.initialize()
        for tool, _, mtool, margs, *_ in QUESTIONS:
            times = []
            for _ in range(rounds):
                t0 = time.perf_counter()
                res = await session.call_tool(mtool, margs)
                times.append((time.perf_counter() - t0) * 1000)
                assert not res.is_error, res.content[0].text
            out[tool] = times
    return out


async def over_raw_mcp(url: str, token: str, rounds: int) -> dict[str, list[float]]:
    """MCP as bytes on the wire (httpx, JSON-RPC): the server's own cost, no client SDK."""
    import httpx

    headers = {"DD-API-KEY": token, "DD-APPLICATION-KEY": token, "Content-Type": "application/json",
               "Accept": "application/json, text/event-stream"}
    out: dict[str, list[float]] = {}
    async with httpx.AsyncClient(headers=headers, timeout=30) as http:
        init = await http.post(url, json={"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "bench", "version": "0"}}})
        sid = init.headers.get("mcp-session-id")
        if sid:
            http.headers["mcp-session-id"] = sid
            http.headers["mcp-protocol-version"] = init.json()["result"]["protocolVersion"]
        await http.post(url, json={"jsonrpc": "2.0", "method": "notifications/initialized"})
        for tool, _, mtool, margs, *_ in QUESTIONS:
            times = []
            for i in range(rounds):
                body = {"jsonrpc": "2.0", "id": i + 1, "method": "tools/call", "params": {"name": mtool, "arguments": margs}}
                t0 = time.perf_counter()
                resp = await http.post(url, content=json.dumps(body))
                data = resp.json()
                times.append((time.perf_counter() - t0) * 1000)
                assert not data["result"].get("isError"), data
            out[tool] = times
    return out


async def over_rest(base: str, token: str, rounds: int) -> dict[str, list[float]]:
    import httpx

    headers = {"DD-API-KEY": token, "DD-APPLICATION-KEY": token, "Accept": "application/json"}
    out: dict[str, list[float]] = {}
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30) as http:
        for tool, _, _, _, method, path, payload in QUESTIONS:
            times = []
            for _ in range(rounds):
                t0 = time.perf_counter()
                if method == "GET":
                    resp = await http.get(path, params=payload)
                else:
                    resp = await http.post(path, content=json.dumps(payload), headers={"Content-Type": "application/json"})
                times.append((time.perf_counter() - t0) * 1000)
                assert resp.status_code == 200, (path, resp.status_code, resp.text[:300])
            out[tool] = times
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=20)
    a = ap.parse_args()
    ctx = mp.get_context("spawn")
    port_q, token_q = ctx.Queue(), ctx.Queue()
    proc = ctx.Process(target=_serve, args=(port_q, token_q), daemon=True)
    proc.start()
    try:
        port, token = port_q.get(timeout=120), token_q.get(timeout=120)
        base = f"http://127.0.0.1:{port}"
        local = in_band(a.rounds)
        for _ in range(50):  # the server is up when MCP answers
            try:
                mcp = asyncio.run(over_mcp(base + "/mcp", token, a.rounds))
                break
            except Exception:  # noqa: BLE001 - not listening yet
                time.sleep(0.2)
        else:
            raise RuntimeError("the surfaces server did not answer")
        raw = asyncio.run(over_raw_mcp(base + "/mcp", token, a.rounds))
        rest = asyncio.run(over_rest(base + "/datadog", token, a.rounds))
    finally:
        proc.terminate()
        proc.join(5)
    print(f"surfaces benchmark (smoke world, {a.rounds} rounds per question, sequential, server in another process)")
    print(f"  {'tool':16s} {'in-band':>8s} {'MCP client':>16s} {'MCP on the wire':>16s} {'REST':>16s}   (ms added, p50 / p95)")
    every: dict[str, list[float]] = {"MCP (official client)": [], "MCP (JSON-RPC on the wire)": [], "REST": []}
    for tool, *_ in QUESTIONS:
        base_ms = local[tool]
        cells = []
        for name, figures in (("MCP (official client)", mcp), ("MCP (JSON-RPC on the wire)", raw), ("REST", rest)):
            added = [t - base_ms for t in figures[tool]]
            every[name] += added
            cells.append(f"{_pct(added, 50):7.2f} / {_pct(added, 95):6.2f}")
        print(f"  {tool:16s} {base_ms:8.2f} " + " ".join(f"{c:>16s}" for c in cells))
    for name, added in every.items():
        print(f"  all calls, {name}: added p50 {_pct(added, 50):.2f} ms, p95 {_pct(added, 95):.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
