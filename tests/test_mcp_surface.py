"""The MCP surface over real HTTP on 127.0.0.1 with the official ``mcp`` client: Datadog's tool
names, one recorded in-band call per tool call, the same records as in-band, and refusals
(credential, closed session, budget, malformed arguments, oversized bodies)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import SimpleNamespace
from typing import Any

import httpx
import httpx2
import pytest
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from starlette.applications import Starlette
from starlette.datastructures import Headers

from evaluator_agent.cli.demo import loopback_socket, serving
from evaluator_agent.core.labels import load_labelset, snapshots_dir
from evaluator_agent.engine.surfaces import SurfaceRegistry, SurfaceSession
from evaluator_agent.service.mcp_surface import MAX_REQUEST_BODY_BYTES, TOOL_MAP, MCPSurface
from evaluator_agent.service.mcp_tools import TOOLS_BY_NAME
from evaluator_agent.telemetry.catalog import TOOL_NAMES
from evaluator_agent.telemetry.index import WorldIndex
from evaluator_agent.telemetry.tools import Toolbox
from evaluator_agent.telemetry.world import load_snapshot_dict

pytestmark = pytest.mark.anyio


# ----------------------------------------------------------------------------- fixtures and helpers


@pytest.fixture(scope="module")
def world() -> SimpleNamespace:
    """The smoke world's toolbox, and ids found in it (a trace, a correlated service)."""
    lb = load_labelset("smoke").labels[0]
    data = load_snapshot_dict(lb.world.snapshot, snapshots_dir())
    tb = Toolbox(WorldIndex.from_dict(data), now=float(data["end"]))
    span = tb.call("search_spans", {"query": "service:web-bff", "limit": 1}).content["spans"][0]
    return SimpleNamespace(tb=tb, now=float(data["end"]), trace_id=span["trace_id"])


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def __call__(self, *record: Any) -> None:
        self.calls.append(record)


def open_session(registry: SurfaceRegistry, world: SimpleNamespace, rec: Recorder, *, max_calls: int = 100,
                 offered: frozenset[str] = frozenset({"a2a", "mcp", "rest"})) -> SurfaceSession:
    return registry.open(world.tb, offered=offered, max_calls=max_calls, record=rec, now=world.now)


@asynccontextmanager
async def mcp_server(registry: SurfaceRegistry) -> AsyncIterator[str]:
    """A host Starlette app with the surface at /mcp, on uvicorn; yields the endpoint URL."""
    surface = MCPSurface(registry)

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        async with surface.lifespan():
            yield

    sock = loopback_socket()
    try:
        async with serving(Starlette(routes=surface.routes("/mcp"), lifespan=lifespan), sock):
            yield f"http://127.0.0.1:{sock.getsockname()[1]}/mcp"
    finally:
        sock.close()


def dd_headers(token: str) -> dict[str, str]:
    return {"DD-API-KEY": token, "DD-APPLICATION-KEY": token}


