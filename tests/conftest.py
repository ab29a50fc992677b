"""Shared fixtures: real uvicorn servers on 127.0.0.1, no network beyond loopback."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

os.environ.setdefault("ADK_SUPPRESS_A2A_EXPERIMENTAL_FEATURE_WARNINGS", "1")
os.environ.setdefault("DD_TRACE_ENABLED", "false")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def bound_socket() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    return s


@asynccontextmanager
async def serve_app(make_app: Callable[[str], Any]) -> AsyncIterator[str]:
    """Start ``make_app(base_url)`` on uvicorn on a fresh loopback port; yields the base URL."""
    import uvicorn

    sock = bound_socket()
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    app = make_app(base)
    if asyncio.iscoroutine(app):
        app = await app
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on", timeout_graceful_shutdown=2))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    for _ in range(500):
        if server.started:
            break
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    try:
        yield base
    finally:
        server.should_exit = True
        try:
            await asyncio.wait_for(task, 10)
        except (TimeoutError, asyncio.CancelledError):
            task.cancel()
        sock.close()
