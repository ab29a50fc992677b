"""The ADK side of a policy: a ``BaseLlm`` whose generation is a deterministic policy.

No network and no state: each call reads the whole conversation from ``llm_request.contents``
(see :mod:`mock_agents.transcript`) and answers with one text part holding one JSON object.
:func:`policy_response` wraps an answer (the MCP agents' too, :mod:`mock_agents.mcp_agent`).
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from typing import Any

from google.adk.models.base_llm import BaseLlm
from google.adk.models.llm_request import LlmRequest
from google.adk.models.llm_response import LlmResponse
from google.genai import types

from .policies import decide, get_policy


def _chars(contents: list[Any]) -> int:
    n = 0
    for c in contents or []:
        for p in getattr(c, "parts", None) or []:
            n += len(p.text or "") + len(getattr(p.inline_data, "data", None) or b"")
            if getattr(p, "function_response", None) is not None:  # the MCP agents' tool answers
                n += len(json.dumps(p.function_response.response, default=str))
    return n


def policy_response(parts: list[types.Part], contents: list[Any]) -> LlmResponse:
    """The model's answer ``parts`` to ``contents``, with token counts estimated from sizes
    (four characters a token), so that ADK logs no per-call line about missing usage."""
    prompt_tokens = _chars(contents) // 4
    size = sum(len(p.text) if p.text is not None else len(json.dumps(p.function_call.model_dump(mode="json")))
               for p in parts)
    out_tokens = max(1, size // 4)
    return LlmResponse(
        content=types.Content(role="model", parts=parts),
        usage_metadata=types.GenerateContentResponseUsageMetadata(
            prompt_token_count=prompt_tokens,
            candidates_token_count=out_tokens,
            total_token_count=prompt_tokens + out_tokens,
        ),
        turn_complete=True,
    )


class PolicyModel(BaseLlm):
    """A ``BaseLlm`` whose "generation" is a deterministic policy: no network, no state."""

    model: str = "policy"
    policy: str = "methodical"

    async def generate_content_async(
        self, llm_request: LlmRequest, stream: bool = False
    ) -> AsyncGenerator[LlmResponse, None]:
        reply = decide(get_policy(self.policy), llm_request.contents)
        text = json.dumps(reply, separators=(",", ":"), default=str)
        yield policy_response([types.Part(text=text)], llm_request.contents)


def policy_model(name: str) -> PolicyModel:
    get_policy(name)  # fail fast on an unknown name
    return PolicyModel(model=f"policy/{name}", policy=name)
