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

from evaluator_agent.cli.demo import loopback_socket, serving

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

os.environ.setdefault("ADK_SUPPRESS_A2A_EXPERIMENTAL_FEATURE_WARNINGS", "1")
os.environ.setdefault("DD_TRACE_ENABLED", "false")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def bound_socket() -> socket.socket:
    return loopback_socket()


@asynccontextmanager
async def serve_app(make_app: Callable[[str], Any]) -> AsyncIterator[str]:
    """Start ``make_app(base_url)`` (sync or async) on uvicorn on a fresh loopback port; yields the base URL."""
    sock = loopback_socket()
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    app = make_app(base)
    if asyncio.iscoroutine(app):
        app = await app
    try:
        async with serving(app, sock):
            yield base
    finally:
        sock.close()
