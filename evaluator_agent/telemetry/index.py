"""A query index over one world snapshot, built from the raw dict (no per-record validation).

The tools must answer in milliseconds on worlds of a million log lines, in pure Python.
Three ideas carry that:

- **Rows sorted by time.** Logs, spans and events are kept sorted by timestamp, so a time
  window is a contiguous row range ``[lo, hi)`` found by bisection, and every posting
  list (sorted row ids) is cut to the window by bisection too.
- **Columns with codes and postings.** Each keyword field (``service``, ``status``,
  ``host``, every attribute or tag key with at most ``MAX_KEYWORD_VALUES`` distinct
  values, and ids such as ``trace_id``) has a per-row code array and, per value, the
  sorted rows holding it. A term *generates* rows from postings, or *filters* candidate
  rows by looking their codes up; both run as C-level pipelines (``compress``, ``map``,
  ``bytes.translate``), never as Python loops over rows. Numeric fields with too many
  values for codes (durations) get a sorted value index instead.
- **A tiny planner.** An AND generates from its most selective child and filters with the
  rest; OR unites; NOT filters (or, at the top, subtracts from the window). Only a query
  with nothing selective falls back to scanning the window.

Free text is one lower-case blob of all texts plus row offsets, and *templates*: every
text with its digits and letters a-f replaced by ``#`` (one ``bytes.translate`` over the
blob), so lines that differ only in numbers and hex ids share a template. A term is
translated the same way and looked up in the few thousand templates; the rows of the
matching templates are then checked against their own text when the term has digits or
letters a-f. Results are exact; the templates only avoid reading most rows.

Here: :class:`WorldIndex` (one snapshot) and :class:`MetricIndex` (its metric series). Beside
it: ``index_tables.py`` (record tables), ``index_columns.py`` (their columns),
``index_plan.py`` (the planner) and ``index_rows.py`` (the row sets a search returns).

The build disables the cyclic garbage collector (millions of objects, none freed).
``from_dict`` on 1M log lines takes a few seconds; the benchmark in
``tests/benchmarks/bench_tools.py`` measures it and the latency of every tool.
"""

from __future__ import annotations

import gc
from collections.abc import Iterable
from typing import Any

from evaluator_agent.telemetry.index_columns import (
    MAX_KEYWORD_VALUES,
    KeywordColumn,
    NumericColumn,
    TextColumn,
)
from evaluator_agent.telemetry.index_rows import RowSet, SearchResult
from evaluator_agent.telemetry.index_tables import FieldSpec, RecordTable, TableSpec

__all__ = [
    "MAX_KEYWORD_VALUES",
    "KeywordColumn",
    "MetricIndex",
    "NumericColumn",
    "RecordTable",
    "RowSet",
    "SearchResult",
    "TextColumn",
    "WorldIndex",
]


# --------------------------------------------------------------------------- metrics


class MetricIndex:
    """Series grouped by metric name, with per-metric tag postings."""

    def __init__(self, series: list[dict[str, Any]]) -> None:
        self.series = series
        self.by_name: dict[str, list[int]] = {}
        self.types: dict[str, str] = {}
        # metric -> tag key -> lower-case value -> series ids
        self.tag_postings: dict[str, dict[str, dict[str, list[int]]]] = {}
        for i, s in enumerate(series):
            name = s["metric"]
            self.by_name.setdefault(name, []).append(i)
            self.types.setdefault(name, s.get("type", "gauge"))
            tp = self.tag_postings.setdefault(name, {})
            for k, v in (s.get("tags") or {}).items():
                tp.setdefault(k, {}).setdefault(str(v).lower(), []).append(i)
        self.names = sorted(self.by_name)
        # tag key -> lower-case value -> series ids, across metrics (list_metrics filters)
        self.global_postings: dict[str, dict[str, list[int]]] = {}
        for name in self.names:
            for k, vals in self.tag_postings[name].items():
                g = self.global_postings.setdefault(k, {})
                for v, ids in vals.items():
                    g.setdefault(v, []).extend(ids)
        self.all_tags = {name: self.tag_values(self.by_name[name]) for name in self.names}

    def tag_values(self, ids: Iterable[int]) -> dict[str, list[str]]:
        """Tag key -> sorted distinct values over some series."""
        out: dict[str, set[str]] = {}
        for i in ids:
            for k, v in (self.series[i].get("tags") or {}).items():
                out.setdefault(k, set()).add(str(v))
        return {k: sorted(v) for k, v in sorted(out.items())}


