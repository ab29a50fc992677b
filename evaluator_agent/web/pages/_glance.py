"""A label's world at a glance, drawn server-side as inline SVG: the service map (services and
their dependencies, in columns by depth from the paging service, which is highlighted) and a few
line charts of the paging service's main series over the baseline and incident windows.

Only what a target sees is drawn (the snapshot: topology, metrics, the trigger monitor); nothing
from the ground truth. Every name is escaped (``results.html.esc``); the SVG uses presentation
attributes only (the CSP forbids inline styles). A snapshot is a few MB: it is read only here,
and only the computed glance (a few KB) is cached, for the last :data:`CACHE` snapshots.
"""

from __future__ import annotations

import math
import re
import time
from collections import defaultdict, deque
from functools import lru_cache
from pathlib import Path
from typing import Any

from evaluator_agent.results.html import esc

MAX_NODES = 60
MAX_POINTS = 200
MAX_CHARTS = 4
CACHE = 4

KIND_FILL = {
    "service": "#e8eefc", "gateway": "#e3e9fb", "database": "#fbeee0", "cache": "#fdf3d6", "queue": "#e4f3ea",
    "external": "#eeeeee", "job": "#efe7f7", "infrastructure": "#e9ecef",
}


# ---------------------------------------------------------------------- the paging service


def paging_service(world: dict[str, Any], monitor_id: int | None, title: str) -> tuple[str | None, dict[str, Any] | None]:
    """(the service the trigger paged, the trigger monitor): the monitor's ``service`` tag, else
    the longest service name in the trigger title."""
    names = {s.get("name") for s in (world.get("topology") or {}).get("services") or []}
    monitor = next((m for m in world.get("monitors") or [] if monitor_id is not None and m.get("id") == monitor_id), None)
    tag = ((monitor or {}).get("tags") or {}).get("service")
    if tag in names:
        return tag, monitor
    low = title.lower()
    hits = [n for n in names if isinstance(n, str) and n and n.lower() in low]
    return (max(hits, key=len) if hits else None), monitor


# ---------------------------------------------------------------------- the service map


def _layers(services: list[str], deps: list[tuple[str, str]], paged: str | None) -> tuple[dict[str, int], dict[str, int]]:
    """(depth, rank) of each service. Depth from the paging service: its callees below (1, 2,
    ...), its callers above (-1, -2, ...); then the rest of its connected part by the same rule
    from the services placed (a callee one deeper than its caller). Rank: 0 for the paging
    service, its callees and its callers, then the number of hops from them (what is drawn
    first when not all fit). Services connected to none of them are left out ("elsewhere")."""
    down: dict[str, list[str]] = defaultdict(list)
    up: dict[str, list[str]] = defaultdict(list)
    for s, t in deps:
        down[s].append(t)
        up[t].append(s)
    if paged is None:  # no paging service: from the services nobody calls
        roots = [s for s in services if not up.get(s)] or services[:1]
        depth = {r: 0 for r in roots}
    else:
        depth = {paged: 0}
        for adj, sign in ((down, 1), (up, -1)):
            queue = deque([paged])
            while queue:
                x = queue.popleft()
                for y in adj.get(x, ()):
                    if y not in depth:
                        depth[y] = depth[x] + sign
                        queue.append(y)
    rank = {n: 0 for n in depth}
    queue = deque(sorted(depth, key=lambda n: (abs(depth[n]), n)))
    while queue:
        x = queue.popleft()
        for adj, sign in ((down, 1), (up, -1)):
            for y in adj.get(x, ()):
                if y not in depth:
                    depth[y], rank[y] = depth[x] + sign, rank[x] + 1
                    queue.append(y)
    return depth, rank


