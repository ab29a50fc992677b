"""The difficulty map: empirical label difficulty and target ability of the Rasch model
(``results/irt.py``) on one logit scale.

The stored fit (``proctor difficulty --db FILE``: every completed run in the store) is shown
when there is one; its targets are listed only when the viewer may see a run of theirs. Without
a stored fit, or with ``?fit=live``, the page fits the model live over the runs the viewer may
see, when that is cheap (at most :data:`LIVE_MAX_CELLS` target-label cells and
:data:`LIVE_MAX_TARGETS` targets: a fraction of a second, measured and shown); above that it
says how to fit it offline. Labels whose empirical difficulty disagrees with their stated tier
are flagged (``irt.flag_tier_disagreements``).

The map is a Wright map drawn here (:func:`wright_map`): the labels' dots as
``results.html.difficulty_map`` draws them, and the targets' ability markers under them on the
same axis, which ``difficulty_map`` cannot draw (its x range is the labels' only).
"""

from __future__ import annotations

import math
import statistics
import time
import zlib
from typing import Any

from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from evaluator_agent.results.html import esc
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
# the plot area's margins (as results.html.difficulty_map)
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


def wright_map(labels: list[dict[str, Any]], targets: list[dict[str, Any]], width: int = MAP_W) -> str:
    """Labels and targets on one logit axis (a Wright map): above, one dot per label at its
    difficulty and observed pass rate (green: passed by most attempts; ringed: disagrees with its
    tier); below, each target at its ability with a ± se bar. The look of
    ``results.html.difficulty_map``, which has no target markers; every name escaped."""
    xs = [float(r["difficulty"]) for r in labels] + [float(t["ability"]) for t in targets]
    lo, hi = (min(xs), max(xs)) if xs else (-1.0, 1.0)
    pad = max(0.25, (hi - lo) * 0.04)
    lo, hi = lo - pad, hi + pad
    plot_w = width - _LEFT - _RIGHT

    def X(v: float) -> float:
        return _LEFT + (v - lo) / (hi - lo) * plot_w

    # targets in rows, so that their names do not overlap; a name runs left of a marker near the right edge
    rows: list[list[tuple[float, float]]] = []
    placed = []
    for t in sorted(targets, key=lambda t: float(t["ability"])):
        x = X(float(t["ability"]))
        name = str(t["target"])
        text = name if len(name) <= 28 else name[:27] + "…"
        w = 7 * len(text)
        left_side = x + 8 + w > width - 4
        span = (x - 12 - w, x + 6) if left_side else (x - 6, x + 12 + w)
        row = next((i for i, r in enumerate(rows) if all(span[1] < a or span[0] > b for a, b in r)), None)
        if row is None:
            rows.append([])
            row = len(rows) - 1
        rows[row].append(span)
        placed.append((t, x, row, text, left_side))
    top, ph = 24, 190
    base = top + ph
    t_top = base + 44
    height = t_top + 24 * len(rows) + 30
    title = "Labels by empirical difficulty and observed pass rate (green: passed by most attempts; ringed: " \
            "disagrees with its tier), targets by ability below, on one logit scale"
    out = [f'<svg class="chart wright" role="img" aria-label="{esc(title)}" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">',
           f'<text x="0" y="14" font-weight="600">Labels: difficulty × observed pass rate</text><title>{esc(title)}</title>']
    for k in range(math.ceil(lo), math.floor(hi) + 1):
        out.append(f'<line x1="{X(k):.1f}" y1="{top}" x2="{X(k):.1f}" y2="{height - 26}" stroke="#eef0f4"/>'
                   f'<text x="{X(k):.1f}" y="{height - 14}" text-anchor="middle" fill="#5d6577">{k:+d}</text>')
    for y in (0.0, 0.5, 1.0):
        yy = base - y * ph
        out.append(f'<line x1="{_LEFT}" y1="{yy:.1f}" x2="{width - _RIGHT}" y2="{yy:.1f}" stroke="#eef0f4"/>'
                   f'<text x="4" y="{yy + 4:.1f}">{y:.1f}</text>')
    for r in labels:
        rate = r.get("rate")
        rate = 0.0 if rate is None else float(rate)
        jitter = (zlib.crc32(str(r["label_id"]).encode()) % 100 - 50) / 50 * 4  # ± 4 px: ties stay visible
        cx, cy = X(float(r["difficulty"])), base - max(0.0, min(1.0, rate)) * ph + jitter
        color = "#137333" if rate > 0.5 else "#b3261e"
        ring = ' stroke="#1d2330" stroke-width="1.5"' if r.get("flag") else ""
        out.append(f'<circle class="dot" cx="{cx:.1f}" cy="{cy:.1f}" r="4" fill="{color}" fill-opacity="0.75"{ring}>'
                   f'<title>{esc(r["label_id"])} ({esc(r.get("tier") or "no tier")}): difficulty '
                   f'{float(r["difficulty"]):+.2f}, passed {rate:.0%}{esc(" — " + r["flag"] + " than its tier") if r.get("flag") else ""}'
                   f"</title></circle>")
    out.append(f'<text x="0" y="{t_top - 14}" font-weight="600">Targets: ability ± se</text>')
    for t, x, row, text, left_side in placed:
        a, se = float(t["ability"]), float(t.get("se") or 0.0)
        y = t_top + 8 + row * 24
        out.append(f'<g class="target"><title>{esc(t["target"])}: ability {a:+.2f} ± {se:.2f}</title>'
                   f'<line x1="{X(a - se):.1f}" y1="{y}" x2="{X(a + se):.1f}" y2="{y}" stroke="#3757b8" stroke-width="1.5"/>'
                   f'<path d="M{x - 5:.1f},{y - 8} L{x + 5:.1f},{y - 8} L{x:.1f},{y} z" fill="#3757b8"/>'
                   f'<text x="{x - 8 if left_side else x + 8:.1f}" y="{y + 4}" text-anchor="{"end" if left_side else "start"}">'
                   f"{esc(text)}</text></g>")
    out.append(f'<text x="{_LEFT + plot_w / 2:.0f}" y="{height - 2}" text-anchor="middle">'
               "difficulty and ability (logits): harder labels, better targets →</text></svg>")
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
    median = statistics.median([float(r["difficulty"]) for r in rows]) if rows else 0.0
    chart = Markup(wright_map(rows, targets)) if rows else None
    for t in targets:
        t["p_median"] = 1 / (1 + math.exp(-(float(t["ability"]) - median)))
    listed = [r for r in rows if r.get("flag")] if flagged_only else rows
    return ui.render(
        request, "difficulty.html", viewer, title="Difficulty", source=source, live=live, fitted_at=fitted_at,
        rows=listed[:MAX_ROWS], more=max(0, len(listed) - MAX_ROWS), n_labels=len(rows), n_flagged=n_flagged,
        targets=targets, hidden_targets=hidden_targets, chart=chart, flagged_only=flagged_only, mode=mode,
        stored=bool(stored), db=ui.store.path if ui.sessions.open else "RESULTS.db",
        live_limits=(LIVE_MAX_TARGETS, f"{LIVE_MAX_CELLS:,}"),
    )


def routes(ui: Any) -> list[Route]:
    return [Route("/difficulty", ui.page(difficulty_page), methods=["GET"])]
