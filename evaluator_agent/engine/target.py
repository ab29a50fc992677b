"""Talking to the agent under test over A2A (1.0, or 0.3 when its card says so).

Targets are untrusted: every reply is size-capped while it streams in (transport.py), every
turn has a deadline, and every failure is classified so that the orchestrator can tell an
agent's fault (garbage, silence) from the network's or our own (conversation.py).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import orjson

from evaluator_agent.engine.conversation import (
    CardTooLarge,
    Reply,
    ReplyTooLarge,
    TargetBlocked,
    TargetError,
    TargetInfo,
    TargetProtocolError,
    TargetTimeout,
    TargetUnavailable,
)
from evaluator_agent.engine.transport import (
    card_url_of,
    classify,
    validate_target_url,
)

MAX_CARD_BYTES = 256_000
# Messages of the task's history a reply may carry: the proctor reads a reply from the task's
# artifacts or status message, else from the last agent message of the history. Without a
# bound, an agent that streams its tool steps as status updates (ADK does) returns its whole
# history with every reply, and an MCP-heavy turn goes over the reply cap.
HISTORY_LENGTH = 2


class Target:
    """A resolved target agent. Create with :meth:`connect`; open one :class:`Conversation` per investigation."""

    def __init__(self, info: TargetInfo, client: Any):
        self.info = info
        self._client = client
        self._fast_send = _fast_sender(client)  # decided once per target: its card does not change

    @classmethod
    async def connect(cls, url: str, http: httpx.AsyncClient, timeout_s: float = 10.0) -> Target:
        from a2a.client import ClientConfig, ClientFactory
        from a2a.client.card_resolver import parse_agent_card
        from google.protobuf.json_format import MessageToDict

        card_url = card_url_of(validate_target_url(url))

        async def fetch() -> tuple[int, bytes]:
            # Streamed and counted after decoding: a compressed card may not inflate past the cap.
            async with http.stream("GET", card_url, headers={"Accept": "application/json"}) as resp:
                if resp.status_code != 200:
                    return resp.status_code, b""
                body = bytearray()
                async for chunk in resp.aiter_bytes():
                    body += chunk
                    if len(body) > MAX_CARD_BYTES:
                        raise CardTooLarge(f"agent card too large: {card_url} is over {MAX_CARD_BYTES} bytes")
                return 200, bytes(body)

        try:
            status, content = await asyncio.wait_for(fetch(), timeout_s)
        except BaseException as e:  # noqa: BLE001 - classify everything the network can throw
            if isinstance(e, asyncio.CancelledError):
                raise
            err = classify(e)
            if isinstance(err, TargetBlocked | CardTooLarge):
                raise err from None
            if isinstance(err, ReplyTooLarge):  # the transport's own cap (Content-Length or bytes)
                raise CardTooLarge(f"agent card too large: {card_url}: {err}") from None
            if isinstance(err, TargetProtocolError):  # e.g. a content coding we do not accept
                raise TargetProtocolError(f"agent card {card_url} unusable: {err}") from None
            raise TargetUnavailable(f"agent card {card_url} unreachable: {err}") from e
        if status != 200:
            raise TargetUnavailable(f"agent card {card_url} answered HTTP {status}")
        try:
            raw = json.loads(content)
            card = parse_agent_card(dict(raw))
        except Exception as e:  # noqa: BLE001 - any parse failure is the card's fault
            raise TargetProtocolError(f"agent card {card_url} is not a valid A2A agent card: {e}") from e
        if not card.supported_interfaces:
            raise TargetProtocolError(f"agent card {card_url} lists no interface URL")
        factory = ClientFactory(ClientConfig(streaming=False, httpx_client=http, supported_protocol_bindings=["JSONRPC", "HTTP+JSON"]))
        try:
            client = factory.create(card)
        except Exception as e:  # noqa: BLE001
            raise TargetProtocolError(f"no usable transport in agent card {card_url}: {e}") from e
        iface = card.supported_interfaces[0]
        info = TargetInfo(
            url=url,
            name=card.name or "unnamed-agent",
            version=card.version or "",
            protocol_version=iface.protocol_version or "",
            card=MessageToDict(card),
        )
        return cls(info, client)

    def conversation(self) -> A2AConversation:
        return A2AConversation(self._client, self._fast_send)

    async def close(self) -> None:
        # The httpx client is shared and owned by the caller; nothing else to release.
        return None


def data_part(data: dict[str, Any]) -> Any:
    """A DataPart built with Struct.update: about twice as fast as json_format.ParseDict
    (what a2a.helpers.new_data_part uses), which matters for large tool results."""
    from a2a.types import Part
    from google.protobuf import struct_pb2

    value = struct_pb2.Value()
    try:
        value.struct_value.update(data)
    except (TypeError, ValueError):
        from a2a.helpers import new_data_part

        return new_data_part(json.loads(json.dumps(data, default=str)))
    return Part(data=value)


def _fast_sender(client: Any) -> Callable[[dict[str, Any], str, str, str | None], Awaitable[Any]] | None:
    """SendMessage over the A2A 1.0 JSON-RPC binding with the request body written by orjson.

    The SDK builds a request as protobuf and turns it back into JSON with protobuf's pure-Python
    ``MessageToDict``: for a tool-results message of a few hundred KB that was most of the
    proctor's CPU per turn (a Struct built value by value, walked again, dumped by ``json``).
    Here the body is the same JSON-RPC request written directly from the dict we already have
    (tests/test_fast_path.py checks it against the SDK's encoding); everything after it is the
    SDK's own: sending (``send_http_request``), the JSON-RPC envelope check and error mapping,
    and reading the response into protobuf (``parse_lenient``), so replies are read and
    classified exactly as before. Only for a target whose chosen interface is 1.x JSON-RPC
    (not 0.3, not HTTP+JSON, no tenant); others keep the SDK's path. None when not applicable."""
    from a2a.client.transports.jsonrpc import JsonRpcTransport

    transport = getattr(client, "_transport", None)
    if type(transport) is not JsonRpcTransport or getattr(client, "_interceptors", None):
        return None
    check = getattr(transport, "_check_jsonrpc_response", None)
    http, url = getattr(transport, "httpx_client", None), getattr(transport, "url", None)
    if check is None or http is None or not url:
        return None

    async def send(data: dict[str, Any], text: str, context_id: str, task_id: str | None) -> Any:
        from a2a.client.transports.http_helpers import send_http_request
        from a2a.types import SendMessageResponse
        from a2a.utils.proto_utils import parse_lenient

        payload = send_message_body(data, text, context_id, task_id)
        try:
            body = orjson.dumps(payload)
        except (TypeError, orjson.JSONEncodeError):  # e.g. an integer beyond 64 bits: the slow encoder copes
            body = json.dumps(payload, default=str).encode()
        request = http.build_request("POST", url, content=body, headers={"Content-Type": "application/json"})
        response_data = check(await send_http_request(http, request))
        return parse_lenient(response_data["result"], SendMessageResponse())

    return send


def send_message_body(data: dict[str, Any], text: str, context_id: str, task_id: str | None) -> dict[str, Any]:
    """The JSON-RPC SendMessage request the SDK would send for a DataPart and a TextPart."""
    message: dict[str, Any] = {
        "messageId": str(uuid.uuid4()),
        "contextId": context_id,
        "role": "ROLE_USER",
        "parts": [{"data": data}, {"text": text}],
    }
    if task_id:
        message["taskId"] = task_id
    return {"jsonrpc": "2.0", "id": str(uuid.uuid4()), "method": "SendMessage",
            "params": {"message": message, "configuration": {"historyLength": HISTORY_LENGTH}}}


def _part_payload(part: Any) -> tuple[dict[str, Any] | None, str]:
    """(a DataPart's object, "") or (None, text): a DataPart that is not an object counts as text."""
    from evaluator_agent.core.protocol import part_value

    value, text = part_value(part)
    if part.HasField("data"):
        return (value, "") if isinstance(value, dict) else (None, json.dumps(value))
    return None, text or ""


# Polling a target task left SUBMITTED/WORKING: GetTask after these delays, then every POLL_MAX_S.
POLL_FIRST_S = 0.05
POLL_MAX_S = 1.0


class A2AConversation:
    """One A2A context with the target. Sends a message, waits for one reply.

    A target may answer with a task that is not finished (submitted or working) and carries no
    usable reply yet; the conversation then polls it with GetTask, backing off from
    ``POLL_FIRST_S`` to ``POLL_MAX_S``, until it is completed, needs input, fails, or the turn's
    deadline passes (a :class:`TargetTimeout` that says the task was still running)."""

    def __init__(self, client: Any, fast_send: Callable[..., Awaitable[Any]] | None = None):
        self._client = client
        self._fast_send = fast_send
        self.context_id = str(uuid.uuid4())
        self._task_id: str | None = None
        self._polling: tuple[str, str, int] | None = None  # (task id, state, GetTask calls) while polling

    async def send(self, data: dict[str, Any], text: str, timeout_s: float) -> Reply:
        self._polling = None
        try:
            return await asyncio.wait_for(self._send(data, text), timeout_s)
        except asyncio.CancelledError:
            raise
        except TimeoutError as e:
            if self._polling is not None:
                task_id, state, polls = self._polling
                raise TargetTimeout(
                    f"no reply within {timeout_s:g}s: target task {task_id[:64]} still {state} "
                    f"after {polls} GetTask poll{'s' if polls != 1 else ''}"
                ) from e
            raise TargetTimeout(f"no reply within {timeout_s:g}s") from e
        except TargetError:
            raise
        except Exception as e:  # noqa: BLE001 - anything else is classified, never propagated raw
            raise classify(e) from e

    async def _send(self, data: dict[str, Any], text: str) -> Reply:
        from a2a.helpers import new_message, new_text_part
        from a2a.types import Role, SendMessageConfiguration, SendMessageRequest

        last = None
        if self._fast_send is not None:
            last = await self._fast_send(data, text, self.context_id, self._task_id)
        else:
            msg = new_message(
                [data_part(data), new_text_part(text)],
                context_id=self.context_id,
                task_id=self._task_id,
                role=Role.ROLE_USER,
            )
            request = SendMessageRequest(message=msg, configuration=SendMessageConfiguration(history_length=HISTORY_LENGTH))
            async for event in self._client.send_message(request):
                last = event
        if last is None:
            raise TargetProtocolError("target sent no response")
        if last.HasField("message"):
            self._task_id = None
            return _reply_from_parts(list(last.message.parts))
        if last.HasField("task"):
            return await self._task_reply(last.task)
        raise TargetProtocolError("target response holds neither a message nor a task")

    async def _task_reply(self, task: Any) -> Reply:
        """The reply a task holds; a running task without one is polled (GetTask) until it has one."""
        from a2a.types import GetTaskRequest, TaskState

        running = (TaskState.TASK_STATE_SUBMITTED, TaskState.TASK_STATE_WORKING)
        delay = POLL_FIRST_S
        polls = 0
        while True:
            state = task.status.state
            if state in (TaskState.TASK_STATE_FAILED, TaskState.TASK_STATE_REJECTED, TaskState.TASK_STATE_CANCELED):
                why = " ".join(p.text for p in task.status.message.parts if p.HasField("text"))[:300]
                raise TargetProtocolError(f"target task ended {TaskState.Name(state)}: {why or 'no message'}")
            if state == TaskState.TASK_STATE_AUTH_REQUIRED:
                raise TargetProtocolError("target task needs authentication (TASK_STATE_AUTH_REQUIRED), "
                                          "which the proctor cannot provide")
            # Continue the same task when the agent asks for input; a finished task means a new one next turn.
            self._task_id = task.id if state == TaskState.TASK_STATE_INPUT_REQUIRED else None
            reply = _reply_from_parts(_task_parts(task))
            if state not in running or reply.obj is not None:
                return reply
            if not task.id:
                raise TargetProtocolError(f"target task is {TaskState.Name(state)} and has no id to poll")
            self._polling = (task.id, TaskState.Name(state), polls)
            await asyncio.sleep(delay)
            delay = min(delay * 2, POLL_MAX_S)
            polled = await self._client.get_task(GetTaskRequest(id=task.id))
            polls += 1
            if polled.id and polled.id != task.id:
                raise TargetProtocolError(f"GetTask {task.id[:64]} answered with another task ({polled.id[:64]})")
            task = polled
            self._polling = (task.id, TaskState.Name(task.status.state), polls)


def _task_parts(task: Any) -> list[Any]:
    from a2a.types import Role

    parts: list[Any] = []
    for art in task.artifacts:
        parts.extend(art.parts)
    if task.status.HasField("message"):
        parts.extend(task.status.message.parts)
    if not parts:
        agent_msgs = [m for m in task.history if m.role == Role.ROLE_AGENT]
        if agent_msgs:
            parts.extend(agent_msgs[-1].parts)
    return parts


def _reply_from_parts(parts: list[Any]) -> Reply:
    from evaluator_agent.core.protocol import extract_json_object

    texts: list[str] = []
    found: dict[str, Any] | None = None
    size = 0
    # Later parts win: agents often stream thoughts first and put the answer last.
    for part in parts:
        obj, txt = _part_payload(part)
        if obj is not None:
            size += len(json.dumps(obj, default=str))
            if "tool_calls" in obj or "diagnosis" in obj:
                found = obj
        if txt:
            size += len(txt)
            texts.append(txt)
    if found is None:
        for txt in reversed(texts):
            obj = extract_json_object(txt)
            if obj is not None and ("tool_calls" in obj or "diagnosis" in obj):
                found = obj
                break
    return Reply(obj=found, text="\n".join(texts)[:4000], size=size)
