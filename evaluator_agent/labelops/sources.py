"""Every input kind brought to one shape, :class:`Source`: the page, the world, what the agent
concluded, what the user said. Drafting (``drafting.py``) works on that shape only.

- feedback: taken as it is;
- stored: the investigation is read from a results database through ``Store`` (its diagnosis,
  its tool calls, the world it ran on) and the page from the label it investigated (the label
  set named in the run's manifest, under a labelsets root);
- postmortem: the page is the monitor (else the title) at the first ``detected`` timeline entry
  (else the impact start); the truth is the postmortem's root cause, authoritative, with the
  onset of the first ``onset`` entry (else the impact start) and the first ``change`` entry as
  the triggering change.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import sqlite3
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from evaluator_agent.core.labels import LabelError, load_labelset
from evaluator_agent.labelops.records import (
    AgentDiagnosis,
    ChangeInfo,
    Correction,
    FeedbackRecord,
    InputRecord,
    InvestigationInfo,
    MonitorInfo,
    Postmortem,
    SourceProvenance,
    StoredFeedback,
    ToolQuery,
    WorldInfo,
    canonical,
)
from evaluator_agent.results.store import Store


@dataclass
class Truth:
    """A ground-truth claim before it is a ``GroundTruth``: any part may still be unknown."""

    origin: str
    no_fault: bool = False
    entity: str | None = None
    aliases: list[str] = field(default_factory=list)
    kind: str = "service"
    mechanism: str | None = None  # as given (normalised later)
    chain: list[str] = field(default_factory=list)
    onset: datetime | None = None
    change: ChangeInfo | None = None


@dataclass
class Source:
    kind: str
    content_hash: str
    feedback_id: str
    record: dict[str, Any]
    monitor: MonitorInfo
    fired_at: datetime
    services: list[str]
    world: WorldInfo
    provenance: SourceProvenance
    verdict: str | None = None
    comment: str = ""
    diagnosis: AgentDiagnosis | None = None
    tool_queries: list[ToolQuery] = field(default_factory=list)
    correction: Correction | None = None
    truth: Truth | None = None  # authoritative truth (a postmortem's)
    notes: list[str] = field(default_factory=list)
    agent: str | None = None


class SourceError(ValueError):
    """An input record that parses but cannot be drafted (e.g. its stored run is gone)."""


def content_hash(record: InputRecord) -> str:
    return hashlib.sha256(canonical(record).encode()).hexdigest()


def open_results(db: str | Path | None) -> Store:
    """A proctor results database, opened only when it is one (never creates or alters a file)."""
    if db is None or not Path(db).is_file():
        raise SourceError(f"kind stored needs a results database (--db); {str(db)!r} does not exist")
    try:
        with contextlib.closing(sqlite3.connect(f"file:{Path(db).resolve()}?mode=ro", uri=True)) as conn:
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError as e:
        raise SourceError(f"{db} is not a results database: {e}") from None
    if not {"runs", "investigations", "tool_calls"} <= tables:
        raise SourceError(f"{db} is not a proctor results database (no runs/investigations/tool_calls tables)")
    return Store(db)


def to_source(record: InputRecord, *, results: Store | None = None, labelsets_root: Path | None = None) -> Source:
    digest = content_hash(record)
    fid = record.id or f"fb_{digest[:12]}"
    raw = record.model_dump(mode="json", exclude_none=True)
    if isinstance(record, FeedbackRecord):
        return _from_feedback(record, digest, fid, raw)
    if isinstance(record, Postmortem):
        return _from_postmortem(record, digest, fid, raw)
    if results is None:
        raise SourceError("kind stored needs a results database (--db)")
    return _from_stored(record, digest, fid, raw, results, labelsets_root)


def _from_feedback(r: FeedbackRecord, digest: str, fid: str, raw: dict[str, Any]) -> Source:
    inv: InvestigationInfo = r.investigation
    notes = []
    if r.correction is not None and r.correction.note:
        notes.append(f"correction note: {r.correction.note}")
    if inv.diagnosis is not None and inv.diagnosis.summary:
        notes.append(f"agent summary: {inv.diagnosis.summary}")
    return Source(
        kind="feedback", content_hash=digest, feedback_id=fid, record=raw, monitor=inv.monitor, fired_at=inv.fired_at,
        services=list(inv.services), world=r.world, provenance=r.provenance, verdict=r.verdict, comment=r.comment,
        diagnosis=inv.diagnosis, tool_queries=list(inv.tool_queries), correction=r.correction, notes=notes,
        agent=inv.agent,
    )


def _from_postmortem(r: Postmortem, digest: str, fid: str, raw: dict[str, Any]) -> Source:
    timeline = sorted(r.timeline, key=lambda e: e.at)

    def first(kind: str) -> Any:
        return next((e for e in timeline if e.kind == kind), None)

    detected, onset, change = first("detected"), first("onset"), first("change")
    rc = r.root_cause
    truth = Truth(
        origin="postmortem", entity=rc.entity, aliases=list(rc.aliases), kind=rc.kind, mechanism=rc.mechanism,
        chain=list(rc.causal_chain), onset=onset.at if onset else r.impact_window.start,
        change=ChangeInfo(kind="deploy" if re.search(r"\b(deploy|release|rollout)", change.event, re.I) else "config",
                          entity=change.entity, description=change.event[:2000], at=change.at) if change else None,
    )
    notes = [f"contributing factor: {c}" for c in r.contributing_factors]
    notes += [f"timeline {e.at.isoformat()} [{e.kind}] {e.event}" for e in timeline]
    services = list(r.services) or sorted({x for x in [rc.entity, *rc.causal_chain] if x})
    return Source(
        kind="postmortem", content_hash=digest, feedback_id=fid, record=raw,
        monitor=r.monitor or MonitorInfo(name=r.title), fired_at=detected.at if detected else r.impact_window.start,
        services=services, world=r.world, provenance=r.provenance, comment=rc.description, truth=truth, notes=notes,
    )


def _from_stored(r: StoredFeedback, digest: str, fid: str, raw: dict[str, Any], store: Store,
                 root: Path | None) -> Source:
    run = store.get_run(r.run_id)
    if run is None:
        raise SourceError(f"run {r.run_id!r} is not in {store.path}")
    key = f"{r.run_id}/{r.label_id}/{r.attempt}"
    row = next((x for x in store.investigations(r.run_id) if x["id"] == key), None)
    if row is None:
        raise SourceError(f"run {r.run_id!r} has no investigation of label {r.label_id!r} attempt {r.attempt}")
    calls = store.tool_calls(key)
    set_name = (run.get("manifest") or {}).get("labelset", {}).get("name") or run.get("labelset") or ""
    try:
        label = load_labelset(set_name, root).get(r.label_id)
    except LabelError as e:
        raise SourceError(f"the page of label {r.label_id!r} is unknown: {e}") from None
    diag = _stored_diagnosis(row.get("diagnosis"))
    world_hash = row.get("world") if re.fullmatch(r"[0-9a-f]{64}", str(row.get("world") or "")) else label.world.snapshot
    world = WorldInfo(snapshot=world_hash, incident_window=label.world.incident_window,
                      baseline_window=label.world.baseline_window)
    trig = label.task.trigger
    monitor = MonitorInfo(id=trig.monitor_id, name=trig.title, type=label.taxonomy.monitor_type)
    queries = [ToolQuery(tool=c["name"][:300] or "?", arguments=c.get("arguments") or {}, ok=c.get("ok"),
                         result_excerpt=(c.get("result_preview") or "")[:2000] or None) for c in calls[:500]]
    services = sorted({x.entity for x in (diag.root_causes if diag else [])} | set(diag.causal_chain if diag else []))
    notes = [f"stored investigation {key} (end: {row.get('end_reason')}, score {row.get('score')})"]
    if r.correction is not None and r.correction.note:
        notes.append(f"correction note: {r.correction.note}")
    prov = r.provenance
    if prov.source_incident is None:
        prov = prov.model_copy(update={"source_incident": f"run {r.run_id} / {r.label_id} / attempt {r.attempt}"})
    target = (run.get("manifest") or {}).get("target") or {}
    agent = " ".join(str(x) for x in (target.get("name"), target.get("version")) if x) or None
    return Source(
        kind="stored", content_hash=digest, feedback_id=fid, record=raw, monitor=monitor, fired_at=trig.fired_at,
        services=services, world=world, provenance=prov, verdict=r.verdict, comment=r.comment, diagnosis=diag,
        tool_queries=queries, correction=r.correction, notes=notes, agent=agent,
    )


def _stored_diagnosis(d: Any) -> AgentDiagnosis | None:
    """The protocol's diagnosis as stored, as an ``AgentDiagnosis`` (None when unusable)."""
    if not isinstance(d, dict):
        return None
    rcs = []
    for rc in (d.get("root_causes") or [])[:20]:
        if isinstance(rc, dict) and str(rc.get("entity") or "").strip():
            conf = rc.get("confidence")
            rcs.append({"entity": str(rc["entity"])[:300], "mechanism": (str(rc["mechanism"])[:300] if rc.get("mechanism") else None),
                        "confidence": conf if isinstance(conf, int | float) and 0 <= conf <= 1 else None})
    chain = d.get("causal_chain") or []
    try:
        return AgentDiagnosis.model_validate({
            "no_fault": bool(d.get("no_fault")), "root_causes": rcs,
            "causal_chain": [e for e in chain if isinstance(e, dict | str)][:50], "onset": d.get("onset"),
            "summary": str(d.get("summary") or "")[:20000],
        })
    except ValueError:
        return AgentDiagnosis.model_validate({"no_fault": bool(d.get("no_fault")), "root_causes": rcs})
