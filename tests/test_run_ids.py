"""A run id is bound to its request and its owner (issue 11, item 4)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from evaluator_agent.results.store import RunConflict, Store

MANIFEST: dict[str, Any] = {
    "target": {"name": "honest", "version": "1.0", "url": "http://127.0.0.1:9/honest/.well-known/agent-card.json"},
    "labelset": {"name": "smoke", "hash": "h1"},
    "options": {"labelset": "smoke", "attempts": 1, "concurrency": 4, "noise": "on", "labels": None,
                "budget": {"max_turns": 30}},
    "label_ids": ["a", "b"],
    "owner": "key-a",
}  # fmt: skip


def _with(**changes: Any) -> dict[str, Any]:
    m = copy.deepcopy(MANIFEST)
    for path, value in changes.items():
        *parents, leaf = path.split("__")
        d = m
        for p in parents:
            d = d[p]
        d[leaf] = value
    return m


@pytest.mark.parametrize(
    "changes",
    [
        {"target__url": "http://127.0.0.1:9/cheat/.well-known/agent-card.json"},
        {"target__version": "2.0"},
        {"labelset__hash": "h2"},
        {"label_ids": ["a"]},
        {"options__attempts": 3},
        {"options__noise": "off"},
        {"options__budget": {"max_turns": 5}},
        {"owner": "key-b"},
        {"owner": None},
    ],
)
def test_another_request_or_owner_cannot_take_a_run_id(tmp_path: Path, changes: dict[str, Any]) -> None:
    store = Store(tmp_path / "r.db")
    store.create_run("run_x", MANIFEST)
    before = store.get_run("run_x")
    with pytest.raises(RunConflict, match="run_x"):
        store.create_run("run_x", _with(**changes))
    assert store.get_run("run_x") == before  # nothing relabelled


def test_the_same_request_resumes_with_another_concurrency(tmp_path: Path) -> None:
    store = Store(tmp_path / "r.db")
    store.create_run("run_x", MANIFEST)
    store.create_run("run_x", _with(options__concurrency=16, options__labels=["a", "b"]))
    assert store.get_run("run_x")["status"] == "running"
