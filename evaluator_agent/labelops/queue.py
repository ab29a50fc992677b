"""The human review queue: candidates and their history in one SQLite file.

Tables (prefixed, so a queue may share a file with a results database)::

    label_candidates  id PK (cand_<12 hex>), content_hash UNIQUE, status, the candidate (JSON
                      columns), confidence (the validator's, for filtering), edits, reviewer,
                      decided_at, reason, promoted (JSON)
    label_events      seq, candidate_id, at, actor, action, detail (JSON): every state change,
                      who and when (drafted, edited, validated, accepted, rejected)

Every change runs in one ``BEGIN IMMEDIATE`` transaction that re-reads the candidate, so two
reviewers cannot both accept it: the second sees it accepted and is refused. Only a pending
candidate is edited, accepted or rejected; an accepted or rejected one keeps its decision, its
reviewer and (rejected) its reason.
"""

from __future__ import annotations

import json
import sqlite3
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from evaluator_agent.core.clock import iso_s
from evaluator_agent.core.labels import Label
from evaluator_agent.labelops.candidate import Candidate, Flag, Validation
from evaluator_agent.labelops.drafting import problems
from evaluator_agent.labelops.patching import edit_draft
from evaluator_agent.labelops.promote import PromoteError, promote

QUEUE_SCHEMA_VERSION = 1
_JSON = ("notes", "evidence", "draft", "original_draft", "assumed", "flags", "validation", "record", "promoted")
_COLUMNS = ("id", "content_hash", "source_kind", "feedback_id", "source_incident", "verdict", "title", "status",
            "claim", "truth_origin", "created_at", "updated_at", "edits", "reviewer", "decided_at", "reason", *_JSON)


class QueueError(ValueError):
    """A queue operation refused (unknown candidate, wrong status, flags not acknowledged ...)."""




