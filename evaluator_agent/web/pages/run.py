"""One run: its header cards, pass rate by segment and by tier with intervals, the score
histogram, and the investigations table (sortable, filterable, paginated, each row a link to
its trajectory).

The table is built in SQL (``results/browse.py``): a big run is never loaded whole. Query
parameters are untrusted: ``sort`` is one of :data:`browse.SORTS`, ``dir`` asc or desc,
``page`` an integer clamped to the pages there are, and each filter a value the run actually has
(``outcome`` one of pass, fail, error); anything else is ignored. Segments are label taxonomy
derived from the ground truth: under the ``scores`` policy they are neither shown nor filterable.
"""

from __future__ import annotations

from typing import Any

from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from evaluator_agent.results import browse
from evaluator_agent.results.disclosure import WITHHELD, disclose_summary
from evaluator_agent.results.html import bar_chart, histogram
from evaluator_agent.web.pages import _run_data as rd
from evaluator_agent.web.session import Viewer

PAGE = browse.PAGE_SIZE
#: the longest value of a query parameter that is looked at (longer: ignored)
MAX_PARAM = 100
MAX_PAGE_DIGITS = 7
DEFAULT_THRESHOLD = 0.7

#: (sort key, column heading, numeric column, hidden on narrow screens)
COLUMNS: tuple[tuple[str | None, str, bool, bool], ...] = (
    ("label", "Label", False, False),
    (None, "Segment", False, True),
    (None, "Tier", False, True),
    ("attempt", "Attempt", True, False),
    ("outcome", "Outcome", False, False),
    ("score", "Score", True, False),
    ("end_reason", "End reason", False, True),
    ("turns", "Turns", True, True),
    ("tool_calls", "Tool calls", True, True),
    ("duration", "Duration", True, True),
)
OUTCOME_TEXT = {"pass": "passed", "fail": "failed", "error": "infra error"}


def _param(request: Request, name: str) -> str | None:
    v = request.query_params.get(name)
    if v is None or not v.strip() or len(v) > MAX_PARAM:
        return None
    return v.strip()


def _choice(request: Request, name: str, allowed: Any) -> str | None:
    v = _param(request, name)
    return v if v is not None and v in allowed else None


def _page_number(request: Request) -> int:
    v = _param(request, "page")
    if v is None or len(v) > MAX_PAGE_DIGITS or not v.isdigit():
        return 1
    return max(1, int(v))


def table_state(request: Request, grouped: list[tuple[str, str, str, int]], meta: dict[str, dict[str, Any]],
                show_segment: bool) -> tuple[browse.Filters, str, bool, int]:
    """Filters, sort, direction and page asked for, each checked against what the run has."""
    labels = {g[0] for g in grouped}
    segments = {browse.label_dimension(meta, lid, "segment") for lid in labels} if show_segment else set()
    tiers = {browse.label_dimension(meta, lid, "tier") for lid in labels}
    end_reasons = {g[2] for g in grouped}
    f = browse.Filters(
        segment=_choice(request, "segment", segments),
        tier=_choice(request, "tier", tiers),
        outcome=_choice(request, "outcome", browse.OUTCOMES),
        end_reason=_choice(request, "end_reason", end_reasons),
    )
    sort = _choice(request, "sort", browse.SORTS) or "label"
    desc = _param(request, "dir") == "desc"
    return f, sort, desc, _page_number(request)


def _charts(s: dict[str, Any], hist: list[int], threshold: float) -> list[dict[str, Any]]:
    charts = []
    for dim in ("segment", "tier"):
        rows = rd.breakdown_rows(s, dim)
        if rows:
            charts.append({"dim": dim, "rows": rows, "table": (s.get("breakdown") or {}).get(dim) or {},
                           "svg": Markup(bar_chart(rows, f"Pass rate by {dim} (95% CI)"))})
    bins = len(hist)
    values = [(i + 0.5) / bins for i, c in enumerate(hist) for _ in range(c)]  # one value per investigation, in its bin
    hist_svg = Markup(histogram(values, "Score distribution (scored investigations)", bins=bins, threshold=threshold))
    return charts + [{"dim": "score", "rows": [], "table": {}, "svg": hist_svg}]


def run_page(ui: Any, request: Request, viewer: Viewer) -> Response:
    run = ui.run_for(viewer, request.path_params["run_id"])
    run_id = run["run_id"]
    store = ui.store
    browse.ensure_indexes(store)
    pol = rd.policy(ui, run)
    full = rd.full(pol)
    meta = rd.label_meta(ui, run)
    s = disclose_summary(rd.summary(ui, run, meta), pol) or {}
    head = rd.header(run, s)

    grouped = browse.groups(store, run_id)
    f, sort, desc, page = table_state(request, grouped, meta, full)
    fac = browse.facets(grouped, meta, f)
    pages = max(1, -(-fac.total // PAGE))
    page = min(page, pages)
    label_ids = browse.label_ids_for(meta, {g[0] for g in grouped}, segment=f.segment, tier=f.tier)
    rows = browse.page(store, run_id, f, label_ids, sort=sort, desc=desc, limit=PAGE, offset=(page - 1) * PAGE)
    for r in rows:
        r["href"] = rd.investigation_href(run_id, r["label_id"], r["attempt"])
        r["segment"] = browse.label_dimension(meta, r["label_id"], "segment") if full else None
        r["tier"] = browse.label_dimension(meta, r["label_id"], "tier")
        r["outcome_text"] = OUTCOME_TEXT.get(r["outcome"], r["outcome"])

    threshold = browse.pass_threshold(store, run_id)
    charts = _charts(s, browse.score_histogram(store, run_id), DEFAULT_THRESHOLD if threshold is None else threshold)
    # links keep the validated state only, never the raw query string
    state = {"segment": f.segment, "tier": f.tier, "outcome": f.outcome, "end_reason": f.end_reason,
             "sort": None if sort == "label" and not desc else sort, "dir": "desc" if desc else None}
    ignored = sorted(k for k in ("segment", "tier", "outcome", "end_reason", "sort", "dir", "page")
                     if request.query_params.get(k) and k not in _accepted(state, page, request))
    columns = [c for c in COLUMNS if full or c[1] != "Segment"]
    return ui.render(
        request, "run.html", viewer, title=f"Run {run_id}", run=head, policy=pol, full=full, withheld=WITHHELD,
        charts=charts, rows=rows, facets=fac.counts, total=fac.total, run_total=fac.run_total, page=page, pages=pages,
        state=state, sort=sort, desc=desc, columns=columns, outcome_text=OUTCOME_TEXT, ignored=ignored,
        filtered=any(getattr(f, k) is not None for k in ("segment", "tier", "outcome", "end_reason")),
        flaky=len(s.get("flaky_labels") or []), run_href=rd.run_href(run_id),
    )


def _accepted(state: dict[str, Any], page: int, request: Request) -> set[str]:
    """The query parameters that were taken as given (the others are reported as ignored)."""
    ok = {k for k, v in state.items() if v is not None}
    asked = _param(request, "sort")
    if asked == "label":
        ok.add("sort")
    if _param(request, "dir") == "asc":
        ok.add("dir")
    if str(page) == (_param(request, "page") or ""):
        ok.add("page")
    return ok


def routes(ui: Any) -> list[Route]:
    return [Route("/runs/{run_id}", ui.page(run_page), methods=["GET"])]
