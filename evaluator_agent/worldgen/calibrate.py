"""Calibration: run the mock policies in-process over a label set with the real tools and scorer.

``python -m evaluator_agent.worldgen calibrate core [--noise off] [--jobs 2]`` prints pass rates
per agent overall, per tier and per segment. Each (label, policy) pair is one investigation: the
briefing and tool results are fed to the policy exactly as the mock-agent server would feed
them, tool calls go through :class:`evaluator_agent.tools.Toolbox` on the label's snapshot (or
its noise-free twin), and the diagnosis is scored with :func:`score_investigation`.
"""

from __future__ import annotations

import json
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from typing import Any

POLICIES = ("random_guess", "alert_blamer", "greedy_anomaly", "methodical")


def _user_content(data: Any, text: str) -> Any:
    from google.genai import types

    from mock_agents.conversation import DATA_END, DATA_START

    parts = []
    if data is not None:
        blob = types.Blob(
            mime_type="text/plain", data=DATA_START + json.dumps(data).encode() + DATA_END
        )
        parts.append(types.Part(inline_data=blob))
    parts.append(types.Part(text=text))
    return types.Content(role="user", parts=parts)


def run_policy(policy_name: str, label: Any, world: dict[str, Any]) -> tuple[Any, list[Any]]:
    """One investigation of ``label`` on ``world`` by a mock policy; returns (diagnosis, viewed results)."""
    from google.genai import types

    from mock_agents.policies import decide, get_policy

    from ..index import WorldIndex
    from ..protocol import (
        Briefing,
        DiagnosisReply,
        ToolResultsMessage,
        briefing_text,
        parse_reply,
        tool_results_text,
    )
    from ..scoring import ViewedResult
    from ..tool_catalog import TOOL_SPECS
    from ..tools import Toolbox

    tb = Toolbox(WorldIndex.from_dict(world), world["end"])
    mon = next((m for m in world["monitors"] if m["id"] == label.task.trigger.monitor_id), None)
    b = Briefing(
        investigation_id="calibration",
        problem={
            "title": label.task.trigger.title,
            "fired_at": label.task.trigger.fired_at,
            "monitor": mon,
            "prompt": label.task.prompt,
        },
        now=datetime.fromtimestamp(world["end"], UTC),
        tools=TOOL_SPECS,
        budget={"max_turns": label.task.budget.max_turns},
    )
    contents = [_user_content(b.model_dump(mode="json"), briefing_text(b))]
    policy = get_policy(policy_name)
    viewed: list[Any] = []
    for turn in range(1, b.budget.max_turns + 1):
        reply = decide(policy, contents)
        r = parse_reply(reply)
        if isinstance(r, DiagnosisReply):
            return r.diagnosis, viewed
        contents.append(types.Content(role="model", parts=[types.Part(text=json.dumps(reply))]))
        results = []
        for c in reply["tool_calls"]:
            out = tb.call(c["name"], c["arguments"])
            results.append(
                {"id": c["id"], "ok": out.ok, "content": out.content, "error": out.error}
            )
            viewed.append(
                ViewedResult(
                    c["name"],
                    c["arguments"],
                    out.ok,
                    json.dumps(out.content) if out.ok else (out.error or ""),
                )
            )
        msg = ToolResultsMessage(
            tool_results=results, turn=turn, remaining_turns=b.budget.max_turns - turn
        )
        contents.append(
            _user_content(msg.model_dump(mode="json", exclude_none=True), tool_results_text(msg))
        )
    return None, viewed


def _one(args: tuple[str, str, str, bool, tuple[str, ...]]) -> list[dict[str, Any]]:
    from ..labels import load_labelset, snapshots_dir
    from ..scoring import score_investigation
    from ..world import load_snapshot_dict

    set_name, root, label_id, noise_free, policies = args
    from pathlib import Path

    ls = load_labelset(set_name, Path(root) if root else None)
    label = next(lb for lb in ls.labels if lb.id == label_id)
    snap = (
        label.world.snapshot_noise_free
        if noise_free and label.world.snapshot_noise_free
        else label.world.snapshot
    )
    world = load_snapshot_dict(snap, snapshots_dir())
    rows = []
    for p in policies:
        d, viewed = run_policy(p, label, world)
        s = score_investigation(label, d, viewed)
        top = (
            d.root_causes[0].entity + "/" + str(d.root_causes[0].mechanism)
            if d and d.root_causes
            else ("NO_FAULT" if d and d.no_fault else "-")
        )
        rows.append(
            {
                "label": label.id,
                "policy": p,
                "tier": label.difficulty.tier,
                "segment": label.taxonomy.segment,
                "mechanism": label.ground_truth.mechanism,
                "postmortem": label.provenance.postmortem,
                "passed": bool(s.passed),
                "score": float(s.score),
                "answer": top,
                "truth": (label.ground_truth.causal_chain or ["-"])[0],
            }
        )
    return rows


def calibrate(
    set_name: str,
    noise: str = "on",
    jobs: int = 2,
    policies: tuple[str, ...] = POLICIES,
    root: str | None = None,
) -> list[dict[str, Any]]:
    from ..labels import load_labelset

    labels = load_labelset(set_name, None if root is None else __import__("pathlib").Path(root))
    tasks = [(set_name, root or "", lb.id, noise == "off", policies) for lb in labels.labels]
    rows: list[dict[str, Any]] = []
    if jobs <= 1:
        for t in tasks:
            rows.extend(_one(t))
    else:
        with ProcessPoolExecutor(max_workers=jobs) as ex:
            for r in ex.map(_one, tasks, chunksize=2):
                rows.extend(r)
    return rows


def table(rows: list[dict[str, Any]], policies: tuple[str, ...] = POLICIES) -> str:
    groups: dict[str, dict[str, list[bool]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        for g in ("all", f"tier:{r['tier']}", f"segment:{r['segment']}"):
            groups[g][r["policy"]].append(r["passed"])
        if r["postmortem"]:
            groups["postmortem"][r["policy"]].append(r["passed"])
        if r["mechanism"] == "no_fault":
            groups["no_fault"][r["policy"]].append(r["passed"])
    order = (
        ["all", "tier:easy", "tier:medium", "tier:hard"]
        + sorted(g for g in groups if g.startswith("segment:"))
        + [g for g in ("postmortem", "no_fault") if g in groups]
    )
    head = f"{'group':28s} {'n':>4s} " + " ".join(f"{p:>15s}" for p in policies)
    lines = [head, "-" * len(head)]
    for g in order:
        if g not in groups:
            continue
        n = len(groups[g][policies[0]])
        cells = []
        for p in policies:
            v = groups[g][p]
            cells.append(f"{100 * sum(v) / max(1, len(v)):14.1f}%")
        lines.append(f"{g:28s} {n:4d} " + " ".join(cells))
    return "\n".join(lines)


def main(set_name: str, noise: str = "on", jobs: int = 2, detail: bool = False) -> int:
    rows = calibrate(set_name, noise, jobs)
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
    print(f"label set {set_name}, noise {'off (noise-free twins)' if noise == 'off' else 'on'}")
    print(table(rows))
    return 0
