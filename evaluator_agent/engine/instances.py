"""Instances of a family, as the engine sees them: label sets drawn fresh from their recipes.

A label set whose recipe file exists is a *family*. A request's ``instances`` says which worlds
it evaluates: ``"stored"`` (the label files, as always), ``"fresh"`` (a new draw seed) or a draw
seed S (a replay of that draw). For draw seed S the instance of recipe i is that recipe with a
seed derived from (set, S, i); its label id is opaque and known before its world exists
(:class:`PendingLabel`), so a shard slices a draw and a manifest names its labels before anything
is generated. Only the instances a shard runs are generated, ahead of the investigations that
need them (:class:`InstanceFeed`).

The engine cannot import the generator (worldgen imports the engine): whoever can (the CLI for
``proctor run`` and ``proctor serve``, tests) hands an :class:`InstanceSource` in, per call or once
per process (:func:`install`). :class:`evaluator_agent.worldgen.fresh.FreshInstances` is the one
implementation.

A ``"fresh"`` request with a run id draws its seed from the run id, so every shard (and every
retry) of one run draws the same instances; without one the seed is random.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from evaluator_agent.core.labels import Label, LabelSet, LabelSetInfo
from evaluator_agent.core.records import RequestError

SEED_LIMIT = 2**63  # draw seeds are integers in [0, SEED_LIMIT)


@dataclass(frozen=True)
class Family:
    """A label set's recipe file: what a draw is drawn from."""

    name: str
    description: str
    version: str
    private: bool  # its instances' label set is private (disclosure.py)
    recipes: str  # the recipe file's name
    recipes_hash: str  # sha256 of its bytes
    size: int  # recipes in the file
    # stored label id -> recipe index, for the labels of the stored set of that name that were
    # generated from these recipes (their id is the recipe's): comparisons pair them by recipe
    stored: Mapping[str, int] = field(default_factory=dict)
    directory: Path | None = None  # where its instances' worlds are written (the fresh-world cache)


@dataclass(frozen=True)
class PendingLabel:
    """An instance before its world exists: its label id, recipe index and derived seed."""

    id: str
    recipe: int
    seed: int


class InstanceFeed(Protocol):
    """The instances of one run, generated ahead of the investigations that need them."""

    async def label(self, label_id: str) -> Label:
        """The instance's label once its worlds are written (and pinned until :meth:`done`)."""

    def done(self, label_id: str) -> None:
        """One of its investigations (uses) is over; its worlds are unpinned after the last."""

    async def aclose(self) -> None:
        """Stop generating; unpin what is still pinned."""


class InstanceSource(Protocol):
    def family(self, name: str) -> Family | None:
        """The family of that name, or None when the set has no recipe file."""

    def plan(self, family: Family, seed: int) -> list[PendingLabel]:
        """Every recipe's instance of draw ``seed``, in recipe order; nothing is generated."""

    def feed(self, family: Family, seed: int, items: Sequence[PendingLabel], *, noise_free: bool,
             uses: Mapping[str, int], ahead: int) -> InstanceFeed:
        """Generate ``items`` in order, at most ``ahead`` beyond those asked for; ``uses``: how many
        investigations each one serves (its worlds stay pinned until as many :meth:`InstanceFeed.done`)."""


_installed: list[InstanceSource] = []


def install(source: InstanceSource | None) -> None:
    """The process's instance source (None: none), used when a call names none."""
    _installed[:] = [source] if source is not None else []


def installed() -> InstanceSource | None:
    return _installed[0] if _installed else None


@dataclass
class Draw:
    """One draw of a family for one request: its seed and the instances the request asks for."""

    source: InstanceSource
    family: Family
    seed: int
    mode: str  # "fresh" (the seed was drawn) or "seed" (the request gave it)
    items: list[PendingLabel]

    def manifest(self) -> dict[str, Any]:
        """The run manifest's ``instances``: enough to draw the same instances again (``--instances SEED``)."""
        return {
            "mode": self.mode,
            "seed": self.seed,
            "recipes": {"file": self.family.recipes, "hash": self.family.recipes_hash},
            "items": {it.id: {"recipe": it.recipe, "seed": it.seed} for it in self.items},
            "stored": dict(self.family.stored),
        }


class DrawnSet(LabelSet):
    """A family's draw as a label set: its labels are :class:`PendingLabel` until generated."""

    def __init__(self, draw: Draw):
        fam = draw.family
        info = LabelSetInfo(name=fam.name, description=fam.description, version=fam.version, private=fam.private)
        digest = hashlib.sha256(f"instances\0{fam.name}\0{fam.recipes_hash}\0{draw.seed}".encode()).hexdigest()
        super().__init__(info, list(draw.items), digest, None)
        self.draw = draw


def draw_seed(instances: str | int, run_id: str | None) -> tuple[str, int]:
    """(mode, seed) of a request's ``instances`` (not "stored")."""
    if isinstance(instances, int):
        return "seed", instances
    if run_id:  # every shard and retry of a run draws the same instances
        return "fresh", int.from_bytes(hashlib.sha256(b"fresh\0" + run_id.encode()).digest()[:6], "big")
    return "fresh", secrets.randbits(48)


def select_instances(labelset: str, instances: str | int, run_id: str | None, labels: list[str] | None,
                     source: InstanceSource | None = None) -> DrawnSet:
    """The draw a request asks for; RequestError when the set is no family or a label is not in the draw."""
    source = source or installed()
    if source is None:
        raise RequestError(f"instances {instances!r}: this proctor does not generate instances here; "
                           "ask for the stored labels (instances 'stored')")
    fam = source.family(labelset)
    if fam is None:
        raise RequestError(f"instances {instances!r}: label set {labelset!r} is not a family (it has no recipe file "
                           f"{labelset}.json in $PROCTOR_RECIPES or environments/recipes), so it has no instances "
                           "to draw; ask for its stored labels (instances 'stored')")
    mode, seed = draw_seed(instances, run_id)
    items = source.plan(fam, seed)
    if labels:
        by_id = {it.id: it for it in items}
        missing = [x for x in labels if x not in by_id]
        if missing:
            raise RequestError(f"label {missing[0]!r} is not an instance of {labelset!r} draw {seed}")
        items = [by_id[x] for x in dict.fromkeys(labels)]
    return DrawnSet(Draw(source, fam, seed, mode, items))
