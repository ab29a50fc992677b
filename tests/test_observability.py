"""Datadog observability against a local intake on 127.0.0.1, with the real ddtrace and
datadog-api-client: spans, evaluations, metrics, dashboards and monitors, failure modes."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from evaluator_agent.core.labels import load_labelset
from evaluator_agent.datadog import observability
from tests.conftest import serve_app
from tests.dd_intake import serve_intake
from tests.targets import build_targets_app, script_fn

ROOT = Path(__file__).resolve().parent.parent
ID_TAG_KEYS = ("run_id", "label_id", "investigation_id", "run", "label", "investigation", "context_id")

SCRIPT = script_fn([
    {"tool_calls": [{"id": "c1", "name": "list_services", "arguments": {}},
                    {"id": "c2", "name": "get_monitors", "arguments": {}}],
     "usage": {"input_tokens": 100, "output_tokens": 20, "cost_usd": 0.001}},
    {"diagnosis": {"root_causes": [{"entity": "api-gateway", "mechanism": "bad_release"}], "summary": "a guess"}},
])


def _labels(n: int = 2) -> list[str]:
    return [lb.id for lb in load_labelset("smoke").labels[:n]]


@pytest.fixture(scope="module")
def intake():
    """One intake for the module: LLM Observability reads its origin once, at enable, and
    enabling it again later in a process flushes the tracer queue synchronously."""
    with serve_intake() as it:
        yield it
        it.reset("ok")
        try:
            from ddtrace.llmobs import LLMObs

            if LLMObs.enabled:
                LLMObs.disable()
        except ImportError:
            pass


@pytest.fixture
def dd_env(monkeypatch, intake):
    """Point everything at the intake (reset to ``mode``); always resets the observer after."""

    def apply(mode: str = "ok", **extra: str) -> Any:
        intake.reset(mode)
        url = intake.url
        env = {
            "DD_API_KEY": "test-api-key", "DD_APP_KEY": "test-app-key", "DD_SITE": "datadoghq.com", "DD_ENV": "test",
            "DD_SERVICE": "proctor-test", "PROCTOR_DATADOG_API_URL": url, "DD_LLMOBS_OVERRIDE_ORIGIN": url,
            "DD_TRACE_AGENT_URL": url, "DD_APM_TRACING_ENABLED": "false", "DD_INSTRUMENTATION_TELEMETRY_ENABLED": "false",
            "DD_REMOTE_CONFIGURATION_ENABLED": "false", "_DD_LLMOBS_WRITER_INTERVAL": "0.2",
            "PROCTOR_DATADOG_FLUSH_TIMEOUT": "2", **extra,
        }
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        observability.configure(dry_run=None)
        return intake

    yield apply
    intake.reset("ok")
    observability.configure(dry_run=None)


async def _run(tmp_path: Path, labels: list[str], attempts: int = 1) -> tuple[dict[str, Any], float]:
    from evaluator_agent.engine.orchestrator import run_request
    from evaluator_agent.engine.request import parse_request
    from evaluator_agent.results.store import Store

    async with serve_app(lambda base: build_targets_app(base, {"scripted": (SCRIPT, False)})) as base:
        req = parse_request({"target": f"{base}/scripted/.well-known/agent-card.json", "labelset": "smoke",
                             "labels": labels, "attempts": attempts, "concurrency": 4})
        store = Store(str(tmp_path / "p.db"))
        t0 = time.monotonic()
        try:
            result = await run_request(req, store)
        finally:
            store.close()
        return result, time.monotonic() - t0


def _tags(series: dict[str, Any]) -> dict[str, str]:
    return dict(t.split(":", 1) for t in series.get("tags", []))


@pytest.mark.anyio
async def test_spans_evaluations_and_metrics_reach_the_intake(tmp_path, dd_env) -> None:
    intake = dd_env()
    labels = _labels(2)
    result, _ = await _run(tmp_path, labels)
    from ddtrace.llmobs import LLMObs

    LLMObs.flush()
    n_tools = sum(i["tool_calls"] for i in result["investigations"])
    assert intake.wait_for(lambda: len(intake.llmobs_spans()) >= 1 + 2 * len(labels) + n_tools)
    assert intake.wait_for(lambda: len(intake.evaluations()) >= 2 * len(labels))
    spans = intake.llmobs_spans()
    evals = intake.evaluations()
    series = intake.series()
    headers = [r.headers for r in intake.requests if r.path.startswith("/api/v2/series")]

    kinds = {s["span_id"]: s["meta"]["span"]["kind"] for s in spans}
    by_id = {s["span_id"]: s for s in spans}
    workflows = [s for s in spans if s["meta"]["span"]["kind"] == "workflow"]
    agents = [s for s in spans if s["meta"]["span"]["kind"] == "agent"]
    tools = [s for s in spans if s["meta"]["span"]["kind"] == "tool"]
    tasks = [s for s in spans if s["meta"]["span"]["kind"] == "task"]
    assert len(workflows) == 1 and len(agents) == len(labels) and len(tools) == n_tools and len(tasks) == len(labels)
    wf = workflows[0]
    # Session id = run id; the run's agents hang off its workflow, tools and scoring off their agent.
    assert wf["session_id"] == result["run_id"] and "run_id:" + result["run_id"] in wf["tags"]
    for a in agents:
        assert a["parent_id"] == wf["span_id"] and a["session_id"] == result["run_id"]
        assert "briefing" in a["meta"]["input"]["value"].lower() or len(a["meta"]["input"]["value"]) > 100
        assert "api-gateway" in a["meta"]["output"]["value"]
        md = a["meta"]["metadata"]
        assert md["segment"] and md["difficulty_tier"] and md["attempt"] == 1 and md["target"]["name"] == "scripted"
        assert any(t.startswith("label_id:") for t in a["tags"]) and any(t.startswith("investigation_id:") for t in a["tags"])
    for t in tools + tasks:
        assert kinds[t["parent_id"]] == "agent"
    assert {t["name"] for t in tools} == {"list_services", "get_monitors"}
    assert all(len(t["meta"]["output"]["value"]) <= observability.TOOL_RESULT_CHARS + 40 for t in tools)

    # Evaluations joined to the agent span of their investigation.
    agent_ids = {a["span_id"] for a in agents}
    joined = {(e["join_on"]["span"]["span_id"], e["label"]) for e in evals}
    for sid in agent_ids:
        assert (sid, "proctor_score") in joined and (sid, "proctor_passed") in joined
        assert any(lbl.startswith("proctor_subscore_") for s, lbl in joined if s == sid)
    for e in evals:
        assert e["join_on"]["span"]["trace_id"] == by_id[e["join_on"]["span"]["span_id"]]["trace_id"]
    assert {e["categorical_value"] for e in evals if e["label"] == "proctor_passed"} <= {"pass", "fail"}

    # Metric series: proctor.*, no ids among tag keys or values.
    assert headers and all(h.get("dd-api-key") == "test-api-key" for h in headers)
    names = {s["metric"] for s in series}
    assert all(n.startswith("proctor.") for n in names)
    assert {"proctor.investigation.score", "proctor.investigation.passed", "proctor.investigation.turns",
            "proctor.investigation.tool_calls", "proctor.investigation.duration", "proctor.investigation.errors",
            "proctor.run.pass_rate", "proctor.run.pass_rate.by_segment", "proctor.run.pass_rate.by_tier",
            "proctor.run.pass_hat_k", "proctor.investigation.cost_usd", "proctor.run.ac_at_1",
            "proctor.run.mechanism_accuracy", "proctor.run.degraded"} <= names
    assert {s["points"][0]["value"] for s in series if s["metric"] == "proctor.run.degraded"} == {0.0}
    ids = {result["run_id"], *labels, *(str(v) for v in [])}
    for s in series:
        tags = _tags(s)
        assert not set(tags) & set(ID_TAG_KEYS), s
        assert not any(i in v for v in tags.values() for i in ids), s
        assert tags["env"] == "test" and tags["service"] == "proctor-test" and tags["target"] == "scripted"
        assert tags["labelset"] == "smoke"
    seg = [s for s in series if s["metric"] == "proctor.run.pass_rate.by_segment"]
    assert {_tags(s)["segment"] for s in seg} == {lb.taxonomy.segment for lb in load_labelset("smoke").labels if lb.id in labels}


@pytest.mark.anyio
async def test_label_difficulty_from_the_irt_fit_is_sent_without_label_ids(tmp_path, dd_env) -> None:
    from evaluator_agent.results.store import Store

    labels = _labels(2)
    store = Store(str(tmp_path / "p.db"))
    store.save_difficulty([{"label_id": lid, "difficulty": 0.7 * i - 0.2, "se": 0.5, "n": 3, "passed": 1, "tier": "easy",
                            "flag": None, "suggested_tier": None} for i, lid in enumerate(labels)], [], fitted_at=time.time())
    store.close()
    intake = dd_env()
    await _run(tmp_path, labels)
    series = intake.series()
    diff = [s for s in series if s["metric"].startswith("proctor.label.difficulty")]
    assert {s["metric"] for s in diff} >= {"proctor.label.difficulty.mean", "proctor.label.difficulty.histogram"}
    for s in diff:
        tags = _tags(s)
        assert "difficulty_tier" in tags and not set(tags) & set(ID_TAG_KEYS)
        assert not any(lid in t for t in s["tags"] for lid in labels)


def test_dashboards_and_monitors_are_valid_client_models() -> None:
    from evaluator_agent.datadog.setup import load_definitions, validated

    dashboards, monitors = validated()
    titles = {d.title for d in dashboards}
    assert any("Benchmark difficulty" in t for t in titles) and any("Agent performance" in t for t in titles)
    raw_d, raw_m = load_definitions()
    text = json.dumps(raw_d)
    assert "proctor.label.difficulty" in text and "proctor.run.pass_at_1" in text and "cost_usd" in text
    assert len(monitors) >= 2 and all("managed_by:incident-proctor" in m.tags for m in monitors)
    queries = " ".join(m["query"] for m in raw_m)
    assert "pass_rate.by_segment" in queries and "error_kind:harness" in queries
    for m in raw_m:  # monitors query metrics without ids
        assert not any(k in m["query"] for k in ("run_id", "label_id", "investigation_id"))


def test_setup_is_idempotent_through_the_cli(dd_env, tmp_path, capsys) -> None:
    from evaluator_agent.cli.main import main as cli_main

    intake = dd_env()
    assert cli_main(["datadog", "setup"]) == 0
    first = capsys.readouterr().out
    creates = [r for r in intake.requests if r.method == "POST"]
    assert len(creates) == 4 and first.count("created") == 4
    assert cli_main(["datadog", "setup"]) == 0
    second = capsys.readouterr().out
    assert [r for r in intake.requests if r.method == "POST"] == creates, "second setup created something"
    assert second.count("updated") == 4 and "created" not in second
    assert len(intake.dashboards) == 2 and len(intake.monitors) == 2
    assert all(r.headers.get("dd-application-key") == "test-app-key" for r in intake.requests)
    # Dry run: payloads to a file, nothing sent.
    n = len(intake.requests)
    out = tmp_path / "setup.jsonl"
    assert cli_main(["datadog", "setup", "--dry-run", str(out)]) == 0
    assert len(intake.requests) == n
    assert [json.loads(x)["type"] for x in out.read_text().splitlines()] == ["dashboard"] * 2 + ["monitor"] * 2


def test_setup_without_keys_fails_cleanly(monkeypatch, capsys) -> None:
    from evaluator_agent.cli.main import main as cli_main

    monkeypatch.delenv("DD_API_KEY", raising=False)
    monkeypatch.delenv("DD_APP_KEY", raising=False)
    assert cli_main(["datadog", "setup"]) == 1
    assert "DD_API_KEY" in capsys.readouterr().err


@pytest.mark.anyio
@pytest.mark.parametrize("mode", ["error", "hang"])
async def test_an_intake_that_fails_or_hangs_does_not_fail_or_slow_the_run(tmp_path, dd_env, mode) -> None:
    labels = _labels(1)
    _, baseline = await _run(tmp_path, labels)  # no DD_API_KEY: the no-op observer
    assert observability.get().enabled is False
    intake = dd_env(mode, PROCTOR_DATADOG_FLUSH_TIMEOUT="0.5")
    result, elapsed = await _run(tmp_path, labels)
    assert result["status"] == "completed" and result["summary"]["n"] == 1
    assert result["investigations"][0]["end_reason"] == "diagnosis"
    assert elapsed < baseline + 2.0, f"{mode}: run took {elapsed:.2f}s vs {baseline:.2f}s without Datadog"
    assert intake.wait_for(lambda: any(r.path == "/api/v2/series" for r in intake.requests), 5)
    if mode == "error":  # retried with backoff, then dropped (and logged)
        attempts = observability.Settings().max_attempts
        assert intake.wait_for(lambda: sum(r.path == "/api/v2/series" for r in intake.requests) >= attempts, 5)
    t0 = time.monotonic()
    observability.configure(dry_run=None)  # closing with an outage is bounded too
    assert time.monotonic() - t0 < 4.0


def test_without_api_key_nothing_is_imported_or_sent(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("DD_API_KEY", raising=False)
    code = (
        "import sys, asyncio\n"
        "from evaluator_agent.datadog import observability; from evaluator_agent.engine import orchestrator, investigation; from evaluator_agent.service import server\n"
        "obs = observability.get()\n"
        "assert type(obs) is observability.Observer, obs\n"
        "assert not [m for m in sys.modules if m.startswith(('ddtrace', 'datadog_api_client'))]\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
                         env={k: v for k, v in __import__("os").environ.items() if k != "DD_API_KEY"})
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


@pytest.mark.anyio
async def test_dry_run_writes_every_payload_and_sends_nothing(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("DD_API_KEY", "test-api-key")
    monkeypatch.setenv("PROCTOR_DATADOG_API_URL", "http://127.0.0.1:9")  # nothing listens: must not be used
    out = tmp_path / "dd.jsonl"
    observability.configure(dry_run=str(out))
    try:
        labels = _labels(1)
        result, _ = await _run(tmp_path, labels)
        with observability.get().llm("judge-model", "test", input_messages=[{"role": "user", "content": "hi"}]) as call:
            call.annotate(output="ok")
    finally:
        observability.configure(dry_run=None)
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    types = {x["type"] for x in lines}
    assert types == {"llmobs_span", "llmobs_evaluation", "metrics"}
    spans = [x["span"] for x in lines if x["type"] == "llmobs_span"]
    by_id = {s["span_id"]: s for s in spans}
    assert {s["kind"] for s in spans} == {"workflow", "agent", "tool", "task", "llm"}
    assert [s["output"] for s in spans if s["kind"] == "llm"] == ["ok"]
    for s in spans:
        if s["kind"] not in ("workflow", "llm"):
            assert s["parent_id"] in by_id and s["session_id"] == result["run_id"]
    series = [s for x in lines if x["type"] == "metrics" for s in x["payload"]["series"]]
    assert series and all(s["metric"].startswith("proctor.") for s in series)


@pytest.mark.anyio
async def test_cli_run_with_datadog_dry_run(tmp_path, monkeypatch) -> None:
    import anyio.to_thread

    from evaluator_agent.cli.main import main as cli_main

    monkeypatch.delenv("DD_API_KEY", raising=False)
    out = tmp_path / "dd.jsonl"
    async with serve_app(lambda base: build_targets_app(base, {"scripted": (SCRIPT, False)})) as base:
        code = await anyio.to_thread.run_sync(lambda: cli_main([
            "run", "--target", f"{base}/scripted/.well-known/agent-card.json", "--labels", _labels(1)[0],
            "--db", str(tmp_path / "c.db"), "--quiet", "--json", str(tmp_path / "r.json"), "--datadog-dry-run", str(out)]))
    observability.configure(dry_run=None)
    assert code == 0
    run_id = json.loads((tmp_path / "r.json").read_text())["run_id"]
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    wf = [x["span"] for x in lines if x["type"] == "llmobs_span" and x["span"]["kind"] == "workflow"]
    assert len(wf) == 1 and wf[0]["session_id"] == run_id
    assert any(x["type"] == "metrics" for x in lines)


def test_llmobs_enabled_then_google_adk_imports() -> None:
    """The ddtrace / ADK trap: LLMObs with integrations on breaks a later `import google.adk...`.
    Enabled our way (integrations off), ADK modules import fine. In a subprocess: global state."""
    code = (
        "import os\n"
        "os.environ.update(DD_API_KEY='x', PROCTOR_DATADOG_API_URL='http://127.0.0.1:9',\n"
        "    DD_LLMOBS_OVERRIDE_ORIGIN='http://127.0.0.1:9', DD_TRACE_AGENT_URL='http://127.0.0.1:9',\n"
        "    DD_INSTRUMENTATION_TELEMETRY_ENABLED='false', DD_REMOTE_CONFIGURATION_ENABLED='false')\n"
        "from evaluator_agent.datadog import observability\n"
        "obs = observability.get()\n"
        "assert type(obs) is observability.DatadogObserver, obs\n"
        "from ddtrace.llmobs import LLMObs\n"
        "assert LLMObs.enabled\n"
        "from google.adk.agents import LlmAgent\n"
        "from google.adk.runners import Runner\n"
        "from google.adk.models import BaseLlm, LlmResponse\n"
        "from google.adk.sessions import InMemorySessionService\n"
        "from google.adk.a2a.utils.agent_to_a2a import to_a2a\n"
        "from google.adk.a2a.executor.a2a_agent_executor import A2aAgentExecutor\n"
        "import mock_agents.server\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=90,
                         env=dict(__import__("os").environ, ADK_SUPPRESS_A2A_EXPERIMENTAL_FEATURE_WARNINGS="1"))
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-3000:]
