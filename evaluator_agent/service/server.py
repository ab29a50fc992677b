"""The proctor as an A2A server (a2a-sdk 1.x): JSON-RPC at ``/``, REST under ``/v1``,
agent card at ``/.well-known/agent-card.json``, health at ``/health``.

Skills, chosen by the request object's ``action`` (default ``evaluate``):

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
import json
import logging
import os
from collections.abc import Iterable
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from evaluator_agent import __version__
from evaluator_agent.core.envvars import env_int as _env_int
from evaluator_agent.core.labels import LabelError, available_labelsets, load_labelset
from evaluator_agent.core.protocol import json_object_in
from evaluator_agent.datadog import observability
from evaluator_agent.engine import heap
from evaluator_agent.engine.fairshare import FairLimiter
from evaluator_agent.engine.request import RequestError, parse_request
from evaluator_agent.results import disclosure
from evaluator_agent.results.store import Store
from evaluator_agent.service.guard import DEFAULT_MAX_BODY_BYTES, Guard, parse_api_keys

log = logging.getLogger(__name__)

REST_PREFIX = "/v1"
DEFAULT_MAX_EVALUATIONS = 4
# Investigations in flight across all evaluations: one request may ask for concurrency 128.
DEFAULT_MAX_INVESTIGATIONS = 64
# a skill id of the card -> the action it is (the short names are the documented actions)
SKILL_ACTIONS = {"evaluate_agent": "evaluate", "compare_runs": "compare"}
DEFAULT_WORK_LOOPS = 8  # threads that run investigations: one per API key principal, up to this many
BUSY_RETRY_AFTER_S = 30
SHUTDOWN_RETRY_AFTER_S = 10
SHUTTING_DOWN = ("shutting down: this proctor is draining and takes no new evaluations; retry shortly",
                 {"code": "shutting_down", "retry_after_s": SHUTDOWN_RETRY_AFTER_S})
BEARER_SCHEME = "bearer"


def build_card(public_url: str, *, bearer: bool = False) -> Any:
    """The agent card; ``bearer=True`` advertises that the A2A routes need an HTTP bearer token."""
    from a2a.types import (
        AgentCapabilities,
        AgentCard,
        AgentInterface,
        AgentSkill,
        HTTPAuthSecurityScheme,
        SecurityRequirement,
        SecurityScheme,
        StringList,
    )

    base = public_url.rstrip("/")
    security: dict[str, Any] = {}
    if bearer:
        security = {
            "security_schemes": {BEARER_SCHEME: SecurityScheme(http_auth_security_scheme=HTTPAuthSecurityScheme(
                scheme="Bearer", description="API key issued by the proctor's operator: 'Authorization: Bearer <key>'"))},
            "security_requirements": [SecurityRequirement(schemes={BEARER_SCHEME: StringList()})],
        }
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
        **security,
    )


_V03_SCHEME_TYPES = {
    "httpAuthSecurityScheme": "http", "apiKeySecurityScheme": "apiKey", "oauth2SecurityScheme": "oauth2",
    "openIdConnectSecurityScheme": "openIdConnect", "mtlsSecurityScheme": "mutualTLS",
}  # fmt: skip


def card_json(card: Any) -> dict[str, Any]:
    """The agent card as served: the A2A 1.x card, plus the fields an A2A 0.3 client reads
    (top-level ``url``, ``protocolVersion``, ``preferredTransport``, ``additionalInterfaces``,
    ``security``, and each security scheme's 0.3 fields beside its 1.x wrapper). 1.x clients
    ignore the additions, so one card serves both."""
    from a2a.server.request_handlers.response_helpers import agent_card_to_dict

    d = agent_card_to_dict(card)
    ifaces = d.get("supportedInterfaces") or []
    main = next((i for i in ifaces if i.get("protocolBinding") == "JSONRPC"), ifaces[0] if ifaces else None)
    if main is not None:
        d["url"] = main["url"]
        d["preferredTransport"] = main.get("protocolBinding", "JSONRPC")
        d["protocolVersion"] = "0.3.0"
        d["additionalInterfaces"] = [{"url": i["url"], "transport": i.get("protocolBinding")} for i in ifaces]
    schemes = d.get("securitySchemes") or {}
    for name, scheme in list(schemes.items()):
        kind, body = next(iter(scheme.items()), (None, None))
        if kind in _V03_SCHEME_TYPES and isinstance(body, dict):
            # both shapes side by side: 1.x clients read the wrapper, 0.3 clients the flat fields
            schemes[name] = {**scheme, "type": _V03_SCHEME_TYPES[kind], **body}
    reqs = d.get("securityRequirements") or []
    if reqs:
        d["security"] = [{n: list((v or {}).get("list", [])) for n, v in (r.get("schemes") or {}).items()} for r in reqs]
    return d


def _principal(context: Any) -> str | None:
    """The API key's principal the guard authenticated, or None without keys."""
    user = getattr(getattr(context, "call_context", None), "user", None)
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    return str(user.user_name) or None


USAGE = (
    "I am incident-proctor: I evaluate incident-investigation agents by replaying production "
    "incidents to them over A2A and scoring their diagnoses. Send me a JSON object (a DataPart, "
    'or JSON in a text part): {"target": "<agent card URL>", "labelset": "smoke"} evaluates an '
    'agent; {"action": "list_labelsets"} lists the label sets; {"action": "get_run", "run_id": '
    '"run_..."} returns a stored run; {"action": "compare", "base": "run_...", "new": "run_..."} '
    "compares two runs. My agent card lists these skills with examples."
)


def _says_hello(message: Any) -> bool:
    """Plain text with no attempt at JSON in it (no brace): a greeting or a question."""
    if message is None:
        return False
    texts = [p.text for p in message.parts if p.HasField("text")]
    return bool(texts) and not any(p.HasField("data") for p in message.parts) and not any("{" in t for t in texts)


def _request_object(message: Any) -> dict[str, Any] | None:
    return None if message is None else json_object_in(message.parts)


def labelsets_info() -> list[dict[str, Any]]:
    out = []
    for name in available_labelsets():
        try:
            ls = load_labelset(name)
            out.append({"name": name, "labels": len(ls.labels), "hash": ls.content_hash, "description": ls.info.description,
                        "private": ls.info.private})
        except LabelError as e:
            out.append({"name": name, "error": str(e)})
    return out


class ProctorExecutor:
    """AgentExecutor that runs evaluations (subclassed lazily from a2a's ABC in create_app)."""

    def __init__(self, store: Store, state: dict[str, Any]):
        self.store = store
        # Shared with create_app and run_server: "work" loops (one per principal, each with its own
        # http client for targets), "worlds" cache (shared by those loops), "stop" event (set on
        # shutdown), "max_evaluations", "active" (evaluations in flight), "idle" (set when none),
        # "running" (their execute tasks, cancelled when the drain time is up).
        self.state = state

    async def execute(self, context: Any, event_queue: Any) -> None:
        from a2a.helpers import new_data_part, new_task_from_user_message, new_text_part
        from a2a.server.tasks import TaskUpdater

        task = context.current_task
        if task is None:
            task = new_task_from_user_message(context.message)
            await event_queue.enqueue_event(task)
        up = TaskUpdater(event_queue, task.id, task.context_id)

        async def fail(text: str, extra: dict[str, Any] | None = None) -> None:
            await up.failed(up.new_agent_message([new_text_part(text), new_data_part({"error": text, **(extra or {})})]))

        owner = _principal(context)
        obj = _request_object(context.message)
        if obj is None:
            if _says_hello(context.message):  # a person or a chat agent saying hello: tell it how
                await up.add_artifact([new_text_part(USAGE)], name="usage", last_chunk=True)
                await up.complete()
                return
            await fail("no request found: send a JSON object (DataPart, or JSON in a TextPart) such as "
                       '{"target": "<agent card URL>", "labelset": "smoke"}')
            return
        asked = obj.pop("action", "evaluate")
        # the card's skill ids name the same actions (evaluate_agent, compare_runs): either is accepted
        action = SKILL_ACTIONS.get(asked, asked) if isinstance(asked, str) else asked
        if action == "list_labelsets":
            info = labelsets_info()
            await up.add_artifact([new_text_part(", ".join(i["name"] for i in info)), new_data_part({"labelsets": info})], name="labelsets", last_chunk=True)
            await up.complete()
            return
        if action == "get_run":
            await self._get_run(obj, up, fail, owner)
            return
        if action == "compare":
            await self._compare(obj, up, fail, owner)
            return
        if action != "evaluate":
            await fail(f"unknown action {str(asked)[:80]!r}; expected evaluate, list_labelsets, get_run or compare "
                       "(or a skill id of the card: evaluate_agent, compare_runs)")
            return
        await self._evaluate(obj, up, fail, owner)

    def _find_run(self, run_id: Any, owner: str | None) -> dict[str, Any] | None:
        """A stored run the caller may see: its own, or one no API key created (CLI runs, jobs).
        Another key's run is "not found", exactly as a run that does not exist."""
        run = self.store.find_run(run_id) if isinstance(run_id, str) and run_id else None
        if run is None:
            return None
        run_owner = (run.get("manifest") or {}).get("owner")
        return run if run_owner is None or run_owner == owner else None

    async def _get_run(self, obj: dict[str, Any], up: Any, fail: Any, owner: str | None) -> None:
        from a2a.helpers import new_data_part, new_text_part

        from evaluator_agent.engine.orchestrator import build_result
        from evaluator_agent.results.text import result_text

        run_id = obj.get("run_id")
        run = self._find_run(run_id, owner)
        if run is None:
            await fail(f"no run {run_id!r} in this proctor's store")
            return
        result = disclosure.disclose_result(build_result(self.store, run["run_id"]), self.state["disclosure"])
        await up.add_artifact([new_text_part(result_text(result)), new_data_part(result)], name="result", last_chunk=True)
        await up.complete()

    async def _compare(self, obj: dict[str, Any], up: Any, fail: Any, owner: str | None) -> None:
        from a2a.helpers import new_data_part, new_text_part

        from evaluator_agent.results.analysis import AnalysisError, compare_stored
        from evaluator_agent.results.html import render_compare_markdown

        base, new = obj.get("base"), obj.get("new")
        if not (isinstance(base, str) and isinstance(new, str)):
            await fail('compare needs "base" and "new" run ids')
            return
        for run_id in (base, new):
            if self._find_run(run_id, owner) is None:
                await fail(f"no run {run_id!r} in this proctor's store")
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
        private = any(disclosure.run_private(self.store.find_run(cmp[side]["run_id"])) for side in ("base", "new"))
        cmp = disclosure.disclose_compare(cmp, disclosure.effective(self.state["disclosure"], private))
        await up.add_artifact([new_text_part(render_compare_markdown(cmp)), new_data_part(cmp)], name="comparison", last_chunk=True)
        await up.complete()

    async def _evaluate(self, obj: dict[str, Any], up: Any, fail: Any, owner: str | None = None) -> None:
        """Admission control around one evaluation: refused while shutting down or at the cap; the
        in-flight count is released on every path (errors and cancellation included)."""
        from evaluator_agent.engine.orchestrator import select_labels

        st = self.state
        if st["stop"].is_set():
            await fail(*SHUTTING_DOWN)
            return
        try:  # a bad request is told so even when the proctor is busy (the target is checked later)
            req = parse_request(obj)
            select_labels(req)
        except RequestError as e:
            await fail(str(e))
            return
        limit = st["max_evaluations"]
        if st["active"] >= limit:
            await fail(f"busy: {st['active']} evaluations in progress (limit {limit}); retry later",
                       {"code": "busy", "retry_after_s": BUSY_RETRY_AFTER_S})
            return
        st["active"] += 1
        st["idle"].clear()
        try:
            await self._run_evaluation(req, up, fail, owner)
        finally:
            st["active"] -= 1
            if st["active"] <= 0:
                st["idle"].set()

    async def _run_evaluation(self, req: Any, up: Any, fail: Any, owner: str | None = None) -> None:
        from a2a.helpers import new_data_part, new_text_part
        from a2a.types import TaskState

        from evaluator_agent.engine.orchestrator import RunInterrupted, execute, new_run_id, prepare
        from evaluator_agent.results.text import result_text

        try:
            work = self.state["work"].for_principal(owner)  # each client's investigations on a loop of its own

            async def prepared() -> Any:  # on the work loop, with its client: the target is used there
                return await prepare(req, work.resources)

            prep = await work.run(prepared())
        except RequestError as e:
            await fail(str(e))
            return
        if self.state["stop"].is_set():  # shutdown began while the target was being resolved
            await fail(*SHUTTING_DOWN)
            return
        run_id = req.run_id or new_run_id()
        total = len(prep.labels) * req.attempts
        await up.update_status(
            TaskState.TASK_STATE_WORKING,
            up.new_agent_message([new_text_part(f"evaluating {prep.target.info.name}: {total} investigations (run {run_id})"),
                                  new_data_part({"run_id": run_id, "done": 0, "total": total, "passed": 0})]),
        )

        async def progress(done: int, total_: int, passed: int, last: Any) -> None:
            await up.update_status(
                TaskState.TASK_STATE_WORKING,
                up.new_agent_message([
                    new_text_part(f"{done}/{total_} done, {passed} passed"),
                    new_data_part({"run_id": run_id, "done": done, "total": total_, "passed": passed,
                                   "last": {"label_id": last.label_id, "attempt": last.attempt, "passed": last.passed,
                                            "end_reason": last.end_reason}}),
                ]),
            )

        def interrupted(done: int, total_: int) -> tuple[str, dict[str, Any]]:
            text = (f"interrupted by shutdown after {done}/{total_} investigations; "
                    f"send the same request with run_id={run_id} to finish it")
            return text, {"code": "interrupted", "run_id": run_id, "done": done, "total": total_}

        # execute runs as its own task so a shutdown can cancel it without cancelling this one:
        # this task still reports the interruption to the client.
        inner = asyncio.create_task(execute(prep, self.store, run_id=run_id, worlds=self.state["worlds"],
                                            on_progress=progress, stop=self.state["stop"], disclosure_policy=self.state["disclosure"],
                                            limiter=self.state["investigations"], owner=owner,
                                            work_loop=work))
        self.state["running"].add(inner)
        try:
            await asyncio.wait([inner])
        except asyncio.CancelledError:  # the A2A task itself was cancelled: stop the run, record it
            inner.cancel()
            await asyncio.wait([inner], timeout=5)
            raise
        finally:
            self.state["running"].discard(inner)
        if inner.cancelled():
            await fail(*interrupted(len(self.store.recorded(run_id)), total))
            return
        err = inner.exception()
        if isinstance(err, RunInterrupted):
            await fail(*interrupted(err.done, err.total))
            return
        if isinstance(err, RequestError):  # e.g. a run id taken by another request or caller
            await fail(str(err), {"run_id": run_id})
            return
        if err is not None:  # report, keep the server up; stored results stay
            log.error("evaluation %s failed", run_id, exc_info=err)
            await fail(f"evaluation failed: {type(err).__name__}: {err}", {"run_id": run_id})
            return
        result = disclosure.disclose_result(inner.result(), self.state["disclosure"])
        await up.add_artifact([new_text_part(result_text(result)), new_data_part(result)], name="result", last_chunk=True)
        await up.complete()

    async def cancel(self, context: Any, event_queue: Any) -> None:
        from a2a.server.tasks import TaskUpdater

        task = context.current_task
        if task is not None:
            await TaskUpdater(event_queue, task.id, task.context_id).cancel()


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
    from a2a.server.agent_execution import AgentExecutor
    from a2a.server.request_handlers import DefaultRequestHandler
    from a2a.server.routes import (
        create_jsonrpc_routes,
        create_rest_routes,
    )

    from evaluator_agent.engine.investigation import WorldCache
    from evaluator_agent.engine.target import AGENT_CARD_PATH, make_http_client
    from evaluator_agent.engine.workloop import WorkLoops
    from evaluator_agent.service.taskstore import DEFAULT_MAX_FINISHED, BoundedTaskStore

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
    idle = asyncio.Event()
    idle.set()
    state: dict[str, Any] = {
        # investigations (and the target clients they use) run on a loop of their own: workloop.py
        "work": WorkLoops(_env_int("PROCTOR_WORK_LOOPS", DEFAULT_WORK_LOOPS), resources=make_http_client, close=_aclose),
        "worlds": WorldCache(), "stop": asyncio.Event(),
        "disclosure": policy, "max_evaluations": max_evaluations, "investigations": FairLimiter(max_investigations), "active": 0, "idle": idle, "running": set(),
    }

    executor_cls = type("_ProctorExecutor", (ProctorExecutor, AgentExecutor), {})
    executor = executor_cls(store, state)
    # finished tasks beyond the most recent ones are evicted (their results stay in SQLite)
    tasks = BoundedTaskStore(_env_int("PROCTOR_MAX_FINISHED_TASKS", DEFAULT_MAX_FINISHED))
    handler = DefaultRequestHandler(agent_executor=executor, task_store=tasks, agent_card=card)

    async def health(_: Request) -> JSONResponse:
        draining = state["stop"].is_set()
        return JSONResponse({"status": "draining" if draining else "ok", "version": __version__,
                             "evaluations": state["active"]}, status_code=503 if draining else 200)

    @asynccontextmanager
    async def lifespan(_: Starlette):
        yield
        await observability.aclose()
        await state["work"].aclose()
        store.close()

    served_card = card_json(card)

    async def agent_card(_: Request) -> JSONResponse:
        return JSONResponse(served_card)

    card_routes = [Route(AGENT_CARD_PATH, agent_card, methods=["GET"])]
    routes = [
        Route("/health", health, methods=["GET"]),
        *card_routes,
        *create_jsonrpc_routes(handler, "/", enable_v0_3_compat=True),
        *create_rest_routes(handler, path_prefix=REST_PREFIX, enable_v0_3_compat=True),
    ]
    guard = Middleware(
        Guard, api_keys=keys, max_body_bytes=max_body_bytes, jsonrpc_paths={"/"},
        open_paths={"/health", *(r.path for r in card_routes)},
    )
    app = Starlette(routes=routes, lifespan=lifespan, middleware=[guard])
    app.state.store = store
    app.state.proctor = state
    heap.settle()  # modules and schemas live for the process: out of the collector's sight (heap.py)
    return app


# ----------------------------------------------------------------------------- graceful shutdown


async def drain(state: dict[str, Any], drain_s: float, *, cancel_grace_s: float = 1.0) -> None:
    """Stop taking evaluations and let those in flight finish for up to ``drain_s`` seconds; then
    cancel what still runs and give it ``cancel_grace_s`` to record its finished investigations,
    mark its run interrupted and report that to its client."""
    state["stop"].set()
    if state["active"] == 0:
        return
    log.warning("shutdown: draining %d evaluation(s), up to %.1fs", state["active"], drain_s)
    try:
        await asyncio.wait_for(state["idle"].wait(), drain_s)
        return
    except TimeoutError:
        pass
    running = list(state["running"])
    log.warning("shutdown: drain time is up, cancelling %d evaluation(s)", len(running))
    for task in running:
        task.cancel()
    try:
        await asyncio.wait_for(state["idle"].wait(), cancel_grace_s)
    except TimeoutError:
        log.error("shutdown: %d evaluation(s) did not stop in time", state["active"])


def _make_draining_server(uvicorn: Any) -> type:
    class DrainingServer(uvicorn.Server):
        """uvicorn.Server whose first SIGTERM/SIGINT drains evaluations before the usual shutdown."""

        def __init__(self, config: Any, *, state: dict[str, Any] | None, drain_s: float):
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
            for task in list(self.proctor_state["running"]):  # type: ignore[index]
                task.cancel()

        def _start_drain(self, sig: int, frame: Any) -> None:
            self._drain_task = asyncio.get_running_loop().create_task(self._drain_then_exit(sig, frame))

        async def _drain_then_exit(self, sig: int, frame: Any) -> None:
            try:
                await drain(self.proctor_state, self.drain_s)  # type: ignore[arg-type]
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
