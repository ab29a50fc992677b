"""A target cannot make the proctor parse or keep megabytes of tool-call arguments.

Issue 11, item 5: 8 x 110 KB queries per reply for 30 turns used to be stored whole (26 MB for
one investigation) and parsed on the event loop. A call over ``MAX_ARGUMENTS_BYTES`` is now
refused before anything parses it, and recorded as its size, hash and a prefix.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from evaluator_agent.core.labels import load_labelset
from evaluator_agent.core.protocol import Budget
from evaluator_agent.engine.investigation import investigate
from evaluator_agent.engine.local import LocalTarget
from evaluator_agent.engine.worlds import WorldCache
from evaluator_agent.results.store import Store
from evaluator_agent.telemetry.tools import MAX_ARGUMENTS_BYTES, stored_arguments

HUGE = "service:checkout " + "(" * 10 + "a OR " * 22_000 + ")" * 10  # ~110 KB, deep and long


def test_stored_arguments_keep_size_hash_and_prefix_only() -> None:
    small = {"query": "service:checkout status:error", "limit": 5}
    assert stored_arguments(small) is small
    big = {"query": HUGE}
    kept = stored_arguments(big)
    text = json.dumps(big, separators=(",", ":"))
    assert kept["_oversized"] is True and kept["bytes"] == len(text.encode())
    assert kept["sha256"] == hashlib.sha256(text.encode()).hexdigest()
    assert text.startswith(kept["prefix"]) and len(json.dumps(kept)) < 1024


@pytest.mark.anyio
async def test_oversized_calls_are_refused_and_stored_small(tmp_path: Path) -> None:
    label = next(lb for lb in load_labelset("smoke").labels if not lb.ground_truth.no_fault)
    turns = 12

    def flood(messages: list[tuple[str, Any]]) -> dict[str, Any]:
        n = sum(1 for role, _ in messages if role == "model")
        if n >= turns:
            return {"diagnosis": {"no_fault": True, "summary": "nothing"}}
        calls = [{"id": f"c{n}_ok", "name": "list_services", "arguments": {"limit": 3}}]
        calls += [{"id": f"c{n}_{i}", "name": "search_logs", "arguments": {"query": HUGE + str(i)}} for i in range(7)]
        return {"tool_calls": calls}  # 8 calls, the most one reply may carry

    res = await investigate(label, 1, LocalTarget(flood, "flood"), WorldCache(), Budget())
    assert res.end_reason == "diagnosis" and res.turns == turns + 1
    big = [c for c in res.call_records if c.name == "search_logs"]
    assert len(big) == 7 * turns and not any(c.ok for c in big)
    assert all(f"at most {MAX_ARGUMENTS_BYTES} are accepted" in (c.error or "") for c in big)
    honest = [c for c in res.call_records if c.name == "list_services"]
    assert len(honest) == turns and all(c.ok for c in honest)  # honest calls still run

    store = Store(tmp_path / "r.db")
    store.create_run("run_flood", {"target": {"name": "flood", "version": "1", "url": "local"},
                                   "labelset": {"name": "smoke", "hash": "h"}})  # fmt: skip
    store.record_investigation("run_flood", res)
    rows = store.tool_calls(f"run_flood/{label.id}/1")
    assert len(rows) == len(res.call_records) == 8 * turns
    assert all(r["arguments"].get("_oversized") for r in rows if r["name"] == "search_logs")
    stored = sum(len(json.dumps(r)) for r in rows)
    assert stored < 1_000_000, stored  # 84 calls of 110 KB each were 9.2 MB before
