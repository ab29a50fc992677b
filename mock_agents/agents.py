"""The mock SRE agents: ADK ``LlmAgent``s whose model is an offline policy (or, optionally, a real LLM).

None of them has ADK tools: the telemetry tools live on the proctor's side and are called
through the investigation protocol (the agent replies with ``tool_calls`` JSON and gets
``tool_results`` back in the next message). The exception is ``methodical_mcp``
(:mod:`mock_agents.mcp_agent`): the same policy, calling the tools over the MCP server the
briefing names, through ADK's ``McpToolset``.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from google.adk.agents import LlmAgent

LLM_AGENT = "llm"
LLM_MODEL_ENV = "PROCTOR_MOCK_LLM_MODEL"
#: agents calling the tools over MCP (:mod:`mock_agents.mcp_agent`, imported only when built)
#: -> the policy each runs
MCP_AGENTS: dict[str, str] = {"methodical_mcp": "methodical"}

POLICY_INSTRUCTION = "Offline policy model; the instruction is not read."

LLM_INSTRUCTION = """\
You are an autonomous SRE agent investigating a production incident for an evaluation harness
(protocol incident-proctor/1). You have no tools of your own: the harness runs the telemetry
tools for you.

The first message is a briefing: the page (monitor, time), the current time in the replayed
world, the tools you may ask for (name, description, JSON Schema of the arguments), your
budget (replies allowed, calls per reply) and the mechanisms you may name.

Every reply of yours must be exactly one JSON object and nothing else, either
  {"tool_calls": [{"id": "c1", "name": "<tool>", "arguments": {...}}, ...]}
to have tools run (several calls per reply are allowed, up to the budget; ids must be unique
across the investigation), or, to finish,
  {"diagnosis": {"no_fault": false,
                 "root_causes": [{"entity": "<service>", "mechanism": "<one of the mechanisms>", "confidence": 0.8}],
                 "causal_chain": [{"source": "<root cause>", "target": "<next service>"}, ...],
                 "onset": "<ISO time the fault started>",
                 "evidence": [{"tool_call_id": "c3", "description": "what that result showed"}],
                 "summary": "<two or three sentences>"}}
Use "no_fault": true with no root causes when the page was benign.

The harness answers tool calls with {"type": "tool_results", "tool_results": [{"id", "ok",
"content" | "error"}], "remaining_turns": n}. Send your diagnosis before remaining_turns runs out.

Method: start at the service of the monitor that paged, follow its downstream dependencies,
look for the earliest anomaly (metrics, error logs, traces) and for change events (deploys,
config, flags) just before it. The noisiest service is often not the cause.
"""


def agent_names() -> list[str]:
    """Agents this process can serve: every policy, the MCP agents, plus ``llm`` when a model
    is configured."""
    from .policies import POLICY_NAMES

    names = [*POLICY_NAMES, *MCP_AGENTS]
    if os.environ.get(LLM_MODEL_ENV):
        names.append(LLM_AGENT)
    return names


def build_agent(name: str) -> LlmAgent:
    from google.adk.agents import LlmAgent

    if name == LLM_AGENT:
        return _llm_agent()
    if name in MCP_AGENTS:
        from .mcp_agent import build_mcp_agent

        return build_mcp_agent(name, MCP_AGENTS[name], POLICY_INSTRUCTION)
    from .model import policy_model
    from .policies import get_policy

    policy = get_policy(name)
    return LlmAgent(
        name=name,
        model=policy_model(name),
        description=f"Mock SRE agent ({name}): {policy.description}",
        instruction=POLICY_INSTRUCTION,
    )


def executor_config(name: str) -> Any:
    """The A2A executor's config for agent ``name``; None (ADK's default) but for the MCP agents."""
    if name in MCP_AGENTS:
        from .mcp_agent import a2a_executor_config

        return a2a_executor_config()
    return None


def _llm_agent() -> LlmAgent:
    """An LlmAgent on LiteLlm; litellm is an optional extra, imported only here."""
    model_name = os.environ.get(LLM_MODEL_ENV)
    if not model_name:
        raise ValueError(f"set {LLM_MODEL_ENV} (a litellm model name) to serve the llm agent")
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    try:
        from google.adk.models.lite_llm import LiteLlm
    except ImportError as e:  # pragma: no cover - depends on the optional extra
        raise RuntimeError(
            "the llm agent needs litellm: pip install 'incident-proctor[llm]'"
        ) from e
    from google.adk.agents import LlmAgent

    return LlmAgent(
        name=LLM_AGENT,
        model=LiteLlm(model=model_name),
        description=f"SRE agent on {model_name}, speaking the incident-proctor protocol in JSON.",
        # a provider, not a string: ADK would otherwise template the JSON braces as state
        instruction=lambda _ctx: LLM_INSTRUCTION,
    )
