"""``methodical_mcp``: the methodical policy calling the tools over the proctor's MCP surface
through ADK's ``McpToolset``. Real HTTP on 127.0.0.1 throughout: the MCP surface on uvicorn,
the agent run by an ADK ``Runner`` (in process) or served over A2A and evaluated by a proctor."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import httpx2
import pytest
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

from evaluator_agent.core.labels import load_labelset, snapshots_dir
from evaluator_agent.core.protocol import Budget
from evaluator_agent.engine.briefing import build_briefing
from evaluator_agent.engine.surfaces import SurfaceRegistry
from evaluator_agent.service.mcp_surface import TOOL_MAP
from evaluator_agent.telemetry.index import WorldIndex
from evaluator_agent.telemetry.tools import Toolbox
from evaluator_agent.telemetry.world import load_snapshot_dict
from mock_agents.mcp_adapter import MCP_TOOL_OF, from_mcp, in_band_result, to_mcp
from mock_agents.transcript import DATA_END, DATA_START
from tests.conftest import serve_app
from tests.test_mcp_surface import Recorder, dd_headers, mcp_server

pytestmark = pytest.mark.anyio


# ----------------------------------------------------------------------------- fixtures and helpers


@pytest.fixture(scope="module")
def world() -> SimpleNamespace:
    """The first smoke label's world: its toolbox, a trace id found in it, the label, and the
    header a briefing is built from."""
    label = load_labelset("smoke").labels[0]
    data = load_snapshot_dict(label.world.snapshot, snapshots_dir())
    tb = Toolbox(WorldIndex.from_dict(data), now=float(data["end"]))
    span = tb.call("search_spans", {"query": "service:web-bff", "limit": 1}).content["spans"][0]
    header = {"end": data["end"], "monitors": {m["id"]: m for m in data.get("monitors", [])}}
    return SimpleNamespace(tb=tb, now=float(data["end"]), trace_id=span["trace_id"], label=label, header=header)


def plain(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


# ----------------------------------------------------------------------------- the adapter


def test_the_adapter_names_the_surfaces_tools() -> None:
    """Every in-band tool the surface serves has its Datadog tool; only aggregate_logs has none."""
    assert {TOOL_MAP[dd] for dd in MCP_TOOL_OF.values()} == set(MCP_TOOL_OF)
    assert set(MCP_TOOL_OF) == set(TOOL_MAP.values())
    assert to_mcp({"id": "a", "name": "aggregate_logs", "arguments": {}}) is None


def test_arguments_map_both_ways() -> None:
    call = {"id": "q.1", "name": "query_metrics", "arguments": {"query": "avg:m{*}", "from": 1771952460, "to": "now"}}
    m = to_mcp(call)
    assert (m.id, m.name, m.arguments) == ("q.1", "get_datadog_metric",
                                          {"queries": ["avg:m{*}"], "from": 1771952460000, "to": "now"})
    assert from_mcp(m.name, m.arguments) == ("query_metrics", call["arguments"])


def test_errors_read_as_failed_results() -> None:
    body = {"errors": ["query ends where a term was expected"], "status": 400}
    dumped = {"content": [{"type": "text", "text": json.dumps(body)}], "structuredContent": body, "isError": True}
    assert in_band_result("c", "search_datadog_logs", {}, dumped) == {
        "id": "c", "ok": False, "error": "query ends where a term was expected"}
    assert in_band_result("c", "search_datadog_logs", {}, {"error": "MCP tool execution failed: boom"})["ok"] is False
    assert in_band_result("c", "search_datadog_logs", {}, {"content": []})["ok"] is False


def _round_trip_cases() -> list[Any]:
    window = {"from": "now-3h", "to": "now"}
    cases = [
        ("list_services", {"limit": 500}),
        ("list_services", {"query": "kind:database", "limit": 5}),
        ("get_service_dependencies", {"service": "web-bff", "direction": "both", "depth": 1}),
        ("get_service_dependencies", {"service": "web-bff", "direction": "downstream", "depth": 2}),
        ("list_metrics", {"query": "service:web-bff", "limit": 200}),
        ("query_metrics", {"query": "sum:trace.http.request.hits{service:web-bff}", **window}),
        ("query_metrics", {"query": "avg:trace.http.request.duration{*} by {service}", "from": 1771952460, "to": "now"}),
        ("query_metrics", {"query": "avg:trace.http.request.duration{service:web-bff}.rollup(avg, 10)", **window}),
        ("search_logs", {"query": "service:web-bff status:error", "limit": 200, **window}),
        ("search_logs", {"query": "*", "limit": 3, "sort": "timestamp", **window}),
        ("search_spans", {"query": "service:web-bff", "limit": 50, **window}),
        ("get_trace", {"trace_id": "TRACE"}),
        ("get_events", {"limit": 500, **window}),  # cut to size: truncated and a warning
        ("get_monitors", {"query": "status:alert"}),
        ("get_monitors", {"limit": 2}),
    ]
    return [pytest.param(name, args, id=f"{name}-{i}") for i, (name, args) in enumerate(cases)]


@pytest.mark.parametrize("name, args", _round_trip_cases())
async def test_round_trip_equals_the_in_band_answer(world: SimpleNamespace, name: str, args: dict[str, Any]) -> None:
    """in-band call -> MCP call -> Datadog-shaped result over HTTP -> in-band result: the same
    content as the in-band tool's (span start times: to the millisecond, as Datadog gives them)."""
    if args.get("trace_id") == "TRACE":
        args = {"trace_id": world.trace_id}
    registry, rec = SurfaceRegistry(), Recorder()
    session = registry.open(world.tb, offered={"a2a", "mcp"}, max_calls=100, record=rec, now=world.now)
    call = to_mcp({"id": "c1", "name": name, "arguments": args})
    assert from_mcp(call.name, call.arguments) == (name, args)
    async with (
        mcp_server(registry) as url,
        httpx2.AsyncClient(headers=dd_headers(session.token)) as http,
        streamable_http_client(url, http_client=http) as (read, write),
        ClientSession(read, write) as client,
    ):
        await client.initialize()
        answer = await client.call_tool(call.name, call.arguments)
    dumped = answer.model_dump(mode="json", by_alias=True, exclude_none=True)  # what ADK's McpTool returns
    got = in_band_result("c1", call.name, call.arguments, dumped)
    want = world.tb.call(name, args)
    assert want.ok and got["ok"], got.get("error")
    assert [r[:3] for r in rec.calls] == [("mcp", name, args)]  # one recorded in-band call, same arguments
    content, expected = got["content"], plain(want.content)
    if name in ("search_spans", "get_trace"):
        assert len(content["spans"]) == len(expected["spans"])
        for g, w in zip(content["spans"], expected["spans"], strict=True):
            assert abs(g.pop("ts") - w.pop("ts")) < 1e-3
    assert content == expected


