"""One world, three surfaces: the investigation's tools reached in-band, over MCP, or over a
Datadog REST facade, all as calls of that one investigation.

An investigation that offers out-of-band surfaces opens a :class:`SurfaceSession` in the
process's :class:`SurfaceRegistry`: a random credential (``ipx_...``) that the briefing hands
the target with the URLs, bound to the investigation's :class:`~evaluator_agent.telemetry.tools.Toolbox`.
The MCP server (``service/mcp_surface.py``) and the REST facade (``service/rest_facade.py``)
resolve the credential from the request's ``DD-API-KEY`` / ``DD-APPLICATION-KEY`` headers and
call :meth:`SurfaceSession.call` with an in-band tool name and in-band arguments; they only
translate arguments in and results out. So every call, whatever its surface:

- answers from the same index with the same tool code (one source of truth);
- is recorded as a tool call of the investigation (``surface`` says which), is seen by the
  scorer for evidence credit, and is sent to Datadog like an in-band call;
- counts against the investigation's budget: at most ``max_turns x max_calls_per_turn``
  calls in all, in-band ones included (an in-band agent can make no more);
- stops working when the investigation ends: the credential is closed, and a later call gets
  :class:`SurfaceClosed` (HTTP 401/403). A credential resolves to its own investigation only.

Thread-safety: surface requests arrive on the server's event loop while the investigation runs
on a work loop (workloop.py); the registry and each session hold a lock, and the recording
callback runs under the session's lock.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

A2A, MCP, REST = "a2a", "mcp", "rest"
SURFACES: tuple[str, ...] = (A2A, MCP, REST)
TOKEN_PREFIX = "ipx_"
DEFAULT_MAX_SESSIONS = 10_000  # open sessions = investigations in flight; this is a safety net

# (surface, tool, arguments, outcome, duration_ms) -> None; called under the session's lock
Recorder = Callable[[str, str, dict[str, Any], Any, float], None]


class SurfaceError(Exception):
    """A surface call refused; ``status`` is the HTTP status a REST or MCP answer carries."""

    status = 403

    def __init__(self, message: str):
        super().__init__(message)


class SurfaceClosed(SurfaceError):
    """Unknown credential, or its investigation has ended."""

    status = 403


class SurfaceNotOffered(SurfaceError):
    """This evaluation does not offer the surface (the request restricted its surfaces)."""

    status = 403


class SurfaceBudget(SurfaceError):
    """The investigation's calls are used up."""

    status = 429


@dataclass
class SurfaceSession:
    """One investigation's credential for the out-of-band surfaces."""

    token: str
    toolbox: Any
    offered: frozenset[str]
    max_calls: int
    record: Recorder
    now: float  # the world's "now": what out-of-band surfaces take as the current time
    calls: int = 0
    closed: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count(self) -> bool:
        """Take one call from the budget (in-band calls do too); False when none is left."""
        with self._lock:
            if self.calls >= self.max_calls:
                return False
            self.calls += 1
            return True

    def call(self, surface: str, tool: str, arguments: dict[str, Any]) -> Any:
        """Run an in-band tool for ``surface``; returns its ``ToolOutcome``, recorded.
        Raises :class:`SurfaceError` (closed, not offered, budget) without running anything."""
        if self.closed:
            raise SurfaceClosed("this credential's investigation has ended")
        if surface not in self.offered:
            raise SurfaceNotOffered(f"this evaluation does not offer the {surface} surface")
        if not self.count():
            raise SurfaceBudget(f"the investigation's budget of {self.max_calls} tool calls is used up")
        t0 = time.perf_counter()
        outcome = self.toolbox.call(tool, arguments)
        dt = (time.perf_counter() - t0) * 1000
        with self._lock:
            if self.closed:  # ended while the call ran: the investigation is scored already
                raise SurfaceClosed("this credential's investigation has ended")
            self.record(surface, tool, arguments, outcome, dt)
        return outcome

    def recording(self) -> threading.Lock:
        """The lock under which the investigation records its own (in-band) calls."""
        return self._lock


