"""The out-of-band surfaces as routes: the MCP server at ``/mcp`` and the Datadog REST facade at
``/datadog``, over one :class:`~evaluator_agent.engine.surfaces.SurfaceRegistry`.

``proctor serve`` mounts them beside its A2A routes (:func:`surface_routes`); ``proctor run
--surfaces`` serves them alone on a loopback port (:func:`serve_surfaces`), since a CLI run has
no server of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.routing import BaseRoute, Mount

from evaluator_agent.engine.surfaces import MCP, REST, SURFACES, SurfaceConfig, SurfaceRegistry

log = logging.getLogger(__name__)

MCP_PATH, REST_PATH = "/mcp", "/datadog"


class Surfaces:
    """The routes of the MCP and REST surfaces and the lifespan they need."""

    def __init__(self, registry: SurfaceRegistry):
        from evaluator_agent.service.mcp_surface import MCPSurface
        from evaluator_agent.service.rest_facade import rest_app

        self.registry = registry
        self.mcp = MCPSurface(registry)
        self.routes: list[BaseRoute] = [*self.mcp.routes(MCP_PATH), Mount(REST_PATH, app=rest_app(registry))]

    @contextlib.asynccontextmanager
    async def lifespan(self) -> AsyncIterator[None]:
        async with self.mcp.lifespan():
            yield

    def config(self, base_url: str) -> SurfaceConfig:
        return SurfaceConfig(self.registry, base_url, frozenset(SURFACES))


@contextlib.asynccontextmanager
async def serve_surfaces(host: str = "127.0.0.1", port: int = 0, public_url: str | None = None) -> AsyncIterator[SurfaceConfig]:
    """Serve the surfaces alone (uvicorn, in this event loop) for the block; yields their config.
    ``port`` 0 picks a free port; ``public_url`` is what briefings name (default http://host:port)."""
    import socket

    import uvicorn

    surfaces = Surfaces(SurfaceRegistry())

    @contextlib.asynccontextmanager
    async def lifespan(_: Any) -> AsyncIterator[None]:
        async with surfaces.lifespan():
            yield

    app = Starlette(routes=surfaces.routes, lifespan=lifespan)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # proto TCP: asyncio sets TCP_NODELAY
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))  # bound here, so the port is known before uvicorn listens
    config = uvicorn.Config(app, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()  # raises why it could not start
            raise RuntimeError("the surfaces server stopped before it started")
        await asyncio.sleep(0.02)
    bound = sock.getsockname()[1]
    try:
        yield surfaces.config(public_url or f"http://{host}:{bound}")
    finally:
        server.should_exit = True
        await task


__all__ = ["MCP", "MCP_PATH", "REST", "REST_PATH", "Surfaces", "serve_surfaces"]
