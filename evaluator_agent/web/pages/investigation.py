"""One investigation of a run: its trajectory as a timeline (the briefing, each turn with its tool
calls, the diagnosis) beside the label's ground truth and the sub-scores with their
explanations, as far as the disclosure policy allows.

The briefing is the label's task (trigger and prompt) as the label set holds it now (the engine
that assembles the full briefing is not the web's to import); a label gone from its set is shown
by what the run froze of it. Under the ``scores`` policy (or a private label set) the ground
truth, the explanation, the names in the score details and the diagnosis's text are withheld:
a passing diagnosis names the answer. Tool calls and their result previews are what the target
saw, and stay.
"""

from __future__ import annotations

import json
import unicodedata
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from evaluator_agent.core.labels import Label, LabelError
from evaluator_agent.core.untrusted import clean
from evaluator_agent.core.vocab import INFRA_ERROR_KINDS
from evaluator_agent.results import browse
from evaluator_agent.results.disclosure import WITHHELD, scrub_details
from evaluator_agent.web.app import NotFound
from evaluator_agent.web.pages import _run_data as rd
from evaluator_agent.web.session import Viewer

MAX_ATTEMPT = 1_000_000
#: characters of one block of text (argument JSON, result preview, diagnosis summary) shown
BLOCK = 20_000
_DROP = frozenset(("Cc", "Cf", "Co", "Cs", "Cn", "Zl", "Zp"))  # as core.untrusted.clean, but lines kept


def text(value: Any, limit: int = BLOCK) -> str:
    """Multi-line text from a target or a tool, without control, format (bidi) or unassigned
    characters, capped; escaped by the template like every string."""
    s = "" if value is None else str(value)
    s = s[: limit + 1]
    s = "".join(ch for ch in s if ch in "\n\t" or unicodedata.category(ch) not in _DROP)
    return s if len(s) <= limit else s[: limit - 1] + "…"


def _json(value: Any, indent: int | None = 2, limit: int = BLOCK) -> str:
    try:
        out = json.dumps(value, indent=indent, ensure_ascii=False, default=str,
                         separators=None if indent else (",", ":"))
    except (TypeError, ValueError):
        out = repr(value)
    return text(out, limit)


def _number(x: Any) -> float | None:
    return float(x) if isinstance(x, int | float) and not isinstance(x, bool) else None


# ---------------------------------------------------------------------- the label


def _label(ui: Any, run: dict[str, Any], label_id: str) -> tuple[Label | None, bool, bool]:
    """The label as its set holds it now, whether the set is there, whether it changed since the run."""
    ls = rd.current_labelset(ui, run.get("labelset"))
    if ls is None:
        return None, False, False
    changed = bool(run.get("labelset_hash")) and ls.content_hash != run.get("labelset_hash")
    try:
        return ls.get(label_id), True, changed
    except LabelError:
        return None, True, changed


def briefing_view(label: Label | None) -> dict[str, Any] | None:
    if label is None:
        return None
    task = label.task
    return {"title": task.trigger.title, "fired_at": task.trigger.fired_at.isoformat(), "monitor_id": task.trigger.monitor_id,
            "prompt": text(task.prompt), "max_turns": task.budget.max_turns, "timeout_s": task.budget.timeout_s}


def truth_view(label: Label | None) -> dict[str, Any] | None:
    if label is None:
        return None
    gt = label.ground_truth
    tc = gt.triggering_change
    return {
        "no_fault": gt.no_fault,
        "root_causes": [{"entity": rc.entity, "kind": rc.kind, "aliases": list(rc.aliases)} for rc in gt.root_causes],
        "mechanism": gt.mechanism,
        "chain": list(gt.causal_chain),
        "onset": gt.onset.isoformat() if gt.onset else None,
        "onset_tolerance_s": gt.onset_tolerance_s,
        "first_symptom": gt.first_symptom,
        "change": None if tc is None else {"kind": tc.kind, "entity": tc.entity, "description": tc.description,
                                           "at": tc.at.isoformat() if tc.at else None},
        "red_herrings": [rh.entity for rh in gt.must_not_blame],
    }


# ---------------------------------------------------------------------- the trajectory


def diagnosis_view(dx: Any) -> dict[str, Any] | None:
    """The stored diagnosis (target text, any shape) as lists of plain strings."""
    if not isinstance(dx, dict):
        return None

    def items(key: str, n: int) -> list[dict[str, Any]]:
        v = dx.get(key)
        return [x for x in v[:n] if isinstance(x, dict)] if isinstance(v, list) else []

    return {
        "no_fault": bool(dx.get("no_fault")),
        "candidates": [{"entity": clean(c.get("entity"), 200), "mechanism": clean(c.get("mechanism"), 100),
                        "confidence": _number(c.get("confidence"))} for c in items("root_causes", 20)],
        "chain": [(clean(e.get("source"), 200), clean(e.get("target"), 200)) for e in items("causal_chain", 50)],
        "onset": clean(dx.get("onset"), 60),
        "evidence": [(clean(e.get("tool_call_id"), 120), text(e.get("description"), 1000)) for e in items("evidence", 50)],
        "summary": text(dx.get("summary"), 4000),
        "raw": _json(dx),
    }


