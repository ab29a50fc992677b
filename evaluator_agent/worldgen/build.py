"""Putting a world together: recipe -> (snapshot dict, label); label sets on disk."""

from __future__ import annotations

import json
import random
from operator import itemgetter
from pathlib import Path
from typing import Any

from evaluator_agent.core.labels import Label, dump_label, project_root
from evaluator_agent.telemetry.world import (
    WorldSnapshot,
    canonical_bytes,
    content_hash,
    write_snapshot,
)
from evaluator_agent.worldgen.baseline import init_profiles
from evaluator_agent.worldgen.emit import render_logs, render_metrics
from evaluator_agent.worldgen.labeling import make_label
from evaluator_agent.worldgen.mechanisms import REGISTRY, Plan
from evaluator_agent.worldgen.monitors import build_monitors
from evaluator_agent.worldgen.noise import apply_noise
from evaluator_agent.worldgen.postmortems import story
from evaluator_agent.worldgen.recipe import Recipe, load_recipes
from evaluator_agent.worldgen.shadows import add_shadows
from evaluator_agent.worldgen.telemetry import MIN, Clock, World
from evaluator_agent.worldgen.topology import CHAIN_ROLES, Topo, build_topology
from evaluator_agent.worldgen.traces import render_traces


class GenerationError(ValueError):
    """A recipe that cannot be realised (no entity of the needed shape in any candidate topology)."""


def _topology(recipe: Recipe) -> tuple[Topo, list[str]]:
    mech = REGISTRY.get(recipe.mechanism)
    if mech is None:
        raise GenerationError(
            f"mechanism {recipe.mechanism!r} has no generator yet; available: {', '.join(sorted(REGISTRY))}"
        )
    st = story(recipe.postmortem)
    lo, hi = st.chain if st and st.chain else (mech.min_chain, mech.max_chain)
    lo, hi = max(lo, mech.min_chain), min(hi, mech.max_chain)
    want = max(lo, min(hi, recipe.chain_length))
    pick = random.Random(f"{recipe.seed}|chain")
    for length in range(want, lo - 1, -1):
        for attempt in range(40):
            topo = build_topology(
                random.Random(f"{recipe.seed}|topology|{length}|{attempt}"), recipe.n_services
            )
            if st and st.culprit:  # the postmortem says where it started
                chains = [
                    ch
                    for n in topo.names()
                    if st.culprit(topo, n)
                    for ch in topo.chains(n, length)
                    if topo.role(ch[-1]) in CHAIN_ROLES
                ]
            else:
                chains = mech.chains(topo, length)
            if chains:
                # consumers at the end of a chain are rare in the graph; give them a fair share
                # of pages so a lag or throughput page is no sign of a consumer's own fault
                ending = [ch for ch in chains if topo.role(ch[-1]) == "worker"]
                if ending and len(ending) < len(chains) and pick.random() < 0.25:
                    chains = ending
                # every candidate culprit as likely as any other, however many chains it
                # heads: no service is a usual suspect across the set
                culprit = pick.choice(sorted({ch[0] for ch in chains}))
                return topo, pick.choice(sorted(ch for ch in chains if ch[0] == culprit))
    raise GenerationError(f"no topology of {recipe.n_services} services fits {recipe.mechanism}")


def _sample_away(w: World, plan: Plan) -> None:
    """Incomplete telemetry: keep about one in twelve of the culprit's logs (log sampling)."""
    c = plan.culprit
    rng = random.Random(f"{plan.recipe.seed}|sampled")
    w.logs = [r for r in w.logs if r["service"] != c or rng.random() < 1 / 12]
    plan.evidence = [
        e
        for e in plan.evidence
        if not (
            e["tool"] == "search_logs" and f"service:{c} " in e["arguments"].get("query", "") + " "
        )
    ]


