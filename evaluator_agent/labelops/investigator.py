"""A second investigation of a candidate's world: the validator's agentic step.

The validator's own grounding (``grounding.py``) checks claims; it cannot solve an incident
that the claim does not name ("checkout was slow after the deploy", "it was slow"). For that
it asks an :class:`Investigator`: an agent that investigates the candidate's world as any agent
under test would, through the proctor's real investigation loop
(:func:`evaluator_agent.engine.investigation.investigate`): the same briefing (built from the
candidate's page, never from its ground truth), the same ten tools, the same budget.

:class:`TargetInvestigator` runs any in-process target: the reference investigation policy
(``methodical``, handed in by the CLI through the roster door, offline and deterministic) or
an LLM through litellm (``engine/llm_target.py``, only when a model is configured). Its answer
is a :class:`Finding`, which the validator checks against the claim and the world before it
trusts it: a finding is a hypothesis, not a verdict.

The investigation needs a ``Label`` for its briefing and world; the candidate's draft is not
one yet, so a *probe* is built from the draft's page, world and windows with a placeholder
ground truth that nothing reads but the (discarded) score.
"""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from evaluator_agent.core.labels import Label
from evaluator_agent.core.vocab import MECHANISM_INFO

__all__ = ["Finding", "Investigator", "TargetInvestigator", "probe_label", "run_async"]


def run_async(make: Callable[[], Any]) -> Any:
    """Run the coroutine ``make()`` to its end from synchronous code: on a fresh event loop, in a
    worker thread when this thread already runs one (the validator called from async code)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make())
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1, thread_name_prefix="proctor-validate") as pool:
        return pool.submit(lambda: asyncio.run(make())).result()


@dataclass
class Finding:
    """What an investigator concluded about a world."""

    investigator: str
    no_fault: bool = False
    root_cause: str | None = None
    mechanism: str | None = None
    confidence: float | None = None
    chain: list[str] = field(default_factory=list)  # root cause first, as labels write it
    onset: datetime | None = None
    end_reason: str = ""
    turns: int = 0
    tool_calls: int = 0
    seconds: float = 0.0
    summary: str = ""

    @property
    def answered(self) -> bool:
        return self.no_fault or self.root_cause is not None

    def describe(self) -> str:
        if self.no_fault:
            return f"{self.investigator}: nothing broken"
        if self.root_cause is None:
            return f"{self.investigator}: no answer ({self.end_reason or 'none'})"
        mech = f" ({self.mechanism})" if self.mechanism else ""
        chain = f", chain {' -> '.join(self.chain)}" if len(self.chain) > 1 else ""
        return f"{self.investigator}: {self.root_cause}{mech}{chain}"


class Investigator(Protocol):
    """Investigates the world of a draft label; ``None`` when it could not run."""

    name: str

    def investigate(self, draft: dict[str, Any], snapshots: Path, worlds: Any = None) -> Finding | None:
        """``worlds``: a loaded-world cache to share (an ``engine.worlds.WorldCache``), if any."""
        ...


def probe_label(draft: dict[str, Any]) -> Label:
    """A ``Label`` with the draft's id, page, prompt, budget and world, and a placeholder truth.

    Only what the briefing and the world need is taken from the draft; the ground truth, the
    taxonomy and the difficulty are placeholders (a target never sees them: the briefing is
    built from the task and the world)."""
    from evaluator_agent.labelops.drafting import derive

    task = copy.deepcopy(draft.get("task") or {})
    world = copy.deepcopy(draft.get("world") or {})
    world.setdefault("snapshot_noise_free", None)
    probe: dict[str, Any] = {
        "id": str(draft.get("id") or "lbl_probe"),
        "schema_version": 1,
        "status": "draft",
        "provenance": {"kind": "feedback", "source": "validator probe"},
        "split": "public",
        "taxonomy": {"technologies": [], "monitor_type": (draft.get("taxonomy") or {}).get("monitor_type") or "metric alert",
                     "tags": []},
        "difficulty": {"tier": "medium", "factors": {"services": 1, "signal_kinds": [], "red_herrings": 0}},
        "task": task,
        "world": world,
        "ground_truth": {"no_fault": True, "mechanism": "no_fault", "root_causes": [], "causal_chain": [],
                         "onset_tolerance_s": 300, "key_evidence": [], "partial_credit": [], "must_not_blame": []},
        "rubric": {},
    }
    derive(probe, [])
    return Label.model_validate(probe)


def _chain(diag: dict[str, Any], root: str | None) -> list[str]:
    """The diagnosis's causal chain as a path, root cause first (edges run root -> symptom)."""
    edges = [e for e in diag.get("causal_chain") or [] if isinstance(e, dict)]
    path: list[str] = []
    for e in edges:
        src, dst = str(e.get("source", "")), str(e.get("target", ""))
        if not path:
            path = [src, dst]
        elif path[-1] == src:
            path.append(dst)
        else:
            break
    if root and path and path[0] != root:
        path = [root, *path] if root not in path else path[path.index(root):]
    return path or ([root] if root else [])


