"""The server's investigations run on a loop of their own (workloop.py), and long-lived objects
are kept out of the cyclic collector's sight (heap.py): whatever an investigation does between
two awaits, the server still answers its clients (issue 11, `/health` under the hostile battery).
"""

from __future__ import annotations

import asyncio
import contextvars
import gc
import threading
import weakref
from pathlib import Path
from typing import Any

import httpx
import pytest

from evaluator_agent import heap
from evaluator_agent.workloop import WorkLoop
from tests.conftest import serve_app
from tests.targets import build_targets_app

pytestmark = pytest.mark.anyio
_who: contextvars.ContextVar[str] = contextvars.ContextVar("who", default="nobody")


async def test_runs_on_its_own_thread_in_the_callers_context_and_returns_or_raises() -> None:
    closed: list[Any] = []

    async def close(res: Any) -> None:
        closed.append(res)

    work = WorkLoop("test-work", resources=lambda: {"made_on": threading.current_thread().name}, close=close)
    try:
        async def probe() -> tuple[str, str, Any]:
            await asyncio.sleep(0)
            return threading.current_thread().name, _who.get(), work.resources

        _who.set("caller")
        name, who, res = await work.run(probe())
        assert name == "test-work" != threading.current_thread().name
        assert who == "caller" and res == {"made_on": "test-work"}

        async def boom() -> None:
            raise LookupError("from the work loop")

        with pytest.raises(LookupError, match="from the work loop"):
            await work.run(boom())
    finally:
        await work.aclose()
    assert closed == [{"made_on": "test-work"}] and not work.started


async def test_cancelling_the_caller_cancels_the_coroutine_there() -> None:
    work = WorkLoop("test-cancel")
    started, ended = threading.Event(), threading.Event()

    async def forever() -> None:
        started.set()
        try:
            await asyncio.sleep(3600)
        finally:
            ended.set()

    try:
        caller = asyncio.create_task(work.run(forever()))
        assert await asyncio.to_thread(started.wait, 10)
        caller.cancel()
        with pytest.raises(asyncio.CancelledError):
            await caller
        assert await asyncio.to_thread(ended.wait, 10)  # the coroutine itself was cancelled, not left running
    finally:
        await work.aclose()


async def test_stop_cancels_what_still_runs() -> None:
    work = WorkLoop("test-stop")
    started, ended = threading.Event(), threading.Event()

    async def forever() -> None:
        started.set()
        try:
            await asyncio.sleep(3600)
        finally:
            ended.set()

    caller = asyncio.create_task(work.run(forever()))
    assert await asyncio.to_thread(started.wait, 10)
    await work.aclose()
    assert ended.is_set()
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller


def test_settle_freezes_and_a_periodic_full_collection_reclaims_what_a_freeze_kept() -> None:
    class Node:
        pass

    a, b = Node(), Node()
    a.other, b.other = b, a
    gone = weakref.ref(a)
    try:
        heap.settle()  # a and b are alive: frozen
        assert heap.frozen() > 0
        del a, b  # now cyclic garbage, but in the permanent generation
        gc.collect()
        assert gone() is not None  # out of the collector's sight: the price of a freeze
        for _ in range(heap.FULL_EVERY):  # passes a full collection, which hands the frozen back
            heap.settle()
        assert gone() is None
    finally:
        gc.unfreeze()


def _tool_call_then_diagnose(turn: int, _msg: dict[str, Any]) -> dict[str, Any]:
    if turn == 1:
        return {"tool_calls": [{"id": "c1", "name": "list_services", "arguments": {}}]}
    return {"diagnosis": {"no_fault": True, "summary": "nothing wrong"}}


async def test_the_server_answers_while_an_investigation_holds_its_loop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A tool call that blocks its loop outright: the server's own loop still answers /health, and
    the investigation ran on the work loop's thread."""
    from evaluator_agent.client import call_proctor
    from evaluator_agent.labels import load_labelset
    from evaluator_agent.server import create_app
    from evaluator_agent.tools import Toolbox

    entered, release = threading.Event(), threading.Event()
    threads: list[str] = []
    real_call = Toolbox.call

    def blocking_call(self: Toolbox, name: str, arguments: Any) -> Any:
        threads.append(threading.current_thread().name)
        entered.set()
        release.wait(30)  # blocks whichever loop runs it (a safety timer ends it should the test fail)
        return real_call(self, name, arguments)

    monkeypatch.setattr(Toolbox, "call", blocking_call)
    safety = threading.Timer(30, release.set)
    safety.start()
    label = load_labelset("smoke").labels[0].id
    try:
        async with serve_app(lambda b: build_targets_app(b, {"t": (_tool_call_then_diagnose, False)})) as targets, \
                serve_app(lambda b: create_app(str(tmp_path / "p.db"), public_url=b)) as proctor, \
                httpx.AsyncClient(timeout=60) as http:
            run = asyncio.create_task(call_proctor(proctor, {"target": f"{targets}/t/.well-known/agent-card.json", "labels": [label]}))
            assert await asyncio.to_thread(entered.wait, 30)
            health = await http.get(f"{proctor}/health")
            answered_while_blocked = not release.is_set()
            release.set()
            result = await run
        assert health.status_code == 200 and answered_while_blocked
        assert threads == ["proctor-investigations"]
        assert result["summary"]["n"] == 1 and result["investigations"][0]["tool_calls"] == 1
    finally:
        release.set()
        safety.cancel()
