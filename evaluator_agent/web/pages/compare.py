"""Compare two runs: without ``a`` and ``b`` a form to pick them; with both, the paired
comparison of ``proctor compare A B`` (``analysis.compare_stored``: verdict, the delta of pass
rates with its 95% interval, exact McNemar p, flips both ways, per-segment deltas, accuracies,
cost and latency), per tier besides, under the disclosure policy as the A2A ``compare`` applies
it (``disclosure.disclose_compare``: under ``scores`` no per-segment figures).

``a`` is the base run, ``b`` the new one. Both must be runs the viewer may see (else 404);
runs that cannot be compared (no shared labels) are a 400 page saying why.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from evaluator_agent.core.vocab import DIFFICULTY_TIERS
from evaluator_agent.results import disclosure
from evaluator_agent.results.analysis import AnalysisError, compare_stored
from evaluator_agent.results.compare import paired_analysis
from evaluator_agent.results.html import bar_chart
from evaluator_agent.results.runs import run_label_meta
from evaluator_agent.results.stats import per_label
from evaluator_agent.web.app import BadRequest
from evaluator_agent.web.pages._data import label_index, run_label
from evaluator_agent.web.pages.runs import visible_runs
from evaluator_agent.web.session import Viewer

#: runs offered in the form's selects (the newest the viewer may see)
FORM_RUNS = 500
#: flips listed per direction (the rest counted)
FLIPS_SHOWN = 200

VERDICT_TEXT = {
    "improvement": "improved",
    "regression": "regressed",
    "inconclusive": "no significant change",
}

ACCURACY_NAMES = {"ac_at_1": "root cause AC@1", "ac_at_3": "root cause AC@3", "mechanism_accuracy": "mechanism"}

COST_NAMES = {
    "duration_s": "duration (s)", "turns": "turns", "tool_calls": "tool calls", "invalid_calls": "invalid calls",
    "red_herrings_chased": "red herrings chased",
}


def _margin(raw: str | None) -> float:
    if raw is None or raw == "":
        return 0.05
    try:
        m = float(raw[:16])
    except ValueError:
        raise BadRequest("margin must be a number in [0, 0.5]") from None
    if not 0.0 <= m <= 0.5:
        raise BadRequest("margin must be a number in [0, 0.5]")
    return m


def _attempts(rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """label -> its attempts in a run: [{attempt, passed, error_kind}] (for links to them)."""
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        out[r["label_id"]].append({"attempt": r["attempt"], "passed": bool(r["passed"]), "error_kind": r.get("error_kind")})
    return out


def _tiers(base_rows: list[dict[str, Any]], new_rows: list[dict[str, Any]], meta: dict[str, Any],
           margin: float, alpha: float) -> list[dict[str, Any]]:
    """The comparison's paired analysis within each difficulty tier (tier is shown under every
    policy: it is what a label says of itself, not its answer)."""
    base, new = per_label(base_rows), per_label(new_rows)
    groups: dict[str, list[str]] = defaultdict(list)
    for lid in sorted(set(base) & set(new)):
        groups[str((meta.get(lid) or {}).get("tier") or "unknown")].append(lid)
    order = {t: i for i, t in enumerate(DIFFICULTY_TIERS)}
    out = []
    for tier in sorted(groups, key=lambda t: (order.get(t, 9), t)):
        a = paired_analysis(base, new, groups[tier], meta, margin=margin, alpha=alpha)
        out.append({"name": tier, "n": a["n"], "base": a["base"], "new": a["new"], "delta": a["delta"],
                    "ci95": a["ci95"], "mcnemar_p": a["mcnemar_p"], "verdict": a["verdict"],
                    "pass_to_fail": len(a["flips"]["pass_to_fail"]), "fail_to_pass": len(a["flips"]["fail_to_pass"])})
    return out


def _flip_rows(ids: list[str], base_att: dict[str, list[dict[str, Any]]], new_att: dict[str, list[dict[str, Any]]],
               labels: dict[str, tuple[str, str]]) -> list[dict[str, Any]]:
    return [{"label_id": lid, "labelset": labels.get(lid, ("", ""))[0], "base": base_att.get(lid, []),
             "new": new_att.get(lid, [])} for lid in ids[:FLIPS_SHOWN]]


def _result(ui: Any, request: Request, viewer: Viewer, a: str, b: str, margin: float) -> Response:
    base_run, new_run = ui.run_for(viewer, a), ui.run_for(viewer, b)
    try:
        cmp = compare_stored(ui.store, base_run["run_id"], new_run["run_id"], margin=margin)
    except AnalysisError as e:
        raise BadRequest(f"these runs cannot be compared: {e}") from None
    private = disclosure.run_private(base_run) or disclosure.run_private(new_run)
    policy = disclosure.effective(ui.config.disclosure, private)
    cmp = disclosure.disclose_compare(cmp, policy)
    if "segments" not in cmp:  # segment names with their flips are the truth taxonomy
        cmp.pop("regressed_segments", None)
    base_rows = ui.store.investigations(base_run["run_id"])
    new_rows = ui.store.investigations(new_run["run_id"])
    meta = run_label_meta(new_run) or run_label_meta(base_run)
    tiers = _tiers(base_rows, new_rows, meta, margin, cmp["alpha"])
    base_att, new_att = _attempts(base_rows), _attempts(new_rows)
    labels = label_index(ui)
    flips = cmp.get("flips") or {}
    segments = [{"name": k, **v} for k, v in sorted((cmp.get("segments") or {}).items())]
    charts = []
    if segments:
        rows = []
        for s in segments:
            rows += [(f"{s['name']} (base)", float(s["base"]), None, int(s["n"])),
                     (f"{s['name']} (new)", float(s["new"]), None, int(s["n"]))]
        charts.append(Markup(bar_chart(rows, "Pass rate by segment, base vs new", width=620)))
    if len(tiers) > 1 or (tiers and tiers[0]["name"] != "unknown"):
        rows = []
        for t in tiers:
            rows += [(f"{t['name']} (base)", float(t["base"]), None, int(t["n"])),
                     (f"{t['name']} (new)", float(t["new"]), None, int(t["n"]))]
        charts.append(Markup(bar_chart(rows, "Pass rate by tier, base vs new", width=620)))
    cost = [{"name": COST_NAMES.get(k, k.replace("tokens.", "tokens: ")), **v}
            for k, v in (cmp.get("cost_latency") or {}).items()]
    ci = cmp.get("ci95") or [0.0, 0.0]
    return ui.render(
        request, "compare.html", viewer, title="Compare", chosen=True, cmp=cmp,
        base_run=base_run, new_run=new_run, verdict_text=VERDICT_TEXT.get(cmp["verdict"], cmp["verdict"]),
        ci=ci, p2f=_flip_rows(flips.get("pass_to_fail") or [], base_att, new_att, labels),
        f2p=_flip_rows(flips.get("fail_to_pass") or [], base_att, new_att, labels),
        n_p2f=len(flips.get("pass_to_fail") or []), n_f2p=len(flips.get("fail_to_pass") or []),
        segments=segments, tiers=tiers, charts=charts, cost=cost, policy=policy, private=private,
        base_att=base_att, new_att=new_att,
        accuracy=[{"name": ACCURACY_NAMES.get(k, k), **v} for k, v in sorted((cmp.get("accuracy") or {}).items())], per_label=cmp.get("per_label") or [], labels=labels,
        runs=_form_runs(ui, viewer), a=base_run["run_id"], b=new_run["run_id"], margin=margin,
    )


def _form_runs(ui: Any, viewer: Viewer) -> list[dict[str, str]]:
    return [{"run_id": r["run_id"], "text": run_label(r)} for r in visible_runs(ui, viewer, FORM_RUNS)]


def compare_page(ui: Any, request: Request, viewer: Viewer) -> Response:
    p = request.query_params
    a, b = (p.get("a") or "").strip(), (p.get("b") or "").strip()
    margin = _margin(p.get("margin"))
    if a and b:
        return _result(ui, request, viewer, a, b, margin)
    return ui.render(request, "compare.html", viewer, title="Compare", chosen=False, runs=_form_runs(ui, viewer),
                     a=a[:64], b=b[:64], margin=margin)


def routes(ui: Any) -> list[Route]:
    return [Route("/compare", ui.page(compare_page), methods=["GET"])]
