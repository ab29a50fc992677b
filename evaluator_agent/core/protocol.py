"""The investigation protocol between the proctor and a target agent (version 1).

One investigation is one A2A conversation (one ``contextId``). Every proctor message
carries a DataPart with one of the proctor messages below, plus a TextPart that says the
same for agents that only read text. The target answers each message with exactly one
reply: a DataPart (or JSON in a TextPart, optionally fenced in ```json) holding either
``{"tool_calls": [...]}`` or ``{"diagnosis": {...}}``.

    proctor  -> target : Briefing            (first message)
    target   -> proctor: ToolCallsReply | DiagnosisReply
    proctor  -> target : ToolResultsMessage  (answers every call of the previous reply)
    ...                                       until a diagnosis or a limit ends it

The models here are the single source of truth: ``proctor protocol schema`` exports them
as JSON Schema for people who make their agents evaluable.
"""

from __future__ import annotations

import copy
import json
import re
from datetime import datetime
from functools import lru_cache
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from evaluator_agent.core.vocab import MECHANISMS

PROTOCOL_NAME = "incident-proctor"
PROTOCOL_VERSION = "1"
PROTOCOL_ID = f"{PROTOCOL_NAME}/{PROTOCOL_VERSION}"


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


# --------------------------------------------------------------------------- proctor -> target


class ToolSpec(_Model):
    """One telemetry tool the target may call."""

    name: str
    description: str
    parameters: dict[str, Any] = Field(description="JSON Schema of the arguments object")
    returns: dict[str, Any] | None = Field(
        None, description="JSON Schema of a successful result's content (fields may be added, never removed)"
    )


class Budget(BaseModel):
    """Limits of one investigation: what a request asks for (``budget``), what the harness
    enforces (the request's, tightened by the label's own budget: ``effective``), and what the
    briefing tells the target. One type for all three; unknown fields are refused."""

    model_config = ConfigDict(extra="forbid")

    max_turns: int = Field(30, ge=1, le=200, description="Replies the target may send, the diagnosis included")
    timeout_s: float = Field(300.0, ge=1, le=3600, description="Wall time of the whole investigation")
    turn_timeout_s: float = Field(60.0, ge=0.1, le=600, description="Time the target may take for one reply")
    max_calls_per_turn: int = Field(8, ge=1, le=32, description="Tool calls run per reply; more are skipped")

    def effective(self, label_budget: Any) -> Budget:
        """This budget tightened by a label's own (``max_turns``, ``timeout_s``)."""
        return self.model_copy(update={"max_turns": min(label_budget.max_turns, self.max_turns),
                                       "timeout_s": min(label_budget.timeout_s, self.timeout_s)})


class Problem(_Model):
    """What the on-call engineer was paged for."""

    title: str
    fired_at: datetime
    monitor: dict[str, Any] | None = Field(None, description="The monitor that fired, as the monitors tool shows it")
    prompt: str


class Briefing(_Model):
    """First proctor message of an investigation."""

    protocol: str = PROTOCOL_ID
    type: Literal["briefing"] = "briefing"
    investigation_id: str
    problem: Problem
    now: datetime = Field(description="The current time in the replayed world; relative times such as now-1h refer to it")
    tools: list[ToolSpec]
    budget: Budget
    mechanisms: list[str] = Field(default_factory=lambda: list(MECHANISMS), description="Closed vocabulary for diagnosis mechanisms")
    reply_format: dict[str, Any] = Field(default_factory=dict, description="JSON Schemas of the two possible replies")
    surfaces: dict[str, Any] | None = Field(
        None,
        description="The same tools reached out of band for this investigation only: 'mcp' {url, transport, headers} "
        "(tools named as Datadog's MCP server's), 'rest' {base_url, headers} (Datadog REST API paths). Calls there "
        "count as this investigation's tool calls; the credential stops working when it ends.",
    )
    in_band_tools: bool = Field(True, description="False when this evaluation offers the tools only out of band")


class ToolResult(_Model):
    """The answer to one tool call."""

    id: str
    ok: bool
    content: Any | None = None
    error: str | None = None


class ToolResultsMessage(_Model):
    """Proctor message answering the previous ``tool_calls`` reply."""

    protocol: str = PROTOCOL_ID
    type: Literal["tool_results"] = "tool_results"
    tool_results: list[ToolResult]
    turn: int
    remaining_turns: int
    notice: str | None = None


# --------------------------------------------------------------------------- target -> proctor


