"""``methodical_mcp``: the ``methodical`` policy investigating through the proctor's MCP surface.

The briefing (issue 13) may hand the target an MCP server for this investigation only:
``surfaces.mcp = {"url", "transport": "streamable-http", "headers": {"DD-API-KEY": token,
"DD-APPLICATION-KEY": token}}``, with the telemetry tools under Datadog's MCP tool names. This
agent uses it the way an ADK agent wired to Datadog's MCP server would: through ADK's
``McpToolset`` (Streamable HTTP), with the policy as its offline "LLM".

One A2A turn holds many model steps. Each step the policy (the same object as ``methodical``'s)
reads the investigation rebuilt from ``llm_request.contents`` and decides its next in-band calls
as before; :class:`McpPolicyModel` answers with them as function calls of the MCP tools
(:func:`mock_agents.mcp_adapter.to_mcp`), ADK runs them over MCP, and the next step reads the
answers back as in-band results (:func:`mock_agents.mcp_adapter.in_band_result`), so the
policy's :class:`~mock_agents.transcript.Transcript` looks as it does in-band. The diagnosis
is the model's final text, sent as the A2A reply as today. Each model step counts as one reply
of the policy's budget (``max_turns``), so the policy asks for no more calls than in-band
(``max_turns x max_calls_per_turn``, which is also the surface's budget).

Calls stay in-band (a ``{"tool_calls": [...]}`` reply over A2A, answered in the next message)
when the tool has no MCP counterpart (``aggregate_logs``), when the briefing names no MCP
server, or when the server cannot be reached (its tools do not list): a batch with any such call
is sent in-band first, the rest of it goes over MCP on the next turn. When the briefing offers
no in-band calls (``in_band_tools: false``), the policy is offered only the tools MCP reaches,
so it does without ``aggregate_logs``.

ADK wiring (google-adk 2.13, mcp 2.3):

* The URL and headers differ per investigation. ``before_agent_callback``
  (:func:`remember_surface`) copies ``surfaces.mcp`` of the briefing into the ADK session's
  state; :class:`BriefedMcpToolset` (the agent's one toolset) keeps one ``McpToolset`` per
  conversation, created from that state on the conversation's first ``get_tools`` with the
  headers in its ``StreamableHTTPConnectionParams``, closed when the model sends the
  diagnosis (``after_model_callback``), and at most ``MOCK_AGENTS_MAX_SESSIONS`` (256) of
  them open (least recently used closed first). No state when there is no surface: no tools,
  in-band calls.
* ``GOOGLE_API_USE_CLIENT_CERTIFICATE`` defaults to ``false`` here: otherwise ADK's MCP
  session manager probes Google mTLS credentials (``google.auth.default``) for every new
  toolset, and logs a warning each time it finds none.
"""

from __future__ import annotations

import json
import logging
import os
from collections import OrderedDict
from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING, Any

from google.adk.models.llm_request import LlmRequest
from google.adk.models.llm_response import LlmResponse
from google.adk.tools.base_toolset import BaseToolset
from google.genai import types

from evaluator_agent.core.envvars import env_int

from .mcp_adapter import IN_BAND_OF, MCP_TOOL_OF, from_mcp, in_band_result, to_mcp
from .model import PolicyModel, policy_response
from .policies import get_policy
from .policy import safe_reply
from .transcript import Transcript, own_reply, proctor_message

if TYPE_CHECKING:
    from google.adk.agents import LlmAgent
    from google.adk.agents.callback_context import CallbackContext
    from google.adk.agents.readonly_context import ReadonlyContext
    from google.adk.tools.base_tool import BaseTool

logger = logging.getLogger(__name__)

STATE_KEY = "proctor_mcp_surface"
DEFAULT_MAX_TOOLSETS = 256
CONNECT_TIMEOUT_S = 10.0
READ_TIMEOUT_S = 60.0
TOOL_LIST_TTL_S = 900.0
MAX_HEADERS = 16
MAX_HEADER_CHARS = 1024
MAX_URL_CHARS = 2048


# --------------------------------------------------------------------------- the briefing's surface


def surface_of(message: dict[str, Any] | None) -> dict[str, Any] | None:
    """``{"url", "headers"}`` of the MCP surface a briefing offers; None when it offers none
    (or names one this agent cannot use: not Streamable HTTP over http(s), odd headers)."""
    if not isinstance(message, dict):
        return None
    mcp = (message.get("surfaces") or {}).get("mcp") if isinstance(message.get("surfaces"), dict) else None
    if not isinstance(mcp, dict):
        return None
    url, headers = mcp.get("url"), mcp.get("headers") or {}
    if mcp.get("transport", "streamable-http") != "streamable-http" or not isinstance(url, str):
        return None
    if not url.startswith(("http://", "https://")) or len(url) > MAX_URL_CHARS:
        return None
    if not isinstance(headers, dict) or len(headers) > MAX_HEADERS:
        return None
    clean = {str(k): str(v) for k, v in headers.items() if isinstance(v, str | int | float)}
    if any(len(k) + len(v) > MAX_HEADER_CHARS for k, v in clean.items()):
        return None
    return {"url": url, "headers": clean}


