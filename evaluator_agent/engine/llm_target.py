"""An LLM as an in-process target: a chat model (through litellm) that investigates by the protocol.

:func:`make_llm_target` returns a :class:`~evaluator_agent.engine.local.LocalTarget` whose reply
function turns the protocol conversation so far into chat messages, asks the model for its next
reply and hands back the JSON object the model wrote. It is optional everywhere it is used
(``proctor labels validate`` may use one as an extra investigator, never needs one): litellm is
the ``llm`` extra (``pip install 'incident-proctor[llm]'``), imported only when a target is made
without a ``completion`` function of its own. The CLI names the model with the environment
variable ``PROCTOR_VALIDATOR_MODEL`` (a litellm model name such as ``openai/gpt-4o-mini``); this
module reads no environment of its own, except that it sets ``LITELLM_LOCAL_MODEL_COST_MAP=True``
(unless already set) before importing litellm, so the import does not fetch a cost map.

The chat the model sees:

- a system prompt (:data:`SYSTEM_PROMPT`) explaining the protocol: one JSON object per reply,
  ``{"tool_calls": [...]}`` with the tools of the briefing, or ``{"diagnosis": {...}}``;
- the briefing as the first user message (:func:`~evaluator_agent.core.protocol.briefing_text`,
  plus the tools' argument schemas and the diagnosis schema, which that text leaves to the data);
- each earlier reply of the model as an assistant message (its JSON, as the proctor read it);
- each tool results message as a user message
  (:func:`~evaluator_agent.core.protocol.tool_results_text`), every result's content cut to
  ``max_result_chars``.

The prompt is bounded: when the message contents add up to more than ``prompt_chars`` characters,
the oldest tool results are replaced by a short note first, then the oldest turns are dropped
whole (the briefing says how many), and as a last resort the newest message and the briefing are
cut from their end (:func:`chat_messages`).

The model's text is read leniently (:func:`reply_object`): a bare object, a ```json fenced block,
or an object inside prose. Text with no JSON object goes back to the loop as it is, a reply it
cannot use: the investigation's malformed-reply handling applies (a notice, and the end after
three in a row). The token usage the response reports rides beside the reply as the protocol's
``usage``, which the investigation sums. A completion that raises (no key, rate limit, network)
ends that investigation as ``target_error``, never the run.

Limits: the call is synchronous and runs inline on the event loop, as every in-process target
does; the protocol's turn timeout is not enforced (pass ``extra={"timeout": 60}`` for litellm's
own). Only in-band tool calls are offered to the model: out-of-band surfaces (MCP, REST) in a
briefing are described to it but it has no client for them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

from evaluator_agent.core.protocol import (
    PROTOCOL_ID,
    Briefing,
    ToolResult,
    ToolResultsMessage,
    briefing_text,
    extract_json_object,
    tool_results_text,
)
from evaluator_agent.engine.local import LocalTarget, Message, ReplyFn

LLM_EXTRA_HINT = "pip install 'incident-proctor[llm]'"
VALIDATOR_MODEL_ENV = "PROCTOR_VALIDATOR_MODEL"  # read by the CLI, named here for its docs

DEFAULT_MAX_TOKENS = 4096
DEFAULT_MAX_RESULT_CHARS = 12_000
DEFAULT_PROMPT_CHARS = 240_000
MIN_PROMPT_CHARS = 16_000
_SCAN_OBJECTS = 200  # braces tried when looking for a reply object inside prose

ChatMessage = dict[str, str]
Completion = Callable[..., Any]

SYSTEM_PROMPT = f"""\
You are an SRE investigating a production incident inside an evaluation harness that speaks the
{PROTOCOL_ID} protocol. You cannot run anything yourself: the harness runs the telemetry tools
for you and answers with their results.

The first user message is the briefing: the page that fired, the current time of the replayed
world, the tools you may call (names, descriptions, JSON Schemas of their arguments), your budget
of replies and the closed list of mechanisms a diagnosis may name.

Answer every message with exactly ONE JSON object and nothing else. Either ask for tools:
  {{"tool_calls": [{{"id": "c1", "name": "<a tool of the briefing>", "arguments": {{...}}}}]}}
