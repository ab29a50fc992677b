"""The runs list: every run the viewer may see, newest first, filtered by target, label set and
status; each target's pass-rate history as a sparkline."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from evaluator_agent.web.render import sparkline
from evaluator_agent.web.session import Viewer

PAGE = 50
#: runs read for the list and the histories (the newest)
SCAN = 5000


def visible_runs(ui: Any, viewer: Viewer, limit: int = SCAN) -> list[dict[str, Any]]:
    """The newest runs the viewer may see (tenancy: ``Viewer.sees``)."""
    return [r for r in ui.store.list_runs(limit) if viewer.sees(r)]


def run_row(r: dict[str, Any]) -> dict[str, Any]:
    s = r.get("summary") or {}
    m = r.get("manifest") or {}
    started, finished = r.get("created_at"), r.get("finished_at")
    return {
        "run_id": r["run_id"], "target": r.get("target_name") or (m.get("target") or {}).get("name") or "?",
        "version": r.get("target_version") or "", "labelset": r.get("labelset") or "", "status": r.get("status") or "",
        "pass_rate": s.get("pass_rate"), "ci95": s.get("ci95"), "n": s.get("n"), "errors": s.get("errors"),
        "mean_score": s.get("mean_score"), "created_at": started,
        "duration": (finished - started) if finished and started else s.get("duration_s"),
    }


def runs_page(ui: Any, request: Request, viewer: Viewer) -> Response:
    p = request.query_params
    runs = visible_runs(ui, viewer)
    targets = sorted({r.get("target_name") or "?" for r in runs})
    labelsets = sorted({r.get("labelset") or "" for r in runs})
    statuses = sorted({r.get("status") or "" for r in runs})
    history: dict[str, list[float]] = defaultdict(list)
    for r in reversed(runs):  # oldest first
        rate = (r.get("summary") or {}).get("pass_rate")
        if rate is not None and r.get("status") == "completed":
            history[r.get("target_name") or "?"].append(float(rate))
    chosen = [r for r in runs
              if (not p.get("target") or (r.get("target_name") or "?") == p["target"])
              and (not p.get("labelset") or r.get("labelset") == p["labelset"])
              and (not p.get("status") or r.get("status") == p["status"])]
    try:
        page = max(1, int(p.get("page", "1")))
    except ValueError:
        page = 1
    pages = max(1, -(-len(chosen) // PAGE))
    page = min(page, pages)
    rows = [run_row(r) for r in chosen[(page - 1) * PAGE: page * PAGE]]
    sparks = {t: sparkline(v[-30:], label=f"{t}: pass rate over its last {len(v[-30:])} runs") for t, v in history.items()}
    return ui.render(request, "runs.html", viewer, title="Runs", rows=rows, targets=targets, labelsets=labelsets,
                     statuses=statuses, sparks=sparks, page=page, pages=pages, total=len(chosen))


def routes(ui: Any) -> list[Route]:
    return [Route("/", ui.page(runs_page), methods=["GET"]), Route("/runs", ui.page(runs_page), methods=["GET"])]
