"""HTTP to untrusted targets: replies capped while they stream in (decoded size), content
codings decoded with bounded output, destinations checked by the SSRF guard (egress.py), and
every failure of the HTTP/A2A stack classified as a :class:`~evaluator_agent.engine.conversation.TargetError`."""

from __future__ import annotations

import asyncio
import os
import time
import zlib
from typing import Any
from urllib.parse import urlsplit

import httpx

from evaluator_agent.engine.conversation import (
    DEFAULT_MAX_REPLY_BYTES,
    ReplyTooLarge,
    TargetBlocked,
    TargetError,
    TargetProtocolError,
    TargetTimeout,
    TargetUnavailable,
)
from evaluator_agent.engine.egress import pin

AGENT_CARD_PATH = "/.well-known/agent-card.json"


# Content codings the proctor asks for and decodes itself (each chunk with a bounded output, so a
# compressed bomb never expands past the cap in memory); anything else in a reply is refused.
ACCEPT_ENCODING = "gzip, deflate"
_DECODE_CHUNK = 64 * 1024  # decoded bytes handed on at a time
_ZLIB_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


class _CappedStream(httpx.AsyncByteStream):
    """Decodes the response's content coding (gzip, deflate or none) and counts *decoded* bytes as
    they arrive, stopping past the cap: memory stays flat whatever the compression ratio. A 306 KB
    gzip body that inflates to 300 MB is refused after ``cap`` bytes of output, never held whole."""

    def __init__(self, inner: httpx.AsyncByteStream, cap: int, encoding: str | None = None):
        self._inner = inner
        self._cap = cap
        self._encoding = encoding

    async def __aiter__(self):  # type: ignore[override]
        seen = 0
        if self._encoding is None:
            async for chunk in self._inner:
                seen += len(chunk)
                if seen > self._cap:
                    raise ReplyTooLarge(f"reply larger than {self._cap} bytes")
                yield chunk
            return
        wbits = _ZLIB_WBITS[self._encoding]
        d = zlib.decompressobj(wbits)
        first = True
        raw = 0
        async for chunk in self._inner:
            raw += len(chunk)
            if raw > self._cap:  # compressed bytes count too (and so does anything after the end)
                raise ReplyTooLarge(f"reply larger than {self._cap} bytes")
            data = chunk
            while data and not d.eof:
                try:
                    out = d.decompress(data, min(_DECODE_CHUNK, self._cap - seen + 1))
                except zlib.error as e:
                    if first and self._encoding == "deflate" and wbits > 0:
                        # "deflate" is often sent raw, without the zlib header (as httpx also allows).
                        wbits = -zlib.MAX_WBITS
                        d = zlib.decompressobj(wbits)
                        continue
                    raise TargetProtocolError(f"reply is not valid {self._encoding} data: {e}") from None
                first = False
                seen += len(out)
                if seen > self._cap:
                    raise ReplyTooLarge(f"reply larger than {self._cap} bytes once decoded ({self._encoding})")
                if out:
                    yield out
                data = d.unconsumed_tail
        try:
            out = d.flush()
        except zlib.error as e:
            raise TargetProtocolError(f"reply is not valid {self._encoding} data: {e}") from None
        seen += len(out)
        if seen > self._cap:
            raise ReplyTooLarge(f"reply larger than {self._cap} bytes once decoded ({self._encoding})")
        if out:
            yield out

    async def aclose(self) -> None:
        await self._inner.aclose()


def _content_coding(response: httpx.Response) -> str | None:
    """The one compression the response uses (None for none); refuses what we do not decode."""
    raw = response.headers.get("content-encoding", "")
    codings = [c.strip().lower() for c in raw.split(",") if c.strip() and c.strip().lower() != "identity"]
    if not codings:
        return None
    if len(codings) > 1 or codings[0] not in _ZLIB_WBITS:
        raise TargetProtocolError(
            f"reply uses Content-Encoding {raw[:60]!r}; the proctor accepts {ACCEPT_ENCODING} or none"
        )
    return codings[0]


async def resolve_destination(host: str, port: int, allow_private: bool) -> Any:
    """The checked address to connect to for ``host`` (:mod:`evaluator_agent.engine.egress`).
    Raises TargetBlocked, or TargetUnavailable when the name does not resolve."""
    from evaluator_agent.engine.egress import EgressRefused, ResolveFailed, resolve_checked

    try:
        return await resolve_checked(host, port, allow_private)
    except EgressRefused as e:
        raise TargetBlocked(str(e)) from None
    except ResolveFailed as e:
        raise TargetUnavailable(str(e)) from e


def private_targets_allowed() -> bool:
    """Laptops evaluate agents on loopback; a public deployment sets PROCTOR_ALLOW_PRIVATE_TARGETS=0."""
    return os.environ.get("PROCTOR_ALLOW_PRIVATE_TARGETS", "1").lower() not in ("0", "false", "no")


class CappedTransport(httpx.AsyncBaseTransport):
    """An httpx transport whose responses may not exceed ``cap`` bytes, and which refuses
    destinations a target may not have (link-local always, private unless allowed). A host is
    resolved and checked once per 30 s and the connection goes to the checked address (Host
    and SNI kept), so a name cannot answer one address to the check and another to the
    connection (DNS rebinding)."""

    def __init__(self, cap: int, inner: httpx.AsyncBaseTransport | None = None, allow_private: bool | None = None):
        self._cap = cap
        self._inner = inner or httpx.AsyncHTTPTransport(retries=0)
        self._allow_private = private_targets_allowed() if allow_private is None else allow_private
        self._checked: dict[tuple[str, int], tuple[float, Any]] = {}  # (host, port) -> (when, address)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        key = (request.url.host, request.url.port or (443 if request.url.scheme == "https" else 80))
        # Resolve and check a host at most every 30 s (cheap, but not free on the hot path); the
        # request always goes to the address that was checked.
        now = time.monotonic()
        when, address = self._checked.get(key, (-1e9, None))
        if now - when > 30:
            address = await resolve_destination(key[0], key[1], self._allow_private)
            if len(self._checked) > 1024:
                self._checked.clear()
            self._checked[key] = (now, address)
        response = await self._inner.handle_async_request(pin(request, address))
        length = response.headers.get("content-length")
        if length and length.isdigit() and int(length) > self._cap:
            await response.aclose()
            raise ReplyTooLarge(f"reply of {length} bytes is larger than the {self._cap}-byte cap")
        try:
            coding = _content_coding(response)
        except TargetProtocolError:
            await response.aclose()
            raise
        assert isinstance(response.stream, httpx.AsyncByteStream)
        response.stream = _CappedStream(response.stream, self._cap, coding)
        if coding is not None:
            # Decoded here, under the cap: httpx must not decode (again, and without a cap).
            del response.headers["content-encoding"]
            if "content-length" in response.headers:
                del response.headers["content-length"]
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
        headers={"Accept-Encoding": ACCEPT_ENCODING},
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
    for needle, plain in _UNREADABLE:
        if needle in lowered:
            return TargetProtocolError(f"unusable reply: {plain}")
    return TargetProtocolError(f"{type(exc).__name__}: {text[:500]}")


# what the JSON and protobuf layers say about a reply they cannot carry, said plainly
_UNREADABLE = (
    ("exceeds the limit (4300 digits)", "a JSON number has more than 4,300 digits"),
    ("serialize nan", "a JSON value is NaN, which JSON cannot carry"),
    ("serialize inf", "a JSON value is Infinity, which JSON cannot carry"),
    ("out of range float", "a JSON number is too large for a double"),
)