def service_map(world: dict[str, Any], paged: str | None) -> dict[str, Any]:
    """The map's SVG and what it left out."""
    topo = world.get("topology") or {}
    svcs = [s for s in topo.get("services") or [] if isinstance(s.get("name"), str)]
    kind = {s["name"]: str(s.get("kind") or "service") for s in svcs}
    names = list(kind)
    deps = [(str(d.get("source")), str(d.get("target"))) for d in topo.get("dependencies") or []
            if d.get("source") in kind and d.get("target") in kind]
    depth, rank = _layers(names, deps, paged)
    other = sorted(n for n in names if n not in depth)
    order = sorted(depth, key=lambda n: (rank[n], abs(depth[n]), depth[n] < 0, n))
    shown = order[:MAX_NODES]
    spare = MAX_NODES - len(shown)
    unconnected = other[:spare]
    omitted = len(names) - len(shown) - len(unconnected)
    cols: dict[int, list[str]] = defaultdict(list)
    for n in shown:
        cols[depth[n]].append(n)
    keys = sorted(cols)
    if unconnected:
        keys.append(max(keys, default=0) + 1)
        cols[keys[-1]] = unconnected
    # order within a column by the mean row of the callers placed before (fewer crossings)
    row: dict[str, float] = {}
    for k in keys:
        callers: dict[str, list[float]] = defaultdict(list)
        for s, t in deps:
            if s in row:
                callers[t].append(row[s])
        cols[k].sort(key=lambda n: (sum(callers[n]) / len(callers[n]) if callers.get(n) else 1e9, n))
        for i, n in enumerate(cols[k]):
            row[n] = i
    box_w, box_h, col_w, row_h, pad = 150, 22, 200, 30, 26
    height = pad + max((len(cols[k]) for k in keys), default=1) * row_h + 10
    width = max(1, len(keys)) * col_w
    pos: dict[str, tuple[float, float]] = {}
    for ci, k in enumerate(keys):
        n_col = len(cols[k])
        off = (height - pad - n_col * row_h) / 2
        for i, n in enumerate(cols[k]):
            pos[n] = (10 + ci * col_w, pad + off + i * row_h)
    title = f"Service map: {len(shown) + len(unconnected)} of {len(names)} services" + (
        f", in columns by depth from the paging service {paged}" if paged else "")
    out = [f'<svg class="chart svcmap" role="img" aria-label="{esc(title)}" width="{width}" height="{height:.0f}" '
           f'viewBox="0 0 {width} {height:.0f}" xmlns="http://www.w3.org/2000/svg" data-testid="service-map">',
           f"<title>{esc(title)}</title>",
           '<defs><marker id="svcmap-arrow" viewBox="0 0 8 8" refX="8" refY="4" markerWidth="6" markerHeight="6" '
           'orient="auto-start-reverse"><path d="M0,0 L8,4 L0,8 z" fill="#8a93a6"/></marker></defs>']
    for ci, k in enumerate(keys):
        label = ("elsewhere" if unconnected and k == keys[-1] else
                 "depth 0 (paged)" if paged and k == 0 else f"depth {k:+d}" if paged else f"depth {k}")
        out.append(f'<text x="{10 + ci * col_w}" y="14" fill="#5d6577">{esc(label)}</text>')
    for s, t in deps:
        if s not in pos or t not in pos:
            continue
        (x1, y1), (x2, y2) = pos[s], pos[t]
        y1, y2 = y1 + box_h / 2, y2 + box_h / 2
        hot = paged in (s, t)
        stroke = 'stroke="#b3261e" stroke-opacity="0.55"' if hot else 'stroke="#8a93a6" stroke-opacity="0.45"'
        if x2 > x1:
            a, b = x1 + box_w, x2
            m = (a + b) / 2
            d = f"M{a:.0f},{y1:.0f} C{m:.0f},{y1:.0f} {m:.0f},{y2:.0f} {b:.0f},{y2:.0f}"
        else:  # a call back to an earlier or the same column: a loop on the right
            a = max(x1, x2) + box_w
            d = f"M{x1 + box_w:.0f},{y1:.0f} C{a + 40:.0f},{y1:.0f} {a + 40:.0f},{y2:.0f} {x2 + box_w:.0f},{y2:.0f}"
        out.append(f'<path class="dep" d="{d}" fill="none" {stroke} stroke-width="1.2" marker-end="url(#svcmap-arrow)">'
                   f"<title>{esc(s)} calls {esc(t)}</title></path>")
    for n, (x, y) in pos.items():
        is_paged = n == paged
        fill = "#fde2e1" if is_paged else KIND_FILL.get(kind[n], "#e8eefc")
        stroke = 'stroke="#b3261e" stroke-width="2"' if is_paged else 'stroke="#9aa3b5" stroke-width="1"'
        text = n if len(n) <= 22 else n[:21] + "…"
        cls = "svc paged" if is_paged else "svc"
        bold = ' font-weight="700"' if is_paged else ""
        out.append(f'<g class="{cls}" data-service="{esc(n)}"><title>{esc(n)} ({esc(kind[n])})'
                   f'{" — the paging service" if is_paged else ""}</title>'
                   f'<rect x="{x:.0f}" y="{y:.0f}" width="{box_w}" height="{box_h}" rx="4" fill="{fill}" {stroke}/>'
                   f'<text x="{x + 6:.0f}" y="{y + 15:.0f}" fill="#1d2330"{bold}>'
                   f"{esc(text)}</text></g>")
    out.append("</svg>")
    return {"svg": "".join(out), "shown": len(shown) + len(unconnected), "total": len(names), "omitted": omitted,
            "edges": len(deps), "kinds": sorted({kind[n] for n in pos})}


# ---------------------------------------------------------------------- metric charts

