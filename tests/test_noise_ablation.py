"""`--noise off` runs the same labels on their noise-free worlds (ablations)."""

from __future__ import annotations

import pytest

from evaluator_agent.core.labels import load_labelset
from evaluator_agent.engine.orchestrator import run_request
from evaluator_agent.engine.request import parse_request
from evaluator_agent.results.store import Store
from tests.conftest import serve_app

pytestmark = pytest.mark.anyio


async def test_noise_off_uses_noise_free_worlds_and_helps_the_greedy_agent(tmp_path) -> None:
    from mock_agents.server import create_app

    db = Store(tmp_path / "p.db")
    async with serve_app(lambda base: create_app(agents=["greedy_anomaly"], base_url=base)) as base:
        card = f"{base}/greedy_anomaly/.well-known/agent-card.json"
        noisy = await run_request(parse_request({"target": card, "labelset": "smoke"}), db)
        quiet = await run_request(parse_request({"target": card, "labelset": "smoke", "noise": "off"}), db)
    assert db.get_run(quiet["run_id"])["options"]["noise"] == "off"
    assert [i["label_id"] for i in quiet["investigations"]] == [i["label_id"] for i in noisy["investigations"]]
    labels = {lb.id: lb for lb in load_labelset("smoke").labels}
    for row in db.investigations(quiet["run_id"]):
        assert row["world"] == labels[row["label_id"]].world.snapshot_noise_free
    for row in db.investigations(noisy["run_id"]):
        assert row["world"] == labels[row["label_id"]].world.snapshot
    # Without decoys, blaming the biggest anomaly does no worse (on core: far better, see README).
    assert quiet["summary"]["mean_score"] >= noisy["summary"]["mean_score"]
    assert quiet["summary"]["errors"] == noisy["summary"]["errors"] == 0
