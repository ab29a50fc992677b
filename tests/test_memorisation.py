"""Fresh instances cannot be memorised (issue 16): a target that learnt every stored core world by
heart (``mock_agents/memoriser.py``: it recognises a world by its page, its monitor, the time it
fired or its service catalog, and answers the stored diagnosis) passes the stored labels and gains
nothing on a fresh draw of the same recipes, where it is no better than blind (``random_guess``).

Twelve stored core labels (``calibrate.sample_labels``) and draw :data:`SEED` of their recipes,
through the real investigation loop, in-process.

Recognising the *recipe* gains nothing either: ``recipe_memoriser`` identifies a world's recipe
in the public recipe file by the page's weekday and time of day, the number of services and the
window, to know the mechanism, whether it is a no-fault control and the chain length. It passed
about 43% of fresh draws when instances kept those; instances now move their page to any minute
of another week and jitter their size and window (``worldgen/fresh.instance_recipe``), and it
recognises nothing.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from evaluator_agent.core.labels import Label, load_labelset, snapshots_dir
from evaluator_agent.core.protocol import Budget
from evaluator_agent.engine.investigation import investigate
from evaluator_agent.engine.worlds import WorldCache
from evaluator_agent.worldgen.cache import FreshCache
from evaluator_agent.worldgen.calibrate import sample_labels
from evaluator_agent.worldgen.fresh import FreshInstances, draw
from mock_agents.inprocess import ROSTER
from mock_agents.memoriser import (
    KEYS,
    MEMORISED_SET,
    build_table,
    fingerprints,
    memory,
    snapshot_services,
)

SEED = 16
SAMPLE = 12
POLICIES = ("memoriser", "random_guess")


#: how the memorisers' diagnoses begin when they recognised a world (memoriser) or a recipe
HITS = ("Memorised", "No fault: Memorised", "The recipe of", "No fault: the recipe of")


async def _outcomes(labels: list[Label], fresh: Path | None, policies: tuple[str, ...] = POLICIES) -> dict[str, list[dict[str, Any]]]:
    worlds = WorldCache(capacity=2, fresh=fresh)
    out: dict[str, list[dict[str, Any]]] = {p: [] for p in policies}
    for p in policies:
        target = ROSTER.make_target(p)
        for lb in labels:
            res = await investigate(lb, 1, target, worlds, Budget())
            summary = str((res.diagnosis or {}).get("summary") or "")
            out[p].append({"label": lb.id, "passed": res.passed, "hit": summary.startswith(HITS),
                           "error": res.error_kind, "diagnosis": res.diagnosis})
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    stored = sample_labels(load_labelset(MEMORISED_SET).labels, SAMPLE)
    index = FreshInstances().family(MEMORISED_SET).stored
    cache = FreshCache(tmp_path_factory.mktemp("memorisation"))
    fresh = draw(MEMORISED_SET, SEED, indices=[index[lb.id] for lb in stored], cache=cache, jobs=2)
    return {
        "stored": stored, "fresh": fresh, "directory": cache.directory,
        "on_stored": asyncio.run(_outcomes(stored, None)),
        "on_fresh": asyncio.run(_outcomes(fresh, cache.directory, (*POLICIES, "recipe_memoriser"))),
    }


def test_the_memoriser_is_an_adversary_known_by_name_only() -> None:
    from mock_agents.policies import POLICY_NAMES, pool_names

    for name in ("memoriser", "recipe_memoriser"):
        assert ROSTER.make_target(name).info.name == name
        assert ROSTER.kind_of(name) == "shortcut"
        # in no list: not a reference agent, not in the audit's battery, not in the tier-fitting pool
        assert name not in (*ROSTER.references, *ROSTER.shortcuts, *ROSTER.pool, *POLICY_NAMES, *pool_names())


def test_its_memory_is_cached_and_names_each_stored_world() -> None:
    table = memory()
    assert table == build_table() and table is memory()
    ls = load_labelset(MEMORISED_SET)
    assert set(table["answers"]) == {lb.id for lb in ls.labels}
    # every stored world is recognised by its page alone (the other keys are extra ways in)
    assert len(table["keys"]["page"]) == len(ls.labels)
    for k in KEYS:
        assert len(set(table["keys"][k].values())) == len(table["keys"][k]), k


def test_it_passes_the_stored_labels_it_memorised(runs: dict[str, Any]) -> None:
    mem = runs["on_stored"]["memoriser"]
    assert all(r["hit"] for r in mem) and not any(r["error"] for r in mem)
    assert sum(r["passed"] for r in mem) >= SAMPLE - 1, [r["label"] for r in mem if not r["passed"]]
    assert sum(r["passed"] for r in runs["on_stored"]["random_guess"]) <= 1


def test_no_fresh_instance_shares_a_fingerprint_with_a_stored_world(runs: dict[str, Any]) -> None:
    table = memory()
    every = {k: set() for k in KEYS}  # every stored value, also those that name two worlds
    for lb in load_labelset(MEMORISED_SET).labels:
        t = lb.task.trigger
        for k, v in fingerprints(t.title, t.fired_at, t.monitor_id, snapshot_services(lb.world.snapshot, snapshots_dir())).items():
            every[k].add(v)
    assert all(set(table["keys"][k]) <= every[k] for k in KEYS)
    for inst in runs["fresh"]:
        t = inst.task.trigger
        shown = fingerprints(t.title, t.fired_at, t.monitor_id, snapshot_services(inst.world.snapshot, runs["directory"]))
        assert set(shown) == set(KEYS)
        assert not [k for k, v in shown.items() if v in every[k]], inst.id


def test_on_a_fresh_draw_it_is_no_better_than_blind(runs: dict[str, Any]) -> None:
    mem, blind = runs["on_fresh"]["memoriser"], runs["on_fresh"]["random_guess"]
    assert not any(r["error"] for r in (*mem, *blind))
    assert not any(r["hit"] for r in mem), "a fresh instance was recognised as a stored world"
    passed, chance = sum(r["passed"] for r in mem), sum(r["passed"] for r in blind)
    assert passed <= chance + 1 and passed <= 1, (passed, chance)
    # on a miss it is blind in the most literal sense: random_guess's own answer
    assert [r["diagnosis"]["root_causes"] for r in mem] == [r["diagnosis"]["root_causes"] for r in blind]


def test_recognising_the_recipe_gains_nothing_on_a_fresh_draw(runs: dict[str, Any]) -> None:
    rec, blind = runs["on_fresh"]["recipe_memoriser"], runs["on_fresh"]["random_guess"]
    assert not any(r["error"] for r in rec)
    assert not any(r.get("hit") for r in rec), "a fresh instance's recipe was recognised"
    assert sum(r["passed"] for r in rec) <= sum(r["passed"] for r in blind) + 1
