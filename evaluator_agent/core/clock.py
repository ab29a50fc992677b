"""Timestamps as the proctor writes them: epoch seconds in, UTC out."""

from __future__ import annotations

from datetime import UTC, datetime


def utc(ts: float) -> datetime:
    """Epoch seconds as an aware UTC datetime."""
    return datetime.fromtimestamp(ts, tz=UTC)


def iso_ms(ts: float) -> str:
    """``2026-03-02T14:05:00.123Z``: what the telemetry tools answer with."""
    return utc(ts).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def iso(t: float | datetime) -> str:
    """ISO 8601 at full precision, ``Z`` for UTC: epoch seconds in UTC; a datetime as it is."""
    return (t if isinstance(t, datetime) else utc(t)).isoformat().replace("+00:00", "Z")


def parse_utc(v: object) -> datetime | None:
    """An aware datetime from a datetime or an ISO 8601 string (``Z`` accepted; no offset means
    UTC); None for anything else or a string that does not parse."""
    if isinstance(v, datetime):
        return v if v.tzinfo else v.replace(tzinfo=UTC)
    if not isinstance(v, str):
        return None
    try:
        t = datetime.fromisoformat(v.replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def iso_s(ts: float | datetime) -> str:
    """``2026-03-02T14:05:00Z``, whole seconds (truncated): what generated telemetry carries."""
    dt = ts.astimezone(UTC) if isinstance(ts, datetime) else utc(int(ts))
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")
