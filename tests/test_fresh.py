"""Fresh instances of a family (issue 16): new worlds drawn from a label set's recipes, replayable
by their draw seed, generated ahead in worker processes into a bounded, shared on-disk cache.

Runs go through the real orchestrator with an in-process reference agent (``methodical``), on a
small family of three smoke recipes written to a temporary $PROCTOR_RECIPES directory.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from evaluator_agent.cli.evaluate import _request_from_args
from evaluator_agent.cli.main import build_parser
from evaluator_agent.core.labels import load_labelset, project_root
from evaluator_agent.core.records import RequestError
from evaluator_agent.engine.instances import DrawnSet, install, installed
from evaluator_agent.engine.orchestrator import (
    Prepared,
    execute,
    new_run_id,
    select_labels,
    shard_slice,
)
from evaluator_agent.engine.request import EvaluationRequest, parse_request
from evaluator_agent.engine.worlds import WorldCache
from evaluator_agent.results import disclosure
from evaluator_agent.results.compare import compare_runs
from evaluator_agent.results.runs import frozen_label_meta
from evaluator_agent.results.store import Store
from evaluator_agent.telemetry.world import read_snapshot_bytes
from evaluator_agent.worldgen.cache import FreshCache, _host
from evaluator_agent.worldgen.fresh import FreshInstances, draw

CARD = "http://127.0.0.1:9/{}/.well-known/agent-card.json"
MINI = (0, 5, 6)  # bad_release, consumer_lag, no_fault: the smallest smoke worlds


def _write_families(directory: Path) -> None:
    smoke = json.loads((project_root() / "environments" / "recipes" / "smoke.json").read_text())
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "mini.json").write_text(json.dumps(
        {"name": "mini", "description": "three smoke recipes", "recipes": [smoke["recipes"][i] for i in MINI]}))
    (directory / "hidden.json").write_text(json.dumps(
        {"name": "hidden", "private": True, "recipes": [smoke["recipes"][6]]}))


async def _run(store: Store, source: FreshInstances | None, instances: str | int, *, labelset: str = "mini",
               policy: str = "methodical", run_id: str | None = None, shard: tuple[int, int] | None = None,
               noise: str = "on", labels: list[str] | None = None) -> dict[str, Any]:
    from mock_agents.inprocess import ROSTER

    req = EvaluationRequest(target=CARD.format(policy), labelset=labelset, instances=instances, run_id=run_id,
                            noise=noise, labels=labels)
    ls, chosen = select_labels(req, source)
    prep = Prepared(req, ls, chosen, ROSTER.make_target(policy), run_id or new_run_id())
    out = await execute(prep, store, shard=shard, worlds=WorldCache(capacity=4))
    run = store.get_run(out["run_id"])
    return {"result": out, "run": run, "manifest": run["manifest"], "rows": store.investigations(out["run_id"])}


def _outcomes(rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return sorted((r["label_id"], r["world"], r["score"], r["passed"], r["turns"], r["tool_calls"]) for r in rows)


@pytest.fixture(scope="module")
def family(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Three runs of the mini family: a fresh draw, its replay (in a new cache, by a spawned
    worker process) and another fresh draw (random_guess)."""
    root = tmp_path_factory.mktemp("fresh")
    _write_families(root / "recipes")
    mp = pytest.MonkeyPatch()
    mp.setenv("PROCTOR_RECIPES", str(root / "recipes"))
    store = Store(root / "runs.db")
    first, replay = FreshInstances(root / "cache-a", jobs=0), FreshInstances(root / "cache-b", jobs=1)
    try:
        a = asyncio.run(_run(store, first, "fresh"))
        b = asyncio.run(_run(store, replay, a["manifest"]["instances"]["seed"]))
        c = asyncio.run(_run(store, first, "fresh", policy="random_guess"))
        yield {"root": root, "store": store, "a": a, "b": b, "c": c, "first": first}
    finally:
        replay.close()
        store.close()
        mp.undo()


