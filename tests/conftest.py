"""Shared fixtures: real uvicorn servers on 127.0.0.1, no network beyond loopback."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
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


@contextmanager
def serving_in_thread(app: Any) -> Iterator[str]:
    """Serve an ASGI app on a loopback port from a thread with its own event loop; yields its base
    URL. For servers that synchronous clients (or code running inline on the test's own loop) call."""
    sock = loopback_socket()
    ready, stop, failed = threading.Event(), threading.Event(), []

    async def run() -> None:
        async with serving(app, sock):
            ready.set()
            while not stop.is_set():
                await asyncio.sleep(0.02)

    def main() -> None:
        try:
            asyncio.run(run())
        except BaseException as e:  # noqa: BLE001 - reported to the caller
            failed.append(e)
            ready.set()

    thread = threading.Thread(target=main, name="test-server", daemon=True)
    thread.start()
    assert ready.wait(30) and not failed, failed
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(30)
        sock.close()

