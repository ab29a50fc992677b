"""Timestamps as the proctor writes them: epoch seconds in, UTC out."""

from __future__ import annotations

from datetime import UTC, datetime


def utc(ts: float) -> datetime:
    """Epoch seconds as an aware UTC datetime."""
    return datetime.fromtimestamp(ts, tz=UTC)


def iso_ms(ts: float) -> str:
    """``2026-03-02T14:05:00.123Z``: what the telemetry tools answer with."""
    return utc(ts).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def iso_s(ts: float | datetime) -> str:
    """``2026-03-02T14:05:00Z``, whole seconds (truncated): what generated telemetry carries."""
    dt = ts.astimezone(UTC) if isinstance(ts, datetime) else utc(int(ts))
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")
