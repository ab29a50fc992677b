"""The run report as metrics: the ``proctor.*`` points of a finished run (pass rates,
pass@k, breakdowns, errors, duration), of the label difficulty it touched (aggregated per
tier, no label id as a tag) and of each investigation. Tags are low-cardinality only.
"""

from __future__ import annotations

import math
import time
from typing import Any

from evaluator_agent.core.vocab import INFRA_ERROR_KINDS
from evaluator_agent.datadog.config import Settings, tag_value
from evaluator_agent.datadog.metrics import Point


def run_points(trace: Any) -> list[Point]:
    """The metric points of a finished run (its summary, duration, status, label difficulty)."""
    result = trace.result or {}
    summ = result.get("summary") or {}
    base, now = trace.tags, int(time.time())
    pts: list[Point] = []

    def g(metric: str, value: Any, extra: tuple[str, ...] = (), kind: str = "gauge", unit: str | None = None) -> None:
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            pts.append(Point(metric, float(value), base + extra, kind, now, unit))

    scored = summ.get("scored", 0)
    if scored:
        g("proctor.run.pass_rate", summ.get("pass_rate"))
        g("proctor.run.mean_score", summ.get("mean_score"))
        g("proctor.run.pass_at_1", (summ.get("pass_at_1") or {}).get("value"))
        for k in ("ac_at_1", "ac_at_3", "mechanism_accuracy"):
            g(f"proctor.run.{k}", summ.get(k))
        for k, v in (summ.get("pass_hat_k") or {}).items():
            g("proctor.run.pass_hat_k", v, (f"k:{tag_value(k)}",))
        for k, v in (summ.get("pass_at_k") or {}).items():
            g("proctor.run.pass_at_k", v, (f"k:{tag_value(k)}",))
        breakdown = summ.get("breakdown") or {}
        for seg, b in (breakdown.get("segment") or {}).items():
            g("proctor.run.pass_rate.by_segment", b.get("pass_rate"), (f"segment:{tag_value(seg)}",))
        for tier, b in (breakdown.get("tier") or {}).items():
            g("proctor.run.pass_rate.by_tier", b.get("pass_rate"), (f"difficulty_tier:{tag_value(tier)}",))
    n = summ.get("n", 0)
    g("proctor.run.investigations", n, kind="count")
    g("proctor.run.errors", summ.get("errors", 0), kind="count")
    g("proctor.run.error_rate", (summ.get("errors", 0) / n) if n else 0.0)
    g("proctor.run.degraded", 1.0 if summ.get("degraded") else 0.0)  # too many infra errors to judge
    g("proctor.run.duration", time.time() - trace.t0, unit="second")
    g("proctor.run.count", 1, (f"status:{tag_value(result.get('status', 'unknown'))}",), kind="count")
    pts.extend(difficulty_points(trace, base, now))
    return pts


def difficulty_points(trace: Any, base: tuple[str, ...], now: int) -> list[Point]:
    """Label difficulty from the stored IRT fit (table label_difficulty), aggregated so that
    no label id becomes a tag: mean/max per tier, and a histogram by half-logit bucket."""
    store = trace.store
    if store is None or not hasattr(store, "get_difficulty"):
        return []
    ids = {i["label_id"] for i in (trace.result or {}).get("investigations", [])}
    rows = [r for r in store.get_difficulty() if r.get("label_id") in ids and r.get("difficulty") is not None]
    if not rows:
        return []
    tags = tuple(t for t in base if not t.startswith(("target:", "target_version:", "model:")))
    by_tier: dict[str, list[float]] = {}
    buckets: dict[tuple[str, str], int] = {}
    for r in rows:
        tier = (trace.label_meta.get(r["label_id"]) or {}).get("tier") or r.get("tier") or "unknown"
        d = float(r["difficulty"])
        by_tier.setdefault(tier, []).append(d)
        lo = math.floor(d * 2) / 2
        buckets[(tier, f"{lo:+.1f}")] = buckets.get((tier, f"{lo:+.1f}"), 0) + 1
    pts: list[Point] = []
    for tier, ds in by_tier.items():
        t = (f"difficulty_tier:{tag_value(tier)}",)
        pts.append(Point("proctor.label.difficulty.mean", sum(ds) / len(ds), tags + t, "gauge", now))
        pts.append(Point("proctor.label.difficulty.max", max(ds), tags + t, "gauge", now))
        pts.append(Point("proctor.label.difficulty.min", min(ds), tags + t, "gauge", now))
        pts.append(Point("proctor.label.difficulty.labels", len(ds), tags + t, "gauge", now))
    for (tier, lo), cnt in buckets.items():
        pts.append(Point("proctor.label.difficulty.histogram", cnt,
                         tags + (f"difficulty_tier:{tag_value(tier)}", f"difficulty_bucket:{tag_value(lo)}"), "gauge", now))
    return pts


def investigation_points(t: Any, settings: Settings) -> list[Point]:
    """The metric points of a finished investigation; ``settings`` tags one outside a run."""
    r = t.res
    base = t.run.tags if t.run else tuple(settings.base_tags())
    if not t.run:
        base = base + (f"target:{tag_value(t.target['name'])}", f"target_version:{tag_value(t.target['version'])}")
    tags = base + (f"segment:{tag_value(t.segment)}", f"difficulty_tier:{tag_value(t.tier)}")
    ts = int(r.finished_at or time.time())
    pts = [
        Point("proctor.investigation.count", 1, tags + (f"end_reason:{tag_value(r.end_reason)}",
                                                       f"passed:{str(bool(r.passed)).lower()}",
                                                       f"error_kind:{tag_value(r.error_kind or 'none')}"), "count", ts),
        Point("proctor.investigation.duration", r.duration_s, tags, "gauge", ts, "second"),
        Point("proctor.investigation.turns", r.turns, tags, "gauge", ts),
        Point("proctor.investigation.tool_calls", r.tool_calls, tags, "gauge", ts),
        Point("proctor.investigation.invalid_calls", r.invalid_calls, tags, "gauge", ts),
        Point("proctor.investigation.errors", 1 if r.error_kind else 0,
              tags + (f"error_kind:{tag_value(r.error_kind or 'none')}",), "count", ts),
    ]
    if r.error_kind not in INFRA_ERROR_KINDS:
        pts.append(Point("proctor.investigation.score", r.score, tags, "gauge", ts))
        pts.append(Point("proctor.investigation.passed", 1.0 if r.passed else 0.0, tags, "gauge", ts))
        for name, v in sorted((r.subscores or {}).items()):
            pts.append(Point("proctor.investigation.subscore", v, tags + (f"subscore:{tag_value(name)}",), "gauge", ts))
    tokens = r.tokens or {}
    if "total_tokens" in tokens or "input_tokens" in tokens:
        total = tokens.get("total_tokens") or tokens.get("input_tokens", 0) + tokens.get("output_tokens", 0)
        pts.append(Point("proctor.investigation.tokens", total, tags, "gauge", ts))
    if "cost_usd" in tokens:
        pts.append(Point("proctor.investigation.cost_usd", tokens["cost_usd"], tags, "gauge", ts, "dollar"))
    return pts
