"""ASGI middleware that puts the proctor's A2A service on a public endpoint safely.

In front of the a2a-sdk routes it enforces, in this order:

1. **Bearer API keys** (optional). Every path but ``open_paths`` (agent card, health) needs
   ``Authorization: Bearer <key>``; keys are compared in constant time. Missing or wrong key:
   HTTP 401 with ``WWW-Authenticate: Bearer`` (RFC 6750) and a JSON body naming the problem
   (JSON-RPC shaped, code -32000, on the JSON-RPC path).
2. **Body size cap**. A declared ``Content-Length`` over the cap is refused with HTTP 413 before
   anything is buffered; a chunked body is counted while it streams and refused as soon as it
   passes the cap, so the guard never holds more than ``max_body_bytes``. An HTTP/1.1 client
   that is still sending only reads the answer if the server reads what it sends, so a refused
   body at most ``overshoot_bytes`` (= the cap) too big is read and dropped first; anything
   bigger gets the 413 with ``Connection: close`` at once and the rest is never read.
3. **Well-formed JSON**. The (capped) body is checked once: strict UTF-8 (a UTF-8 BOM is
   tolerated), nesting depth at most ``max_depth`` (found without recursion and without parsing),
   then ``json.loads``. On the JSON-RPC path a failure is answered the JSON-RPC 2.0 way, HTTP 200:

   - bytes that are not UTF-8, or not JSON  -> -32700 Parse error
   - JSON nested deeper than ``max_depth``   -> -32600 Invalid Request

   Deep nesting gets -32600, not -32700: the text may be perfectly good JSON (RFC 8259 lets a
   parser limit depth), what is wrong is a request beyond this server's limits. The error's
   ``data`` carries ``{"max_depth": N}`` so a client can tell it from a syntax error. Without the
   guard, a2a-sdk 1.3 answers both non-UTF-8 bytes and deep nesting with -32603 Internal error
   (after a RecursionError inside ``json.loads``). Elsewhere (REST under /v1) failures are HTTP 400
   with ``{"error": {"code": 400, "status": "INVALID_ARGUMENT", "message": ...}}``, the shape
   a2a-sdk's REST binding uses.

A request that passes is handed on with the very same bytes replayed to the downstream app.
Requests without a body (GET, HEAD, DELETE with no Content-Length) pass straight through.
"""

from __future__ import annotations

import hmac
import json
import re
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from itertools import accumulate
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

DEFAULT_MAX_BODY_BYTES = 1024 * 1024
MAX_JSON_DEPTH = 64

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
UNAUTHORIZED = -32000  # implementation-defined server error range; a2a-sdk uses -32001..-32009

# A JSON string (escapes included), to drop before counting brackets; a ']' in a string is text.
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_STEP = [0] * 256
_STEP[ord("[")] = _STEP[ord("{")] = 1
_STEP[ord("]")] = _STEP[ord("}")] = -1


