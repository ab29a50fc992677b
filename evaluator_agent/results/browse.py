"""Read-only queries for browsing one run's investigations page by page (the web interface).

A run may hold tens of thousands of investigations, and a stored row is wide (diagnosis, score
details, explanation: kilobytes of JSON, often on overflow pages), so the run page never loads
them all: filtering, sorting, counting and paging are SQL on the store's connection (under its
lock, ``?`` parameters only), and :func:`ensure_indexes` adds one covering index that answers
the counts and orders a page without touching the wide rows.

Segment and tier are not columns: they are the run's frozen label metadata (``manifest.
label_meta``). A filter on them becomes the set of label ids that match, computed in Python
(:func:`label_ids_for`) and handed to SQL as one JSON array (``label_id IN (SELECT value FROM
json_each(?))``): one parameter whatever the number of labels.

Outcomes: ``error`` (an infra error: the agent was never judged), ``pass``, ``fail``.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from evaluator_agent.core.vocab import INFRA_ERROR_KINDS

log = logging.getLogger(__name__)

PAGE_SIZE = 50
OUTCOMES: tuple[str, ...] = ("pass", "fail", "error")
UNKNOWN = "unknown"
HIST_BINS = 10

_INFRA = ", ".join(f"'{k}'" for k in INFRA_ERROR_KINDS)  # constants of ours, not input
OUTCOME_SQL = f"CASE WHEN error_kind IN ({_INFRA}) THEN 'error' WHEN passed THEN 'pass' ELSE 'fail' END"

#: sort key (query parameter) -> SQL expression; nothing else is ever put in ORDER BY
SORTS: dict[str, str] = {
    "label": "label_id",
    "attempt": "attempt",
    "outcome": OUTCOME_SQL,
    "score": "score",
    "end_reason": "end_reason",
    "turns": "turns",
    "tool_calls": "tool_calls",
    "duration": "duration_s",
}

#: the narrow columns of the table rows (never the wide JSON ones)
_ROW_COLS = ("label_id, attempt, score, passed, error_kind, end_reason, turns, tool_calls, duration_s, "
             f"{OUTCOME_SQL} AS outcome")

#: a covering index: the run's counts and the order of a page come from the index alone
INDEX_NAME = "idx_investigations_browse"
_INDEX_SQL = (f"CREATE INDEX IF NOT EXISTS {INDEX_NAME} ON investigations "
              "(run_id, label_id, attempt, error_kind, passed, end_reason, score, turns, tool_calls, duration_s)")

_indexed: weakref.WeakKeyDictionary[Any, bool] = weakref.WeakKeyDictionary()  # store -> index there (tried once)


def ensure_indexes(store: Any) -> bool:
    """Create the browsing index if it is missing (tried once per store object). False when the
    database cannot be written (a read-only file): the queries still work, only slower."""
    if store in _indexed:
        return _indexed[store]
    try:
        with store._lock:
            store.db.conn.execute(_INDEX_SQL)
            store.db.conn.commit()
        ok = True
    except sqlite3.Error as e:
        log.warning("results browsing: no index on %s (%s); big runs will page slower", store.path, e)
        ok = False
    _indexed[store] = ok
    return ok


@dataclass(frozen=True)
class Filters:
    """What the investigations table is narrowed to (None: any)."""

    segment: str | None = None
    tier: str | None = None
    outcome: str | None = None
    end_reason: str | None = None


def label_dimension(meta: Mapping[str, Mapping[str, Any]], label_id: str, dim: str) -> str:
    """A label's segment or tier as the run froze it ("unknown" when it did not)."""
    v = (meta.get(label_id) or {}).get(dim)
    return str(v) if v not in (None, "") else UNKNOWN


def label_ids_for(meta: Mapping[str, Mapping[str, Any]], run_labels: Iterable[str], *, segment: str | None = None,
                  tier: str | None = None) -> list[str] | None:
    """The labels of the run with this segment and tier; None when neither is asked (no filter)."""
    if segment is None and tier is None:
        return None
    return sorted(lid for lid in set(run_labels)
                  if (segment is None or label_dimension(meta, lid, "segment") == segment)
                  and (tier is None or label_dimension(meta, lid, "tier") == tier))


# ---------------------------------------------------------------------- aggregates


def groups(store: Any, run_id: str) -> list[tuple[str, str, str, int]]:
    """(label_id, outcome, end_reason, count) of a run: every count of the page is a sum of these
    (a few rows per label, whatever the number of attempts)."""
    with store._lock:
        rows = store.db.conn.execute(
            f"SELECT label_id, {OUTCOME_SQL}, COALESCE(end_reason, ''), COUNT(*) FROM investigations"
            " WHERE run_id = ? GROUP BY 1, 2, 3", [run_id]).fetchall()
    return [(str(r[0]), str(r[1]), str(r[2]), int(r[3])) for r in rows]