# ----------------------------------------------------------------------------- the agent in process (ADK Runner)


def briefing_content(world: SimpleNamespace, surfaces: dict[str, Any] | None, in_band: bool = True) -> Any:
    """The briefing as ADK's A2A converter hands it to the model (a DataPart)."""
    from google.genai import types

    b = build_briefing(world.label, world.header, Budget().effective(world.label.task.budget), "inv_test")
    data = b.model_dump(mode="json", exclude_none=True)
    if surfaces is not None:
        data["surfaces"] = surfaces
    data["in_band_tools"] = in_band
    blob = DATA_START + json.dumps(data).encode() + DATA_END
    return types.Content(role="user", parts=[types.Part(inline_data=types.Blob(mime_type="text/plain", data=blob))])


def results_content(results: list[dict[str, Any]], turn: int, left: int) -> Any:
    from google.genai import types

    msg = {"type": "tool_results", "tool_results": results, "turn": turn, "remaining_turns": left}
    blob = DATA_START + json.dumps(msg, default=str).encode() + DATA_END
    return types.Content(role="user", parts=[types.Part(inline_data=types.Blob(mime_type="text/plain", data=blob))])


class Conversation:
    """One agent in an ADK Runner, driven as the proctor drives a target: each reply's in-band
    calls are answered from the world (recorded with surface "a2a"), until the diagnosis."""

    def __init__(self, name: str) -> None:
        from google.adk.runners import Runner
        from google.adk.sessions import InMemorySessionService

        from mock_agents.agents import build_agent

        self.agent = build_agent(name)
        self.runner = Runner(app_name=name, agent=self.agent, session_service=InMemorySessionService())
        self.replies: list[dict[str, Any]] = []

    async def turn(self, content: Any) -> dict[str, Any]:
        session = await self.runner.session_service.get_session(app_name=self.runner.app_name, user_id="proctor",
                                                                 session_id="ctx")
        if session is None:
            await self.runner.session_service.create_session(app_name=self.runner.app_name, user_id="proctor",
                                                             session_id="ctx")
        text = None
        async for event in self.runner.run_async(user_id="proctor", session_id="ctx", new_message=content):
            for part in (event.content.parts if event.content else None) or []:
                if part.text:
                    text = part.text
        reply = json.loads(text)
        self.replies.append(reply)
        return reply

    async def investigate(self, world: SimpleNamespace, first: Any, rec: Recorder, max_turns: int = 30) -> dict[str, Any]:
        reply = await self.turn(first)
        for turn in range(1, max_turns):
            if "diagnosis" in reply:
                return reply["diagnosis"]
            results = []
            for c in reply["tool_calls"]:
                out = world.tb.call(c["name"], c["arguments"])
                rec("a2a", c["name"], c["arguments"], out, 0.0)
                results.append({"id": c["id"], "ok": out.ok, **({"content": out.content} if out.ok else {"error": out.error})})
            reply = await self.turn(results_content(results, turn, max_turns - turn))
        raise AssertionError("no diagnosis")


