"""The traffic generator (``proctor traffic``) against a live proctor on loopback,
and the mock agents' bounded sessions and task stores."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from evaluator_agent.cli import traffic, traffic_report
from evaluator_agent.core.labels import load_labelset
from evaluator_agent.service.client import ProctorTaskFailed
from tests.conftest import serve_app

ROOT = Path(__file__).resolve().parent.parent
LABEL = load_labelset("smoke").labels[0].id


# --------------------------------------------------------------------------- pure parts


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert traffic_report.percentile(values, 50) == 50.0
    assert traffic_report.percentile(values, 90) == 90.0
    assert traffic_report.percentile(values, 99) == 99.0
    assert traffic_report.percentile(values, 100) == 100.0
    assert traffic_report.percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert traffic_report.percentile([7.0], 95) == 7.0
    assert traffic_report.percentile([], 50) is None
    figs = traffic_report.latency_figures([1.0, 2.0, 3.0, 4.0])
    assert figs["p50"] == 2.0 and figs["max"] == 4.0 and figs["mean"] == 2.5


def test_plan_is_deterministic_and_covers_every_failure_case() -> None:
    targets = ["http://a:1/x/.well-known/agent-card.json", "http://b:2/y/.well-known/agent-card.json"]
    p1 = traffic.plan(20, targets, "smoke", mode="failure", labels=[LABEL], seed=3)
    p2 = traffic.plan(20, targets, "smoke", mode="failure", labels=[LABEL], seed=3)
    assert [(c.kind, c.payload) for c in p1] == [(c.kind, c.payload) for c in p2]
    kinds = {c.kind for c in p1 if c.expect_failure}
    assert kinds == {name for name, _ in traffic.failure_cases(targets, "smoke", None)}
    assert sum(c.expect_failure for c in p1) == 10
    normal = traffic.plan(5, targets, "smoke", labels=[LABEL], attempts=2)
    assert not any(c.expect_failure for c in normal)
    assert [c.payload["target"] for c in normal] == [targets[0], targets[1], targets[0], targets[1], targets[0]]
    assert all(c.payload["labels"] == [LABEL] and c.payload["attempts"] == 2 for c in normal)


@pytest.mark.anyio
async def test_busy_is_retried_then_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    import evaluator_agent.service.client as client

    calls = {"n": 0}

    async def flaky(url: str, request: dict[str, Any], **_: Any) -> dict[str, Any]:
        calls["n"] += 1
        if calls["n"] <= 2:
            raise ProctorTaskFailed("proctor busy: 4 evaluations running, try again shortly")
        return {"summary": {"n": 3}}

    monkeypatch.setattr(client, "call_proctor", flaky)
    case = traffic.Case(0, "evaluate", {"target": "http://x/.well-known/agent-card.json"}, False)
    out = await traffic.run_case(case, "http://proctor", None, timeout_s=5, busy_backoff_s=0.01)  # type: ignore[arg-type]
    assert out.ok and out.busy_retries == 2 and out.investigations == 3

    async def always_busy(url: str, request: dict[str, Any], **_: Any) -> dict[str, Any]:
        raise ProctorTaskFailed("server busy")

    monkeypatch.setattr(client, "call_proctor", always_busy)
    out = await traffic.run_case(case, "http://proctor", None, timeout_s=5, busy_retries=3, busy_backoff_s=0.001)  # type: ignore[arg-type]
    assert not out.ok and out.error_kind == "busy" and out.busy_retries == 3
    rep = traffic.summarise([out], mode="normal", proctor="p", targets=["t"], labelset="smoke", concurrency=1,
                            wall_s=1.0, alive_problem=None)
    assert rep.exit_code == 1 and rep.busy_retries == 3 and rep.errors["busy"]["count"] == 1


@pytest.mark.anyio
async def test_a_hung_or_absent_proctor_does_not_kill_the_generator() -> None:
    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # until the client gives up and closes
        writer.close()

    server = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    hung = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    card = "http://127.0.0.1:1/x/.well-known/agent-card.json"
    try:
        rep = await traffic.run_traffic(hung, [card], requests=2, concurrency=2, timeout_s=0.5)
    finally:
        server.close()
    assert rep.failed == 2 and rep.exit_code == 1 and set(rep.errors) == {"timeout"}
    assert not rep.proctor_alive
    rep = await traffic.run_traffic("http://127.0.0.1:1", [card], requests=3, concurrency=2, timeout_s=5, mode="failure")
    assert rep.requests == 3 and rep.exit_code == 1 and rep.unexpected == 3


# --------------------------------------------------------------------------- bounded memory


@pytest.mark.anyio
async def test_session_service_stays_bounded_and_spares_running_conversations() -> None:
    from google.adk.events import Event

    from mock_agents.server import bounded_session_service

    svc = bounded_session_service(max_sessions=8, grace_s=0)
    first = await svc.create_session(app_name="a", user_id="A2A_USER_ctx-0", session_id="ctx-0")
    with svc.in_use("a", "ctx-0"):  # a turn of ctx-0 is running while 200 other conversations come and go
        for i in range(1, 201):
            s = await svc.create_session(app_name="a", user_id=f"A2A_USER_ctx-{i}", session_id=f"ctx-{i}")
            await svc.append_event(s, Event(author="user"))
            assert svc.session_count() <= 9  # the cap, plus the pinned one
        assert await svc.get_session(app_name="a", user_id=first.user_id, session_id="ctx-0") is not None
        await svc.append_event(first, Event(author="agent"))  # still writable: not evicted mid-turn
    assert svc.session_count() == 8 and svc.evicted == 193
    assert len(svc.sessions["a"]) == 8  # per-conversation user entries go too
    # least recently used goes first: ctx-0 was used last, so it survives the next eviction
    await svc.create_session(app_name="a", user_id="u", session_id="new")
    assert await svc.get_session(app_name="a", user_id=first.user_id, session_id="ctx-0") is not None
    assert await svc.get_session(app_name="a", user_id="A2A_USER_ctx-193", session_id="ctx-193") is None


@pytest.mark.anyio
async def test_task_store_stays_bounded() -> None:
    from a2a.server.context import ServerCallContext
    from a2a.types import Task, TaskState, TaskStatus

    from mock_agents.server import bounded_task_store

    store = bounded_task_store(max_tasks=5)
    ctx = ServerCallContext()
    await store.save(Task(id="running", context_id="c", status=TaskStatus(state=TaskState.TASK_STATE_WORKING)), ctx)
    for i in range(50):
        await store.save(Task(id=f"t{i}", context_id="c", status=TaskStatus(state=TaskState.TASK_STATE_COMPLETED)), ctx)
    assert store.task_count() == 5 and store.evicted == 46
    assert await store.get("running", ctx) is not None  # in progress: kept
    assert await store.get("t49", ctx) is not None and await store.get("t0", ctx) is None


@pytest.mark.anyio
async def test_recently_used_sessions_are_spared_up_to_twice_the_cap() -> None:
    from mock_agents.server import bounded_session_service

    svc = bounded_session_service(max_sessions=4, grace_s=60)
    for i in range(20):  # all used just now: between turns of their investigations
        await svc.create_session(app_name="a", user_id="u", session_id=f"s{i}")
    assert svc.session_count() == 8  # grace up to twice the cap, then LRU regardless
    assert await svc.get_session(app_name="a", user_id="u", session_id="s11") is None
    assert await svc.get_session(app_name="a", user_id="u", session_id="s12") is not None
    svc.grace_s = 0  # once idle long enough, back down to the cap
    await svc.create_session(app_name="a", user_id="u", session_id="late")
    assert svc.session_count() == 4


# --------------------------------------------------------------------------- against a live proctor


def _mock_app(**kw: Any):
    from mock_agents.server import create_app

    return lambda base: create_app(agents=["alert_blamer", "methodical"], base_url=base, **kw)


def _proctor_app(db: Path):
    from evaluator_agent.service.server import create_app

    return lambda base: create_app(str(db), public_url=base)


async def _cli(*args: str) -> tuple[int, str, str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("PROCTOR_API_KEY", None)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "evaluator_agent", "traffic", *args, cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode, out.decode(), err.decode()


@pytest.mark.anyio
async def test_traffic_against_a_live_proctor(tmp_path: Path) -> None:
    async with serve_app(_mock_app(max_sessions=4, max_tasks=8, session_grace_s=0)) as agents, \
            serve_app(_proctor_app(tmp_path / "p.db")) as proctor:
        blamer = f"{agents}/alert_blamer/.well-known/agent-card.json"
        methodical = f"{agents}/methodical/.well-known/agent-card.json"

        # normal mode, in process: every request returns a result
        rep = await traffic.run_traffic(proctor, [blamer, blamer, blamer, methodical], "smoke", requests=8,
                                        concurrency=2, labels=[LABEL], timeout_s=60)
        assert rep.exit_code == 0, traffic.render(rep)
        assert (rep.ok, rep.failed, rep.investigations) == (8, 0, 8)
        assert rep.requests_per_s > 0 and rep.investigations_per_s > 0
        lat = rep.latency_s
        assert 0 < lat["p50"] <= lat["p90"] <= lat["p95"] <= lat["p99"] <= lat["max"]
        text = traffic.render(rep)
        assert "ok 8" in text and "investigations/s" in text and "p95" in text

        # the mock agents' memory stayed bounded across those investigations
        async with httpx.AsyncClient() as http:
            stats = (await http.get(f"{agents}/stats")).json()
        assert stats["alert_blamer"]["sessions"] <= 4 and stats["alert_blamer"]["sessions_evicted"] >= 2
        assert stats["alert_blamer"]["tasks"] <= 8 and stats["methodical"]["tasks"] <= 8
        assert stats["methodical"]["tasks_evicted"] > 0

        # failure mode, in process: every bad request is refused cleanly, the good ones pass
        rep = await traffic.run_traffic(proctor, [blamer], "smoke", requests=12, concurrency=4, labels=[LABEL],
                                        mode="failure", seed=1, timeout_s=60)
        assert rep.exit_code == 0, traffic.render(rep)
        assert rep.expected_failures == 6 and rep.expected_failures_clean == 6 and rep.unexpected == 0
        assert set(rep.errors) == {"task_failed"} and rep.proctor_alive
        assert "expected failures answered cleanly 6/6" in traffic.render(rep)

        # the CLI: failure mode with --json, exit 0
        out_json = tmp_path / "f.json"
        code, out, err = await _cli("--proctor", proctor, "--targets", blamer, "--labels", LABEL, "--requests", "8",
                                    "--concurrency", "4", "--mode", "failure", "--json", str(out_json), "--quiet")
        assert code == 0, out + err
        figures = json.loads(out_json.read_text())
        assert figures["expected_failures_clean"] == figures["expected_failures"] == 4
        assert figures["percentile_method"] == "nearest-rank" and figures["latency_s"]["p99"] is not None
        assert "throughput" in out and "expected failures answered cleanly 4/4" in out

        # the CLI: normal mode with a broken target among good ones, exit 1
        code, out, err = await _cli("--proctor", proctor, "--targets", blamer,
                                    "http://127.0.0.1:1/gone/.well-known/agent-card.json",
                                    "--labels", LABEL, "--requests", "2", "--concurrency", "2")
        assert code == 1, out + err
        assert "ok 1   failed 1" in out and "task_failed" in out and "unreachable" in out
