"""Recipes: the few knobs that fully determine one synthetic incident world and its label.

A recipe plus its seed is the whole input of :func:`evaluator_agent.worldgen.generate`;
the same recipe always yields byte-identical snapshots and the same label. Recipe files
live in ``environments/recipes/<set>.json``::

    {"name": "smoke", "description": "...", "recipes": [{"mechanism": "bad_release", "seed": 7, ...}]}
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from evaluator_agent.core.vocab import MECHANISM_INFO

Noise = Literal["off", "normal", "high"]


class Recipe(BaseModel):
    """One synthetic incident: mechanism, seed, size, noise and difficulty knobs."""

    model_config = ConfigDict(extra="forbid")

    mechanism: str = Field(
        description="Failure mechanism from the closed vocabulary (no_fault for a benign page)"
    )
    seed: int = Field(
        ge=0, description="Seed of every random choice; same recipe and seed, same world"
    )
    n_services: int = Field(
        25, ge=20, le=150, description="Entities in the service catalog of the world"
    )
    noise: Noise = Field(
        "normal",
        description="off: only the incident; normal/high: unrelated errors, spikes, routine changes",
    )
    chain_length: int = Field(
        2, ge=1, le=5, description="Entities from the culprit to the service whose monitor paged"
    )
    red_herrings: int = Field(
        1,
        ge=0,
        le=6,
        description="Deliberate decoys: coincident deploys, look-alike names, error bursts",
    )
    time_offset_s: int = Field(
        0, ge=0, le=7200, description="How long the triggering change precedes the first failure"
    )
    fired_at: datetime = Field(
        datetime(2026, 3, 2, 14, 7, 0, tzinfo=UTC),
        description="When the paging monitor fired (UTC)",
    )
    window_hours: float = Field(3.0, ge=2.0, le=4.0, description="Telemetry retained before 'now'")
    split: Literal["public", "heldout"] = "public"
    # Opt-in knobs (left out of the canonical form at their defaults, so older recipe files such
    # as smoke keep their label ids, world ids and byte-identical snapshots).
    early_herrings: int = Field(
        0,
        ge=0,
        le=3,
        description="Decoys that changed and degraded BEFORE the culprit: a deploy on a dependency of "
        "the paged service followed by a sustained latency rise that starts earlier than the incident",
    )
    transient_bursts: int = Field(
        0,
        ge=0,
        le=3,
        description="Noise: busy services that threw errors for minutes during a node drain in the "
        "hour before the page and recovered long before it",
    )
    quiet_culprit: bool = Field(
        False,
        description="Incomplete telemetry: the culprit's logs are sampled away (errors only show in "
        "its callers' logs and its metrics)",
    )
    postmortem: str | None = Field(
        None,
        description="Id of the public postmortem this recipe recreates (worldgen/postmortems.py): "
        "its causal story shapes the world, and its title goes to the label's provenance",
    )
    segment: str | None = Field(
        None,
        description="Taxonomy segment override; 'auto' for a no-fault control takes the paged "
        "service's technology",
    )
    tags: list[str] = Field(default_factory=list, description="Extra taxonomy tags")

    @field_validator("mechanism")
    @classmethod
    def _known(cls, v: str) -> str:
        if v not in MECHANISM_INFO:
            raise ValueError(f"unknown mechanism {v!r}")
        return v

    @model_validator(mode="after")
    def _story(self) -> Recipe:
        if self.postmortem is not None:
            from evaluator_agent.worldgen.postmortems import story

            s = story(self.postmortem)
            assert s is not None
            if s.mechanism != self.mechanism:
                raise ValueError(
                    f"postmortem {self.postmortem!r} recreates a {s.mechanism} incident, not {self.mechanism}"
                )
        return self

    @field_validator("fired_at")
    @classmethod
    def _utc(cls, v: datetime) -> datetime:
        return v.replace(tzinfo=UTC) if v.tzinfo is None else v.astimezone(UTC)

    def canonical(self) -> str:
        d = self.model_dump(mode="json")
        for k, default in _OPT_IN.items():
            if d.get(k) == default:
                d.pop(k, None)
        return json.dumps(d, sort_keys=True, separators=(",", ":"))

    def digest(self) -> str:
        return hashlib.sha256(self.canonical().encode()).hexdigest()

    def label_id(self) -> str:
        """Opaque label id: a hash of the whole recipe, never the mechanism in clear."""
        return "lbl_" + hashlib.sha256(b"label\0" + self.canonical().encode()).hexdigest()[:10]

    def world_id(self) -> str:
        return "w_" + hashlib.sha256(b"world\0" + self.canonical().encode()).hexdigest()[:12]


_OPT_IN: dict[str, object] = {
    "early_herrings": 0,
    "transient_bursts": 0,
    "quiet_culprit": False,
    "postmortem": None,
    "segment": None,
    "tags": [],
}


class RecipeFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    version: str = "1"
    recipes: list[Recipe]


def load_recipes(path: Path) -> RecipeFile:
    return RecipeFile.model_validate_json(Path(path).read_bytes())
