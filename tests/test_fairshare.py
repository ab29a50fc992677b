"""Investigation slots are shared fairly between concurrent evaluations (issue 11, item 10)."""

from __future__ import annotations

import asyncio

import pytest

from evaluator_agent.engine.fairshare import FairLimiter


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


@pytest.mark.anyio
async def test_a_small_evaluation_is_not_queued_behind_a_large_one() -> None:
    lim = FairLimiter(4)
    order: list[str] = []
    gates: dict[str, asyncio.Event] = {}

    async def work(key: str, i: int) -> None:
        async with lim.slot(key):
            order.append(f"{key}{i}")
            gates[f"{key}{i}"] = ev = asyncio.Event()
            await ev.wait()

    big = [asyncio.create_task(work("A", i)) for i in range(40)]  # a client asking for 40 at once
    await _settle()
    assert lim.in_use == 4 and lim.held("A") == 4 and lim.waiting("A") == 36
    small = asyncio.create_task(work("B", 0))  # another client's one-label evaluation
    await _settle()
    assert lim.waiting("B") == 1
    gates["A0"].set()  # the first slot that frees goes to B, not to A's 36 queued waiters
    await _settle()
    assert order[-1] == "B0" and lim.held("B") == 1 and lim.held("A") == 3
    gates["B0"].set()
    await small
    for t in big:
        t.cancel()
    await asyncio.gather(*big, return_exceptions=True)
    assert lim.in_use == 0 and lim.waiting() == 0


@pytest.mark.anyio
async def test_slots_split_evenly_and_cancelled_waiters_give_nothing_away() -> None:
    lim = FairLimiter(6)
    hold = asyncio.Event()

    async def work(key: str) -> None:
        async with lim.slot(key):
            await hold.wait()

    tasks = {k: [asyncio.create_task(work(k)) for _ in range(10)] for k in "ABC"}
    await _settle()
    assert lim.in_use == 6
    # A came first and took all six; as they free, the others catch up to an even split
    assert lim.held("A") == 6
    for t in tasks["A"][:6]:
        t.cancel()  # A's running investigations end (cancelled): their slots go to B and C
    await _settle()
    assert (lim.held("A"), lim.held("B"), lim.held("C")) == (2, 2, 2)
    for t in tasks["B"]:
        t.cancel()  # B gives up, running and waiting alike
    await _settle()
    assert lim.held("B") == 0 and lim.waiting("B") == 0
    assert lim.held("A") + lim.held("C") == 6 and abs(lim.held("A") - lim.held("C")) <= 1
    hold.set()
    await asyncio.gather(*(t for ts in tasks.values() for t in ts), return_exceptions=True)
    assert lim.in_use == 0 and lim.waiting() == 0


def test_bad_capacity_and_unbalanced_release() -> None:
    with pytest.raises(ValueError):
        FairLimiter(0)
    with pytest.raises(RuntimeError):
        FairLimiter(1).release("nobody")
