"""The A2A executor of the proctor: one task per request, dispatched by its ``action``.

``evaluate`` goes through the process's :class:`~evaluator_agent.engine.lifecycle.Lifecycle`
(admission, run, interruption); ``list_labelsets``, ``get_run`` and ``compare`` read the store.
Every failure ends the task as failed with a message naming the problem; the server stays up.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from a2a.server.agent_execution import AgentExecutor

from evaluator_agent.core.labels import LabelError, available_labelsets, load_labelset
from evaluator_agent.core.protocol import json_object_in
from evaluator_agent.core.records import RequestError
from evaluator_agent.engine.fairshare import FairLimiter
from evaluator_agent.engine.lifecycle import Lifecycle, Refused, RunInterrupted, ShuttingDown
from evaluator_agent.engine.orchestrator import prepare, select_labels
from evaluator_agent.engine.request import parse_request
from evaluator_agent.engine.surfaces import SurfaceConfig
from evaluator_agent.engine.workloop import WorkLoops
from evaluator_agent.engine.worlds import WorldCache
from evaluator_agent.results import disclosure
from evaluator_agent.results.store import Store
from evaluator_agent.service.card import SKILL_ACTIONS

log = logging.getLogger(__name__)


@dataclass
class ServerState:
    """What the executor, the health route and the shutdown share."""

    store: Store
    life: Lifecycle  # admission, the evaluations in flight, drain
    work: WorkLoops  # one loop per API key principal, each with its own http client for targets
    worlds: WorldCache  # shared by those loops
    investigations: FairLimiter  # investigations in flight across all evaluations
    disclosure: str  # the policy results are shown under
    surfaces: SurfaceConfig | None = None  # where MCP and the REST facade are served (surfaces.py)


def _principal(context: Any) -> str | None:
    """The API key's principal the guard authenticated, or None without keys."""
    user = getattr(getattr(context, "call_context", None), "user", None)
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    return str(user.user_name) or None


USAGE = (
    "I am incident-proctor: I evaluate incident-investigation agents by replaying production "
    "incidents to them over A2A and scoring their diagnoses. Send me a JSON object (a DataPart, "
    'or JSON in a text part): {"target": "<agent card URL>", "labelset": "smoke"} evaluates an '
    'agent; {"action": "list_labelsets"} lists the label sets; {"action": "get_run", "run_id": '
    '"run_..."} returns a stored run; {"action": "compare", "base": "run_...", "new": "run_..."} '
    "compares two runs. My agent card lists these skills with examples."
)


def _says_hello(message: Any) -> bool:
    """Plain text with no attempt at JSON in it (no brace): a greeting or a question."""
    if message is None:
        return False
    texts = [p.text for p in message.parts if p.HasField("text")]
    return bool(texts) and not any(p.HasField("data") for p in message.parts) and not any("{" in t for t in texts)


def _request_object(message: Any) -> dict[str, Any] | None:
    return None if message is None else json_object_in(message.parts)


def labelsets_info() -> list[dict[str, Any]]:
    out = []
    for name in available_labelsets():
        try:
            ls = load_labelset(name)
            out.append({"name": name, "labels": len(ls.labels), "hash": ls.content_hash, "description": ls.info.description,
                        "private": ls.info.private})
        except LabelError as e:
            out.append({"name": name, "error": str(e)})
    return out