def remember_surface(callback_context: CallbackContext) -> None:
    """``before_agent_callback``: a briefing's MCP surface (or its absence) into session state."""
    message = proctor_message(callback_context.user_content)
    if isinstance(message, dict) and message.get("type") == "briefing":
        callback_context.state[STATE_KEY] = surface_of(message)


# --------------------------------------------------------------------------- the toolset


class BriefedMcpToolset(BaseToolset):
    """The MCP tools of each conversation's own server: one ADK ``McpToolset`` per conversation
    (ADK session), built from the surface :func:`remember_surface` stored. No surface, or a
    server whose tools do not list: no tools (the model then calls in-band)."""

    def __init__(self, max_toolsets: int | None = None) -> None:
        super().__init__()
        self.max_toolsets = max_toolsets or env_int("MOCK_AGENTS_MAX_SESSIONS", DEFAULT_MAX_TOOLSETS)
        self._open: OrderedDict[str, tuple[dict[str, Any], Any]] = OrderedDict()

    def open_count(self) -> int:
        return len(self._open)

    async def get_tools(self, readonly_context: ReadonlyContext | None = None) -> list[BaseTool]:
        if readonly_context is None:
            return []
        surface = readonly_context.state.get(STATE_KEY)
        if not isinstance(surface, dict) or not surface.get("url"):
            return []
        toolset = await self._toolset(readonly_context.session.id, surface)
        try:
            tools = await toolset.get_tools(readonly_context)
        except Exception as e:  # noqa: BLE001 - an unreachable server means in-band calls
            logger.warning("MCP server %s did not list its tools (%s): calling in-band", surface["url"][:200],
                           f"{type(e).__name__}: {e}"[:300])
            await self.release(readonly_context.session.id)
            return []
        return [t for t in tools if t.name in IN_BAND_OF]

    async def _toolset(self, key: str, surface: dict[str, Any]) -> Any:
        from google.adk.tools.mcp_tool import McpToolset, StreamableHTTPConnectionParams

        held = self._open.get(key)
        if held is not None and held[0] == surface:
            self._open.move_to_end(key)
            return held[1]
        await self.release(key)
        toolset = McpToolset(
            connection_params=StreamableHTTPConnectionParams(
                url=surface["url"], headers=dict(surface["headers"]), timeout=CONNECT_TIMEOUT_S,
                sse_read_timeout=READ_TIMEOUT_S,
            ),
            tool_list_cache_ttl_seconds=TOOL_LIST_TTL_S,
        )
        self._open[key] = (surface, toolset)
        while len(self._open) > self.max_toolsets:
            await self.release(next(iter(self._open)))
        return toolset

    async def release(self, key: str) -> None:
        """Close the conversation's MCP connection (it is opened again when needed)."""
        held = self._open.pop(key, None)
        if held is not None:
            await held[1].close()  # never raises (ADK logs cleanup errors)

    async def close(self) -> None:
        for key in list(self._open):
            await self.release(key)


# --------------------------------------------------------------------------- the model


def transcript_of(contents: list[Any], mcp_tools: set[str] | frozenset[str] = frozenset()) -> Transcript:
    """The investigation from the policy's side, from ADK's ``llm_request.contents``: proctor
    messages and our replies as in :meth:`Transcript.from_contents`, plus the MCP steps: our
    function calls read as in-band tool calls, their answers as in-band tool results. A briefing
    that offers no in-band calls (``in_band_tools: false``) offers the policy the tools it can
    reach over MCP (those of ``mcp_tools``) only."""
    messages: list[tuple[str, dict[str, Any] | None]] = []
    asked: dict[str, tuple[str, dict[str, Any]]] = {}  # function call id -> (MCP tool, arguments)
    for content in contents or []:
        parts = getattr(content, "parts", None) or []
        if getattr(content, "role", None) == "model":
            fcs = [p.function_call for p in parts if getattr(p, "function_call", None)]
            if not fcs:
                messages.append(("model", own_reply(content)))
                continue
            calls = []
            for fc in fcs:
                args = dict(fc.args or {})
                asked[fc.id or ""] = (fc.name or "", args)
                name, in_band_args = from_mcp(fc.name or "", args)
                calls.append({"id": fc.id or "", "name": name, "arguments": in_band_args})
            messages.append(("model", {"tool_calls": calls}))
            continue
        frs = [p.function_response for p in parts if getattr(p, "function_response", None)]
        if frs:
            results = []
            for fr in frs:
                name, args = asked.get(fr.id or "", (fr.name or "", {}))
                results.append(in_band_result(fr.id or "", name, args, fr.response))
            messages.append(("user", {"type": "tool_results", "tool_results": results}))
            continue
        msg = proctor_message(content)
        if msg is not None:
            messages.append(("user", _reachable(msg, mcp_tools)))
    return Transcript.from_messages(messages)


