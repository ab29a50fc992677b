"""The surfaces inside the investigation loop: the briefing's credential works for its own
investigation only and dies with it; an out-of-band call is recorded as a tool call of the
investigation with its surface, counted against its budget, and seen by the scorer; a run
restricted to one surface refuses the others; the store and the summary keep the surface.

The target is scripted (engine/local.py); its steps call the REST facade over real HTTP. The
surfaces are served from a thread of their own (the scripted target runs inline on the test's
event loop, so a server on that loop could not answer it)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from evaluator_agent.core.labels import load_labelset
from evaluator_agent.core.protocol import Budget
from evaluator_agent.core.records import RequestError
from evaluator_agent.engine.investigation import investigate
from evaluator_agent.engine.local import ScriptedTarget
from evaluator_agent.engine.orchestrator import offered_surfaces
from evaluator_agent.engine.request import parse_request
from evaluator_agent.engine.surfaces import SurfaceConfig
from evaluator_agent.engine.worlds import WorldCache
from evaluator_agent.results.runs import summarize
from evaluator_agent.results.store import Store

LABEL = load_labelset("smoke").labels[0]
WORLDS = WorldCache(capacity=2)
NO_FAULT = {"diagnosis": {"no_fault": True, "summary": "benign"}}
MONITORS = "/api/v1/monitor"


@pytest.fixture(scope="module")
def surfaces() -> Iterator[SurfaceConfig]:
    """The MCP and REST surfaces served by a thread with its own event loop."""
    from evaluator_agent.service.surfaces_app import serve_surfaces

    ready: dict[str, Any] = {}
    started, stop = threading.Event(), None

    def run() -> None:
        nonlocal stop

        async def main() -> None:
            nonlocal stop
            stop = asyncio.Event()
            async with serve_surfaces() as config:
                ready["config"] = config
                started.set()
                await stop.wait()

        loop = asyncio.new_event_loop()
        ready["loop"] = loop
        loop.run_until_complete(main())
        loop.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert started.wait(30), "the surfaces server did not start"
    yield ready["config"]
    ready["loop"].call_soon_threadsafe(stop.set)
    thread.join(15)


def credentials(messages: list[Any]) -> tuple[str, dict[str, str]]:
    rest = messages[0][1]["surfaces"]["rest"]
    return rest["base_url"], rest["headers"]


def rest_get(messages: list[Any], path: str) -> httpx.Response:
    base, headers = credentials(messages)
    return httpx.get(base + path, headers=headers, timeout=10)


def test_a_rest_call_is_a_recorded_budgeted_tool_call_of_the_investigation(surfaces: SurfaceConfig) -> None:
    seen: dict[str, Any] = {}

    def call_rest(messages: list[Any]) -> dict[str, Any]:
        brief = messages[0][1]
        assert set(brief["surfaces"]) == {"mcp", "rest"} and brief["in_band_tools"] is True
        seen["response"] = rest_get(messages, MONITORS)
        seen["messages"] = messages
        return {"tool_calls": [{"id": "c1", "name": "get_monitors", "arguments": {}}]}

    target = ScriptedTarget([call_rest, NO_FAULT])
    res = asyncio.run(investigate(LABEL, 1, target, WORLDS, Budget(), surfaces=surfaces))
    assert seen["response"].status_code == 200, seen["response"].text
    assert isinstance(seen["response"].json(), list) and seen["response"].json()
    assert res.end_reason == "diagnosis"
    assert res.calls_by_surface == {"rest": 1, "a2a": 1} and res.tool_calls == 2
    rest_call = next(c for c in res.call_records if c.surface == "rest")
    assert rest_call.name == "get_monitors" and rest_call.ok and rest_call.turn == 1
    # the credential died with the investigation, and no session is left open
    after = rest_get(seen["messages"], MONITORS)
    assert after.status_code == 403 and after.json() == {"errors": ["Forbidden"]}
    assert len(surfaces.registry) == 0


def test_a_credential_reads_only_its_own_investigation(surfaces: SurfaceConfig) -> None:
    tokens: list[str] = []

    def remember(messages: list[Any]) -> dict[str, Any]:
        tokens.append(credentials(messages)[1]["DD-API-KEY"])
        return NO_FAULT

    for _ in range(2):
        asyncio.run(investigate(LABEL, 1, ScriptedTarget([remember]), WORLDS, Budget(), surfaces=surfaces))
    assert len(set(tokens)) == 2 and all(t.startswith("ipx_") for t in tokens)
    for token in tokens:  # both ended: neither opens anything
        r = httpx.get(surfaces.rest_url + MONITORS, headers={"DD-API-KEY": token}, timeout=10)
        assert r.status_code == 403


def test_the_budget_covers_every_surface(surfaces: SurfaceConfig) -> None:
    statuses: list[int] = []

    def spend(messages: list[Any]) -> dict[str, Any]:
        statuses.extend(rest_get(messages, MONITORS).status_code for _ in range(3))
        return {"tool_calls": [{"id": "c1", "name": "get_monitors", "arguments": {}}]}

    budget = Budget(max_turns=2, max_calls_per_turn=1)  # two calls in all
    res = asyncio.run(investigate(LABEL, 1, ScriptedTarget([spend, NO_FAULT]), WORLDS, budget, surfaces=surfaces))
    assert statuses == [200, 200, 429]
    assert res.calls_by_surface == {"rest": 2} and res.invalid_calls == 1  # the in-band call found no budget left


def test_a_run_restricted_to_rest_refuses_in_band_calls(surfaces: SurfaceConfig) -> None:
    req = parse_request({"target": "http://127.0.0.1:1/x", "surfaces": ["rest"]})
    only_rest = offered_surfaces(req, surfaces)
    briefings: list[dict[str, Any]] = []

    def in_band(messages: list[Any]) -> dict[str, Any]:
        briefings.append(messages[0][1])
        return {"tool_calls": [{"id": "c1", "name": "get_monitors", "arguments": {}}]}

    target = ScriptedTarget([in_band, NO_FAULT])
    res = asyncio.run(investigate(LABEL, 1, target, WORLDS, Budget(), surfaces=only_rest))
    assert set(briefings[0]["surfaces"]) == {"rest"} and briefings[0]["in_band_tools"] is False
    refused = target.sent[0][1]["tool_results"][0]
    assert refused["ok"] is False and "not offered" in refused["error"]
    assert res.tool_calls == 0 and res.invalid_calls == 1


def test_a_request_for_a_surface_this_process_does_not_serve_is_refused() -> None:
    req = parse_request({"target": "http://127.0.0.1:1/x", "surfaces": ["mcp"]})
    with pytest.raises(RequestError, match="does not serve the mcp surface"):
        offered_surfaces(req, None)
    assert offered_surfaces(parse_request({"target": "http://127.0.0.1:1/x"}), None) is None


def test_the_store_and_the_summary_keep_the_surface(surfaces: SurfaceConfig, tmp_path: Any) -> None:
    def both(messages: list[Any]) -> dict[str, Any]:
        rest_get(messages, MONITORS)
        return {"tool_calls": [{"id": "c1", "name": "list_services", "arguments": {}}]}

    res = asyncio.run(investigate(LABEL, 1, ScriptedTarget([both, NO_FAULT]), WORLDS, Budget(), surfaces=surfaces))
    store = Store(tmp_path / "s.db")
    store.create_run("r1", {"run_id": "r1", "labelset": {"name": "smoke"}})
    store.record_investigation("r1", res)
    rows = store.investigations("r1")
    assert rows[0]["calls_by_surface"] == {"a2a": 1, "rest": 1}
    assert sorted(c["surface"] for c in store.tool_calls(rows[0]["id"])) == ["a2a", "rest"]
    assert summarize(rows)["tool_calls_by_surface"] == {"a2a": 1, "rest": 1}
    store.close()


def test_a_stable_key_serves_each_investigation_of_its_run_in_turn(surfaces: SurfaceConfig, tmp_path: Any) -> None:
    from evaluator_agent.engine.orchestrator import Prepared, execute

    key = "stable_" + "k" * 40
    labelset = load_labelset("smoke")
    labels = labelset.labels[:2]
    statuses: list[int] = []

    def with_key(messages: list[Any]) -> dict[str, Any]:
        assert credentials(messages)[1]["DD-API-KEY"] == key  # the key the agent was started with
        statuses.append(httpx.get(surfaces.rest_url + MONITORS, headers={"DD-API-KEY": key}, timeout=10).status_code)
        return NO_FAULT

    req = parse_request({"target": "http://127.0.0.1:1/x", "labels": [lb.id for lb in labels], "concurrency": 8,
                         "surfaces": ["a2a", "rest"], "surface_key": key})
    target = ScriptedTarget([with_key])
    prep = Prepared(req, labelset, labels, target, "run_stable")
    store = Store(tmp_path / "k.db")
    with pytest.raises(RequestError, match="in use"):  # another run holding the key refuses this one
        surfaces.registry.claim(key)
        try:
            asyncio.run(execute(prep, store, surfaces=surfaces))
        finally:
            surfaces.registry.release(key)
    result = asyncio.run(execute(prep, store, surfaces=surfaces))
    assert result["status"] == "completed" and statuses == [200, 200]
    assert httpx.get(surfaces.rest_url + MONITORS, headers={"DD-API-KEY": key}, timeout=10).status_code == 403
    assert all(r["calls_by_surface"] == {"rest": 1} for r in store.investigations("run_stable"))
    store.close()
