"""Deterministic scoring of one investigation: a label, the target's diagnosis, what it saw.

``score_investigation(label, diagnosis, viewed)`` returns a score in [0, 1], five
sub-scores, a pass/fail verdict and a short written explanation. The same inputs always
give the same result; no model is consulted. The rules:

**Entity names.** Every name (candidates, chain nodes, root causes, aliases, partial-credit
entities, red herrings) goes through ``normalize_entity``: lower case; quotes and a trailing
parenthetical note dropped; a ``kind:`` tag prefix (``service:``, ``host:``,
``kube_deployment:``, ``db.instance:`` ...) or a Kubernetes ``kind/`` prefix
(``deployment/``, ``statefulset/``, ``pod/`` ...) removed; URL schemes, ``:port`` and the
cluster DNS suffix (``.<ns>.svc.cluster.local``) removed; runs of ``_``, ``.``, space and
``-`` folded into one ``-``. So ``service:Payments_API``, ``deployment/payments-api`` and
``payments-api.prod.svc.cluster.local`` are all ``payments-api``, while
``payments-db-replica`` stays different from ``payments-db``. A root cause's entity and its
aliases form one alias group; a name matches a group when it normalises to any member.

**Dimensions** (default weights in ``DEFAULT_WEIGHTS``; a label's rubric may override them):

- ``root_cause`` (0.45) -- AC@k over the ranked candidates. Each ground-truth root cause
  earns credit by the number of *wrong* candidates ranked above its first match: none
  1.0, one 0.3, two 0.15, more 0. Correct candidates do not push each other down, so with
  one root cause this is "top 1.0, rank 2 0.3, rank 3 0.15". The sub-score is the mean
  over root causes (recall-weighted); precision@k, recall@k (k = number of root causes)
  and AC@1/3/5 go into ``details``. A partial-credit entity on top earns its label credit,
  capped at 0.3, if that is higher. A must-not-blame entity on top makes the sub-score 0.
- ``mechanism`` (0.35) -- the mechanism of the *chosen* candidate (the first correct one,
  the top candidate when none is correct): 1 when it equals the ground truth,
  ``NEAR_MECHANISM_CREDIT`` (0.5) when the two are a near-synonym pair of the closed map
  ``vocab.MECHANISM_NEAR_SYNONYMS`` (e.g. memory_leak for oom_killed), else 0; a mechanism
  outside the closed vocabulary counts as wrong. ``details["mechanism_status"]`` is
  ``exact``, ``near``, ``wrong`` or ``missing``.
- ``causal_chain`` (0.1) -- LCS-based F1 between the predicted path and the ground-truth
  path after normalisation (aliases map to their root cause). The predicted path starts at
  the source of the first edge whose source is no edge's target and follows edges in
  order; nodes of edges off that path are appended so that extra claims cost precision.
  If every node is some edge's target (a cycle) the edges are read in the order given.
  A single-service incident (a ground-truth chain of one entity) has nothing to
  propagate through: an empty predicted chain is right (1), so is one that names only the
  root cause (a self-loop, aliases included); naming other services costs precision as
  usual. A fault label with no chain judges leniently: 1 if the predicted chain is empty
  or contains a root cause, else 0.5.
- ``onset`` (0.05) -- 1 within the label's tolerance, falling linearly to 0 at three times
  the tolerance; a missing onset scores 0. Times without a zone are read as UTC.
- ``evidence`` (0.05) -- fraction of the key evidence the target actually received: an
  item is found when a successful result of the same tool that the target was shown
  contains ``expect`` (case-insensitive, in the raw JSON or its decoded strings). Quoting
  it in the diagnosis earns nothing (a target can paste strings it never saw). No key
  evidence means 1.

**Red herrings.** A must-not-blame entity as the top candidate costs 0.2 off the total
(and the root-cause credit). Every other distinct must-not-blame candidate blamed with
confidence >= 0.5 -- or with no confidence stated, since an unhedged candidate is a claim --
costs 0.1, at most 0.3 together. The total is clamped to [0, 1].

**No fault.** A diagnosis declares "no fault" when ``no_fault`` is true, when every
candidate has mechanism ``no_fault``, or when it names no candidate and its summary says so
("no fault", "false positive", "benign", "nothing is broken" ...). On a no-fault label such
an answer gets 1 on root cause, mechanism, chain and onset (evidence as usual). Blaming
anything on a no-fault label, or answering "no fault" on a fault label, scores 0 on those
four, and so fails.

**No answer.** ``diagnosis=None`` (timeout, crash, budget exhausted) scores 0 and fails.

**Pass** is a gate and a threshold, checked in this order:

1. *root cause*: the top candidate matches a root cause's alias group (on a no-fault
   control: the diagnosis declares no fault; on a fault label a "no fault" answer fails);
2. *mechanism*: the top candidate's mechanism is exactly the ground truth (a near-synonym
   earns partial credit in the score, never a pass);
3. ``score >= PASS_THRESHOLD`` (0.7, one constant for the whole product).

``details["gate"]`` says which gate failed (``root_cause``, ``mechanism``, ``no_diagnosis``,
or None), and the explanation's last sentence names it: "right root cause, wrong mechanism
(expected oom_killed): fail". The weights are checked (``check_weights``) so that the score
alone agrees with the gate where it can: with the best root-cause credit available without
a correct top candidate (0.3), or with a wrong mechanism (0), and every other dimension
perfect, the score stays below the threshold (0.45 * 0.3 + 0.55 = 0.685; 1 - 0.35 = 0.65).
A near-synonym with everything else right scores 0.825 and fails on the gate alone.

**Accuracy.** ``details["accuracy"]`` holds three booleans the run summary averages
(``stats.run_statistics``): ``ac_at_1`` / ``ac_at_3``, the top 1 / 3 candidates include a
root cause, and ``mechanism``, the chosen candidate's mechanism is exactly the ground truth.
On a no-fault control all three are "the diagnosis declares no fault"; a "no fault" answer
on a fault label and a missing diagnosis make all three false.

``red_herrings_chased(label, viewed)`` is a trajectory fact, not part of the score: how
many distinct must-not-blame entities the target named in the arguments of a tool call.

The package: ``rubric`` (dimensions, weights, credits, penalties, threshold), ``names``
(entity normalisation), ``dimensions`` (root cause, mechanism, chain, onset), ``evidence``
(what the target was shown: evidence credit, red herrings chased) and ``total``
(``score_investigation``). Import from the package itself.
"""

