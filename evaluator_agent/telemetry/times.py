"""Time arguments of the tools (``from`` / ``to``): ISO 8601, epoch seconds, ``now-15m``.

The accepted forms are documented in ``query.py``.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Any

from evaluator_agent.telemetry.query_values import QueryError

__all__ = ["parse_time"]

_REL = re.compile(r"^now\s*(?:([+-])\s*(\d+(?:\.\d+)?)\s*([smhdw]))?$", re.IGNORECASE)
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_TIME_FORMS = "expected ISO 8601 (2026-03-02T14:05:00Z), epoch seconds, or now / now-<N><s|m|h|d>"


def parse_time(value: Any, now: float) -> float:
    """Epoch seconds for a time argument; relative forms are relative to ``now``."""
    t = _parse_time(value, now)
    if not 0 <= t < _MAX_EPOCH:
        raise QueryError(f"time {value!r} is out of range (1970 to 5138)")
    return t


_MAX_EPOCH = 1e11


def _parse_time(value: Any, now: float) -> float:
    if isinstance(value, bool):
        raise QueryError(f"invalid time {value!r}: {_TIME_FORMS}")
    if isinstance(value, int | float):
        return _epoch(float(value), value)
    if not isinstance(value, str):
        raise QueryError(f"invalid time {value!r}: {_TIME_FORMS}")
    text = value.strip()
    if not text:
        raise QueryError(f"empty time: {_TIME_FORMS}")
    m = _REL.match(text)
    if m:
        if m.group(1) is None:
            return float(now)
        delta = float(m.group(2)) * _UNIT_S[m.group(3).lower()]
        return float(now) - delta if m.group(1) == "-" else float(now) + delta
    try:
        return _epoch(float(text), value)
    except ValueError:
        pass
    iso = text[:-1] + "+00:00" if text[-1:] in "zZ" else text
    try:
        dt = datetime.fromisoformat(iso)
    except ValueError:
        raise QueryError(f"invalid time {value!r}: {_TIME_FORMS}") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def _epoch(x: float, original: Any) -> float:
    if not math.isfinite(x) or x < 0:
        raise QueryError(f"invalid time {original!r}: epoch seconds must be a finite number >= 0")
    # Datadog APIs often speak milliseconds; no real epoch second is above 1e11 (year 5138).
    return x / 1000.0 if x >= _MAX_EPOCH else x

