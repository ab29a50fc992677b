"""The trace tools: ``search_spans`` and ``get_trace`` (one trace as a tree)."""

from __future__ import annotations

from typing import Any

from evaluator_agent.telemetry.tools_base import (
    MAX_RECORD_LIMIT,
    ToolBase,
    ToolError,
    clip,
    clip_deep,
    iso,
)

__all__ = ["TraceTools"]


class TraceTools(ToolBase):
    """``search_spans`` and ``get_trace``."""

    def _span_item(self, r: dict[str, Any]) -> dict[str, Any]:
        return {
            "trace_id": r["trace_id"],
            "span_id": r["span_id"],
            "parent_id": r.get("parent_id"),
            "service": r.get("service"),
            "name": r.get("name"),
            "resource": clip(r.get("resource")),
            "timestamp": iso(r["start"]),
            "ts": r["start"],
            "duration": r.get("duration"),
            "error": bool(r.get("error", False)),
            "tags": clip_deep(r.get("tags") or {}),
        }

    def _search_spans(self, args: dict[str, Any]) -> dict[str, Any]:
        return self._record_page(self.index.spans, args, "search_spans", "spans", MAX_RECORD_LIMIT, self._span_item)

    def _get_trace(self, args: dict[str, Any]) -> dict[str, Any]:
        tid = args["trace_id"].strip()
        table = self.index.spans
        col = table.keyword.get("trace_id")
        code = col.lookup.get(tid.lower()) if col is not None else None
        recs = [table.records[r] for r in col.postings[code]] if col is not None and code else []
        recs = [s for s in recs if s["start"] <= self.now]
        if not recs:
            raise ToolError(f"unknown trace_id {tid!r}: no span of this trace exists (before now)")
        ids = {s["span_id"] for s in recs}
        children: dict[str | None, list[dict[str, Any]]] = {}
        for s in recs:
            parent = s.get("parent_id")
            children.setdefault(parent if parent in ids else None, []).append(s)
        for lst in children.values():
            lst.sort(key=lambda s: (s["start"], s["span_id"]))
        ordered: list[dict[str, Any]] = []
        stack = [(s, 0) for s in reversed(children.get(None, []))]
        while stack:  # depth-first, children by start time: the order a trace view shows
            s, d = stack.pop()
            item = self._span_item(s)
            item["depth"] = d
            ordered.append(item)
            stack.extend((c, d + 1) for c in reversed(children.get(s["span_id"], [])))
        services = list(dict.fromkeys(s["service"] for s in ordered))
        content: dict[str, Any] = {"trace_id": recs[0]["trace_id"], "spans": ordered, "services": services}
        self._fit(content, "spans")
        return content
