"""The difficulty map: empirical label difficulty and target ability of the Rasch model
(``results/irt.py``) on one logit scale.

The stored fit (``proctor difficulty --db FILE``: every completed run in the store) is shown
when there is one; its targets are listed only when the viewer may see a run of theirs. Without
a stored fit, or with ``?fit=live``, the page fits the model live over the runs the viewer may
see, when that is cheap (at most :data:`LIVE_MAX_CELLS` target-label cells and
:data:`LIVE_MAX_TARGETS` targets: a fraction of a second, measured and shown); above that it
says how to fit it offline. Labels whose empirical difficulty disagrees with their stated tier
are flagged (``irt.flag_tier_disagreements``).
"""

from __future__ import annotations

import math
import statistics
import time
from typing import Any

from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from evaluator_agent.results.html import difficulty_map, esc
from evaluator_agent.results.irt import fit_rasch, flag_tier_disagreements
from evaluator_agent.web.app import BadRequest
from evaluator_agent.web.pages._data import (
    label_index,
    stored_abilities,
    target_key,
    visible_outcomes,
    visible_targets,
)
from evaluator_agent.web.session import Viewer

LIVE_MAX_CELLS = 20_000
LIVE_MAX_TARGETS = 40
LIVE_MAX_ROWS = 200_000
#: label rows listed (the hardest first)
MAX_ROWS = 1000
MAP_W = 1100
# the plot area of results.html.difficulty_map, for the ability strip under it
_LEFT, _RIGHT = 40, 20


def _live(ui: Any, viewer: Viewer, index: dict[str, tuple[str, str]]) -> dict[str, Any]:
    """A Rasch fit over the viewer's runs, or {"skipped": why} when it would not be cheap."""
    rows = visible_outcomes(ui.store, viewer, LIVE_MAX_ROWS)
    if rows is None:
        return {"skipped": f"more than {LIVE_MAX_ROWS:,} outcomes"}
    obs = [(target_key(r["target_name"], r["target_version"]), r["label_id"], r["passed"]) for r in rows]
    if not obs:
        return {"skipped": "no completed runs to fit", "empty": True}
    targets = {t for t, _, _ in obs}
    cells = {(t, lid) for t, lid, _ in obs}
    if len(targets) > LIVE_MAX_TARGETS or len(cells) > LIVE_MAX_CELLS:
        return {"skipped": f"{len(targets)} targets and {len(cells):,} target-label pairs: too many for a live fit"}
    t0 = time.perf_counter()
    fit = fit_rasch(obs)
    known = {k: v for k, v in fit["labels"].items() if k in index}
    flags = {f["label_id"]: f for f in flag_tier_disagreements(known, {k: index[k][1] for k in known})} if known else {}
    ms = (time.perf_counter() - t0) * 1000
    labels = [{"label_id": lid, "difficulty": v["difficulty"], "se": v["se"], "n": v["n"], "passed": v["passed"],
               "tier": index.get(lid, ("", None))[1], "flag": flags.get(lid, {}).get("direction"),
               "suggested_tier": flags.get(lid, {}).get("suggested_tier")}
              for lid, v in sorted(fit["labels"].items(), key=lambda kv: -kv[1]["difficulty"])]
    targets_out = [{"target": t, "ability": v["ability"], "se": v["se"], "n": v["n"]}
                   for t, v in sorted(fit["targets"].items(), key=lambda kv: -kv[1]["ability"])]
    return {"labels": labels, "targets": targets_out, "ms": ms, "observations": len(obs),
            "converged": fit.get("converged")}