from __future__ import annotations

from evaluator_agent.engine.scoring.dimensions import chain_f1, onset_score, predicted_path
from evaluator_agent.engine.scoring.evidence import (
    Seen,
    ViewedResult,
    red_herrings_chased,
    squash,
)
from evaluator_agent.engine.scoring.names import normalize_entity
from evaluator_agent.engine.scoring.rubric import (
    ACCURACY_K,
    DEFAULT_WEIGHTS,
    DIMENSIONS,
    EMPTY_CHAIN_LENIENT,
    NEAR_MECHANISM_CREDIT,
    OTHER_RED_HERRING_CAP,
    OTHER_RED_HERRING_PENALTY,
    PARTIAL_CREDIT_CAP,
    PASS_THRESHOLD,
    RANK_CREDIT,
    RED_HERRING_MIN_CONFIDENCE,
    TOP1_MISS_MAX,
    TOP_RED_HERRING_PENALTY,
    check_weights,
    resolve_weights,
)
from evaluator_agent.engine.scoring.total import ScoreResult, declares_no_fault, score_investigation

__all__ = [
    "ACCURACY_K",
    "DEFAULT_WEIGHTS",
    "DIMENSIONS",
    "EMPTY_CHAIN_LENIENT",
    "NEAR_MECHANISM_CREDIT",
    "OTHER_RED_HERRING_CAP",
    "OTHER_RED_HERRING_PENALTY",
    "PARTIAL_CREDIT_CAP",
    "PASS_THRESHOLD",
    "RANK_CREDIT",
    "RED_HERRING_MIN_CONFIDENCE",
    "TOP1_MISS_MAX",
    "TOP_RED_HERRING_PENALTY",
    "ScoreResult",
    "Seen",
    "ViewedResult",
    "chain_f1",
    "check_weights",
    "declares_no_fault",
    "normalize_entity",
    "onset_score",
    "predicted_path",
    "red_herrings_chased",
    "resolve_weights",
    "score_investigation",
    "squash",
]
