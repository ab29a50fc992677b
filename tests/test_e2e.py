"""The whole path over real HTTP on 127.0.0.1: proctor and mock agents on uvicorn, the
a2a-sdk client sending the evaluation request."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from evaluator_agent.cli.main import main as cli_main
from evaluator_agent.core.labels import load_labelset
from evaluator_agent.service.client import ProctorTaskFailed, call_proctor, normalise_numbers
from tests.conftest import bound_socket, serve_app

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parent.parent
COMPARED = ("label_id", "attempt", "score", "passed", "end_reason", "turns", "tool_calls", "invalid_calls", "subscores")


def _mock_app(agents: list[str]):
    from mock_agents.server import create_app

    return lambda base: create_app(agents=agents, base_url=base)


def _proctor_app(db: Path):
    from evaluator_agent.service.server import create_app

    return lambda base: create_app(str(db), public_url=base)


def _core(result: dict[str, Any]) -> list[dict[str, Any]]:
    return [{k: i[k] for k in COMPARED} for i in normalise_numbers(result)["investigations"]]


async def test_card_health_and_skills(tmp_path) -> None:
    async with serve_app(_proctor_app(tmp_path / "p.db")) as base, httpx.AsyncClient() as http:
        card = (await http.get(f"{base}/.well-known/agent-card.json")).json()
        assert {s["id"] for s in card["skills"]} == {"evaluate_agent", "list_labelsets", "get_run", "compare_runs"}
        bindings = {i["protocolBinding"] for i in card["supportedInterfaces"]}
        assert bindings == {"JSONRPC", "HTTP+JSON"}
        assert card["capabilities"]["streaming"] is True
        h = await http.get(f"{base}/health")
        assert h.status_code == 200 and h.json()["status"] == "ok"


async def test_evaluation_over_a2a_streams_progress_and_returns_result(tmp_path) -> None:
    progress: list[dict[str, Any]] = []
    async with serve_app(_mock_app(["methodical", "random_guess"])) as agents, serve_app(_proctor_app(tmp_path / "p.db")) as proctor:
        good = await call_proctor(proctor, {"target": f"{agents}/methodical/.well-known/agent-card.json", "labelset": "smoke"},
                                  on_progress=progress.append)
        bad = await call_proctor(proctor, {"participants": {"target": f"{agents}/random_guess/.well-known/agent-card.json"},
                                           "config": {"labelset": "smoke"}})
    n = len(load_labelset("smoke").labels)
    good, bad = normalise_numbers(good), normalise_numbers(bad)
    assert set(good) >= {"run_id", "target", "labelset", "summary", "investigations"}
    assert good["target"]["name"] == "methodical" and good["labelset"]["name"] == "smoke" and len(good["labelset"]["hash"]) == 64
    assert set(good["summary"]) >= {"n", "passed", "pass_rate", "mean_score", "errors"}
    assert good["summary"]["n"] == n and good["summary"]["errors"] == 0
    inv = good["investigations"][0]
    assert set(inv) >= {"label_id", "attempt", "score", "passed", "subscores", "end_reason", "turns", "tool_calls", "duration_s"}
    # Progress streamed: one update per investigation, ending at n/n.
    dones = [p["done"] for p in progress if "done" in p]
    assert dones[-1] == n and len(dones) >= n
    # The reference agents rank as they should on smoke.
    assert good["summary"]["pass_rate"] > bad["summary"]["pass_rate"]
    assert good["summary"]["pass_rate"] >= 0.5
    assert bad["summary"]["pass_rate"] <= 0.25


async def test_cli_and_server_give_the_same_results(tmp_path) -> None:
    async with serve_app(_mock_app(["methodical"])) as agents, serve_app(_proctor_app(tmp_path / "p.db")) as proctor:
        card = f"{agents}/methodical/.well-known/agent-card.json"
        via_server = await call_proctor(proctor, {"target": card, "labelset": "smoke"}, streaming=False)
        out = tmp_path / "cli.json"
        # The CLI runs its own event loop: run it in a thread while our servers keep serving.
        import anyio.to_thread

        code = await anyio.to_thread.run_sync(
            lambda: cli_main(["run", "--target", card, "--labelset", "smoke", "--db", str(tmp_path / "c.db"), "--json", str(out), "--quiet"])
        )
    assert code == 0
    via_cli = json.loads(out.read_text())
    assert _core(via_cli) == _core(via_server)
    # `proctor show --json` prints the same shape as `proctor run --json`.
    show = subprocess.run([sys.executable, "-m", "evaluator_agent", "show", via_cli["run_id"], "--db", str(tmp_path / "c.db"), "--json"],
                          capture_output=True, text=True, cwd=ROOT, check=True)
    assert json.loads(show.stdout) == via_cli


@pytest.mark.parametrize(
    "request_obj, message",
    [
        ({"target": "not a url"}, "not an http"),
        ({"target": "http://127.0.0.1:9/x/.well-known/agent-card.json", "labelset": "nope"}, "unknown label set"),
        ({"target": "http://127.0.0.1:9/x/.well-known/agent-card.json", "attempts": 99}, "attempts"),
        ({"target": "http://127.0.0.1:9/x/.well-known/agent-card.json"}, "unreachable"),
        ({"action": "get_run", "run_id": "run_missing"}, "no run"),
        ({"action": "dance"}, "unknown action"),
        ({"action": ["evaluate"]}, "unknown action"),
        # the card's skill ids are actions too: one name per concept, whichever the client read
        ({"action": "compare_runs", "base": "run_a", "new": "run_b"}, "no run"),
        ({"action": "evaluate_agent", "target": "not a url"}, "not an http"),
    ],
)
async def test_bad_requests_fail_the_task_and_the_server_stays_up(tmp_path, request_obj, message) -> None:
    async with serve_app(_proctor_app(tmp_path / "p.db")) as proctor:
        with pytest.raises(ProctorTaskFailed, match=message):
            await call_proctor(proctor, request_obj)
        listing = await call_proctor(proctor, {"action": "list_labelsets"})
    assert "smoke" in {x["name"] for x in listing["labelsets"]}


def test_every_skill_of_the_card_is_an_action() -> None:
    from evaluator_agent.service.card import SKILL_ACTIONS, build_card

    actions = {"evaluate", "list_labelsets", "get_run", "compare"}
    skills = {sk.id for sk in build_card("http://127.0.0.1:8080").skills}
    assert skills and {SKILL_ACTIONS.get(sk, sk) for sk in skills} <= actions


async def test_text_part_request_rest_binding_and_get_run(tmp_path) -> None:
    from a2a.client import ClientConfig, ClientFactory
    from a2a.helpers import new_message, new_text_part
    from a2a.types import Role, SendMessageRequest, TaskState
    from google.protobuf.json_format import MessageToDict

    async with serve_app(_mock_app(["alert_blamer"])) as agents, serve_app(_proctor_app(tmp_path / "p.db")) as proctor:
        label = load_labelset("smoke").labels[0].id
        req = {"target": f"{agents}/alert_blamer/.well-known/agent-card.json", "labels": [label]}
        async with httpx.AsyncClient(timeout=60) as http:
            client = await ClientFactory(ClientConfig(streaming=False, httpx_client=http, supported_protocol_bindings=["HTTP+JSON"],
                                                      use_client_preference=True)).create_from_url(proctor)
            msg = new_message([new_text_part("please evaluate: " + json.dumps(req))], role=Role.ROLE_USER)
            events = [ev async for ev in client.send_message(SendMessageRequest(message=msg))]
        task = events[-1].task
        assert task.status.state == TaskState.TASK_STATE_COMPLETED
        data = MessageToDict(task.artifacts[-1].parts[-1].data)
        assert task.artifacts[-1].name == "result"
        again = await call_proctor(proctor, {"action": "get_run", "run_id": data["run_id"]})
    assert normalise_numbers(again)["investigations"] == normalise_numbers(data)["investigations"]


def test_serve_starts_and_honours_port(tmp_path) -> None:
    sock = bound_socket()
    port = sock.getsockname()[1]
    sock.close()
    env = dict(os.environ, PORT=str(port))
    t0 = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "evaluator_agent", "serve", "--db", str(tmp_path / "s.db")], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        ready = None
        while time.monotonic() - t0 < 15:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=0.5).status_code == 200:
                    ready = time.monotonic() - t0
                    break
            except httpx.HTTPError:
                time.sleep(0.05)
        # How fast it starts is the benchmark's figure (tests/benchmarks), not a test's.
        assert ready is not None, proc.stderr.read1().decode() if proc.poll() is not None else "not ready"
    finally:
        proc.terminate()
        proc.wait(10)