def _reachable(msg: dict[str, Any], mcp_tools: set[str] | frozenset[str]) -> dict[str, Any]:
    if msg.get("type") != "briefing" or msg.get("in_band_tools", True) is not False or not mcp_tools:
        return msg
    tools = [t for t in msg.get("tools") or [] if isinstance(t, dict) and MCP_TOOL_OF.get(t.get("name")) in mcp_tools]
    return {**msg, "tools": tools}


def next_parts(reply: dict[str, Any], mcp_tools: set[str]) -> list[types.Part]:
    """The model's answer to the policy's ``reply``: function calls of the MCP tools when every
    call of the batch has one among ``mcp_tools``; else the reply as JSON text (the diagnosis,
    or the batch's in-band calls alone: the rest is asked again over MCP next turn)."""
    calls = reply.get("tool_calls")
    if calls:
        mcp = [m for c in calls if (m := to_mcp(c)) is not None and m.name in mcp_tools]
        if len(mcp) < len(calls):
            in_band = [c for c in calls if (m := to_mcp(c)) is None or m.name not in mcp_tools]
            reply = {"tool_calls": in_band}
        else:
            return [types.Part(function_call=types.FunctionCall(id=m.id, name=m.name, args=m.arguments))
                    for m in mcp]
    return [types.Part(text=json.dumps(reply, separators=(",", ":"), default=str))]


class McpPolicyModel(PolicyModel):
    """A :class:`~mock_agents.model.PolicyModel` whose policy calls the MCP tools it is given."""

    async def generate_content_async(
        self, llm_request: LlmRequest, stream: bool = False
    ) -> AsyncGenerator[LlmResponse, None]:
        mcp_tools = set(llm_request.tools_dict)
        reply = safe_reply(get_policy(self.policy), transcript_of(llm_request.contents, mcp_tools))
        parts = next_parts(reply, mcp_tools)
        yield policy_response(parts, llm_request.contents)


def _is_diagnosis(response: LlmResponse) -> bool:
    content = response.content
    if content is None or any(p.function_call for p in content.parts or []):
        return False
    return "diagnosis" in (own_reply(content) or {})


# --------------------------------------------------------------------------- the agent


def build_mcp_agent(name: str, policy_name: str, instruction: str) -> LlmAgent:
    """The ADK agent ``name``: policy ``policy_name`` calling its tools over MCP."""
    from google.adk.agents import LlmAgent

    policy = get_policy(policy_name)
    os.environ.setdefault("GOOGLE_API_USE_CLIENT_CERTIFICATE", "false")
    toolset = BriefedMcpToolset()

    async def release_at_diagnosis(callback_context: CallbackContext, llm_response: LlmResponse) -> None:
        if _is_diagnosis(llm_response):
            await toolset.release(callback_context.session.id)

    return LlmAgent(
        name=name,
        model=McpPolicyModel(model=f"policy-mcp/{policy.name}", policy=policy.name),
        description=(
            f"Mock SRE agent ({name}): the {policy.name} policy, calling the telemetry tools over the "
            "MCP server the briefing names (surfaces.mcp; ADK McpToolset, Datadog's tool names). Falls "
            "back to in-band tool calls without surfaces.mcp, and for tools MCP lacks (aggregate_logs)."
        ),
        instruction=instruction,
        tools=[toolset],
        before_agent_callback=remember_surface,
        after_model_callback=release_at_diagnosis,
    )


def a2a_executor_config() -> Any:
    """ADK's A2A executor config for the MCP agents: the model steps that call MCP tools (function
    calls and their answers) stay off the A2A stream, so the reply holds the answer only.

    Without it ADK publishes every step as a ``working`` status update, a2a-sdk's task store
    keeps each in the task's history, and a blocking ``SendMessage`` answers with the whole
    history: every MCP result of the turn (over 1 MB for a methodical investigation)."""
    from google.adk.a2a.executor.config import A2aAgentExecutorConfig, ExecuteInterceptor

    async def drop_tool_steps(_: Any, a2a_event: Any, adk_event: Any) -> Any:
        if adk_event.get_function_calls() or adk_event.get_function_responses():
            return None
        return a2a_event

    return A2aAgentExecutorConfig(execute_interceptors=[ExecuteInterceptor(after_event=drop_tool_steps)])