class ToolCall(_Model):
    id: str = Field(default="", max_length=200)
    name: str = Field(max_length=200)
    arguments: dict[str, Any] = Field(default_factory=dict)

    @field_validator("arguments", mode="before")
    @classmethod
    def _arguments_from_json_text(cls, v: Any) -> Any:
        # OpenAI-style agents send arguments as a JSON string.
        if isinstance(v, str):
            try:
                return json.loads(v) if v.strip() else {}
            except json.JSONDecodeError as e:
                raise ValueError(f"arguments is not a JSON object: {e}") from e
            except RecursionError:
                raise ValueError("arguments is nested too deeply") from None
        if v is None:
            return {}
        return v


class RootCauseCandidate(_Model):
    entity: str = Field(max_length=500, description="Service, host, cluster, dependency or change the fault originates in")
    mechanism: str | None = Field(None, description="One of the closed vocabulary in the briefing")
    confidence: float | None = Field(None, ge=0, le=1)


class CausalEdge(_Model):
    source: str = Field(max_length=500)
    target: str = Field(max_length=500)


class EvidenceItem(_Model):
    tool_call_id: str | None = None
    description: str = Field("", max_length=5000)


class Diagnosis(_Model):
    """The target's conclusion. Candidates are ranked, most likely first."""

    no_fault: bool = Field(False, description="True when the alert was benign and nothing is broken")
    root_causes: list[RootCauseCandidate] = Field(default_factory=list, max_length=20)
    causal_chain: list[CausalEdge] = Field(default_factory=list, max_length=50, description="Edges from the root cause to the alerting symptom")
    onset: datetime | None = Field(None, description="When the fault started")
    evidence: list[EvidenceItem] = Field(default_factory=list, max_length=100)
    summary: str = Field("", max_length=20000)

    @field_validator("evidence", mode="before")
    @classmethod
    def _evidence_strings(cls, v: Any) -> Any:
        if isinstance(v, list):
            return [{"description": x} if isinstance(x, str) else x for x in v]
        return v

    @field_validator("causal_chain", mode="before")
    @classmethod
    def _chain_as_path(cls, v: Any) -> Any:
        # Accept a plain path ["a", "b", "c"] as well as edges.
        if isinstance(v, list) and v and all(isinstance(x, str) for x in v):
            return [{"source": a, "target": b} for a, b in zip(v, v[1:], strict=False)]
        return v


class Usage(_Model):
    """Optional, beside either reply: what this reply cost the agent. Summed per investigation."""

    input_tokens: int | None = Field(None, ge=0)
    output_tokens: int | None = Field(None, ge=0)
    total_tokens: int | None = Field(None, ge=0)
    cost_usd: float | None = Field(None, ge=0)


class _Reply(_Model):
    usage: Usage | None = None

    @field_validator("usage", mode="before")
    @classmethod
    def _lenient_usage(cls, v: Any) -> Any:
        # Usage is bookkeeping: a malformed one is dropped, it never makes the reply unusable.
        try:
            return Usage.model_validate(v) if v is not None else None
        except ValidationError:
            return None


class ToolCallsReply(_Reply):
    tool_calls: list[ToolCall] = Field(min_length=1)


class DiagnosisReply(_Reply):
    diagnosis: Diagnosis


TargetReply = ToolCallsReply | DiagnosisReply


class ReplyError(ValueError):
    """A target reply that does not follow the protocol."""


_FENCE = re.compile(r"```(?:json)?\s*(\{.*?\})\s*```", re.DOTALL)


def part_value(part: Any) -> tuple[Any, str | None]:
    """What one A2A part (a2a-sdk 1.x protobuf ``Part``) carries: ``(value, None)`` for a
    DataPart (its JSON value: an object, or whatever else a sender put there), ``(None, text)``
    for a TextPart, ``(None, None)`` for anything else (files, empty parts)."""
    if part.HasField("data"):
        from google.protobuf.json_format import MessageToDict

        return MessageToDict(part.data), None
    if part.HasField("text"):
        return None, part.text
    return None, None


def data_object(parts: Any) -> dict[str, Any] | None:
    """The first DataPart among ``parts`` that holds a JSON object."""
    for part in parts:
        value, _ = part_value(part)
        if isinstance(value, dict):
            return value
    return None


def json_object_in(parts: Any) -> dict[str, Any] | None:
    """The object a message means: its first DataPart object, else the first JSON object found
    in its text (a whole text, a fenced block, or the outermost braces)."""
    texts: list[str] = []
    for part in parts:
        value, text = part_value(part)
        if isinstance(value, dict):
            return value
        if text is not None:
            texts.append(text)
    for t in texts:
        obj = extract_json_object(t)
        if obj is not None:
            return obj
    return None


