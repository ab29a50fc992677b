"""Logging defaults shared by the proctor's entry points and the mock agents."""

from __future__ import annotations

import logging

NOISY_LOGGERS = ("google_adk", "google.adk", "a2a", "httpx", "uvicorn.access")


def quiet_logs(level: int = logging.WARNING) -> None:
    """Raise the chatty libraries' loggers to ``level`` (request lines, SDK debug)."""
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(level)
