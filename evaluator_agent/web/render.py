"""Templates and the small formatting the pages share.

Jinja2 with autoescaping on for every template: whatever a card, a label or a target put in a
string reaches the page as text. Charts are inline SVG from ``results/html.py`` (escaped there)
and :func:`sparkline`; they are passed to templates as ``Markup`` only from those functions.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from markupsafe import Markup

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"


def environment() -> Any:
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(pct=pct, num=num, when=when, secs=secs, ci=ci_text)
    env.globals.update(query=query)
    return env


def pct(x: Any, digits: int = 0) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{float(x):.{digits}%}"


def num(x: Any, digits: int = 2) -> str:
    if x is None:
        return "–"
    if isinstance(x, int):
        return f"{x:,}"
    return f"{float(x):.{digits}f}"


def when(ts: Any) -> str:
    if not ts:
        return "–"
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(float(ts)))


def secs(x: Any) -> str:
    if x is None:
        return "–"
    x = float(x)
    if x < 60:
        return f"{x:.1f} s"
    if x < 3600:
        return f"{x / 60:.1f} min"
    return f"{x / 3600:.1f} h"


def ci_text(ci: Any) -> str:
    if not ci or len(ci) != 2 or ci[0] is None:
        return ""
    return f"[{float(ci[0]):.0%}, {float(ci[1]):.0%}]"


def query(params: dict[str, Any], **changes: Any) -> str:
    """A query string: ``params`` with ``changes`` applied (None removes a key)."""
    merged = {**{k: v for k, v in params.items() if v not in (None, "")}, **changes}
    return "?" + urlencode({k: v for k, v in merged.items() if v not in (None, "")})


def sparkline(values: list[float], width: int = 120, height: int = 24, label: str = "") -> Markup:
    """An inline SVG polyline of rates in [0, 1], oldest first; the last point marked."""
    from evaluator_agent.results.html import esc

    if not values:
        return Markup("")
    n = len(values)
    xs = [2 + (width - 4) * (i / (n - 1) if n > 1 else 0.5) for i in range(n)]
    ys = [height - 2 - (height - 4) * max(0.0, min(1.0, v)) for v in values]
    pts = " ".join(f"{x:.1f},{y:.1f}" for x, y in zip(xs, ys, strict=True))
    title = esc(label or f"{n} runs, last {values[-1]:.0%}")
    return Markup(
        f'<svg class="spark" role="img" aria-label="{title}" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg"><title>{title}</title>'
        f'<polyline points="{pts}" fill="none" stroke="#5b7bd5" stroke-width="1.5"/>'
        f'<circle cx="{xs[-1]:.1f}" cy="{ys[-1]:.1f}" r="2.5" fill="#1d2330"/></svg>'
    )