def finding_of(name: str, diag: dict[str, Any] | None, res: Any, seconds: float) -> Finding:
    """A :class:`Finding` from an investigation's recorded diagnosis (a dict in the protocol's shape)."""
    f = Finding(investigator=name, end_reason=str(res.end_reason or ""), turns=int(res.turns or 0),
                tool_calls=int(res.tool_calls or 0), seconds=round(seconds, 4))
    if not isinstance(diag, dict):
        return f
    f.summary = str(diag.get("summary") or "")[:500]
    if diag.get("no_fault"):
        f.no_fault = True
        return f
    rcs = [r for r in diag.get("root_causes") or [] if isinstance(r, dict) and r.get("entity")]
    if rcs:
        top = rcs[0]
        f.root_cause = str(top["entity"])[:200]
        mech = top.get("mechanism")
        f.mechanism = mech if isinstance(mech, str) and mech in MECHANISM_INFO else None
        conf = top.get("confidence")
        f.confidence = float(conf) if isinstance(conf, int | float) else None
    f.chain = _chain(diag, f.root_cause)
    onset = diag.get("onset")
    if isinstance(onset, str):
        from evaluator_agent.core.clock import parse_utc

        f.onset = parse_utc(onset)
    return f


class TargetInvestigator:
    """An in-process target (``LocalTarget``) run through the proctor's investigation loop.

    ``make_target`` returns a fresh target; ``name`` says which (it is written into the
    validation's reasons). The loop's budget is the draft's own, capped by ``limits``."""

    def __init__(self, make_target: Callable[[], Any], name: str, limits: Any = None):
        from evaluator_agent.core.protocol import Budget

        self.name = name
        self._make = make_target
        self._limits = limits or Budget(max_turns=30, timeout_s=120.0, turn_timeout_s=60.0)
        self._worlds: dict[Path, Any] = {}

    def _cache(self, snapshots: Path) -> Any:
        from evaluator_agent.engine.worlds import WorldCache

        if snapshots not in self._worlds:
            self._worlds[snapshots] = WorldCache(snapshots, capacity=4)
        return self._worlds[snapshots]

    def investigate(self, draft: dict[str, Any], snapshots: Path, worlds: Any = None) -> Finding | None:
        from evaluator_agent.engine.investigation import investigate

        if not (draft.get("world") or {}).get("snapshot"):
            return None
        probe = probe_label(draft)
        t0 = time.perf_counter()
        cache = worlds if worlds is not None else self._cache(snapshots)
        res = run_async(lambda: investigate(probe, 1, self._make(), cache, self._limits))
        if res.error_kind == "harness":
            raise ValueError(f"the {self.name} investigation failed on our side: {res.error}")
        return finding_of(self.name, res.diagnosis, res, time.perf_counter() - t0)
