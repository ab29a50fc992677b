"""The seam under the investigation loop: a target, and one conversation with it per investigation.

:func:`evaluator_agent.engine.investigation.investigate` talks to anything with the
:class:`ConversationTarget` shape, and sends every message through a :class:`Conversation`.
Three kinds exist, all driven by the same loop, briefing, tools, scoring and records:

- A2A (:class:`evaluator_agent.engine.target.Target`): an agent over the network;
- in-process (:class:`evaluator_agent.engine.local.LocalTarget`): a reply function (the mock
  policies in calibration and the shortcut battery);
- scripted (:class:`evaluator_agent.engine.local.ScriptedTarget`): replies and failures played
  back in order (the loop's own tests: no sockets).

A conversation that cannot give a reply raises a :class:`TargetError`::

    TargetError
     ├── TargetUnavailable   card unreachable, connection refused, DNS ...   (kind "network")
     ├── TargetTimeout       no reply within the turn deadline              (kind "timeout")
     ├── ReplyTooLarge       reply body over the cap, counted decoded        (kind "too_large")
     ├── CardTooLarge        agent card over MAX_CARD_BYTES, decoded         (kind "too_large")
     ├── TargetBlocked       destination refused by the SSRF guard           (kind "blocked")
     └── TargetProtocolError a reply we cannot use: failed task, no parts... (kind "protocol")
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

DEFAULT_MAX_REPLY_BYTES = 1_000_000


class TargetError(Exception):
    kind = "protocol"


class TargetUnavailable(TargetError):
    kind = "network"


class TargetTimeout(TargetError):
    kind = "timeout"


class ReplyTooLarge(TargetError):
    kind = "too_large"


class TargetProtocolError(TargetError):
    kind = "protocol"


class CardTooLarge(TargetError):
    """The agent card is over ``MAX_CARD_BYTES`` once decoded."""

    kind = "too_large"


class TargetBlocked(TargetError):
    """The target URL points where the proctor must not go (SSRF guard)."""

    kind = "blocked"


@dataclass
class TargetInfo:
    """What we record about the target (from its card)."""

    url: str
    name: str
    version: str
    protocol_version: str
    card: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "url": self.url, "protocol_version": self.protocol_version}


@dataclass
class Reply:
    """One target reply: the first JSON object found in its parts, plus how big it was."""

    obj: dict[str, Any] | None
    text: str
    size: int
    tokens: dict[str, int] | None = None


class Conversation(Protocol):
    """One conversation with the target (one A2A ``contextId``).

    ``send`` delivers one proctor message (``data`` is the DataPart, ``text`` the TextPart
    saying the same) and returns the target's one reply within ``timeout_s``; it raises a
    :class:`TargetError` for a reply that cannot be had (timeout, too large, broken protocol,
    unreachable)."""

    context_id: str

    async def send(self, data: dict[str, Any], text: str, timeout_s: float) -> Reply: ...


class ConversationTarget(Protocol):
    """An agent under test: what it says it is, and a fresh conversation per investigation."""

    info: TargetInfo

    def conversation(self) -> Conversation: ...