class SurfaceRegistry:
    """The open sessions of a process, by credential; and the stable keys runs have claimed."""

    def __init__(self, max_sessions: int = DEFAULT_MAX_SESSIONS):
        self.max_sessions = max_sessions
        self._sessions: dict[str, SurfaceSession] = {}
        self._claimed: set[str] = set()
        self._lock = threading.Lock()

    def claim(self, key: str) -> None:
        """Reserve a stable key for one run (whose investigations then open their sessions
        under it, one at a time); SurfaceError when another run holds it."""
        with self._lock:
            if key in self._claimed:
                raise SurfaceError("this surface_key is in use by another evaluation")
            self._claimed.add(key)

    def release(self, key: str) -> None:
        with self._lock:
            self._claimed.discard(key)
            session = self._sessions.pop(key, None)
        if session is not None:
            session.closed = True

    def open(self, toolbox: Any, *, offered: Iterable[str], max_calls: int, record: Recorder, now: float,
             key: str | None = None) -> SurfaceSession:
        """A session under a fresh credential, or under the run's claimed stable ``key``."""
        session = SurfaceSession(
            token=key or TOKEN_PREFIX + secrets.token_urlsafe(24), toolbox=toolbox, offered=frozenset(offered),
            max_calls=max_calls, record=record, now=now,
        )
        with self._lock:
            if len(self._sessions) >= self.max_sessions:
                raise SurfaceError(f"more than {self.max_sessions} investigations hold surface credentials")
            if key is not None and (key not in self._claimed or key in self._sessions):
                raise SurfaceError("a stable surface_key serves one investigation at a time, of the run that claimed it")
            self._sessions[session.token] = session
        return session

    def resolve(self, token: str | None) -> SurfaceSession | None:
        """The open session of a credential, or None (unknown, malformed or ended). A stable key
        resolves to the investigation in progress of its run, and to nothing between two."""
        if not isinstance(token, str) or len(token) > 128:
            return None
        with self._lock:
            return self._sessions.get(token)

    def close(self, session: SurfaceSession) -> None:
        with session._lock:
            session.closed = True
        with self._lock:
            self._sessions.pop(session.token, None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._sessions)


def credential_of(headers: Any) -> str | None:
    """The credential a request carries: ``DD-APPLICATION-KEY`` or ``DD-API-KEY`` (Datadog's
    own headers, so a Datadog client configured with the keys sends it unchanged), or a bearer
    token. ``headers`` is any case-insensitive mapping (Starlette's)."""
    for name in ("dd-application-key", "dd-api-key"):
        value = headers.get(name)
        if value:
            return str(value).strip()
    auth = headers.get("authorization") or ""
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    return None


@dataclass(frozen=True)
class SurfaceConfig:
    """Where the out-of-band surfaces of a process are reached, and which a run offers."""

    registry: SurfaceRegistry
    base_url: str  # the proctor's public URL; MCP at base/mcp, the REST facade at base/datadog
    offered: frozenset[str] = frozenset(SURFACES)
    key: str | None = None  # a run's stable credential (agents whose MCP configuration is fixed)

    @property
    def mcp_url(self) -> str:
        return self.base_url.rstrip("/") + "/mcp"

    @property
    def rest_url(self) -> str:
        return self.base_url.rstrip("/") + "/datadog"

    def restricted(self, surfaces: Iterable[str] | None) -> SurfaceConfig:
        """The same, offering only ``surfaces`` (None: unchanged)."""
        if surfaces is None:
            return self
        return SurfaceConfig(self.registry, self.base_url, frozenset(surfaces) & self.offered, self.key)

    def stable(self, key: str | None) -> SurfaceConfig:
        """The same, with every investigation's session under the run's claimed ``key``."""
        return SurfaceConfig(self.registry, self.base_url, self.offered, key)

    def briefing(self, session: SurfaceSession) -> dict[str, Any]:
        """What the briefing tells the target: per surface, where and with which headers."""
        headers = {"DD-API-KEY": session.token, "DD-APPLICATION-KEY": session.token}
        out: dict[str, Any] = {}
        if MCP in session.offered:
            out[MCP] = {"url": self.mcp_url, "transport": "streamable-http", "headers": headers}
        if REST in session.offered:
            out[REST] = {"base_url": self.rest_url, "headers": headers,
                         "note": "Datadog REST API paths (/api/v1/..., /api/v2/...) under base_url; "
                                 "datadog-api-client: Configuration(host=base_url, api_key={'apiKeyAuth': key, 'appKeyAuth': key})"}
        return out
