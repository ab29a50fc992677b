"""Talking to the agent under test over A2A (1.0, or 0.3 when its card says so).

Targets are untrusted: every reply is size-capped while it streams in, every turn has a
deadline, and every failure is classified so that the orchestrator can tell an agent's
fault (garbage, silence) from the network's or our own.

    TargetError
     ├── TargetUnavailable   card unreachable, connection refused, DNS ...   (kind "network")
     ├── TargetTimeout       no reply within the turn deadline              (kind "timeout")
     ├── ReplyTooLarge       reply body over the cap                         (kind "too_large")
     ├── TargetBlocked       destination refused by the SSRF guard           (kind "blocked")
     └── TargetProtocolError a reply we cannot use: failed task, no parts... (kind "protocol")
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import socket
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

AGENT_CARD_PATH = "/.well-known/agent-card.json"
DEFAULT_MAX_REPLY_BYTES = 1_000_000
MAX_CARD_BYTES = 256_000


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


class _CappedStream(httpx.AsyncByteStream):
    """Counts bytes as they arrive and stops reading past the cap (memory stays flat)."""

    def __init__(self, inner: httpx.AsyncByteStream, cap: int):
        self._inner = inner
        self._cap = cap

    async def __aiter__(self):  # type: ignore[override]
        seen = 0
        async for chunk in self._inner:
            seen += len(chunk)
            if seen > self._cap:
                raise ReplyTooLarge(f"reply larger than {self._cap} bytes")
            yield chunk

    async def aclose(self) -> None:
        await self._inner.aclose()


class TargetBlocked(TargetError):
    """The target URL points where the proctor must not go (SSRF guard)."""

    kind = "blocked"


def _ip_verdict(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, allow_private: bool) -> str | None:
    if ip.is_link_local or ip.is_multicast or ip.is_unspecified or ip.is_reserved:
        # Cloud metadata servers live here (169.254.169.254); no agent under test does.
        return f"{ip} is a link-local/reserved address"
    if not allow_private and (ip.is_private or ip.is_loopback):
        return f"{ip} is a private or loopback address (private targets are not allowed on this proctor)"
    return None


async def check_destination(host: str, port: int, allow_private: bool) -> None:
    """Refuse hosts that resolve to addresses a target may not have. Raises TargetBlocked."""
    try:
        ips = [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as e:
            raise TargetUnavailable(f"cannot resolve {host}: {e}") from e
        ips = [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]
    for ip in ips:
        why = _ip_verdict(ip, allow_private)
        if why:
            raise TargetBlocked(f"refusing to contact {host}: {why}")


def private_targets_allowed() -> bool:
    """Laptops evaluate agents on loopback; a public deployment sets PROCTOR_ALLOW_PRIVATE_TARGETS=0."""
    return os.environ.get("PROCTOR_ALLOW_PRIVATE_TARGETS", "1").lower() not in ("0", "false", "no")


class CappedTransport(httpx.AsyncBaseTransport):
    """An httpx transport whose responses may not exceed ``cap`` bytes, and which refuses
    destinations a target may not have (link-local always, private unless allowed)."""

    def __init__(self, cap: int, inner: httpx.AsyncBaseTransport | None = None, allow_private: bool | None = None):
        self._cap = cap
        self._inner = inner or httpx.AsyncHTTPTransport(retries=0)
        self._allow_private = private_targets_allowed() if allow_private is None else allow_private
        self._checked: dict[tuple[str, int], float] = {}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        key = (request.url.host, request.url.port or (443 if request.url.scheme == "https" else 80))
        # Re-check a host at most every 30 s: resolution is cheap but not free on the hot path.
        now = time.monotonic()
        if now - self._checked.get(key, -1e9) > 30:
            await check_destination(key[0], key[1], self._allow_private)
            self._checked[key] = now
        response = await self._inner.handle_async_request(request)
        length = response.headers.get("content-length")
        if length and length.isdigit() and int(length) > self._cap:
            await response.aclose()
            raise ReplyTooLarge(f"reply of {length} bytes is larger than the {self._cap}-byte cap")
        assert isinstance(response.stream, httpx.AsyncByteStream)
        response.stream = _CappedStream(response.stream, self._cap)
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


def make_http_client(
    max_reply_bytes: int = DEFAULT_MAX_REPLY_BYTES,
    transport: httpx.AsyncBaseTransport | None = None,
    allow_private: bool | None = None,
) -> httpx.AsyncClient:
    """One pooled client for all conversations with targets."""
    return httpx.AsyncClient(
        transport=CappedTransport(max_reply_bytes, transport, allow_private),
        timeout=httpx.Timeout(connect=10.0, read=None, write=30.0, pool=30.0),
        limits=httpx.Limits(max_connections=200, max_keepalive_connections=100),
        follow_redirects=False,
    )


def card_url_of(url: str) -> str:
    """Accept the card URL itself or the agent's base URL."""
    if url.endswith(".json"):
        return url
    return url.rstrip("/") + AGENT_CARD_PATH


def validate_target_url(url: Any) -> str:
    if not isinstance(url, str) or not url.strip():
        raise ValueError("target must be the URL of the agent card (a non-empty string)")
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"target {url!r} is not an http(s) URL")
    return url.strip()


def _root_cause(exc: BaseException) -> BaseException:
    seen = set()
    while exc.__cause__ is not None or exc.__context__ is not None:
        if id(exc) in seen:
            break
        seen.add(id(exc))
        if isinstance(exc, TargetError):
            return exc
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return exc