class ProctorExecutor(AgentExecutor):
    """Runs the proctor's actions as A2A tasks."""

    def __init__(self, state: ServerState):
        self.state = state
        self.store = state.store

    async def execute(self, context: Any, event_queue: Any) -> None:
        from a2a.helpers import new_data_part, new_task_from_user_message, new_text_part
        from a2a.server.tasks import TaskUpdater

        task = context.current_task
        if task is None:
            task = new_task_from_user_message(context.message)
            await event_queue.enqueue_event(task)
        up = TaskUpdater(event_queue, task.id, task.context_id)

        async def fail(text: str, extra: dict[str, Any] | None = None) -> None:
            await up.failed(up.new_agent_message([new_text_part(text), new_data_part({"error": text, **(extra or {})})]))

        owner = _principal(context)
        obj = _request_object(context.message)
        if obj is None:
            if _says_hello(context.message):  # a person or a chat agent saying hello: tell it how
                await up.add_artifact([new_text_part(USAGE)], name="usage", last_chunk=True)
                await up.complete()
                return
            await fail("no request found: send a JSON object (DataPart, or JSON in a TextPart) such as "
                       '{"target": "<agent card URL>", "labelset": "smoke"}')
            return
        asked = obj.pop("action", "evaluate")
        # the card's skill ids name the same actions (evaluate_agent, compare_runs): either is accepted
        action = SKILL_ACTIONS.get(asked, asked) if isinstance(asked, str) else asked
        if action == "list_labelsets":
            info = labelsets_info()
            await up.add_artifact([new_text_part(", ".join(i["name"] for i in info)), new_data_part({"labelsets": info})], name="labelsets", last_chunk=True)
            await up.complete()
            return
        if action == "get_run":
            await self._get_run(obj, up, fail, owner)
            return
        if action == "compare":
            await self._compare(obj, up, fail, owner)
            return
        if action != "evaluate":
            await fail(f"unknown action {str(asked)[:80]!r}; expected evaluate, list_labelsets, get_run or compare "
                       "(or a skill id of the card: evaluate_agent, compare_runs)")
            return
        await self._evaluate(obj, up, fail, owner)

    def _find_run(self, run_id: Any, owner: str | None) -> dict[str, Any] | None:
        """A stored run the caller may see: its own, or one no API key created (CLI runs, jobs).
        Another key's run is "not found", exactly as a run that does not exist."""
        run = self.store.find_run(run_id) if isinstance(run_id, str) and run_id else None
        if run is None:
            return None
        run_owner = (run.get("manifest") or {}).get("owner")
        return run if run_owner is None or run_owner == owner else None

    async def _get_run(self, obj: dict[str, Any], up: Any, fail: Any, owner: str | None) -> None:
        from a2a.helpers import new_data_part, new_text_part

        from evaluator_agent.results.text import result_text

        run_id = obj.get("run_id")
        run = self._find_run(run_id, owner)
        if run is None:
            await fail(f"no run {run_id!r} in this proctor's store")
            return
        result = disclosure.disclose_result(self.store.result(run["run_id"]).as_dict(), self.state.disclosure)
        await up.add_artifact([new_text_part(result_text(result)), new_data_part(result)], name="result", last_chunk=True)
        await up.complete()

    async def _compare(self, obj: dict[str, Any], up: Any, fail: Any, owner: str | None) -> None:
        from a2a.helpers import new_data_part, new_text_part

        from evaluator_agent.results.analysis import AnalysisError, compare_stored
        from evaluator_agent.results.html import render_compare_markdown

        base, new = obj.get("base"), obj.get("new")
        if not (isinstance(base, str) and isinstance(new, str)):
            await fail('compare needs "base" and "new" run ids')
            return
        for run_id in (base, new):
            if self._find_run(run_id, owner) is None:
                await fail(f"no run {run_id!r} in this proctor's store")
                return
        margin = obj.get("margin", 0.05)
        if not isinstance(margin, int | float) or not 0 <= margin < 1:
            await fail("margin must be a number in [0, 1)")
            return
        try:
            cmp = compare_stored(self.store, base, new, margin=float(margin))
        except AnalysisError as e:
            await fail(str(e))
            return
        private = any(disclosure.run_private(self.store.find_run(cmp[side]["run_id"])) for side in ("base", "new"))
        cmp = disclosure.disclose_compare(cmp, disclosure.effective(self.state.disclosure, private))
        await up.add_artifact([new_text_part(render_compare_markdown(cmp)), new_data_part(cmp)], name="comparison", last_chunk=True)
        await up.complete()

    async def _evaluate(self, obj: dict[str, Any], up: Any, fail: Any, owner: str | None = None) -> None:
        """One evaluation: checked, admitted (or refused: busy, shutting down), prepared on the
        caller's work loop, run, reported. A bad request is told so even when the proctor is busy."""
        try:
            if self.state.life.draining:
                raise ShuttingDown()
            req = parse_request(obj)
            selection = select_labels(req)  # local and cheap: a bad request is told so, busy or not
            with self.state.life.admit():
                await self._run_evaluation(req, selection, up, fail, owner)
        except Refused as e:
            await fail(str(e), e.details())
        except RequestError as e:
            await fail(str(e))

    async def _run_evaluation(self, req: Any, selection: Any, up: Any, fail: Any, owner: str | None) -> None:
        from a2a.helpers import new_data_part, new_text_part
        from a2a.types import TaskState

        from evaluator_agent.results.text import result_text

        st = self.state
        work = st.work.for_principal(owner)  # each client's investigations on a loop of its own

        async def prepared() -> Any:  # on the work loop, with its client: the target is used there
            return await prepare(req, work.resources, selection)

        prep = await work.run(prepared())
        if st.life.draining:  # shutdown began while the target was being resolved
            raise ShuttingDown()
        run_id, total = prep.run_id, len(prep.work())
        await up.update_status(
            TaskState.TASK_STATE_WORKING,
            up.new_agent_message([new_text_part(f"evaluating {prep.target.info.name}: {total} investigations (run {run_id})"),
                                  new_data_part({"run_id": run_id, "done": 0, "total": total, "passed": 0})]),
        )

        async def progress(done: int, total_: int, passed: int, last: Any) -> None:
            await up.update_status(
                TaskState.TASK_STATE_WORKING,
                up.new_agent_message([
                    new_text_part(f"{done}/{total_} done, {passed} passed"),
                    new_data_part({"run_id": run_id, "done": done, "total": total_, "passed": passed,
                                   "last": {"label_id": last.label_id, "attempt": last.attempt, "passed": last.passed,
                                            "end_reason": last.end_reason}}),
                ]),
            )

        try:
            result = await st.life.execute(prep, self.store, worlds=st.worlds, on_progress=progress,
                                           disclosure_policy=st.disclosure, limiter=st.investigations,
                                           owner=owner, work_loop=work, surfaces=st.surfaces)
        except RunInterrupted as e:
            await fail(f"interrupted by shutdown after {e.done}/{e.total} investigations; "
                       f"send the same request with run_id={run_id} to finish it",
                       {"code": "interrupted", "run_id": run_id, "done": e.done, "total": e.total})
            return
        except RequestError as e:  # e.g. a run id taken by another request or caller
            await fail(str(e), {"run_id": run_id})
            return
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001 - report, keep the server up; stored results stay
            log.error("evaluation %s failed", run_id, exc_info=e)
            await fail(f"evaluation failed: {type(e).__name__}: {e}", {"run_id": run_id})
            return
        result = disclosure.disclose_result(result, st.disclosure)
        await up.add_artifact([new_text_part(result_text(result)), new_data_part(result)], name="result", last_chunk=True)
        await up.complete()

    async def cancel(self, context: Any, event_queue: Any) -> None:
        from a2a.server.tasks import TaskUpdater

        task = context.current_task
        if task is not None:
            await TaskUpdater(event_queue, task.id, task.context_id).cancel()