# --------------------------------------------------------------------------- world


_BLANK_IS_ABSENT = {"": None}


def _log_spec() -> TableSpec:
    return TableSpec(
        kind="log",
        time_key="ts",
        keyword={
            "service": FieldSpec("service"),
            "host": FieldSpec("host", mapping=_BLANK_IS_ABSENT),
            "status": FieldSpec("status", "info"),
            "trace_id": FieldSpec("trace_id", mapping=_BLANK_IS_ABSENT),
        },
        numeric={},
        attrs_key="attrs",
        text=("message",),
        text_sep="",
        aliases={"level": "status"},
        unlimited=frozenset({"trace_id"}),
    )


def _span_spec() -> TableSpec:
    return TableSpec(
        kind="span",
        time_key="start",
        keyword={
            "service": FieldSpec("service"),
            "name": FieldSpec("name"),
            "resource": FieldSpec("resource"),
            "status": FieldSpec("error", False, {True: "error", False: "ok", None: "ok"}),
            "trace_id": FieldSpec("trace_id"),
        },
        numeric={"duration": FieldSpec("duration")},
        attrs_key="tags",
        text=("resource", "name"),
        text_sep=" ",
        aliases={"resource_name": "resource", "operation_name": "name"},
        unlimited=frozenset({"trace_id"}),
    )


def _event_spec() -> TableSpec:
    return TableSpec(
        kind="event",
        time_key="ts",
        keyword={"source": FieldSpec("source"), "id": FieldSpec("id")},
        numeric={},
        attrs_key="tags",
        text=("title", "text"),
        text_sep="\n",
        aliases={},
        unlimited=frozenset({"id"}),
    )


class WorldIndex:
    """Everything the tools need from one snapshot, indexed once."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.world_id: str = data.get("world_id", "")
        self.env: str = data.get("env", "prod")
        self.start: float = data.get("start", 0)
        self.end: float = data.get("end", 0)
        topo = data.get("topology") or {}
        self.services: list[dict[str, Any]] = sorted(topo.get("services") or [], key=lambda s: s["name"])
        self.service_by_name = {s["name"]: s for s in self.services}
        self.downstream: dict[str, list[tuple[str, str]]] = {}
        self.upstream: dict[str, list[tuple[str, str]]] = {}
        for d in topo.get("dependencies") or []:
            proto = d.get("protocol", "http")
            self.downstream.setdefault(d["source"], []).append((d["target"], proto))
            self.upstream.setdefault(d["target"], []).append((d["source"], proto))
        for adj in (self.downstream, self.upstream):
            for k in adj:
                adj[k].sort()
        self.metrics = MetricIndex(data.get("metrics") or [])
        self.logs = RecordTable(_log_spec(), list(data.get("logs") or []))
        self.spans = RecordTable(_span_spec(), list(data.get("spans") or []))
        self.events = RecordTable(_event_spec(), list(data.get("events") or []))
        self.monitors: list[dict[str, Any]] = sorted(data.get("monitors") or [], key=lambda m: m["id"])

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WorldIndex:
        """Index a snapshot dict (the world.py format). Raises ValueError on a malformed one."""
        if not isinstance(data, dict):
            raise ValueError("snapshot must be a JSON object")
        # Building allocates millions of small objects and frees almost none: the cyclic
        # collector would walk the whole snapshot again and again for nothing.
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            return cls(data)
        except (KeyError, TypeError, AttributeError) as e:
            raise ValueError(f"malformed snapshot: {type(e).__name__}: {e}") from e
        finally:
            if was_enabled:
                gc.enable()

    def known_entity(self, name: str) -> bool:
        return name in self.service_by_name or name in self.downstream or name in self.upstream

