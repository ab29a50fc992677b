"""The proctor as an A2A server (a2a-sdk 1.x): JSON-RPC at ``/``, REST under ``/v1``,
agent card at ``/.well-known/agent-card.json``, health at ``/health``.

Skills, chosen by the request object's ``action`` (default ``evaluate``):

    evaluate        {"target": URL, "labelset": ..., ...} or the AgentBeats shape; streams progress,
                    ends with one artifact named "result" (TextPart summary + DataPart result)
    list_labelsets  {"action": "list_labelsets"}
    get_run         {"action": "get_run", "run_id": "run_..."}
    compare         {"action": "compare", "base": "run_...", "new": "run_...", "margin": 0.05}

A bad request ends its task as failed with a message naming the problem; the server stays up.
"""

from __future__ import annotations

import json
import logging
import os
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from . import __version__, observability
from .labels import LabelError, available_labelsets, load_labelset
from .protocol import extract_json_object
from .request import RequestError, parse_request
from .store import Store

log = logging.getLogger(__name__)

REST_PREFIX = "/v1"


def build_card(public_url: str) -> Any:
    from a2a.types import AgentCapabilities, AgentCard, AgentInterface, AgentSkill

    base = public_url.rstrip("/")
    example = json.dumps({"target": "http://127.0.0.1:9100/methodical/.well-known/agent-card.json", "labelset": "smoke"})
    return AgentCard(
        name="incident-proctor",
        description="Evaluates autonomous SRE agents: replays production incidents to the agent under test over A2A, "
        "serves simulated telemetry tools, scores the investigation against hidden ground truth.",
        version=__version__,
        supported_interfaces=[
            AgentInterface(url=base + "/", protocol_binding="JSONRPC", protocol_version="1.0"),
            AgentInterface(url=base + REST_PREFIX, protocol_binding="HTTP+JSON", protocol_version="1.0"),
        ],
        capabilities=AgentCapabilities(streaming=True, push_notifications=False),
        default_input_modes=["application/json", "text/plain"],
        default_output_modes=["application/json", "text/plain"],
        skills=[
            AgentSkill(
                id="evaluate_agent", name="Evaluate an SRE agent",
                description="Run the agent behind an agent card URL through a label set of replayed incidents; "
                "streams progress and returns a scored result artifact.",
                tags=["evaluation", "sre", "incident", "benchmark"],
                examples=[example, json.dumps({"participants": {"target": "<agent card URL>"}, "config": {"labelset": "smoke"}})],
                input_modes=["application/json", "text/plain"], output_modes=["application/json", "text/plain"],
            ),
            AgentSkill(
                id="list_labelsets", name="List label sets",
                description="Label sets this proctor can evaluate against, with label counts and content hashes.",
                tags=["labels"], examples=[json.dumps({"action": "list_labelsets"})],
            ),
            AgentSkill(
                id="compare_runs", name="Compare two runs",
                description="Paired comparison of two stored runs on their shared labels: delta with 95% CI, exact McNemar "
                "test, verdict regression | improvement | inconclusive, flipped labels, regressed segments.",
                tags=["results", "regression"],
                examples=[json.dumps({"action": "compare", "base": "run_0123456789ab", "new": "run_ba9876543210"})],
            ),
            AgentSkill(
                id="get_run", name="Get a run",
                description="The stored result of an earlier evaluation run, by run id.",
                tags=["results"], examples=[json.dumps({"action": "get_run", "run_id": "run_0123456789ab"})],
            ),
        ],
    )


def _request_object(message: Any) -> dict[str, Any] | None:
    from google.protobuf.json_format import MessageToDict

    if message is None:
        return None
    texts = []
    for part in message.parts:
        if part.HasField("data"):
            value = MessageToDict(part.data)
            if isinstance(value, dict):
                return value
        elif part.HasField("text"):
            texts.append(part.text)
    for t in texts:
        obj = extract_json_object(t)
        if obj is not None:
            return obj
    return None


def labelsets_info() -> list[dict[str, Any]]:
    out = []
    for name in available_labelsets():
        try:
            ls = load_labelset(name)
            out.append({"name": name, "labels": len(ls.labels), "hash": ls.content_hash, "description": ls.info.description})
        except LabelError as e:
            out.append({"name": name, "error": str(e)})
    return out


