"""Reports of a run: one self-contained HTML page (inline CSS and SVG, no script, no
network), a Markdown summary fit for a pull-request comment, and comparisons.

Inputs are plain dicts: the run result (``orchestrator.build_result``), its statistics
(``stats.run_statistics``), per-investigation details from the store (diagnosis, tool
calls) and the labels' ground truth. Everything is escaped; nothing a target wrote can
inject markup into the page.
"""

from __future__ import annotations

import html
import json
import zlib
from typing import Any

from evaluator_agent.core.untrusted import clean, md_code

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:1180px;color:#1d2330;padding:0 16px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #e3e6ec;padding-bottom:4px}
.muted{color:#6b7385}.kpis{display:flex;gap:14px;flex-wrap:wrap;margin:14px 0}
.kpi{border:1px solid #e3e6ec;border-radius:8px;padding:10px 14px;min-width:130px}.kpi b{display:block;font-size:20px}
table{border-collapse:collapse;width:100%;font-size:13px}th,td{text-align:left;padding:5px 8px;border-bottom:1px solid #eef0f4;vertical-align:top}
th{background:#f6f7f9}.pass{color:#137333;font-weight:600}.fail{color:#b3261e;font-weight:600}
.grid{display:grid;grid-template-columns:1fr 1fr;gap:18px}.card{border:1px solid #e3e6ec;border-radius:8px;padding:10px}
details{margin:2px 0}summary{cursor:pointer}code{font:12px ui-monospace,Menlo,monospace;background:#f4f5f7;padding:1px 3px;border-radius:3px}
.gt{background:#f3f8f4}.dx{background:#f7f5fb}svg text{font:11px system-ui,sans-serif;fill:#1d2330}
"""


def esc(x: Any) -> str:
    return html.escape("" if x is None else str(x), quote=True)


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{x:.0%}"


# ----------------------------------------------------------------------------- SVG charts


def bar_chart(rows: list[tuple[str, float, tuple[float, float] | None, int]], title: str, width: int = 520) -> str:
    """Horizontal bars of rates in [0,1] with optional CI whiskers. rows: (name, rate, ci, n)."""
    bar_h, gap, left, right = 18, 8, 150, 92
    height = 30 + len(rows) * (bar_h + gap)
    scale = width - left - right
    out = [f'<svg class="chart" role="img" aria-label="{esc(title)}" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">',
           f'<text x="0" y="14" font-weight="600">{esc(title)}</text>']
    for tick in (0, 0.25, 0.5, 0.75, 1.0):
        x = left + tick * scale
        out.append(f'<line x1="{x:.1f}" y1="22" x2="{x:.1f}" y2="{height}" stroke="#eef0f4"/>')
    for i, (name, rate, ci, n) in enumerate(rows):
        y = 26 + i * (bar_h + gap)
        w = max(0.0, min(1.0, rate)) * scale
        out.append(f'<text x="{left - 6}" y="{y + 13}" text-anchor="end">{esc(name)}</text>')
        out.append(f'<rect class="bar" x="{left}" y="{y}" width="{w:.1f}" height="{bar_h}" fill="#5b7bd5" rx="2"><title>{esc(name)}: {rate:.1%} (n={n})</title></rect>')
        if ci:
            lo, hi = (left + max(0.0, min(1.0, c)) * scale for c in ci)
            cy = y + bar_h / 2
            out.append(f'<line class="ci" x1="{lo:.1f}" y1="{cy}" x2="{hi:.1f}" y2="{cy}" stroke="#1d2330" stroke-width="1.5"/>')
            out += [f'<line x1="{x:.1f}" y1="{cy - 5}" x2="{x:.1f}" y2="{cy + 5}" stroke="#1d2330" stroke-width="1.5"/>' for x in (lo, hi)]
        out.append(f'<text x="{width - right + 6}" y="{y + 13}">{rate:.0%} n={n}</text>')
    out.append("</svg>")
    return "".join(out)


def histogram(values: list[float], title: str, bins: int = 10, width: int = 520, height: int = 200, threshold: float | None = None) -> str:
    counts = [0] * bins
    for v in values:
        counts[min(bins - 1, max(0, int(v * bins)))] += 1
    top = max(counts) or 1
    left, bottom, plot_w, plot_h = 30, 24, width - 40, height - 60
    bw = plot_w / bins
    out = [f'<svg class="chart" role="img" aria-label="{esc(title)}" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">',
           f'<text x="0" y="14" font-weight="600">{esc(title)}</text>']
    base = height - bottom
    for i, c in enumerate(counts):
        h = plot_h * c / top
        x = left + i * bw
        out.append(f'<rect class="bar" x="{x + 1:.1f}" y="{base - h:.1f}" width="{bw - 2:.1f}" height="{h:.1f}" fill="#7a9a5b">'
                   f'<title>{i / bins:.1f}–{(i + 1) / bins:.1f}: {c}</title></rect>')
        if c:
            out.append(f'<text x="{x + bw / 2:.1f}" y="{base - h - 3:.1f}" text-anchor="middle">{c}</text>')
    for i in range(0, bins + 1, 2):
        out.append(f'<text x="{left + i * bw:.1f}" y="{base + 14}" text-anchor="middle">{i / bins:.1f}</text>')
    if threshold is not None:
        x = left + threshold * plot_w
        out.append(f'<line x1="{x:.1f}" y1="22" x2="{x:.1f}" y2="{base}" stroke="#b3261e" stroke-dasharray="4 3"/>'
                   f'<text x="{x + 4:.1f}" y="32" fill="#b3261e">pass ≥ {threshold:g}</text>')
    out.append("</svg>")
    return "".join(out)


def difficulty_map(points: list[tuple[str, float, float, bool]], title: str, x_label: str, width: int = 1100, height: int = 260) -> str:
    """Scatter: x = label difficulty, y = score; one dot per label (mean over attempts)."""
    left, bottom, top_pad = 40, 30, 24
    plot_w, plot_h = width - left - 20, height - bottom - top_pad
    xs = [p[1] for p in points] or [0.0]
    lo, hi = min(xs), max(xs)
    span = (hi - lo) or 1.0
    out = [f'<svg class="chart" role="img" aria-label="{esc(title)}" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">',
           f'<text x="0" y="14" font-weight="600">{esc(title)}</text>']
    base = height - bottom
    for y in (0, 0.5, 1.0):
        yy = base - y * plot_h
        out.append(f'<line x1="{left}" y1="{yy:.1f}" x2="{width - 20}" y2="{yy:.1f}" stroke="#eef0f4"/><text x="4" y="{yy + 4:.1f}">{y:.1f}</text>')
    for name, x, score, passed in points:
        cx = left + (x - lo) / span * plot_w
        cy = base - max(0.0, min(1.0, score)) * plot_h
        color = "#137333" if passed else "#b3261e"
        out.append(f'<circle class="dot" cx="{cx:.1f}" cy="{cy:.1f}" r="4" fill="{color}" fill-opacity="0.75"><title>{esc(name)}: difficulty {x:.2f}, score {score:.2f}</title></circle>')
    out.append(f'<text x="{left + plot_w / 2:.0f}" y="{height - 6}" text-anchor="middle">{esc(x_label)}</text></svg>')
    return "".join(out)


# ----------------------------------------------------------------------------- accuracies

# (summary key, label) of the accuracies reported beside the pass rate (stats.ACCURACY_METRICS)
_ACCURACIES: tuple[tuple[str, str], ...] = (
    ("ac_at_1", "root cause AC@1"), ("ac_at_3", "AC@3"), ("mechanism_accuracy", "mechanism"),
)
ACCURACY_NOTE = ("AC@k: a root cause among the top k candidates; mechanism: the chosen candidate's "
                 "mechanism exactly right; on no-fault controls: declared no fault. A pass needs the "
                 "top candidate and its mechanism right and a score of at least the threshold.")


def _accuracies(stats: dict[str, Any]) -> list[tuple[str, float, list[float] | None]]:
    """(label, share, 95% CI) of each accuracy the summary carries."""
    acc = stats.get("accuracy") or {}
    return [(name, float(stats[key]), (acc.get(key) or {}).get("ci95"))
            for key, name in _ACCURACIES if key in stats]


# ----------------------------------------------------------------------------- HTML


def _breakdown_rows(stats: dict[str, Any], dim: str) -> list[tuple[str, float, tuple[float, float] | None, int]]:
    rows = []
    order = {"easy": 0, "medium": 1, "hard": 2}
    for name, b in sorted((stats.get("breakdown", {}).get(dim) or {}).items(), key=lambda kv: (order.get(kv[0], 9), kv[0])):
        ci = b.get("ci95")
        rows.append((name, float(b.get("pass_rate", 0.0)), tuple(ci) if ci else None, int(b.get("n", 0))))
    return rows


def _gt_cell(gt: dict[str, Any]) -> str:
    if not gt or gt.get("withheld"):
        return "<span class=muted>withheld</span>"
    if gt.get("no_fault"):
        return "<b>no fault</b>"
    causes = ", ".join(esc(rc["entity"]) for rc in gt.get("root_causes", []))
    chain = " → ".join(esc(x) for x in gt.get("causal_chain", []))
    return f"<b>{causes}</b> · {esc(gt.get('mechanism'))}<br><span class=muted>{chain}</span>"


def _dx_cell(dx: dict[str, Any] | None) -> str:
    if not dx:
        return "<span class=muted>no diagnosis</span>"
    if dx.get("no_fault"):
        return "<b>no fault</b>"
    cands = dx.get("root_causes") or []
    top = ", ".join(f"{esc(clean(c.get('entity')))}" + (f" ({c['confidence']:.2f})" if isinstance(c.get("confidence"), int | float) else "") for c in cands[:3])
    mech = esc(clean(cands[0].get("mechanism"))) if cands else ""
    chain = " → ".join(esc(clean(e.get("source"))) for e in dx.get("causal_chain", [])[:1]) + "".join(f" → {esc(clean(e.get('target')))}" for e in dx.get("causal_chain", [])[:12])
    return f"<b>{top}</b> · {mech}<br><span class=muted>{chain}</span>"


def _trajectory(calls: list[dict[str, Any]]) -> str:
    if not calls:
        return "<span class=muted>no tool calls</span>"
    rows = "".join(
        f"<tr><td>{c['turn']}</td><td>{esc(c.get('surface') or 'a2a')}</td><td><code>{esc(c['name'])}</code></td><td><code>{esc(json.dumps(c.get('arguments', {}))[:300])}</code></td>"
        f"<td>{'ok' if c['ok'] else '<span class=fail>' + esc((c.get('error') or '')[:160]) + '</span>'}</td><td>{c.get('result_size', 0)}</td>"
        f"<td>{c.get('duration_ms', 0):.1f}</td></tr>"
        for c in calls
    )
    return (f"<details><summary>{len(calls)} tool calls</summary><table><tr><th>turn</th><th>surface</th><th>tool</th><th>arguments</th>"
            f"<th>result</th><th>bytes</th><th>ms</th></tr>{rows}</table></details>")


def render_html(result: dict[str, Any], stats: dict[str, Any], details: list[dict[str, Any]],
                labels: dict[str, dict[str, Any]], difficulty: dict[str, float] | None = None, pass_threshold: float = 0.7) -> str:
    """The whole page. ``details``: stored investigation rows (+ ``calls``); ``labels``: id -> {tier, segment, ground_truth}."""
    t, s = result["target"], result["summary"]
    p1 = stats.get("pass_at_1") or {}
    ci = stats.get("ci95") or p1.get("ci95")
    kpis = [
        ("pass@1", f"{_pct(stats.get('pass_rate', s.get('pass_rate')))}" + (f" <span class=muted>[{ci[0]:.0%}, {ci[1]:.0%}]</span>" if ci else "")),
    ] + [
        (name, _pct(v) + (f" <span class=muted>[{c[0]:.0%}, {c[1]:.0%}]</span>" if c else ""))
        for name, v, c in _accuracies(stats)
    ] + [
        ("mean score", f"{s.get('mean_score', 0):.3f}"),
        ("investigations", f"{s.get('n', 0)}"),
        ("infra errors", f"{s.get('errors', 0)}"),
    ] + [(f"pass@{k}", _pct(v)) for k, v in sorted((stats.get("pass_at_k") or {}).items(), key=lambda kv: int(kv[0])) if k != "1"] \
      + [(f"pass^{k}", _pct(v)) for k, v in sorted((stats.get("pass_hat_k") or {}).items(), key=lambda kv: int(kv[0])) if k != "1"]
    charts = [bar_chart(_breakdown_rows(stats, dim), f"Pass rate by {dim} (95% CI)") for dim in ("segment", "tier") if _breakdown_rows(stats, dim)]
    scores = [d["score"] for d in details]
    by_label: dict[str, list[dict[str, Any]]] = {}
    for d in details:
        by_label.setdefault(d["label_id"], []).append(d)
    tier_x = {"easy": 0.0, "medium": 1.0, "hard": 2.0}
    points = []
    for lid, ds in sorted(by_label.items()):
        x = difficulty.get(lid) if difficulty and lid in difficulty else tier_x.get(labels.get(lid, {}).get("tier", ""), 1.0) + (zlib.crc32(lid.encode()) % 100) / 250
        points.append((lid, float(x), sum(d["score"] for d in ds) / len(ds), sum(d["passed"] for d in ds) * 2 > len(ds)))
    x_label = "empirical difficulty (IRT, logits)" if difficulty else "difficulty tier (easy · medium · hard, jittered)"
    rows_html = []
    for d in details:
        lab = labels.get(d["label_id"], {})
        verdict = '<span class="pass">PASS</span>' if d["passed"] else '<span class="fail">fail</span>'
        rows_html.append(
            f"<tr><td><code>{esc(d['label_id'])}</code><br><span class=muted>{esc(lab.get('segment') or '–')} · {esc(lab.get('tier'))} · try {d['attempt']}</span></td>"
            f"<td>{verdict} {d['score']:.2f}<br><span class=muted>{esc(d['end_reason'])}</span></td>"
            f"<td class=gt>{_gt_cell(lab.get('ground_truth', {}))}</td><td class=dx>{_dx_cell(d.get('diagnosis'))}</td>"
            f"<td>{esc(d.get('explanation', ''))[:600]}{_trajectory(d.get('calls', []))}</td></tr>"
        )
    flaky = stats.get("flaky_labels") or []
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8><meta name=viewport content='width=device-width,initial-scale=1'>"
        f"<title>proctor report {esc(result['run_id'])}</title><style>{_CSS}</style></head><body>"
        f"<h1>{esc(clean(t['name']))} {esc(clean(t['version'], 40))} on {esc(result['labelset']['name'])}</h1>"
        f"<div class=muted>run <code>{esc(result['run_id'])}</code> · label set hash <code>{esc(result['labelset']['hash'][:12])}</code>"
        f" · proctor {esc(result.get('proctor', {}).get('version', ''))} ({esc(result.get('proctor', {}).get('git_rev', ''))})</div>"
        "<div class=kpis>" + "".join(f"<div class=kpi><span class=muted>{esc(k)}</span><b>{v}</b></div>" for k, v in kpis) + "</div>"
        + (f"<p class=muted>{esc(ACCURACY_NOTE)}</p>" if _accuracies(stats) else "") +
        "<h2>Pass rates</h2><div class=grid>" + "".join(f"<div class=card>{c}</div>" for c in charts)
        + f"<div class=card>{histogram(scores, 'Score distribution', threshold=pass_threshold)}</div></div>"
        f"<h2>Difficulty map</h2><div class=card>{difficulty_map(points, 'Labels by difficulty and score (green: passed)', x_label)}</div>"
        + (f"<h2>Flaky labels</h2><p>{', '.join('<code>' + esc(x) + '</code>' for x in flaky)}</p>" if flaky else "")
        + "<h2>Investigations</h2><table><tr><th>label</th><th>result</th><th>ground truth</th><th>diagnosis</th><th>explanation and trajectory</th></tr>"
        + "".join(rows_html) + "</table></body></html>"
    )


# ----------------------------------------------------------------------------- Markdown


def render_markdown(result: dict[str, Any], stats: dict[str, Any]) -> str:
    t, s = result["target"], result["summary"]
    ci = stats.get("ci95")
    lines = [
        f"### proctor: {md_code(t['name'])} {md_code(t['version'], 40)} on `{result['labelset']['name']}`",
        "",
        f"**pass@1 {_pct(stats.get('pass_rate', s.get('pass_rate')))}**"
        + (f" (95% CI {ci[0]:.0%}–{ci[1]:.0%})" if ci else "")
        + f" · mean score {s.get('mean_score', 0):.3f} · {s.get('n', 0)} investigations · {s.get('errors', 0)} infra errors",
        "",
    ]
    acc = _accuracies(stats)
    if acc:
        lines += [" · ".join(f"{name} **{v:.0%}**" + (f" (95% CI {c[0]:.0%}–{c[1]:.0%})" if c else "")
                             for name, v, c in acc), "", f"<sub>{ACCURACY_NOTE}</sub>", ""]
    for dim in ("tier", "segment"):
        rows = _breakdown_rows(stats, dim)
        if rows:
            values = stats.get("breakdown", {}).get(dim) or {}
            lines += [f"| {dim} | pass rate | 95% CI | n | AC@1 | mechanism |", "| --- | --- | --- | --- | --- | --- |"]
            lines += [f"| {n} | {r:.0%} | {f'{c[0]:.0%}–{c[1]:.0%}' if c else '–'} | {k} | "
                      f"{_pct(values.get(n, {}).get('ac_at_1'))} | {_pct(values.get(n, {}).get('mechanism_accuracy'))} |"
                      for n, r, c, k in rows]
            lines.append("")
    if s.get("previous_run"):
        lines.append(f"vs previous run `{s['previous_run']}`: {len(s.get('newly_failing', []))} newly failing, "
                     f"{len(s.get('newly_passing', []))} newly passing")
        for lid in s.get("newly_failing", [])[:20]:
            lines.append(f"- :x: `{lid}`")
    lines.append(f"\n<sub>run `{result['run_id']}` · label set `{result['labelset']['hash'][:12]}`</sub>")
    return "\n".join(lines)


def render_compare_markdown(cmp: dict[str, Any]) -> str:
    """``cmp`` as made by analysis.compare_stored (which names both runs' targets)."""
    icon = {"regression": ":red_circle:", "improvement": ":green_circle:"}.get(cmp["verdict"], ":white_circle:")
    ci = cmp.get("ci95") or [0, 0]
    base, new = cmp["base"], cmp["new"]
    lines = [
        f"### {icon} {cmp['verdict']}: {md_code(new['target'])} {md_code(new['version'], 40)} vs {md_code(base['target'])} {md_code(base['version'], 40)}",
        "",
        f"Δ pass rate **{cmp['delta']:+.1%}** (95% CI {ci[0]:+.1%} to {ci[1]:+.1%}), exact McNemar p = {cmp.get('mcnemar_p', 1):.3g}, "
        f"{cmp.get('n_shared', 0)} shared labels",
        "",
    ]
    acc = cmp.get("accuracy") or {}
    if acc:
        lines += [" · ".join(f"{name} {acc[key]['base']:.0%} → {acc[key]['new']:.0%} ({acc[key]['delta']:+.1%})"
                             for key, name in _ACCURACIES if key in acc), ""]
    flips = cmp.get("flips", {})
    if flips.get("pass_to_fail"):
        lines.append(f"**pass → fail ({len(flips['pass_to_fail'])})**: " + ", ".join(f"`{x}`" for x in flips["pass_to_fail"][:30]))
    if flips.get("fail_to_pass"):
        lines.append(f"**fail → pass ({len(flips['fail_to_pass'])})**: " + ", ".join(f"`{x}`" for x in flips["fail_to_pass"][:30]))
    regressed = [k for k, v in (cmp.get("segments") or {}).items() if v.get("regressed")]
    if regressed:
        lines.append("Segments that regressed: " + ", ".join(f"`{x}`" for x in regressed))
    return "\n".join(lines)


def render_compare_html(cmp: dict[str, Any]) -> str:
    seg_rows = []
    for name, v in sorted((cmp.get("segments") or {}).items()):
        seg_rows.append((f"{name} (base)", float(v.get("base", 0)), None, int(v.get("n", 0))))
        seg_rows.append((f"{name} (new)", float(v.get("new", 0)), None, int(v.get("n", 0))))
    body = esc(render_compare_markdown(cmp)).replace("\n", "<br>")
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>proctor compare</title><style>{_CSS}</style></head><body><h1>Comparison: {esc(cmp['verdict'])}</h1>"
        f"<p>{body}</p><div class=card>{bar_chart(seg_rows, 'Pass rate by segment, base vs new', width=700)}</div></body></html>"
    )