async def test_the_agent_investigates_over_mcp_like_methodical_in_band(world: SimpleNamespace) -> None:
    """Same briefing, same world: methodical_mcp makes the calls methodical makes in-band, all
    but aggregate_logs over MCP, and reaches the same diagnosis; its MCP connection is closed
    at the diagnosis."""
    in_band, rec_in_band = Conversation("methodical"), Recorder()
    expected = await in_band.investigate(world, briefing_content(world, None), rec_in_band)

    registry, rec = SurfaceRegistry(), Recorder()
    session = registry.open(world.tb, offered={"a2a", "mcp"}, max_calls=240, record=rec, now=world.now)
    agent = Conversation("methodical_mcp")
    async with mcp_server(registry) as url:
        surfaces = {"mcp": {"url": url, "transport": "streamable-http", "headers": dd_headers(session.token)}}
        got = await agent.investigate(world, briefing_content(world, surfaces), rec)
        toolset = agent.agent.tools[0]
        assert toolset.open_count() == 0  # released at the diagnosis
        await agent.runner.close()

    assert got == expected
    by_surface = {(surface, tool) for surface, tool, *_ in rec.calls}
    assert {s for s, _ in by_surface} == {"a2a", "mcp"}
    assert {t for s, t in by_surface if s == "a2a"} == {"aggregate_logs"}
    calls = sorted(json.dumps([t, a], sort_keys=True) for _, t, a, *_ in rec.calls)
    assert calls == sorted(json.dumps([t, a], sort_keys=True) for _, t, a, *_ in rec_in_band.calls)
    # one A2A reply asks for aggregate_logs in-band, the next is the diagnosis
    assert len(agent.replies) == 2 and [c["name"] for c in agent.replies[0]["tool_calls"]] == ["aggregate_logs"]


async def test_without_an_mcp_surface_the_agent_calls_in_band(world: SimpleNamespace) -> None:
    """No surfaces.mcp in the briefing: the first reply is methodical's in-band one."""
    want = await Conversation("methodical").turn(briefing_content(world, None))
    got = await Conversation("methodical_mcp").turn(briefing_content(world, {"rest": {"base_url": "http://x"}}))
    assert got == want and "tool_calls" in got


async def test_an_mcp_server_that_refuses_means_in_band_calls(world: SimpleNamespace) -> None:
    """A credential the server does not know (403 on tools/list): in-band calls, connection dropped."""
    registry = SurfaceRegistry()
    want = await Conversation("methodical").turn(briefing_content(world, None))
    agent = Conversation("methodical_mcp")
    async with mcp_server(registry) as url:
        surfaces = {"mcp": {"url": url, "transport": "streamable-http", "headers": dd_headers("ipx_unknown")}}
        got = await agent.turn(briefing_content(world, surfaces))
    assert got == want
    assert agent.agent.tools[0].open_count() == 0


