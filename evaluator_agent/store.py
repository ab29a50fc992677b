"""Results in SQLite (sqlite-utils, WAL): runs, investigations, turns, tool calls.

Tables::

    runs            run_id PK, status, created_at, finished_at, target_* , labelset, labelset_hash,
                    proctor_version, git_rev, options (JSON), manifest (JSON), summary (JSON)
    investigations  id PK (= run_id/label_id/attempt: recording twice replaces, never duplicates),
                    run_id, label_id, attempt, end_reason, error_kind, score, passed, subscores,
                    diagnosis, explanation, turns, tool_calls, invalid_calls, duration_s ...
    turns           investigation_id, idx, kind, reply_size, duration_s, n_calls, error
    tool_calls      investigation_id, turn, call_id, name, arguments, ok, error, result_size,
                    duration_ms, result_preview

An investigation and its turns and calls are written in one transaction when it ends, so a
crash loses at most the investigations in flight and never leaves half of one.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import sqlite_utils

from .investigation import InvestigationResult

SCHEMA_VERSION = 1


def _j(v: Any) -> str:
    return json.dumps(v, default=str, separators=(",", ":"))


class Store:
    """One SQLite database. Thread-safe by a lock; callers in async code keep writes short."""

    def __init__(self, path: str | Path):
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        # check_same_thread off: the server may read from worker threads; self._lock serialises access.
        conn = sqlite3.connect(self.path, check_same_thread=False, timeout=10.0)
        self.db = sqlite_utils.Database(conn)
        if self.path != ":memory:":
            self.db.enable_wal()
            self.db.conn.execute("PRAGMA synchronous=NORMAL")
        self._lock = threading.RLock()
        self._migrate()

    @classmethod
    def open(cls, path: str | Path) -> Store:
        return cls(path)

    def _migrate(self) -> None:
        with self._lock:
            self.db["runs"].create(
                {
                    "run_id": str, "status": str, "created_at": float, "finished_at": float,
                    "target_url": str, "target_name": str, "target_version": str,
                    "labelset": str, "labelset_hash": str, "proctor_version": str, "git_rev": str,
                    "options": str, "manifest": str, "summary": str, "error": str,
                },
                pk="run_id", if_not_exists=True,
            )
            self.db["investigations"].create(
                {
                    "id": str, "run_id": str, "label_id": str, "attempt": int, "investigation_id": str,
                    "context_id": str, "world": str, "started_at": float, "finished_at": float, "duration_s": float,
                    "end_reason": str, "error_kind": str, "error": str, "score": float, "passed": int,
                    "subscores": str, "explanation": str, "score_details": str, "diagnosis": str,
                    "turns": int, "tool_calls": int, "invalid_calls": int, "red_herrings_chased": int,
                    "tokens": str,
                },
                pk="id", if_not_exists=True,
            )
            self.db["turns"].create(
                {"investigation_id": str, "idx": int, "kind": str, "reply_size": int, "duration_s": float, "n_calls": int, "error": str},
                pk=("investigation_id", "idx"), if_not_exists=True,
            )
            self.db["tool_calls"].create(
                {
                    "investigation_id": str, "seq": int, "turn": int, "call_id": str, "name": str, "arguments": str,
                    "ok": int, "error": str, "result_size": int, "duration_ms": float, "result_preview": str,
                },
                pk=("investigation_id", "seq"), if_not_exists=True,
            )
            self.db["investigations"].create_index(["run_id"], if_not_exists=True)
            self.db["investigations"].create_index(["label_id"], if_not_exists=True)
            self.db["runs"].create_index(["created_at"], if_not_exists=True)

    # ------------------------------------------------------------------ writes

    def create_run(self, run_id: str, manifest: dict[str, Any]) -> None:
        target = manifest.get("target", {})
        row = {
            "run_id": run_id, "status": "running", "created_at": time.time(), "finished_at": None,
            "target_url": target.get("url", ""), "target_name": target.get("name", ""),
            "target_version": target.get("version", ""),
            "labelset": manifest.get("labelset", {}).get("name", ""),
            "labelset_hash": manifest.get("labelset", {}).get("hash", ""),
            "proctor_version": manifest.get("proctor_version", ""), "git_rev": manifest.get("git_rev", ""),
            "options": _j(manifest.get("options", {})), "manifest": _j(manifest), "summary": None, "error": None,
        }
        with self._lock, self.db.atomic():
            existing = list(self.db["runs"].rows_where("run_id = ?", [run_id], select="created_at"))
            if existing:  # resuming: the run keeps its place in history
                row["created_at"] = existing[0]["created_at"]
            self.db["runs"].upsert(row, pk="run_id", alter=True)

    def recorded(self, run_id: str) -> set[tuple[str, int]]:
        """(label, attempt) pairs of a run already recorded with a verdict about the agent;
        infra errors are not a verdict and get another try on resume."""
        with self._lock:
            rows = self.db.execute(
                "SELECT label_id, attempt FROM investigations WHERE run_id = ?"
                " AND (error_kind IS NULL OR error_kind NOT IN ('network', 'harness'))",
                [run_id],
            ).fetchall()
        return {(r[0], int(r[1])) for r in rows}

    def finish_run(self, run_id: str, status: str, summary: dict[str, Any] | None, error: str | None = None) -> None:
        with self._lock, self.db.atomic():
            self.db["runs"].update(
                run_id, {"status": status, "finished_at": time.time(), "summary": _j(summary) if summary else None, "error": error}
            )

    def record_investigation(self, run_id: str, r: InvestigationResult) -> None:
        key = f"{run_id}/{r.label_id}/{r.attempt}"
        row = {
            "id": key, "run_id": run_id, "label_id": r.label_id, "attempt": r.attempt,
            "investigation_id": r.investigation_id, "context_id": r.context_id, "world": r.world,
            "started_at": r.started_at, "finished_at": r.finished_at, "duration_s": r.duration_s,
            "end_reason": r.end_reason, "error_kind": r.error_kind, "error": r.error, "score": r.score,
            "passed": int(r.passed), "subscores": _j(r.subscores), "explanation": r.explanation,
            "score_details": _j(r.score_details), "diagnosis": _j(r.diagnosis) if r.diagnosis is not None else None,
            "turns": r.turns, "tool_calls": r.tool_calls, "invalid_calls": r.invalid_calls,
            "red_herrings_chased": r.red_herrings_chased, "tokens": _j(r.tokens) if r.tokens else None,
        }
        with self._lock, self.db.atomic():
            self.db.execute("DELETE FROM turns WHERE investigation_id = ?", [key])
            self.db.execute("DELETE FROM tool_calls WHERE investigation_id = ?", [key])
            self.db["investigations"].upsert(row, pk="id", alter=True)
            if r.turn_records:
                self.db["turns"].insert_all(
                    ({"investigation_id": key, "idx": t.idx, "kind": t.kind, "reply_size": t.reply_size,
                      "duration_s": t.duration_s, "n_calls": t.n_calls, "error": t.error} for t in r.turn_records),
                    pk=("investigation_id", "idx"), replace=True,
                )
            if r.call_records:
                self.db["tool_calls"].insert_all(
                    ({"investigation_id": key, "seq": i, "turn": c.turn, "call_id": c.call_id, "name": c.name,
                      "arguments": _j(c.arguments), "ok": int(c.ok), "error": c.error, "result_size": c.result_size,
                      "duration_ms": c.duration_ms, "result_preview": c.result_preview} for i, c in enumerate(r.call_records)),
                    pk=("investigation_id", "seq"), replace=True,
                )

    # ------------------------------------------------------------------ reads

    def get_run(self, run_id: str) -> dict[str, Any] | None:
        with self._lock:
            rows = list(self.db["runs"].rows_where("run_id = ?", [run_id]))
        if not rows:
            return None
        return _decode_run(rows[0])

    def find_run(self, prefix: str) -> dict[str, Any] | None:
        """A run by id or unique id prefix."""
        run = self.get_run(prefix)
        if run:
            return run
        with self._lock:
            rows = list(self.db["runs"].rows_where("run_id LIKE ?", [prefix + "%"], limit=2))
        return _decode_run(rows[0]) if len(rows) == 1 else None

    def list_runs(self, limit: int = 50) -> list[dict[str, Any]]:
        with self._lock:
            rows = list(self.db["runs"].rows_where(order_by="created_at desc", limit=limit))
        return [_decode_run(r) for r in rows]

    def investigations(self, run_id: str) -> list[dict[str, Any]]:
        with self._lock:
            rows = list(self.db["investigations"].rows_where("run_id = ?", [run_id], order_by="label_id, attempt"))
        for r in rows:
            r["passed"] = bool(r["passed"])
            for k in ("subscores", "score_details", "diagnosis", "tokens"):
                r[k] = json.loads(r[k]) if r.get(k) else ({} if k != "diagnosis" and k != "tokens" else None)
        return rows

    def tool_calls(self, investigation_key: str) -> list[dict[str, Any]]:
        with self._lock:
            rows = list(self.db["tool_calls"].rows_where("investigation_id = ?", [investigation_key], order_by="seq"))
        for r in rows:
            r["arguments"] = json.loads(r["arguments"]) if r["arguments"] else {}
            r["ok"] = bool(r["ok"])
        return rows

    def label_history(self, label_id: str, limit: int = 200) -> list[dict[str, Any]]:
        """Outcomes of one label across runs and targets, newest first."""
        with self._lock:
            rows = list(self.db.query(
                "SELECT r.run_id, r.created_at, r.target_name, r.target_version, r.labelset, i.attempt, i.passed,"
                " i.score, i.end_reason, i.error_kind, i.turns, i.tool_calls, i.duration_s"
                " FROM investigations i JOIN runs r ON r.run_id = i.run_id WHERE i.label_id = ?"
                " ORDER BY r.created_at DESC, i.attempt LIMIT ?",
                [label_id, limit],
            ))
        for r in rows:
            r["passed"] = bool(r["passed"])
        return rows

    def previous_run(self, run_id: str) -> dict[str, Any] | None:
        """The latest completed run before ``run_id`` of the same target on the same label set."""
        run = self.get_run(run_id)
        if run is None:
            return None
        with self._lock:
            rows = list(self.db["runs"].rows_where(
                "target_name = ? AND labelset = ? AND status = 'completed' AND created_at < ? AND run_id != ?",
                [run["target_name"], run["labelset"], run["created_at"], run_id], order_by="created_at desc", limit=1,
            ))
        return _decode_run(rows[0]) if rows else None

    def all_outcomes(self) -> list[dict[str, Any]]:
        """(target, label, passed) of every scored investigation of completed runs, for IRT."""
        with self._lock:
            return list(self.db.query(
                "SELECT r.target_name, r.target_version, i.label_id, i.passed FROM investigations i"
                " JOIN runs r ON r.run_id = i.run_id"
                " WHERE r.status = 'completed' AND (i.error_kind IS NULL OR i.error_kind NOT IN ('network', 'harness'))"
            ))

    def save_difficulty(self, labels: list[dict[str, Any]], targets: list[dict[str, Any]], fitted_at: float) -> None:
        with self._lock, self.db.atomic():
            # A fit replaces the previous one whole.
            for table in ("label_difficulty", "target_ability"):
                if self.db[table].exists():
                    self.db.execute(f"DELETE FROM {table}")
            self.db["label_difficulty"].insert_all(
                ({**x, "fitted_at": fitted_at} for x in labels), pk="label_id", replace=True, alter=True)
            self.db["target_ability"].insert_all(
                ({**x, "fitted_at": fitted_at} for x in targets), pk="target", replace=True, alter=True)

    def get_difficulty(self) -> list[dict[str, Any]]:
        with self._lock:
            if not self.db["label_difficulty"].exists():
                return []
            return list(self.db["label_difficulty"].rows_where(order_by="difficulty desc"))

    def counts(self, run_id: str) -> dict[str, int]:
        with self._lock:
            row = self.db.execute(
                "SELECT COUNT(*), (SELECT COUNT(*) FROM turns t JOIN investigations i ON t.investigation_id = i.id WHERE i.run_id = ?),"
                " (SELECT COUNT(*) FROM tool_calls c JOIN investigations i ON c.investigation_id = i.id WHERE i.run_id = ?)"
                " FROM investigations WHERE run_id = ?",
                [run_id, run_id, run_id],
            ).fetchone()
        return {"investigations": row[0], "turns": row[1], "tool_calls": row[2]}

    def close(self) -> None:
        with self._lock:
            self.db.conn.close()


def _decode_run(row: dict[str, Any]) -> dict[str, Any]:
    for k in ("options", "manifest", "summary"):
        row[k] = json.loads(row[k]) if row.get(k) else None
    return row
