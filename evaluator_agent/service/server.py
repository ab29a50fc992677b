"""The proctor as an A2A server (a2a-sdk 1.x): JSON-RPC at ``/``, REST under ``/v1``,
agent card at ``/.well-known/agent-card.json``, health at ``/health``.

Skills (card.py), chosen by the request object's ``action`` (default ``evaluate``; executor.py):

    evaluate        {"target": URL, "labelset": ..., ...} or the AgentBeats shape; streams progress,
                    ends with one artifact named "result" (TextPart summary + DataPart result)
    list_labelsets  {"action": "list_labelsets"}
    get_run         {"action": "get_run", "run_id": "run_..."}
    compare         {"action": "compare", "base": "run_...", "new": "run_...", "margin": 0.05}

A bad request ends its task as failed with a message naming the problem; the server stays up.

Hardening for a public endpoint (see guard.py for the HTTP side):

- API keys (``api_keys=`` / $PROCTOR_API_KEYS, comma-separated; none = open): bearer token on
  every route but the agent card and /health; the card then advertises an HTTP bearer scheme.
- Body cap (``max_body_bytes=`` / $PROCTOR_MAX_BODY_BYTES, default 1 MiB): HTTP 413.
- Malformed / non-UTF-8 JSON -> JSON-RPC -32700; nesting deeper than guard.MAX_JSON_DEPTH -> -32600.
- At most ``max_evaluations`` (/ $PROCTOR_MAX_EVALUATIONS, default 4) evaluations at once; one
  more is refused at once with a "busy" failure (data code "busy", retry_after_s). Other actions
  are never refused. Across all of them at most ``max_investigations`` (/
  $PROCTOR_MAX_INVESTIGATIONS, default 64) investigations are in flight; the rest wait their turn,
  and a freed slot goes to the evaluation holding the fewest (:mod:`.fairshare`), so one client
  asking for high concurrency cannot make another's small evaluation wait behind its queue.
- Disclosure (``disclosure=`` / $PROCTOR_DISCLOSURE, default ``scores``; see disclosure.py): what
  the result artifact, ``get_run`` and ``compare`` reveal. Under ``scores`` nothing derived from
  the ground truth (explanations, truth-taxonomy breakdowns) leaves the server; a private label
  set is ``scores`` whatever the setting.
- Graceful shutdown (:func:`run_server`): on SIGTERM/SIGINT new evaluations are refused
  ("shutting down"), investigations in flight get ``drain_s`` seconds to finish and be recorded,
  what still runs is cancelled; each interrupted run is marked so in the store and its task fails
  naming the run id to resume with.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Iterable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from evaluator_agent import __version__
from evaluator_agent.core.envvars import env_int as _env_int
from evaluator_agent.datadog import observability
from evaluator_agent.engine import heap
from evaluator_agent.engine.fairshare import FairLimiter
from evaluator_agent.engine.lifecycle import Lifecycle
from evaluator_agent.results import disclosure
from evaluator_agent.results.store import Store
from evaluator_agent.service.card import REST_PREFIX, build_card, card_json
from evaluator_agent.service.guard import DEFAULT_MAX_BODY_BYTES, Guard, parse_api_keys

if TYPE_CHECKING:
    from evaluator_agent.service.executor import ServerState

log = logging.getLogger(__name__)

DEFAULT_MAX_EVALUATIONS = 4
# Investigations in flight across all evaluations: one request may ask for concurrency 128.
DEFAULT_MAX_INVESTIGATIONS = 64
DEFAULT_WORK_LOOPS = 8  # threads that run investigations: one per API key principal, up to this many


async def _aclose(client: Any) -> None:
    await client.aclose()


def create_app(
    db_path: str = "proctor.db",
    public_url: str | None = None,
    *,
    api_keys: str | Iterable[str] | None = None,
    max_body_bytes: int | None = None,
    max_evaluations: int | None = None,
    max_investigations: int | None = None,
    checkpoint: str | None = None,
    disclosure_policy: str | None = None,
) -> Starlette:
    """The ASGI app. ``public_url`` is what the card advertises (default $PROCTOR_PUBLIC_URL or loopback).

    ``api_keys`` (default $PROCTOR_API_KEYS, comma-separated; empty = open), ``max_body_bytes``
    (default $PROCTOR_MAX_BODY_BYTES or 1 MiB) and ``max_evaluations`` (default
    $PROCTOR_MAX_EVALUATIONS or 4): see the module docstring. ``checkpoint``: a durable copy of
    the database (see :class:`Store`), restored on a fresh instance. ``disclosure_policy``
    (default $PROCTOR_DISCLOSURE, else ``scores``): what results reveal (disclosure.py)."""
    from a2a.server.request_handlers import DefaultRequestHandler
    from a2a.server.routes import (
        create_jsonrpc_routes,
        create_rest_routes,
    )

    from evaluator_agent.engine.surfaces import SurfaceRegistry
    from evaluator_agent.engine.transport import AGENT_CARD_PATH, make_http_client
    from evaluator_agent.engine.workloop import WorkLoops
    from evaluator_agent.engine.worlds import WorldCache
    from evaluator_agent.service.executor import ProctorExecutor, ServerState
    from evaluator_agent.service.surfaces_app import MCP_PATH, REST_PATH, Surfaces
    from evaluator_agent.service.taskstore import DEFAULT_MAX_FINISHED, BoundedTaskStore
    from evaluator_agent.web.app import UI_PATH, UIConfig, ui_app

    keys = parse_api_keys(os.environ.get("PROCTOR_API_KEYS") if api_keys is None else api_keys)
    if max_body_bytes is None:
        max_body_bytes = _env_int("PROCTOR_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES)
    if max_evaluations is None:
        max_evaluations = _env_int("PROCTOR_MAX_EVALUATIONS", DEFAULT_MAX_EVALUATIONS)
    if max_investigations is None:
        max_investigations = _env_int("PROCTOR_MAX_INVESTIGATIONS", DEFAULT_MAX_INVESTIGATIONS)
    policy = disclosure.resolve(disclosure_policy, default=disclosure.SERVER_DEFAULT)  # ValueError when unknown
    if max_body_bytes < 1 or max_evaluations < 1 or max_investigations < 1:
        raise ValueError("max_body_bytes, max_evaluations and max_investigations must be >= 1")

    public_url = public_url or os.environ.get("PROCTOR_PUBLIC_URL") or "http://127.0.0.1:8080"
    card = build_card(public_url, bearer=bool(keys))
    store = Store(db_path, checkpoint=checkpoint)
    surfaces = Surfaces(SurfaceRegistry())  # the same tools over MCP and a Datadog REST facade
    state = ServerState(
        store=store,
        life=Lifecycle(max_evaluations),
        # investigations (and the target clients they use) run on a loop of their own: workloop.py
        work=WorkLoops(_env_int("PROCTOR_WORK_LOOPS", DEFAULT_WORK_LOOPS), resources=make_http_client, close=_aclose),
        worlds=WorldCache(),
        investigations=FairLimiter(max_investigations),
        disclosure=policy,
        surfaces=surfaces.config(public_url),
    )
    executor = ProctorExecutor(state)
    # finished tasks beyond the most recent ones are evicted (their results stay in SQLite)
    tasks = BoundedTaskStore(_env_int("PROCTOR_MAX_FINISHED_TASKS", DEFAULT_MAX_FINISHED))
    handler = DefaultRequestHandler(agent_executor=executor, task_store=tasks, agent_card=card)

    async def health(_: Request) -> JSONResponse:
        draining = state.life.draining
        return JSONResponse({"status": "draining" if draining else "ok", "version": __version__,
                             "evaluations": state.life.active}, status_code=503 if draining else 200)

    @asynccontextmanager
    async def lifespan(_: Starlette):
        async with surfaces.lifespan():
            yield
        await observability.aclose()
        await state.work.aclose()
        store.close()

    served_card = card_json(card)

    async def agent_card(_: Request) -> JSONResponse:
        return JSONResponse(served_card)

    card_routes = [Route(AGENT_CARD_PATH, agent_card, methods=["GET"])]
    routes = [
        Route("/health", health, methods=["GET"]),
        *card_routes,
        # before the A2A routes: the REST binding's patterns would take /ui/... for themselves
        Mount(UI_PATH, app=ui_app(store, api_keys=keys, config=UIConfig(disclosure=policy))),
        *create_jsonrpc_routes(handler, "/", enable_v0_3_compat=True),
        *create_rest_routes(handler, path_prefix=REST_PREFIX, enable_v0_3_compat=True),
        *surfaces.routes,
    ]
    guard = Middleware(
        Guard, api_keys=keys, max_body_bytes=max_body_bytes, jsonrpc_paths={"/"},
        open_paths={"/health", *(r.path for r in card_routes)},
        # MCP and REST: each call carries its investigation's own credential; the UI signs in with a cookie
        open_prefixes=(MCP_PATH, REST_PATH, UI_PATH), form_prefixes=(UI_PATH,),
    )
    app = Starlette(routes=routes, lifespan=lifespan, middleware=[guard])
    app.state.store = store
    app.state.proctor = state
    heap.settle()  # modules and schemas live for the process: out of the collector's sight (heap.py)
    return app


# ----------------------------------------------------------------------------- graceful shutdown


def _make_draining_server(uvicorn: Any) -> type:
    class DrainingServer(uvicorn.Server):
        """uvicorn.Server whose first SIGTERM/SIGINT drains evaluations before the usual shutdown."""

        def __init__(self, config: Any, *, state: ServerState | None, drain_s: float):
            super().__init__(config)
            self.proctor_state = state
            self.drain_s = drain_s
            self._loop: asyncio.AbstractEventLoop | None = None
            self._signals = 0
            self._drain_task: asyncio.Task[None] | None = None

        async def startup(self, sockets: Any = None) -> None:
            self._loop = asyncio.get_running_loop()
            await super().startup(sockets=sockets)

        def handle_exit(self, sig: int, frame: Any) -> None:
            # Runs as a signal handler: touch the loop only through call_soon_threadsafe.
            if self.should_exit or self._loop is None or self.proctor_state is None or self._signals >= 2:
                super().handle_exit(sig, frame)  # a third signal: uvicorn's own (forced) exit
                return
            self._signals += 1
            if self._signals == 1:
                self._loop.call_soon_threadsafe(self._start_drain, sig, frame)
            else:  # a second signal: stop waiting, cancel the evaluations now (they still record)
                self._loop.call_soon_threadsafe(self._cancel_evaluations)

        def _cancel_evaluations(self) -> None:
            self.proctor_state.life.cancel_running()  # type: ignore[union-attr]

        def _start_drain(self, sig: int, frame: Any) -> None:
            self._drain_task = asyncio.get_running_loop().create_task(self._drain_then_exit(sig, frame))

        async def _drain_then_exit(self, sig: int, frame: Any) -> None:
            try:
                await self.proctor_state.life.drain(self.drain_s)  # type: ignore[union-attr]
            finally:
                super().handle_exit(sig, frame)

    return DrainingServer


def run_server(app: Any, host: str, port: int, *, log_level: str = "warning", drain_s: float = 8.0,
               **uvicorn_kwargs: Any) -> None:
    """Serve ``app`` on uvicorn until SIGTERM/SIGINT, then shut down gracefully: new evaluations are
    refused, those in flight get ``drain_s`` seconds (Cloud Run allows 10 s after SIGTERM), the rest
    are cancelled (and get up to 1 s to record that) and reported as interrupted; then uvicorn's own
    shutdown (open responses get ``timeout_graceful_shutdown``, default 1 s here). Worst case from
    signal to exit: ``drain_s`` + 2 s. A second signal cancels the evaluations at once (they are
    still recorded as interrupted); a third is uvicorn's usual forced exit.
    ``uvicorn_kwargs`` go to ``uvicorn.Config``."""
    import uvicorn

    uvicorn_kwargs.setdefault("timeout_graceful_shutdown", 1)
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, **uvicorn_kwargs)
    state = getattr(getattr(app, "state", None), "proctor", None)
    server = _make_draining_server(uvicorn)(config, state=state, drain_s=drain_s)
    server.run()
