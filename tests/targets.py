"""Tiny a2a-sdk targets (no ADK) for tests and benchmarks: scripted, echo, and hostile ones.

Each is mounted at ``/<name>`` with its card at ``/<name>/.well-known/agent-card.json``.
``legacy_card=True`` serves a 0.3-style card (top-level url, protocolVersion 0.3.0), which
makes clients speak A2A 0.3 to the same endpoint.
"""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from a2a.helpers import new_data_part, new_message, new_text_part
from a2a.server.agent_execution import AgentExecutor
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.routes import create_agent_card_routes, create_jsonrpc_routes
from a2a.server.tasks import InMemoryTaskStore, TaskUpdater
from a2a.types import AgentCapabilities, AgentCard, AgentInterface, AgentSkill, Role
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from evaluator_agent.core.protocol import data_object

Reply = dict[str, Any] | str | bytes


def incoming(context: Any) -> dict[str, Any]:
    return data_object(context.message.parts) or {}


class FnExecutor(AgentExecutor):
    """Replies with ``fn(turn, message_dict)``: a dict (sent as DataPart), or text."""

    def __init__(self, fn: Callable[[int, dict[str, Any]], Any]):
        self.fn = fn
        self.turns: dict[str, int] = defaultdict(int)
        # A script that ignores what it is sent need not pay for decoding it.
        self.reads_message = not getattr(fn, "ignores_message", False)

    async def execute(self, context: Any, event_queue: Any) -> None:
        self.turns[context.context_id] += 1
        reply = self.fn(self.turns[context.context_id], incoming(context) if self.reads_message else {})
        if asyncio.iscoroutine(reply):
            reply = await reply
        if reply == "__fail__":
            from a2a.helpers import new_task_from_user_message

            task = new_task_from_user_message(context.message)
            await event_queue.enqueue_event(task)
            up = TaskUpdater(event_queue, task.id, task.context_id)
            await up.failed(up.new_agent_message([new_text_part("internal agent error")]))
            return
        parts = [new_data_part(reply)] if isinstance(reply, dict) else [new_text_part(str(reply))]
        await event_queue.enqueue_event(new_message(parts, context_id=context.context_id, role=Role.ROLE_AGENT))

    async def cancel(self, context: Any, event_queue: Any) -> None:
        return None


def script_fn(replies: list[dict[str, Any]]) -> Callable[[int, dict[str, Any]], dict[str, Any]]:
    """Replay ``replies`` in order; the last one repeats."""

    def fn(turn: int, _msg: dict[str, Any]) -> dict[str, Any]:
        return replies[min(turn, len(replies)) - 1]

    fn.ignores_message = True  # type: ignore[attr-defined]
    return fn


def recording_fn(started: list[str], delay: float) -> Callable[[int, dict[str, Any]], Any]:
    """A slow two-turn target (one tool call, then "no fault") that notes every investigation it starts."""

    async def fn(turn: int, msg: dict[str, Any]) -> dict[str, Any]:
        if msg.get("type") == "briefing":
            started.append(msg["investigation_id"])
        await asyncio.sleep(delay)
        if turn == 1:
            return {"tool_calls": [{"id": "c1", "name": "list_services", "arguments": {}}]}
        return {"diagnosis": {"no_fault": True}}

    return fn


def echo_fn(_turn: int, msg: dict[str, Any]) -> dict[str, Any]:
    return {"echo": msg.get("n", 0)}


def card_for(name: str, base_url: str, legacy: bool = False) -> AgentCard | dict[str, Any]:
    url = f"{base_url.rstrip('/')}/{name}"
    if legacy:
        return {
            "name": name, "description": f"test target {name} (A2A 0.3 card)", "version": "0.3-test",
            "url": url, "preferredTransport": "JSONRPC", "protocolVersion": "0.3.0",
            "capabilities": {"streaming": False}, "defaultInputModes": ["text/plain"], "defaultOutputModes": ["text/plain"],
            "skills": [{"id": "investigate", "name": "investigate", "description": "test", "tags": ["test"]}],
        }
    return AgentCard(
        name=name, description=f"test target {name}", version="1.0-test",
        supported_interfaces=[AgentInterface(url=url, protocol_binding="JSONRPC", protocol_version="1.0")],
        capabilities=AgentCapabilities(streaming=False),
        default_input_modes=["text/plain"], default_output_modes=["text/plain"],
        skills=[AgentSkill(id="investigate", name="investigate", description="test", tags=["test"])],
    )


def agent_routes(name: str, card: Any, handler: Any) -> list[Any]:
    """A target's card (a 1.x ``AgentCard`` or a 0.3 card dict, served as is) at
    ``/<name>/.well-known/agent-card.json`` and its JSON-RPC endpoint at ``/<name>`` (1.0 and 0.3)."""
    routes: list[Any] = []
    if isinstance(card, dict):
        payload = json.dumps(card).encode()

        async def legacy_card(_: Request) -> Response:
            return Response(payload, media_type="application/json")

        routes.append(Route(f"/{name}/.well-known/agent-card.json", legacy_card))
    else:
        routes.extend(create_agent_card_routes(card, card_url=f"/{name}/.well-known/agent-card.json"))
    routes.extend(create_jsonrpc_routes(handler, f"/{name}", enable_v0_3_compat=True))
    return routes


def build_targets_app(base_url: str, targets: dict[str, tuple[Callable[..., Any], bool]]) -> Starlette:
    """``targets``: name -> (reply fn, legacy 0.3 card?)."""
    routes: list[Any] = []
    for name, (fn, legacy) in targets.items():
        card = card_for(name, base_url, legacy)
        proto_card = card_for(name, base_url, False)
        handler = DefaultRequestHandler(agent_executor=FnExecutor(fn), task_store=InMemoryTaskStore(), agent_card=proto_card)
        routes.extend(agent_routes(name, card, handler))

    # Raw hostile endpoints that are not A2A servers at all.
    async def garbage_card(_: Request) -> Response:
        return Response(b"\xff\xfe not json", media_type="application/json")

    async def health(_: Request) -> JSONResponse:
        return JSONResponse({"ok": True})

    routes.append(Route("/not-a-card/.well-known/agent-card.json", garbage_card))
    routes.append(Route("/health", health))
    return Starlette(routes=routes)
