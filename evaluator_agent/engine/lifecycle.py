"""The life of the evaluations of one process, the same for ``proctor serve`` and ``proctor run``.

Admission
    :meth:`Lifecycle.admit` lets an evaluation in, or refuses it with :class:`Busy` (at the cap of
    evaluations in flight) or :class:`ShuttingDown` (a drain has begun). Both are
    :class:`~evaluator_agent.core.records.RequestError`s with a ``code`` and ``retry_after_s``.
Run
    :meth:`Lifecycle.execute` runs one prepared evaluation as a task of its own (a shutdown
    cancels it without cancelling its caller, who still reports) and hands back its result, or
    raises :class:`RunInterrupted` with what was done: what finished is recorded, the run is
    marked interrupted, and the same request with the same run id finishes it (resume).
Drain
    :meth:`Lifecycle.drain` (a server's SIGTERM, :meth:`on_sigterm` for the CLI): start nothing
    new, let investigations in flight finish for ``drain_s`` seconds, then cancel what still runs.
Resume
    :func:`resume_request` rebuilds the request of a stored run (``proctor run --resume``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Callable, Iterator
from typing import Any

from evaluator_agent.core.labels import LabelError, load_labelset
from evaluator_agent.core.records import RequestError
from evaluator_agent.engine.orchestrator import Prepared, RunInterrupted, execute
from evaluator_agent.engine.request import EvaluationRequest, parse_request
from evaluator_agent.results.store import Store

log = logging.getLogger(__name__)

BUSY_RETRY_AFTER_S = 30
SHUTDOWN_RETRY_AFTER_S = 10


class Refused(RequestError):
    """An evaluation not admitted; ``code`` and ``retry_after_s`` tell a client what to do."""

    code = "refused"
    retry_after_s = 0

    def details(self) -> dict[str, Any]:
        return {"code": self.code, "retry_after_s": self.retry_after_s}


class Busy(Refused):
    code = "busy"
    retry_after_s = BUSY_RETRY_AFTER_S


class ShuttingDown(Refused):
    code = "shutting_down"
    retry_after_s = SHUTDOWN_RETRY_AFTER_S

    def __init__(self) -> None:
        super().__init__("shutting down: this proctor is draining and takes no new evaluations; retry shortly")


class Lifecycle:
    """Admission, execution and drain of the evaluations of one process."""

    def __init__(self, max_evaluations: int = 1):
        if max_evaluations < 1:
            raise ValueError("max_evaluations must be >= 1")
        self.max_evaluations = max_evaluations
        self.stop = asyncio.Event()  # set: no new evaluation, no new investigation
        self.active = 0  # evaluations admitted and not yet finished
        self.idle = asyncio.Event()  # set when none is active
        self.idle.set()
        self.running: set[asyncio.Task[Any]] = set()  # their execute tasks

    @property
    def draining(self) -> bool:
        return self.stop.is_set()

    @contextlib.contextmanager
    def admit(self) -> Iterator[None]:
        """One evaluation in flight for the block; :class:`ShuttingDown` or :class:`Busy` instead.
        The slot is released on every path, errors and cancellation included."""
        if self.stop.is_set():
            raise ShuttingDown()
        if self.active >= self.max_evaluations:
            raise Busy(f"busy: {self.active} evaluations in progress (limit {self.max_evaluations}); retry later")
        self.active += 1
        self.idle.clear()
        try:
            yield
        finally:
            self.active -= 1
            if self.active <= 0:
                self.idle.set()

    async def execute(self, prep: Prepared, store: Store, **options: Any) -> dict[str, Any]:
        """Run ``prep`` to its end (``options`` go to :func:`~evaluator_agent.engine.orchestrator.execute`);
        returns the stored result. :class:`RunInterrupted` when a drain stopped or cancelled it.
        Cancelling the caller cancels the run (what finished stays recorded) and re-raises."""
        inner = asyncio.create_task(execute(prep, store, stop=self.stop, **options))
        self.running.add(inner)
        try:
            await asyncio.wait([inner])
        except asyncio.CancelledError:
            inner.cancel()
            await asyncio.wait([inner], timeout=5)
            raise
        finally:
            self.running.discard(inner)
        if inner.cancelled():
            total = len(prep.work(options.get("shard")))
            raise RunInterrupted(prep.run_id, len(store.recorded(prep.run_id)), total)
        return inner.result()

    def cancel_running(self) -> None:
        for task in list(self.running):
            task.cancel()

    async def drain(self, drain_s: float, *, cancel_grace_s: float = 1.0) -> None:
        """Stop taking evaluations and let those in flight finish for up to ``drain_s`` seconds;
        then cancel what still runs and give it ``cancel_grace_s`` to record its finished
        investigations, mark its run interrupted and report that."""
        self.stop.set()
        if self.active == 0:
            return
        log.warning("shutdown: draining %d evaluation(s), up to %.1fs", self.active, drain_s)
        try:
            await asyncio.wait_for(self.idle.wait(), drain_s)
            return
        except TimeoutError:
            pass
        log.warning("shutdown: drain time is up, cancelling %d evaluation(s)", len(self.running))
        self.cancel_running()
        try:
            await asyncio.wait_for(self.idle.wait(), cancel_grace_s)
        except TimeoutError:
            log.error("shutdown: %d evaluation(s) did not stop in time", self.active)

    def on_sigterm(self, drain_s: float, say: Callable[[str], None] | None = None) -> None:
        """SIGTERM (Cloud Run stopping a task): drain for ``drain_s`` seconds; a second SIGTERM
        cancels at once. A no-op where signals cannot be handled (not the main thread)."""
        loop = asyncio.get_running_loop()
        say = say or (lambda text: print(text, file=sys.stderr, flush=True))
        tasks: list[asyncio.Task[None]] = []

        def on_term() -> None:
            if self.stop.is_set():
                self.cancel_running()
                return
            say("SIGTERM: finishing investigations in flight")
            tasks.append(loop.create_task(self.drain(drain_s)))

        try:
            loop.add_signal_handler(signal.SIGTERM, on_term)
        except (NotImplementedError, RuntimeError, ValueError):
            pass


def resume_request(store: Store, run_id: str) -> EvaluationRequest:
    """The request a stored run was started with, to finish it (``proctor run --resume``)."""
    run = store.find_run(run_id)
    if run is None:
        raise RequestError(f"no run {run_id!r} to resume in {store.path}")
    m = run["manifest"] or {}
    opts = dict(m.get("options") or {})
    opts.update(target=m.get("target", {}).get("url") or run["target_url"], labelset=run["labelset"],
                labels=m.get("label_ids") or opts.get("labels"), run_id=run["run_id"])
    if m.get("instances"):
        # a draw: its labels are regenerated from the recorded seed; the recipes must be the same
        inst = m["instances"]
        opts["instances"] = inst.get("seed")
        if (m.get("options") or {}).get("instances") is not None:
            opts["instances"] = m["options"]["instances"]
        return parse_request(opts)
    try:
        current = load_labelset(run["labelset"]).content_hash
    except LabelError as e:
        raise RequestError(f"cannot resume {run['run_id']}: {e}") from None
    if current != run["labelset_hash"]:
        raise RequestError(f"cannot resume {run['run_id']}: label set {run['labelset']!r} changed since the run started")
    return parse_request(opts)