class ProctorExecutor:
    """AgentExecutor that runs evaluations (subclassed lazily from a2a's ABC in create_app)."""

    def __init__(self, store: Store, state: dict[str, Any]):
        self.store = store
        self.state = state  # holds the shared httpx client and world cache

    async def execute(self, context: Any, event_queue: Any) -> None:
        from a2a.helpers import new_data_part, new_task_from_user_message, new_text_part
        from a2a.server.tasks import TaskUpdater

        task = context.current_task
        if task is None:
            task = new_task_from_user_message(context.message)
            await event_queue.enqueue_event(task)
        up = TaskUpdater(event_queue, task.id, task.context_id)

        async def fail(text: str) -> None:
            await up.failed(up.new_agent_message([new_text_part(text), new_data_part({"error": text})]))

        obj = _request_object(context.message)
        if obj is None:
            await fail("no request found: send a JSON object (DataPart, or JSON in a TextPart) such as "
                       '{"target": "<agent card URL>", "labelset": "smoke"}')
            return
        action = obj.pop("action", "evaluate")
        if action == "list_labelsets":
            info = labelsets_info()
            await up.add_artifact([new_text_part(", ".join(i["name"] for i in info)), new_data_part({"labelsets": info})], name="labelsets")
            await up.complete()
            return
        if action == "get_run":
            await self._get_run(obj, up, fail)
            return
        if action == "compare":
            await self._compare(obj, up, fail)
            return
        if action != "evaluate":
            await fail(f"unknown action {action!r}; expected evaluate, list_labelsets, get_run or compare")
            return
        await self._evaluate(obj, up, fail)

    async def _get_run(self, obj: dict[str, Any], up: Any, fail: Any) -> None:
        from a2a.helpers import new_data_part, new_text_part

        from .orchestrator import build_result
        from .render import result_text

        run_id = obj.get("run_id")
        run = self.store.find_run(run_id) if isinstance(run_id, str) and run_id else None
        if run is None:
            await fail(f"no run {run_id!r} in this proctor's store")
            return
        result = build_result(self.store, run["run_id"])
        await up.add_artifact([new_text_part(result_text(result)), new_data_part(result)], name="result")
        await up.complete()

    async def _compare(self, obj: dict[str, Any], up: Any, fail: Any) -> None:
        from a2a.helpers import new_data_part, new_text_part

        from .analysis import AnalysisError, compare_stored
        from .report import render_compare_markdown

        base, new = obj.get("base"), obj.get("new")
        if not (isinstance(base, str) and isinstance(new, str)):
            await fail('compare needs "base" and "new" run ids')
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
        await up.add_artifact([new_text_part(render_compare_markdown(cmp)), new_data_part(cmp)], name="comparison")
        await up.complete()

    async def _evaluate(self, obj: dict[str, Any], up: Any, fail: Any) -> None:
        from a2a.helpers import new_data_part, new_text_part
        from a2a.types import TaskState

        from .orchestrator import execute, prepare
        from .render import result_text

        try:
            req = parse_request(obj)
            prep = await prepare(req, self.state["http"])
        except RequestError as e:
            await fail(str(e))
            return
        total = len(prep.labels) * req.attempts
        await up.update_status(
            TaskState.TASK_STATE_WORKING,
            up.new_agent_message([new_text_part(f"evaluating {prep.target.info.name}: {total} investigations"),
                                  new_data_part({"done": 0, "total": total, "passed": 0})]),
        )

        async def progress(done: int, total_: int, passed: int, last: Any) -> None:
            await up.update_status(
                TaskState.TASK_STATE_WORKING,
                up.new_agent_message([
                    new_text_part(f"{done}/{total_} done, {passed} passed"),
                    new_data_part({"done": done, "total": total_, "passed": passed,
                                   "last": {"label_id": last.label_id, "attempt": last.attempt, "passed": last.passed,
                                            "end_reason": last.end_reason}}),
                ]),
            )

        try:
            result = await execute(prep, self.store, worlds=self.state["worlds"], on_progress=progress)
        except Exception as e:  # noqa: BLE001 - report, keep the server up; stored results stay
            log.exception("evaluation failed")
            await fail(f"evaluation failed: {type(e).__name__}: {e}")
            return
        await up.add_artifact([new_text_part(result_text(result)), new_data_part(result)], name="result")
        await up.complete()

    async def cancel(self, context: Any, event_queue: Any) -> None:
        from a2a.server.tasks import TaskUpdater

        task = context.current_task
        if task is not None:
            await TaskUpdater(event_queue, task.id, task.context_id).cancel()


def create_app(db_path: str = "proctor.db", public_url: str | None = None) -> Starlette:
    """The ASGI app. ``public_url`` is what the card advertises (default $PROCTOR_PUBLIC_URL or loopback)."""
    from a2a.server.agent_execution import AgentExecutor
    from a2a.server.request_handlers import DefaultRequestHandler
    from a2a.server.routes import (
        create_agent_card_routes,
        create_jsonrpc_routes,
        create_rest_routes,
    )
    from a2a.server.tasks import InMemoryTaskStore

    from .investigation import WorldCache
    from .target import make_http_client

    public_url = public_url or os.environ.get("PROCTOR_PUBLIC_URL") or "http://127.0.0.1:8080"
    card = build_card(public_url)
    store = Store(db_path)
    state: dict[str, Any] = {"http": make_http_client(), "worlds": WorldCache()}

    executor_cls = type("_ProctorExecutor", (ProctorExecutor, AgentExecutor), {})
    executor = executor_cls(store, state)
    handler = DefaultRequestHandler(agent_executor=executor, task_store=InMemoryTaskStore(), agent_card=card)

    async def health(_: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "version": __version__})

    @asynccontextmanager
    async def lifespan(_: Starlette):
        yield
        await observability.aclose()
        await state["http"].aclose()
        store.close()

    routes = [
        Route("/health", health, methods=["GET"]),
        *create_agent_card_routes(card),
        *create_jsonrpc_routes(handler, "/", enable_v0_3_compat=True),
        *create_rest_routes(handler, path_prefix=REST_PREFIX),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.store = store
    app.state.proctor = state
    return app
