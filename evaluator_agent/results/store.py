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

Durability on machines with throwaway disks (Cloud Run): give a ``checkpoint`` path on durable
storage; :mod:`evaluator_agent.results.checkpoint` keeps a consistent copy there.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import sqlite_utils

from evaluator_agent.core.records import InvestigationResult, RequestError, RunResult, RunStatus
from evaluator_agent.core.vocab import INFRA_ERROR_KINDS
from evaluator_agent.results.checkpoint import Checkpoint

SCHEMA_VERSION = 1
# the infra error kinds as an SQL list
_INFRA_SQL = ", ".join(f"'{k}'" for k in INFRA_ERROR_KINDS)

log = logging.getLogger(__name__)


def _j(v: Any) -> str:
    return json.dumps(v, default=str, separators=(",", ":"))



class RunConflict(RequestError):
    """A run id reused by another caller or for another evaluation."""


#: options that do not change what a run measures (a resume may change them); the labels asked
#: for are compared as the resolved ``label_ids``
_FREE_OPTIONS = frozenset(("concurrency", "labels"))


def run_fingerprint(manifest: dict[str, Any]) -> str:
    """What makes two requests the same evaluation: the target (card URL, name, version), the
    label set's content, the labels, and every option but the free ones."""
    target = manifest.get("target") or {}
    options = {k: v for k, v in (manifest.get("options") or {}).items() if k not in _FREE_OPTIONS}
    key = {
        "target": [target.get("url"), target.get("name"), target.get("version")],
        "labelset": (manifest.get("labelset") or {}).get("hash"),
        "labels": manifest.get("label_ids"),
        "options": options,
    }
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()