class Queue:
    def __init__(self, path: str | Path):
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        self.conn.row_factory = sqlite3.Row
        if self.path != ":memory:":
            self.conn.execute("PRAGMA journal_mode=WAL")
        self._migrate()

    def __enter__(self) -> Queue:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        self.conn.close()

    def _migrate(self) -> None:
        with self._tx():
            self.conn.execute(
                "CREATE TABLE IF NOT EXISTS label_candidates (id TEXT PRIMARY KEY, content_hash TEXT NOT NULL UNIQUE,"
                " source_kind TEXT, feedback_id TEXT, source_incident TEXT, verdict TEXT, title TEXT,"
                " status TEXT NOT NULL DEFAULT 'pending', claim TEXT, truth_origin TEXT, confidence REAL,"
                " created_at REAL, updated_at REAL, edits INTEGER NOT NULL DEFAULT 0, reviewer TEXT, decided_at REAL,"
                " reason TEXT, notes TEXT, evidence TEXT, draft TEXT, original_draft TEXT, assumed TEXT, flags TEXT,"
                " validation TEXT, record TEXT, promoted TEXT)"
            )
            self.conn.execute(
                "CREATE TABLE IF NOT EXISTS label_events (seq INTEGER PRIMARY KEY AUTOINCREMENT, candidate_id TEXT NOT NULL,"
                " at REAL NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL, detail TEXT)"
            )
            self.conn.execute("CREATE TABLE IF NOT EXISTS label_queue_meta (key TEXT PRIMARY KEY, value TEXT)")
            self.conn.execute("INSERT OR IGNORE INTO label_queue_meta VALUES ('schema_version', ?)", [str(QUEUE_SCHEMA_VERSION)])
            self.conn.execute("CREATE INDEX IF NOT EXISTS label_candidates_status ON label_candidates (status)")
            self.conn.execute("CREATE INDEX IF NOT EXISTS label_candidates_feedback ON label_candidates (feedback_id)")
            self.conn.execute("CREATE INDEX IF NOT EXISTS label_events_candidate ON label_events (candidate_id, seq)")

    @contextmanager
    def _tx(self) -> Iterator[None]:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    # ------------------------------------------------------------------ rows

    def _row(self, c: Candidate) -> dict[str, Any]:
        d = c.model_dump(mode="json")
        row = {k: d[k] for k in _COLUMNS}
        for k in _JSON:
            row[k] = json.dumps(row[k]) if row[k] is not None else None
        row["confidence"] = c.confidence
        return row

    def _candidate(self, row: sqlite3.Row) -> Candidate:
        d = {k: row[k] for k in _COLUMNS}
        for k in _JSON:
            d[k] = json.loads(d[k]) if d[k] is not None else None
        for k in ("notes", "evidence", "assumed", "flags"):
            d[k] = d[k] or []
        d["record"] = d["record"] or {}
        return Candidate.model_validate(d)

    def _event(self, cid: str, actor: str, action: str, detail: dict[str, Any] | None = None, at: float | None = None) -> None:
        self.conn.execute("INSERT INTO label_events (candidate_id, at, actor, action, detail) VALUES (?, ?, ?, ?, ?)",
                          [cid, at or time.time(), actor, action, json.dumps(detail or {}, default=str)])

    def _save(self, c: Candidate) -> None:
        row = self._row(c)
        cols = ", ".join(row)
        self.conn.execute(f"INSERT OR REPLACE INTO label_candidates ({cols}) VALUES ({', '.join('?' * len(row))})",
                          list(row.values()))

    def _load(self, cid: str) -> Candidate:
        rows = self.conn.execute("SELECT * FROM label_candidates WHERE id = ?", [cid]).fetchall()
        if not rows:
            rows = self.conn.execute("SELECT * FROM label_candidates WHERE substr(id, 1, ?) = ? LIMIT 2",
                                     [len(cid), cid]).fetchall() if len(cid) >= 6 else []
            if len(rows) != 1:
                raise QueueError(f"no candidate {cid!r}" if not rows else f"{cid!r} names more than one candidate")
        return self._candidate(rows[0])

    # ------------------------------------------------------------------ reads

    def get(self, cid: str) -> Candidate:
        """A candidate by id or unique id prefix (at least 6 characters)."""
        return self._load(cid)

    def list(self, status: str | None = None, min_confidence: float | None = None,
             max_confidence: float | None = None, limit: int = 1000) -> list[Candidate]:
        """Candidates, oldest first; a confidence bound leaves out those not validated yet."""
        where, args = [], []
        if status:
            where.append("status = ?")
            args.append(status)
        if min_confidence is not None:
            where.append("confidence >= ?")
            args.append(min_confidence)
        if max_confidence is not None:
            where.append("confidence <= ?")
            args.append(max_confidence)
        sql = "SELECT * FROM label_candidates" + (f" WHERE {' AND '.join(where)}" if where else "")
        rows = self.conn.execute(sql + " ORDER BY created_at, id LIMIT ?", [*args, limit]).fetchall()
        return [self._candidate(r) for r in rows]

    def ids(self, status: str | None = None) -> list[str]:
        """Every candidate id (of one status), oldest first: no limit, for work over a whole queue."""
        sql = "SELECT id FROM label_candidates" + (" WHERE status = ?" if status else "") + " ORDER BY created_at, id"
        return [r[0] for r in self.conn.execute(sql, [status] if status else []).fetchall()]

    def events(self, cid: str) -> list[dict[str, Any]]:
        rows = self.conn.execute("SELECT * FROM label_events WHERE candidate_id = ? ORDER BY seq", [cid]).fetchall()
        return [{"at": r["at"], "when": iso_s(r["at"]), "actor": r["actor"], "action": r["action"],
                 "detail": json.loads(r["detail"] or "{}")} for r in rows]

    # ------------------------------------------------------------------ writes

    def add(self, c: Candidate, actor: str = "draft") -> tuple[Candidate, bool]:
        """Queue a new candidate; the same input record again changes nothing. Returns the
        stored candidate and whether it is new."""
        with self._tx():
            rows = self.conn.execute("SELECT * FROM label_candidates WHERE content_hash = ?", [c.content_hash]).fetchall()
            if rows:
                return self._candidate(rows[0]), False
            same_id = self.conn.execute("SELECT id FROM label_candidates WHERE feedback_id = ? LIMIT 1",
                                        [c.feedback_id]).fetchone()
            if same_id is not None:
                c = c.model_copy(update={"flags": [*c.flags, Flag(
                    code="duplicate_feedback_id", severity="warning",
                    message=f"feedback id {c.feedback_id!r} was drafted before with other content ({same_id['id']})")]})
            c = c.model_copy(update={"original_draft": c.draft})
            self._save(c)
            self._event(c.id, actor, "drafted", {"feedback_id": c.feedback_id, "source_kind": c.source_kind,
                                                 "flags": [f.code for f in c.flags]}, at=c.created_at)
        return c, True

    def _pending(self, cid: str, doing: str) -> Candidate:
        c = self._load(cid)
        if c.status != "pending":
            who = f" by {c.reviewer}" if c.reviewer else ""
            when = f" at {iso_s(c.decided_at)}" if c.decided_at else ""
            raise QueueError(f"{c.id} is {c.status}{who}{when}; only a pending candidate can be {doing}")
        return c

    def edit(self, cid: str, actor: str, *, sets: list[tuple[str, Any]] = (), unsets: list[str] = (),  # type: ignore[assignment]
             patch: Any = None) -> Candidate:
        """Edit a pending candidate's draft (see ``patching``); EditError when refused."""
        with self._tx():
            c = self._pending(cid, "edited")
            draft, assumed, touched = edit_draft(c.draft, c.assumed, sets=list(sets), unsets=list(unsets), patch=patch)
            now = time.time()
            origin = c.truth_origin
            if any(t == "ground_truth" or t.startswith("ground_truth.") for t in touched):
                origin = "review" if not origin else origin if origin.endswith("review") else f"{origin}+review"
            c = c.model_copy(update={"draft": draft, "assumed": assumed, "edits": c.edits + 1, "updated_at": now,
                                     "truth_origin": origin})
            self._save(c)
            changes = {p: _value_at(draft, p) for p in sorted(touched)}
            self._event(c.id, actor, "edited", {"paths": sorted(touched), "values": changes}, at=now)
        return c

    def record_validation(self, cid: str, validation: Validation, actor: str = "validator",
                          draft: dict[str, Any] | None = None) -> Candidate:
        """The validator's seam: store its scores (and, optionally, the draft it grounded) on a
        pending candidate. A validator's draft is not a reviewer's edit (``edits`` unchanged)."""
        with self._tx():
            c = self._pending(cid, "validated")
            now = time.time()
            update: dict[str, Any] = {"validation": validation, "updated_at": now}
            if draft is not None:
                if draft.get("id") != c.draft.get("id"):
                    raise QueueError("a validated draft keeps the candidate's label id")
                update |= {"draft": draft, "assumed": []}
            c = c.model_copy(update=update)
            self._save(c)
            self._event(c.id, actor, "validated", {"confidence": validation.confidence, "validator": validation.validator,
                                                   "seconds": validation.seconds, "draft_replaced": draft is not None}, at=now)
        return c

    def accept(self, cid: str, reviewer: str, into: str, root: Path, *, acknowledge_flags: bool = False,
               description: str | None = None) -> Candidate:
        """Promote a pending candidate into label set ``into`` under ``root``."""
        if not reviewer.strip():
            raise QueueError("a reviewer name is required")
        with self._tx():
            c = self._pending(cid, "accepted")
            blocking = c.blocking_flags()
            if blocking and not acknowledge_flags:
                raise QueueError(f"{c.id} has unresolved flags ({', '.join(f.code for f in blocking)}); resolve them with "
                                 "edit and accept with --acknowledge-flags, or reject it")
            now = time.time()
            label_data = dict(c.draft)
            prov = dict(label_data.get("provenance") or {})
            prov["validated_by"] = reviewer.strip()[:200]
            if c.validation is not None:
                v = c.validation
                prov["source"] = (f"{prov.get('source', '')}; validator {v.validator or '?'} confidence {v.confidence:.2f} "
                                  f"(thoroughness {v.scores.thoroughness.score:.2f}, specificity "
                                  f"{v.scores.specificity.score:.2f}, accuracy {v.scores.accuracy.score:.2f})").lstrip("; ")
            label_data |= {"status": "validated", "provenance": prov}
            try:
                label = Label.model_validate(label_data)
            except ValidationError:
                listed = "; ".join(f"{p['loc'] or '(label)'}: {p['msg']}" for p in problems(label_data)[:8])
                raise QueueError(f"{c.id} is not a valid label yet: {listed}") from None
            record = provenance_record(c, reviewer, now, acknowledge_flags)
            try:
                promotion = promote(label, record, into, root, description)
            except PromoteError as e:
                raise QueueError(str(e)) from None
            c = c.model_copy(update={"status": "accepted", "reviewer": reviewer, "decided_at": now, "updated_at": now,
                                     "promoted": promotion})
            self._save(c)
            self._event(c.id, reviewer, "accepted", {**promotion.model_dump(), "acknowledged_flags": [f.code for f in blocking],
                                                     "edits": c.edits}, at=now)
        return c

    def reject(self, cid: str, reviewer: str, reason: str) -> Candidate:
        if not reviewer.strip():
            raise QueueError("a reviewer name is required")
        if not reason.strip():
            raise QueueError("a rejection needs a reason")
        with self._tx():
            c = self._pending(cid, "rejected")
            now = time.time()
            c = c.model_copy(update={"status": "rejected", "reviewer": reviewer, "decided_at": now, "updated_at": now,
                                     "reason": reason.strip()[:5000]})
            self._save(c)
            self._event(c.id, reviewer, "rejected", {"reason": c.reason}, at=now)
        return c

    # ------------------------------------------------------------------ figures

    def stats(self) -> dict[str, Any]:
        """Counts by status, the share accepted without edits, review and validation times."""
        rows = [self._candidate(r) for r in self.conn.execute("SELECT * FROM label_candidates").fetchall()]
        by_status = {s: 0 for s in ("pending", "accepted", "rejected")}
        by_kind: dict[str, int] = {}
        for c in rows:
            by_status[c.status] = by_status.get(c.status, 0) + 1
            by_kind[c.source_kind] = by_kind.get(c.source_kind, 0) + 1
        accepted = [c for c in rows if c.status == "accepted"]
        unedited = sum(1 for c in accepted if c.edits == 0)
        decided = [c.decided_at - c.created_at for c in rows if c.decided_at is not None]
        secs = [c.validation.seconds for c in rows if c.validation is not None and c.validation.seconds is not None]
        confs = [c.validation.confidence for c in rows if c.validation is not None]
        return {
            "total": len(rows),
            "by_status": by_status,
            "by_source": dict(sorted(by_kind.items())),
            "accepted_without_edits": unedited,
            "share_accepted_without_edits": round(unedited / len(accepted), 4) if accepted else None,
            "pending_flagged": sum(1 for c in rows if c.status == "pending" and c.blocking_flags()),
            "validated": len(confs),
            "mean_confidence": round(statistics.fmean(confs), 4) if confs else None,
            "validation_seconds_per_label": {"mean": round(statistics.fmean(secs), 3), "median": round(statistics.median(secs), 3),
                                             "n": len(secs)} if secs else None,
            "median_seconds_to_decision": round(statistics.median(decided), 3) if decided else None,
        }