def ability_strip(targets: list[dict[str, Any]], lo: float, hi: float, width: int = MAP_W) -> str:
    """Targets' abilities (± se) on the x scale of ``difficulty_map`` drawn for labels in
    [lo, hi]; a target beyond that range sits at its edge with an arrow."""
    span = (hi - lo) or 1.0
    plot_w = width - _LEFT - _RIGHT

    def X(v: float) -> float:
        return _LEFT + (min(max(v, lo), hi) - lo) / span * plot_w

    rows_end: list[float] = []
    placed = []
    for t in sorted(targets, key=lambda t: t["ability"]):
        x = X(float(t["ability"]))
        name = str(t["target"])
        text = name if len(name) <= 28 else name[:27] + "…"
        w = 7 * len(text) + 16
        row = next((i for i, end in enumerate(rows_end) if end < x - 6), None)
        if row is None:
            rows_end.append(0.0)
            row = len(rows_end) - 1
        rows_end[row] = x + w
        placed.append((t, x, row, text))
    height = 34 + 24 * max(1, len(rows_end))
    title = "Targets by ability (logits, same scale as the label difficulties above)"
    out = [f'<svg class="chart ability" role="img" aria-label="{esc(title)}" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg" data-testid="ability-strip">',
           f'<text x="0" y="14" font-weight="600">{esc(title)}</text>']
    for k in range(math.ceil(lo), math.floor(hi) + 1):
        out.append(f'<line x1="{X(k):.1f}" y1="20" x2="{X(k):.1f}" y2="{height - 14}" stroke="#eef0f4"/>'
                   f'<text x="{X(k):.1f}" y="{height - 2}" text-anchor="middle" fill="#5d6577">{k:+d}</text>')
    for t, x, row, text in placed:
        a, se = float(t["ability"]), float(t.get("se") or 0.0)
        y = 32 + row * 24
        beyond = "◀ " if a < lo else "▶ " if a > hi else ""
        out.append(f'<g class="target"><title>{esc(t["target"])}: ability {a:+.2f} ± {se:.2f}</title>'
                   f'<line x1="{X(a - se):.1f}" y1="{y}" x2="{X(a + se):.1f}" y2="{y}" stroke="#3757b8" stroke-width="1.5"/>'
                   f'<path d="M{x - 5:.1f},{y - 7} L{x + 5:.1f},{y - 7} L{x:.1f},{y + 1} z" fill="#3757b8"/>'
                   f'<text x="{x + 8:.1f}" y="{y + 4}">{esc(beyond + text)}</text></g>')
    out.append("</svg>")
    return "".join(out)


def _params(request: Request) -> tuple[str, bool]:
    p = request.query_params
    mode, flagged = p.get("fit", ""), p.get("flagged", "")
    if mode not in ("", "stored", "live"):
        raise BadRequest("fit must be stored or live")
    if flagged not in ("", "0", "1"):
        raise BadRequest("flagged must be 0 or 1")
    return mode, flagged == "1"


def difficulty_page(ui: Any, request: Request, viewer: Viewer) -> Response:
    mode, flagged_only = _params(request)
    index = label_index(ui)
    stored = ui.store.get_difficulty()
    live: dict[str, Any] | None = None
    hidden_targets = 0
    fitted_at = None
    if stored and mode != "live":
        source = "stored"
        labels = stored
        fitted_at = stored[0].get("fitted_at")
        seen = visible_targets(ui.store, viewer)
        abilities = stored_abilities(ui.store)
        targets = [t for t in abilities if t["target"] in seen]
        hidden_targets = len(abilities) - len(targets)
    else:
        live = _live(ui, viewer, index)
        source = "live" if "labels" in live else "none"
        labels, targets = live.get("labels", []), live.get("targets", [])
    rows = []
    for d in labels:
        lset, tier = index.get(d["label_id"], (None, None))
        n = int(d.get("n") or 0)
        rows.append({**d, "labelset": lset, "tier": d.get("tier") or tier,
                     "rate": (int(d.get("passed") or 0) / n) if n else None})
    n_flagged = sum(1 for r in rows if r.get("flag"))
    charts: list[Markup] = []
    median = statistics.median([float(r["difficulty"]) for r in rows]) if rows else 0.0
    if rows:
        points = [(r["label_id"], float(r["difficulty"]), r["rate"] or 0.0, (r["rate"] or 0.0) > 0.5) for r in rows]
        charts.append(Markup(difficulty_map(points, "Labels by empirical difficulty and observed pass rate "
                                            "(green: passed by most attempts)", "difficulty (IRT, logits): harder →",
                                            width=MAP_W)))
        xs = [p[1] for p in points]
        if targets:
            charts.append(Markup(ability_strip(targets, min(xs), max(xs))))
    for t in targets:
        t["p_median"] = 1 / (1 + math.exp(-(float(t["ability"]) - median)))
    listed = [r for r in rows if r.get("flag")] if flagged_only else rows
    return ui.render(
        request, "difficulty.html", viewer, title="Difficulty", source=source, live=live, fitted_at=fitted_at,
        rows=listed[:MAX_ROWS], more=max(0, len(listed) - MAX_ROWS), n_labels=len(rows), n_flagged=n_flagged,
        targets=targets, hidden_targets=hidden_targets, charts=charts, flagged_only=flagged_only, mode=mode,
        stored=bool(stored), db=ui.store.path if ui.sessions.open else "RESULTS.db",
        live_limits=(LIVE_MAX_TARGETS, LIVE_MAX_CELLS),
    )


def routes(ui: Any) -> list[Route]:
    return [Route("/difficulty", ui.page(difficulty_page), methods=["GET"])]