(several calls in one reply are fine, within the budget's calls per reply; give every call an id
that is unique in the whole investigation), or finish with a diagnosis in the briefing's schema:
  {{"diagnosis": {{"no_fault": false,
                 "root_causes": [{{"entity": "<where the fault starts>", "mechanism": "<one of the mechanisms>", "confidence": 0.8}}],
                 "causal_chain": [{{"source": "<root cause>", "target": "<next hop>"}}],
                 "onset": "<ISO time the fault started>",
                 "evidence": [{{"tool_call_id": "c1", "description": "<what that result showed>"}}],
                 "summary": "<two or three sentences>"}}}}
When nothing is broken, answer {{"diagnosis": {{"no_fault": true, "summary": "..."}}}}.

Tool results come back as a user message listing each call's id with its content or error.
Results of early turns may be shortened to keep the conversation small; ask again if you need
them. Send the diagnosis before your replies run out: the last one must be the diagnosis.

Method: start from the service that paged, follow its dependencies, look for the earliest
anomaly (metrics, error logs, traces) and for changes (deploys, config, feature flags) just
before it. The loudest service is often a victim or a red herring, not the cause.
"""


def make_llm_target(
    model: str,
    *,
    completion: Completion | None = None,
    name: str = "llm",
    temperature: float | None = 0.0,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    extra: dict[str, Any] | None = None,
    max_result_chars: int = DEFAULT_MAX_RESULT_CHARS,
    prompt_chars: int = DEFAULT_PROMPT_CHARS,
) -> LocalTarget:
    """An in-process target that asks ``model`` for each reply.

    ``completion`` is called as ``completion(model=, messages=, temperature=, max_tokens=,
    **extra)`` and returns a litellm ``ModelResponse`` or a dict of the same shape
    (``choices[0].message.content``, optional ``usage.prompt_tokens`` / ``completion_tokens``);
    without one, ``litellm.completion`` (raises RuntimeError when litellm is not installed).
    ``temperature=None`` leaves it out, for models that refuse one. ``extra`` goes to every call
    as it is (``mock_response``, ``api_base``, ``timeout``, ``num_retries``...).
    ``max_result_chars`` caps one tool result's content in the prompt, ``prompt_chars`` the
    message contents of the whole prompt (at least :data:`MIN_PROMPT_CHARS`).
    """
    if prompt_chars < MIN_PROMPT_CHARS:
        raise ValueError(f"prompt_chars must be at least {MIN_PROMPT_CHARS}, not {prompt_chars}")
    if max_result_chars < 1:
        raise ValueError("max_result_chars must be positive")
    call = completion if completion is not None else litellm_completion()
    reply = llm_reply(
        call, model, temperature=temperature, max_tokens=max_tokens, extra=extra,
        max_result_chars=max_result_chars, prompt_chars=prompt_chars,
    )
    return LocalTarget(reply, name, version=model)


def litellm_completion() -> Completion:
    """``litellm.completion``, imported now (with the local cost map), or a clear RuntimeError."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    try:
        import litellm
    except ImportError as e:
        raise RuntimeError(f"the LLM investigator needs litellm: {LLM_EXTRA_HINT}") from e
    return litellm.completion


def llm_reply(
    completion: Completion,
    model: str,
    *,
    temperature: float | None,
    max_tokens: int,
    extra: dict[str, Any] | None,
    max_result_chars: int,
    prompt_chars: int,
) -> ReplyFn:
    """The stateless reply function of a :class:`LocalTarget` backed by ``completion``."""
    fixed = dict(extra or {})

    def reply(messages: list[Message]) -> Any:
        chat = chat_messages(messages, max_result_chars=max_result_chars, prompt_chars=prompt_chars)
        kwargs: dict[str, Any] = {"model": model, "messages": chat, "max_tokens": max_tokens, **fixed}
        if temperature is not None:
            kwargs["temperature"] = temperature
        response = completion(**kwargs)
        text = response_text(response)
        obj = reply_object(text)
        if obj is None:
            return text  # not an object: the loop counts it as a malformed reply
        obj.pop("usage", None)  # the model's own claim; the response's count is the one kept
        usage = response_usage(response)
        if usage:
            obj["usage"] = usage
        return obj

    return reply


# --------------------------------------------------------------------------- reading the response


def _field(obj: Any, key: str) -> Any:
    """``obj[key]`` for a dict, ``obj.key`` for litellm's objects; None when absent."""
    if isinstance(obj, dict):
        return obj.get(key)
    return getattr(obj, key, None)


