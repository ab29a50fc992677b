"""Serve the mock agents over A2A, all on one Starlette app.

Agent ``NAME`` answers JSON-RPC at ``{base}/NAME`` (A2A 1.0, with the 0.3 method names
accepted too) and publishes its card at ``{base}/NAME/.well-known/agent-card.json``.
``/health`` and ``/`` list the agents.

Cards are built eagerly (ADK's card builder is async), so the app is complete before it
serves its first request: it works under uvicorn and in-process under ``httpx.ASGITransport``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
from typing import TYPE_CHECKING, Any

os.environ.setdefault("ADK_SUPPRESS_A2A_EXPERIMENTAL_FEATURE_WARNINGS", "1")

if TYPE_CHECKING:
    from starlette.applications import Starlette

logger = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 9100
CARD_PATH = "/.well-known/agent-card.json"
AGENT_VERSION = "0.1.0"


def quiet_logs(level: int = logging.WARNING) -> None:
    for name in ("google_adk", "google.adk", "a2a", "httpx", "uvicorn.access"):
        logging.getLogger(name).setLevel(level)


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


async def _agent_routes(name: str, base_url: str) -> tuple[list[Any], Any]:
    from a2a.server.request_handlers import DefaultRequestHandler
    from a2a.server.routes import create_agent_card_routes, create_jsonrpc_routes
    from a2a.server.tasks import InMemoryTaskStore
    from google.adk.a2a.executor.a2a_agent_executor import A2aAgentExecutor
    from google.adk.a2a.utils.agent_card_builder import AgentCardBuilder
    from google.adk.runners import Runner
    from google.adk.sessions import InMemorySessionService

    from .agents import build_agent

    agent = build_agent(name)
    card = await AgentCardBuilder(
        agent=agent, rpc_url=f"{base_url}/{name}", agent_version=AGENT_VERSION
    ).build()
    runner = Runner(app_name=name, agent=agent, session_service=InMemorySessionService())
    handler = DefaultRequestHandler(
        agent_executor=A2aAgentExecutor(runner=runner),
        task_store=InMemoryTaskStore(),
        agent_card=card,
    )
    routes = [
        *create_agent_card_routes(card, card_url=f"/{name}{CARD_PATH}"),
        # no trailing slash: the card builder strips it from the advertised url
        *create_jsonrpc_routes(handler, f"/{name}", enable_v0_3_compat=True),
    ]
    return routes, card


async def create_app(
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    agents: list[str] | None = None,
    *,
    base_url: str | None = None,
) -> Starlette:
    """The app serving ``agents`` (default: all); cards advertise ``base_url`` or http://host:port."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    names = _resolve(agents)
    base = (base_url or f"http://{host}:{port}").rstrip("/")
    routes: list[Any] = []
    listing = {}
    for name in names:
        try:
            agent_routes, card = await _agent_routes(name, base)
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

    async def index(_: Request) -> JSONResponse:
        return JSONResponse({"service": "incident-proctor mock agents", "agents": listing})

    routes += [Route("/health", health, methods=["GET"]), Route("/", index, methods=["GET"])]
    app = Starlette(routes=routes)
    app.state.agents = listing
    return app


def build_app(
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    agents: list[str] | None = None,
    *,
    base_url: str | None = None,
) -> Starlette:
    """Synchronous :func:`create_app`; callable with or without a running event loop."""
    result: dict[str, Any] = {}

    def run() -> None:
        try:
            result["app"] = asyncio.run(create_app(host, port, agents, base_url=base_url))
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
    sock = socket.socket(family, socket.SOCK_STREAM)
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
