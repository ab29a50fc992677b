"""Postmortem recreations follow their public postmortems' causal stories (worldgen/postmortems.py).

Each test generates the recreation at a few seeds and asserts the structural elements its story
lists, from what the world shows a target (events, logs, metrics), not from the generator's state.
"""

from __future__ import annotations

import re
from functools import cache

import pytest

from evaluator_agent.worldgen import Recipe, generate
from evaluator_agent.worldgen.postmortems import STORIES

SEEDS = (3, 11)


@cache
def _world(story: str, seed: int) -> tuple[dict, object]:
    st = STORIES[story]
    return generate(
        Recipe(
            mechanism=st.mechanism,
            seed=seed,
            n_services=48,
            chain_length=3,
            red_herrings=2,
            postmortem=story,
        )
    )


def _series(world: dict, metric: str, **tags: str) -> list[list[float | None]]:
    return [
        s["values"]
        for s in world["metrics"]
        if s["metric"] == metric and all(s["tags"].get(k) == v for k, v in tags.items())
    ]


def _sum(world: dict, metric: str, i0: int, i1: int, **tags: str) -> float:
    return sum(v or 0 for vals in _series(world, metric, **tags) for v in vals[i0:i1])


def _idx(world: dict, ts: float) -> int:
    return int((ts - world["start"]) // 60)


def _callers(world: dict, name: str) -> list[str]:
    return sorted({d["source"] for d in world["topology"]["dependencies"] if d["target"] == name})


def _role(world: dict, name: str) -> str:
    return next(s["kind"] for s in world["topology"]["services"] if s["name"] == name)


def test_every_story_names_its_mechanism_and_elements() -> None:
    assert len(STORIES) >= 5
    for st in STORIES.values():
        assert st.elements and st.title
        with pytest.raises(ValueError):
            Recipe(
                mechanism="bad_release" if st.mechanism != "bad_release" else "oom_killed",
                seed=1,
                postmortem=st.id,
            )
    with pytest.raises(ValueError, match="unknown postmortem"):
        Recipe(mechanism="dns_failure", seed=1, postmortem="no-such-story")


@pytest.mark.parametrize("seed", SEEDS)
def test_aws_dns_race_empties_a_database_record(seed: int) -> None:
    world, label = _world("aws-dynamodb-dns-2025", seed)
    gt = label.ground_truth
    db = gt.root_causes[0].entity
    assert _role(world, db) == "database"
    applies = [
        (e["ts"], int(m.group(1)), int(m.group(2)))
        for e in world["events"]
        if e["source"] == "terraform" and e["tags"].get("service") == db
        for m in [
            re.search(r"applied plan (\d+): record set \S+ \(A\) updated, (\d+) records", e["text"])
        ]
        if m
    ]
    applies.sort()
    plans = [p for _, p, _ in applies]
    # an older plan applied after a newer one, then the record set emptied
    assert any(later < earlier for i, earlier in enumerate(plans) for later in plans[i + 1 :]), (
        applies
    )
    assert applies[-1][2] == 0 and all(n > 0 for _, _, n in applies[:-1])
    onset = gt.onset.timestamp()
    i0, i1 = _idx(world, onset), _idx(world, world["end"])
    # every direct client of the database fails from the onset on
    clients = [c for c in _callers(world, db) if _role(world, c) in ("service", "gateway")]
    assert clients
    for c in clients:
        errs = [
            m
            for m in ("trace.http.request.errors", "trace.kafka.consume.errors")
            if _series(world, m, service=c)
        ]
        before = sum(_sum(world, m, i0 - (i1 - i0), i0, service=c) for m in errs)
        after = sum(_sum(world, m, i0, i1, service=c) for m in errs)
        assert after > 3 * before + 5, (c, before, after)
    # a consumer that depends on it falls behind
    workers = [
        c
        for c in _callers(world, db)
        if c
        in {
            s["tags"].get("consumer_group")
            for s in world["metrics"]
            if s["metric"] == "kafka.consumer_lag"
        }
    ]
    assert workers
    grew = [
        max(
            v or 0
            for vals in _series(world, "kafka.consumer_lag", consumer_group=wk)
            for v in vals[i1 - 3 : i1]
        )
        > 5
        * max(
            v or 0
            for vals in _series(world, "kafka.consumer_lag", consumer_group=wk)
            for v in vals[i0 - 30 : i0]
        )
        for wk in workers
    ]
    assert any(grew)


@pytest.mark.parametrize("seed", SEEDS)
def test_cloudflare_waf_rule_exhausts_the_edge(seed: int) -> None:
    world, label = _world("cloudflare-waf-2019", seed)
    gt = label.ground_truth
    edge = gt.root_causes[0].entity
    assert _role(world, edge) == "gateway" and gt.causal_chain == [edge]
    pushes = [
        e
        for e in world["events"]
        if e["source"] == "config" and e["tags"].get("service") == edge and "rules/" in e["text"]
    ]
    assert pushes and re.search(r"\.\*\(\?:\.\*=\.\*\)", pushes[0]["text"])  # nested quantifiers
    onset = gt.onset.timestamp()
    i0, i1 = _idx(world, onset), _idx(world, world["end"])
    limit = _series(world, "kubernetes.cpu.limits", service=edge)[0][0]
    usage = _series(world, "kubernetes.cpu.usage.total", service=edge)[0]
    assert max(usage[i0 + 3 : i1]) / (limit * 1e9) >= 0.95
    assert max(usage[i0 - 30 : i0 - 5]) / (limit * 1e9) < 0.6
    backends = sorted(
        {d["target"] for d in world["topology"]["dependencies"] if d["source"] == edge}
    )
    assert backends
    for b in backends:
        n = i1 - i0 - 5
        before = _sum(world, "trace.http.request.hits", i0 - 30, i0 - 30 + n, service=b)
        after = _sum(world, "trace.http.request.hits", i0 + 5, i1, service=b)
        assert after < 0.8 * before, (b, before, after)


@pytest.mark.parametrize("seed", SEEDS)
def test_cloudflare_feature_file_doubles_and_fails_in_waves(seed: int) -> None:
    world, label = _world("cloudflare-bot-management-2025", seed)
    gt = label.ground_truth
    producer, consumer = gt.causal_chain[0], gt.causal_chain[1]
    onset = gt.onset.timestamp()
    grants = [
        e
        for e in world["events"]
        if e["source"] == "database"
        and e["tags"].get("service") == producer
        and "GRANT" in e["text"]
    ]
    assert grants and grants[0]["ts"] < onset
    size = _series(world, "artifact.published.size_kb", service=producer)[0]
    i0 = _idx(world, onset)
    assert max(size[i0:]) > 1.8 * max(size[: _idx(world, grants[0]["ts"])])
    # waves: the consumer fails, stops failing for minutes (a good file), then fails again
    fails = sorted(
        r["ts"]
        for r in world["logs"]
        if r["service"] == consumer and "features file" in r["message"]
    )
    assert len(fails) > 10
    gaps = [b - a for a, b in zip(fails, fails[1:], strict=False)]
    assert sum(1 for g in gaps if g > 200) >= 1, max(gaps)


@pytest.mark.parametrize("seed", SEEDS)
def test_crowdstrike_content_update_crashes_consumers(seed: int) -> None:
    world, label = _world("crowdstrike-2024", seed)
    gt = label.ground_truth
    producer, consumer = gt.causal_chain[0], gt.causal_chain[1]
    onset = gt.onset.timestamp()
    deploys = [
        e
        for e in world["events"]
        if e["source"] == "deploy" and e["tags"].get("service") == producer
    ]
    assert deploys and "21 input fields" in deploys[-1]["text"] and deploys[-1]["ts"] < onset
    lines = [r["message"] for r in world["logs"] if r["service"] == consumer and r["ts"] >= onset]
    assert any(re.search(r"\b21\b", m) and re.search(r"\b20\b", m) for m in lines)
    restarts = _series(world, "kubernetes.containers.restarts", service=consumer)[0]
    assert restarts[-1] - restarts[_idx(world, onset) - 1] >= 5
    assert any(
        e["tags"].get("reason") == "BackOff" and e["tags"].get("service") == consumer
        for e in world["events"]
    )


@pytest.mark.parametrize("seed", SEEDS)
def test_knight_capital_old_instance_runs_dead_code(seed: int) -> None:
    world, label = _world("knight-capital-2012", seed)
    gt = label.ground_truth
    svc = gt.root_causes[0].entity
    deploy = [
        e for e in world["events"] if e["source"] == "deploy" and e["tags"].get("service") == svc
    ][-1]
    old, new = deploy["tags"]["previous_version"], deploy["tags"]["version"]
    flag = [
        e
        for e in world["events"]
        if e["source"] == "feature_flag" and e["tags"].get("service") == svc
    ]
    assert flag and flag[0]["ts"] > deploy["ts"]
    i0, i1 = _idx(world, flag[0]["ts"]) + 2, _idx(world, world["end"])
    hits_old = _sum(world, "trace.http.request.hits", i0, i1, service=svc, version=old)
    hits_new = _sum(world, "trace.http.request.hits", i0, i1, service=svc, version=new)
    errs_old = _sum(world, "trace.http.request.errors", i0, i1, service=svc, version=old)
    errs_new = _sum(world, "trace.http.request.errors", i0, i1, service=svc, version=new)
    assert 0 < hits_old < hits_new  # one instance left behind, serving its share
    assert errs_old > 0.5 * hits_old and errs_new < 0.02 * hits_new
