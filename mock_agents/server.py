"""Serve the mock agents over A2A, all on one Starlette app.

Agent ``NAME`` answers JSON-RPC at ``{base}/NAME`` (A2A 1.0, with the 0.3 method names
accepted too) and publishes its card at ``{base}/NAME/.well-known/agent-card.json``.
``/health`` and ``/`` list the agents.

Cards are built eagerly (ADK's card builder is async), so the app is complete before it
serves its first request: it works under uvicorn and in-process under ``httpx.ASGITransport``.

Memory is bounded for long traffic runs: each agent keeps at most ``MOCK_AGENTS_MAX_SESSIONS``
ADK sessions (default 256; one session per conversation, ~1 MB for a long investigation) and
``MOCK_AGENTS_MAX_TASKS`` finished A2A tasks (default 1024). Session eviction is least
recently used; it never touches a session whose conversation has a turn running, and spares
sessions used in the last ``MOCK_AGENTS_SESSION_GRACE_S`` seconds (default 30: an
investigation between two turns) until there are twice the cap. ``GET /stats`` shows the
counts per agent.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

os.environ.setdefault("ADK_SUPPRESS_A2A_EXPERIMENTAL_FEATURE_WARNINGS", "1")

if TYPE_CHECKING:
    from starlette.applications import Starlette

from evaluator_agent.core.envvars import env_int as _env_int  # noqa: E402
from evaluator_agent.core.logs import quiet_logs  # noqa: E402,F401

logger = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 9100
CARD_PATH = "/.well-known/agent-card.json"
AGENT_VERSION = "0.1.0"
DEFAULT_MAX_SESSIONS = 256
DEFAULT_MAX_TASKS = 1024
DEFAULT_SESSION_GRACE_S = 30.0
_TERMINAL_TASK_STATES = (
    "TASK_STATE_COMPLETED",
    "TASK_STATE_FAILED",
    "TASK_STATE_CANCELED",
    "TASK_STATE_REJECTED",
)


def _bounded_session_service_cls() -> type:
    from google.adk.sessions import InMemorySessionService

    class BoundedSessionService(InMemorySessionService):
        """ADK's in-memory sessions, about ``max_sessions`` of them (LRU by last use).

        Use = create, get or append_event. Beyond ``max_sessions``, the least recently used
        sessions go, but only those idle for ``grace_s`` seconds: an investigation between
        two turns (the proctor running its tools) keeps its history even when more
        conversations than the cap are running at once. Beyond twice the cap the grace is
        ignored. A session whose conversation is running a turn (see :meth:`in_use`) is
        never evicted.
        """

        def __init__(self, max_sessions: int | None = None, grace_s: float | None = None) -> None:
            super().__init__()
            self.max_sessions = max_sessions or _env_int(
                "MOCK_AGENTS_MAX_SESSIONS", DEFAULT_MAX_SESSIONS
            )
            if grace_s is None:
                raw = os.environ.get("MOCK_AGENTS_SESSION_GRACE_S", "").strip()
                grace_s = float(raw) if raw else DEFAULT_SESSION_GRACE_S
            self.grace_s = max(0.0, grace_s)
            self._lru: OrderedDict[tuple[str, str, str], float] = OrderedDict()
            self._busy: Counter[tuple[str, str]] = Counter()
            self.evicted = 0

        def session_count(self) -> int:
            return sum(len(by_id) for users in self.sessions.values() for by_id in users.values())

        @contextmanager
        def in_use(self, app_name: str, session_id: str | None) -> Iterator[None]:
            """Pin the conversation ``session_id`` (an A2A context id) while a turn runs."""
            key = (app_name, session_id or "")
            self._busy[key] += 1
            try:
                yield
            finally:
                self._busy[key] -= 1
                if self._busy[key] <= 0:
                    del self._busy[key]
                self._evict()

        def _touch(self, app_name: str, user_id: str, session_id: str) -> None:
            key = (app_name, user_id, session_id)
            self._lru[key] = time.monotonic()
            self._lru.move_to_end(key)

        def _evict(self) -> None:
            excess = len(self._lru) - self.max_sessions
            if excess <= 0:
                return
            hard = len(self._lru) - 2 * self.max_sessions  # beyond this, ignore the grace
            recent = time.monotonic() - self.grace_s
            for key, used in list(self._lru.items()):
                if excess <= 0:
                    break
                app_name, user_id, session_id = key
                if (app_name, session_id) in self._busy:
                    continue
                if used > recent and hard <= 0:
                    break  # the rest were used even more recently
                hard -= 1
                self._drop(app_name, user_id, session_id)
                self.evicted += 1
                excess -= 1

        def _drop(self, app_name: str, user_id: str, session_id: str) -> None:
            self._lru.pop((app_name, user_id, session_id), None)
            users = self.sessions.get(app_name, {})
            users.get(user_id, {}).pop(session_id, None)
            if user_id in users and not users[user_id]:
                del users[user_id]  # A2A gives each anonymous conversation its own user id
                self.user_state.get(app_name, {}).pop(user_id, None)

        async def create_session(
            self,
            *,
            app_name: str,
            user_id: str,
            state: dict[str, Any] | None = None,
            session_id: str | None = None,
        ) -> Any:
            session = await super().create_session(
                app_name=app_name, user_id=user_id, state=state, session_id=session_id
            )
            self._touch(app_name, user_id, session.id)
            self._evict()
            return session

        async def get_session(
            self, *, app_name: str, user_id: str, session_id: str, config: Any = None
        ) -> Any:
            session = await super().get_session(
                app_name=app_name, user_id=user_id, session_id=session_id, config=config
            )
            if session is not None:
                self._touch(app_name, user_id, session.id)
            return session

        async def append_event(self, session: Any, event: Any) -> Any:
            event = await super().append_event(session, event)
            if (session.app_name, session.user_id, session.id) in self._lru:
                self._touch(session.app_name, session.user_id, session.id)
            return event

        async def delete_session(self, *, app_name: str, user_id: str, session_id: str) -> None:
            await super().delete_session(app_name=app_name, user_id=user_id, session_id=session_id)
            self._drop(app_name, user_id, session_id.strip() if session_id else session_id)

    return BoundedSessionService


def bounded_session_service(max_sessions: int | None = None, grace_s: float | None = None) -> Any:
    """An ADK ``InMemorySessionService`` keeping about ``max_sessions`` sessions (at most twice)."""
    return _bounded_session_service_cls()(max_sessions, grace_s)


def _bounded_task_store_cls() -> type:
    from a2a.server.tasks import InMemoryTaskStore

    class BoundedTaskStore(InMemoryTaskStore):
        """a2a's in-memory task store keeping at most ``max_tasks`` finished tasks (oldest go first).

        Tasks still in progress are kept unless there are more than four times the cap of them.
        """

        def __init__(self, max_tasks: int | None = None) -> None:
            super().__init__()
            self.max_tasks = max_tasks or _env_int("MOCK_AGENTS_MAX_TASKS", DEFAULT_MAX_TASKS)
            self._order: OrderedDict[str, tuple[Any, bool]] = (
                OrderedDict()
            )  # task id -> (call context, finished)
            self.evicted = 0

        def task_count(self) -> int:
            return len(self._order)

        async def save(self, task: Any, context: Any) -> None:
            from a2a.types import TaskState

            await super().save(task, context)
            finished = TaskState.Name(task.status.state) in _TERMINAL_TASK_STATES
            self._order[task.id] = (context, finished)
            self._order.move_to_end(task.id)
            await self._evict()

        async def delete(self, task_id: str, context: Any) -> None:
            await super().delete(task_id, context)
            self._order.pop(task_id, None)

        async def _evict(self) -> None:
            excess = len(self._order) - self.max_tasks
            if excess <= 0:
                return
            victims = [tid for tid, (_, done) in self._order.items() if done][:excess]
            remaining = len(self._order) - len(victims)
            if (
                remaining > 4 * self.max_tasks
            ):  # tasks that never finish: drop the oldest of those too
                victims += [tid for tid, (_, done) in self._order.items() if not done][
                    : remaining - 4 * self.max_tasks
                ]
            for tid in victims:
                ctx, _ = self._order.pop(tid)
                await super().delete(tid, ctx)
                self.evicted += 1

    return BoundedTaskStore


def bounded_task_store(max_tasks: int | None = None) -> Any:
    """An a2a ``InMemoryTaskStore`` keeping at most ``max_tasks`` finished tasks."""
    return _bounded_task_store_cls()(max_tasks)


def _pinning_executor(runner: Any, sessions: Any, config: Any = None) -> Any:
    """ADK's A2A executor (with ``config``, default ADK's), pinning the conversation's session
    while a turn runs."""
    from google.adk.a2a.executor.a2a_agent_executor import A2aAgentExecutor

    class PinningExecutor(A2aAgentExecutor):
        async def execute(self, context: Any, event_queue: Any) -> None:
            with sessions.in_use(runner.app_name, context.context_id):
                await super().execute(context, event_queue)

    return PinningExecutor(runner=runner, config=config)


def _resolve(agents: list[str] | None) -> list[str]:
    from .agents import LLM_AGENT, agent_names

    available = agent_names()
    if not agents:
        return available
    unknown = [a for a in agents if a not in available and a != LLM_AGENT]
    if unknown:
        raise ValueError(
            f"unknown agent(s) {', '.join(unknown)}; available: {', '.join(available)}"
        )
    return list(dict.fromkeys(agents))


async def _agent_routes(
    name: str,
    base_url: str,
    max_sessions: int | None = None,
    max_tasks: int | None = None,
    session_grace_s: float | None = None,
) -> tuple[list[Any], Any, dict[str, Any]]:
    from a2a.server.request_handlers import DefaultRequestHandler
    from a2a.server.routes import create_agent_card_routes, create_jsonrpc_routes
    from google.adk.a2a.utils.agent_card_builder import AgentCardBuilder
    from google.adk.runners import Runner

    from .agents import build_agent, executor_config

    agent = build_agent(name)
    card = await AgentCardBuilder(
        agent=agent, rpc_url=f"{base_url}/{name}", agent_version=AGENT_VERSION
    ).build()
    sessions = bounded_session_service(max_sessions, session_grace_s)
    tasks = bounded_task_store(max_tasks)
    runner = Runner(app_name=name, agent=agent, session_service=sessions)
    handler = DefaultRequestHandler(
        agent_executor=_pinning_executor(runner, sessions, executor_config(name)),
        task_store=tasks,
        agent_card=card,
    )
    routes = [
        *create_agent_card_routes(card, card_url=f"/{name}{CARD_PATH}"),
        # no trailing slash: the card builder strips it from the advertised url
        *create_jsonrpc_routes(handler, f"/{name}", enable_v0_3_compat=True),
    ]
    return routes, card, {"sessions": sessions, "tasks": tasks}


async def create_app(
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    agents: list[str] | None = None,
    *,
    base_url: str | None = None,
    max_sessions: int | None = None,
    max_tasks: int | None = None,
    session_grace_s: float | None = None,
) -> Starlette:
    """The app serving ``agents`` (default: all); cards advertise ``base_url`` or http://host:port.

    ``max_sessions`` / ``max_tasks`` bound each agent's memory (default from
    ``MOCK_AGENTS_MAX_SESSIONS`` / ``MOCK_AGENTS_MAX_TASKS``, else 256 / 1024);
    ``session_grace_s`` (``MOCK_AGENTS_SESSION_GRACE_S``, default 30) spares recently used
    sessions until there are twice ``max_sessions``;
    ``app.state.stores[name]`` holds each agent's ``sessions`` and ``tasks``.
    """
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    names = _resolve(agents)
    base = (base_url or f"http://{host}:{port}").rstrip("/")
    routes: list[Any] = []
    listing = {}
    stores: dict[str, dict[str, Any]] = {}
    for name in names:
        try:
            agent_routes, card, stores[name] = await _agent_routes(
                name, base, max_sessions, max_tasks, session_grace_s
            )
        except RuntimeError as e:
            if agents:  # asked for by name: fail loudly
                raise
            logger.warning("not serving %s: %s", name, e)
            continue
        routes += agent_routes
        listing[name] = {
            "url": f"{base}/{name}",
            "card": f"{base}/{name}{CARD_PATH}",
            "description": card.description,
        }

    async def health(_: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "agents": sorted(listing)})

    async def stats(_: Request) -> JSONResponse:
        return JSONResponse(
            {
                name: {
                    "sessions": s["sessions"].session_count(),
                    "sessions_evicted": s["sessions"].evicted,
                    "max_sessions": s["sessions"].max_sessions,
                    "tasks": s["tasks"].task_count(),
                    "tasks_evicted": s["tasks"].evicted,
                    "max_tasks": s["tasks"].max_tasks,
                }
                for name, s in stores.items()
            }
        )

    async def index(_: Request) -> JSONResponse:
        return JSONResponse({"service": "incident-proctor mock agents", "agents": listing})

    routes += [
        Route("/health", health, methods=["GET"]),
        Route("/stats", stats, methods=["GET"]),
        Route("/", index, methods=["GET"]),
    ]
    app = Starlette(routes=routes)
    app.state.agents = listing
    app.state.stores = stores
    return app


def build_app(*args: Any, **kwargs: Any) -> Starlette:
    """Synchronous :func:`create_app` (same arguments); callable with or without a running
    event loop."""
    result: dict[str, Any] = {}

    def run() -> None:
        try:
            result["app"] = asyncio.run(create_app(*args, **kwargs))
        except BaseException as e:  # re-raised in the caller's thread
            result["error"] = e

    t = threading.Thread(target=run, name="mock-agents-build")
    t.start()
    t.join()
    if "error" in result:
        raise result["error"]
    return result["app"]


def bind(host: str, port: int) -> socket.socket:
    """A listening socket; port 0 picks a free one (read it back with ``getsockname()``)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # proto TCP: asyncio then sets TCP_NODELAY
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.setblocking(False)
    return sock


async def serve(
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    agents: list[str] | None = None,
    *,
    base_url: str | None = None,
    log_level: str = "warning",
) -> None:
    """Serve until cancelled or interrupted."""
    import uvicorn

    quiet_logs()
    sock = bind(host, port)
    port = sock.getsockname()[1]
    app = await create_app(host, port, agents, base_url=base_url)
    base = (base_url or f"http://{host}:{port}").rstrip("/")
    for name in app.state.agents:
        print(f"{name:16s} {base}/{name}   card: {base}/{name}{CARD_PATH}", flush=True)
    config = uvicorn.Config(app, log_level=log_level, access_log=False, lifespan="off")
    await uvicorn.Server(config).serve(sockets=[sock])