_QUERY_RE = re.compile(r"\b(avg|sum|max|min):([A-Za-z0-9_.]+)\{([^}]*)\}")


def _matches(tags: dict[str, Any], filt: str) -> bool:
    for part in filt.split(","):
        part = part.strip()
        if not part or part == "*" or ":" not in part:
            continue
        k, v = part.split(":", 1)
        if str(tags.get(k)) != v:
            return False
    return True


def _combine(series: list[dict[str, Any]], how: str, t0: float, t1: float) -> dict[float, float]:
    """Several series into one (timestamp -> value) over [t0, t1]: sum, mean, max or min."""
    acc: dict[float, list[float]] = defaultdict(list)
    for s in series:
        start, step = float(s.get("start") or 0), float(s.get("interval") or 60) or 60.0
        vals = s.get("values") or []
        i0 = max(0, int((t0 - start) // step))
        i1 = min(len(vals), int((t1 - start) // step) + 1)
        for i in range(i0, i1):
            v = vals[i]
            if isinstance(v, int | float) and math.isfinite(v):
                acc[start + i * step].append(float(v))
    f = {"sum": sum, "max": max, "min": min}.get(how)
    return {ts: (f(v) if f else sum(v) / len(v)) for ts, v in acc.items()}


def _downsample(points: list[tuple[float, float]], n: int = MAX_POINTS) -> list[tuple[float, float]]:
    if len(points) <= n:
        return points
    size = len(points) / n
    out = []
    for k in range(n):
        chunk = points[int(k * size): int((k + 1) * size)] or points[int(k * size): int(k * size) + 1]
        out.append((sum(p[0] for p in chunk) / len(chunk), sum(p[1] for p in chunk) / len(chunk)))
    return out


def _series_choice(world: dict[str, Any], paged: str | None, monitor: dict[str, Any] | None,
                   t0: float, t1: float) -> list[tuple[str, str, dict[float, float]]]:
    """(title, unit hint, points) of up to :data:`MAX_CHARTS` series: the trigger monitor's,
    then the paging service's latency, error rate and requests."""
    metrics = world.get("metrics") or []
    out: list[tuple[str, str, dict[float, float]]] = []
    used: set[str] = set()
    m = _QUERY_RE.search(str((monitor or {}).get("query") or ""))
    if m:
        how, name, filt = m.groups()
        chosen = [s for s in metrics if s.get("metric") == name and _matches(s.get("tags") or {}, filt)]
        pts = _combine(chosen, how, t0, t1)
        if pts:
            out.append((f"monitor: {how} {name}", name, pts))
            used.add(name)
    if paged is None:
        return out
    own = [s for s in metrics if (s.get("tags") or {}).get("service") == paged]
    by_name: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for s in own:
        by_name[str(s.get("metric"))].append(s)
    prefixes = sorted({n.rsplit(".", 1)[0] for n in by_name if n.endswith((".duration", ".hits", ".errors"))},
                      key=lambda p: (not p.startswith("trace.http"), -len(by_name.get(p + ".hits", [])), p))
    if prefixes:
        p = prefixes[0]
        if p + ".duration" in by_name and p + ".duration" not in used:
            out.append((f"{paged} latency ({p}.duration)", "s", _combine(by_name[p + ".duration"], "avg", t0, t1)))
        hits = _combine(by_name.get(p + ".hits", []), "sum", t0, t1)
        if p + ".errors" in by_name:
            errs = _combine(by_name[p + ".errors"], "sum", t0, t1)
            rate = {ts: errs.get(ts, 0.0) / h for ts, h in hits.items() if h > 0} if hits else {}
            out.append((f"{paged} error rate ({p}.errors / hits)", "ratio", rate) if rate else
                       (f"{paged} errors (sum {p}.errors)", "count", errs))
        if hits and p + ".hits" not in used:
            out.append((f"{paged} requests (sum {p}.hits)", "count", hits))
    for name in ("kubernetes.cpu.usage.total", "kubernetes.memory.usage", "kubernetes.containers.restarts"):
        if len(out) >= MAX_CHARTS:
            break
        if name in by_name and name not in used:
            out.append((f"{paged} {name} (mean)", name, _combine(by_name[name], "avg", t0, t1)))
    return [c for c in out if c[2]][:MAX_CHARTS]


def _fmt(v: float) -> str:
    a = abs(v)
    if a >= 1e12:
        return f"{v:.2g}"
    if a >= 1e9:
        return f"{v / 1e9:.3g}G"
    if a >= 1e6:
        return f"{v / 1e6:.3g}M"
    if a >= 1e3:
        return f"{v / 1e3:.3g}k"
    return f"{v:.3g}"


def line_chart(title: str, points: dict[float, float], windows: dict[str, tuple[float, float]], fired: float,
               t0: float, t1: float, width: int = 360, height: int = 150) -> str:
    """One small line chart: the incident window shaded, the baseline window tinted, the page
    marked; gaps in the data left as gaps."""
    pts = _downsample(sorted(points.items()))
    left, right, top, bottom = 40, 8, 22, 20
    pw, ph = width - left - right, height - top - bottom
    ys = [v for _, v in pts]
    lo, hi = min(ys), max(ys)
    if lo >= 0 and lo < hi * 0.5:
        lo = 0.0
    span = (hi - lo) or (abs(hi) or 1.0)
    tspan = (t1 - t0) or 1.0

    def X(t: float) -> float:
        return left + (min(max(t, t0), t1) - t0) / tspan * pw

    def Y(v: float) -> float:
        return top + ph - (v - lo) / span * ph

    out = [f'<svg class="chart spark-metric" role="img" aria-label="{esc(title)}" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg" data-testid="metric-chart">',
           f'<text x="0" y="13" font-weight="600">{esc(title if len(title) <= 54 else title[:53] + "…")}</text>',
           f"<title>{esc(title)}</title>"]
    for name, fill, opacity in (("baseline", "#5b7bd5", "0.08"), ("incident", "#b3261e", "0.12")):
        if name in windows:
            a, b = windows[name]
            out.append(f'<rect class="{name}" x="{X(a):.1f}" y="{top}" width="{max(0.0, X(b) - X(a)):.1f}" height="{ph}" '
                       f'fill="{fill}" fill-opacity="{opacity}"><title>{name} window</title></rect>')
    out.append(f'<line x1="{left}" y1="{top + ph}" x2="{left + pw}" y2="{top + ph}" stroke="#dde1e8"/>')
    out.append(f'<text x="{left - 4}" y="{top + 8}" text-anchor="end">{esc(_fmt(hi))}</text>'
               f'<text x="{left - 4}" y="{top + ph}" text-anchor="end">{esc(_fmt(lo))}</text>')
    segs: list[list[str]] = [[]]
    step = 3 * (pts[1][0] - pts[0][0]) if len(pts) > 1 else 0
    prev = None
    for t, v in pts:
        if prev is not None and step and t - prev > step:
            segs.append([])
        segs[-1].append(f"{X(t):.1f},{Y(v):.1f}")
        prev = t
    for seg in segs:
        if len(seg) > 1:
            out.append(f'<polyline points="{" ".join(seg)}" fill="none" stroke="#3757b8" stroke-width="1.4"/>')
        elif seg:
            x, y = seg[0].split(",")
            out.append(f'<circle cx="{x}" cy="{y}" r="1.5" fill="#3757b8"/>')
    if t0 <= fired <= t1:
        out.append(f'<line class="fired" x1="{X(fired):.1f}" y1="{top}" x2="{X(fired):.1f}" y2="{top + ph}" stroke="#b3261e" '
                   f'stroke-dasharray="3 2"><title>paged at {time.strftime("%H:%M", time.gmtime(fired))} UTC</title></line>')
    for t, anchor in ((t0, "start"), (t1, "end")):
        out.append(f'<text x="{X(t):.1f}" y="{height - 5}" text-anchor="{anchor}" fill="#5d6577">'
                   f'{time.strftime("%H:%M", time.gmtime(t))} UTC</text>')
    out.append("</svg>")
    return "".join(out)


# ---------------------------------------------------------------------- the glance


@lru_cache(maxsize=CACHE)
def glance(snapshot: str, directory: str, monitor_id: int | None, title: str, baseline: tuple[float, float],
           incident: tuple[float, float], fired: float) -> dict[str, Any]:
    """The service map and charts of one label's world (cached per snapshot and trigger).
    Raises ``SnapshotError`` when the snapshot is missing or corrupt."""
    from evaluator_agent.telemetry.world import load_snapshot_dict

    world = load_snapshot_dict(snapshot, Path(directory))
    paged, monitor = paging_service(world, monitor_id, title)
    cover0, cover1 = float(world.get("start") or baseline[0]), float(world.get("end") or incident[1])
    t0, t1 = max(min(baseline[0], incident[0]), cover0), min(max(incident[1], baseline[1]), cover1)
    if t1 <= t0:
        t0, t1 = cover0, cover1
    charts = [line_chart(name, pts, {"baseline": baseline, "incident": incident}, fired, t0, t1)
              for name, _, pts in _series_choice(world, paged, monitor, t0, t1)]
    return {"paged": paged, "monitor": (monitor or {}).get("name"), "map": service_map(world, paged), "charts": charts,
            "services": len((world.get("topology") or {}).get("services") or []), "window": (t0, t1)}