def test_a_fresh_run_records_its_draw(family: dict[str, Any]) -> None:
    m = family["a"]["manifest"]
    inst = m["instances"]
    assert inst["mode"] == "fresh" and 0 <= inst["seed"] < 2**63
    assert inst["recipes"]["file"] == "mini.json" and len(inst["recipes"]["hash"]) == 64
    assert sorted(v["recipe"] for v in inst["items"].values()) == [0, 1, 2]
    assert set(inst["items"]) == set(m["label_ids"]) == set(m["label_meta"]) == {r["label_id"] for r in family["a"]["rows"]}
    assert m["options"]["instances"] == inst["seed"] and family["a"]["result"]["status"] == "completed"
    # statistics still cluster by mechanism, as for the stored labels
    assert {v["family"] for v in m["label_meta"].values()} == {"synthetic/bad_release", "synthetic/consumer_lag", "synthetic/no_fault"}


def test_two_fresh_draws_share_no_world(family: dict[str, Any]) -> None:
    a, c = family["a"], family["c"]
    assert a["manifest"]["instances"]["seed"] != c["manifest"]["instances"]["seed"]
    assert not {r["world"] for r in a["rows"]} & {r["world"] for r in c["rows"]}
    assert not set(a["manifest"]["label_ids"]) & set(c["manifest"]["label_ids"])


def test_a_replay_by_seed_is_the_same_run(family: dict[str, Any]) -> None:
    a, b = family["a"], family["b"]
    assert b["manifest"]["instances"]["mode"] == "seed"
    assert b["manifest"]["instances"]["items"] == a["manifest"]["instances"]["items"]
    assert b["manifest"]["label_meta"] == a["manifest"]["label_meta"]
    # generated again in another cache, by a worker process: same ids, same worlds, same investigations
    assert _outcomes(b["rows"]) == _outcomes(a["rows"])
    assert not list((family["root"] / "cache-b" / "pins").iterdir())  # every pin released after the run


def test_draw_finds_the_run_s_instances_in_the_cache(family: dict[str, Any]) -> None:
    a = family["a"]
    cache = FreshCache(family["root"] / "cache-a")
    labels = draw("mini", a["manifest"]["instances"]["seed"], cache=cache)
    assert [lb.id for lb in labels] == sorted(a["manifest"]["instances"]["items"], key=lambda i: a["manifest"]["instances"]["items"][i]["recipe"])
    assert {lb.world.snapshot for lb in labels} == {r["world"] for r in a["rows"]}
    assert all(lb.world.snapshot_noise_free is None for lb in labels)  # no twin unless asked for


def test_instances_are_generated_a_bounded_way_ahead(family: dict[str, Any]) -> None:
    source: FreshInstances = family["first"]
    fam = source.family("mini")
    assert fam is not None
    items = source.plan(fam, 424242)

    async def go() -> tuple[int, Any]:
        feed = source.feed(fam, 424242, items, noise_free=False, uses={}, ahead=1)
        try:
            label = await feed.label(items[0].id)
            return len(feed.tasks), label  # the one asked for and one ahead (window 1 + 0 workers), not all three
        finally:
            await feed.aclose()

    started, label = asyncio.run(go())
    assert started == 2 and label.id == items[0].id
    assert FreshCache(source.directory).label_by_id(label.id) == label


def test_compare_of_two_draws_pairs_by_recipe(family: dict[str, Any]) -> None:
    a, c = family["a"], family["c"]
    meta = c["manifest"]["label_meta"]
    by_label = compare_runs(a["rows"], c["rows"], meta)
    assert by_label["paired_by"] == "label" and by_label["n_shared"] == 0
    cmp = compare_runs(a["rows"], c["rows"], meta, base_manifest=a["manifest"], new_manifest=c["manifest"])
    assert cmp["paired_by"] == "recipe" and cmp["n_shared"] == 3 and not cmp["only_in_base"]
    recipe_of = {lid: v["recipe"] for lid, v in {**a["manifest"]["instances"]["items"], **c["manifest"]["instances"]["items"]}.items()}
    for p in cmp["per_label"]:
        assert recipe_of[p["label_id"]] == recipe_of[p["base_label_id"]] == p["recipe"]
    assert cmp["verdict"] in ("regression", "improvement", "inconclusive")