@asynccontextmanager
async def mcp_client(url: str, token: str) -> AsyncIterator[ClientSession]:
    async with (
        httpx2.AsyncClient(headers=dd_headers(token)) as http,
        streamable_http_client(url, http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session


async def call(client: ClientSession, tool: str, args: dict[str, Any]) -> dict[str, Any]:
    """A successful call's result: one JSON text content, as Datadog's server answers (no structured copy)."""
    res = await client.call_tool(tool, args)
    assert not res.is_error, res.content[0].text
    assert len(res.content) == 1 and res.structured_content is None
    return json.loads(res.content[0].text)


async def call_error(client: ClientSession, tool: str, args: dict[str, Any]) -> dict[str, Any]:
    res = await client.call_tool(tool, args)
    assert res.is_error
    body = json.loads(res.content[0].text)
    assert isinstance(body["errors"][0], str)
    return body


def raw_call(tool: str, args: dict[str, Any]) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": tool, "arguments": args}}


async def raw_post(url: str, headers: dict[str, str], body: Any) -> httpx.Response:
    """One JSON-RPC POST without the MCP client (to see HTTP statuses)."""
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    async with httpx.AsyncClient(timeout=10) as http:
        return await http.post(url, content=content, headers={
            **headers, "content-type": "application/json", "accept": "application/json, text/event-stream"})


# ----------------------------------------------------------------------------- the same question both ways


def _after(answer: dict[str, Any], meta: str = "meta") -> str | None:
    return answer[meta].get("page", {}).get("after")


def _log_in(r: dict[str, Any]) -> tuple[Any, ...]:
    return (r["timestamp"], r["service"], r.get("host") or "", r["status"], r["message"], r.get("attributes") or {},
            r.get("trace_id"))


def _log_out(d: dict[str, Any]) -> tuple[Any, ...]:
    a = d["attributes"]
    attrs = dict(a["attributes"])
    trace_id = attrs.pop("trace_id", None)
    return a["timestamp"], a["service"], a["host"], a["status"], a["message"], attrs, trace_id


def _span_in(s: dict[str, Any]) -> tuple[Any, ...]:
    return (s["trace_id"], s["span_id"], s["parent_id"], s["service"], s["name"], s["resource"], s["timestamp"],
            s["duration"], s["error"], s.get("tags") or {}, s.get("depth"))


def _span_out(d: dict[str, Any]) -> tuple[Any, ...]:
    a, inner = d["attributes"], d["attributes"]["attributes"]
    assert d["id"] == a["span_id"] and d["type"] == "spans"
    assert dict(t.split(":", 1) for t in a["tags"]) == a["custom"]
    return (a["trace_id"], a["span_id"], None if a["parent_id"] == "0" else a["parent_id"], a["service"],
            inner["operation_name"], a["resource_name"], a["start_timestamp"], inner["duration"],
            inner["status"] == "error", a["custom"], inner.get("depth"))


def _metric_out(d: dict[str, Any]) -> tuple[Any, ...]:
    tags: dict[str, list[str]] = {k: [] for k in d["attributes"]["tag_keys"]}
    for t in d["attributes"]["tags"]:
        k, v = t.split(":", 1)
        tags[k].append(v)
    return d["id"], d["attributes"]["metric_type"], tags


def cases(w: SimpleNamespace) -> list[tuple[str, dict[str, Any], dict[str, Any], Any, Any]]:
    """(Datadog tool, its arguments, the in-band arguments of the same question, in-band records,
    MCP records): the records are compared as tuples of every field."""
    metric = "trace.http.request.duration"
    return [
        ("search_datadog_logs", {"query": "service:web-bff", "from": "now-2h", "limit": 50, "sort": "timestamp"},
         {"query": "service:web-bff", "from": "now-2h", "limit": 50, "sort": "timestamp"},
         lambda c: ([_log_in(r) for r in c["logs"]], c["next_cursor"], c["total_matched"]),
         lambda m: ([_log_out(d) for d in m["data"]], _after(m), m["meta"]["total_matched"])),
        ("get_datadog_metric", {"queries": [f"avg:{metric}{{service:catalog}} by {{version}}"], "from": "now-30m"},
         {"query": f"avg:{metric}{{service:catalog}} by {{version}}", "from": "now-30m"},
         lambda c: [(s["metric"], s["scope"], s["tags"], s["pointlist"]) for s in c["series"]],
         lambda m: [(s["metric"], s["scope"], dict(t.split(":", 1) for t in s["tag_set"]),
                     [[t / 1000, v] for t, v in s["pointlist"]]) for s in m["series"]]),
        ("search_datadog_metrics", {"name_filter": "trace", "tag_filter": "service:catalog", "limit": 10},
         {"query": "trace service:catalog", "limit": 10},
         lambda c: ([(x["metric"], x["type"], x["tags"]) for x in c["metrics"]], c["total"]),
         lambda m: ([_metric_out(d) for d in m["data"]], m["meta"]["total"])),
        ("get_datadog_metric_context", {"metric": metric}, {"query": metric[:-1] + "?", "limit": 500},
         lambda c: [(x["metric"], x["type"], x["tags"]) for x in c["metrics"] if x["metric"] == metric],
         lambda m: [_metric_out(m["data"])]),
        ("search_datadog_spans", {"query": "service:web-bff", "from": (w.now - 3600) * 1000, "limit": 30},
         {"query": "service:web-bff", "from": w.now - 3600, "limit": 30},
         lambda c: ([_span_in(s) for s in c["spans"]], c["next_cursor"], c["total_matched"]),
         lambda m: ([_span_out(d) for d in m["data"]], _after(m), m["meta"]["total_matched"])),
        ("get_datadog_trace", {"trace_id": w.trace_id}, {"trace_id": w.trace_id},
         lambda c: ([_span_in(s) for s in c["spans"]], c["services"]),
         lambda m: ([_span_out(d) for d in m["data"]["attributes"]["spans"]], m["data"]["attributes"]["services"])),
        ("search_datadog_monitors", {"query": "*", "limit": 100}, {"query": "*", "limit": 100},
         lambda c: ([(x["id"], x["name"], x["type"], x["query"], x["message"], x["tags"], x["state"],
                      x["transitions"]) for x in c["monitors"]], c["total"]),
         lambda m: ([(x["id"], x["name"], x["type"], x["query"], x["message"], x["tags"], x["status"],
                      x["state_transitions"]) for x in m["monitors"]], m["metadata"]["total_count"])),
        ("search_datadog_events", {"query": "source:kubernetes", "from": "now-3h", "to": "now", "limit": 40},
         {"query": "source:kubernetes", "from": "now-3h", "to": "now", "limit": 40},
         lambda c: ([(e["id"], e["timestamp"], e["title"], e.get("text") or "", e["source"], e.get("tags") or [])
                     for e in c["events"]], c["next_cursor"], c["total_matched"]),
         lambda m: ([(d["id"], d["attributes"]["timestamp"], d["attributes"]["attributes"]["title"],
                      d["attributes"]["message"], d["attributes"]["attributes"]["source_type_name"],
                      d["attributes"]["tags"]) for d in m["data"]], _after(m), m["meta"]["total_matched"])),
        ("search_datadog_services", {"query": "*", "limit": 100}, {"query": "*", "limit": 100},
         lambda c: (c["services"], c["total"]),
         lambda m: ([d["attributes"] for d in m["data"]], m["meta"]["total"])),
        ("search_datadog_service_dependencies", {"service": "web-bff", "direction": "both", "depth": 2},
         {"service": "web-bff", "direction": "both", "depth": 2},
         lambda c: (c["service"], c["downstream"], c["upstream"]),
         lambda m: (m["data"]["id"], m["data"]["attributes"]["calls"], m["data"]["attributes"]["called_by"])),
    ]


def test_tool_map_names_in_band_tools() -> None:
    assert set(TOOL_MAP) == set(TOOLS_BY_NAME)
    assert set(TOOL_MAP.values()) <= TOOL_NAMES
    assert all(name.startswith(("search_datadog_", "get_datadog_")) for name in TOOL_MAP)


async def test_every_tool_listed_and_answers_like_in_band(world: SimpleNamespace) -> None:
    registry, rec = SurfaceRegistry(), Recorder()
    session = open_session(registry, world, rec)
    assert {c[0] for c in cases(world)} == set(TOOL_MAP)  # every tool is asked
    async with mcp_server(registry) as url, mcp_client(url, session.token) as client:
        listed = {t.name: t for t in (await client.list_tools()).tools}
        assert set(listed) == set(TOOL_MAP)
        for name, tool in listed.items():
            assert tool.input_schema == TOOLS_BY_NAME[name].parameters and tool.description
            assert tool.output_schema is None  # text results, as Datadog's server gives
        for tool, dd_args, in_args, in_records, mcp_records in cases(world):
            answer = await call(client, tool, dd_args)
            outcome = world.tb.call(TOOL_MAP[tool], in_args)
            assert outcome.ok, (tool, outcome.error)
            expected = in_records(outcome.content)
            assert mcp_records(answer) == expected, tool
            assert expected and (expected[0] if isinstance(expected, tuple) else expected), f"{tool}: nothing asked"
    # one recorded in-band call per MCP call, surface "mcp", with the in-band arguments
    assert [(c[0], c[1]) for c in rec.calls] == [("mcp", TOOL_MAP[c[0]]) for c in cases(world)]
    assert [c[2] for c in rec.calls] == [c[2] for c in cases(world)]
    assert all(c[3].ok for c in rec.calls) and session.calls == len(rec.calls)


async def test_answers_are_datadog_shaped(world: SimpleNamespace) -> None:
    registry, rec = SurfaceRegistry(), Recorder()
    session = open_session(registry, world, rec)
    async with mcp_server(registry) as url, mcp_client(url, session.token) as client:
        logs = await call(client, "search_datadog_logs", {"query": "status:error", "limit": 3})
        log = logs["data"][0]
        assert log["type"] == "log" and len(log["id"]) == 32
        assert set(log["attributes"]) == {"timestamp", "service", "status", "message", "host", "tags", "attributes"}
        assert logs["meta"]["status"] == "done" and _after(logs)
        page2 = await call(client, "search_datadog_logs", {"query": "status:error", "limit": 3, "cursor": _after(logs)})
        assert {d["id"] for d in page2["data"]}.isdisjoint(d["id"] for d in logs["data"])

        metric = await call(client, "get_datadog_metric", {
            "query": "sum:trace.http.request.hits{service:catalog}", "from": "now-10m", "telemetry": {"intent": "t"},
            "max_tokens": 5000})
        assert metric["status"] == "ok" and metric["res_type"] == "time_series"
        series = metric["series"][0]
        assert series["metric"] == "trace.http.request.hits" and series["pointlist"][0][0] == series["start"]
        assert metric["to_date"] - metric["from_date"] == 600_000 and series["start"] >= metric["from_date"]

        trace = await call(client, "get_datadog_trace", {"trace_id": world.trace_id})
        attrs = trace["data"]["attributes"]
        assert attrs["span_count"] == len(attrs["spans"]) and attrs["root_span_id"] == attrs["spans"][0]["id"]

        ctx = await call(client, "get_datadog_metric_context", {"metric": "trace.http.request.duration"})
        assert "service" in ctx["data"]["attributes"]["tag_keys"]
        deps = await call(client, "search_datadog_service_dependencies", {"service": "web-bff", "direction": "upstream"})
        assert deps["data"]["attributes"]["calls"] == [] and deps["data"]["attributes"]["called_by"]
        monitors = await call(client, "search_datadog_monitors", {"query": "status:alert"})
        assert monitors["monitors"] and all(m["status"] == "Alert" for m in monitors["monitors"])
        first = await call(client, "search_datadog_monitors", {"limit": 1})
        second = await call(client, "search_datadog_monitors", {"limit": 1, "cursor": _after(first, "metadata")})
        assert first["monitors"][0]["id"] != second["monitors"][0]["id"]
    assert len(rec.calls) == session.calls == 9


# ----------------------------------------------------------------------------- refusals


async def test_credentials_refused_before_mcp_handling(world: SimpleNamespace) -> None:
    registry, rec = SurfaceRegistry(), Recorder()
    session = open_session(registry, world, rec)
    no_mcp = open_session(registry, world, rec, offered=frozenset({"a2a", "rest"}))
    listing = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    async with mcp_server(registry) as url:
        missing = await raw_post(url, {}, listing)
        assert missing.status_code == 401 and missing.json() == {"errors": ["Unauthorized"]}
        for token in ("ipx_unknown", "not-a-token", no_mcp.token):
            refused = await raw_post(url, dd_headers(token), listing)
            assert refused.status_code == 403 and refused.json() == {"errors": ["Forbidden"]}
        ok = await raw_post(url, {"Authorization": f"Bearer {session.token}"}, listing)
        assert ok.status_code == 200 and len(ok.json()["result"]["tools"]) == len(TOOL_MAP)
        with pytest.raises(Exception):  # noqa: B017 - the official client fails to connect at all
            async with mcp_client(url, "ipx_unknown"):
                pass
    assert rec.calls == []


async def test_closed_session_refused(world: SimpleNamespace) -> None:
    registry, rec = SurfaceRegistry(), Recorder()
    session = open_session(registry, world, rec)
    async with mcp_server(registry) as url:
        async with mcp_client(url, session.token) as client:
            await call(client, "search_datadog_services", {"query": "team:edge"})
        registry.close(session)
        refused = await raw_post(url, dd_headers(session.token), raw_call("search_datadog_services", {}))
        assert refused.status_code == 403 and refused.json() == {"errors": ["Forbidden"]}
        with pytest.raises(Exception):  # noqa: B017
            async with mcp_client(url, session.token) as client:
                await client.call_tool("search_datadog_services", {})
    assert len(rec.calls) == 1


async def test_session_closed_during_a_connection_is_a_tool_error(world: SimpleNamespace) -> None:
    """The per-call check: a credential that passed the HTTP layer but whose session has ended."""
    registry, rec = SurfaceRegistry(), Recorder()
    session = open_session(registry, world, rec)
    surface = MCPSurface(registry)
    ctx = SimpleNamespace(headers=Headers(headers=dd_headers(session.token)))  # as a request's
    spec = TOOLS_BY_NAME["search_datadog_services"]
    assert not (await surface._call(spec, {}, ctx)).is_error
    session.closed = True  # ended, not yet removed from the registry: SurfaceSession.call refuses
    res = await surface._call(spec, {}, ctx)
    assert res.is_error and json.loads(res.content[0].text)["status"] == 403
    registry.close(session)
    res = await surface._call(spec, {}, ctx)
    assert res.is_error and json.loads(res.content[0].text) == {"errors": ["Forbidden"], "status": 403}
    assert len(rec.calls) == 1


async def test_budget_refuses_the_next_call(world: SimpleNamespace) -> None:
    registry, rec = SurfaceRegistry(), Recorder()
    session = open_session(registry, world, rec, max_calls=2)
    async with mcp_server(registry) as url, mcp_client(url, session.token) as client:
        await call(client, "search_datadog_services", {})
        await call(client, "search_datadog_monitors", {})
        body = await call_error(client, "search_datadog_logs", {"query": "status:error"})
        assert body["status"] == 429 and "budget of 2 tool calls is used up" in body["errors"][0]
    assert len(rec.calls) == 2 and session.calls == 2


async def test_malformed_arguments_are_tool_errors(world: SimpleNamespace) -> None:
    registry, rec = SurfaceRegistry(), Recorder()
    session = open_session(registry, world, rec)
    async with mcp_server(registry) as url, mcp_client(url, session.token) as client:
        refused = [  # refused before the world: not recorded, not counted
            ("search_datadog_logs", {"limit": "many"}, "limit"),
            ("search_datadog_logs", {"extra_fields": ["*"]}, "unknown argument"),
            ("get_datadog_trace", {}, "trace_id"),
            ("get_datadog_metric", {"queries": ["avg:a{*}", "avg:b{*}"]}, "one query per call"),
            ("get_datadog_metric", {}, "'queries'"),
            ("search_datadog_service_dependencies", {"service": "web-bff", "direction": "sideways"}, "direction"),
            ("search_datadog_spans", {"query": "x" * 5000}, "too long"),
        ]
        for tool, args, words in refused:
            body = await call_error(client, tool, args)
            assert body["status"] == 400 and words in body["errors"][0], (tool, body)
            assert len(body["errors"][0]) <= 300
        assert rec.calls == [] and session.calls == 0
        # answered by the world and recorded, but failed there
        body = await call_error(client, "get_datadog_metric", {"query": "avg:"})
        assert body["status"] == 400
        body = await call_error(client, "search_datadog_service_dependencies", {"service": "no-such-service"})
        assert body["status"] == 400 and "unknown service" in body["errors"][0]
        body = await call_error(client, "get_datadog_metric_context", {"metric": "no.such.metric"})
        assert body["status"] == 404 and "not found" in body["errors"][0]
        assert [c[3].ok for c in rec.calls] == [False, False, True]
        await call(client, "search_datadog_services", {})  # the server is fine
    assert session.calls == 4


async def test_oversized_body_refused(world: SimpleNamespace) -> None:
    registry, rec = SurfaceRegistry(), Recorder()
    session = open_session(registry, world, rec)
    big = json.dumps(raw_call("search_datadog_logs", {"query": "x" * (MAX_REQUEST_BODY_BYTES + 1)})).encode()
    async with mcp_server(registry) as url:
        refused = await raw_post(url, dd_headers(session.token), big)
        assert refused.status_code == 413
        assert (await raw_post(url, {}, big)).status_code == 401  # credentials are checked first
        ok = await raw_post(url, dd_headers(session.token), raw_call("search_datadog_services", {"limit": 1}))
        assert ok.status_code == 200 and not ok.json()["result"].get("isError")
    assert len(rec.calls) == 1


async def test_endpoint_path(world: SimpleNamespace) -> None:
    """Exactly <base>/mcp answers (no redirect); so does <base>/mcp/."""
    registry, rec = SurfaceRegistry(), Recorder()
    session = open_session(registry, world, rec)
    async with mcp_server(registry) as url:
        for u in (url, url + "/"):
            r = await raw_post(u, dd_headers(session.token), raw_call("search_datadog_services", {"limit": 1}))
            assert r.status_code == 200 and json.loads(r.json()["result"]["content"][0]["text"])["data"]
    assert len(rec.calls) == 2