@dataclass
class Facets:
    """How many investigations match: ``total`` under every filter, ``run_total`` the whole run,
    ``counts[dim][value]`` under every filter but ``dim``'s own (what choosing that value gives)."""

    total: int
    run_total: int
    counts: dict[str, dict[str, int]]


def facets(grouped: list[tuple[str, str, str, int]], meta: Mapping[str, Mapping[str, Any]], f: Filters) -> Facets:
    """The counts of :class:`Facets` from :func:`groups` (every value the run has, 0 included)."""
    counts: dict[str, dict[str, int]] = {"segment": {}, "tier": {}, "outcome": {}, "end_reason": {}}
    total = run_total = 0
    for lid, outcome, end_reason, n in grouped:
        values = {"segment": label_dimension(meta, lid, "segment"), "tier": label_dimension(meta, lid, "tier"),
                  "outcome": outcome, "end_reason": end_reason}
        misses = [dim for dim, v in values.items() if getattr(f, dim) is not None and getattr(f, dim) != v]
        run_total += n
        if not misses:
            total += n
        for dim, v in values.items():
            if not misses or misses == [dim]:
                counts[dim][v] = counts[dim].get(v, 0) + n
            else:
                counts[dim].setdefault(v, 0)
    return Facets(total, run_total, {k: dict(sorted(v.items())) for k, v in counts.items()})


def score_histogram(store: Any, run_id: str, bins: int = HIST_BINS) -> list[int]:
    """Counts of scored investigations (infra errors left out) per score bin over [0, 1], binned
    as ``results.html.histogram`` bins (``int(score * bins)``, clamped)."""
    with store._lock:
        rows = store.db.conn.execute(
            f"SELECT MIN(?, MAX(0, CAST(COALESCE(score, 0) * ? AS INTEGER))), COUNT(*) FROM investigations"
            f" WHERE run_id = ? AND (error_kind IS NULL OR error_kind NOT IN ({_INFRA})) GROUP BY 1",
            [bins - 1, bins, run_id]).fetchall()
    out = [0] * bins
    for b, n in rows:
        out[int(b)] += int(n)
    return out


def pass_threshold(store: Any, run_id: str) -> float | None:
    """The pass threshold the scorer recorded for the run (its first investigation that has one)."""
    with store._lock:
        row = store.db.conn.execute(
            "SELECT t FROM (SELECT CASE WHEN json_valid(score_details) THEN json_extract(score_details, '$.pass_threshold')"
            " END AS t FROM investigations WHERE run_id = ?) WHERE typeof(t) IN ('real', 'integer') LIMIT 1",
            [run_id]).fetchone()
    return float(row[0]) if row else None


# ---------------------------------------------------------------------- one page


def _where(run_id: str, f: Filters, label_ids: list[str] | None) -> tuple[str, list[Any]]:
    clauses, params = ["run_id = ?"], [run_id]
    if label_ids is not None:
        clauses.append("label_id IN (SELECT value FROM json_each(?))")
        params.append(json.dumps(label_ids))
    if f.outcome is not None:
        clauses.append(f"{OUTCOME_SQL} = ?")
        params.append(f.outcome)
    if f.end_reason is not None:
        clauses.append("COALESCE(end_reason, '') = ?")
        params.append(f.end_reason)
    return " AND ".join(clauses), params


def page(store: Any, run_id: str, f: Filters, label_ids: list[str] | None, *, sort: str = "label", desc: bool = False,
         limit: int = PAGE_SIZE, offset: int = 0) -> list[dict[str, Any]]:
    """One page of the run's investigations (narrow columns) under the filters, in the order
    of ``sort`` (a key of :data:`SORTS`), ties broken by label and attempt."""
    if sort not in SORTS:
        raise ValueError(f"unknown sort {sort!r}")
    where, params = _where(run_id, f, label_ids)
    direction = "DESC" if desc else "ASC"
    if sort == "label":
        order = f"label_id {direction}, attempt {direction}"
    else:
        order = f"{SORTS[sort]} {direction}, label_id ASC, attempt ASC"
    with store._lock:
        cur = store.db.conn.execute(
            f"SELECT {_ROW_COLS} FROM investigations WHERE {where} ORDER BY {order} LIMIT ? OFFSET ?",
            [*params, max(0, int(limit)), max(0, int(offset))])
        names = [d[0] for d in cur.description]
        rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    for r in rows:
        r["passed"] = bool(r["passed"])
    return rows


