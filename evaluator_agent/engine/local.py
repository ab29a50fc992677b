"""In-process targets: an agent that is a plain function (or a script), driven through the real
investigation.

:func:`evaluator_agent.engine.investigation.investigate` talks to anything with the
:class:`~evaluator_agent.engine.investigation.InvestigationTarget` shape. Over the network that is an
A2A :class:`~evaluator_agent.engine.target.Target`; here it is a :class:`LocalTarget` wrapping a
stateless reply function::

    reply(messages: list[tuple[str, dict]]) -> dict

``messages`` is the whole conversation so far, oldest first: ``("user", data)`` for each
proctor message (the DataPart's ``data``: the briefing, then tool results) and
``("model", reply)`` for each earlier reply of the target. The function returns its next
reply, ``{"tool_calls": [...]}`` or ``{"diagnosis": {...}}``, exactly as an A2A agent would.
Calibration and the shortcut battery run every mock policy this way: the same briefing,
limits, tool runner, scorer and records as an A2A target, without ADK, sockets or threads.

What the function sees is what an A2A agent sees:

- with ``a2a_numbers=True`` (the default) every JSON number in a proctor message arrives as
  a float, because A2A carries a DataPart as a protobuf ``Struct`` (``5`` becomes ``5.0``);
- its reply goes through JSON text (``default=str``) as a mock agent's TextPart does, and
  the proctor reads it back from that text; the reply size is the text's length and a reply
  over ``max_reply_bytes`` ends the investigation as ``reply_too_large``;
- a function that raises ends the investigation as ``target_error`` (the target's fault).

The turn timeout is not enforced: the function runs inline on the event loop, and results
must not depend on how busy the machine is.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from evaluator_agent.engine.conversation import (
    DEFAULT_MAX_REPLY_BYTES,
    Reply,
    ReplyTooLarge,
    TargetError,
    TargetInfo,
    TargetProtocolError,
)

log = logging.getLogger(__name__)

Message = tuple[str, dict[str, Any] | None]
ReplyFn = Callable[[list[Message]], dict[str, Any]]

LOCAL_PROTOCOL_VERSION = "local"


def a2a_numbers(value: Any) -> Any:
    """``value`` with every int turned into a float, as a protobuf ``Struct`` carries it."""
    kind = type(value)  # exact types: bool is not int here, and this is the hot path
    if kind is dict:
        return {k: a2a_numbers(v) for k, v in value.items()}
    if kind is list:
        return [a2a_numbers(v) for v in value]
    if kind is int:
        return float(value)
    return value


class LocalConversation:
    """One investigation's conversation with an in-process target."""

    def __init__(
        self, fn: ReplyFn, *, floats: bool = True, max_reply_bytes: int = DEFAULT_MAX_REPLY_BYTES
    ):
        self.context_id = str(uuid.uuid4())
        self.messages: list[Message] = []
        self._fn = fn
        self._floats = floats
        self._cap = max_reply_bytes

    async def send(self, data: dict[str, Any], text: str, timeout_s: float) -> Reply:
        """Hand the function the conversation with ``data`` appended; return its reply."""
        self.messages.append(("user", a2a_numbers(data) if self._floats else data))
        try:
            raw = self._fn(list(self.messages))
            body = json.dumps(raw, separators=(",", ":"), default=str)
        except TargetError:  # a transport failure acted out (ScriptedTarget): as an A2A target's
            raise
        except Exception as e:  # noqa: BLE001 - a broken target ends its investigation, not the run
            log.debug("local target failed", exc_info=True)
            raise TargetProtocolError(f"target failed: {type(e).__name__}: {e}"[:500]) from e
        if len(body) > self._cap:
            raise ReplyTooLarge(f"reply of {len(body)} bytes is larger than the {self._cap}-byte cap")
        obj = json.loads(body)
        if not isinstance(obj, dict):
            obj = None
        self.messages.append(("model", obj))
        found = obj if obj is not None and ("tool_calls" in obj or "diagnosis" in obj) else None
        return Reply(obj=found, text=body[:4000], size=len(body))


class LocalTarget:
    """An in-process agent under test; one :class:`LocalConversation` per investigation."""

    def __init__(
        self,
        fn: ReplyFn,
        name: str,
        *,
        version: str = "local",
        floats: bool = True,
        max_reply_bytes: int = DEFAULT_MAX_REPLY_BYTES,
    ):
        self.info = TargetInfo(
            url=f"local:{name}", name=name, version=version, protocol_version=LOCAL_PROTOCOL_VERSION
        )
        self._fn = fn
        self._floats = floats
        self._cap = max_reply_bytes

    def conversation(self) -> LocalConversation:
        return LocalConversation(self._fn, floats=self._floats, max_reply_bytes=self._cap)

    async def close(self) -> None:
        return None


Step = dict[str, Any] | TargetError | Callable[[list[Message]], dict[str, Any]]


class ScriptedTarget(LocalTarget):
    """A target that plays a script: each conversation answers with the script's steps in order.

    A step is a reply (``{"tool_calls": [...]}``, ``{"diagnosis": {...}}``, or anything else to
    act out garbage), a :class:`~evaluator_agent.engine.conversation.TargetError` to raise in
    place of a reply (a timeout, a reset, a reply too large), or a function of the messages so
    far that returns the reply. Past its end the script raises ``TargetProtocolError``. What the
    proctor sent is kept in :attr:`sent` (one list of messages per conversation). The loop's
    tests run on it: no sockets, no threads, every path of :func:`investigate` reachable.
    """

    def __init__(self, script: list[Step], name: str = "scripted", *, floats: bool = False, **kw: Any):
        self.script = list(script)
        self.sent: list[list[dict[str, Any] | None]] = []
        super().__init__(self._play, name, version="script", floats=floats, **kw)

    def _play(self, messages: list[Message]) -> dict[str, Any]:
        turn = sum(1 for role, _ in messages if role == "user")
        if turn == 1:
            self.sent.append([])
        self.sent[-1].append(messages[-1][1])
        if turn > len(self.script):
            raise TargetProtocolError(f"the script has {len(self.script)} steps; turn {turn} has none")
        step = self.script[turn - 1]
        if isinstance(step, TargetError):
            raise step
        return step(messages) if callable(step) else step


@dataclass(frozen=True)
class Roster:
    """Agents of known behaviour that the product runs in-process (calibration, the shortcut
    battery). The product has none of its own: an entry point hands one in (the reference
    agents of :mod:`mock_agents` come through :func:`evaluator_agent.cli.demo.reference_roster`).

    ``make_target(name)`` returns a fresh in-process target and raises ``KeyError`` or
    ``ValueError`` for an unknown name; it must be a module-level function, because worker
    processes receive it by pickling.
    """

    make_target: Callable[[str], LocalTarget]
    references: tuple[str, ...]
    shortcuts: tuple[str, ...] = ()
    combination: str | None = None
    pool: tuple[str, ...] = ()

    def kind_of(self, name: str) -> str:
        """``reference`` (agents of known skill), ``combination`` or ``shortcut``."""
        if name in self.references:
            return "reference"
        return "combination" if name == self.combination else "shortcut"