def extract_json_object(text: str) -> dict[str, Any] | None:
    """Find the reply object in free text: the whole text, a fenced block, or the outermost braces."""
    text = text.strip()
    if not text:
        return None
    candidates = [text]
    candidates += [m.group(1) for m in _FENCE.finditer(text)]
    first, last = text.find("{"), text.rfind("}")
    if 0 <= first < last:
        candidates.append(text[first : last + 1])
    for c in candidates:
        try:
            obj = json.loads(c)
        except (ValueError, RecursionError):  # not JSON, or an integer over Python's 4,300 digits
            continue
        if isinstance(obj, dict):
            return obj
    return None


def parse_reply(obj: dict[str, Any]) -> TargetReply:
    """Validate one reply object; raises ReplyError with a message the target can act on.

    Total: whatever the object holds, the only exception is ReplyError (anything else a
    validator might raise on hostile input, e.g. RecursionError, would otherwise end the
    investigation as the proctor's fault)."""
    if not isinstance(obj, dict):
        raise ReplyError("reply must be a JSON object")
    try:
        if "diagnosis" in obj:
            return DiagnosisReply.model_validate(obj)
        if "tool_calls" in obj:
            return ToolCallsReply.model_validate(obj)
    except ValidationError as e:
        raise ReplyError(_short_validation_error(e)) from e
    except Exception as e:  # noqa: BLE001 - see the docstring
        raise ReplyError(f"reply could not be read: {type(e).__name__}") from e
    raise ReplyError('reply must contain "tool_calls" or "diagnosis"')


def _short_validation_error(e: ValidationError) -> str:
    parts = []
    for err in e.errors()[:5]:
        loc = ".".join(str(x) for x in err["loc"])
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)


@lru_cache(maxsize=1)
def _reply_schemas() -> dict[str, Any]:
    return {
        "tool_calls": ToolCallsReply.model_json_schema(),
        "diagnosis": DiagnosisReply.model_json_schema(),
    }


def reply_schemas() -> dict[str, Any]:
    """JSON Schemas of the two replies (a fresh copy; computed once)."""
    return copy.deepcopy(_reply_schemas())


def protocol_schema() -> dict[str, Any]:
    """Every message of the protocol as JSON Schema, for documentation and for agent authors."""
    return {
        "protocol": PROTOCOL_ID,
        "proctor_to_target": {
            "briefing": Briefing.model_json_schema(),
            "tool_results": ToolResultsMessage.model_json_schema(),
        },
        "target_to_proctor": reply_schemas(),
    }


def briefing_text(b: Briefing) -> str:
    """The TextPart that accompanies the briefing DataPart, for agents that only read text."""
    tools = "\n".join(f"- {t.name}: {t.description}" for t in b.tools)
    return (
        f"[{PROTOCOL_ID}] You are investigating a production incident.\n"
        f"Page: {b.problem.title} (fired at {b.problem.fired_at.isoformat()}).\n"
        f"{b.problem.prompt}\n"
        f"Current time: {b.now.isoformat()}. Budget: {b.budget.max_turns} replies, {b.budget.timeout_s:.0f}s.\n"
        f"Tools (JSON Schemas of their arguments are in the data part):\n{tools}\n"
        + _surfaces_text(b)
        + "Reply with one JSON object only, either\n"
        '  {"tool_calls": [{"id": "c1", "name": "<tool>", "arguments": {...}}]}\n'
        "or\n"
        '  {"diagnosis": {"no_fault": false, "root_causes": [{"entity": "...", "mechanism": "...", "confidence": 0.8}],'
        ' "causal_chain": [{"source": "...", "target": "..."}], "onset": "<ISO time>",'
        ' "evidence": [{"tool_call_id": "c1", "description": "..."}], "summary": "..."}}\n'
        f"Mechanisms: {', '.join(b.mechanisms)}."
    )


def _surfaces_text(b: Briefing) -> str:
    if not b.surfaces:
        return ""
    lines = ["The same tools, for this investigation only, also answer out of band:"]
    if "mcp" in b.surfaces:
        s = b.surfaces["mcp"]
        lines.append(f"- MCP (Datadog's tool names, Streamable HTTP): {s['url']} with headers {json.dumps(s['headers'])}")
    if "rest" in b.surfaces:
        s = b.surfaces["rest"]
        lines.append(f"- Datadog REST API: base URL {s['base_url']} with headers {json.dumps(s['headers'])}")
    if not b.in_band_tools:
        lines.append("In-band tool_calls are not offered in this evaluation: use the surfaces above, then reply with your diagnosis.")
    return "\n".join(lines) + "\n"


def tool_results_text(m: ToolResultsMessage) -> str:
    body = json.dumps([r.model_dump(exclude_none=True) for r in m.tool_results], default=str)
    note = f" {m.notice}" if m.notice else ""
    return (
        f"[{PROTOCOL_ID}] Tool results (turn {m.turn}, {m.remaining_turns} replies left).{note}\n{body}"
    )