def response_text(response: Any) -> str:
    """The text of ``choices[0].message.content`` (a list of text parts is joined)."""
    choices = _field(response, "choices")
    if not choices:
        raise ValueError("the model's response has no choices")
    content = _field(_field(choices[0], "message"), "content")
    if content is None:
        return ""
    if isinstance(content, list):  # content parts: [{"type": "text", "text": "..."}]
        return "".join(str(_field(p, "text") or "") for p in content)
    return str(content)


def response_usage(response: Any) -> dict[str, Any]:
    """The response's token counts (and litellm's cost, when it knows one) as the protocol's
    ``usage``: ``input_tokens``, ``output_tokens``, ``total_tokens``, ``cost_usd``."""
    usage = _field(response, "usage")
    out: dict[str, Any] = {}
    if usage is not None:
        for ours, theirs in (("input_tokens", "prompt_tokens"), ("output_tokens", "completion_tokens"),
                             ("total_tokens", "total_tokens")):
            v = _field(usage, theirs)
            if isinstance(v, int) and not isinstance(v, bool) and v >= 0:
                out[ours] = v
    hidden = getattr(response, "_hidden_params", None)
    cost = hidden.get("response_cost") if isinstance(hidden, dict) else None
    if isinstance(cost, int | float) and not isinstance(cost, bool) and cost >= 0:
        out["cost_usd"] = float(cost)
    return out


def reply_object(text: str) -> dict[str, Any] | None:
    """The reply object in the model's text: the whole text, a ```json fenced block or the
    outermost braces (:func:`~evaluator_agent.core.protocol.extract_json_object`), else the first
    object in the prose that holds ``tool_calls`` or ``diagnosis``. An object without either still
    comes back (the loop tells the model what is wrong with it); None when there is no object."""
    found = extract_json_object(text)
    if found is not None and _is_reply(found):
        return found
    decoder = json.JSONDecoder()
    start = text.find("{")
    for _ in range(_SCAN_OBJECTS):
        if start < 0:
            break
        try:
            obj, _end = decoder.raw_decode(text, start)
        except (ValueError, RecursionError):
            obj = None
        if isinstance(obj, dict) and _is_reply(obj):
            return obj
        start = text.find("{", start + 1)
    return found


def _is_reply(obj: dict[str, Any]) -> bool:
    return "tool_calls" in obj or "diagnosis" in obj


# --------------------------------------------------------------------------- the chat


def chat_messages(
    messages: list[Message],
    *,
    max_result_chars: int = DEFAULT_MAX_RESULT_CHARS,
    prompt_chars: int = DEFAULT_PROMPT_CHARS,
) -> list[ChatMessage]:
    """The chat for the protocol conversation ``messages`` (``("user", data)`` for the proctor's
    messages, ``("model", reply)`` for the target's), its contents within ``prompt_chars``."""
    chat: list[ChatMessage] = [{"role": "system", "content": SYSTEM_PROMPT}]
    for i, (role, data) in enumerate(messages):
        if role == "user":
            content = briefing_message(data) if i == 0 else results_message(data, max_result_chars)
            chat.append({"role": "user", "content": content})
        else:
            chat.append({"role": "assistant", "content": assistant_message(data)})
    return fit_prompt(chat, prompt_chars)


def briefing_message(data: Any) -> str:
    """The briefing as text: the protocol's own text, the tools' argument schemas and the
    diagnosis schema (which that text leaves to the DataPart)."""
    try:
        b = Briefing.model_validate(data)
    except Exception:  # noqa: BLE001 - an unexpected first message is still shown, as JSON
        return _cut(json.dumps(data, default=str), DEFAULT_MAX_RESULT_CHARS)
    lines = [briefing_text(b), "", "Arguments of each tool (JSON Schema):"]
    lines += [f"- {t.name}: {_compact(t.parameters)}" for t in b.tools]
    lines.append(
        f"Budget: at most {b.budget.max_calls_per_turn} tool calls per reply; "
        f"{b.budget.max_turns} replies in all, the diagnosis included."
    )
    schema = b.reply_format.get("diagnosis")
    if isinstance(schema, dict):
        lines += ["", "Schema of a diagnosis reply (JSON Schema):", _compact(_without_usage(schema))]
    return "\n".join(lines)


