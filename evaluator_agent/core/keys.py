"""API keys and the principals they stand for (the A2A guard and the web interface share them)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable


def principal_of(key: bytes | str) -> str:
    """A stable, non-secret name for the holder of an API key."""
    raw = key.encode() if isinstance(key, str) else key
    return "key-" + hashlib.sha256(b"incident-proctor principal|" + raw).hexdigest()[:16]


def parse_api_keys(value: str | Iterable[str] | None) -> tuple[str, ...]:
    """Comma-separated string or iterable -> non-empty, stripped keys."""
    if value is None:
        return ()
    items = value.split(",") if isinstance(value, str) else list(value)
    return tuple(k.strip() for k in items if k and k.strip())
