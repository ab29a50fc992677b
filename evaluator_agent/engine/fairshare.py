"""Investigation slots shared fairly between the evaluations a process runs at once.

A plain semaphore serves waiters first come, first served: an evaluation that asks for
concurrency 128 queues 128 waiters, and another client's one-label evaluation waits behind all
of them. :class:`FairLimiter` hands each freed slot to the evaluation that holds the fewest
slots among those waiting (the longest-waiting of them on a tie), so every evaluation in
flight gets its share as soon as one frees, however many investigations another one queued::

    limiter = FairLimiter(64)
    async with limiter.slot(run_id):
        ...  # one investigation
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections import deque
from collections.abc import AsyncIterator, Hashable

__all__ = ["FairLimiter"]


class FairLimiter:
    def __init__(self, capacity: int):
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self.capacity = capacity
        self.in_use = 0
        self._held: dict[Hashable, int] = {}
        self._waiting: dict[Hashable, deque[tuple[int, asyncio.Future[None]]]] = {}
        self._ticket = itertools.count()

    def held(self, key: Hashable) -> int:
        """Slots ``key`` holds now."""
        return self._held.get(key, 0)

    def waiting(self, key: Hashable | None = None) -> int:
        """Waiters of ``key`` (of every key when None)."""
        queues = self._waiting.values() if key is None else [self._waiting.get(key, deque())]
        return sum(1 for q in queues for _, f in q if not f.done())

    @contextlib.asynccontextmanager
    async def slot(self, key: Hashable) -> AsyncIterator[None]:
        await self.acquire(key)
        try:
            yield
        finally:
            self.release(key)

    async def acquire(self, key: Hashable) -> None:
        if self.in_use < self.capacity and not self.waiting():
            self._grant(key)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(key, deque()).append((next(self._ticket), fut))
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.release(key)  # granted, then cancelled before it was used: give it back
            else:
                self._drop(key, fut)
            raise

    def release(self, key: Hashable) -> None:
        n = self._held.get(key, 0)
        if n <= 0:
            raise RuntimeError(f"release of {key!r}, which holds no slot")
        if n == 1:
            del self._held[key]
        else:
            self._held[key] = n - 1
        self.in_use -= 1
        self._wake()

    # ------------------------------------------------------------------ internals

    def _grant(self, key: Hashable) -> None:
        self._held[key] = self._held.get(key, 0) + 1
        self.in_use += 1

    def _drop(self, key: Hashable, fut: asyncio.Future[None]) -> None:
        q = self._waiting.get(key)
        if q is not None:
            self._waiting[key] = deque(x for x in q if x[1] is not fut)
            if not self._waiting[key]:
                del self._waiting[key]

    def _wake(self) -> None:
        while self.in_use < self.capacity:
            best: tuple[int, int, Hashable] | None = None
            for key, q in list(self._waiting.items()):
                while q and q[0][1].done():  # cancelled waiters
                    q.popleft()
                if not q:
                    del self._waiting[key]
                    continue
                cand = (self.held(key), q[0][0], key)
                if best is None or cand[:2] < best[:2]:
                    best = cand
            if best is None:
                return
            key = best[2]
            _, fut = self._waiting[key].popleft()
            if not self._waiting[key]:
                del self._waiting[key]
            self._grant(key)
            fut.set_result(None)