def _value_at(doc: Any, path: str) -> Any:
    for step in path.split("."):
        if isinstance(doc, dict) and step in doc:
            doc = doc[step]
        elif isinstance(doc, list) and step.isdigit() and int(step) < len(doc):
            doc = doc[int(step)]
        else:
            return None
    return doc


def provenance_record(c: Candidate, reviewer: str, now: float, acknowledged: bool) -> dict[str, Any]:
    """Everything known of where a promoted label came from (``provenance/<label id>.json``)."""
    rec = c.record
    return {
        "label_id": c.draft.get("id"),
        "candidate_id": c.id,
        "content_hash": c.content_hash,
        "source_kind": c.source_kind,
        "feedback_id": c.feedback_id,
        "source_incident": c.source_incident,
        "reporter": (rec.get("provenance") or {}).get("reporter"),
        "reported_at": (rec.get("provenance") or {}).get("reported_at"),
        "verdict": c.verdict,
        "claim": c.claim,
        "truth_origin": c.truth_origin,
        "flags": [f.model_dump() for f in c.flags],
        "flags_acknowledged": acknowledged,
        "validation": c.validation.model_dump(mode="json") if c.validation else None,
        "edits": c.edits,
        "assumed": c.assumed,
        "drafted_at": iso_s(c.created_at),
        "reviewer": reviewer,
        "accepted_at": iso_s(now),
        "record": rec,
    }
