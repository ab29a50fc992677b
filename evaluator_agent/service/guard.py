"""ASGI middleware that puts the proctor's A2A service on a public endpoint safely.

In front of the a2a-sdk routes it enforces, in this order:

1. **Bearer API keys** (optional). Every path but ``open_paths`` (agent card, health) needs
   ``Authorization: Bearer <key>``; keys are compared in constant time. Missing or wrong key:
   HTTP 401 with ``WWW-Authenticate: Bearer`` (RFC 6750) and a JSON body naming the problem
   (JSON-RPC shaped, code -32000, on the JSON-RPC path).
2. **Body size cap**. A declared ``Content-Length`` over the cap is refused with HTTP 413 before
   anything is buffered; a chunked body is counted while it streams and refused as soon as it
   passes the cap, so the guard never holds more than ``max_body_bytes``. An HTTP/1.1 client
   that is still sending only reads the answer if the server reads what it sends (Python's
   urllib and http.client send the whole body before they read: closing on them is a broken
   pipe, not a 413), so the guard lingers as nginx does: a refused body at most
   ``linger_bytes`` (8 MiB) over the cap is read and dropped, for at most ``linger_s`` (2 s),
   before the 413; anything bigger or slower gets the 413 with ``Connection: close`` and the
   rest is never read. Nothing read while lingering is kept.
3. **Well-formed JSON**. The (capped) body is checked once: strict UTF-8 (a UTF-8 BOM is
   tolerated), nesting depth at most ``max_depth`` (found without recursion and without parsing),
   then ``json.loads``. On the JSON-RPC path a failure is answered the JSON-RPC 2.0 way, HTTP 200:

   - bytes that are not UTF-8, or not JSON  -> -32700 Parse error
   - ``NaN``, ``Infinity``, ``-Infinity``      -> -32700 Parse error (not JSON, though Python's
     json reads them; a NaN in a stored task broke GetTask/ListTasks for every client)
   - JSON nested deeper than ``max_depth``   -> -32600 Invalid Request
   - a number literal longer than 100 characters, or beyond a double's range (``1e400``)
                                             -> -32600 Invalid Request (Python's ``int()``
     refuses more than 4,300 digits: without the guard that was an HTTP 500)

   Deep nesting gets -32600, not -32700: the text may be perfectly good JSON (RFC 8259 lets a
   parser limit depth), what is wrong is a request beyond this server's limits. The error's
   ``data`` carries ``{"max_depth": N}`` (``{"max_number_chars": N}`` for a long number) so a
   client can tell it from a syntax error. Without the
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
import math
import re
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from itertools import accumulate
from typing import Any

import anyio
from starlette.authentication import AuthCredentials, SimpleUser

from evaluator_agent.core.keys import parse_api_keys, principal_of  # noqa: F401 - re-exported

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

DEFAULT_MAX_BODY_BYTES = 1024 * 1024
MAX_JSON_DEPTH = 64
DEFAULT_LINGER_BYTES = 8 * 1024 * 1024  # a refused body up to this much over the cap is read and dropped
DEFAULT_LINGER_S = 2.0  # ... for at most this long
MAX_NUMBER_CHARS = 100  # a JSON number literal (sign, digits, fraction, exponent) at most this long

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
    """Why a body was refused: ``kind`` is "parse" (not UTF-8 / not JSON, NaN, Infinity), "depth"
    (nested too deep) or "number" (a number literal too long, or beyond a double's range)."""

    def __init__(self, kind: str, message: str, data: dict[str, Any] | None = None):
        super().__init__(message)
        self.kind = kind
        self.data = data  # the JSON-RPC error's ``data``: which limit was passed


def _refuse_constant(name: str) -> Any:
    raise BodyError("parse", f"Parse error: {name} is not JSON (RFC 8259 has no NaN or Infinity)")


def _number_too_long(text: str, max_chars: int) -> BodyError:
    shown = text if len(text) <= 24 else f"{text[:12]}...{text[-6:]} ({len(text)} characters)"
    return BodyError("number", f"Invalid Request: number {shown} is longer than {max_chars} characters",
                     {"max_number_chars": max_chars})


def check_json(body: bytes, max_depth: int = MAX_JSON_DEPTH, max_number_chars: int = MAX_NUMBER_CHARS) -> Any:
    """Validate and decode a JSON body the strict way; raises :class:`BodyError`.

    Besides syntax and depth, numbers are checked: ``NaN`` / ``Infinity`` (which Python's json
    accepts, though no JSON has them) are a parse error; a number literal longer than
    ``max_number_chars`` or one that overflows a double (``1e400``) is refused as a request beyond
    limits. Either would otherwise reach the task store, where a non-finite number makes every
    later serialization of the task (GetTask, ListTasks for every client) fail, and a huge integer
    makes ``int()`` raise (Python refuses over 4,300 digits) or burn CPU."""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise BodyError("parse", f"Parse error: body is not UTF-8 (invalid byte at offset {e.start})") from None
    if json_depth_exceeds(body, max_depth):
        raise BodyError("depth", f"Invalid Request: JSON nested deeper than {max_depth} levels", {"max_depth": max_depth})

    def parse_int(s: str) -> int:
        if len(s) > max_number_chars:
            raise _number_too_long(s, max_number_chars)
        return int(s)

    def parse_float(s: str) -> float:
        if len(s) > max_number_chars:
            raise _number_too_long(s, max_number_chars)
        v = float(s)
        if not math.isfinite(v):
            raise BodyError("number", f"Invalid Request: number {s} is out of range (beyond a double's largest value)")
        return v

    try:
        return json.loads(text, parse_constant=_refuse_constant, parse_int=parse_int, parse_float=parse_float)
    except json.JSONDecodeError as e:
        raise BodyError("parse", f"Parse error: {e}") from None
    except RecursionError:  # cannot happen below the depth limit; never let it become a 500
        raise BodyError("depth", f"Invalid Request: JSON nested deeper than {max_depth} levels",
                        {"max_depth": max_depth}) from None
    except ValueError as e:  # anything else json may raise on odd input: a parse error, never a 500
        raise BodyError("parse", f"Parse error: {e}"[:300]) from None


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
        open_prefixes: Iterable[str] = (),
        jsonrpc_paths: Iterable[str] = ("/",),
        form_prefixes: Iterable[str] = (),
        realm: str = "incident-proctor",
        linger_bytes: int = DEFAULT_LINGER_BYTES,
        linger_s: float = DEFAULT_LINGER_S,
    ):
        if max_body_bytes < 1:
            raise ValueError("max_body_bytes must be >= 1")
        if linger_bytes < 0 or linger_s < 0:
            raise ValueError("linger_bytes and linger_s must be >= 0")
        self.app = app
        self.keys = [k.encode() for k in parse_api_keys(api_keys)]
        self.max_body_bytes = max_body_bytes
        # Lingering: a refused body up to ``linger_bytes`` over the cap is read and dropped, for at
        # most ``linger_s`` seconds, before the answer, so that a client that sends its whole body
        # before it reads (Python's urllib and http.client) reads a clean 413 instead of a broken
        # pipe. ASGI cannot read after the response (uvicorn then reports a disconnect), so the
        # reading comes first. Bigger bodies, or slower ones, get the 413 with Connection: close.
        self.linger_bytes = linger_bytes
        self.linger_s = linger_s
        self.max_depth = max_depth
        self.open_paths = frozenset(open_paths)
        # mounted apps with a credential of their own (the MCP and REST surfaces): PREFIX and PREFIX/...
        self.open_prefixes = tuple(p.rstrip("/") for p in open_prefixes)
        self.jsonrpc_paths = frozenset(jsonrpc_paths)
        # an app of HTML forms (the web interface): bodies are size-capped, not read as JSON
        self.form_prefixes = tuple(p.rstrip("/") for p in form_prefixes)
        self.realm = realm

    def _open_prefix(self, path: str) -> bool:
        return any(path == p or path.startswith(p + "/") for p in self.open_prefixes)

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

        if self.keys and path not in self.open_paths and not self._open_prefix(path):
            problem = self._auth_problem(scope)
            if problem is not None:
                fits = length is None or length <= self.max_body_bytes
                drained = may_drain and fits and await self._linger(receive, self.max_body_bytes)
                await self._unauthorized(send, rpc, problem, unread_body=has_body and not drained)
                return

        if not has_body:
            await self.app(scope, receive, send)
            return

        if length is not None and length > self.max_body_bytes:
            # Read (and drop) a bounded overshoot so an ordinary client gets a clean 413; hang up on
            # anything bigger without reading a byte of it.
            drained = may_drain and length <= self.max_body_bytes + self.linger_bytes \
                and await self._linger(receive, length)
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
                drained = not more or await self._linger(receive, self.max_body_bytes + self.linger_bytes - seen)
                await self._too_large(send, rpc, "body", unread_body=not drained)
                return
            body += chunk
            if not message.get("more_body", False):
                break
        data = bytes(body)
        del body

        forms = any(path == p or path.startswith(p + "/") for p in self.form_prefixes)
        if (data or rpc) and not forms:
            try:
                check_json(data, self.max_depth, MAX_NUMBER_CHARS)
            except BodyError as e:
                if rpc:
                    code = PARSE_ERROR if e.kind == "parse" else INVALID_REQUEST
                    await _send_json(send, 200, _rpc_error(code, str(e), e.data))
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

    async def _linger(self, receive: Receive, budget: int) -> bool:
        """Read and drop the rest of a refused body while it fits in ``budget`` bytes and ``linger_s``
        seconds: True when the body ended (the connection can stay open), False when it is bigger
        or slower (hang up instead)."""
        if budget < 0:
            return False
        with anyio.move_on_after(self.linger_s):
            return await self._discard(receive, budget)
        return False

    @staticmethod
    async def _discard(receive: Receive, budget: int) -> bool:
        """Read and drop the rest of a body while it fits in ``budget`` bytes: True when the body
        ended, False when it is bigger or the client went away."""
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
        matched = None
        for key in self.keys:  # every key compared, in constant time each
            if hmac.compare_digest(token, key) and matched is None:
                matched = key
        if matched is None:
            return "invalid"
        # The caller's principal: tasks and runs belong to it (a2a-sdk files tasks by
        # scope["user"].display_name). Derived from the key, never the key itself.
        scope["user"] = SimpleUser(principal_of(matched))
        scope["auth"] = AuthCredentials(["authenticated"])
        return None

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
