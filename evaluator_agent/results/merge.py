"""Join the shard databases of sharded runs (``proctor run --shard I/N``) into one run.

Every shard records the same run id in its own SQLite file. ``merge`` validates all of them
before writing anything (same label set content, same target, same shard count), copies their
investigations with turns and tool calls into the destination, and writes one run row whose
summary is recomputed over the union, so ``proctor show RUN --json`` has the shape of
``proctor run --json``. Merging again, or merging a shard twice, changes nothing.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evaluator_agent.core.records import RunStatus
from evaluator_agent.results.runs import run_label_meta, summarize
from evaluator_agent.results.store import Store


class MergeError(ValueError):
    """The shard databases cannot be joined; nothing was written."""


@dataclass
class _RunParts:
    run_id: str
    rows: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (source, runs row)


def _read_runs(path: str) -> list[dict[str, Any]]:
    if not Path(path).is_file():
        raise MergeError(f"{path}: no such file")
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            conn.row_factory = sqlite3.Row
            rows = [dict(r) for r in conn.execute("SELECT * FROM runs")]
            conn.execute("SELECT id FROM investigations LIMIT 1")
        finally:
            conn.close()
    except sqlite3.DatabaseError as e:
        raise MergeError(f"{path}: not a proctor results database ({e})") from None
    for r in rows:
        for k in ("options", "manifest", "summary"):
            try:
                r[k] = json.loads(r[k]) if r.get(k) else None
            except (TypeError, ValueError):
                raise MergeError(f"{path}: run {r.get('run_id')}: unreadable {k}") from None
    return rows


def _shard_indices(manifest: dict[str, Any]) -> tuple[int | None, list[int]]:
    """(shard count, shard indices) a run row stands for; (None, []) for an unsharded run."""
    if "shard" in manifest:
        sh = manifest["shard"]
        return int(sh["count"]), [int(sh["index"])]
    if "shards" in manifest:
        sh = manifest["shards"]
        return int(sh["count"]), [int(i) for i in sh.get("merged", [])]
    return None, []


_STATUS_ORDER = ["failed", "running", "interrupted", "partial", "completed"]


def plan(into: Store, paths: list[str]) -> dict[str, _RunParts]:
    """Group the runs of every source (and what ``into`` already holds) by run id; validate."""
    runs: dict[str, _RunParts] = {}
    for p in paths:
        for row in _read_runs(p):
            runs.setdefault(row["run_id"], _RunParts(row["run_id"])).rows.append((p, row))
    if not runs:
        raise MergeError("no runs in " + ", ".join(paths))
    for run_id, parts in runs.items():
        existing = into.get_run(run_id)
        if existing is not None:
            parts.rows.insert(0, (into.path, existing))
        first_src, first = parts.rows[0]
        counts = set()
        for src, row in parts.rows:
            for key in ("labelset_hash", "target_url"):
                if row[key] != first[key]:
                    raise MergeError(f"run {run_id}: {key} differs between {first_src} ({first[key]!r}) and {src} ({row[key]!r})")
            n, _ = _shard_indices(row["manifest"] or {})
            counts.add(n)
        if len(counts) > 1:
            raise MergeError(f"run {run_id}: shards of different shard counts {sorted(c or 1 for c in counts)}")
    return runs


def merge(into: Store, paths: list[str]) -> list[dict[str, Any]]:
    """Merge every run found in ``paths`` into ``into``; returns one line of facts per run."""
    runs = plan(into, paths)
    for p in dict.fromkeys(paths):
        if Path(p).resolve() != Path(into.path).resolve():
            into.import_from(p, list(runs))
    out = []
    for run_id, parts in runs.items():
        rows = [r for _, r in parts.rows]
        count, indices = None, set()
        for r in rows:
            n, idx = _shard_indices(r["manifest"] or {})
            count = n if n is not None else count
            indices.update(idx)
        manifest = dict(rows[0]["manifest"] or {})
        manifest.pop("shard", None)
        if manifest.get("instances"):  # each shard drew and described only its own labels
            meta: dict[str, Any] = {}
            items: dict[str, Any] = {}
            for r in rows:
                meta.update((r["manifest"] or {}).get("label_meta") or {})
                items.update(((r["manifest"] or {}).get("instances") or {}).get("items") or {})
            manifest["label_meta"] = meta
            manifest["instances"] = {**manifest["instances"], "items": items or manifest["instances"].get("items", {})}
        if count is not None:
            manifest["shards"] = {"count": count, "merged": sorted(indices)}
        investigations = into.investigations(run_id)
        expected = len(manifest.get("label_ids") or []) * int((manifest.get("options") or {}).get("attempts", 1))
        recorded = len(into.recorded(run_id))
        statuses = [r["status"] for r in rows]
        if count is not None and len(indices) < count:
            status = "partial"
        elif all(s == "completed" for s in statuses) or (expected and recorded >= expected):
            status = "completed"
        else:
            status = min(statuses, key=lambda s: _STATUS_ORDER.index(s) if s in _STATUS_ORDER else 0)
        errors = sorted({r["error"] for r in rows if r.get("error")})
        row = dict(rows[0])
        row.update(
            manifest=manifest,
            status=status,
            created_at=min(r["created_at"] for r in rows if r.get("created_at") is not None),
            finished_at=max((r["finished_at"] for r in rows if r.get("finished_at") is not None), default=None),
            summary=summarize(investigations, run_label_meta(row)),
            error="; ".join(errors)[:500] if errors and status != "completed" else None,
        )
        into.put_run_row(row)
        out.append({
            "run_id": run_id, "status": status, "shards": (f"{len(indices)}/{count}" if count is not None else "unsharded"),
            "missing_shards": sorted(set(range(count)) - indices) if count is not None else [],
            "investigations": len(investigations), "expected": expected,
        })
    return out


async def report(store: Store, merged: list[dict[str, Any]], obs: Any) -> None:
    """Run-level Datadog figures of completed merged runs through ``obs`` (the process's
    ``datadog.observability`` sink): shards send none, the merge sends them once."""
    if not obs.enabled:
        return
    for m in merged:
        if m["status"] != RunStatus.COMPLETED:
            continue
        run = store.get_run(m["run_id"])
        async with obs.run(m["run_id"], run["manifest"] or {}, run_label_meta(run)) as r:
            r.done(store.result(m["run_id"]).as_dict(), store)


def checkpoint_path(directory: str | Path, run_id: str, shard: tuple[int, int] | None) -> str:
    """Where a run (or one shard of it) keeps its durable copy: DIR/RUN[.shard-I-of-N].db."""
    name = run_id + (f".shard-{shard[0]}-of-{shard[1]}" if shard else "") + ".db"
    return str(Path(directory) / name)


def _status(path: str, run_id: str) -> str | None:
    try:
        rows = [r for r in _read_runs(path) if r["run_id"] == run_id]
    except MergeError:
        return None
    return rows[0]["status"] if rows else None


def merge_when_complete(directory: str | Path, run_id: str, count: int, obs: Any = None) -> dict[str, Any] | None:
    """When every shard checkpoint of a run in ``directory`` is complete, merge them into
    ``DIR/RUN.db`` (atomically, through the Store's checkpoint) and send the run's Datadog figures
    through ``obs`` (see :func:`report`).
    The last shard of a Cloud Run Jobs execution to finish does this; the others find shards
    missing and return None, as does a shard that finds the merged run already there."""
    paths = [checkpoint_path(directory, run_id, (i, count)) for i in range(count)]
    if not all(Path(p).is_file() and _status(p, run_id) == "completed" for p in paths):
        return None
    final = Path(directory) / f"{run_id}.db"
    if final.is_file() and _status(str(final), run_id) == "completed":
        return None
    with tempfile.TemporaryDirectory(prefix="proctor-merge-") as tmp:
        store = Store(Path(tmp) / "merged.db", checkpoint=final)
        try:
            merged = merge(store, paths)
            if obs is not None:
                asyncio.run(report(store, merged, obs))
        finally:
            store.close()  # publishes DIR/RUN.db: copy, then atomic rename
    return next((m for m in merged if m["run_id"] == run_id), None)