def count(store: Any, run_id: str, f: Filters, label_ids: list[str] | None) -> int:
    """How many investigations of the run match (the page's total comes from :func:`facets`;
    this is the same number straight from SQL)."""
    where, params = _where(run_id, f, label_ids)
    with store._lock:
        return int(store.db.conn.execute(f"SELECT COUNT(*) FROM investigations WHERE {where}", params).fetchone()[0])


# ---------------------------------------------------------------------- one investigation


def attempts(store: Any, run_id: str, label_id: str) -> list[dict[str, Any]]:
    """Every attempt of one label in a run: attempt, outcome, score."""
    with store._lock:
        rows = store.db.conn.execute(
            f"SELECT attempt, {OUTCOME_SQL}, score FROM investigations WHERE run_id = ? AND label_id = ? ORDER BY attempt",
            [run_id, label_id]).fetchall()
    return [{"attempt": int(a), "outcome": str(o), "score": s} for a, o, s in rows]

_JSON_COLS = ("subscores", "score_details", "diagnosis", "tokens", "calls_by_surface")


def investigation(store: Any, run_id: str, label_id: str, attempt: int) -> dict[str, Any] | None:
    """One stored investigation (every column, JSON decoded like ``Store.investigations``)."""
    with store._lock:
        cur = store.db.conn.execute("SELECT * FROM investigations WHERE run_id = ? AND label_id = ? AND attempt = ?",
                                    [run_id, label_id, int(attempt)])
        names = [d[0] for d in cur.description]
        row = cur.fetchone()
    if row is None:
        return None
    r = dict(zip(names, row, strict=True))
    r["passed"] = bool(r["passed"])
    for k in _JSON_COLS:
        try:
            r[k] = json.loads(r[k]) if r.get(k) else ({} if k not in ("diagnosis", "tokens") else None)
        except ValueError:
            r[k] = None
    return r


def turns(store: Any, investigation_key: str) -> list[dict[str, Any]]:
    """The turns of one investigation, in order."""
    with store._lock:
        cur = store.db.conn.execute(
            "SELECT idx, kind, reply_size, duration_s, n_calls, error FROM turns WHERE investigation_id = ? ORDER BY idx",
            [investigation_key])
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def summary_rows(store: Any, run_id: str) -> list[dict[str, Any]]:
    """What ``stats.run_statistics`` reads of each investigation (for the live summary of a run
    still running): no diagnosis, explanation or tool calls, and of the score details only the
    accuracies, extracted in SQL (decoding every row's JSON would dominate the page)."""
    wanted = ("label_id", "attempt", "passed", "score", "error_kind", "end_reason", "turns", "tool_calls",
              "invalid_calls", "red_herrings_chased", "duration_s", "subscores", "tokens", "calls_by_surface")
    valid = "CASE WHEN json_valid(score_details) THEN json_extract(score_details, '$.{}') END"
    with store._lock:
        have = {r[1] for r in store.db.conn.execute("PRAGMA table_info(investigations)")}
        cols = ", ".join(c for c in wanted if c in have)  # older databases lack the newest columns
        cur = store.db.conn.execute(
            f"SELECT {cols}, {valid.format('accuracy.ac_at_1')} AS _a1, {valid.format('accuracy.ac_at_3')} AS _a3,"
            f" {valid.format('accuracy.mechanism')} AS _am, {valid.format('ac_at_k')} AS _ac"
            " FROM investigations WHERE run_id = ?", [run_id])
        names = [d[0] for d in cur.description]
        rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]

    def decoded(v: Any) -> Any:
        try:
            return json.loads(v) if isinstance(v, str) and v else None
        except ValueError:
            return None

    for r in rows:
        r["passed"] = bool(r["passed"])
        a1, a3, am, ac = r.pop("_a1"), r.pop("_a3"), r.pop("_am"), r.pop("_ac")
        if a1 is not None or a3 is not None or am is not None:
            r["score_details"] = {"accuracy": {"ac_at_1": bool(a1), "ac_at_3": bool(a3), "mechanism": bool(am)}}
            r["subscores"] = None  # read only when the details lack the accuracies
        else:
            ac = decoded(ac)
            r["score_details"] = {"ac_at_k": ac} if isinstance(ac, dict) else {}
            r["subscores"] = decoded(r.get("subscores"))
        for k in ("tokens", "calls_by_surface"):
            if r.get(k):
                r[k] = decoded(r[k])
    return rows
