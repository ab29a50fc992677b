"""The records of an evaluation: what one investigation leaves, what a run is and what it shows.

Written by the engine, kept by the store (:mod:`evaluator_agent.results.store`), read by every
renderer, the A2A server and the CLI. The vocabulary is closed: a run's status is a
:class:`RunStatus`, an investigation's end is an :class:`EndReason`, an infra error is an
:class:`ErrorKind`; all three are ``str`` enums, so they compare equal to, serialise as and are
stored as their plain values.

A stored run is a self-contained record: its :class:`RunManifest` freezes each label's tier and
taxonomy when the run starts, and the :class:`RunSummary` stored when it ends is the one every
command shows (:meth:`RunResult.from_store`), whatever happens to the label files later.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field


class RequestError(ValueError):
    """An evaluation request that cannot be run as asked; the message says why."""


class RunStatus(StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"
    INTERRUPTED = "interrupted"  # stopped (SIGTERM, cancel): resumable with the same run id
    FAILED = "failed"
    PARTIAL = "partial"  # a merge that lacks some shards


class EndReason(StrEnum):
    """How an investigation ended (see :mod:`evaluator_agent.engine.investigation`)."""

    DIAGNOSIS = "diagnosis"
    MAX_TURNS = "max_turns"
    TIMEOUT = "timeout"
    TURN_TIMEOUT = "turn_timeout"
    MALFORMED_REPLIES = "malformed_replies"
    REPLY_TOO_LARGE = "reply_too_large"
    TARGET_ERROR = "target_error"
    TARGET_UNREACHABLE = "target_unreachable"
    UNSCORABLE_DIAGNOSIS = "unscorable_diagnosis"
    HARNESS_ERROR = "harness_error"


class ErrorKind(StrEnum):
    """Infra errors: not the agent's fault, counted apart and left out of pass rates."""

    NETWORK = "network"  # the target was never reached in this run
    HARNESS = "harness"  # the proctor's own failure


# ---------------------------------------------------------------- one investigation


@dataclass
class ToolCallRecord:
    turn: int
    call_id: str
    name: str
    arguments: dict[str, Any]
    ok: bool
    error: str | None
    result_size: int
    duration_ms: float
    result_preview: str = ""
    surface: str = "a2a"  # a2a (in-band), mcp or rest: where the call came in


@dataclass
class TurnRecord:
    idx: int
    kind: str  # tool_calls | diagnosis | invalid | error
    reply_size: int
    duration_s: float
    n_calls: int = 0
    error: str | None = None


@dataclass
class InvestigationResult:
    investigation_id: str
    label_id: str
    attempt: int
    context_id: str
    started_at: float
    world: str = ""  # content hash of the snapshot investigated (noisy or noise-free)
    finished_at: float = 0.0
    end_reason: str = EndReason.HARNESS_ERROR
    error_kind: str | None = None
    error: str | None = None
    diagnosis: dict[str, Any] | None = None
    score: float = 0.0
    passed: bool = False
    subscores: dict[str, float] = field(default_factory=dict)
    explanation: str = ""
    score_details: dict[str, Any] = field(default_factory=dict)
    turns: int = 0
    tool_calls: int = 0
    invalid_calls: int = 0
    red_herrings_chased: int = 0
    tokens: dict[str, int] | None = None
    calls_by_surface: dict[str, int] = field(default_factory=dict)
    turn_records: list[TurnRecord] = field(default_factory=list)
    call_records: list[ToolCallRecord] = field(default_factory=list)

    @property
    def duration_s(self) -> float:
        return max(0.0, self.finished_at - self.started_at)

    def public(self) -> dict[str, Any]:
        """The per-investigation entry of the result artifact."""
        return InvestigationEntry.of(vars(self) | {"duration_s": self.duration_s}).model_dump(exclude={"explanation"})

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---------------------------------------------------------------- one run


class _Open(BaseModel):
    """A record read back from JSON that a newer proctor may have extended: unknown keys kept."""

    model_config = ConfigDict(extra="allow")


class Estimate(_Open):
    """A proportion with its interval (``results.stats.clustered_proportion``)."""

    value: float = 0.0
    stderr: float | None = None
    ci95: list[float] | None = None
    n_labels: int | None = None
    n_clusters: int | None = None
    n_eff: float | None = None


class RunSummary(_Open):
    """The statistical summary of a run (``results.stats.run_statistics``) plus the changes
    against the target's previous run. The fields named here are the ones renderers read;
    the rest (accuracies, pass@k, breakdowns, trajectory figures) ride along as extra keys."""

    n: int = 0
    scored: int = 0
    passed: int = 0
    pass_rate: float = 0.0
    mean_score: float = 0.0
    errors: int = 0
    errors_by_kind: dict[str, int] = Field(default_factory=dict)
    end_reasons: dict[str, int] = Field(default_factory=dict)
    ci95: list[float] | None = None
    stderr: float | None = None
    pass_at_1: Estimate | None = None
    breakdown: dict[str, dict[str, Any]] = Field(default_factory=dict)
    infra_error_rate: float = 0.0
    degraded: bool = False
    previous_run: str | None = None
    newly_failing: list[str] = Field(default_factory=list)
    newly_passing: list[str] = Field(default_factory=list)


