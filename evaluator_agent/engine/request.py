"""The evaluation request: what to evaluate, on which labels, how hard.

Accepted shapes (as an A2A DataPart, as JSON in a TextPart, or from the CLI)::

    {"target": "<agent card URL>", "labelset": "smoke", "attempts": 1, "labels": ["lbl_..."],
     "concurrency": 4, "budget": {"max_turns": 30, "timeout_s": 300}, "noise": "on",
     "instances": "stored"}

``instances``: "stored" (the label files), "fresh" (a new draw of the family's recipes) or a
draw seed (a replay of that draw): see :mod:`evaluator_agent.engine.instances`.

    AgentBeats: {"participants": {"<role>": "<agent card URL>"}, "config": {...same options}}
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from evaluator_agent.core.protocol import Budget
from evaluator_agent.core.records import RequestError
from evaluator_agent.engine.instances import SEED_LIMIT
from evaluator_agent.engine.transport import validate_target_url


class EvaluationRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    target: str
    labelset: str = "smoke"
    attempts: int = Field(1, ge=1, le=20)
    labels: list[str] | None = Field(None, max_length=10000)
    concurrency: int = Field(4, ge=1, le=128)
    budget: Budget = Field(default_factory=Budget)
    noise: Literal["on", "off"] = "on"
    run_id: str | None = Field(None, max_length=100)
    # where the target may call the tools: a2a (in-band), mcp, rest; None: every surface the proctor serves
    surfaces: list[Literal["a2a", "mcp", "rest"]] | None = Field(None, min_length=1, max_length=3)
    # a stable credential chosen by the requester, for agents whose MCP/REST configuration is fixed at
    # start-up: every investigation of the run answers under it, one at a time (concurrency 1)
    surface_key: str | None = Field(None, min_length=32, max_length=128, pattern=r"^[A-Za-z0-9_-]+$")
    # which worlds: the stored labels, a fresh draw of the family's recipes, or the draw of that seed
    instances: Literal["stored", "fresh"] | int = "stored"

    @field_validator("target")
    @classmethod
    def _url(cls, v: str) -> str:
        return validate_target_url(v)

    @field_validator("instances", mode="before")
    @classmethod
    def _instances(cls, v: Any) -> Any:
        if isinstance(v, str) and v.strip().isdigit():
            v = int(v)
        if isinstance(v, str) and v in ("stored", "fresh"):
            return v
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < SEED_LIMIT:
            raise ValueError(f"'stored', 'fresh' or a draw seed (an integer in [0, 2**63)), not {v!r}")
        return v

    @field_validator("run_id")
    @classmethod
    def _run_id(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", v):
            raise ValueError("run_id may hold letters, digits, '_', '.', '-'")
        return v


_TARGET_ROLES = ("target", "agent", "purple", "participant", "sre_agent", "agent_under_test")


def _from_agentbeats(obj: dict[str, Any]) -> dict[str, Any]:
    participants = obj.get("participants")
    if not isinstance(participants, dict) or not participants:
        raise RequestError("participants must be an object mapping a role to an agent card URL")
    if len(participants) == 1:
        url = next(iter(participants.values()))
    else:
        roles = [r for r in _TARGET_ROLES if r in participants]
        if not roles:
            raise RequestError(
                f"several participants ({', '.join(sorted(participants))}); name the one to evaluate with role 'target'"
            )
        url = participants[roles[0]]
    config = obj.get("config") or {}
    if not isinstance(config, dict):
        raise RequestError("config must be an object")
    extra = set(obj) - {"participants", "config"}
    if extra:
        raise RequestError(f"unknown field(s) {', '.join(sorted(extra))} beside participants/config")
    return {"target": url, **config}


def parse_request(obj: Any) -> EvaluationRequest:
    """Validate a request object in either shape; raises RequestError with a readable message."""
    if not isinstance(obj, dict):
        raise RequestError("the evaluation request must be a JSON object")
    if "participants" in obj:
        obj = _from_agentbeats(obj)
    if "target" not in obj:
        raise RequestError('missing "target": the URL of the agent card to evaluate')
    try:
        return EvaluationRequest.model_validate(obj)
    except ValidationError as e:
        msgs = []
        for err in e.errors()[:5]:
            loc = ".".join(str(x) for x in err["loc"]) or "request"
            msg = err["msg"].removeprefix("Value error, ")
            msgs.append(f"{loc}: {msg}")
        raise RequestError("invalid evaluation request: " + "; ".join(msgs)) from None
