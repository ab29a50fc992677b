"""The telemetry tools, answered from one indexed world snapshot.

``Toolbox(index, now).call(name, arguments)`` never raises: a bad call (unknown tool,
unknown or mistyped argument, bad query, ``from`` after ``to``, unknown service or trace)
comes back as ``ToolOutcome(ok=False, error=...)`` with a message the target can act on,
and a bug of ours as ``ok=False, error="internal error: ..."``.

This module holds the entry point (dispatch, argument caps and validation); the tools are
implemented per signal in ``tools_services.py``, ``tools_metrics.py``, ``tools_logs.py``,
``tools_traces.py`` and ``tools_events.py``, on the shared helpers of ``tools_base.py``.

Rules shared by every tool:

- Nothing after ``now`` exists: ``to`` is clamped to ``now``; the default window is
  ``[now-1h, now]`` (or the hour before ``to``).
- ``limit`` defaults to 50 and is at most 500 (200 for logs and spans).
- Listings page with an opaque ``next_cursor`` (null on the last page). A cursor is tied
  to the query and window it came from; any other query rejects it.
- A result is at most ``MAX_RESULT_BYTES`` of JSON: longer lists are cut, the result says
  ``"truncated": true``, and ``next_cursor`` continues right after the last item shown.
- A call's arguments are at most ``MAX_ARGUMENTS_BYTES`` of JSON; a larger call is refused
  before anything parses it, and is stored as its size, hash and a prefix
  (:func:`stored_arguments`), so a target cannot make the proctor parse or keep megabytes.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from jsonschema import Draft202012Validator

from evaluator_agent.telemetry.catalog import TOOL_SPECS
from evaluator_agent.telemetry.index import WorldIndex
from evaluator_agent.telemetry.query_values import QueryError
from evaluator_agent.telemetry.tools_base import MAX_RESULT_BYTES, ToolError, iso
from evaluator_agent.telemetry.tools_events import EventTools
from evaluator_agent.telemetry.tools_logs import LogTools
from evaluator_agent.telemetry.tools_metrics import MetricTools
from evaluator_agent.telemetry.tools_services import ServiceTools
from evaluator_agent.telemetry.tools_traces import TraceTools

__all__ = ["MAX_ARGUMENTS_BYTES", "MAX_RESULT_BYTES", "ToolOutcome", "Toolbox", "iso", "stored_arguments"]

log = logging.getLogger(__name__)

MAX_ARGUMENTS_BYTES = 8 * 1024  # the longest honest query is a few hundred bytes
STORED_PREFIX_CHARS = 256


@dataclass(frozen=True)
class ToolOutcome:
    """The answer to one tool call: ``content`` when ok, else ``error``."""

    ok: bool
    content: Any | None = None
    error: str | None = None


_VALIDATORS: dict[str, Draft202012Validator] = {}
_PROPS: dict[str, list[str]] = {}


def _validator(name: str) -> Draft202012Validator:
    if not _VALIDATORS:
        for spec in TOOL_SPECS:
            _VALIDATORS[spec.name] = Draft202012Validator(spec.parameters)
            _PROPS[spec.name] = list(spec.parameters.get("properties", {}))
    return _VALIDATORS[name]


def _arguments_json(arguments: Any) -> bytes | None:
    """The arguments as compact JSON, or None when they cannot be serialized."""
    try:
        return json.dumps(arguments, default=str, separators=(",", ":")).encode("utf-8", "replace")
    except (TypeError, ValueError, RecursionError):
        return None


def _arguments_size(arguments: Any) -> int:
    raw = _arguments_json(arguments)
    return MAX_ARGUMENTS_BYTES + 1 if raw is None else len(raw)


def stored_arguments(arguments: Any) -> Any:
    """What is recorded of a call's arguments: themselves, or for a call over the cap its
    size, sha256 and first characters (never the whole)."""
    raw = _arguments_json(arguments)
    if raw is not None and len(raw) <= MAX_ARGUMENTS_BYTES:
        return arguments
    if raw is None:
        raw = repr(type(arguments)).encode()
    return {
        "_oversized": True,
        "bytes": len(raw),
        "sha256": hashlib.sha256(raw).hexdigest(),
        "prefix": raw[: STORED_PREFIX_CHARS * 4].decode("utf-8", "ignore")[:STORED_PREFIX_CHARS],
    }


class Toolbox(ServiceTools, MetricTools, LogTools, TraceTools, EventTools):
    """The tools over one world, as seen at ``now`` (epoch seconds)."""

    def __init__(self, index: WorldIndex, now: float) -> None:
        self.index = index
        self.now = float(now)
        self._handlers: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "list_services": self._list_services,
            "get_service_dependencies": self._get_service_dependencies,
            "list_metrics": self._list_metrics,
            "query_metrics": self._query_metrics,
            "search_logs": self._search_logs,
            "aggregate_logs": self._aggregate_logs,
            "search_spans": self._search_spans,
            "get_trace": self._get_trace,
            "get_events": self._get_events,
            "get_monitors": self._get_monitors,
        }
        self._monitor_cache: dict[Any, tuple[str, list[dict[str, Any]]]] | None = None
        _validator("list_services")  # compile the argument schemas now, not in the first call

    # ------------------------------------------------------------------ entry point

    def call(self, name: str, arguments: dict[str, Any] | None) -> ToolOutcome:
        """Run one tool call. Never raises."""
        try:
            handler = self._handlers.get(name) if isinstance(name, str) else None
            if handler is None:
                return ToolOutcome(False, error=f"unknown tool {name!r}; tools: {', '.join(self._handlers)}")
            args = {} if arguments is None else arguments
            if not isinstance(args, dict):
                return ToolOutcome(False, error=f"arguments of {name} must be a JSON object, got {type(args).__name__}")
            size = _arguments_size(args)
            if size > MAX_ARGUMENTS_BYTES:
                return ToolOutcome(
                    False,
                    error=f"arguments of {name} are {size} bytes of JSON; at most {MAX_ARGUMENTS_BYTES} are accepted",
                )
            # Function-calling models often send null for an argument they mean to omit.
            args = {k: v for k, v in args.items() if v is not None}
            self._validate(name, args)
            return ToolOutcome(True, handler(args))
        except (ToolError, QueryError) as e:
            return ToolOutcome(False, error=str(e))
        except Exception as e:  # noqa: BLE001 - a bug of ours must not end the investigation
            log.exception("tool %s failed on %.300r", name, arguments)
            return ToolOutcome(False, error=f"internal error: {type(e).__name__}: {e}")

    def _validate(self, name: str, args: dict[str, Any]) -> None:
        v = _validator(name)
        allowed = _PROPS[name]
        unknown = [k for k in args if k not in allowed]
        if unknown:
            raise ToolError(
                f"unknown argument{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} for {name}; "
                f"allowed: {', '.join(allowed)}"
            )
        errors = sorted(v.iter_errors(args), key=lambda e: [str(p) for p in e.absolute_path])
        if errors:
            e = errors[0]
            where = ".".join(str(p) for p in e.absolute_path)
            raise ToolError(f"invalid arguments for {name}: {where + ': ' if where else ''}{e.message}")
