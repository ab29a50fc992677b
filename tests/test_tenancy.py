"""Tasks and runs belong to the API key that created them (issue 11, items 4, 7 and 8).

Two clients with two keys share one proctor over real HTTP: the second can neither list, read
nor cancel the first one's tasks, nor read, compare or take over its runs; and the task store
keeps only the most recent finished tasks however often results are fetched.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from evaluator_agent.core.labels import load_labelset
from evaluator_agent.service.client import ProctorTaskFailed, call_proctor
from tests.conftest import serve_app
from tests.targets import build_targets_app

A2A = {"A2A-Version": "1.0", "Content-Type": "application/json"}
KA, KB = {"Authorization": "Bearer key-alpha"}, {"Authorization": "Bearer key-bravo"}


def _blind(_turn: int, _msg: dict[str, Any]) -> dict[str, Any]:
    return {"diagnosis": {"no_fault": True, "summary": "nothing wrong"}}


def _proctor(db: Path):
    from evaluator_agent.service.server import create_app

    return lambda base: create_app(str(db), public_url=base, api_keys=["key-alpha", "key-bravo"])


async def _rpc(http: httpx.AsyncClient, url: str, method: str, params: dict[str, Any], key: dict[str, str]) -> dict[str, Any]:
    r = await http.post(url + "/", json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params}, headers=A2A | key)
    assert r.status_code == 200, r.text
    return r.json()


@pytest.mark.anyio
async def test_another_key_cannot_see_touch_or_take_over(tmp_path: Path) -> None:
    label = load_labelset("smoke").labels[0].id
    async with serve_app(lambda b: build_targets_app(b, {"t": (_blind, False)})) as targets, \
            serve_app(_proctor(tmp_path / "p.db")) as proctor, httpx.AsyncClient() as http:
        card = f"{targets}/t/.well-known/agent-card.json"
        mine = await call_proctor(proctor, {"target": card, "labels": [label], "run_id": "run_alpha"}, headers=KA)
        assert mine["run_id"] == "run_alpha" and mine["summary"]["n"] == 1

        # runs: B gets "not found", exactly as for a run that does not exist; A reads its own
        for req in ({"action": "get_run", "run_id": "run_alpha"},
                    {"action": "compare", "base": "run_alpha", "new": "run_alpha"}):  # fmt: skip
            with pytest.raises(ProctorTaskFailed, match="no run 'run_alpha'"):
                await call_proctor(proctor, req, headers=KB)
        assert (await call_proctor(proctor, {"action": "get_run", "run_id": "run_alpha"}, headers=KA))["run_id"] == "run_alpha"
        # B cannot resume, relabel or overwrite A's run by reusing its id
        with pytest.raises(ProctorTaskFailed, match="run id 'run_alpha' is taken"):
            await call_proctor(proctor, {"target": card, "labels": [label], "run_id": "run_alpha"}, headers=KB)
        again = await call_proctor(proctor, {"action": "get_run", "run_id": "run_alpha"}, headers=KA)
        assert again["summary"]["n"] == 1 and again["target"]["name"] == mine["target"]["name"]

        # tasks: A lists its own, B lists none and cannot read or cancel A's
        listed_a = {t["id"] for t in (await _rpc(http, proctor, "ListTasks", {}, KA))["result"]["tasks"]}
        listed_b = {t["id"] for t in (await _rpc(http, proctor, "ListTasks", {}, KB))["result"].get("tasks", [])}
        assert len(listed_a) == 3 and len(listed_b) == 3 and not listed_a & listed_b  # each its own three
        task_id = sorted(listed_a)[0]
        assert "error" in await _rpc(http, proctor, "GetTask", {"id": task_id}, KB)
        assert "error" in await _rpc(http, proctor, "CancelTask", {"id": task_id}, KB)
        assert (await _rpc(http, proctor, "GetTask", {"id": task_id}, KA))["result"]["id"] == task_id


@pytest.mark.anyio
async def test_finished_tasks_do_not_pile_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROCTOR_MAX_FINISHED_TASKS", "3")
    async with serve_app(_proctor(tmp_path / "p.db")) as proctor, httpx.AsyncClient() as http:
        for _ in range(12):
            await call_proctor(proctor, {"action": "list_labelsets"}, headers=KA)
        listed = (await _rpc(http, proctor, "ListTasks", {"pageSize": 100}, KA))["result"]["tasks"]
        assert len(listed) == 3
