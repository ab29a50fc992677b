"""The briefing: the first message of every investigation, the same for every kind of target."""

from __future__ import annotations

from typing import Any

from evaluator_agent.core.clock import utc
from evaluator_agent.core.labels import Label
from evaluator_agent.core.protocol import Briefing, Budget, Problem, reply_schemas


def build_briefing(label: Label, header: dict[str, Any], budget: Budget, investigation_id: str) -> Briefing:
    from evaluator_agent.telemetry.catalog import TOOL_SPECS

    trig = label.task.trigger
    monitor = None
    if trig.monitor_id is not None and trig.monitor_id in header["monitors"]:
        m = header["monitors"][trig.monitor_id]
        monitor = {
            "id": m["id"],
            "name": m["name"],
            "type": m.get("type", ""),
            "query": m.get("query", ""),
            "message": m.get("message", ""),
            "tags": [f"{k}:{v}" for k, v in sorted(m.get("tags", {}).items())],
        }
    return Briefing(
        investigation_id=investigation_id,
        problem=Problem(title=trig.title, fired_at=trig.fired_at, monitor=monitor, prompt=label.task.prompt),
        now=utc(header["end"]),
        tools=TOOL_SPECS,
        budget=budget,
        reply_format=reply_schemas(),
    )
