"""Labels: one incident scenario each, grouped into label sets under ``labelsets/<set>/``.

A label set folder holds ``labelset.json`` (name, description, version) and one
``<label id>.json`` per label. A label points at its world snapshot by content hash; the
snapshot file lives in ``environments/snapshots/<hash>.json.gz``. Ground truth stays on the
proctor's side: nothing in this module is ever sent to a target.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from evaluator_agent.core.vocab import (
    DIFFICULTY_TIERS,
    FAILURE_PATTERNS,
    MECHANISM_INFO,
    MONITOR_TYPES,
    SEGMENTS,
    SIGNAL_KINDS,
    SYSTEM_LEVELS,
)

LABEL_SCHEMA_VERSION = 1
LABEL_ID_RE = re.compile(r"^lbl_[0-9a-f]{10}$")


def project_root() -> Path:
    """Where labelsets/ and environments/ live: $PROCTOR_HOME, else the source checkout."""
    env = os.environ.get("PROCTOR_HOME")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2]


def labelsets_dir() -> Path:
    return Path(os.environ.get("PROCTOR_LABELSETS", project_root() / "labelsets"))


def snapshots_dir() -> Path:
    return Path(os.environ.get("PROCTOR_SNAPSHOTS", project_root() / "environments" / "snapshots"))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _one_of(value: str, allowed: tuple[str, ...], what: str) -> str:
    if value not in allowed:
        raise ValueError(f"unknown {what} {value!r}; expected one of {', '.join(allowed)}")
    return value


class Provenance(_Strict):
    kind: Literal["synthetic", "captured", "feedback"] = "synthetic"
    source: str = Field("", description="Generator recipe, incident ticket or feedback reference")
    validated_by: str | None = None
    postmortem: str | None = Field(None, description="Public postmortem this scenario recreates, if any")


class Taxonomy(_Strict):
    segment: str
    technologies: list[str] = Field(default_factory=list)
    problem_category: str
    mechanism: str
    system_level: str
    failure_pattern: str
    monitor_type: str
    tags: list[str] = Field(default_factory=list)

    @field_validator("segment")
    @classmethod
    def _segment(cls, v: str) -> str:
        return _one_of(v, SEGMENTS, "segment")

    @field_validator("mechanism")
    @classmethod
    def _mechanism(cls, v: str) -> str:
        return _one_of(v, tuple(MECHANISM_INFO), "mechanism")

    @field_validator("system_level")
    @classmethod
    def _level(cls, v: str) -> str:
        return _one_of(v, SYSTEM_LEVELS, "system level")

    @field_validator("failure_pattern")
    @classmethod
    def _pattern(cls, v: str) -> str:
        return _one_of(v, FAILURE_PATTERNS, "failure pattern")

    @field_validator("monitor_type")
    @classmethod
    def _monitor(cls, v: str) -> str:
        return _one_of(v, MONITOR_TYPES, "monitor type")


class DifficultyFactors(_Strict):
    chain_length: int = Field(ge=0)
    red_herrings: int = Field(ge=0)
    services: int = Field(ge=1)
    signal_kinds: list[str] = Field(default_factory=list)
    time_offset_s: int = Field(0, ge=0, description="How long the cause precedes the first symptom")

    @field_validator("signal_kinds")
    @classmethod
    def _kinds(cls, v: list[str]) -> list[str]:
        for k in v:
            _one_of(k, SIGNAL_KINDS, "signal kind")
        return v


class Difficulty(_Strict):
    tier: str
    factors: DifficultyFactors
    empirical: float | None = Field(None, description="IRT difficulty once runs exist")

    @field_validator("tier")
    @classmethod
    def _tier(cls, v: str) -> str:
        return _one_of(v, DIFFICULTY_TIERS, "difficulty tier")


class Trigger(_Strict):
    monitor_id: int | None = Field(None, description="Monitor in the snapshot that paged, if any")
    title: str
    fired_at: datetime


class TaskBudget(_Strict):
    max_turns: int = Field(30, ge=1, le=500)
    timeout_s: float = Field(300, gt=0, le=3600)


class Task(_Strict):
    trigger: Trigger
    prompt: str
    budget: TaskBudget = Field(default_factory=TaskBudget)


class Window(_Strict):
    start: datetime
    end: datetime

    @model_validator(mode="after")
    def _ordered(self) -> Window:
        if self.end <= self.start:
            raise ValueError("window end must be after its start")
        return self


class WorldRef(_Strict):
    snapshot: str = Field(description="sha256 content hash of the world snapshot (hex, 64 chars)")
    snapshot_noise_free: str | None = Field(None, description="Hash of the same world without noise, for ablations")
    incident_window: Window
    baseline_window: Window

    @field_validator("snapshot", "snapshot_noise_free")
    @classmethod
    def _hash(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"[0-9a-f]{64}", v):
            raise ValueError("snapshot must be a 64-char lowercase sha256 hex digest")
        return v


class RootCause(_Strict):
    entity: str
    aliases: list[str] = Field(default_factory=list, description="Other names that count as the same entity")
    kind: str = Field("service", description="service | host | cluster | zone | external | change")


class KeyEvidence(_Strict):
    """A query that, run through the real tools, must return ``expect`` somewhere in its result."""

    tool: str
    arguments: dict[str, Any]
    expect: str = Field(description="Substring the tool result must contain (case-insensitive)")
    description: str = ""


class PartialCredit(_Strict):
    entity: str
    credit: float = Field(gt=0, lt=1)
    why: str = ""


class RedHerring(_Strict):
    entity: str
    why: str = Field("", description="What makes it look guilty: same team, same platform, coincident deploy ...")


class TriggeringChange(_Strict):
    kind: str = Field(description="deploy | config | flag | migration | infrastructure | external | none")
    entity: str | None = None
    description: str = ""
    at: datetime | None = None


class GroundTruth(_Strict):
    no_fault: bool = False
    root_causes: list[RootCause] = Field(default_factory=list)
    mechanism: str
    triggering_change: TriggeringChange | None = None
    onset: datetime | None = None
    onset_tolerance_s: int = Field(300, ge=0)
    causal_chain: list[str] = Field(default_factory=list, description="Entities from the root cause to the alerting symptom")
    first_symptom: str | None = None
    key_evidence: list[KeyEvidence] = Field(default_factory=list)
    partial_credit: list[PartialCredit] = Field(default_factory=list)
    must_not_blame: list[RedHerring] = Field(default_factory=list)

    @field_validator("mechanism")
    @classmethod
    def _mechanism(cls, v: str) -> str:
        return _one_of(v, tuple(MECHANISM_INFO), "mechanism")

    @model_validator(mode="after")
    def _consistent(self) -> GroundTruth:
        if self.no_fault:
            if self.root_causes:
                raise ValueError("a no-fault label has no root causes")
            if self.mechanism != "no_fault":
                raise ValueError("a no-fault label has mechanism no_fault")
        else:
            if not self.root_causes:
                raise ValueError("a fault label needs at least one root cause")
            if self.onset is None:
                raise ValueError("a fault label needs an onset")
        return self


class Rubric(_Strict):
    weights: dict[str, float] | None = Field(None, description="Per-dimension weights; None means the product defaults")


class Label(_Strict):
    id: str
    schema_version: int = LABEL_SCHEMA_VERSION
    status: Literal["draft", "validated", "retired"] = "validated"
    provenance: Provenance = Field(default_factory=Provenance)
    split: Literal["public", "heldout"] = "public"
    family: str | None = Field(None, description="Scenario family; labels of one family are clustered in statistics")
    taxonomy: Taxonomy
    difficulty: Difficulty
    task: Task
    world: WorldRef
    ground_truth: GroundTruth
    rubric: Rubric = Field(default_factory=Rubric)

    @field_validator("id")
    @classmethod
    def _opaque_id(cls, v: str) -> str:
        if not LABEL_ID_RE.match(v):
            raise ValueError("label id must be opaque: 'lbl_' followed by 10 lowercase hex digits")
        return v

    @model_validator(mode="after")
    def _mechanism_matches(self) -> Label:
        if self.taxonomy.mechanism != self.ground_truth.mechanism:
            raise ValueError("taxonomy.mechanism and ground_truth.mechanism differ")
        if self.ground_truth.no_fault != (self.taxonomy.failure_pattern == "no_fault"):
            raise ValueError("failure_pattern no_fault must match ground_truth.no_fault")
        return self


class LabelSetInfo(_Strict):
    name: str
    description: str = ""
    version: str = "1"
    private: bool = Field(False, description="Its ground truth is never disclosed: results of its runs are scores only, "
                          "whatever the disclosure policy (see evaluator_agent/results/disclosure.py)")


class LabelError(ValueError):
    """A label set or label file that cannot be used; the message names the file and the problem."""


class LabelSet:
    """A loaded label set: its info, its labels in id order, and a content hash."""

    def __init__(self, info: LabelSetInfo, labels: list[Label], content_hash: str, path: Path | None):
        self.info = info
        self.labels = labels
        self.content_hash = content_hash
        self.path = path
        self._by_id = {lb.id: lb for lb in labels}

    @property
    def name(self) -> str:
        return self.info.name

    def get(self, label_id: str) -> Label:
        try:
            return self._by_id[label_id]
        except KeyError:
            raise LabelError(f"label {label_id!r} is not in label set {self.name!r}") from None

    def select(self, ids: list[str] | None) -> list[Label]:
        if not ids:
            return [lb for lb in self.labels if lb.status != "retired"]
        return [self.get(i) for i in ids]


def available_labelsets(root: Path | None = None) -> list[str]:
    root = root or labelsets_dir()
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / "labelset.json").is_file())


_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")


def load_labelset(name: str, root: Path | None = None) -> LabelSet:
    """Load and validate every label of a set; raises LabelError naming the first bad file."""
    root = root or labelsets_dir()
    if not _NAME_RE.match(name):
        raise LabelError(f"invalid label set name {name!r}")
    folder = root / name
    return _load_labelset_cached(str(folder.resolve()), _folder_stamp(folder))


def _folder_stamp(folder: Path) -> tuple[tuple[str, int, int], ...]:
    if not folder.is_dir():
        raise LabelError(
            f"unknown label set {folder.name!r}; available: {', '.join(available_labelsets(folder.parent)) or 'none'}"
        )
    return tuple(sorted((p.name, p.stat().st_mtime_ns, p.stat().st_size) for p in folder.glob("*.json")))


@lru_cache(maxsize=32)
def _load_labelset_cached(folder_s: str, _stamp: tuple[tuple[str, int, int], ...]) -> LabelSet:
    folder = Path(folder_s)
    info_path = folder / "labelset.json"
    if not info_path.is_file():
        raise LabelError(f"{info_path}: missing labelset.json")
    digest = hashlib.sha256()
    try:
        info = LabelSetInfo.model_validate_json(info_path.read_bytes())
    except ValidationError as e:
        raise LabelError(f"{info_path}: {e}") from e
    labels: list[Label] = []
    for p in sorted(folder.glob("*.json")):
        if p.name == "labelset.json":
            continue
        raw = p.read_bytes()
        try:
            label = Label.model_validate_json(raw)
        except ValidationError as e:
            raise LabelError(f"{p}: invalid label: {e}") from e
        if p.stem != label.id:
            raise LabelError(f"{p}: file name must be the label id ({label.id}.json)")
        digest.update(label.id.encode() + b"\0" + hashlib.sha256(raw).digest())
        labels.append(label)
    if not labels:
        raise LabelError(f"{folder}: label set has no labels")
    return LabelSet(info, labels, digest.hexdigest(), folder)


def label_json_schema() -> dict[str, Any]:
    return Label.model_json_schema()


def dump_label(label: Label) -> str:
    """Canonical file text of a label (stable key order, for reproducible label files)."""
    return json.dumps(label.model_dump(mode="json", exclude_none=True), indent=2, sort_keys=False) + "\n"
