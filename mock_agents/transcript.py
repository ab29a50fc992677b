"""Rebuild an investigation from the model's view of it: ``llm_request.contents``.

The policy models keep no state of their own. Everything they know comes from the
conversation ADK hands them, which for an A2A conversation looks like this (ADK 2.13,
a2a-sdk 1.x, ``google.adk.a2a.converters.part_converter``):

* a proctor message (A2A ``role: user``) becomes a ``Content(role="user")`` whose parts are
  - the DataPart, as ``Part(inline_data=Blob(mime_type="text/plain",
    data=b"<a2a_datapart_json>{...}</a2a_datapart_json>"))``; the JSON is the DataPart's
    ``data`` (with a2a-sdk 0.3 it is the whole serialized DataPart, ``{"kind": "data",
    "data": {...}}``). Protobuf ``Value`` has no integers, so every number arrives as a float;
  - the TextPart, as ``Part(text=...)``;
* each of our own earlier replies is a ``Content(role="model")`` with the text we produced.

So the proctor message is read from the data part when there is one, else from JSON in
the text (the protocol's text rendering ends with the tool results as a JSON array).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from evaluator_agent.core.clock import iso_s as iso  # noqa: F401 - how the agents write times

DATA_START = b"<a2a_datapart_json>"
DATA_END = b"</a2a_datapart_json>"

_FENCE = re.compile(r"```(?:json)?\s*([\[{].*?[\]}])\s*```", re.DOTALL)


# --------------------------------------------------------------------------- JSON in text


def json_in_text(text: str) -> Any | None:
    """The JSON value a text consists of, is fenced in, or ends with; None when there is none."""
    text = text.strip()
    if not text:
        return None
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        pass
    for m in _FENCE.finditer(text):
        try:
            return json.loads(m.group(1))
        except (json.JSONDecodeError, RecursionError):
            continue
    decoder = json.JSONDecoder()
    # Outermost value that runs to the end of the text; line starts first, they are the
    # likely places ("...prose:\n[{...}]"), then any brace, a bounded number of attempts.
    starts = [m.start() + 1 for m in re.finditer(r"\n[\[{]", text)]
    starts += [i for i, ch in enumerate(text) if ch in "[{"]
    tried: set[int] = set()
    for i in starts:
        if i in tried:
            continue
        tried.add(i)
        if len(tried) > 64:
            break
        try:
            value, end = decoder.raw_decode(text, i)
        except (json.JSONDecodeError, RecursionError):
            continue
        if not text[end:].strip() or isinstance(value, dict):
            return value
    return None


def json_object_in_text(text: str) -> dict[str, Any] | None:
    value = json_in_text(text)
    return value if isinstance(value, dict) else None


# --------------------------------------------------------------------------- parts


def _part_payloads(content: Any) -> tuple[list[Any], list[str]]:
    """(structured data, texts) carried by one ``types.Content``."""
    datas: list[Any] = []
    texts: list[str] = []
    for part in getattr(content, "parts", None) or []:
        blob = getattr(part, "inline_data", None)
        if blob is not None and blob.data:
            raw = blob.data if isinstance(blob.data, bytes) else str(blob.data).encode()
            if raw.startswith(DATA_START) and raw.endswith(DATA_END):
                raw = raw[len(DATA_START) : -len(DATA_END)]
            elif "json" not in (blob.mime_type or ""):
                raw = b""
            if raw:
                try:
                    value = json.loads(raw)
                except (json.JSONDecodeError, UnicodeDecodeError):
                    value = None
                if isinstance(value, dict) and value.get("kind") == "data" and "data" in value:
                    value = value["data"]  # a2a-sdk 0.3 serializes the whole DataPart
                if value is not None:
                    datas.append(value)
        text = getattr(part, "text", None)
        if text and not getattr(part, "thought", None):
            texts.append(text)
    return datas, texts


_PAGE = re.compile(r"Page:\s*(?P<title>.*?)\s*\(fired at (?P<fired>[^)]+)\)")
_NOW = re.compile(r"Current time:\s*(?P<now>\S+?)\.?\s")
_BUDGET = re.compile(r"Budget:\s*(?P<turns>\d+)\s+replies")
_TURN = re.compile(r"turn\s+(?P<turn>\d+),\s*(?P<left>\d+)\s+replies left")


def _message_from_text(text: str) -> dict[str, Any] | None:
    """A proctor message from its text rendering alone (agents that only get text)."""
    value = json_in_text(text)
    if isinstance(value, dict) and (
        value.get("type") or "tool_results" in value or "problem" in value
    ):
        return value
    if isinstance(value, list) and (
        not value or all(isinstance(x, dict) and "id" in x for x in value)
    ):
        msg: dict[str, Any] = {"type": "tool_results", "tool_results": value}
        m = _TURN.search(text)
        if m:
            msg["turn"], msg["remaining_turns"] = int(m["turn"]), int(m["left"])
        return msg
    page = _PAGE.search(text)
    if page:
        briefing: dict[str, Any] = {
            "type": "briefing",
            "problem": {"title": page["title"], "fired_at": page["fired"], "prompt": text},
        }
        if m := _NOW.search(text + " "):
            briefing["now"] = m["now"]
        if m := _BUDGET.search(text):
            briefing["budget"] = {"max_turns": int(m["turns"])}
        return briefing
    if "tool results" in text.lower():
        return {"type": "tool_results", "tool_results": [], "notice": text}
    return None


def proctor_message(content: Any) -> dict[str, Any] | None:
    """The proctor message in one user ``Content``: the data part, else JSON or prose in text."""
    datas, texts = _part_payloads(content)
    dicts = [d for d in datas if isinstance(d, dict)]
    for d in dicts:
        if d.get("type") in ("briefing", "tool_results") or "tool_results" in d or "problem" in d:
            return d
    if dicts:
        return dicts[0]
    return _message_from_text("\n".join(texts)) if texts else None


def own_reply(content: Any) -> dict[str, Any] | None:
    datas, texts = _part_payloads(content)
    for d in datas:
        if isinstance(d, dict) and ("tool_calls" in d or "diagnosis" in d):
            return d
    return json_object_in_text("\n".join(texts)) if texts else None


# --------------------------------------------------------------------------- the investigation


def parse_time(value: Any) -> datetime | None:
    """ISO 8601 or epoch seconds to an aware UTC datetime."""
    if value is None or value == "":
        return None
    if isinstance(value, int | float):
        return datetime.fromtimestamp(float(value), tz=UTC)
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    s = str(value).strip()
    try:
        return datetime.fromtimestamp(float(s), tz=UTC)
    except ValueError:
        pass
    try:
        dt = datetime.fromisoformat(s.replace("Z", "+00:00"))
    except ValueError:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def _int(value: Any, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


@dataclass
class Transcript:
    """What one investigation looks like from the target's side, rebuilt from scratch each turn."""

    briefing: dict[str, Any] = field(default_factory=dict)
    proctor_messages: list[dict[str, Any]] = field(default_factory=list)
    replies: list[dict[str, Any] | None] = field(default_factory=list)
    calls: dict[str, dict[str, Any]] = field(default_factory=dict)
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: per-turn cache for policies: the conversation is rebuilt every turn, so is this
    memo: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_contents(cls, contents: list[Any]) -> Transcript:
        """From ADK's ``llm_request.contents`` (the A2A path, see the module docstring)."""
        conv = cls()
        for content in contents or []:
            role = getattr(content, "role", None)
            if role == "model":
                conv._add_reply(own_reply(content))
                continue
            msg = proctor_message(content)
            if msg is not None:
                conv._add_message(msg)
        return conv

    @classmethod
    def from_messages(cls, messages: list[tuple[str, dict[str, Any] | None]]) -> Transcript:
        """From plain message dicts, oldest first: ``("user", <proctor message data>)`` or
        ``("model", <our earlier reply>)``. This is what an in-process target
        (:mod:`evaluator_agent.engine.local`) hands a policy: no ADK, no A2A, the same reading."""
        conv = cls()
        for role, obj in messages or []:
            if role == "model":
                conv._add_reply(obj if isinstance(obj, dict) else None)
            elif isinstance(obj, dict):
                conv._add_message(obj)
        return conv

    def _add_reply(self, reply: dict[str, Any] | None) -> None:
        self.replies.append(reply)
        for call in (reply or {}).get("tool_calls") or []:
            if isinstance(call, dict) and call.get("id"):
                self.calls[str(call["id"])] = call

    def _add_message(self, msg: dict[str, Any]) -> None:
        self.proctor_messages.append(msg)
        if msg.get("type") == "briefing" or ("problem" in msg and not self.briefing):
            self.briefing = msg
        for r in msg.get("tool_results") or []:
            if isinstance(r, dict) and r.get("id") is not None:
                self.results[str(r["id"])] = r

    # ---- briefing facts

    @property
    def problem(self) -> dict[str, Any]:
        p = self.briefing.get("problem")
        return p if isinstance(p, dict) else {}

    @property
    def monitor(self) -> dict[str, Any] | None:
        m = self.problem.get("monitor")
        return m if isinstance(m, dict) else None

    @property
    def now(self) -> datetime:
        return parse_time(self.briefing.get("now")) or self.fired_at

    @property
    def fired_at(self) -> datetime:
        return (
            parse_time(self.problem.get("fired_at"))
            or parse_time(self.briefing.get("now"))
            or datetime(2026, 1, 1, tzinfo=UTC)
        )

    @property
    def budget(self) -> dict[str, Any]:
        b = self.briefing.get("budget")
        return b if isinstance(b, dict) else {}

    @property
    def max_turns(self) -> int:
        return max(1, _int(self.budget.get("max_turns"), 30))

    @property
    def max_calls(self) -> int:
        return max(1, _int(self.budget.get("max_calls_per_turn"), 8))

    @property
    def mechanisms(self) -> list[str]:
        m = self.briefing.get("mechanisms")
        return [str(x) for x in m] if isinstance(m, list) and m else []

    @property
    def tool_names(self) -> set[str]:
        """Tools the briefing offers (empty when it does not say)."""
        return {
            str(t["name"])
            for t in self.briefing.get("tools") or []
            if isinstance(t, dict) and t.get("name")
        }

    @property
    def seed_text(self) -> str:
        """What identifies the incident (not the run): the same label gives the same seed."""
        p = self.problem
        basis = {
            "title": p.get("title"),
            "fired_at": str(p.get("fired_at")),
            "prompt": p.get("prompt"),
            "monitor": (self.monitor or {}).get("id"),
        }
        if not any(basis.values()):
            basis["investigation_id"] = self.briefing.get("investigation_id")
        return json.dumps(basis, sort_keys=True, default=str)

    # ---- progress

    @property
    def n_replies(self) -> int:
        """Replies already sent (this one not counted)."""
        return len(self.replies)

    @property
    def remaining(self) -> int:
        """Replies left, the one being written included."""
        left = self.max_turns - self.n_replies
        last = self.proctor_messages[-1] if self.proctor_messages else {}
        if last.get("remaining_turns") is not None:
            left = min(left, _int(last.get("remaining_turns"), left))
        return left

    def issued(self, call_id: str) -> bool:
        return call_id in self.calls

    def content(self, call_id: str) -> Any | None:
        """Content of a successful call's result, else None."""
        r = self.results.get(call_id)
        if not r or r.get("ok") is False:
            return None
        return r.get("content")
