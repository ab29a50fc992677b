"""Resumable, idempotent runs: an interrupted run finishes without losing or duplicating anything."""

from __future__ import annotations

import asyncio

import pytest

from evaluator_agent.core.labels import load_labelset
from evaluator_agent.engine.lifecycle import resume_request
from evaluator_agent.engine.orchestrator import execute, prepare
from evaluator_agent.engine.request import parse_request
from evaluator_agent.engine.transport import make_http_client
from evaluator_agent.results.store import Store
from tests.conftest import serve_app
from tests.targets import build_targets_app, recording_fn

pytestmark = pytest.mark.anyio

STARTED: list[str] = []
_slow = recording_fn(STARTED, 0.15)


async def test_interrupted_run_resumes_without_loss_or_duplicates(tmp_path) -> None:
    db = Store(tmp_path / "r.db")
    n = len(load_labelset("smoke").labels)
    async with serve_app(lambda base: build_targets_app(base, {"slow": (_slow, False)})) as base:
        req = parse_request({"target": f"{base}/slow/.well-known/agent-card.json", "run_id": "run_resume_1",
                             "attempts": 2, "concurrency": 2})
        http = make_http_client()
        prep = await prepare(req, http)
        task = asyncio.create_task(execute(prep, db))
        while db.counts("run_resume_1")["investigations"] < 5:
            await asyncio.sleep(0.02)
        task.cancel()  # the process is "killed" mid-run
        with pytest.raises(asyncio.CancelledError):
            await task
        first = db.counts("run_resume_1")["investigations"]
        assert 5 <= first < 2 * n and db.get_run("run_resume_1")["status"] == "interrupted"

        STARTED.clear()
        again = resume_request(db, "run_resume_1")
        assert (again.attempts, again.concurrency, again.run_id) == (2, 2, "run_resume_1")
        result = await execute(await prepare(again, http), db)
        assert len(STARTED) == 2 * n - first, "only the missing investigations ran"
        assert result["status"] == "completed" and result["summary"]["n"] == 2 * n
        keys = [(i["label_id"], i["attempt"]) for i in result["investigations"]]
        assert len(keys) == len(set(keys)) == 2 * n

        # The same request once more adds nothing.
        STARTED.clear()
        result2 = await execute(await prepare(req, http), db)
        assert STARTED == [] and result2["summary"]["n"] == 2 * n
        assert db.counts("run_resume_1")["investigations"] == 2 * n
        await http.aclose()
