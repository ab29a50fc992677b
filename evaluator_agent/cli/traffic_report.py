"""What ``proctor traffic`` records per request and reports: throughput, latency percentiles,
errors grouped by kind."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

UNEXPECTED_KINDS = (
    "timeout",
    "transport",
    "http_5xx",
    "http_error",
    "client_error",
    "accepted_bad_request",
)


# --------------------------------------------------------------------------- figures


@dataclass
class Case:
    """One request to send. ``payload`` is a request object, or raw text for garbage."""

    index: int
    kind: str  # "evaluate" for a good request, else the failure case's name
    payload: dict[str, Any] | str
    expect_failure: bool
    target: str | None = None


@dataclass
class Outcome:
    index: int
    kind: str
    expect_failure: bool
    ok: bool  # the proctor returned a result
    latency_s: float
    error_kind: str | None = None
    error: str | None = None
    investigations: int = 0
    passed: int = 0  # investigations that passed (summary.passed)
    busy_retries: int = 0
    clean: bool = False  # the answer is what the case called for
    target: str | None = None


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile: the smallest value with at least ``q``% of values at or below it."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def latency_figures(values: list[float]) -> dict[str, float | None]:
    out: dict[str, float | None] = {f"p{q}": percentile(values, q) for q in (50, 90, 95, 99)}
    out["max"] = max(values) if values else None
    out["mean"] = sum(values) / len(values) if values else None
    return out


# --------------------------------------------------------------------------- the requests


@dataclass
class Report:
    mode: str
    proctor: str
    targets: list[str]
    labelset: str
    requests: int
    concurrency: int
    ok: int = 0
    failed: int = 0
    wall_s: float = 0.0
    requests_per_s: float = 0.0
    investigations: int = 0
    investigations_passed: int = 0
    investigations_per_s: float = 0.0
    latency_s: dict[str, float | None] = field(default_factory=dict)
    latency_ok_s: dict[str, float | None] = field(default_factory=dict)
    busy_retries: int = 0
    errors: dict[str, dict[str, Any]] = field(default_factory=dict)
    expected_failures: int = 0
    expected_failures_clean: int = 0
    unexpected: int = 0
    cases: dict[str, dict[str, int]] = field(default_factory=dict)
    by_target: dict[str, dict[str, Any]] = field(default_factory=dict)
    proctor_alive: bool = True
    proctor_problem: str | None = None
    percentile_method: str = "nearest-rank"
    exit_code: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def summarise(
    outcomes: list[Outcome],
    *,
    mode: str,
    proctor: str,
    targets: list[str],
    labelset: str,
    concurrency: int,
    wall_s: float,
    alive_problem: str | None,
) -> Report:
    rep = Report(
        mode=mode,
        proctor=proctor,
        targets=targets,
        labelset=labelset,
        requests=len(outcomes),
        concurrency=concurrency,
        wall_s=round(wall_s, 3),
    )
    rep.ok = sum(o.ok for o in outcomes)
    rep.failed = len(outcomes) - rep.ok
    rep.investigations = sum(o.investigations for o in outcomes if o.ok)
    rep.investigations_passed = sum(o.passed for o in outcomes if o.ok)
    rep.requests_per_s = round(len(outcomes) / wall_s, 3) if wall_s > 0 else 0.0
    rep.investigations_per_s = round(rep.investigations / wall_s, 3) if wall_s > 0 else 0.0
    rep.latency_s = _rounded(latency_figures([o.latency_s for o in outcomes]))
    rep.latency_ok_s = _rounded(latency_figures([o.latency_s for o in outcomes if o.ok]))
    rep.busy_retries = sum(o.busy_retries for o in outcomes)
    counts = Counter(o.error_kind for o in outcomes if o.error_kind)
    for kind, count in counts.most_common():
        example = next(o for o in outcomes if o.error_kind == kind)
        rep.errors[kind] = {"count": count, "example": example.error, "example_case": example.kind}
    for o in outcomes:
        c = rep.cases.setdefault(o.kind, {"sent": 0, "clean": 0})
        c["sent"] += 1
        c["clean"] += int(o.clean)
    for t in dict.fromkeys(targets):
        mine = [o for o in outcomes if o.target == t and o.kind == "evaluate"]
        if mine:
            lat = latency_figures([o.latency_s for o in mine])
            rep.by_target[t] = {
                "sent": len(mine),
                "ok": sum(o.ok for o in mine),
                "investigations": sum(o.investigations for o in mine),
                "passed": sum(o.passed for o in mine),
                "p50_s": round(lat["p50"] or 0, 4),
                "max_s": round(lat["max"] or 0, 4),
            }
    rep.expected_failures = sum(o.expect_failure for o in outcomes)
    rep.expected_failures_clean = sum(o.expect_failure and o.clean for o in outcomes)
    rep.unexpected = sum(not o.clean for o in outcomes)
    rep.proctor_alive = alive_problem is None
    rep.proctor_problem = alive_problem
    if mode == "normal":
        rep.exit_code = 0 if rep.failed == 0 and rep.proctor_alive else 1
    else:
        rep.exit_code = 0 if rep.unexpected == 0 and rep.proctor_alive else 1
    return rep


def _rounded(d: dict[str, float | None]) -> dict[str, float | None]:
    return {k: (round(v, 4) if v is not None else None) for k, v in d.items()}


def render(rep: Report) -> str:
    def fmt(d: dict[str, float | None]) -> str:
        return (
            "  ".join(f"{k} {v:.3f}" for k, v in d.items() if v is not None and k != "mean")
            or "n/a"
        )

    lines = [
        f"traffic ({rep.mode} mode): {rep.requests} requests to {rep.proctor}, concurrency {rep.concurrency}, "
        f"labelset {rep.labelset}, {len(rep.targets)} target(s)",
        f"  requests      ok {rep.ok}   failed {rep.failed}   busy retries {rep.busy_retries}",
        f"  wall time     {rep.wall_s:.2f} s",
        f"  throughput    {rep.requests_per_s:.2f} requests/s   {rep.investigations_per_s:.2f} investigations/s "
        f"({rep.investigations} investigations, {rep.investigations_passed} passed)",
        f"  latency (s, nearest-rank, all requests)  {fmt(rep.latency_s)}",
    ]
    if rep.failed and rep.ok:
        lines.append(f"  latency (s, nearest-rank, ok requests)   {fmt(rep.latency_ok_s)}")
    if len(rep.by_target) > 1:
        lines.append("  by target (good requests):")
        for t, f in rep.by_target.items():
            lines.append(
                f"    {t}  ok {f['ok']}/{f['sent']}   passed {f['passed']}/{f['investigations']}   "
                f"p50 {f['p50_s']:.3f} s   max {f['max_s']:.3f} s"
            )
    if rep.mode == "failure":
        lines.append(
            f"  expected failures answered cleanly {rep.expected_failures_clean}/{rep.expected_failures};"
            f"   unexpected outcomes {rep.unexpected}"
        )
        for kind, c in sorted(rep.cases.items()):
            lines.append(f"    {kind:22s} sent {c['sent']:3d}   as expected {c['clean']:3d}")
    if rep.errors:
        lines.append("  errors by kind:")
        for kind, e in rep.errors.items():
            tag = (
                ""
                if rep.mode == "normal"
                else ("  (expected)" if kind == "task_failed" else "  (UNEXPECTED)")
            )
            lines.append(
                f"    {kind:20s} {e['count']:4d}{tag}   e.g. [{e['example_case']}] {e['example']}"
            )
    if not rep.proctor_alive:
        lines.append(f"  PROCTOR NOT ANSWERING after the run: {rep.proctor_problem}")
    lines.append(f"  result: {'OK' if rep.exit_code == 0 else 'FAILED'} (exit {rep.exit_code})")
    return "\n".join(lines)
