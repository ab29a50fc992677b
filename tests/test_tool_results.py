"""Every tool's result matches the shape its catalog entry documents (``ToolSpec.returns``).

Agent authors code against these schemas (they are in the briefing); a result that drifts from
its schema breaks them silently. Each tool is called in several ways on every smoke world, and
every successful result is validated.
"""

from __future__ import annotations

from typing import Any

import pytest
from jsonschema import Draft202012Validator

from evaluator_agent.core.labels import load_labelset, snapshots_dir
from evaluator_agent.telemetry.catalog import TOOL_SPECS
from evaluator_agent.telemetry.index import WorldIndex
from evaluator_agent.telemetry.tools import Toolbox
from evaluator_agent.telemetry.world import load_snapshot_dict

VALIDATORS = {t.name: Draft202012Validator(t.returns) for t in TOOL_SPECS if t.returns}


def test_every_tool_documents_its_result() -> None:
    assert set(VALIDATORS) == {t.name for t in TOOL_SPECS}
    for t in TOOL_SPECS:
        Draft202012Validator.check_schema(t.returns)
        assert not VALIDATORS[t.name].is_valid({}), t.name  # the schemas do require something
    bad_log = {"logs": [{"timestamp": "x", "ts": "late", "service": "a", "status": "error", "message": "m"}],
               "total_matched": 1, "next_cursor": None}  # fmt: skip
    assert not VALIDATORS["search_logs"].is_valid(bad_log)


def _calls(tb: Toolbox, services: list[str]) -> list[tuple[str, dict[str, Any]]]:
    s = services[0]
    return [
        ("list_services", {}), ("list_services", {"query": "kind:database", "limit": 3}),
        ("get_service_dependencies", {"service": s, "direction": "both", "depth": 3}),
        ("list_metrics", {"limit": 5}), ("list_metrics", {"query": f"service:{s}"}),
        ("query_metrics", {"query": "sum:trace.http.request.errors{*} by {service}", "from": "now-2h"}),
        ("query_metrics", {"query": f"avg:trace.http.request.duration{{service:{s}}} by {{version}}.rollup(max, 300)"}),
        ("query_metrics", {"query": "avg:no.such.metric{*}"}),
        ("search_logs", {"query": "status:error", "limit": 500}), ("search_logs", {"query": f"service:{s}", "sort": "timestamp"}),
        ("search_logs", {"query": "\"no such phrase anywhere\""}),
        ("aggregate_logs", {"query": "status:error", "group_by": ["service", "status"]}),
        ("aggregate_logs", {"query": "*", "group_by": ["service"], "interval": 300}),
        ("search_spans", {"query": "status:error", "limit": 20}), ("search_spans", {"query": f"service:{s}"}),
        ("get_events", {}), ("get_events", {"query": "source:deploy", "limit": 3}),
        ("get_monitors", {}), ("get_monitors", {"query": "status:alert"}),
    ]  # fmt: skip


@pytest.mark.parametrize("label", load_labelset("smoke").labels, ids=lambda lb: lb.id)
def test_results_match_their_documented_shapes(label: Any) -> None:
    world = load_snapshot_dict(label.world.snapshot, snapshots_dir())
    tb = Toolbox(WorldIndex.from_dict(world), label.task.trigger.fired_at.timestamp() + 300)
    services = [s["name"] for s in world["topology"]["services"]]
    calls = _calls(tb, services)
    seen = set()
    for name, args in calls:
        out = tb.call(name, args)
        assert out.ok, (name, args, out.error)
        _check(name, args, out.content)
        seen.add(name)
        if name == "search_spans" and out.content["spans"]:
            trace = tb.call("get_trace", {"trace_id": out.content["spans"][0]["trace_id"]})
            assert trace.ok
            _check("get_trace", {}, trace.content)
            seen.add("get_trace")
        if out.content.get("next_cursor"):  # the next page has the same shape
            nxt = tb.call(name, {**args, "cursor": out.content["next_cursor"]})
            assert nxt.ok, nxt.error
            _check(name, args, nxt.content)
    assert seen == set(VALIDATORS)


def _check(name: str, args: dict[str, Any], content: Any) -> None:
    errors = sorted(VALIDATORS[name].iter_errors(content), key=lambda e: list(e.absolute_path))
    assert not errors, f"{name}({args}): {errors[0].message} at {list(errors[0].absolute_path)}"