def build_world(recipe: Recipe) -> tuple[dict[str, Any], Plan, World, dict[str, Any]]:
    """Generate one variant (``recipe.noise`` decides which); returns (snapshot, plan, world state, paging monitor)."""
    topo, chain = _topology(recipe)
    mech = REGISTRY[recipe.mechanism]
    irng = random.Random(f"{recipe.seed}|incident")
    fired = int(recipe.fired_at.timestamp())
    end = -(-(fired + irng.randint(240, 540)) // MIN) * MIN
    start = end - int(recipe.window_hours * 3600) // MIN * MIN
    w = World(recipe.seed, recipe.world_id(), Clock(start, end), topo, recipe.noise)
    init_profiles(w)
    plan = Plan(
        recipe=recipe,
        mechanism=recipe.mechanism,
        fired_at=fired,
        end=end,
        culprit=chain[0],
        chain=list(chain),
        monitor_kind=mech.monitor_kind,
    )
    mech.schedule(plan, irng)
    mech.apply(w, plan, irng)
    if recipe.noise != "off":
        srng = random.Random(f"{recipe.seed}|shadows")
        add_shadows(w, plan, srng, srng.randint(4, 5) if recipe.noise == "high" else srng.randint(3, 4))
    apply_noise(w, plan, random.Random(f"{recipe.seed}|noise"))
    totals = render_metrics(w)
    render_logs(w, totals)
    if recipe.quiet_culprit and plan.culprit:
        _sample_away(w, plan)
    render_traces(w)
    monitor_id = build_monitors(w, plan)
    monitor = next(m for m in w.monitors if m["id"] == monitor_id)
    snapshot = {
        "schema_version": 1,
        "world_id": w.world_id,
        "env": "prod",
        "start": start,
        "end": end,
        "topology": topo.to_dict(),
        "metrics": [w.metrics[k] for k in sorted(w.metrics)],
        "logs": sorted(w.logs, key=itemgetter("ts", "service", "message")),
        "spans": sorted(w.spans, key=itemgetter("start", "trace_id", "span_id")),
        "events": sorted(w.events, key=itemgetter("ts", "id")),
        "monitors": sorted(w.monitors, key=lambda m: m["id"]),
    }
    return snapshot, plan, w, monitor


def generate_pair(recipe: Recipe) -> tuple[dict[str, Any], dict[str, Any], Label]:
    """The world, the same world without noise, and the label that points at both."""
    world, plan, w, monitor = build_world(recipe)
    clean = (
        world
        if recipe.noise == "off"
        else build_world(recipe.model_copy(update={"noise": "off"}))[0]
    )
    label = make_label(
        recipe,
        plan,
        w,
        monitor,
        content_hash(canonical_bytes(world)),
        content_hash(canonical_bytes(clean)),
    )
    return world, clean, label


def generate(recipe: Recipe) -> tuple[dict[str, Any], Label]:
    """Deterministic world snapshot (``world.py`` format) and its label for one recipe."""
    world, _, label = generate_pair(recipe)
    return world, label


def build_labelset(
    name: str,
    recipes: list[Recipe],
    root: Path | None = None,
    description: str = "",
    version: str = "1",
    validate: bool = True,
    jobs: int = 1,
) -> list[Label]:
    """Write ``labelsets/<name>/`` (labelset.json + one file per label) and the snapshots under ``root``."""
    root = Path(root) if root is not None else project_root()
    folder = root / "labelsets" / name
    snaps = root / "environments" / "snapshots"
    folder.mkdir(parents=True, exist_ok=True)
    labels: list[Label] = []
    if jobs > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(max_workers=jobs) as ex:
            pairs = list(ex.map(generate_pair, recipes, chunksize=2))
    else:
        pairs = map(generate_pair, recipes)
    for world, clean, label in pairs:
        if validate:
            WorldSnapshot.model_validate(world)
        assert write_snapshot(world, snaps) == label.world.snapshot
        if label.world.snapshot_noise_free:
            assert write_snapshot(clean, snaps) == label.world.snapshot_noise_free
        (folder / f"{label.id}.json").write_text(dump_label(label))
        labels.append(label)
    ids = {lb.id for lb in labels}
    for old in folder.glob("lbl_*.json"):
        if old.stem not in ids:
            old.unlink()
    info = {"name": name, "description": description, "version": version}
    (folder / "labelset.json").write_text(json.dumps(info, indent=2) + "\n")
    return labels


def build_from_file(path: Path, root: Path | None = None, jobs: int = 1) -> list[Label]:
    rf = load_recipes(path)
    return build_labelset(rf.name, rf.recipes, root, rf.description, rf.version, jobs=jobs)


def build_smoke(root: Path | None = None) -> list[Label]:
    """Regenerate ``labelsets/smoke`` from ``environments/recipes/smoke.json``."""
    root = Path(root) if root is not None else project_root()
    return build_from_file(project_root() / "environments" / "recipes" / "smoke.json", root)


def gc_snapshots(root: Path | None = None, dry_run: bool = False) -> list[Path]:
    """Delete snapshots that no label of any label set under ``root`` points at; returns them."""
    root = Path(root) if root is not None else project_root()
    used: set[str] = set()
    for f in (root / "labelsets").glob("*/lbl_*.json"):
        world = json.loads(f.read_text()).get("world", {})
        used |= {world.get("snapshot"), world.get("snapshot_noise_free")} - {None}
    stale = [
        p
        for p in sorted((root / "environments" / "snapshots").glob("*.json.gz"))
        if p.name[:-8] not in used
    ]
    if not dry_run:
        for p in stale:
            p.unlink()
    return stale
