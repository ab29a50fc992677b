"""What the run page and the investigation page share: the disclosure policy in force for a run,
its frozen label metadata, its summary, its label set as it is now, and the cards of its header."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from evaluator_agent.core.labels import LabelError, LabelSet, load_labelset
from evaluator_agent.core.records import RunStatus
from evaluator_agent.results import browse
from evaluator_agent.results.disclosure import FULL, effective
from evaluator_agent.results.runs import summarize
from evaluator_agent.results.stats import label_meta_of

#: the longest label id a URL may name (longer: not found, never a query)
MAX_LABEL_ID = 200


def current_labelset(ui: Any, name: str | None) -> LabelSet | None:
    """The run's label set as it is now under the UI's label-set folder (None: gone or invalid)."""
    if not name:
        return None
    try:
        return load_labelset(name, ui.config.labelsets_root)
    except (LabelError, OSError):
        return None


def policy(ui: Any, run: dict[str, Any]) -> str:
    """The disclosure policy in force for this run: the server's, but ``scores`` for a private label
    set (as the run recorded it, or as its label set says now)."""
    recorded = bool(((run.get("manifest") or {}).get("labelset") or {}).get("private"))
    ls = None if recorded else current_labelset(ui, run.get("labelset"))
    return effective(ui.config.disclosure, recorded or bool(ls is not None and ls.info.private))


def full(pol: str) -> bool:
    return pol == FULL


def label_meta(ui: Any, run: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The label metadata the run froze at its start (tier, segment, ...); runs older than that
    read their label set as it is now."""
    frozen = (run.get("manifest") or {}).get("label_meta")
    if isinstance(frozen, dict):
        return frozen
    ls = current_labelset(ui, run.get("labelset"))
    return label_meta_of(ls.labels) if ls is not None else {}


def summary(ui: Any, run: dict[str, Any], meta: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The summary stored when the run ended; while it runs, computed from the narrow columns of
    its rows (``results.runs.stored_or_live_summary`` without the wide ones)."""
    if run.get("status") != RunStatus.RUNNING and run.get("summary"):
        return dict(run["summary"])
    return summarize(browse.summary_rows(ui.store, run["run_id"]), meta)


def run_href(run_id: str) -> str:
    return f"/runs/{quote(run_id, safe='')}"


def investigation_href(run_id: str, label_id: str, attempt: int) -> str:
    return f"{run_href(run_id)}/investigations/{quote(label_id, safe='')}/{int(attempt)}"


def header(run: dict[str, Any], s: dict[str, Any]) -> dict[str, Any]:
    """The facts of a run's header (target, label set, status, times) and its headline figures."""
    m = run.get("manifest") or {}
    t = m.get("target") or {}
    started, finished = run.get("created_at"), run.get("finished_at")
    p1 = s.get("pass_at_1") if isinstance(s.get("pass_at_1"), dict) else {}
    return {
        "run_id": run["run_id"],
        "target": run.get("target_name") or t.get("name") or "?",
        "version": run.get("target_version") or t.get("version") or "",
        "url": run.get("target_url") or t.get("url") or "",
        "labelset": run.get("labelset") or "",
        "labelset_hash": run.get("labelset_hash") or "",
        "status": run.get("status") or "",
        "error": run.get("error") or "",
        "pass_rate": s.get("pass_rate"), "ci95": s.get("ci95"),
        "pass_at_1": p1.get("value"), "pass_at_1_ci": p1.get("ci95"),
        "mean_score": s.get("mean_score"), "n": s.get("n"), "scored": s.get("scored"),
        "errors": s.get("errors"), "degraded": bool(s.get("degraded")),
        "duration": (finished - started) if finished and started else None,
        "work_s": s.get("duration_s"),
        "started": started, "finished": finished,
        "proctor": " ".join(x for x in (run.get("proctor_version") or "", run.get("git_rev") or "") if x),
    }


#: tiers in their natural order; other values after them, alphabetically
TIER_ORDER = {"easy": 0, "medium": 1, "hard": 2}


def breakdown_rows(s: dict[str, Any], dim: str) -> list[tuple[str, float, tuple[float, float] | None, int]]:
    """(value, pass rate, 95% interval, labels) of one breakdown of the summary, for ``bar_chart``
    (as ``results.html.render_html`` builds its charts)."""
    rows = []
    values = (s.get("breakdown") or {}).get(dim) or {}
    for name, b in sorted(values.items(), key=lambda kv: (TIER_ORDER.get(kv[0], 9), kv[0])):
        if not isinstance(b, dict):
            continue
        ci = b.get("ci95")
        rows.append((str(name), float(b.get("pass_rate") or 0.0), (float(ci[0]), float(ci[1])) if ci and len(ci) == 2 else None,
                     int(b.get("n") or 0)))
    return rows