def classify(exc: BaseException) -> TargetError:
    """Map whatever the HTTP/A2A stack raised to one of our TargetErrors."""
    if isinstance(exc, TargetError):
        return exc
    root = _root_cause(exc)
    if isinstance(root, TargetError):
        return root
    for e in (exc, root):
        if isinstance(e, httpx.TimeoutException | asyncio.TimeoutError | TimeoutError):
            return TargetTimeout(f"target timed out: {type(e).__name__}")
        if isinstance(e, httpx.TransportError | ConnectionError | OSError):
            return TargetUnavailable(f"cannot reach target: {type(e).__name__}: {e}".strip())
    text = str(exc) or type(exc).__name__
    lowered = text.lower()
    if "timed out" in lowered or "timeout" in lowered:
        return TargetTimeout(f"target timed out: {text[:300]}")
    if any(s in lowered for s in ("connect", "network", "unreachable", "refused")):
        return TargetUnavailable(f"cannot reach target: {text[:300]}")
    return TargetProtocolError(f"{type(exc).__name__}: {text[:500]}")


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


class Target:
    """A resolved target agent. Create with :meth:`connect`; open one :class:`Conversation` per investigation."""

    def __init__(self, info: TargetInfo, client: Any):
        self.info = info
        self._client = client

    @classmethod
    async def connect(cls, url: str, http: httpx.AsyncClient, timeout_s: float = 10.0) -> Target:
        from a2a.client import ClientConfig, ClientFactory
        from a2a.client.card_resolver import parse_agent_card
        from google.protobuf.json_format import MessageToDict

        card_url = card_url_of(validate_target_url(url))
        try:
            resp = await asyncio.wait_for(http.get(card_url, headers={"Accept": "application/json"}), timeout_s)
        except BaseException as e:  # noqa: BLE001 - classify everything the network can throw
            if isinstance(e, asyncio.CancelledError):
                raise
            err = classify(e)
            if isinstance(err, TargetBlocked):
                raise err from None
            raise TargetUnavailable(f"agent card {card_url} unreachable: {err}") from e
        if resp.status_code != 200:
            raise TargetUnavailable(f"agent card {card_url} answered HTTP {resp.status_code}")
        if len(resp.content) > MAX_CARD_BYTES:
            raise TargetProtocolError(f"agent card {card_url} is larger than {MAX_CARD_BYTES} bytes")
        try:
            raw = json.loads(resp.content)
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

    def conversation(self) -> Conversation:
        return Conversation(self._client)

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


def _part_payload(part: Any) -> tuple[dict[str, Any] | None, str]:
    from google.protobuf.json_format import MessageToDict

    if part.HasField("data"):
        value = MessageToDict(part.data)
        if isinstance(value, dict):
            return value, ""
        return None, json.dumps(value)
    if part.HasField("text"):
        return None, part.text
    return None, ""


class Conversation:
    """One A2A context with the target. Sends a message, waits for one reply."""

    def __init__(self, client: Any):
        self._client = client
        self.context_id = str(uuid.uuid4())
        self._task_id: str | None = None

    async def send(self, data: dict[str, Any], text: str, timeout_s: float) -> Reply:
        try:
            return await asyncio.wait_for(self._send(data, text), timeout_s)
        except asyncio.CancelledError:
            raise
        except TimeoutError as e:
            raise TargetTimeout(f"no reply within {timeout_s:g}s") from e
        except TargetError:
            raise
        except Exception as e:  # noqa: BLE001 - anything else is classified, never propagated raw
            raise classify(e) from e

    async def _send(self, data: dict[str, Any], text: str) -> Reply:
        from a2a.helpers import new_message, new_text_part
        from a2a.types import Role, SendMessageRequest, TaskState

        msg = new_message(
            [data_part(data), new_text_part(text)],
            context_id=self.context_id,
            task_id=self._task_id,
            role=Role.ROLE_USER,
        )
        last = None
        async for event in self._client.send_message(SendMessageRequest(message=msg)):
            last = event
        if last is None:
            raise TargetProtocolError("target sent no response")
        parts: list[Any] = []
        if last.HasField("message"):
            parts = list(last.message.parts)
            self._task_id = None
        elif last.HasField("task"):
            task = last.task
            state = task.status.state
            if state in (TaskState.TASK_STATE_FAILED, TaskState.TASK_STATE_REJECTED, TaskState.TASK_STATE_CANCELED):
                why = " ".join(p.text for p in task.status.message.parts if p.HasField("text"))[:300]
                raise TargetProtocolError(f"target task ended {TaskState.Name(state)}: {why or 'no message'}")
            # Continue the same task when the agent asks for input; a finished task means a new one next turn.
            self._task_id = task.id if state == TaskState.TASK_STATE_INPUT_REQUIRED else None
            for art in task.artifacts:
                parts.extend(art.parts)
            if task.status.HasField("message"):
                parts.extend(task.status.message.parts)
            if not parts:
                agent_msgs = [m for m in task.history if m.role == Role.ROLE_AGENT]
                if agent_msgs:
                    parts.extend(agent_msgs[-1].parts)
        else:
            raise TargetProtocolError("target response holds neither a message nor a task")
        return _reply_from_parts(parts)


def _reply_from_parts(parts: list[Any]) -> Reply:
    from .protocol import extract_json_object

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