def test_recipe_pairing_keeps_the_regression_verdict() -> None:
    source = FreshInstances(jobs=0)
    fam = source.family("smoke")
    assert fam is not None and len(fam.stored) == 8  # every stored smoke label is its recipe's
    stored = load_labelset("smoke")
    assert {lid for lid in fam.stored} == {lb.id for lb in stored.labels}

    def manifest(seed: int) -> dict[str, Any]:
        drawn = select_labels(EvaluationRequest(target=CARD.format("x"), instances=seed), source)[0]
        assert isinstance(drawn, DrawnSet)
        return {"labelset": {"name": "smoke"}, "instances": drawn.draw.manifest(), "label_ids": [lb.id for lb in drawn.labels]}

    def rows(ids: list[str], passed: bool) -> list[dict[str, Any]]:
        return [{"label_id": i, "attempt": 1, "passed": passed, "score": float(passed), "error_kind": None} for i in ids]

    old, new = manifest(1), manifest(2)
    cmp = compare_runs(rows(old["label_ids"], True), rows(new["label_ids"], False), {}, base_manifest=old, new_manifest=new)
    assert (cmp["paired_by"], cmp["n_shared"], cmp["verdict"], len(cmp["flips"]["pass_to_fail"])) == ("recipe", 8, "regression", 8)
    # a stored run and a fresh run of the same family: stored label of recipe i with instance of recipe i
    base = {"labelset": {"name": "smoke"}}
    cmp = compare_runs(rows([lb.id for lb in stored.labels], True), rows(new["label_ids"], False), {},
                       base_manifest=base, new_manifest=new)
    assert (cmp["paired_by"], cmp["n_shared"], cmp["verdict"]) == ("recipe", 8, "regression")
    assert all(fam.stored[p["base_label_id"]] == new["instances"]["items"][p["label_id"]]["recipe"] for p in cmp["per_label"])
    # another family's run is not paired
    assert compare_runs(rows(old["label_ids"], True), rows(new["label_ids"], False), {}, base_manifest={"labelset": {"name": "core"}},
                        new_manifest=new)["paired_by"] == "label"


def test_a_shard_generates_only_its_slice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write_families(tmp_path / "recipes")
    monkeypatch.setenv("PROCTOR_RECIPES", str(tmp_path / "recipes"))
    runs, made = [], []
    for i in range(2):
        source = FreshInstances(tmp_path / f"cache-{i}", jobs=0)
        store = Store(tmp_path / f"shard-{i}.db")
        try:
            runs.append(asyncio.run(_run(store, source, "fresh", run_id="run_sharded", shard=(i, 2))))
        finally:
            store.close()
        made.append({"lbl_" + p.stem[:10] for p in (tmp_path / f"cache-{i}" / "labels").glob("*.json")})
    items = runs[0]["manifest"]["instances"]["items"]
    assert runs[1]["manifest"]["instances"] == runs[0]["manifest"]["instances"]  # one draw: the run id's
    drawn = select_labels(EvaluationRequest(target=CARD.format("x"), labelset="mini", instances="fresh", run_id="run_sharded"),
                          FreshInstances(tmp_path / "unused", jobs=0))[1]
    for i in range(2):
        mine = {lb.id for lb, _ in shard_slice([(lb, 1) for lb in drawn], (i, 2))}
        assert made[i] == mine == {r["label_id"] for r in runs[i]["rows"]} == set(runs[i]["manifest"]["label_meta"])
    assert made[0] | made[1] == set(items) and not made[0] & made[1]


def test_stored_runs_are_unchanged(tmp_path: Path) -> None:
    store = Store(tmp_path / "runs.db")
    ls = load_labelset("smoke")
    try:
        out = asyncio.run(_run(store, None, "stored", labelset="smoke", labels=[ls.labels[0].id]))
    finally:
        store.close()
    m = out["manifest"]
    assert "instances" not in m and "instances" not in m["options"]
    assert m["labelset"] == {"name": "smoke", "hash": ls.content_hash, "version": ls.info.version, "private": False}
    assert m["label_meta"] == frozen_label_meta([ls.labels[0]], False)
    assert [r["world"] for r in out["rows"]] == [ls.labels[0].world.snapshot]


