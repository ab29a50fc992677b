"""Numbers from environment variables, with a clear error instead of a traceback deep inside."""

from __future__ import annotations

import os


def env_int(name: str, default: int, *, minimum: int = 1) -> int:
    """``$name`` as an integer >= ``minimum``; ``default`` when unset or blank; ValueError otherwise."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"${name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise ValueError(f"${name} must be >= {minimum}, got {value}")
    return value


def env_float(name: str, default: float) -> float:
    """``$name`` as a non-negative number; ``default`` when unset, blank or not a number."""
    try:
        return max(0.0, float(os.environ.get(name, "").strip() or default))
    except ValueError:
        return default
