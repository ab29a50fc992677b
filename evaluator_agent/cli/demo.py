"""``proctor demo``: the whole path on loopback in one process; and the one door to the
reference agents.

This is the only module of the product that imports :mod:`mock_agents` (a test holds it to
that): the demo serves the ADK mock agents, and :func:`reference_roster` hands calibration and
the shortcut battery the in-process reference policies.

Starts the ADK mock agents and the proctor's A2A server on free 127.0.0.1 ports, sends the
proctor one A2A evaluation request per mock agent (the same request any client would
send), follows the streamed progress, and prints the result tables.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from evaluator_agent.engine.local import Roster


def reference_roster() -> Roster:
    """The mock agents' in-process roster: reference agents, shortcut policies, tier pool."""
    from mock_agents.inprocess import ROSTER

    return ROSTER


def loopback_socket() -> socket.socket:
    """A socket bound to a free 127.0.0.1 port (not listening yet: uvicorn does that).

    Made with ``proto=IPPROTO_TCP`` and ``TCP_NODELAY``: asyncio disables Nagle only on sockets
    whose ``proto`` says TCP, and accepted sockets inherit the listener's; with ``proto=0`` every
    response after a connection's first waited ~40 ms for a delayed ACK (bench_surfaces.py)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    return s


@asynccontextmanager
async def serving(app: Any, sock: socket.socket) -> AsyncIterator[None]:
    """Run an ASGI app on uvicorn over an already bound socket for the duration of the block."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, log_level="error", access_log=False, lifespan="on", timeout_graceful_shutdown=2))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    try:
        yield
    finally:
        server.should_exit = True
        try:
            await asyncio.wait_for(task, 15)
        except (TimeoutError, asyncio.CancelledError):
            task.cancel()


async def _demo(agents: list[str], labelset: str, db: str, attempts: int) -> int:
    from evaluator_agent.core.logs import quiet_logs
    from evaluator_agent.results.text import result_text, table
    from evaluator_agent.service.client import ProctorTaskFailed, call_proctor
    from evaluator_agent.service.server import create_app
    from mock_agents.server import create_app as create_mock_app

    quiet_logs()
    mock_sock, proctor_sock = loopback_socket(), loopback_socket()
    mock_base = f"http://127.0.0.1:{mock_sock.getsockname()[1]}"
    proctor_base = f"http://127.0.0.1:{proctor_sock.getsockname()[1]}"
    mock_app = await create_mock_app(agents=agents, base_url=mock_base)
    proctor_app = create_app(db, public_url=proctor_base)
    print(f"mock agents on {mock_base} ({', '.join(agents)}); proctor on {proctor_base}; results in {db}\n")
    summaries = []
    async with serving(mock_app, mock_sock), serving(proctor_app, proctor_sock):
        for name in agents:
            card = f"{mock_base}/{name}/.well-known/agent-card.json"
            t0 = time.monotonic()

            def progress(p: dict[str, Any], name: str = name) -> None:
                if "done" in p and "total" in p:
                    line = f"  {name:15s} {int(p['done'])}/{int(p['total'])} done, {int(p.get('passed', 0))} passed"
                    if sys.stderr.isatty():
                        sys.stderr.write("\r" + line)
                        sys.stderr.flush()
                    elif p["done"] == p["total"]:
                        print(line, file=sys.stderr)

            try:
                result = await call_proctor(proctor_base, {"target": card, "labelset": labelset, "attempts": attempts},
                                            on_progress=progress)
            except ProctorTaskFailed as e:
                print(f"\nproctor demo: evaluation of {name} failed: {e}", file=sys.stderr)
                return 1
            if sys.stderr.isatty():
                sys.stderr.write("\n")
            print(result_text(result) + "\n")
            s = result["summary"]
            summaries.append([name, f"{s['pass_rate']:.0%}", f"{s['ac_at_1']:.0%}", f"{s['mechanism_accuracy']:.0%}",
                              f"{s['mean_score']:.3f}", int(s["n"]), int(s["errors"]),
                              f"{time.monotonic() - t0:.1f}", result["run_id"]])
    print(table(["agent", "pass rate", "AC@1", "mechanism", "mean score", "n", "infra errors", "secs", "run"], summaries))
    print(f"\nInspect later with: proctor runs --db {db}   /   proctor show RUN --db {db}")
    return 0


def run_demo(agents: list[str], labelset: str = "smoke", db: str = "proctor.db", attempts: int = 1) -> int:
    os.environ.setdefault("ADK_SUPPRESS_A2A_EXPERIMENTAL_FEATURE_WARNINGS", "1")
    logging.basicConfig(level=logging.WARNING)
    try:
        return asyncio.run(_demo(agents, labelset, db, attempts))
    except KeyboardInterrupt:
        return 1