def test_fresh_needs_a_family() -> None:
    source = FreshInstances(jobs=0)
    with pytest.raises(RequestError, match="'nosuch' is not a family.*no recipe file"):
        select_labels(EvaluationRequest(target=CARD.format("x"), labelset="nosuch", instances="fresh"), source)
    before = installed()
    install(None)
    try:
        with pytest.raises(RequestError, match="does not generate instances"):
            select_labels(EvaluationRequest(target=CARD.format("x"), instances=7))
    finally:
        install(before)
    for bad in (-1, 2**63, True, "sometimes", 1.5):
        with pytest.raises(RequestError, match="instances"):
            parse_request({"target": CARD.format("x"), "instances": bad})
    assert parse_request({"target": CARD.format("x"), "instances": "12"}).instances == 12
    with pytest.raises(RequestError, match="not an instance"):
        select_labels(EvaluationRequest(target=CARD.format("x"), instances=3, labels=["lbl_0000000000"]), source)


def test_cli_flag() -> None:
    parser = build_parser()
    for text, value in (("fresh", "fresh"), ("stored", "stored"), ("42", 42)):
        a = parser.parse_args(["run", "--target", CARD.format("x"), "--instances", text])
        assert a.instances == value and parse_request(_request_from_args(a)).instances == value
    assert "instances" not in _request_from_args(parser.parse_args(["run", "--target", CARD.format("x")]))
    with pytest.raises(SystemExit):
        parser.parse_args(["run", "--instances", "soon"])