def call_view(c: dict[str, Any]) -> dict[str, Any]:
    return {
        "seq": c.get("seq"), "turn": c.get("turn"), "name": clean(c.get("name"), 120), "call_id": clean(c.get("call_id"), 120),
        "surface": clean(c.get("surface") or "a2a", 20), "args": _json(c.get("arguments")),
        "args_short": _json(c.get("arguments"), indent=None, limit=160), "ok": bool(c.get("ok")),
        "error": text(c.get("error"), 2000), "result_size": c.get("result_size"), "duration_ms": _number(c.get("duration_ms")),
        "preview": text(c.get("result_preview")),
    }


def timeline(turns: list[dict[str, Any]], calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Turns in order, each with its tool calls; calls whose turn has no record get one."""
    by_turn: dict[int, list[dict[str, Any]]] = {}
    for c in calls:
        by_turn.setdefault(int(c.get("turn") or 0), []).append(call_view(c))
    out = []
    seen = set()
    for t in turns:
        idx = int(t["idx"])
        seen.add(idx)
        out.append({**t, "error": text(t.get("error"), 2000), "calls": by_turn.get(idx, []), "unrecorded": False})
    for idx in sorted(set(by_turn) - seen):
        out.append({"idx": idx, "kind": "tool_calls", "reply_size": None, "duration_s": None, "n_calls": len(by_turn[idx]),
                    "error": "", "calls": by_turn[idx], "unrecorded": True})
    return sorted(out, key=lambda t: t["idx"])


def scores_view(row: dict[str, Any], full: bool) -> dict[str, Any]:
    details = row.get("score_details") if isinstance(row.get("score_details"), dict) else {}
    shown = details if full else scrub_details(details)
    weights = details.get("weights") if isinstance(details.get("weights"), dict) else {}
    subs = row.get("subscores") if isinstance(row.get("subscores"), dict) else {}
    return {
        "subscores": [{"name": str(k), "value": _number(v), "weight": _number(weights.get(k))} for k, v in subs.items()],
        "details": [(str(k), _json(v, indent=None, limit=2000)) for k, v in shown.items() if k != "weights"],
        "explanation": text(row.get("explanation"), 8000) if full else WITHHELD,
    }


# ---------------------------------------------------------------------- the page


def investigation_page(ui: Any, request: Request, viewer: Viewer) -> Response:
    run = ui.run_for(viewer, request.path_params["run_id"])
    run_id = run["run_id"]
    label_id, attempt = str(request.path_params["label_id"]), int(request.path_params["attempt"])
    row = None
    if 0 < len(label_id) <= rd.MAX_LABEL_ID and 0 <= attempt <= MAX_ATTEMPT:
        row = browse.investigation(ui.store, run_id, label_id, attempt)
    if row is None:
        raise NotFound(f"run {run_id} has no investigation {label_id[:64]!r} attempt {attempt}")
    pol = rd.policy(ui, run)
    full = rd.full(pol)
    meta = rd.label_meta(ui, run)
    frozen = meta.get(label_id) or {}
    label, set_present, set_changed = _label(ui, run, label_id)
    outcome = "error" if row.get("error_kind") in INFRA_ERROR_KINDS else ("pass" if row["passed"] else "fail")
    s = rd.header(run, {})
    steps = timeline(browse.turns(ui.store, row["id"]), ui.store.tool_calls(row["id"]))
    return ui.render(
        request, "investigation.html", viewer, title=f"{label_id} · attempt {attempt}", run=s, policy=pol, full=full,
        withheld=WITHHELD, label_id=label_id, attempt=attempt, inv=row, outcome=outcome,
        outcome_text={"pass": "passed", "fail": "failed", "error": "infra error"}[outcome],
        run_href=rd.run_href(run_id),
        attempts=[{**a, "href": rd.investigation_href(run_id, label_id, a["attempt"])}
                  for a in browse.attempts(ui.store, run_id, label_id)],
        tier=frozen.get("tier") or "unknown", monitor_type=frozen.get("monitor_type") or "",
        segment=(frozen.get("segment") or "unknown") if full else None,
        briefing=briefing_view(label), set_present=set_present, set_changed=set_changed,
        truth=truth_view(label) if full else None, frozen_mechanism=frozen.get("mechanism") if full else None,
        steps=steps, n_calls=sum(len(t["calls"]) for t in steps),
        diagnosis=diagnosis_view(row.get("diagnosis")) if full else None, has_diagnosis=row.get("diagnosis") is not None,
        scores=scores_view(row, full), error=text(row.get("error"), 2000),
    )


def routes(ui: Any) -> list[Route]:
    return [Route("/runs/{run_id}/investigations/{label_id:path}/{attempt:int}", ui.page(investigation_page), methods=["GET"])]
