"""``proctor datadog setup``: dashboards and monitors as code (``evaluator_agent/datadog/assets/*.json``), created or
updated idempotently. Dashboards are matched by title, monitors by name: a second run updates
what the first created and creates nothing new. ``--dry-run FILE`` writes each payload as a
JSON line instead of calling the API.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from evaluator_agent.datadog.config import Settings, datadog_configuration

log = logging.getLogger(__name__)

DEFAULT_DIR = Path(__file__).resolve().parent / "assets"
MANAGED_TAG = "managed_by:incident-proctor"


class SetupError(RuntimeError):
    pass


def load_definitions(directory: Path | None = None) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(dashboards, monitors) JSON bodies, sorted by file name."""
    d = Path(directory) if directory else DEFAULT_DIR
    if not d.is_dir():
        raise SetupError(f"no dashboards/monitors directory at {d}")
    dashboards = [json.loads(p.read_text()) for p in sorted((d / "dashboards").glob("*.json"))]
    monitors = [json.loads(p.read_text()) for p in sorted((d / "monitors").glob("*.json"))]
    return dashboards, monitors


def to_model(body: dict[str, Any], model: type, configuration: Any = None) -> Any:
    """A datadog_api_client model from its API JSON, validated the way the client validates."""
    from datadog_api_client.model_utils import validate_and_convert_types

    return validate_and_convert_types(body, (model,), ["body"], True, True, configuration=configuration)


def validated(directory: Path | None = None) -> tuple[list[Any], list[Any]]:
    """Dashboards and monitors as client models (raises on anything the models reject)."""
    from datadog_api_client import Configuration
    from datadog_api_client.v1.model.dashboard import Dashboard
    from datadog_api_client.v1.model.monitor import Monitor

    cfg = Configuration()
    dashboards, monitors = load_definitions(directory)
    return [to_model(d, Dashboard, cfg) for d in dashboards], [to_model(m, Monitor, cfg) for m in monitors]


def setup(settings: Settings | None = None, *, dry_run: str | None = None, directory: Path | None = None) -> dict[str, Any]:
    """Create or update every dashboard and monitor; returns {"dashboards": [...], "monitors": [...]}
    with one {"name", "id", "action"} per item (action: created | updated | dry-run)."""
    settings = settings or Settings.from_env()
    dashboards, monitors = load_definitions(directory)
    out: dict[str, Any] = {"dashboards": [], "monitors": []}
    if dry_run:
        validated(directory)
        with open(dry_run, "a", encoding="utf-8") as f:
            for d in dashboards:
                f.write(json.dumps({"type": "dashboard", "endpoint": f"{settings.api_base}/api/v1/dashboard", "payload": d}) + "\n")
                out["dashboards"].append({"name": d["title"], "id": None, "action": "dry-run"})
            for m in monitors:
                f.write(json.dumps({"type": "monitor", "endpoint": f"{settings.api_base}/api/v1/monitor", "payload": m}) + "\n")
                out["monitors"].append({"name": m["name"], "id": None, "action": "dry-run"})
        return out
    if not settings.api_key or not settings.app_key:
        raise SetupError("DD_API_KEY and DD_APP_KEY must be set (or use --dry-run FILE)")

    from datadog_api_client import ApiClient
    from datadog_api_client.v1.api.dashboards_api import DashboardsApi
    from datadog_api_client.v1.api.monitors_api import MonitorsApi
    from datadog_api_client.v1.model.dashboard import Dashboard
    from datadog_api_client.v1.model.monitor import Monitor
    from datadog_api_client.v1.model.monitor_update_request import MonitorUpdateRequest

    cfg = datadog_configuration(settings)
    cfg.request_timeout = 30
    cfg.enable_retry = True
    with ApiClient(cfg) as client:
        dash_api, mon_api = DashboardsApi(client), MonitorsApi(client)
        existing = {}
        for s in (dash_api.list_dashboards(filter_shared=False).get("dashboards") or []):
            existing.setdefault(s["title"], s["id"])
        for d in dashboards:
            body = to_model(d, Dashboard, cfg)
            if d["title"] in existing:
                res = dash_api.update_dashboard(existing[d["title"]], body)
                action = "updated"
            else:
                res = dash_api.create_dashboard(body)
                action = "created"
            out["dashboards"].append({"name": d["title"], "id": res["id"], "action": action})
        have = {}
        for m in mon_api.list_monitors(monitor_tags=MANAGED_TAG):
            have.setdefault(m["name"], m["id"])
        for m in monitors:
            if m["name"] in have:
                upd = {k: v for k, v in m.items() if k in ("name", "type", "query", "message", "tags", "options", "priority")}
                res = mon_api.update_monitor(have[m["name"]], to_model(upd, MonitorUpdateRequest, cfg))
                action = "updated"
            else:
                res = mon_api.create_monitor(to_model(m, Monitor, cfg))
                action = "created"
            out["monitors"].append({"name": m["name"], "id": res["id"], "action": action})
    return out