@pytest.mark.anyio
async def test_proctor_run_draws_and_replays(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import anyio

    from evaluator_agent.cli.main import main
    from tests.conftest import serve_app
    from tests.targets import build_targets_app
    from tests.test_shards import _deterministic

    _write_families(tmp_path / "recipes")
    for k, v in (("PROCTOR_RECIPES", tmp_path / "recipes"), ("PROCTOR_FRESH_CACHE", tmp_path / "cache"), ("PROCTOR_FRESH_JOBS", "1")):
        monkeypatch.setenv(k, str(v))
    before = installed()
    db = str(tmp_path / "runs.db")
    try:
        async with serve_app(lambda base: build_targets_app(base, {"det": (_deterministic, False)})) as base:
            common = ["run", "--target", f"{base}/det/.well-known/agent-card.json", "--labelset", "mini", "--quiet", "--db", db]
            assert await anyio.to_thread.run_sync(main, [*common, "--instances", "fresh", "--json", str(tmp_path / "a.json")]) == 0
            first = json.loads((tmp_path / "a.json").read_text())
            store = Store(db)
            seed = store.get_run(first["run_id"])["manifest"]["instances"]["seed"]
            store.close()
            assert await anyio.to_thread.run_sync(main, [*common, "--instances", str(seed), "--json", str(tmp_path / "b.json")]) == 0
    finally:
        install(before)
    store = Store(db)
    try:
        rows = [store.investigations(json.loads((tmp_path / f).read_text())["run_id"]) for f in ("a.json", "b.json")]
    finally:
        store.close()
    assert len(rows[0]) == 3 and _outcomes(rows[0]) == _outcomes(rows[1])
    assert not list((tmp_path / "cache" / "pins").iterdir())


def test_a_private_family_makes_private_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write_families(tmp_path / "recipes")
    monkeypatch.setenv("PROCTOR_RECIPES", str(tmp_path / "recipes"))
    source = FreshInstances(tmp_path / "cache", jobs=0)
    store = Store(tmp_path / "runs.db")
    try:
        out = asyncio.run(_run(store, source, "fresh", labelset="hidden", noise="off"))
    finally:
        store.close()
    m = out["manifest"]
    assert m["labelset"]["private"] is True and disclosure.run_private(out["run"])
    assert all(set(v) == {"tier", "monitor_type", "family"} for v in m["label_meta"].values())  # no truth kept
    # noise off: the noise-free twin was generated for it, and the run used it
    [label] = draw("hidden", m["instances"]["seed"], noise_free=True, cache=FreshCache(tmp_path / "cache"))
    assert label.world.snapshot_noise_free and [r["world"] for r in out["rows"]] == [label.world.snapshot_noise_free]


# ---------------------------------------------------------------------------------------- the cache


def _world(i: int, size: int = 2000) -> dict[str, Any]:
    return {"schema_version": 1, "n": i, "pad": "x" * size}


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_the_cache_evicts_by_age_and_size_but_never_a_pinned_world(tmp_path: Path) -> None:
    cache = FreshCache(tmp_path, max_bytes=10**9, max_age_s=1000)
    d = [cache.put_world(_world(i)) for i in range(6)]
    now = time.time()
    for age, digest in zip((5000, 5000, 900, 800, 700, 600), d, strict=True):
        os.utime(cache.path(digest), (now - age, now - age))
    assert cache.pin_existing([d[1]])  # in use here, though old
    other = FreshCache(tmp_path, holder=f"{os.getpid()}-beef-{_host()}")  # another live holder
    assert other.pin_existing([d[2]])
    os.utime(cache.path(d[2]), (now - 5000, now - 5000))
    stale = cache._pin_path(d[3], f"{_dead_pid()}-dead-{_host()}")  # its process is gone
    stale.touch()

    assert cache.evict(now) == [cache.path(d[0])]  # too old and not pinned
    assert not stale.exists() and all(cache.has(x) for x in d[1:])
    size = cache.path(d[1]).stat().st_size
    cache.max_bytes = 3 * size + size // 2  # pinned worlds count, but never go: the oldest unpinned go first
    assert set(cache.evict(now)) == {cache.path(d[3]), cache.path(d[4])}
    assert cache.has(d[1]) and cache.has(d[2]) and cache.has(d[5])
    cache.unpin([d[1]])
    other.release()
    # unpinned: d[2] is old; d[1] was used (pinned) just now, so it stays while the cache has room
    assert cache.evict(now) == [cache.path(d[2])]
    assert cache.has(d[1]) and cache.has(d[5])
    assert set(cache.evict(now + 2000)) == {cache.path(d[1]), cache.path(d[5])}


def test_the_cache_survives_concurrent_writers(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from evaluator_agent.worldgen.cache import FreshCache\n"
        "c = FreshCache(sys.argv[1])\n"
        "ds = [c.put_world({'schema_version': 1, 'n': i, 'pad': 'y' * 400000}) for i in range(12)]\n"
        "c.evict()\n"
        "print(','.join(ds))\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=300)[0].strip() for p in procs]
    assert [p.returncode for p in procs] == [0, 0] and outs[0] == outs[1]
    for digest in outs[0].split(","):
        assert json.loads(read_snapshot_bytes(digest, tmp_path))["pad"] == "y" * 400000  # whole, and its hash holds
    assert not list(tmp_path.glob(".tmp-*"))


def test_stored_comparison_and_resume_of_draws(family: dict[str, Any]) -> None:
    """What `proctor compare` and `proctor run --resume` read: the stored runs of two draws pair
    by recipe, and a draw resumes with its recorded seed (the same labels)."""
    from evaluator_agent.engine.lifecycle import resume_request
    from evaluator_agent.results.analysis import compare_stored

    store, a, c = family["store"], family["a"], family["c"]
    cmp = compare_stored(store, a["result"]["run_id"], c["result"]["run_id"])
    assert cmp["paired_by"] == "recipe" and cmp["n_shared"] == 3
    run = dict(store.find_run(a["result"]["run_id"]))
    run["manifest"] = {**run["manifest"], "target": {"url": "http://127.0.0.1:9/methodical/.well-known/agent-card.json"}}

    class _Runs:  # the in-process target's url is not a card URL: resume it as if served over HTTP
        path = store.path

        @staticmethod
        def find_run(_: str) -> dict[str, Any]:
            return run

    req = resume_request(_Runs(), run["run_id"])  # type: ignore[arg-type]
    assert req.instances == a["manifest"]["instances"]["seed"]
    assert sorted(req.labels or []) == sorted(a["manifest"]["label_ids"])
