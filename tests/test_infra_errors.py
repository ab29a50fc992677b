"""Whose fault is it? Infra errors the target can cause are the target's failures (issue 11).

Only the proctor's own faults and a target unreachable before its first reply of the run are
infra errors (left out of the pass rate). A target that has replied once and then hangs up
mid-reply fails that investigation. A run with more than a few percent infra errors is
degraded: the summary says so, the CLI says so loudly, and ``--fail-on`` exits 4.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio.to_thread
import pytest
from a2a.server.routes import create_agent_card_routes
from starlette.applications import Starlette

from evaluator_agent.cli.common import EXIT_DEGRADED
from evaluator_agent.cli.main import main
from evaluator_agent.core.labels import load_labelset
from evaluator_agent.engine.orchestrator import run_request
from evaluator_agent.engine.request import parse_request
from evaluator_agent.engine.transport import make_http_client
from evaluator_agent.results.stats import run_statistics
from evaluator_agent.results.store import Store
from tests.conftest import bound_socket, serve_app
from tests.targets import build_targets_app, card_for

pytestmark = pytest.mark.anyio

LABELS = load_labelset("smoke").labels


def _tool_call_then_diagnosis(turn: int, _msg: dict[str, Any]) -> dict[str, Any]:
    if turn == 1:
        return {"tool_calls": [{"id": "c1", "name": "list_services", "arguments": {}}]}
    return {"diagnosis": {"root_causes": [{"entity": "nothing-real", "mechanism": "bad_release"}], "summary": "guess"}}


class HangUp:
    """ASGI middleware: the first ``answer`` A2A requests to ``/<name>`` are answered by the real
    target; every later one gets the start of a reply (status, headers, a few bytes of a body
    announced as 4 KB) and then the connection is dropped, as a target does that hangs up on
    the labels it cannot solve."""

    def __init__(self, app: Any, name: str, answer: int):
        self.app, self.path, self.answer, self.posts = app, f"/{name}", answer, 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"].rstrip("/") == self.path:
            self.posts += 1
            if self.posts > self.answer:
                more = True
                while more:  # read the request, as a real server would
                    more = (await receive()).get("more_body", False)
                await send({"type": "http.response.start", "status": 200,
                            "headers": [(b"content-type", b"application/json"), (b"content-length", b"4096")]})
                await send({"type": "http.response.body", "body": b'{"jsonrpc": "2.0", "id": 1, "result": {"mess',
                            "more_body": True})
                return  # the server closes the connection mid-body
        await self.app(scope, receive, send)


def _hang_up_app(answer: int) -> Any:
    def make(base: str) -> Any:
        return HangUp(build_targets_app(base, {"hangs_up": (_tool_call_then_diagnosis, False)}), "hangs_up", answer)

    return make


async def _run(base: str, db: Store, labels: list[str], name: str = "hangs_up") -> dict[str, Any]:
    req = parse_request({
        "target": f"{base}/{name}/.well-known/agent-card.json", "labelset": "smoke", "labels": labels,
        "concurrency": 1, "budget": {"max_turns": 6, "timeout_s": 20, "turn_timeout_s": 5},
    })
    http = make_http_client()
    try:
        return await run_request(req, db, http=http)
    finally:
        await http.aclose()


async def test_hanging_up_mid_reply_after_one_answer_is_a_failure_not_an_infra_error(tmp_path: Path) -> None:
    db = Store(tmp_path / "p.db")
    async with serve_app(_hang_up_app(answer=1)) as base:
        r = await _run(base, db, [LABELS[0].id])
    inv = r["investigations"][0]
    assert inv["end_reason"] == "target_unreachable", inv  # the reason is kept ...
    assert inv["error_kind"] is None and inv["turns"] == 2 and inv["score"] == 0.0 and inv["passed"] is False
    s = r["summary"]  # ... and it counts against the target
    assert s["errors"] == 0 and s["scored"] == 1 and s["pass_rate"] == 0.0 and s["degraded"] is False
    stored = db.investigations(r["run_id"])[0]
    assert "cannot reach target" in stored["error"]


async def test_hanging_up_on_later_labels_of_the_run_is_a_failure(tmp_path: Path) -> None:
    """The target answers one whole investigation, then hangs up on the first turn of every other
    one: it replied in this run, so each of those is a failure in the pass rate, not infra."""
    db = Store(tmp_path / "p.db")
    ids = [lb.id for lb in LABELS[:4]]
    async with serve_app(_hang_up_app(answer=2)) as base:
        r = await _run(base, db, ids)
    by_label = {i["label_id"]: i for i in r["investigations"]}
    answered = [i for i in by_label.values() if i["end_reason"] == "diagnosis"]
    dropped = [i for i in by_label.values() if i["end_reason"] == "target_unreachable"]
    assert len(answered) == 1 and len(dropped) == 3
    assert all(i["error_kind"] is None and i["turns"] == 1 and not i["passed"] for i in dropped)
    s = r["summary"]
    assert s["n"] == 4 and s["scored"] == 4 and s["errors"] == 0 and s["pass_rate"] == 0.0
    assert s["end_reasons"]["target_unreachable"] == 3 and s["degraded"] is False


def _down_app(closed_port: int) -> Any:
    """A card that resolves, naming an A2A endpoint nobody listens on."""

    def make(_base: str) -> Starlette:
        card = card_for("down", f"http://127.0.0.1:{closed_port}")
        return Starlette(routes=list(create_agent_card_routes(card, card_url="/down/.well-known/agent-card.json")))

    return make


async def _cli(*args: str) -> int:
    return await anyio.to_thread.run_sync(lambda: main(list(args)))


async def test_unreachable_from_the_start_is_infra_and_the_run_is_degraded(tmp_path: Path, capsys) -> None:
    db = str(tmp_path / "p.db")
    sock = bound_socket()  # bound, never listening: every turn is refused
    ids = ",".join(lb.id for lb in LABELS[:3])
    try:
        async with serve_app(_down_app(sock.getsockname()[1])) as base:
            card = f"{base}/down/.well-known/agent-card.json"
            out = tmp_path / "r.json"
            # Without --fail-on: the run completes, exit 0, but it says loudly that it is degraded.
            assert await _cli("run", "--target", card, "--labels", ids, "--db", db, "--json", str(out), "--quiet") == 0
            err = capsys.readouterr().err
            assert "DEGRADED RUN" in err and "3 of 3 investigations" in err and "NOT this target's result" in err
            r = json.loads(out.read_text())
            assert all(i["end_reason"] == "target_unreachable" and i["error_kind"] == "network" for i in r["investigations"])
            s = r["summary"]
            assert s["errors"] == 3 and s["scored"] == 0 and s["degraded"] is True
            assert s["infra_error_rate"] == 1.0 and s["degraded_threshold"] == 0.05
            # With --fail-on degraded, or any other --fail-on: exit 4.
            assert await _cli("run", "--target", card, "--labels", ids, "--db", db, "--quiet", "--brief",
                              "--fail-on", "degraded") == EXIT_DEGRADED
            assert await _cli("run", "--target", card, "--labels", ids, "--db", db, "--quiet", "--brief",
                              "--fail-on", "regression") == EXIT_DEGRADED
            assert "DEGRADED RUN" in capsys.readouterr().err
            # `proctor show` repeats the warning.
            assert await _cli("show", r["run_id"], "--db", db) == 0
            assert "DEGRADED RUN" in capsys.readouterr().err
    finally:
        sock.close()


async def test_a_healthy_run_passes_the_degraded_gate(tmp_path: Path, capsys) -> None:
    db = str(tmp_path / "p.db")
    async with serve_app(lambda base: build_targets_app(base, {"ok": (_tool_call_then_diagnosis, False)})) as base:
        code = await _cli("run", "--target", f"{base}/ok/.well-known/agent-card.json", "--labels", LABELS[0].id,
                          "--db", db, "--quiet", "--brief", "--fail-on", "degraded,regression")
    assert code == 0
    assert "DEGRADED" not in capsys.readouterr().err


def _row(i: int, kind: str | None) -> dict[str, Any]:
    return {"label_id": f"lbl_{i}", "attempt": 1, "score": 0.0, "passed": False, "subscores": {},
            "end_reason": "target_unreachable" if kind else "diagnosis", "error_kind": kind, "turns": 1,
            "tool_calls": 0, "invalid_calls": 0, "duration_s": 1.0, "score_details": {}}


def test_degraded_threshold_is_a_setting(monkeypatch) -> None:
    rows = [_row(i, "network" if i < 6 else None) for i in range(100)]  # 6% infra errors
    assert run_statistics(rows)["degraded"] is True
    five = [_row(i, "network" if i < 5 else None) for i in range(100)]  # exactly 5%: not above it
    assert run_statistics(five)["degraded"] is False and run_statistics(five)["infra_error_rate"] == 0.05
    monkeypatch.setenv("PROCTOR_DEGRADED_INFRA_RATE", "0.1")
    assert run_statistics(rows)["degraded"] is False and run_statistics(rows)["degraded_threshold"] == 0.1
    assert run_statistics(rows, degraded_above=0.0)["degraded"] is True
    assert run_statistics([])["degraded"] is False


async def test_the_a2a_result_says_degraded(tmp_path: Path) -> None:
    from evaluator_agent.service.client import call_proctor
    from evaluator_agent.service.server import create_app as create_proctor

    sock = bound_socket()
    try:
        async with serve_app(_down_app(sock.getsockname()[1])) as base, \
                serve_app(lambda b: create_proctor(str(tmp_path / "p.db"), public_url=b)) as proctor:
            result = await call_proctor(proctor, {"target": f"{base}/down/.well-known/agent-card.json",
                                                  "labelset": "smoke", "labels": [LABELS[0].id]})
    finally:
        sock.close()
    s = result["summary"]
    assert s["degraded"] is True and s["errors"] == 1 and s["infra_error_rate"] == 1.0
    assert result["investigations"][0]["error_kind"] == "network"
