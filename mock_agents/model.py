"""The ADK side of a policy: a ``BaseLlm`` whose generation is a deterministic policy.

No network and no state: each call reads the whole conversation from ``llm_request.contents``
(see :mod:`mock_agents.transcript`) and answers with one text part holding one JSON object.
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
    return n


class PolicyModel(BaseLlm):
    """A ``BaseLlm`` whose "generation" is a deterministic policy: no network, no state."""

    model: str = "policy"
    policy: str = "methodical"

    async def generate_content_async(
        self, llm_request: LlmRequest, stream: bool = False
    ) -> AsyncGenerator[LlmResponse, None]:
        reply = decide(get_policy(self.policy), llm_request.contents)
        text = json.dumps(reply, separators=(",", ":"), default=str)
        prompt_tokens = _chars(llm_request.contents) // 4
        out_tokens = max(1, len(text) // 4)
        yield LlmResponse(
            content=types.Content(role="model", parts=[types.Part(text=text)]),
            usage_metadata=types.GenerateContentResponseUsageMetadata(
                prompt_token_count=prompt_tokens,
                candidates_token_count=out_tokens,
                total_token_count=prompt_tokens + out_tokens,
            ),
            turn_complete=True,
        )


def policy_model(name: str) -> PolicyModel:
    get_policy(name)  # fail fast on an unknown name
    return PolicyModel(model=f"policy/{name}", policy=name)
