"""A second event loop, in a thread of its own, for the investigations of a server.

The server's own loop answers clients: A2A requests, ``GetTask``, cancels, ``/health``. An
investigation is CPU work between awaits: running tool calls over a world index, serializing
tool results into the A2A message (the SDK turns them into protobuf and back into JSON),
parsing the reply. One hostile target sending large replies every turn kept the server's
loop busy for 200-300 ms at a time, and every client waited. On this loop the work still
shares the interpreter, but Python hands the GIL back to the server's thread every few
milliseconds (``sys.getswitchinterval``), so the server's loop stays responsive.

Everything an investigation touches that is bound to a loop (the httpx client, the SDK's
clients built on it) is created and used on this loop only; the world cache is thread-safe and
shared by all loops (investigation.WorldCache).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class WorkLoop:
    """Runs coroutines on a private event loop in a daemon thread (started on first use).

    ``await work.run(coro)`` from any other loop: the coroutine runs there in a copy of the
    caller's context (contextvars, so trace spans keep their parents); its result or exception
    comes back; cancelling the caller cancels it. ``resources`` is built on the loop once, at
    start (e.g. the httpx client), and ``close`` (awaited on the loop before it stops) releases it.
    """

    def __init__(
        self,
        name: str = "proctor-work",
        resources: Callable[[], Any] | None = None,
        close: Callable[[Any], Coroutine[Any, Any, Any]] | None = None,
    ):
        self.name = name
        self._make, self._close = resources, close
        self.resources: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def _ensure(self) -> asyncio.AbstractEventLoop:
        with self._start_lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                ready = threading.Event()
                failure: list[BaseException] = []

                def main() -> None:
                    asyncio.set_event_loop(loop)
                    try:
                        self.resources = self._make() if self._make is not None else None
                    except BaseException as e:  # noqa: BLE001 - reported to the starter
                        failure.append(e)
                        ready.set()
                        return
                    loop.call_soon(ready.set)
                    loop.run_forever()

                thread = threading.Thread(target=main, name=self.name, daemon=True)
                thread.start()
                ready.wait()
                if failure:
                    thread.join()
                    loop.close()
                    raise failure[0]
                self._loop, self._thread = loop, thread
            return self._loop

    @property
    def started(self) -> bool:
        return self._loop is not None

    async def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Await ``coro`` on the work loop."""
        try:
            loop = self._ensure()
        except BaseException:
            coro.close()
            raise
        ctx = contextvars.copy_context()
        done: concurrent.futures.Future[T] = concurrent.futures.Future()
        holder: list[asyncio.Task[T]] = []

        def settle(task: asyncio.Task[T]) -> None:
            try:
                if task.cancelled():
                    done.cancel()
                elif task.exception() is not None:
                    done.set_exception(task.exception())  # type: ignore[arg-type]
                else:
                    done.set_result(task.result())
            except concurrent.futures.InvalidStateError:  # the caller cancelled meanwhile
                pass

        def start() -> None:
            if done.cancelled():  # the caller gave up before the coroutine started
                coro.close()
                return
            task = ctx.run(loop.create_task, coro)  # the task runs in a copy of the caller's context
            holder.append(task)
            task.add_done_callback(settle)

        loop.call_soon_threadsafe(start)
        try:
            return await asyncio.wrap_future(done)
        except asyncio.CancelledError:
            done.cancel()

            def stop() -> None:
                if holder:
                    holder[0].cancel()

            with contextlib.suppress(RuntimeError):  # the loop was stopped meanwhile: nothing left to cancel
                loop.call_soon_threadsafe(stop)
            raise

    def stop(self, timeout_s: float = 10.0) -> None:
        """Cancel what is still running, release the resources, stop the loop and join the thread."""
        with self._start_lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None or thread is None:
            return

        async def wind_down() -> None:
            me = asyncio.current_task()
            rest = [t for t in asyncio.all_tasks() if t is not me]
            for t in rest:
                t.cancel()
            if rest:
                await asyncio.wait(rest, timeout=timeout_s / 2)
            if self._close is not None and self.resources is not None:
                await self._close(self.resources)

        fut = asyncio.run_coroutine_threadsafe(wind_down(), loop)
        try:
            fut.result(timeout_s)
        except Exception:  # noqa: BLE001 - stopping anyway
            pass
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout_s)
        if not thread.is_alive():
            loop.close()

    async def aclose(self, timeout_s: float = 10.0) -> None:
        """:meth:`stop` without blocking the caller's loop."""
        await asyncio.to_thread(self.stop, timeout_s)


class WorkLoops:
    """One :class:`WorkLoop` per client (API key principal), at most ``limit`` of them.

    Python shares the interpreter between threads by time slices, whatever each thread has
    queued: a client whose loop is crowded with hostile investigations takes its slices, and
    another client's loop, with one honest investigation waiting for its next turn, still gets
    the interpreter within a slice. On a single shared loop that turn would wait behind every
    callback the crowd had queued. Principals come from the configured API keys (a finite set);
    past ``limit`` of them, loops are shared. Each loop has its own ``resources`` (e.g. its
    httpx client)."""

    def __init__(
        self,
        limit: int = 8,
        resources: Callable[[], Any] | None = None,
        close: Callable[[Any], Coroutine[Any, Any, Any]] | None = None,
    ):
        if limit < 1:
            raise ValueError("limit must be >= 1")
        self.limit = limit
        self._make, self._close = resources, close
        self._loops: list[WorkLoop] = []
        self._by_principal: dict[str | None, WorkLoop] = {}
        self._lock = threading.Lock()

    def for_principal(self, principal: str | None) -> WorkLoop:
        with self._lock:
            loop = self._by_principal.get(principal)
            if loop is None:
                if len(self._loops) < self.limit:
                    loop = WorkLoop(f"proctor-investigations-{len(self._loops)}", self._make, self._close)
                    self._loops.append(loop)
                else:
                    loop = self._loops[len(self._by_principal) % self.limit]
                self._by_principal[principal] = loop
            return loop

    def loops(self) -> list[WorkLoop]:
        with self._lock:
            return list(self._loops)

    async def aclose(self, timeout_s: float = 10.0) -> None:
        with self._lock:
            loops, self._loops, self._by_principal = self._loops, [], {}
        for loop in loops:
            await loop.aclose(timeout_s)