def json_depth_exceeds(body: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """True when ``body`` nests arrays/objects deeper than ``limit``. Iterative and C-speed:
    a body with at most ``limit`` opening brackets cannot be too deep and is not scanned at all."""
    if body.count(b"[") + body.count(b"{") <= limit:
        return False
    brackets = _STRING.sub(b"", body).translate(None, _NOT_BRACKETS)
    return max(accumulate(map(_STEP.__getitem__, brackets)), default=0) > limit


class BodyError(Exception):
    """Why a body was refused: ``kind`` is "parse" (not UTF-8 / not JSON) or "depth"."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


def check_json(body: bytes, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Validate and decode a JSON body the strict way; raises :class:`BodyError`."""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise BodyError("parse", f"Parse error: body is not UTF-8 (invalid byte at offset {e.start})") from None
    if json_depth_exceeds(body, max_depth):
        raise BodyError("depth", f"Invalid Request: JSON nested deeper than {max_depth} levels")
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise BodyError("parse", f"Parse error: {e}") from None
    except RecursionError:  # cannot happen below the depth limit; never let it become a 500
        raise BodyError("depth", f"Invalid Request: JSON nested deeper than {max_depth} levels") from None


def parse_api_keys(value: str | Iterable[str] | None) -> tuple[str, ...]:
    """Comma-separated string or iterable -> non-empty, stripped keys."""
    if value is None:
        return ()
    items = value.split(",") if isinstance(value, str) else list(value)
    return tuple(k.strip() for k in items if k and k.strip())


class Guard:
    """Pure ASGI middleware; see the module docstring. Usable with ``starlette.middleware.Middleware``."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        api_keys: Iterable[str] = (),
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        max_depth: int = MAX_JSON_DEPTH,
        open_paths: Iterable[str] = (),
        jsonrpc_paths: Iterable[str] = ("/",),
        realm: str = "incident-proctor",
    ):
        if max_body_bytes < 1:
            raise ValueError("max_body_bytes must be >= 1")
        self.app = app
        self.keys = [k.encode() for k in parse_api_keys(api_keys)]
        self.max_body_bytes = max_body_bytes
        # A refused body up to this much over the cap is read and dropped so that the client, which
        # is likely still sending, reads a clean 413; beyond it the connection is closed (an
        # ordinary HTTP/1.1 client then sees a reset rather than the 413: nothing better is possible
        # without a lingering close, which ASGI cannot do).
        self.overshoot_bytes = max(max_body_bytes, 64 * 1024)
        self.max_depth = max_depth
        self.open_paths = frozenset(open_paths)
        self.jsonrpc_paths = frozenset(jsonrpc_paths)
        self.realm = realm

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        rpc = path in self.jsonrpc_paths
        length, chunked, expect_continue = _body_framing(scope)
        has_body = chunked or (length is not None and length > 0)
        # A refused body is read and dropped while it is small, so that a client still sending it
        # reads a clean answer; not when the client waits for "100 Continue" (it sends nothing).
        may_drain = has_body and not expect_continue

        if self.keys and path not in self.open_paths:
            problem = self._auth_problem(scope)
            if problem is not None:
                fits = length is None or length <= self.max_body_bytes
                drained = may_drain and fits and await self._discard(receive, self.max_body_bytes)
                await self._unauthorized(send, rpc, problem, unread_body=has_body and not drained)
                return

        if not has_body:
            await self.app(scope, receive, send)
            return

        if length is not None and length > self.max_body_bytes:
            # Read (and drop) a modest overshoot so an ordinary client gets a clean 413; hang up on
            # anything bigger without reading a byte of it.
            drained = may_drain and length <= self.max_body_bytes + self.overshoot_bytes \
                and await self._discard(receive, length)
            await self._too_large(send, rpc, f"declared Content-Length {length}", unread_body=not drained)
            return

        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            if len(body) + len(chunk) > self.max_body_bytes:
                more = message.get("more_body", False)
                seen = len(body) + len(chunk)
                del body
                drained = not more or await self._discard(receive, self.max_body_bytes + self.overshoot_bytes - seen)
                await self._too_large(send, rpc, "body", unread_body=not drained)
                return
            body += chunk
            if not message.get("more_body", False):
                break
        data = bytes(body)
        del body

        if data or rpc:
            try:
                check_json(data, self.max_depth)
            except BodyError as e:
                if rpc:
                    code = INVALID_REQUEST if e.kind == "depth" else PARSE_ERROR
                    extra = {"max_depth": self.max_depth} if e.kind == "depth" else None
                    await _send_json(send, 200, _rpc_error(code, str(e), extra))
                else:
                    await _send_json(send, 400, _rest_error(400, "INVALID_ARGUMENT", str(e)))
                return

        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": data, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    # ----------------------------------------------------------------------------- helpers

    @staticmethod
    async def _discard(receive: Receive, budget: int) -> bool:
        """Read and drop the rest of a refused body while it fits in ``budget`` bytes: True when the
        body ended (the connection can stay open), False when it is bigger (hang up instead)."""
        while budget >= 0:
            message = await receive()
            if message["type"] == "http.disconnect":
                return False
            budget -= len(message.get("body", b""))
            if not message.get("more_body", False):
                return budget >= 0
        return False

    def _auth_problem(self, scope: Scope) -> str | None:
        header = None
        for name, value in scope.get("headers", ()):
            if name == b"authorization":
                header = value
                break
        if header is None:
            return "missing"
        scheme, _, token = header.strip().partition(b" ")
        token = token.strip()
        if scheme.lower() != b"bearer" or not token:
            return "malformed"
        ok = False
        for key in self.keys:  # every key compared, in constant time each
            ok |= hmac.compare_digest(token, key)
        return None if ok else "invalid"

    async def _unauthorized(self, send: Send, rpc: bool, problem: str, *, unread_body: bool) -> None:
        text = {
            "missing": "unauthorized: this proctor needs an API key: send 'Authorization: Bearer <key>'",
            "malformed": "unauthorized: the Authorization header must be 'Bearer <key>'",
            "invalid": "unauthorized: the API key is not valid",
        }[problem]
        challenge = f'Bearer realm="{self.realm}"'
        if problem != "missing":  # RFC 6750 3.1: no error code when no credentials were sent
            challenge += ', error="invalid_token"'
        body = _rpc_error(UNAUTHORIZED, text) if rpc else _rest_error(401, "UNAUTHENTICATED", text)
        await _send_json(send, 401, body, [(b"www-authenticate", challenge.encode())], close=unread_body)

    async def _too_large(self, send: Send, rpc: bool, what: str, *, unread_body: bool) -> None:
        text = f"payload too large: {what} exceeds the limit of {self.max_body_bytes} bytes"
        body = _rpc_error(INVALID_REQUEST, text, {"max_body_bytes": self.max_body_bytes}) if rpc \
            else _rest_error(413, "INVALID_ARGUMENT", text)
        await _send_json(send, 413, body, close=unread_body)


def _body_framing(scope: Scope) -> tuple[int | None, bool, bool]:
    """(Content-Length or None, chunked?, expects 100-continue?) from the request headers."""
    length: int | None = None
    chunked = expect = False
    for name, value in scope.get("headers", ()):
        if name == b"expect" and value.lower() == b"100-continue":
            expect = True
        if name == b"content-length":
            try:
                length = int(value)
            except ValueError:
                length = None
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    return length, chunked, expect


def _rpc_error(code: int, message: str, data: dict[str, Any] | None = None) -> dict[str, Any]:
    err: dict[str, Any] = {"code": code, "message": message}
    if data:
        err["data"] = data
    return {"jsonrpc": "2.0", "id": None, "error": err}


def _rest_error(code: int, status: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "status": status, "message": message}}


async def _send_json(send: Send, status: int, obj: Any, headers: list[tuple[bytes, bytes]] | None = None, *,
                     close: bool = False) -> None:
    payload = json.dumps(obj, separators=(",", ":")).encode()
    hdrs = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    hdrs += headers or []
    if close:
        hdrs.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": hdrs})
    await send({"type": "http.response.body", "body": payload, "more_body": False})
