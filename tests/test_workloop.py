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

from evaluator_agent.engine import heap
from evaluator_agent.engine.workloop import WorkLoop, WorkLoops
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


async def _running_forever(work: WorkLoop) -> tuple[asyncio.Task[None], threading.Event]:
    """A caller awaiting a coroutine that sleeps for ever on ``work``, once it has started there;
    and the event the coroutine sets when it ends."""
    started, ended = threading.Event(), threading.Event()

    async def forever() -> None:
        started.set()
        try:
            await asyncio.sleep(3600)
        finally:
            ended.set()

    caller = asyncio.create_task(work.run(forever()))
    assert await asyncio.to_thread(started.wait, 10)
    return caller, ended


async def test_cancelling_the_caller_cancels_the_coroutine_there() -> None:
    work = WorkLoop("test-cancel")
    try:
        caller, ended = await _running_forever(work)
        caller.cancel()
        with pytest.raises(asyncio.CancelledError):
            await caller
        assert await asyncio.to_thread(ended.wait, 10)  # the coroutine itself was cancelled, not left running
    finally:
        await work.aclose()


async def test_stop_cancels_what_still_runs() -> None:
    work = WorkLoop("test-stop")
    caller, ended = await _running_forever(work)
    work.stop()  # blocking: the caller sees its cancellation only once the work loop is closed
    assert ended.is_set()
    with pytest.raises(asyncio.CancelledError):  # not RuntimeError: a closed loop has nothing left to cancel
        await caller


async def test_each_principal_gets_a_loop_of_its_own_up_to_the_limit() -> None:
    loops = WorkLoops(limit=2)
    try:
        a, b, a_again, anon = (loops.for_principal(p) for p in ("key:a", "key:b", "key:a", None))
        assert a is a_again and a is not b and anon in (a, b)  # a third principal shares: at most 2 threads
        names = set()
        for loop in (a, b):
            async def where() -> str:
                return threading.current_thread().name
            names.add(await loop.run(where()))
        assert len(names) == 2 and all(n.startswith("proctor-investigations-") for n in names)
    finally:
        await loops.aclose()
    assert not a.started and not b.started


async def test_a_world_is_loaded_once_for_every_loop_that_asks(monkeypatch: pytest.MonkeyPatch) -> None:
    from evaluator_agent.core.labels import load_labelset
    from evaluator_agent.engine.worlds import WorldCache

    cache, loads = WorldCache(), []
    real = cache._load

    def counted(digest: str) -> Any:
        loads.append(digest)
        return real(digest)

    monkeypatch.setattr(cache, "_load", counted)
    digest = load_labelset("smoke").labels[0].world.snapshot
    loops = [WorkLoop(f"test-world-{i}") for i in range(3)]
    try:
        items = await asyncio.gather(*(lp.run(cache.get(digest)) for lp in loops), cache.get(digest))
    finally:
        for lp in loops:
            await lp.aclose()
    assert loads == [digest] and all(it is items[0] for it in items)
    from evaluator_agent.telemetry.world import SnapshotError

    for _ in range(2):  # a failed load is every waiter's error, and is not remembered
        with pytest.raises(SnapshotError):
            await cache.get("0" * 64)
    assert await cache.get(digest) is items[0]


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
    from evaluator_agent.core.labels import load_labelset
    from evaluator_agent.service.client import call_proctor
    from evaluator_agent.service.server import create_app
    from evaluator_agent.telemetry.tools import Toolbox

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
        assert len(threads) == 1 and threads[0].startswith("proctor-investigations-")
        assert result["summary"]["n"] == 1 and result["investigations"][0]["tool_calls"] == 1
    finally:
        release.set()
        safety.cancel()


async def test_a_cancelled_waiter_does_not_cancel_the_load_others_wait_for(monkeypatch: pytest.MonkeyPatch) -> None:
    from evaluator_agent.engine.worlds import WorldCache

    cache, release = WorldCache(), threading.Event()
    monkeypatch.setattr(cache, "_load", lambda digest: (release.wait(30), {"end": 1.0})[1:] + ({"digest": digest},))
    first, second = asyncio.create_task(cache.get("d")), asyncio.create_task(cache.get("d"))
    await asyncio.sleep(0.05)
    first.cancel()
    release.set()
    assert await second == ({"end": 1.0}, {"digest": "d"})
    with pytest.raises(asyncio.CancelledError):
        await first
