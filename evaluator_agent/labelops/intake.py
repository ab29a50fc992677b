"""``proctor labels draft``: every record of an input file into the queue, one outcome each.

An outcome is ``new`` (a candidate was queued), ``duplicate`` (the same record was drafted
before: content-hashed, nothing changes) or ``error`` (the record is bad: its line and why).
A bad record never stops the others.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from evaluator_agent.labelops.drafting import draft_candidate, problems
from evaluator_agent.labelops.queue import Queue
from evaluator_agent.labelops.records import RecordError, StoredFeedback, read_records
from evaluator_agent.labelops.sources import SourceError, open_results, to_source
from evaluator_agent.results.store import Store


@dataclass
class Outcome:
    where: str
    status: str  # new | duplicate | error
    candidate_id: str | None = None
    error: str | None = None
    flags: list[str] = field(default_factory=list)
    problems: int = 0


@dataclass
class DraftReport:
    outcomes: list[Outcome]

    @property
    def counts(self) -> dict[str, int]:
        out = {"new": 0, "duplicate": 0, "error": 0}
        for o in self.outcomes:
            out[o.status] += 1
        return out

    def as_dict(self) -> dict[str, Any]:
        return {"counts": self.counts, "outcomes": [asdict(o) for o in self.outcomes]}


def draft_file(path: Path, queue: Queue, *, results_db: str | Path | None = None,
               labelsets_root: Path | None = None, actor: str = "draft") -> DraftReport:
    """Draft every record of ``path`` into ``queue``; see the module docstring."""
    outcomes: list[Outcome] = []
    results: Store | None = None
    results_error: str | None = None
    try:
        for where, rec in read_records(path):
            if isinstance(rec, RecordError):
                outcomes.append(Outcome(where, "error", error=rec.message))
                continue
            if isinstance(rec, StoredFeedback) and results is None and results_error is None:
                try:  # opened once, for the first stored record
                    results = open_results(results_db)
                except SourceError as e:
                    results_error = str(e)
            try:
                if isinstance(rec, StoredFeedback) and results is None:
                    raise SourceError(results_error or "no results database")
                cand = draft_candidate(to_source(rec, results=results, labelsets_root=labelsets_root))
            except SourceError as e:
                outcomes.append(Outcome(where, "error", error=str(e)))
                continue
            except (ValueError, TypeError) as e:  # a record our rules cannot draft: say so, go on
                outcomes.append(Outcome(where, "error", error=f"cannot draft: {type(e).__name__}: {str(e)[:300]}"))
                continue
            stored, new = queue.add(cand, actor=actor)
            outcomes.append(Outcome(where, "new" if new else "duplicate", stored.id, flags=[f.code for f in stored.flags],
                                    problems=len(problems(stored.draft))))
    finally:
        if results is not None:
            results.close()
    return DraftReport(outcomes)