class RunManifest(_Open):
    """What a run was asked and against what, frozen when it starts (stored as JSON)."""

    run_id: str
    target: dict[str, Any] = Field(default_factory=dict)  # url, name, version, protocol_version, card
    labelset: dict[str, Any] = Field(default_factory=dict)  # name, hash, version, private
    proctor_version: str = ""
    git_rev: str = ""
    options: dict[str, Any] = Field(default_factory=dict)  # the request, but target and run id
    label_ids: list[str] = Field(default_factory=list)
    owner: str | None = None  # the API key principal that asked (None: CLI, jobs)
    # each label's tier and taxonomy as they were at the start (None: a run older than this field)
    label_meta: dict[str, dict[str, Any]] | None = None
    shard: dict[str, int] | None = None  # {"index", "count"} of one shard
    shards: dict[str, Any] | None = None  # {"count", "merged"} after a merge

    def as_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)


class TargetRef(BaseModel):
    name: str = ""
    version: str = ""
    url: str = ""


class LabelsetRef(BaseModel):
    name: str
    hash: str = ""
    private: bool = False


class ProctorRef(BaseModel):
    version: str = ""
    git_rev: str = ""


class InvestigationEntry(BaseModel):
    """One investigation as the result artifact lists it."""

    label_id: str
    attempt: int
    score: float
    passed: bool
    subscores: dict[str, float] = Field(default_factory=dict)
    end_reason: str
    error_kind: str | None = None
    turns: int = 0
    tool_calls: int = 0
    invalid_calls: int = 0
    red_herrings_chased: int = 0
    duration_s: float = 0.0
    explanation: str = ""

    @classmethod
    def of(cls, row: dict[str, Any]) -> InvestigationEntry:
        """From a stored row (or an :class:`InvestigationResult`'s fields), rounded as shown."""
        return cls(
            label_id=row["label_id"], attempt=row["attempt"], score=round(row["score"], 4), passed=bool(row["passed"]),
            subscores={k: round(v, 4) for k, v in (row.get("subscores") or {}).items()},
            end_reason=row["end_reason"], error_kind=row.get("error_kind"), turns=row.get("turns") or 0,
            tool_calls=row.get("tool_calls") or 0, invalid_calls=row.get("invalid_calls") or 0,
            red_herrings_chased=row.get("red_herrings_chased") or 0,
            duration_s=round(row.get("duration_s") or 0.0, 3), explanation=row.get("explanation") or "",
        )


class RunSource(Protocol):
    """What :meth:`RunResult.from_store` reads (``results.store.Store`` is one)."""

    def get_run(self, run_id: str) -> dict[str, Any] | None: ...

    def investigations(self, run_id: str) -> list[dict[str, Any]]: ...

    def run_summary(self, run: dict[str, Any], rows: list[dict[str, Any]]) -> dict[str, Any]:
        """The summary to show: stored at the run's end, or computed from ``rows`` while it
        runs; with the changes against the target's previous run."""
        ...

    def run_private(self, run: dict[str, Any]) -> bool: ...


class RunResult(BaseModel):
    """The canonical result of a run: the A2A ``result`` artifact, ``proctor run --json``,
    ``proctor show --json``. Everything, explanations included: whoever hands it out applies
    :func:`evaluator_agent.results.disclosure.disclose_result` to :meth:`as_dict` first."""

    run_id: str
    status: RunStatus
    target: TargetRef
    labelset: LabelsetRef
    proctor: ProctorRef
    summary: RunSummary
    investigations: list[InvestigationEntry]

    @classmethod
    def from_store(cls, store: RunSource, run_id: str) -> RunResult:
        """The result as stored: the summary stored when the run ended (computed from the rows
        while it runs), with the changes against the target's previous run."""
        run = store.get_run(run_id)
        if run is None:
            raise KeyError(run_id)
        rows = store.investigations(run_id)
        target = (run.get("manifest") or {}).get("target") or {}
        summary = store.run_summary(run, rows)
        return cls(
            run_id=run_id,
            status=RunStatus(run["status"]),
            target=TargetRef(name=target.get("name", ""), version=target.get("version", ""), url=target.get("url", "")),
            labelset=LabelsetRef(name=run["labelset"], hash=run["labelset_hash"] or "", private=store.run_private(run)),
            proctor=ProctorRef(version=run["proctor_version"] or "", git_rev=run["git_rev"] or ""),
            summary=RunSummary.model_validate(summary),
            investigations=[InvestigationEntry.of(r) for r in rows],
        )

    def as_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

