"""The rubric: the five dimensions, their default weights, the credits and penalties the
sub-scores use, the pass threshold, and the weight checks (``check_weights``,
``resolve_weights``) that keep the score alone in line with the pass gate.
"""

from __future__ import annotations

from evaluator_agent.core.labels import Label

PASS_THRESHOLD: float = 0.7

DIMENSIONS: tuple[str, ...] = ("root_cause", "mechanism", "causal_chain", "onset", "evidence")
DEFAULT_WEIGHTS: dict[str, float] = {
    "root_cause": 0.45,
    "mechanism": 0.35,
    "causal_chain": 0.1,
    "evidence": 0.05,
    "onset": 0.05,
}

# Credit for a root cause by the number of wrong candidates ranked above it.
RANK_CREDIT: tuple[float, ...] = (1.0, 0.3, 0.15)
PARTIAL_CREDIT_CAP = 0.3
# Best root-cause sub-score reachable without a correct top candidate.
TOP1_MISS_MAX = max(max(RANK_CREDIT[1:]), PARTIAL_CREDIT_CAP)

TOP_RED_HERRING_PENALTY = 0.2
OTHER_RED_HERRING_PENALTY = 0.1
OTHER_RED_HERRING_CAP = 0.3
RED_HERRING_MIN_CONFIDENCE = 0.5
EMPTY_CHAIN_LENIENT = 0.5
# Mechanism credit for a near-synonym of the truth (vocab.MECHANISM_NEAR_SYNONYMS); never a pass.
NEAR_MECHANISM_CREDIT = 0.5
# Top-k depths of the root-cause accuracies a run summary reports.
ACCURACY_K: tuple[int, ...] = (1, 3)


# --------------------------------------------------------------------------- weights


def check_weights(weights: dict[str, float]) -> None:
    """Raise ValueError unless the weights are valid and the score alone keeps a wrong top-1
    candidate and a wrong mechanism below the pass threshold (the gate fails them anyway;
    the check keeps the score readable: a score above the threshold means the answer was
    right, short of a near-synonym mechanism)."""
    unknown = set(weights) - set(DIMENSIONS)
    if unknown:
        raise ValueError(
            f"unknown scoring dimension(s) {sorted(unknown)}; expected {list(DIMENSIONS)}"
        )
    if any(w < 0 for w in weights.values()):
        raise ValueError("scoring weights must be >= 0")
    total = sum(weights.values())
    if abs(total - 1.0) > 1e-6:
        raise ValueError(f"scoring weights must sum to 1 (got {total:g})")
    w_rc = weights.get("root_cause", 0.0)
    best_without_top1 = w_rc * TOP1_MISS_MAX + (1 - w_rc)
    if best_without_top1 >= PASS_THRESHOLD:
        raise ValueError(
            f"root_cause weight {w_rc:g} is too low: a wrong top candidate could "
            f"score {best_without_top1:.2f} >= pass threshold {PASS_THRESHOLD}"
        )
    w_mech = weights.get("mechanism", 0.0)
    if 1 - w_mech >= PASS_THRESHOLD:
        raise ValueError(
            f"mechanism weight {w_mech:g} is too low: a wrong mechanism could "
            f"score {1 - w_mech:.2f} >= pass threshold {PASS_THRESHOLD}"
        )


def resolve_weights(label: Label) -> dict[str, float]:
    """The label's rubric weights (missing dimensions take the defaults, then renormalised)."""
    custom = label.rubric.weights
    if not custom:
        return dict(DEFAULT_WEIGHTS)
    unknown = set(custom) - set(DIMENSIONS)
    if unknown:
        raise ValueError(f"label {label.id}: unknown scoring dimension(s) {sorted(unknown)}")
    merged = {d: float(custom.get(d, DEFAULT_WEIGHTS[d])) for d in DIMENSIONS}
    total = sum(merged.values())
    if total <= 0 or any(w < 0 for w in merged.values()):
        raise ValueError(f"label {label.id}: scoring weights must be >= 0 with a positive sum")
    merged = {d: w / total for d, w in merged.items()}
    try:
        check_weights(merged)
    except ValueError as e:
        raise ValueError(f"label {label.id}: {e}") from None
    return merged


check_weights(DEFAULT_WEIGHTS)
