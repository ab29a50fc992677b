"""Reads the compare, labels and difficulty pages share: runs and outcomes restricted to what
the viewer may see (one query each, visibility as :meth:`Viewer.sees` decides it), target
abilities of the stored IRT fit, the label sets folder and what the disclosure policy allows.

The queries read the store's connection under its lock (the store has no method for them
yet); every value comes in as a ``?`` parameter.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from evaluator_agent.core.labels import (
    LabelError,
    LabelSet,
    available_labelsets,
    labelsets_dir,
    load_labelset,
)
from evaluator_agent.core.records import RunStatus
from evaluator_agent.core.vocab import INFRA_ERROR_KINDS
from evaluator_agent.results import disclosure
from evaluator_agent.web.session import Viewer

#: the most rows a history or an outcome scan reads
HISTORY_LIMIT = 200
OUTCOME_LIMIT = 200_000

_OWNER = "json_extract(r.manifest, '$.owner')"


def _query(store: Any, sql: str, params: Iterable[Any]) -> list[tuple[Any, ...]]:
    with store._lock:
        return store.db.execute(sql, list(params)).fetchall()


def _owner_clause(viewer: Viewer) -> tuple[str, list[Any]]:
    """SQL narrowing runs ``r`` to the viewer's (the same rule as ``Viewer.sees``)."""
    if viewer.principal is None:
        return "1 = 1", []
    return f"({_OWNER} IS NULL OR {_OWNER} = ?)", [viewer.principal]


def _sees(viewer: Viewer, owner: Any) -> bool:
    return viewer.sees({"manifest": {"owner": owner}})


def label_history(store: Any, label_id: str, viewer: Viewer, limit: int = HISTORY_LIMIT) -> list[dict[str, Any]]:
    """Outcomes of one label across the runs the viewer may see, newest first (the columns of
    ``Store.label_history``)."""
    where, params = _owner_clause(viewer)
    rows = _query(
        store,
        "SELECT r.run_id, r.created_at, r.target_name, r.target_version, r.labelset, i.attempt, i.passed,"
        f" i.score, i.end_reason, i.error_kind, i.turns, i.tool_calls, i.duration_s, {_OWNER}"
        f" FROM investigations i JOIN runs r ON r.run_id = i.run_id WHERE i.label_id = ? AND {where}"
        " ORDER BY r.created_at DESC, i.attempt LIMIT ?",
        [label_id, *params, limit],
    )
    keys = ("run_id", "created_at", "target_name", "target_version", "labelset", "attempt", "passed", "score",
            "end_reason", "error_kind", "turns", "tool_calls", "duration_s")
    out = []
    for row in rows:
        if not _sees(viewer, row[-1]):  # the SQL and Viewer.sees agree; this keeps it so
            continue
        d = dict(zip(keys, row[:-1], strict=True))
        d["passed"] = bool(d["passed"])
        out.append(d)
    return out


def visible_outcomes(store: Any, viewer: Viewer, limit: int = OUTCOME_LIMIT) -> list[dict[str, Any]] | None:
    """(target, label, passed) of every scored investigation of the viewer's completed runs, as
    ``Store.all_outcomes``; None when there are more than ``limit``."""
    where, params = _owner_clause(viewer)
    infra = ", ".join("?" for _ in INFRA_ERROR_KINDS)
    rows = _query(
        store,
        f"SELECT r.target_name, r.target_version, i.label_id, i.passed, {_OWNER} FROM investigations i"
        " JOIN runs r ON r.run_id = i.run_id"
        f" WHERE r.status = ? AND (i.error_kind IS NULL OR i.error_kind NOT IN ({infra})) AND {where} LIMIT ?",
        [RunStatus.COMPLETED.value, *INFRA_ERROR_KINDS, *params, limit + 1],
    )
    if len(rows) > limit:
        return None
    return [{"target_name": t, "target_version": v, "label_id": lid, "passed": bool(p)}
            for t, v, lid, p, owner in rows if _sees(viewer, owner)]


def visible_targets(store: Any, viewer: Viewer) -> set[str]:
    """The targets (``name version``, as the IRT fit names them) of the runs the viewer may see."""
    where, params = _owner_clause(viewer)
    rows = _query(store, f"SELECT DISTINCT r.target_name, r.target_version, {_OWNER} FROM runs r WHERE {where}", params)
    return {target_key(t, v) for t, v, owner in rows if _sees(viewer, owner)}


def target_key(name: Any, version: Any) -> str:
    return f"{name or ''} {version or ''}".strip()


def stored_abilities(store: Any) -> list[dict[str, Any]]:
    """The targets' abilities of the stored fit (``proctor difficulty``), best first."""
    with store._lock:
        if not store.db["target_ability"].exists():
            return []
        return list(store.db["target_ability"].rows_where(order_by="ability desc"))


# ---------------------------------------------------------------------- label sets


def labelsets_root(ui: Any) -> Path:
    return Path(ui.config.labelsets_root) if ui.config.labelsets_root else labelsets_dir()


def snapshots_root(ui: Any) -> Path:
    from evaluator_agent.core.labels import snapshots_dir

    return Path(ui.config.snapshots) if ui.config.snapshots else snapshots_dir()


def labelset_names(ui: Any) -> list[str]:
    return available_labelsets(labelsets_root(ui))


def labelset(ui: Any, name: str) -> LabelSet | None:
    """A label set of the interface's folder, None when it is not there or does not load."""
    if not (0 < len(name) <= 64) or name not in labelset_names(ui):
        return None
    try:
        return load_labelset(name, labelsets_root(ui))
    except LabelError:
        return None


def label_index(ui: Any) -> dict[str, tuple[str, str]]:
    """label id -> (label set, tier) over every label set of the folder (the first set wins)."""
    out: dict[str, tuple[str, str]] = {}
    for name in labelset_names(ui):
        ls = labelset(ui, name)
        for lb in ls.labels if ls else ():
            out.setdefault(lb.id, (name, lb.difficulty.tier))
    return out


def labelset_policy(ui: Any, ls: LabelSet) -> str:
    """What the policy shows of this set's labels: ``scores`` for a private set, whatever the policy."""
    private = bool(ls.info.private) or disclosure.labelset_private(ls.name)
    return disclosure.effective(ui.config.disclosure, private)


def run_label(r: dict[str, Any]) -> str:
    """How a run is named in a select: target, version, label set, date, id (text, escaped by Jinja)."""
    from evaluator_agent.web.render import when

    target = f"{r.get('target_name') or '?'} {r.get('target_version') or ''}".strip()
    return f"{target[:80]} · {r.get('labelset') or '?'} · {when(r.get('created_at'))} · {r['run_id']}"