class Store:
    """One SQLite database. Thread-safe by a lock; callers in async code keep writes short."""

    def __init__(self, path: str | Path, *, checkpoint: str | Path | None = None, checkpoint_interval_s: float = 15.0):
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
        self.checkpoint = str(checkpoint) if checkpoint else None
        self._ckpt = Checkpoint(self, self.checkpoint, checkpoint_interval_s) if self.checkpoint else None
        if self._ckpt is not None:
            self._ckpt.absorb()

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
                    "surface": str,
                },
                pk=("investigation_id", "seq"), if_not_exists=True,
            )
            self.db["investigations"].create_index(["run_id"], if_not_exists=True)
            self.db["investigations"].create_index(["label_id"], if_not_exists=True)
            self.db["runs"].create_index(["created_at"], if_not_exists=True)

    # ------------------------------------------------------------------ writes

    def create_run(self, run_id: str, manifest: dict[str, Any]) -> None:
        """Record a new run, or resume one: an existing ``run_id`` is taken only by the same
        request from the same owner (:func:`run_fingerprint`, ``manifest["owner"]``); anything
        else raises :class:`RunConflict` and changes nothing."""
        target = manifest.get("target", {})
        row = {
            "run_id": run_id, "status": RunStatus.RUNNING.value, "created_at": time.time(), "finished_at": None,
            "target_url": target.get("url", ""), "target_name": target.get("name", ""),
            "target_version": target.get("version", ""),
            "labelset": manifest.get("labelset", {}).get("name", ""),
            "labelset_hash": manifest.get("labelset", {}).get("hash", ""),
            "proctor_version": manifest.get("proctor_version", ""), "git_rev": manifest.get("git_rev", ""),
            "options": _j(manifest.get("options", {})), "manifest": _j(manifest), "summary": None, "error": None,
        }
        with self._lock, self.db.atomic():
            existing = list(self.db["runs"].rows_where("run_id = ?", [run_id], select="created_at, manifest"))
            if existing:  # resuming: the run keeps its place in history
                before = json.loads(existing[0]["manifest"] or "{}")
                if before.get("owner") != manifest.get("owner"):
                    raise RunConflict(f"run id {run_id!r} is taken; choose another run id")
                if run_fingerprint(before) != run_fingerprint(manifest):
                    raise RunConflict(
                        f"run id {run_id!r} belongs to a different evaluation (another target, label set, "
                        "labels, attempts, noise or budget); resend that request to resume it, or choose another run id"
                    )
                row["created_at"] = existing[0]["created_at"]
            self.db["runs"].upsert(row, pk="run_id", alter=True)
        self._wrote(force=True)

    def recorded(self, run_id: str) -> set[tuple[str, int]]:
        """(label, attempt) pairs of a run already recorded with a verdict about the agent;
        infra errors are not a verdict and get another try on resume."""
        with self._lock:
            rows = self.db.execute(
                "SELECT label_id, attempt FROM investigations WHERE run_id = ?"
                f" AND (error_kind IS NULL OR error_kind NOT IN ({_INFRA_SQL}))",
                [run_id],
            ).fetchall()
        return {(r[0], int(r[1])) for r in rows}

    def finish_run(self, run_id: str, status: RunStatus, summary: dict[str, Any] | None, error: str | None = None) -> None:
        with self._lock, self.db.atomic():
            self.db["runs"].update(
                run_id, {"status": RunStatus(status).value, "finished_at": time.time(), "summary": _j(summary) if summary else None, "error": error}
            )
        self._wrote(force=True)

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
            "calls_by_surface": _j(r.calls_by_surface) if r.calls_by_surface else None,
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
                      "duration_ms": c.duration_ms, "result_preview": c.result_preview, "surface": c.surface}
                     for i, c in enumerate(r.call_records)),
                    pk=("investigation_id", "seq"), replace=True,
                )
        self._wrote()

    # ------------------------------------------------------------------ checkpoint, import

    def import_from(self, path: str | Path, run_ids: list[str] | None = None, *, missing_only: bool = False) -> list[str]:
        """Copy runs (default: all) with their investigations, turns and tool calls from another
        proctor database. A recorded verdict is never replaced by an infra error; otherwise the
        imported row wins. ``missing_only`` imports only investigations not present here (restoring
        from a checkpoint never overwrites newer local rows). Returns the run ids found."""
        path = str(path)
        if not Path(path).is_file():
            raise FileNotFoundError(path)
        with self._lock:
            conn = self.db.conn
            conn.execute("ATTACH DATABASE ? AS src", [path])
            try:
                tables = {r[0] for r in conn.execute("SELECT name FROM src.sqlite_master WHERE type = 'table'")}
                if "runs" not in tables or "investigations" not in tables:
                    raise ValueError(f"{path} is not a proctor results database (no runs/investigations tables)")
                ids = [r[0] for r in conn.execute("SELECT run_id FROM src.runs")]
                if run_ids is not None:
                    wanted = set(run_ids)
                    ids = [i for i in ids if i in wanted]
                with self.db.atomic():
                    conn.execute("CREATE TEMP TABLE IF NOT EXISTS _imp_runs (run_id TEXT PRIMARY KEY)")
                    conn.execute("DELETE FROM _imp_runs")
                    conn.executemany("INSERT INTO _imp_runs VALUES (?)", [(i,) for i in ids])
                    conn.execute("CREATE TEMP TABLE IF NOT EXISTS _imp_inv (id TEXT PRIMARY KEY)")
                    conn.execute("DELETE FROM _imp_inv")
                    keep_local = "m.id = s.id" if missing_only else (
                        f"m.id = s.id AND (m.error_kind IS NULL OR m.error_kind NOT IN ({_INFRA_SQL}))"
                        f" AND s.error_kind IN ({_INFRA_SQL})")
                    conn.execute(
                        "INSERT INTO _imp_inv SELECT s.id FROM src.investigations s WHERE s.run_id IN (SELECT run_id FROM _imp_runs)"
                        f" AND NOT EXISTS (SELECT 1 FROM main.investigations m WHERE {keep_local})"
                    )
                    for table, key in (("investigations", "id"), ("turns", "investigation_id"), ("tool_calls", "investigation_id")):
                        if table not in tables:
                            continue
                        cols = self._shared_columns(table)
                        conn.execute(f"DELETE FROM main.{table} WHERE {key} IN (SELECT id FROM _imp_inv)")
                        conn.execute(
                            f"INSERT INTO main.{table} ({cols}) SELECT {cols} FROM src.{table} WHERE {key} IN (SELECT id FROM _imp_inv)"
                        )
                    cols = self._shared_columns("runs")
                    conn.execute(
                        f"INSERT OR IGNORE INTO main.runs ({cols}) SELECT {cols} FROM src.runs WHERE run_id IN (SELECT run_id FROM _imp_runs)"
                    )
            finally:
                conn.execute("DETACH DATABASE src")
        return ids

    def _shared_columns(self, table: str) -> str:
        mine = [r[1] for r in self.db.conn.execute(f"PRAGMA main.table_info({table})")]
        theirs = {r[1] for r in self.db.conn.execute(f"PRAGMA src.table_info({table})")}
        return ", ".join(f'"{c}"' for c in mine if c in theirs)

    def put_run_row(self, row: dict[str, Any]) -> None:
        """Write a runs row as given (JSON fields as dicts); used by ``proctor merge``."""
        enc = {k: (_j(v) if k in ("options", "manifest", "summary") and v is not None else v) for k, v in row.items()}
        with self._lock, self.db.atomic():
            self.db["runs"].upsert(enc, pk="run_id", alter=True)
        self._wrote(force=True)

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
            for k in ("subscores", "score_details", "diagnosis", "tokens", "calls_by_surface"):
                r[k] = json.loads(r[k]) if r.get(k) else ({} if k not in ("diagnosis", "tokens") else None)
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
                "target_name = ? AND labelset = ? AND status = ? AND created_at < ? AND run_id != ?",
                [run["target_name"], run["labelset"], RunStatus.COMPLETED.value, run["created_at"], run_id], order_by="created_at desc", limit=1,
            ))
        return _decode_run(rows[0]) if rows else None

    def all_outcomes(self) -> list[dict[str, Any]]:
        """(target, label, passed) of every scored investigation of completed runs, for IRT."""
        with self._lock:
            return list(self.db.query(
                "SELECT r.target_name, r.target_version, i.label_id, i.passed FROM investigations i"
                " JOIN runs r ON r.run_id = i.run_id"
                f" WHERE r.status = ? AND (i.error_kind IS NULL OR i.error_kind NOT IN ({_INFRA_SQL}))",
                [RunStatus.COMPLETED.value],
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

    def run_summary(self, run: dict[str, Any], rows: list[dict[str, Any]]) -> dict[str, Any]:
        """The summary to show (stored at the end, live while running) with the changes against
        the target's previous run; see :meth:`RunResult.from_store`."""
        from evaluator_agent.results.runs import changes_vs_previous, stored_or_live_summary

        return stored_or_live_summary(run, rows) | changes_vs_previous(self, run["run_id"], rows)

    def run_private(self, run: dict[str, Any]) -> bool:
        from evaluator_agent.results.disclosure import run_private

        return run_private(run)

    def result(self, run_id: str) -> RunResult:
        """:meth:`RunResult.from_store` of this store."""
        return RunResult.from_store(self, run_id)

    def counts(self, run_id: str) -> dict[str, int]:
        with self._lock:
            row = self.db.execute(
                "SELECT COUNT(*), (SELECT COUNT(*) FROM turns t JOIN investigations i ON t.investigation_id = i.id WHERE i.run_id = ?),"
                " (SELECT COUNT(*) FROM tool_calls c JOIN investigations i ON c.investigation_id = i.id WHERE i.run_id = ?)"
                " FROM investigations WHERE run_id = ?",
                [run_id, run_id, run_id],
            ).fetchone()
        return {"investigations": row[0], "turns": row[1], "tool_calls": row[2]}

    def _wrote(self, force: bool = False) -> None:
        if self._ckpt is not None:
            self._ckpt.wrote(force)

    def checkpoint_now(self, wait: bool = True) -> None:
        """Copy a consistent snapshot to the checkpoint path now (see :class:`Checkpoint`)."""
        if self._ckpt is not None:
            self._ckpt.now(wait)

    def close(self) -> None:
        if self._ckpt is not None:
            self._ckpt.close()
        with self._lock:
            self.db.conn.close()


def _decode_run(row: dict[str, Any]) -> dict[str, Any]:
    for k in ("options", "manifest", "summary"):
        row[k] = json.loads(row[k]) if row.get(k) else None
    return row
