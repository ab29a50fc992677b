"""What results reveal: the disclosure policy (DESIGN.md section 10, issue 11).

A run's stored rows hold everything the scorer worked out, and much of it is derived from the
ground truth: the explanation ("No candidate names template-service. Mechanism consumer_lag
wrong (expected bad_release) ... missing '4.20.0'"), the score details (truth path, root-cause
ranks, key-evidence expects, blamed red herrings) and the taxonomy the summary breaks down by
(segment, technology, problem category, mechanism of each label). Handed to whoever asked for
the run, that is the answer key: a target that replayed one run's explanations scored 100%
without a tool call.

Two policies, one set of functions applied where results leave the proctor (the A2A result
artifact and ``get_run``/``compare`` in server.py; ``proctor run/show/report/runs/compare`` in
cli.py; the Datadog explanation in observability.py):

``full``
    everything: explanations, the per-dimension breakdowns, ground truth in reports.
``scores``
    scores, pass/fail, sub-score numbers, end reasons, counts (turns, tool calls, red herrings
    chased), the run's statistics and the target's own diagnosis (in reports); nothing derived
    from the ground truth: each explanation is replaced by :data:`WITHHELD`, the summary keeps
    only the breakdowns by tier and monitor type (a monitor is in the briefing), comparisons lose
    their per-segment figures, reports lose the ground-truth column.

The policy comes from ``--disclosure`` where a command has it, else ``$PROCTOR_DISCLOSURE``,
else the command's default: ``scores`` for ``proctor serve`` (with or without API keys: a
server answers whoever reaches it), ``full`` for the local commands (``run``, ``show``,
``report``, ``runs``, ``compare``).

A label set marked ``"private": true`` in its ``labelset.json`` is ``scores`` whatever the
policy (its truth lives in the label files only): its runs' rows are stored without the
explanation and with score details cut down to numbers (:func:`scrub_details`), and its
Datadog spans carry neither explanation nor truth taxonomy.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from typing import Any

FULL, SCORES = "full", "scores"
POLICIES: tuple[str, ...] = (FULL, SCORES)
ENV = "PROCTOR_DISCLOSURE"
SERVER_DEFAULT = SCORES
CLI_DEFAULT = FULL
WITHHELD = "withheld by the disclosure policy"

# Breakdown dimensions whose values are label taxonomy the target must find out (derived from the
# ground truth). Tier is the label's difficulty; the monitor type is in the briefing.
TRUTH_DIMENSIONS: tuple[str, ...] = ("segment", "technology", "problem_category", "mechanism")

# Score-detail keys that stay in the store for a private set: numbers and booleans about the
# target's answer (what the statistics read), no names.
_SAFE_DETAIL_KEYS = frozenset({
    "weights", "pass_threshold", "red_herrings_chased", "verdict", "matched_rank", "k", "precision_at_k",
    "recall_at_k", "ac_at_k", "rank_credit", "lcs", "chain_precision", "chain_recall", "chain_f1",
    "onset_error_s", "onset_tolerance_s", "mechanism_status", "accuracy", "penalty", "gate",
})


class DisclosureError(ValueError):
    """An unknown policy name."""


def parse_policy(value: str | None, *, default: str) -> str:
    """``value`` (``full`` | ``scores``, any case) or ``default`` when unset or empty."""
    if value is None or not str(value).strip():
        return default
    v = str(value).strip().lower()
    if v not in POLICIES:
        raise DisclosureError(f"disclosure policy {value!r}: expected one of {', '.join(POLICIES)}")
    return v


def resolve(explicit: str | None, *, default: str) -> str:
    """The policy in force: ``explicit`` (a flag or argument), else $PROCTOR_DISCLOSURE, else ``default``."""
    if explicit is not None and str(explicit).strip():
        return parse_policy(explicit, default=default)
    return parse_policy(os.environ.get(ENV), default=default)


def labelset_private(name: str | None) -> bool:
    """True when the label set ``name`` is marked private (False when it cannot be loaded: a set
    that is gone is judged by what its runs recorded, see :func:`run_private`)."""
    if not name:
        return False
    from evaluator_agent.core.labels import LabelError, load_labelset

    try:
        return bool(load_labelset(name).info.private)
    except LabelError:
        return False


def run_private(run: Mapping[str, Any] | None) -> bool:
    """Whether a stored run (a ``store.get_run`` row) or a result dict is of a private label set:
    as recorded in its manifest when it started, or as the label set says now."""
    if not run:
        return False
    manifest = run.get("manifest") or {}
    recorded = (manifest.get("labelset") or {}).get("private") if isinstance(manifest, Mapping) else None
    ls = run.get("labelset")
    if isinstance(ls, Mapping):  # a result dict
        recorded = recorded or ls.get("private")
        ls = ls.get("name")
    return bool(recorded) or labelset_private(ls if isinstance(ls, str) else None)


def effective(policy: str, private: bool) -> str:
    """A private label set is ``scores`` whatever the policy."""
    return SCORES if private else parse_policy(policy, default=SCORES)


def withheld(policy: str) -> str:
    return f"{WITHHELD} ({policy})"


def disclose_summary(summary: Mapping[str, Any] | None, policy: str) -> dict[str, Any] | None:
    """A run summary as ``policy`` shows it (a copy): under ``scores`` the breakdowns by truth
    taxonomy are dropped."""
    if summary is None:
        return None
    out = dict(summary)
    if policy != FULL and isinstance(out.get("breakdown"), Mapping):
        out["breakdown"] = {k: v for k, v in out["breakdown"].items() if k not in TRUTH_DIMENSIONS}
    return out


def disclose_result(result: Mapping[str, Any], policy: str, *, private: bool | None = None) -> dict[str, Any]:
    """The result dict (``orchestrator.build_result``) as ``policy`` shows it: a deep copy that
    says under ``disclosure`` what it withholds. The one function every result goes through on
    its way to a client, a terminal or a JSON file."""
    if private is None:
        private = run_private(result)
    eff = effective(policy, private)
    out = copy.deepcopy(dict(result))
    out["disclosure"] = {"policy": eff, "private_labelset": bool(private)}
    if eff == FULL:
        return out
    out["disclosure"]["withheld"] = ["explanation", *(f"summary.breakdown.{d}" for d in TRUTH_DIMENSIONS)]
    for inv in out.get("investigations") or []:
        if "explanation" in inv:
            inv["explanation"] = withheld(eff)
    out["summary"] = disclose_summary(out.get("summary"), eff)
    return out


def disclose_rows(rows: list[dict[str, Any]], policy: str) -> list[dict[str, Any]]:
    """Stored investigation rows (reports): explanation withheld and score details cut down to
    numbers under ``scores``. The target's own diagnosis and tool calls stay."""
    if policy == FULL:
        return rows
    out = []
    for r in rows:
        r = dict(r)
        if "explanation" in r:
            r["explanation"] = withheld(policy)
        if isinstance(r.get("score_details"), Mapping):
            r["score_details"] = scrub_details(r["score_details"])
        out.append(r)
    return out


def disclose_compare(cmp: Mapping[str, Any], policy: str) -> dict[str, Any]:
    """A comparison (``analysis.compare_stored``): under ``scores`` without per-segment figures."""
    out = dict(cmp)
    if policy != FULL:
        out.pop("segments", None)
        out.pop("regressed_segments", None)  # segment names are derived from the ground truth too
        out["disclosure"] = {"policy": policy, "withheld": ["segments", "regressed_segments"]}
    return out


def scrub_details(details: Mapping[str, Any] | None) -> dict[str, Any]:
    """Score details without names: what the statistics need (accuracy, ac_at_k, ranks as
    numbers), not the truth path, root-cause names, evidence expects or red herrings."""
    if not isinstance(details, Mapping):
        return {}
    return {k: v for k, v in details.items() if k in _SAFE_DETAIL_KEYS}
