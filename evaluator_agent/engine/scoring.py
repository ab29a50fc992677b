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
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from evaluator_agent.core.labels import Label
from evaluator_agent.core.protocol import CausalEdge, Diagnosis, RootCauseCandidate
from evaluator_agent.core.vocab import MECHANISM_INFO, near_synonym

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


@dataclass(frozen=True)
class ViewedResult:
    """One tool call the target made: tool name, its arguments, and the JSON text it was shown."""

    tool: str
    arguments: dict[str, Any]
    ok: bool
    text: str


@dataclass
class ScoreResult:
    score: float
    passed: bool
    subscores: dict[str, float]
    explanation: str
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


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


# --------------------------------------------------------------------------- names

_KIND_PREFIXES = frozenset(
    """
    service svc kube_service host hostname node kube_node cluster kube_cluster_name
    cluster_name zone availability_zone az region external dependency change deploy
    deployment kube_deployment statefulset sts kube_stateful_set daemonset ds
    kube_daemon_set replicaset rs pod pod_name container container_name
    kube_container_name database db db_instance db_name cache queue topic kafka_topic
    consumer_group flag feature_flag config configmap cm job cronjob entity component
    peer_service peer_hostname out_host
    """.split()
)
_PREFIX_RE = re.compile(r"^@?([a-z][a-z0-9_.\- ]*?)\s*[:/]\s*(\S.*)$")
_SCHEME_RE = re.compile(r"^[a-z][a-z0-9+.\-]*://")
_PAREN_SUFFIX_RE = re.compile(r"\s*[(\[][^()\[\]]*[)\]]\s*$")
_K8S_DNS_RE = re.compile(r"(?:\.[a-z0-9-]+)?\.svc(?:\.cluster\.local)?\.?$")
_PORT_RE = re.compile(r":\d{1,5}$")
_SEP_RE = re.compile(r"[\s_.\-]+")


def _fold(s: str) -> str:
    return _SEP_RE.sub("-", s.lower()).strip("-")


def normalize_entity(name: str) -> str:
    """Canonical form of an entity name, for comparing names written in different styles."""
    s = str(name).strip().lower().strip("`'\" ")
    s = _SCHEME_RE.sub("", s).rstrip("/")
    for _ in range(4):  # "service:deployment/x (primary)" peels in a few steps
        stripped = _PAREN_SUFFIX_RE.sub("", s)
        if stripped and stripped != s:
            s = stripped
            continue
        m = _PREFIX_RE.match(s)
        if m and _fold(m.group(1)).replace("-", "_") in _KIND_PREFIXES:
            s = m.group(2).strip()
            continue
        break
    s = _PORT_RE.sub("", s)
    s = _K8S_DNS_RE.sub("", s)
    return _fold(s).strip("`'\"")


def _normalize_mechanism(m: str | None) -> str | None:
    if m is None:
        return None
    return re.sub(r"[\s\-]+", "_", m.strip().lower())


class _Names:
    """The label's entities after normalisation: alias groups, partial credit, red herrings."""

    def __init__(self, label: Label):
        gt = label.ground_truth
        self.groups: list[tuple[str, set[str]]] = []  # (canonical, members)
        self.canonical: dict[str, str] = {}
        self.display: dict[str, str] = {}  # canonical -> label spelling
        for rc in gt.root_causes:
            canon = normalize_entity(rc.entity)
            members = {normalize_entity(x) for x in [rc.entity, *rc.aliases]} - {""}
            self.groups.append((canon, members))
            self.display[canon] = rc.entity
            for mbr in members:
                self.canonical.setdefault(mbr, canon)
        self.partial: dict[str, tuple[float, str]] = {}
        for pc in gt.partial_credit:
            n = normalize_entity(pc.entity)
            if n and n not in self.canonical:
                self.partial[n] = (pc.credit, pc.entity)
        self.red: dict[str, str] = {}
        for rh in gt.must_not_blame:
            n = normalize_entity(rh.entity)
            if n and n not in self.canonical:
                self.red[n] = rh.entity

    def group_of(self, name: str) -> int | None:
        n = normalize_entity(name)
        for i, (_, members) in enumerate(self.groups):
            if n in members:
                return i
        return None

    def node(self, name: str) -> str:
        n = normalize_entity(name)
        return self.canonical.get(n, n)


# --------------------------------------------------------------------------- dimensions


