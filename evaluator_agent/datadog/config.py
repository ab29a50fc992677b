"""Datadog settings: what the environment configures (keys, site, service, API URL, flush
timing), the tag value rule every metric tag goes through, and the datadog_api_client
configuration built from them (used by the observers and by ``proctor datadog setup``).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

ENV_API_URL = "PROCTOR_DATADOG_API_URL"
ENV_FLUSH_TIMEOUT = "PROCTOR_DATADOG_FLUSH_TIMEOUT"
ENV_FLUSH_INTERVAL = "PROCTOR_DATADOG_FLUSH_INTERVAL"
DEFAULT_SERVICE = "incident-proctor"


def _float_env(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        return default


@dataclass
class Settings:
    api_key: str | None = None
    app_key: str | None = None
    site: str = "datadoghq.com"
    env: str | None = None
    service: str = DEFAULT_SERVICE
    api_url: str | None = None
    dry_run: str | None = None
    flush_timeout: float = 2.0
    flush_interval: float = 10.0
    request_timeout: tuple[float, float] = (2.0, 3.0)  # connect, read
    max_attempts: int = 3
    backoff_s: float = 0.25

    @classmethod
    def from_env(cls, dry_run: str | None = None) -> Settings:
        e = os.environ
        return cls(
            api_key=e.get("DD_API_KEY") or None, app_key=e.get("DD_APP_KEY") or None,
            site=e.get("DD_SITE") or "datadoghq.com", env=e.get("DD_ENV") or None,
            service=e.get("DD_SERVICE") or DEFAULT_SERVICE, api_url=(e.get(ENV_API_URL) or "").rstrip("/") or None,
            dry_run=dry_run, flush_timeout=_float_env(ENV_FLUSH_TIMEOUT, 2.0),
            flush_interval=max(0.05, _float_env(ENV_FLUSH_INTERVAL, 10.0)),
        )

    @property
    def api_base(self) -> str:
        """Base URL of the REST API (metrics, dashboards, monitors)."""
        return self.api_url or f"https://api.{self.site}"

    def base_tags(self) -> list[str]:
        tags = [f"service:{tag_value(self.service)}"]
        if self.env:
            tags.append(f"env:{tag_value(self.env)}")
        return tags


_TAG_BAD = re.compile(r"[^a-z0-9_\-./]+")


def tag_value(v: Any) -> str:
    """A Datadog-safe tag value: lower case, no spaces or odd characters, at most 100 chars."""
    s = _TAG_BAD.sub("_", str(v).strip().lower()).strip("_")
    return (s or "none")[:100]


def datadog_configuration(settings: Settings) -> Any:
    """A datadog_api_client Configuration for these settings (imports the client)."""
    from datadog_api_client import Configuration

    cfg = Configuration(host=settings.api_base, request_timeout=settings.request_timeout)
    if settings.api_key:
        cfg.api_key["apiKeyAuth"] = settings.api_key
    if settings.app_key:
        cfg.api_key["appKeyAuth"] = settings.app_key
    return cfg
