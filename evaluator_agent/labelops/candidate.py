"""A candidate label in the review queue, and the seam the validator plugs into.

A candidate is a ``Label``-shaped draft (``draft``, a plain dict: it may still miss what only
a validator or a reviewer can supply, such as the onset or the snapshot) plus what a reviewer
needs to judge it: the claim text (the user's words, kept verbatim for the validator to resolve),
the evidence (the agent's tool queries), the flags raised while drafting, the fields filled by
defaults (``assumed``), and the validator's verdict once there is one.

The validator seam: :class:`Validation` holds the three scores (thoroughness, specificity,
accuracy, each in [0, 1] with its reasons), an overall confidence, the seconds it took and the
flag codes it resolved. ``Queue.record_validation`` stores one (optionally with a grounded
draft); the queue shows it and filters on its confidence. Nothing in this package computes it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from evaluator_agent.core.labels import GroundTruth

Status = Literal["pending", "accepted", "rejected"]
STATUSES: tuple[str, ...] = ("pending", "accepted", "rejected")
Severity = Literal["contradiction", "unresolved", "warning"]
#: severities that keep a candidate from being accepted unless the reviewer acknowledges them
#: (or the validator resolved them)
BLOCKING: frozenset[str] = frozenset({"contradiction", "unresolved"})


class Flag(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str
    severity: Severity
    message: str


class Score(BaseModel):
    model_config = ConfigDict(extra="forbid")

    score: float = Field(ge=0, le=1)
    reasons: list[str] = Field(default_factory=list, max_length=50)


class ValidationScores(BaseModel):
    model_config = ConfigDict(extra="forbid")

    thoroughness: Score
    specificity: Score
    accuracy: Score


class Validation(BaseModel):
    """What the validator concluded about a candidate (filled by ``proctor labels validate``)."""

    model_config = ConfigDict(extra="forbid")

    scores: ValidationScores
    confidence: float = Field(ge=0, le=1, description="Overall confidence that the draft is the incident's truth")
    validator: str = Field("", description="Which validator (name, version, model)")
    validated_at: datetime | None = None
    seconds: float | None = Field(None, ge=0, description="Wall time spent validating this candidate")
    resolved: list[str] = Field(default_factory=list, description="Flag codes the validator resolved")
    notes: list[str] = Field(default_factory=list, max_length=100)
    checks: list[dict[str, str]] = Field(default_factory=list, max_length=500,
                                         description="Lint and leak-audit findings on the grounded draft "
                                                     "({kind, check, message, severity})")
    basis: dict[str, Any] | None = Field(None, description="The draft the validator started from (before its grounding)")
    basis_assumed: list[str] = Field(default_factory=list, description="The basis's fields filled by defaults")
    basis_edits: int | None = Field(None, description="The candidate's edit count when it was validated")


class Promotion(BaseModel):
    """Where an accepted candidate went."""

    labelset: str
    label_id: str
    path: str
    version: str
    content_hash: str
    created_set: bool = False


class Candidate(BaseModel):
    id: str = Field(description="cand_ and 12 hex digits of the input record's content hash")
    content_hash: str
    source_kind: Literal["feedback", "stored", "postmortem"]
    feedback_id: str
    source_incident: str | None = None
    verdict: str | None = None
    title: str = ""
    status: Status = "pending"
    claim: str = Field("", description="The user's words (comment, postmortem description), verbatim")
    notes: list[str] = Field(default_factory=list)
    evidence: list[dict[str, Any]] = Field(default_factory=list, description="The agent's tool queries")
    truth_origin: str | None = Field(None, description="Where the ground truth came from: correction, diagnosis, postmortem ...")
    draft: dict[str, Any]
    original_draft: dict[str, Any] | None = None
    assumed: list[str] = Field(default_factory=list, description="Draft fields filled by defaults, not by the input")
    flags: list[Flag] = Field(default_factory=list)
    validation: Validation | None = None
    record: dict[str, Any] = Field(default_factory=dict, description="The input record as read")
    created_at: float = 0.0
    updated_at: float = 0.0
    edits: int = 0
    reviewer: str | None = None
    decided_at: float | None = None
    reason: str | None = None
    promoted: Promotion | None = None

    @property
    def confidence(self) -> float | None:
        return self.validation.confidence if self.validation else None

    def claim_draft(self) -> tuple[dict[str, Any], list[str]]:
        """The draft a validation starts from and its assumed fields: the draft before the last
        validation's grounding, unless a reviewer edited since (then the edited draft is the
        claim). Validating twice must not read the first validation's findings as the claim."""
        v = self.validation
        if v is not None and v.basis is not None and v.basis_edits == self.edits:
            return v.basis, list(v.basis_assumed)
        return self.draft, list(self.assumed)

    def resolved_flags(self) -> set[str]:
        """Flag codes no longer standing: resolved by the validator, or settled by the draft as
        it is now (a snapshot set, a mechanism mapped, a ground truth supplied by an edit)."""
        done = set(self.validation.resolved) if self.validation else set()
        return done | settled_by_draft(self.draft, {f.code for f in self.flags})

    def blocking_flags(self) -> list[Flag]:
        resolved = self.resolved_flags()
        return [f for f in self.flags if f.severity in BLOCKING and f.code not in resolved]


#: flags about something missing from the draft: settled once the draft has it
_NEEDS_TRUTH = frozenset({"wrong_without_correction", "correction_without_entity", "claim_to_resolve"})


def settled_by_draft(draft: dict[str, Any], codes: set[str]) -> set[str]:
    out: set[str] = set()
    world = draft.get("world") if isinstance(draft.get("world"), dict) else {}
    if "no_snapshot" in codes and world.get("snapshot"):
        out.add("no_snapshot")
    gt = draft.get("ground_truth")
    if codes & (_NEEDS_TRUTH | {"mechanism_unmapped"}) and isinstance(gt, dict):
        try:
            GroundTruth.model_validate(gt)
        except ValueError:
            return out
        out |= codes & (_NEEDS_TRUTH | {"mechanism_unmapped"})
    return out