def _without_usage(schema: dict[str, Any]) -> dict[str, Any]:
    """The reply schema without ``usage``: the harness reports that, not the model."""
    out = {k: v for k, v in schema.items() if k not in ("$defs", "properties")}
    if isinstance(schema.get("properties"), dict):
        out["properties"] = {k: v for k, v in schema["properties"].items() if k != "usage"}
    if isinstance(schema.get("$defs"), dict):
        out["$defs"] = {k: v for k, v in schema["$defs"].items() if k != "Usage"}
    return out


def results_message(data: Any, max_result_chars: int) -> str:
    """A tool results message as the protocol's text, each result's content cut to
    ``max_result_chars`` characters of its JSON."""
    try:
        msg = ToolResultsMessage.model_validate(data)
    except Exception:  # noqa: BLE001 - an unexpected proctor message is still shown, as JSON
        return _cut(json.dumps(data, default=str), max_result_chars)
    kept = [_capped(r, max_result_chars) for r in msg.tool_results]
    return tool_results_text(msg.model_copy(update={"tool_results": kept}))


def _capped(r: ToolResult, limit: int) -> ToolResult:
    update: dict[str, Any] = {}
    if r.content is not None:
        body = _compact(r.content)
        if len(body) > limit:
            update["content"] = _cut(body, limit)
    if r.error is not None and len(r.error) > limit:
        update["error"] = _cut(r.error, limit)
    return r.model_copy(update=update) if update else r


def assistant_message(reply: Any) -> str:
    """An earlier reply of the model as it was read: its JSON (usage aside); a placeholder for
    one that held no object (the proctor's next message says why it could not be used)."""
    if not isinstance(reply, dict):
        return "(a reply with no JSON object)"
    return _compact({k: v for k, v in reply.items() if k != "usage"})


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), default=str)


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]} ... [cut: {limit} of {len(text)} characters shown]"


# --------------------------------------------------------------------------- the prompt budget


def prompt_size(chat: list[ChatMessage]) -> int:
    """What the budget counts: the characters of the messages' contents."""
    return sum(len(m["content"]) for m in chat)


def fit_prompt(chat: list[ChatMessage], budget: int) -> list[ChatMessage]:
    """``chat`` (system, briefing, then assistant/user turns) shortened to ``budget`` characters:

    1. the oldest tool results (never the newest message) become a one-line note;
    2. then the oldest turns (a reply and the results that answered it) are dropped whole, and
       a note at the end of the briefing says how many;
    3. then the newest message, and last the briefing, are cut from their end.

    The system prompt is never touched; the roles keep alternating."""
    chat = [dict(m) for m in chat]
    over = prompt_size(chat) - budget
    if over <= 0:
        return chat
    last = len(chat) - 1
    for i in range(3, last, 2):  # 0 system, 1 briefing, then (assistant, user) pairs
        if over <= 0:
            return chat
        size = len(chat[i]["content"])
        note = f"[{PROTOCOL_ID}] Tool results of this turn elided to keep the prompt short ({size} characters)."
        if len(note) < len(chat[i]["content"]):
            over -= len(chat[i]["content"]) - len(note)
            chat[i]["content"] = note
    if over > 0 and last > 2:
        head, turns, tail = chat[:2], chat[2:last], chat[last:]  # turns: (reply, results) pairs, then a reply
        over += len(_dropped_note(len(turns) // 2))  # room for the note (its count has no more digits)
        dropped = 0
        while over > 0 and len(turns) >= 2:
            over -= len(turns[0]["content"]) + len(turns[1]["content"])
            turns = turns[2:]
            dropped += 1
        reserved = len(_dropped_note(len(chat[2:last]) // 2))
        note = _dropped_note(dropped) if dropped else ""
        over -= reserved - len(note)
        head[1]["content"] += note
        chat = head + turns + tail
        last = len(chat) - 1
    for i in (last, 1):
        if over <= 0:
            break
        content = chat[i]["content"]
        keep = max(0, len(content) - over - 80)  # room for the cut marker
        cut = _cut(content, keep) if keep < len(content) else content
        over -= len(content) - len(cut)
        chat[i]["content"] = cut
    return chat


def _dropped_note(n: int) -> str:
    return (f"\n\n[{n} earlier turn(s) of this investigation were dropped to keep the prompt short; "
            "their tool call ids stay valid as evidence.]")