async def test_with_no_in_band_calls_offered_the_agent_does_without(world: SimpleNamespace) -> None:
    """in_band_tools false: every call over MCP (aggregate_logs, which MCP lacks, is not asked
    for) and the diagnosis as the first A2A reply."""
    registry, rec = SurfaceRegistry(), Recorder()
    session = registry.open(world.tb, offered={"mcp"}, max_calls=240, record=rec, now=world.now)
    agent = Conversation("methodical_mcp")
    async with mcp_server(registry) as url:
        surfaces = {"mcp": {"url": url, "transport": "streamable-http", "headers": dd_headers(session.token)}}
        reply = await agent.turn(briefing_content(world, surfaces, in_band=False))
    assert "diagnosis" in reply and reply["diagnosis"]["root_causes"]
    assert rec.calls and {r[0] for r in rec.calls} == {"mcp"}
    assert "aggregate_logs" not in {r[1] for r in rec.calls}


def test_a_mixed_batch_goes_in_band_first() -> None:
    from mock_agents.mcp_agent import next_parts

    calls = [{"id": "a", "name": "get_monitors", "arguments": {}},
             {"id": "b", "name": "aggregate_logs", "arguments": {"query": "*"}}]
    mcp_tools = set(MCP_TOOL_OF.values())
    [part] = next_parts({"tool_calls": calls}, mcp_tools)
    assert json.loads(part.text) == {"tool_calls": [calls[1]]}
    parts = next_parts({"tool_calls": calls[:1]}, mcp_tools)
    assert [(p.function_call.id, p.function_call.name) for p in parts] == [("a", "search_datadog_monitors")]
    [part] = next_parts({"tool_calls": calls[:1]}, set())  # no MCP tools listed: in-band
    assert json.loads(part.text) == {"tool_calls": calls[:1]}


# ----------------------------------------------------------------------------- end to end: proctor and agents over A2A


async def _proctor_serves_mcp(proctor: str) -> bool:
    """Whether the proctor mounts the MCP surface at /mcp (the lead's server wiring)."""
    async with httpx.AsyncClient(timeout=10) as http:
        r = await http.post(f"{proctor}/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
    return r.status_code in (401, 403) and "errors" in r.json()


async def test_methodical_mcp_passes_like_methodical_over_a2a(tmp_path: Path) -> None:
    from evaluator_agent.results.store import Store
    from evaluator_agent.service.client import call_proctor, normalise_numbers
    from evaluator_agent.service.server import create_app
    from mock_agents.server import create_app as create_mock_app

    labels = [lb.id for lb in load_labelset("smoke").labels[:2]]
    db = tmp_path / "p.db"
    results: dict[str, Any] = {}
    async with (
        serve_app(lambda base: create_mock_app(agents=["methodical", "methodical_mcp"], base_url=base)) as agents,
        serve_app(lambda base: create_app(str(db), public_url=base)) as proctor,
    ):
        if not await _proctor_serves_mcp(proctor):
            pytest.skip("the proctor server does not mount the MCP surface at /mcp yet (create_app wiring)")
        for name in ("methodical", "methodical_mcp"):
            request = {"target": f"{agents}/{name}/.well-known/agent-card.json", "labelset": "smoke", "labels": labels}
            results[name] = normalise_numbers(await call_proctor(proctor, request))

    def outcome(result: dict[str, Any]) -> list[tuple[Any, ...]]:
        return [(i["label_id"], i["passed"], i["score"], i["tool_calls"], i["end_reason"])
                for i in result["investigations"]]

    mcp, in_band = results["methodical_mcp"], results["methodical"]
    assert mcp["summary"]["errors"] == 0 and all(i["passed"] for i in in_band["investigations"])
    assert outcome(mcp) == outcome(in_band)
    store = Store(str(db))
    for inv in mcp["investigations"]:
        rows = store.tool_calls(f"{mcp['run_id']}/{inv['label_id']}/{inv['attempt']}")
        assert len(rows) == inv["tool_calls"] and all(r["ok"] for r in rows)
        assert {r["name"] for r in rows if r["surface"] == "a2a"} == {"aggregate_logs"}
        assert sum(r["surface"] == "mcp" for r in rows) == len(rows) - 1
        assert inv["turns"] == 2  # aggregate_logs in-band, then everything else over MCP in one turn
