"""The total score of one investigation: ``score_investigation`` combines the sub-scores with
the label's weights, applies the no-fault rules and the red-herring penalty, checks the pass
gate and the threshold, and writes the explanation (``ScoreResult``).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

from evaluator_agent.core.labels import Label
from evaluator_agent.core.protocol import Diagnosis, RootCauseCandidate
from evaluator_agent.engine.scoring.dimensions import (
    score_chain,
    score_mechanism,
    score_onset,
    score_root_cause,
)
from evaluator_agent.engine.scoring.evidence import (
    ViewedResult,
    red_herrings_chased,
    score_evidence,
)
from evaluator_agent.engine.scoring.names import Names, normalize_entity, normalize_mechanism
from evaluator_agent.engine.scoring.rubric import (
    ACCURACY_K,
    DIMENSIONS,
    OTHER_RED_HERRING_CAP,
    OTHER_RED_HERRING_PENALTY,
    PASS_THRESHOLD,
    RED_HERRING_MIN_CONFIDENCE,
    TOP_RED_HERRING_PENALTY,
    resolve_weights,
)


@dataclass
class ScoreResult:
    score: float
    passed: bool
    subscores: dict[str, float]
    explanation: str
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --------------------------------------------------------------------------- red herrings

_NO_FAULT_RE = re.compile(
    r"\bno[ \-_]?fault\b|\bnothing (?:is )?(?:broken|wrong)\b|\bfalse (?:positive|alarm)\b|\bbenign\b"
    r"|\bno (?:real |actual )?(?:incident|outage|problem|issue)\b|\bnot an? (?:real )?(?:incident|outage)\b"
    r"|\bworking as (?:intended|expected)\b"
)


def declares_no_fault(diagnosis: Diagnosis) -> bool:
    if diagnosis.no_fault:
        return True
    if diagnosis.root_causes:
        return all(normalize_mechanism(c.mechanism) == "no_fault" for c in diagnosis.root_causes)
    return bool(_NO_FAULT_RE.search(diagnosis.summary.lower()))


def _blamed_red_herrings(
    names: Names, cands: list[RootCauseCandidate]
) -> tuple[float, list[str], str]:
    """Penalty, blamed entities (label spelling) and a sentence."""
    penalty_top = 0.0
    blamed: list[str] = []
    others: list[str] = []
    for rank, c in enumerate(cands, start=1):
        n = normalize_entity(c.entity)
        if n not in names.red or names.red[n] in blamed:
            continue
        if rank == 1:
            penalty_top = TOP_RED_HERRING_PENALTY
            blamed.append(names.red[n])
        elif c.confidence is None or c.confidence >= RED_HERRING_MIN_CONFIDENCE:
            blamed.append(names.red[n])
            others.append(names.red[n])
    penalty_other = min(OTHER_RED_HERRING_CAP, OTHER_RED_HERRING_PENALTY * len(others))
    penalty = penalty_top + penalty_other
    if not blamed:
        return 0.0, [], ""
    return penalty, blamed, f"Blamed red herring(s) {', '.join(blamed)}: -{penalty:.2f}."


# --------------------------------------------------------------------------- the score


def _accuracy(
    names: Names, cands: list[RootCauseCandidate], mechanism_exact: bool
) -> dict[str, bool]:
    """Root-cause hits in the top k and mechanism correctness of a fault-label answer."""
    hits = {
        f"ac_at_{k}": any(names.group_of(c.entity) is not None for c in cands[:k])
        for k in ACCURACY_K
    }
    return hits | {"mechanism": mechanism_exact}


def _all_accuracy(value: bool) -> dict[str, bool]:
    return {f"ac_at_{k}": value for k in ACCURACY_K} | {"mechanism": value}


def score_investigation(
    label: Label,
    diagnosis: Diagnosis | None,
    viewed: list[ViewedResult],
    *,
    no_answer_reason: str | None = None,
) -> ScoreResult:
    """Score one investigation. ``no_answer_reason`` only enriches the explanation of a missing diagnosis."""
    weights = resolve_weights(label)
    gt = label.ground_truth
    names = Names(label)
    details: dict[str, Any] = {
        "weights": weights,
        "pass_threshold": PASS_THRESHOLD,
        "red_herrings_chased": red_herrings_chased(label, viewed),
    }
    if diagnosis is None:
        why = (
            f" ({no_answer_reason})"
            if no_answer_reason
            else " (timeout, crash or budget exhausted)"
        )
        details.update(
            verdict="none", gate="no_diagnosis", gate_reason="no diagnosis",
            accuracy=_all_accuracy(False),
        )
        return ScoreResult(
            0.0,
            False,
            dict.fromkeys(DIMENSIONS, 0.0),
            f"No diagnosis{why}. Score 0.00 → fail.",
            details,
        )

    cands = list(diagnosis.root_causes)
    says_no_fault = declares_no_fault(diagnosis)
    details["verdict"] = "no_fault" if says_no_fault else "fault"
    sub: dict[str, float] = {}
    msgs: list[str] = []
    gate: str | None = None  # the first gate that failed
    gate_reason = ""

    if gt.no_fault or says_no_fault:
        ok = gt.no_fault and says_no_fault
        for d in ("root_cause", "mechanism", "causal_chain", "onset"):
            sub[d] = 1.0 if ok else 0.0
        if ok:
            msgs.append("Correctly answered no fault on a no-fault control.")
        elif gt.no_fault:
            top = cands[0].entity if cands else "something"
            msgs.append(f"Blamed {top} on a no-fault control: nothing is broken.")
            gate, gate_reason = "root_cause", "blamed something on a no-fault control"
        else:
            truth = " / ".join(names.display[c] for c, _ in names.groups)
            msgs.append(f"Answered no fault, but the root cause is {truth} ({gt.mechanism}).")
            gate, gate_reason = "root_cause", "answered no fault on a real incident"
        details.update(matched_rank=None, blamed_red_herrings=[], accuracy=_all_accuracy(ok))
    else:
        sub["root_cause"], d_rc, m = score_root_cause(names, cands)
        details.update(d_rc)
        msgs.append(m)
        sub["mechanism"], m, mech_status = score_mechanism(gt.mechanism, names, cands)
        msgs.append(m)
        sub["causal_chain"], d_ch, m = score_chain(names, gt.causal_chain, diagnosis.causal_chain)
        details.update(d_ch)
        msgs.append(m)
        sub["onset"], d_on, m = score_onset(label, diagnosis)
        details.update(d_on)
        msgs.append(m)
        details["mechanism_status"] = mech_status
        details["accuracy"] = _accuracy(names, cands, mech_status == "exact")
        if not cands:
            gate, gate_reason = "root_cause", "no root-cause candidate"
        elif names.group_of(cands[0].entity) is None:
            gate, gate_reason = "root_cause", f"wrong root cause (top candidate {cands[0].entity})"
        elif mech_status != "exact":
            # the top candidate is correct, so it is the candidate the mechanism was read from
            what = {"near": "near-synonym mechanism", "missing": "no mechanism"}.get(
                mech_status, "wrong mechanism"
            )
            gate, gate_reason = "mechanism", f"right root cause, {what} (expected {gt.mechanism})"

    sub["evidence"], d_ev, m = score_evidence(label, viewed)
    details.update(d_ev)
    msgs.append(m)

    penalty, blamed, m = (0.0, [], "") if says_no_fault else _blamed_red_herrings(names, cands)
    details["blamed_red_herrings"] = blamed
    details["penalty"] = penalty
    if m:
        msgs.append(m)

    raw = sum(weights[d] * sub[d] for d in DIMENSIONS) - penalty
    score = round(min(1.0, max(0.0, raw)), 6)
    passed = gate is None and score >= PASS_THRESHOLD
    details["gate"] = gate
    details["gate_reason"] = gate_reason or None
    if gate is not None:
        msgs.append(f"Score {score:.2f}; {gate_reason}: fail.")
    else:
        msgs.append(
            f"Score {score:.2f} → {'pass' if passed else 'fail'} (threshold {PASS_THRESHOLD:.2f})."
        )
    return ScoreResult(
        score, passed, {d: round(sub[d], 6) for d in DIMENSIONS}, " ".join(msgs), details
    )
