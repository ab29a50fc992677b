"""The MCP surface: an investigation's telemetry tools over MCP (Streamable HTTP), with the tool
names, argument names and result shapes of Datadog's own remote MCP server
(``https://mcp.datadoghq.com``), so that a target wired to Datadog's MCP server works unchanged.

Serving. :class:`MCPSurface` builds an ``MCPServer`` (official ``mcp`` SDK 2.x) in stateless
Streamable HTTP mode with JSON responses: no per-client session state, nothing that grows with
the number of clients. ``surface.app`` is path-agnostic (it hands every request to the SDK's
session manager, bypassing the SDK's own router, so mounting does not shift the SDK's
``streamable_http_path``): ``Route("/mcp", surface.app)`` in a Starlette app answers at exactly
``<base>/mcp``; ``Mount("/mcp", app=surface.app)`` alone answers ``<base>/mcp/`` and Starlette
307-redirects ``/mcp`` there (``surface.routes("/mcp")`` gives both). The host app's lifespan
must enter ``surface.lifespan()`` (it runs the SDK's session manager); before that, requests get
503. Request bodies are capped at ``max_request_body_size`` (64 KiB: HTTP 413 above it). The SDK's
DNS-rebinding protection (on by default for a 127.0.0.1 host) is off: every request must carry
a secret credential anyway, and a public deployment's Host header is not loopback.

Authentication. The credential is the investigation's token from the ``DD-API-KEY`` /
``DD-APPLICATION-KEY`` headers (or ``Authorization: Bearer``), read with ``credential_of``.
It is checked twice:

- at the HTTP layer, before the SDK sees the request (so an unauthenticated client cannot even
  list tools): no credential -> HTTP 401 ``{"errors": ["Unauthorized"]}``; an unknown or closed
  credential, or one whose evaluation does not offer MCP -> HTTP 403 ``{"errors": ["Forbidden"]}``
  (Datadog's answer to a bad key);
- per tool call, through ``SurfaceRegistry.resolve`` and ``SurfaceSession.call``: a session closed
  meanwhile, or a used-up budget, gives a tool error (``isError``) whose text is
  ``{"errors": [message], "status": 403|429}``.

Every tool call is ONE in-band call ``session.call("mcp", in_band_tool, in_band_arguments)``:
recorded as a tool call of the investigation (surface "mcp"), counted against its budget,
answered by the same tool code as in-band. Arguments that fail the published schema (or cannot
be translated) are a tool error with status 400 and never reach the world: not recorded, not
counted. A failed in-band call (``ok=False``: bad query, unknown service, ...) is recorded and
counted, and comes back as a tool error with status 400 and the in-band message.

Results are JSON text (one ``TextContent``), as Datadog's server answers in text: no
``structuredContent`` and no ``outputSchema``, which would double every payload and make every
client validate it (bench_surfaces.py: the official client's added p95 went from 8 to 5 ms). Every record of the in-band answer
is there, in a Datadog API shape; logs, spans, events, metric series and monitors are shaped by
the REST facade's functions (``rest_shapes.py``), so they read the same on both surfaces (a
log's id too). Paging uses the in-band opaque cursor: pass ``meta.page.after`` (monitors:
``metadata.page.after``; absent on the last page) as ``cursor``. ``meta`` (monitors:
``metadata``) also holds ``elapsed``, ``status``, the in-band count (``total_matched`` or
``total``/``total_count``) and ``warnings`` (the in-band warning, a page cut to size).

Tools (Datadog name, arguments, in-band tool). Every tool also accepts ``telemetry``
({"intent": ...}, which Datadog's server asks for) and ``max_tokens`` (size caps are the in-band
ones; a cut result says so in ``meta.warnings``); both are ignored. Times (``from``/``to``)
are ISO 8601, epoch seconds or milliseconds (a number above 1e11 is milliseconds), or
``now-15m``-style, relative to the world's now; default window: the hour before ``to``.

====================================  ===========================================  ========================
Datadog tool                          arguments                                    in-band tool
====================================  ===========================================  ========================
search_datadog_logs                   query, from, to, limit, cursor, sort         search_logs
get_datadog_metric                    queries=[q] (or query=q), from, to           query_metrics
search_datadog_metrics                query, name_filter, tag_filter, limit,       list_metrics
                                      cursor (query = the three joined)
get_datadog_metric_context            metric (query: the name, its last            list_metrics
                                      character as ?; limit 500)
search_datadog_spans                  query, from, to, limit, cursor               search_spans
get_datadog_trace                     trace_id                                     get_trace
search_datadog_monitors               query, limit, cursor                         get_monitors
search_datadog_events                 query, from, to, limit, cursor               get_events
search_datadog_services               query, limit, cursor                         list_services
search_datadog_service_dependencies   service, direction, depth                    get_service_dependencies
====================================  ===========================================  ========================

Result shapes:

- logs (v2 ``LogsListResponse``): ``{"data": [{"id", "type": "log", "attributes": {"timestamp",
  "service", "host", "status", "message", "tags": ["service:..", "host:..", "env:..",
  "version:.."], "attributes": {...the log's attributes, "trace_id" when correlated}}}],
  "meta"}``. The world gives logs no id: ``id`` is a stable hash of the record.
- metric (v1 ``/api/v1/query``, ``MetricsQueryResponse``): ``{"status": "ok", "res_type":
  "time_series", "query", "from_date", "to_date" (ms), "group_by", "series": [{"metric",
  "display_name", "scope", "tag_set", "aggr", "expression", "interval", "length", "start", "end",
  "pointlist": [[ms, value|null]], "query_index": 0, "unit": null}], "message": warnings}``.
- metrics search: ``{"data": [{"id": metric, "type": "metrics", "attributes": {"metric_type",
  "tag_keys", "tags": ["key:value", ...]}}], "meta"}``; metric context: the one item whose name
  equals ``metric``, as ``{"data": {...}, "meta"}`` (none: error 404).
- spans (v2 ``Span``): ``{"data": [{"id": span_id, "type": "spans", "attributes": {"service",
  "resource_name", "trace_id", "span_id", "parent_id" ("0" for a root), "start_timestamp",
  "end_timestamp", "env", "tags": ["k:v"], "custom": {tags}, "attributes": {"operation_name",
  "duration" (seconds), "status": "ok"|"error"}}}], "meta"}``; trace: ``{"data": {"id": trace_id,
  "type": "trace", "attributes": {"trace_id", "root_span_id", "services", "span_count", "spans":
  [span items, root first, with attributes.attributes.depth]}}, "meta"}``.
- monitors (v1 monitor search): ``{"monitors": [{v1 Monitor: "id", "name", "type", "query",
  "message", "tags", "overall_state", "priority", "state": {"groups": {"*": {last transition
  times}}}, plus "status" and "state_transitions": [{"timestamp", "ts", "from", "to",
  "value"}]}], "metadata"}``.
- events (v2 ``EventResponse``): ``{"data": [{"id", "type": "event", "attributes": {"timestamp",
  "message", "tags", "attributes": {"title", "timestamp" (ms), "source_type_name", "evt", ...}}}],
  "meta"}``; services: ``{"data": [{"id": name, "type": "service", "attributes": {name, kind,
  team, platform, cluster, tier, language, description}}], "meta"}``; dependencies: ``{"data":
  {"id": service, "type": "service_dependencies", "attributes": {"service", "calls": [{"service",
  "protocol", "depth"}], "called_by": [...]}}, "meta"}``.

Choices where Datadog's public description is silent or where this world differs: query syntax
is the in-band one (Datadog-compatible; span durations in seconds in queries); one metric query
per call (``queries`` with more than one query is refused, asking for one call per query, since
each MCP call is one in-band call); ``get_datadog_metric_context`` lists tag values up to 20 per
key; ``search_datadog_service_dependencies`` takes ``service`` only (Datadog's ``team`` variant:
use ``search_datadog_services`` with ``team:<t>``). No log aggregation tool: Datadog's
``analyze_datadog_logs`` takes SQL, which has no faithful mapping onto ``aggregate_logs``; counts
come from ``meta.total_matched``. Datadog's other arguments (``extra_fields``, ``storage_tier``,
``use_cloud_cost``, ``start_at``, ...) are refused as unknown, naming the allowed ones.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio.to_thread
import orjson
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.tools import Tool
from mcp.server.mcpserver.utilities.func_metadata import ArgModelBase, FuncMetadata
from mcp.server.transport_security import TransportSecuritySettings
from mcp_types import CallToolResult, TextContent
from pydantic import ConfigDict
from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Mount, Route

from evaluator_agent.engine.surfaces import (
    MCP,
    SurfaceError,
    SurfaceRegistry,
    SurfaceSession,
    credential_of,
)
from evaluator_agent.service.mcp_tools import (
    DATADOG_TOOLS,
    TOOL_MAP,
    DatadogTool,
    ToolArgumentError,
    ToolResultError,
)

__all__ = ["MAX_REQUEST_BODY_BYTES", "TOOL_MAP", "MCPSurface"]

log = logging.getLogger(__name__)

MAX_REQUEST_BODY_BYTES = 64 * 1024
INSTRUCTIONS = (
    "Datadog-compatible tools over one incident's telemetry. Times are relative to the incident's "
    "'now' (nothing exists after it). Query syntax is Datadog's. Every call counts against the "
    "investigation's budget of tool calls."
)


class _RawArguments(ArgModelBase):
    """Hands the tool its arguments untouched (keys such as ``from`` are not Python names);
    they are validated against the published JSON Schema by :meth:`DatadogTool.check`."""

    model_config = ConfigDict(extra="allow", arbitrary_types_allowed=True)

    def model_dump_one_level(self) -> dict[str, Any]:
        return {"arguments": dict(self.__pydantic_extra__ or {})}


def _error(status: int, message: str) -> CallToolResult:
    body = {"errors": [message], "status": status}
    return CallToolResult(content=[TextContent(type="text", text=json.dumps(body))], is_error=True)


def _result(body: dict[str, Any]) -> CallToolResult:
    text = orjson.dumps(body, default=str, option=orjson.OPT_NON_STR_KEYS).decode()  # the hot path: 3-5x json
    return CallToolResult(content=[TextContent(type="text", text=text)])


class MCPSurface:
    """The MCP server of a proctor process: Datadog's tools over the registry's sessions."""

    def __init__(self, registry: SurfaceRegistry, *, max_request_body_size: int = MAX_REQUEST_BODY_BYTES):
        self.registry = registry
        self.max_request_body_size = max_request_body_size
        self._manager: Any = None  # the running session manager, while lifespan() is entered
        root = logging.getLogger()  # MCPServer() calls logging.basicConfig: the host owns logging
        saved = (root.level, list(root.handlers))
        try:
            self.server = MCPServer("datadog", instructions=INSTRUCTIONS, tools=[self._tool(t) for t in DATADOG_TOOLS],
                                    log_level="WARNING")
        finally:
            root.setLevel(saved[0])
            root.handlers[:] = saved[1]
        self.app = _AuthenticatedApp(self)

    def _tool(self, spec: DatadogTool) -> Tool:
        async def call(arguments: dict[str, Any], ctx: Context) -> CallToolResult:
            return await self._call(spec, arguments, ctx)

        return Tool(fn=call, name=spec.name, description=spec.description, parameters=spec.parameters,
                    fn_metadata=FuncMetadata(arg_model=_RawArguments),
                    is_async=True, context_kwarg="ctx")

    def session_of(self, headers: Any) -> SurfaceSession | None:
        """The open session a request's credential names, or None."""
        return self.registry.resolve(credential_of(headers)) if headers is not None else None

    async def _call(self, spec: DatadogTool, arguments: dict[str, Any], ctx: Context) -> CallToolResult:
        """One tool call: authenticate, translate, ONE recorded in-band call, translate back. Never raises."""
        try:
            session = self.session_of(ctx.headers)
            if session is None:
                return _error(403, "Forbidden")
            try:
                args = spec.check(arguments)
                in_band = spec.to_in_band(args)
            except ToolArgumentError as e:
                return _error(400, str(e))
            t0 = time.perf_counter()
            try:  # the tool code is synchronous (and records under a lock): off the event loop
                outcome = await anyio.to_thread.run_sync(session.call, MCP, spec.in_band, in_band)
            except SurfaceError as e:
                return _error(e.status, str(e))
            if not outcome.ok:
                return _error(400, outcome.error or "the tool call failed")
            try:
                return _result(spec.to_datadog(outcome.content, args, (time.perf_counter() - t0) * 1000))
            except ToolResultError as e:
                return _error(404, str(e))
        except Exception:  # noqa: BLE001 - a bug of ours is an error answer, not a crash
            log.exception("MCP tool %s failed", spec.name)
            return _error(500, "internal error")

    def _new_manager(self) -> Any:
        """A fresh session manager (one can run only once)."""
        self.server.streamable_http_app(
            streamable_http_path="/", stateless_http=True, json_response=True,
            max_request_body_size=self.max_request_body_size,
            transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
        )
        return self.server.session_manager

    @asynccontextmanager
    async def lifespan(self) -> AsyncIterator[None]:
        """Run the SDK's session manager; the host app's lifespan enters this."""
        manager = self._new_manager()
        async with manager.run():
            self._manager = manager
            try:
                yield
            finally:
                self._manager = None

    def routes(self, path: str = "/mcp") -> list[BaseRoute]:
        """Routes that answer at exactly ``path`` and under ``path/``."""
        return [Route(path, self.app), Mount(path, app=self.app)]


class _AuthenticatedApp:
    """The ASGI app: refuses requests without an open credential (401/403), then hands the
    request to the SDK's session manager (which caps the body: 413)."""

    def __init__(self, surface: MCPSurface):
        self.surface = surface

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
            return
        headers = Headers(scope=scope)
        if not credential_of(headers):
            await JSONResponse({"errors": ["Unauthorized"]}, status_code=401,
                               headers={"WWW-Authenticate": 'Bearer realm="mcp"'})(scope, receive, send)
            return
        session = self.surface.session_of(headers)
        if session is None or MCP not in session.offered:
            await JSONResponse({"errors": ["Forbidden"]}, status_code=403)(scope, receive, send)
            return
        manager = self.surface._manager
        if manager is None:
            await JSONResponse({"errors": ["the MCP surface is not running"]}, status_code=503)(scope, receive, send)
            return
        await manager.handle_request(scope, receive, send)
