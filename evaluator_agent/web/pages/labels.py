"""Label sets: every set of the labelsets folder with its counts (``/labels``); one set's labels
as a table filtered by taxonomy and tier with counts per facet (``/labels/{set}``); one label
(``/labels/{set}/{label_id}``): its taxonomy, difficulty, task, outcome history across the runs
the viewer may see, its world at a glance (service map and the paging service's main series),
and its ground truth when the disclosure policy allows it.

Disclosure: under ``scores`` (always for a private set) nothing derived from the ground truth
is shown or filterable: not the segment, mechanism, problem category, technologies, family,
tags, provenance or difficulty factors (their chain length and red herrings describe the
answer), nor the ground truth. Tier, monitor type, the task and the world are what a target
is shown anyway.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from typing import Any

from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from evaluator_agent.core.labels import LABEL_ID_RE, Label, LabelError
from evaluator_agent.core.vocab import (
    DIFFICULTY_TIERS,
    INFRA_ERROR_KINDS,
    MECHANISMS,
    MONITOR_TYPES,
    PROBLEM_CATEGORIES,
    SEGMENTS,
)
from evaluator_agent.results.disclosure import FULL
from evaluator_agent.web.app import BadRequest, NotFound
from evaluator_agent.web.pages import _glance
from evaluator_agent.web.pages._data import (
    label_history,
    labelset,
    labelset_names,
    labelset_policy,
    snapshots_root,
    target_key,
)
from evaluator_agent.web.session import Viewer

log = logging.getLogger(__name__)

PAGE = 100
TIER_ORDER = {t: i for i, t in enumerate(DIFFICULTY_TIERS)}

#: (query parameter, title, allowed values, derived from the ground truth)
FACETS: tuple[tuple[str, str, tuple[str, ...], bool], ...] = (
    ("tier", "Tier", DIFFICULTY_TIERS, False),
    ("monitor_type", "Monitor type", MONITOR_TYPES, False),
    ("segment", "Segment", SEGMENTS, True),
    ("mechanism", "Mechanism", MECHANISMS, True),
    ("problem_category", "Problem category", PROBLEM_CATEGORIES, True),
)


def _facet_value(lb: Label, key: str) -> str:
    return lb.difficulty.tier if key == "tier" else str(getattr(lb.taxonomy, key))


def _empirical(ui: Any) -> dict[str, dict[str, Any]]:
    return {d["label_id"]: d for d in ui.store.get_difficulty()}


# ---------------------------------------------------------------------- /labels


def labelsets_page(ui: Any, request: Request, viewer: Viewer) -> Response:
    sets = []
    for name in labelset_names(ui):
        ls = labelset(ui, name)
        if ls is None:
            sets.append({"name": name, "error": "does not load (check it with proctor labels lint)"})
            continue
        tiers = Counter(lb.difficulty.tier for lb in ls.labels)
        status = Counter(lb.status for lb in ls.labels)
        sets.append({"name": name, "error": None, "description": ls.info.description, "version": ls.info.version,
                     "private": bool(ls.info.private), "n": len(ls.labels), "hash": ls.content_hash[:12],
                     "tiers": [(t, tiers.get(t, 0)) for t in DIFFICULTY_TIERS],
                     "retired": status.get("retired", 0), "draft": status.get("draft", 0),
                     "policy": labelset_policy(ui, ls)})
    return ui.render(request, "labels.html", viewer, title="Label sets", sets=sets)


# ---------------------------------------------------------------------- /labels/{set}


def _filters(request: Request, facets: list[tuple[str, str, tuple[str, ...], bool]]) -> dict[str, str]:
    p = request.query_params
    shown = {f[0] for f in facets}
    chosen: dict[str, str] = {}
    for key, title, allowed, _truth in FACETS:
        v = p.get(key)
        if not v:
            continue
        if key not in shown:
            raise BadRequest(f"filtering by {title.lower()} is withheld by the disclosure policy")
        if len(v) > 64 or v not in allowed:
            raise BadRequest(f"unknown {title.lower()} {v[:64]!r}")
        chosen[key] = v
    return chosen


def labelset_page(ui: Any, request: Request, viewer: Viewer) -> Response:
    name = request.path_params["set"]
    ls = labelset(ui, name)
    if ls is None:
        raise NotFound(f"no label set {name[:64]!r}")
    policy = labelset_policy(ui, ls)
    facets = [f for f in FACETS if policy == FULL or not f[3]]
    chosen = _filters(request, facets)

    def matches(lb: Label, skip: str | None = None) -> bool:
        return all(_facet_value(lb, k) == v for k, v in chosen.items() if k != skip)

    facet_counts = []
    for key, title, _allowed, _truth in facets:
        c = Counter(_facet_value(lb, key) for lb in ls.labels if matches(lb, skip=key))
        values = sorted(c, key=lambda v: (TIER_ORDER.get(v, 9), v)) if key == "tier" else sorted(c)
        facet_counts.append({"key": key, "title": title, "values": [(v, c[v]) for v in values],
                             "chosen": chosen.get(key, "")})
    rows = [lb for lb in ls.labels if matches(lb)]
    try:
        page = max(1, int(request.query_params.get("page", "1")[:8]))
    except ValueError:
        page = 1
    pages = max(1, -(-len(rows) // PAGE))
    page = min(page, pages)
    emp = _empirical(ui)
    shown = [{"id": lb.id, "status": lb.status, "split": lb.split, "tier": lb.difficulty.tier,
              "monitor_type": lb.taxonomy.monitor_type, "title": lb.task.trigger.title,
              "segment": lb.taxonomy.segment, "mechanism": lb.taxonomy.mechanism,
              "problem_category": lb.taxonomy.problem_category,
              "empirical": (emp.get(lb.id) or {}).get("difficulty")}
             for lb in rows[(page - 1) * PAGE: page * PAGE]]
    return ui.render(request, "labelset.html", viewer, title=f"Label set {name}", ls=ls, set_name=name, policy=policy,
                     full=policy == FULL, facets=facet_counts, rows=shown, total=len(rows), all=len(ls.labels),
                     page=page, pages=pages, chosen=chosen, fitted=bool(emp))


# ---------------------------------------------------------------------- /labels/{set}/{label_id}


def _world_glance(ui: Any, lb: Label) -> tuple[dict[str, Any] | None, str | None]:
    from evaluator_agent.telemetry.world import SnapshotError

    w, trig = lb.world, lb.task.trigger
    try:
        g = _glance.glance(w.snapshot, str(snapshots_root(ui)), trig.monitor_id, trig.title,
                           (w.baseline_window.start.timestamp(), w.baseline_window.end.timestamp()),
                           (w.incident_window.start.timestamp(), w.incident_window.end.timestamp()),
                           trig.fired_at.timestamp())
    except SnapshotError as e:
        return None, f"The world snapshot {w.snapshot[:12]}… is not available here ({e.code})."
    except (ValueError, TypeError, KeyError, AttributeError, ZeroDivisionError):
        log.exception("world glance of %s", lb.id)
        return None, f"The world snapshot {w.snapshot[:12]}… could not be drawn."
    return {**g, "map": {**g["map"], "svg": Markup(g["map"]["svg"])}, "charts": [Markup(c) for c in g["charts"]]}, None


def _history(ui: Any, viewer: Viewer, label_id: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    rows = label_history(ui.store, label_id, viewer)
    by: dict[str, dict[str, Any]] = defaultdict(lambda: {"n": 0, "passed": 0, "errors": 0, "last": 0.0})
    for r in rows:
        r["target"] = target_key(r["target_name"], r["target_version"])
        r["infra"] = r.get("error_kind") in INFRA_ERROR_KINDS
        t = by[r["target"]]
        t["name"] = r["target_name"] or "?"
        t["version"] = r["target_version"] or ""
        if r["infra"]:
            t["errors"] += 1
            continue
        t["n"] += 1
        t["passed"] += int(r["passed"])
        t["last"] = max(t["last"], float(r["created_at"] or 0))
    targets = sorted(({**v, "rate": v["passed"] / v["n"] if v["n"] else None} for v in by.values()),
                     key=lambda t: (-(t["rate"] or 0), t["name"]))
    return rows, targets


def _truth(lb: Label) -> dict[str, Any]:
    gt = lb.ground_truth
    return {
        "no_fault": gt.no_fault, "mechanism": gt.mechanism,
        "root_causes": [{"entity": rc.entity, "kind": rc.kind, "aliases": rc.aliases} for rc in gt.root_causes],
        "change": gt.triggering_change.model_dump(mode="json") if gt.triggering_change else None,
        "onset": gt.onset.isoformat() if gt.onset else None, "onset_tolerance_s": gt.onset_tolerance_s,
        "chain": list(gt.causal_chain), "first_symptom": gt.first_symptom,
        "evidence": [{"tool": k.tool, "arguments": k.arguments, "expect": k.expect, "description": k.description}
                     for k in gt.key_evidence],
        "partial": [{"entity": p.entity, "credit": p.credit, "why": p.why} for p in gt.partial_credit],
        "herrings": [{"entity": h.entity, "why": h.why} for h in gt.must_not_blame],
    }


def label_page(ui: Any, request: Request, viewer: Viewer) -> Response:
    name, label_id = request.path_params["set"], request.path_params["label_id"]
    ls = labelset(ui, name)
    if ls is None:
        raise NotFound(f"no label set {name[:64]!r}")
    if len(label_id) > 32 or not LABEL_ID_RE.match(label_id):
        raise NotFound(f"no label {label_id[:32]!r} in {name}")
    try:
        lb = ls.get(label_id)
    except LabelError:
        raise NotFound(f"no label {label_id!r} in {name}") from None
    policy = labelset_policy(ui, ls)
    full = policy == FULL
    emp = _empirical(ui).get(lb.id)
    history, targets = _history(ui, viewer, lb.id)
    world, world_error = _world_glance(ui, lb)
    return ui.render(
        request, "label.html", viewer, title=f"Label {lb.id}", ls=ls, set_name=name, lb=lb, policy=policy, full=full,
        private=bool(ls.info.private), emp=emp, history=history, targets=targets, world=world, world_error=world_error,
        truth=_truth(lb) if full else None,
    )


def routes(ui: Any) -> list[Route]:
    return [
        Route("/labels", ui.page(labelsets_page), methods=["GET"]),
        Route("/labels/{set}", ui.page(labelset_page), methods=["GET"]),
        Route("/labels/{set}/{label_id}", ui.page(label_page), methods=["GET"]),
    ]
