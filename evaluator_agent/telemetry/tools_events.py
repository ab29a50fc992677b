"""The change and alerting tools: ``get_events`` and ``get_monitors`` (state as of ``now``)."""

from __future__ import annotations

from typing import Any

from evaluator_agent.telemetry.search_parser import parse_search_query
from evaluator_agent.telemetry.search_query import compile_predicate
from evaluator_agent.telemetry.tools_base import MAX_LIMIT, ToolBase, clip, iso
from evaluator_agent.telemetry.world import monitor_state_at

__all__ = ["EventTools"]

MAX_TRANSITIONS = 20


class EventTools(ToolBase):
    """``get_events`` and ``get_monitors``."""

    _monitor_cache: dict[Any, tuple[str, list[dict[str, Any]]]] | None  # None until first asked

    def _event_item(self, r: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": r.get("id"),
            "timestamp": iso(r["ts"]),
            "ts": r["ts"],
            "source": r.get("source"),
            "title": clip(r.get("title", "")),
            "text": clip(r.get("text", "")),
            "tags": [f"{k}:{v}" for k, v in sorted((r.get("tags") or {}).items())],
        }

    def _get_events(self, args: dict[str, Any]) -> dict[str, Any]:
        return self._record_page(self.index.events, args, "get_events", "events", MAX_LIMIT, self._event_item)

    _STATE_FORMS = {
        "alert": ["alert", "alerting", "triggered"],
        "warn": ["warn", "warning"],
        "no data": ["no data", "nodata", "no_data"],
        "ok": ["ok"],
    }
    _STATE_ORDER = {"Alert": 0, "Warn": 1, "No Data": 2, "OK": 3}

    def _monitor_states(self) -> dict[Any, tuple[str, list[dict[str, Any]]]]:
        """State as of ``now`` and past transitions of every monitor (computed once)."""
        if self._monitor_cache is None:
            self._monitor_cache = {m["id"]: monitor_state_at(m, self.now) for m in self.index.monitors}
        return self._monitor_cache

    def _get_monitors(self, args: dict[str, Any]) -> dict[str, Any]:
        q = args.get("query") or ""
        node = parse_search_query(q)
        states = self._monitor_states()

        def get(m: dict[str, Any], key: str, attr: bool) -> Any:
            if not attr:
                if key in ("status", "state"):
                    st = states[m["id"]][0].lower()
                    return self._STATE_FORMS.get(st, [st])
                if key in ("name", "type", "id", "query", "message"):
                    return m.get(key)
            return (m.get("tags") or {}).get(key)

        pred = compile_predicate(node, get, lambda m: m["name"].lower())
        matching = [m for m in self.index.monitors if pred(m)]
        matching.sort(key=lambda m: (self._STATE_ORDER.get(states[m["id"]][0], 9), m["id"]))
        limit, fp, offset = self._page_start(args, "get_monitors", q.strip())
        items = []
        for m in matching[offset : offset + limit]:
            state, past = states[m["id"]]
            items.append(
                {
                    "id": m["id"],
                    "name": m["name"],
                    "type": m.get("type", "metric alert"),
                    "query": m.get("query", ""),
                    "message": clip(m.get("message", "")),
                    "tags": [f"{k}:{v}" for k, v in sorted((m.get("tags") or {}).items())],
                    "state": state,
                    "transitions": [
                        {"timestamp": iso(t["ts"]), "ts": t["ts"], "from": t["from"], "to": t["to"], "value": t.get("value")}
                        for t in past[-MAX_TRANSITIONS:]
                    ],
                }
            )
        content: dict[str, Any] = {"monitors": items, "total": len(matching)}
        return self._page_end(content, "monitors", fp, offset, len(matching))
