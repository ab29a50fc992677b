"""Calibration: mock policies over a label set, through the real investigation loop, in-process.

``python -m evaluator_agent.worldgen calibrate core [--noise off] [--jobs 2] [--sample N]
[--policies a,b] [--detail]`` prints pass rates per policy overall, per tier and per segment,
the mechanism-correct pass rate, and the wall time.

Every (label, policy) pair is one call of :func:`evaluator_agent.engine.investigation.investigate`
with the policy as an in-process :class:`~evaluator_agent.engine.local.LocalTarget`: the
briefing, the budget, the tool runner, the scorer and the result records are the ones an A2A
target gets; only the transport differs (no ADK, no sockets; numbers arrive as floats as over
A2A). The shortcut battery (:mod:`evaluator_agent.audit`) runs on the same function.

Labels are split into chunks; ``jobs`` worker processes each run an event loop over their
chunks, label by label (one world load per label, shared by the policies).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from evaluator_agent.engine.local import Roster

CHUNKS_PER_JOB = 4


def sample_labels(labels: Sequence[Any], n: int | None) -> list[Any]:
    """A deterministic sample of ``n`` labels (all when ``n`` is None or large enough), in the
    set's order. Labels are ranked by a hash of their id, so a sample spreads over mechanisms
    and tiers and is the same on every machine."""
    if n is None or n >= len(labels):
        return list(labels)
    ranked = sorted(labels, key=lambda lb: hashlib.sha256(b"sample\0" + lb.id.encode()).digest())
    keep = {lb.id for lb in ranked[: max(0, n)]}
    return [lb for lb in labels if lb.id in keep]


def result_row(label: Any, policy: str, res: Any) -> dict[str, Any]:
    """One calibration row from an :class:`~evaluator_agent.engine.investigation.InvestigationResult`.

    ``mechanism_ok``: the scorer gave the mechanism full credit (on a no-fault label, the
    "no fault" answer); ``passed_mechanism``: passed *and* ``mechanism_ok``.
    """
    d = res.diagnosis or {}
    cands = d.get("root_causes") or []
    if cands:
        answer = f"{cands[0].get('entity')}/{cands[0].get('mechanism')}"
    elif res.diagnosis is not None and d.get("no_fault"):
        answer = "NO_FAULT"
    else:
        answer = "-"
    gt = label.ground_truth
    mech_ok = res.diagnosis is not None and res.subscores.get("mechanism", 0.0) >= 1.0 - 1e-9
    return {
        "label": label.id,
        "policy": policy,
        "tier": label.difficulty.tier,
        "segment": label.taxonomy.segment,
        "mechanism": gt.mechanism,
        "family": label.family or label.id,
        "postmortem": label.provenance.postmortem,
        "no_fault": gt.no_fault,
        "passed": bool(res.passed),
        "mechanism_ok": bool(mech_ok),
        "passed_mechanism": bool(res.passed and mech_ok),
        "score": float(res.score),
        "subscores": dict(res.subscores),
        "end_reason": res.end_reason,
        "error_kind": res.error_kind,
        "error": res.error,
        "turns": res.turns,
        "tool_calls": res.tool_calls,
        "answer": answer,
        "truth": (gt.causal_chain or ["NO_FAULT" if gt.no_fault else "-"])[0],
    }


async def _run_labels(
    set_name: str, root: str | None, label_ids: list[str], policies: tuple[str, ...], noise: str,
    make_target: Callable[[str], Any],
) -> list[dict[str, Any]]:
    from evaluator_agent.core.labels import load_labelset
    from evaluator_agent.core.protocol import Budget
    from evaluator_agent.engine.investigation import investigate
    from evaluator_agent.engine.worlds import WorldCache

    ls = load_labelset(set_name, Path(root) if root else None)
    worlds = WorldCache(capacity=2)
    targets = {p: make_target(p) for p in policies}
    limits = Budget()
    rows = []
    for lid in label_ids:
        label = ls.get(lid)
        for p in policies:
            res = await investigate(label, 1, targets[p], worlds, limits, noise=noise)
            rows.append(result_row(label, p, res))
    return rows


def _chunk(args: tuple[Any, ...]) -> list[dict[str, Any]]:
    """Worker entry: one event loop over one chunk of labels."""
    os.environ.setdefault("DD_TRACE_ENABLED", "false")
    return asyncio.run(_run_labels(*args))


def calibrate(
    set_name: str,
    policies: Sequence[str],
    roster: Roster,
    noise: str = "on",
    jobs: int = 2,
    sample: int | None = None,
    root: str | Path | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[dict[str, Any]]:
    """Rows of :func:`result_row`, one per (label, policy), in label-set then policy order.

    ``roster`` makes each policy's in-process target (``roster.make_target``).
    ``sample`` runs a deterministic subset (:func:`sample_labels`); ``root`` is the folder of
    label sets (default ``labelsets/``); ``progress(done, total)`` is called as labels finish.
    """
    from evaluator_agent.core.labels import load_labelset
    policies = tuple(policies)
    for p in policies:
        roster.make_target(p)  # unknown names fail here, not in a worker
    root_s = str(root) if root is not None else None
    labels = sample_labels(load_labelset(set_name, Path(root_s) if root_s else None).labels, sample)
    ids = [lb.id for lb in labels]
    n_chunks = max(1, min(len(ids), max(1, jobs) * CHUNKS_PER_JOB))
    chunks = [ids[i::n_chunks] for i in range(n_chunks)]
    tasks = [(set_name, root_s, c, policies, noise, roster.make_target) for c in chunks if c]
    results: list[list[dict[str, Any]]] = []
    done = 0
    if jobs <= 1:
        for t in tasks:
            results.append(_chunk(t))
            done += len(t[2])
            if progress:
                progress(done, len(ids))
    else:
        with ProcessPoolExecutor(max_workers=jobs) as ex:
            futures = {ex.submit(_chunk, t): t for t in tasks}
            for f in as_completed(futures):
                results.append(f.result())
                done += len(futures[f][2])
                if progress:
                    progress(done, len(ids))
    order = {lid: i for i, lid in enumerate(ids)}
    porder = {p: i for i, p in enumerate(policies)}
    rows = [r for chunk in results for r in chunk]
    rows.sort(key=lambda r: (order[r["label"]], porder[r["policy"]]))
    return rows


def _rate(rows: list[dict[str, Any]], key: str) -> str:
    return f"{100 * sum(r[key] for r in rows) / max(1, len(rows)):5.1f}%"


def table(rows: list[dict[str, Any]], policies: Sequence[str]) -> str:
    """Pass rate per policy and group (all, tiers, segments, postmortems, no-fault controls),
    then the mechanism-correct pass rate and the mean score per policy."""
    policies = [p for p in policies if any(r["policy"] == p for r in rows)]
    groups: dict[str, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        for g in ("all", f"tier:{r['tier']}", f"segment:{r['segment']}"):
            groups[g][r["policy"]].append(r)
        if r["postmortem"]:
            groups["postmortem"][r["policy"]].append(r)
        if r["no_fault"]:
            groups["no_fault"][r["policy"]].append(r)
    order = (
        ["all", "tier:easy", "tier:medium", "tier:hard"]
        + sorted(g for g in groups if g.startswith("segment:"))
        + [g for g in ("postmortem", "no_fault") if g in groups]
    )
    width = max(15, *(len(p) for p in policies)) if policies else 15
    head = f"{'group':28s} {'n':>4s} " + " ".join(f"{p:>{width}s}" for p in policies)
    lines = [head, "-" * len(head)]
    for g in order:
        if g not in groups or not policies:
            continue
        n = len(groups[g][policies[0]])
        cells = [f"{_rate(groups[g][p], 'passed'):>{width}s}" for p in policies]
        lines.append(f"{g:28s} {n:4d} " + " ".join(cells))
    lines.append("-" * len(head))
    every = groups["all"]
    for title, key in (("pass, mechanism right", "passed_mechanism"), ("mechanism right", "mechanism_ok")):
        cells = [f"{_rate(every[p], key):>{width}s}" for p in policies]
        lines.append(f"{title:28s} {len(every[policies[0]]) if policies else 0:4d} " + " ".join(cells))
    cells = [
        f"{sum(r['score'] for r in every[p]) / max(1, len(every[p])):>{width}.3f}" for p in policies
    ]
    lines.append(f"{'mean score':28s} {'':4s} " + " ".join(cells))
    errors = [sum(1 for r in every[p] if r["error_kind"]) for p in policies]
    if any(errors):
        lines.append(f"{'infra errors':28s} {'':4s} " + " ".join(f"{e:>{width}d}" for e in errors))
    return "\n".join(lines)


def main(
    set_name: str,
    roster: Roster,
    noise: str = "on",
    jobs: int = 2,
    detail: bool = False,
    sample: int | None = None,
    policies: Sequence[str] = (),
) -> int:
    policies = tuple(policies) or roster.references
    t0 = time.monotonic()
    rows = calibrate(set_name, policies, roster, noise, jobs, sample)
    wall = time.monotonic() - t0
    if detail:
        by_label: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for r in rows:
            by_label[r["label"]].append(r)
        for lid, rs in by_label.items():
            r0 = rs[0]
            cells = " ".join(
                f"{r['policy'][:6]}={'P' if r['passed'] else '.'}({r['answer'][:40]})" for r in rs
            )
            print(
                f"{lid} {r0['mechanism'][:16]:16s} {r0['tier']:6s} truth={r0['truth']:24s} {cells}"
            )
    n_labels = len({r["label"] for r in rows})
    print(
        f"label set {set_name}, noise {'off (noise-free twins)' if noise == 'off' else 'on'}, "
        f"{n_labels} labels x {len(tuple(policies))} policies"
    )
    print(table(rows, policies))
    print(f"wall time {wall:.1f} s with {jobs} job{'s' if jobs != 1 else ''} ({len(rows)} investigations)")
    return 0
