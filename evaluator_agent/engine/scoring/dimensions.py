"""The sub-scores of a fault label's answer: root cause (AC@k with rank credit), mechanism,
causal chain (LCS F1 over the predicted path) and onset; each returns the sub-score, its
details and a sentence for the explanation. Evidence is scored in ``scoring.evidence``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from evaluator_agent.core.labels import Label
from evaluator_agent.core.protocol import CausalEdge, Diagnosis, RootCauseCandidate
from evaluator_agent.core.vocab import MECHANISM_INFO, near_synonym
from evaluator_agent.engine.scoring.names import Names, normalize_entity, normalize_mechanism
from evaluator_agent.engine.scoring.rubric import (
    EMPTY_CHAIN_LENIENT,
    NEAR_MECHANISM_CREDIT,
    PARTIAL_CREDIT_CAP,
    RANK_CREDIT,
)


def score_root_cause(
    names: Names, cands: list[RootCauseCandidate]
) -> tuple[float, dict[str, Any], str]:
    n_truth = len(names.groups)
    wrong_above = 0
    first_rank: dict[int, int] = {}
    credit: dict[int, float] = {}
    for rank, c in enumerate(cands, start=1):
        g = names.group_of(c.entity)
        if g is None:
            wrong_above += 1
            continue
        if g not in first_rank:
            first_rank[g] = rank
            credit[g] = RANK_CREDIT[wrong_above] if wrong_above < len(RANK_CREDIT) else 0.0
    ac = sum(credit.values()) / n_truth
    k = n_truth
    top_k = cands[:k]
    hits_k = {names.group_of(c.entity) for c in top_k} - {None}
    details: dict[str, Any] = {
        "matched_rank": min(first_rank.values()) if first_rank else None,
        "root_cause_ranks": {names.groups[g][0]: r for g, r in sorted(first_rank.items())},
        "k": k,
        "precision_at_k": len(hits_k) / len(top_k) if top_k else 0.0,
        "recall_at_k": len(hits_k) / n_truth,
        "ac_at_k": {
            str(j): len({names.group_of(c.entity) for c in cands[:j]} - {None}) / n_truth
            for j in (1, 3, 5)
        },
        "rank_credit": ac,
        "partial_credit_entity": None,
    }
    score = ac
    top = cands[0] if cands else None
    if top is None:
        return 0.0, details, "No root-cause candidate given."
    top_n = normalize_entity(top.entity)
    top_g = names.group_of(top.entity)
    if top_g is not None:
        canon = names.groups[top_g][0]
        via = "" if top_n == canon else f" (alias {top.entity})"
        msg = f"Top candidate {top.entity} matches root cause {names.display[canon]}{via}."
    elif top_n in names.red:
        details["rank_credit"] = 0.0
        msg = f"Top candidate {top.entity} is a must-not-blame red herring: no root-cause credit."
        return 0.0, details, msg
    else:
        msg = f"Top candidate {top.entity} is not a root cause."
        if top_n in names.partial:
            pc, _ = names.partial[top_n]
            capped = min(pc, PARTIAL_CREDIT_CAP)
            details["partial_credit_entity"] = top.entity
            msg = f"Top candidate {top.entity} earns partial credit {capped:.2f}" + (
                f" (label credit {pc:.2f}, capped)." if pc > capped else "."
            )
            score = max(score, capped)
        if first_rank:
            found = ", ".join(
                f"{names.display[names.groups[g][0]]} at rank {r}"
                for g, r in sorted(first_rank.items())
            )
            msg += f" Found {found} (credit {ac:.2f})."
        else:
            msg += f" No candidate names {' / '.join(names.display[c] for c, _ in names.groups)}."
    if n_truth > 1:
        msg += (
            f" {len(first_rank)}/{n_truth} root causes named; precision@{k} {details['precision_at_k']:.2f},"
            f" recall@{k} {details['recall_at_k']:.2f}."
        )
    return score, details, msg


def score_mechanism(
    truth: str, names: Names, cands: list[RootCauseCandidate]
) -> tuple[float, str, str]:
    """(sub-score, sentence, status) of the chosen candidate's mechanism; status is one of
    ``exact``, ``near`` (a near-synonym of the truth), ``wrong``, ``missing``."""
    chosen = next(
        (c for c in cands if names.group_of(c.entity) is not None), cands[0] if cands else None
    )
    mech = normalize_mechanism(chosen.mechanism) if chosen else None
    if mech is None:
        return 0.0, f"No mechanism given (expected {truth}).", "missing"
    if mech not in MECHANISM_INFO:
        return (
            0.0,
            f"Mechanism {chosen.mechanism!r} is not in the vocabulary (expected {truth}).",
            "wrong",
        )
    if mech == truth:
        return 1.0, f"Mechanism {mech} correct.", "exact"
    if near_synonym(mech, truth):
        return (
            NEAR_MECHANISM_CREDIT,
            f"Mechanism {mech} is a near-synonym of {truth}: partial credit"
            f" {NEAR_MECHANISM_CREDIT:.2f}.",
            "near",
        )
    return 0.0, f"Mechanism {mech} wrong (expected {truth}).", "wrong"


def predicted_path(edges: list[CausalEdge], node=normalize_entity) -> list[str]:
    """Node path of a list of edges (see the module docstring), names mapped through ``node``."""
    pairs = [(node(e.source), node(e.target)) for e in edges]
    pairs = [(s, t) for s, t in pairs if s or t]
    if not pairs:
        return []
    targets = {t for _, t in pairs}
    start = next((i for i, (s, _) in enumerate(pairs) if s not in targets), None)
    if start is None:  # a cycle: read the edges in the order given
        path: list[str] = []
        for s, t in pairs:
            for x in (s, t):
                if x and (not path or path[-1] != x):
                    path.append(x)
        return path
    used = [False] * len(pairs)
    path = [pairs[start][0]]
    i: int | None = start
    while i is not None:
        used[i] = True
        path.append(pairs[i][1])
        cur = pairs[i][1]
        i = next((j for j, (s, _) in enumerate(pairs) if not used[j] and s == cur), None)
    for j, (s, t) in enumerate(pairs):  # edges off the main path still count as claims
        if not used[j]:
            for x in (s, t):
                if x and x not in path:
                    path.append(x)
    return [x for x in path if x]


def _lcs(a: list[str], b: list[str]) -> int:
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b, start=1):
            cur.append(prev[j - 1] + 1 if x == y else max(prev[j], cur[j - 1]))
        prev = cur
    return prev[-1]


def chain_f1(pred: list[str], truth: list[str]) -> tuple[float, int, float, float]:
    """(F1, LCS length, precision, recall) of two node paths."""
    if not pred or not truth:
        return 0.0, 0, 0.0, 0.0
    lcs = _lcs(pred, truth)
    if lcs == 0:
        return 0.0, 0, 0.0, 0.0
    p, r = lcs / len(pred), lcs / len(truth)
    return 2 * p * r / (p + r), lcs, p, r


def score_chain(
    names: Names, truth_chain: list[str], edges: list[CausalEdge]
) -> tuple[float, dict[str, Any], str]:
    pred = predicted_path(edges, names.node)
    truth = [x for x in (names.node(n) for n in truth_chain) if x]
    d: dict[str, Any] = {"predicted_path": pred, "truth_path": truth}
    if not truth:
        roots = {c for c, _ in names.groups}
        ok = not pred or bool(roots & set(pred))
        s = 1.0 if ok else EMPTY_CHAIN_LENIENT
        d.update(lcs=None, chain_precision=None, chain_recall=None, chain_f1=s)
        return s, d, f"Label has no causal chain; predicted chain judged leniently: {s:.2f}."
    if len(truth) == 1 and not pred:
        d.update(lcs=0, chain_precision=None, chain_recall=None, chain_f1=1.0)
        return 1.0, d, "Single-service incident: an empty causal chain is right."
    f1, lcs, p, r = chain_f1(pred, truth)
    d.update(lcs=lcs, chain_precision=p, chain_recall=r, chain_f1=f1)
    if not pred:
        return 0.0, d, "No causal chain given."
    return (
        f1,
        d,
        f"Causal chain F1 {f1:.2f} (LCS {lcs} of predicted {len(pred)}, truth {len(truth)} nodes).",
    )


_EPOCH = datetime(1970, 1, 1)


def _epoch_s(t: datetime) -> float:
    """Seconds since the epoch (UTC) of ``t``; a time without a zone is read as UTC.

    Computed from the naive wall time minus the zone's offset, never by shifting the datetime
    into UTC: ``0001-01-01T00:00:00+01:00`` or ``9999-12-31T23:59:59-01:00`` lies outside what
    a datetime can hold once shifted, and ``astimezone`` raises OverflowError on them."""
    offset = t.utcoffset() if t.tzinfo is not None else None
    seconds = (t.replace(tzinfo=None) - _EPOCH).total_seconds()
    return seconds - offset.total_seconds() if offset is not None else seconds


def onset_score(
    predicted: datetime | None, truth: datetime, tolerance_s: float
) -> tuple[float, float | None]:
    """(score, error in seconds): 1 within tolerance, linear to 0 at 3x tolerance."""
    if predicted is None:
        return 0.0, None
    err = abs(_epoch_s(predicted) - _epoch_s(truth))
    if err <= tolerance_s:
        return 1.0, err
    if tolerance_s <= 0:
        return 0.0, err
    return max(0.0, (3 * tolerance_s - err) / (2 * tolerance_s)), err


def _fmt_s(s: float) -> str:
    return f"{s / 60:.1f} min" if s >= 60 else f"{s:.0f} s"


def score_onset(label: Label, diagnosis: Diagnosis) -> tuple[float, dict[str, Any], str]:
    gt = label.ground_truth
    assert gt.onset is not None
    s, err = onset_score(diagnosis.onset, gt.onset, gt.onset_tolerance_s)
    d = {"onset_error_s": err, "onset_tolerance_s": gt.onset_tolerance_s}
    if err is None:
        return 0.0, d, "No onset given."
    return s, d, f"Onset {_fmt_s(err)} off (tolerance {_fmt_s(gt.onset_tolerance_s)}): {s:.2f}."