def _root_cause(
    names: _Names, cands: list[RootCauseCandidate]
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


def _mechanism(
    truth: str, names: _Names, cands: list[RootCauseCandidate]
) -> tuple[float, str, str]:
    """(sub-score, sentence, status) of the chosen candidate's mechanism; status is one of
    ``exact``, ``near`` (a near-synonym of the truth), ``wrong``, ``missing``."""
    chosen = next(
        (c for c in cands if names.group_of(c.entity) is not None), cands[0] if cands else None
    )
    mech = _normalize_mechanism(chosen.mechanism) if chosen else None
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


def _chain(
    names: _Names, truth_chain: list[str], edges: list[CausalEdge]
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


def _onset(label: Label, diagnosis: Diagnosis) -> tuple[float, dict[str, Any], str]:
    gt = label.ground_truth
    assert gt.onset is not None
    s, err = onset_score(diagnosis.onset, gt.onset, gt.onset_tolerance_s)
    d = {"onset_error_s": err, "onset_tolerance_s": gt.onset_tolerance_s}
    if err is None:
        return 0.0, d, "No onset given."
    return s, d, f"Onset {_fmt_s(err)} off (tolerance {_fmt_s(gt.onset_tolerance_s)}): {s:.2f}."


def _strings(obj: Any) -> list[str]:
    out: list[str] = []
    stack = [obj]
    while stack:
        x = stack.pop()
        if isinstance(x, str):
            out.append(x)
        elif isinstance(x, dict):
            stack.extend(x.keys())
            stack.extend(x.values())
        elif isinstance(x, (list, tuple)):
            stack.extend(x)
        elif x is not None:
            out.append(str(x))
    return out


def _squash(s: str) -> str:
    return " ".join(s.lower().split())


# Parts of a result that echo what the target asked rather than what the world holds: a
# metric name found only in the echoed query proves nothing was seen.
_ECHOED = {"query_metrics": ("query", "from", "to")}


class _Seen:
    """Lower-cased text of a viewed result, raw and decoded, computed once."""

    def __init__(self, v: ViewedResult):
        self.v = v
        self._decoded: str | None = None
        text = v.text
        echoed = _ECHOED.get(v.tool)
        if echoed:
            try:
                data = json.loads(text)
            except (ValueError, RecursionError):
                data = None
            if isinstance(data, dict):
                text = json.dumps({k: x for k, x in data.items() if k not in echoed})
                self._decoded = _squash("\n".join(_strings({k: x for k, x in data.items() if k not in echoed})))
        self.raw = _squash(text)

    def contains(self, needle: str) -> bool:
        if needle in self.raw:
            return True
        if self._decoded is None:
            try:
                self._decoded = _squash("\n".join(_strings(json.loads(self.v.text))))
            except (ValueError, RecursionError):
                self._decoded = ""
        return needle in self._decoded


def _evidence(label: Label, viewed: list[ViewedResult]) -> tuple[float, dict[str, Any], str]:
    items = label.ground_truth.key_evidence
    if not items:
        return 1.0, {"evidence": []}, "No key evidence required."
    seen = [_Seen(v) for v in viewed if v.ok]
    rows = []
    for ke in items:
        needle = _squash(ke.expect)
        found = bool(needle) and any(s.v.tool == ke.tool and s.contains(needle) for s in seen)
        rows.append({"tool": ke.tool, "expect": ke.expect, "found": "viewed" if found else None})
    found_rows = [r for r in rows if r["found"]]
    score = len(found_rows) / len(rows)
    msg = f"Key evidence {len(found_rows)}/{len(rows)} found"
    parts = [f"viewed: {r['expect']!r}" for r in found_rows]
    missing = [repr(r["expect"]) for r in rows if not r["found"]]
    if parts:
        msg += " (" + "; ".join(parts) + ")"
    if missing:
        msg += f"; missing {', '.join(missing)}"
    return score, {"evidence": rows}, msg + "."


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
        return all(_normalize_mechanism(c.mechanism) == "no_fault" for c in diagnosis.root_causes)
    return bool(_NO_FAULT_RE.search(diagnosis.summary.lower()))


def _blamed_red_herrings(
    names: _Names, cands: list[RootCauseCandidate]
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


def _mentions(text: str, entity: str) -> bool:
    return re.search(rf"(?<![a-z0-9\-]){re.escape(entity)}(?![a-z0-9\-])", text) is not None


def red_herrings_chased(label: Label, viewed: list[ViewedResult]) -> int:
    """How many distinct must-not-blame entities the target named in some tool call's arguments."""
    reds = {normalize_entity(r.entity) for r in label.ground_truth.must_not_blame} - {""}
    if not reds:
        return 0
    texts = [_fold(s) for v in viewed for s in _strings(list(v.arguments.values()))]
    return sum(1 for r in reds if any(_mentions(t, r) for t in texts))


# --------------------------------------------------------------------------- the score


def _accuracy(
    names: _Names, cands: list[RootCauseCandidate], mechanism_exact: bool
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
    names = _Names(label)
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
        sub["root_cause"], d_rc, m = _root_cause(names, cands)
        details.update(d_rc)
        msgs.append(m)
        sub["mechanism"], m, mech_status = _mechanism(gt.mechanism, names, cands)
        msgs.append(m)
        sub["causal_chain"], d_ch, m = _chain(names, gt.causal_chain, diagnosis.causal_chain)
        details.update(d_ch)
        msgs.append(m)
        sub["onset"], d_on, m = _onset(label, diagnosis)
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

    sub["evidence"], d_ev, m = _evidence(label, viewed)
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
