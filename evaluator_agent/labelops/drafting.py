"""From a :class:`Source` to a candidate: the ground truth, the flags, the ``Label``-shaped draft.

Where the ground truth comes from, by verdict:

- right: the agent's diagnosis (its first root cause, the mechanism, the chain, the onset). A
  correction that differs from it contradicts the verdict: the correction wins, flagged
  ``right_with_correction``. "Right" about an empty diagnosis is flagged too.
- wrong: the correction only (the agent's culprit becomes a ``must_not_blame`` entry when it
  is off the corrected chain). No correction: no truth, flagged ``wrong_without_correction``,
  the comment is the claim the validator resolves. A correction equal to the diagnosis
  contradicts the verdict (``wrong_but_correction_matches``).
- partly: the correction's fields over the diagnosis's. Without a correction the diagnosis is a
  hypothesis, flagged ``partly_without_correction``.
- unsure: as partly, always flagged ``unsure``.
- postmortem: its root cause, authoritative.

The user's comment is always kept verbatim as the candidate's ``claim``. Fields the input does
not give (taxonomy, difficulty, windows, prompt) are filled by rules and listed in ``assumed``;
``derive`` refills the assumed ones after an edit (edit the mechanism and the taxonomy follows).
What no rule can give (a snapshot, an onset, an unmapped mechanism) stays missing: the draft
then fails the ``Label`` model, and ``problems`` says where, until a validator or a reviewer
supplies it.
"""

from __future__ import annotations

import hashlib
import re
import time
from datetime import timedelta
from typing import Any

from evaluator_agent.core.clock import iso, parse_utc
from evaluator_agent.core.labels import Label
from evaluator_agent.core.vocab import MECHANISM_INFO
from evaluator_agent.labelops.candidate import Candidate, Flag
from evaluator_agent.labelops.sources import Source, Truth

#: the system level of each mechanism (as the world generator assigns them)
SYSTEM_LEVEL: dict[str, str] = {
    "oom_killed": "platform", "crashloop_bad_config": "platform", "cpu_throttling": "platform",
    "node_pressure_eviction": "platform", "consumer_lag": "application", "rebalance_storm": "application",
    "bad_release": "application", "latency_regression": "application", "feature_flag": "application",
    "connection_pool_exhaustion": "data", "slow_query_migration": "data", "lock_contention": "data",
    "replica_lag": "data", "certificate_expiry": "network", "dns_failure": "network", "zone_outage": "network",
    "cache_stampede": "data", "third_party_outage": "external", "retry_storm": "application",
    "disk_full": "infrastructure", "memory_leak": "application", "gc_pauses": "application", "bad_data": "data",
    "no_fault": "application",
}  # fmt: skip
#: common ways people name a mechanism -> the closed vocabulary
MECHANISM_ALIASES: dict[str, str] = {
    "oom": "oom_killed", "oomkilled": "oom_killed", "out_of_memory": "oom_killed", "crashloop": "crashloop_bad_config",
    "crashloopbackoff": "crashloop_bad_config", "throttling": "cpu_throttling", "eviction": "node_pressure_eviction",
    "kafka_lag": "consumer_lag", "lag": "consumer_lag", "bad_deploy": "bad_release", "bad_deployment": "bad_release",
    "connection_pool": "connection_pool_exhaustion", "pool_exhaustion": "connection_pool_exhaustion",
    "slow_query": "slow_query_migration", "locks": "lock_contention", "deadlock": "lock_contention",
    "cert_expiry": "certificate_expiry", "certificate_expired": "certificate_expiry", "dns": "dns_failure",
    "az_outage": "zone_outage", "third_party": "third_party_outage", "vendor_outage": "third_party_outage",
    "retries": "retry_storm", "disk": "disk_full", "leak": "memory_leak", "gc": "gc_pauses", "gc_pause": "gc_pauses",
    "none": "no_fault", "nothing": "no_fault", "false_positive": "no_fault", "benign": "no_fault",
}  # fmt: skip
SIGNALS_OF_TOOL = {
    "query_metrics": "metrics", "list_metrics": "metrics", "search_logs": "logs", "aggregate_logs": "logs",
    "search_spans": "traces", "get_trace": "traces", "get_events": "events", "get_monitors": "monitors",
    "list_services": "topology", "get_service_dependencies": "topology",
}  # fmt: skip
PROMPT = (
    'You are on call for the production environment. The monitor "{title}"{monitor_id} fired at {at} and paged you. '
    "Investigate with the tools: find the root cause (the entity where the failure starts and its mechanism), how it "
    "propagated to the alerting service, and when it started. If nothing is actually broken, say so."
)
_DISAGREES = re.compile(r"\b(wrong|incorrect|not (?:the|a) (?:root )?cause|wasn'?t|was not|actually)\b", re.I)


def mechanism_of(text: str | None) -> str | None:
    """A mechanism as people write it, in the closed vocabulary; None when it maps to none."""
    if not text:
        return None
    key = re.sub(r"[\s\-/]+", "_", text.strip().lower())
    if key in MECHANISM_INFO:
        return key
    return MECHANISM_ALIASES.get(key)


def _same(a: str | None, b: str | None) -> bool:
    return bool(a) and bool(b) and a.strip().lower() == b.strip().lower()  # type: ignore[union-attr]


# ----------------------------------------------------------------------------- truth


def _diag_truth(s: Source) -> Truth | None:
    d = s.diagnosis
    if d is None:
        return None
    if d.no_fault:
        return Truth(origin="diagnosis", no_fault=True, mechanism="no_fault")
    if not d.root_causes:
        return None
    top = d.root_causes[0]
    return Truth(origin="diagnosis", entity=top.entity, mechanism=top.mechanism or d.mechanism,
                 chain=list(d.causal_chain), onset=d.onset)


def _corr_truth(s: Source, over: Truth | None) -> Truth | None:
    c = s.correction
    if c is None:
        return None
    if c.no_fault:
        return Truth(origin="correction", no_fault=True, mechanism="no_fault")
    base = over if over is not None and not over.no_fault else Truth(origin="correction")
    merged = over is not None and not over.no_fault
    entity_changed = c.entity is not None and not _same(c.entity, base.entity)
    return Truth(
        origin="correction+diagnosis" if merged else "correction",
        entity=c.entity or base.entity,
        aliases=list(c.aliases) or ([] if entity_changed else list(base.aliases)),
        kind=c.kind,
        mechanism=c.mechanism or base.mechanism,
        # a chain from another culprit is not this one's
        chain=list(c.causal_chain) or ([] if entity_changed else list(base.chain)),
        onset=c.onset or (None if entity_changed else base.onset),
        change=c.triggering_change or base.change,
    )


def _corr_given(s: Source) -> bool:
    c = s.correction
    return c is not None and (c.no_fault or c.entity is not None or c.mechanism is not None or bool(c.causal_chain)
                              or c.onset is not None or c.triggering_change is not None)


def _corr_matches_diag(s: Source, diag: Truth | None) -> bool:
    c = s.correction
    if c is None or diag is None:
        return False
    if c.no_fault or diag.no_fault:
        return c.no_fault == diag.no_fault
    if c.entity is not None and not _same(c.entity, diag.entity):
        return False
    if c.mechanism is not None and mechanism_of(c.mechanism) != mechanism_of(diag.mechanism):
        return False
    if c.causal_chain and [x.lower() for x in c.causal_chain] != [x.lower() for x in diag.chain]:
        return False
    return c.entity is not None or c.mechanism is not None


def derive_truth(s: Source) -> tuple[Truth | None, list[Flag]]:
    """The ground-truth claim of a source and the flags raised on the way."""
    flags: list[Flag] = []

    def flag(code: str, severity: str, message: str) -> None:
        flags.append(Flag(code=code, severity=severity, message=message))  # type: ignore[arg-type]

    if s.truth is not None:
        return s.truth, flags
    diag = _diag_truth(s)
    c = s.correction
    if c is not None and c.no_fault and (c.entity or (c.mechanism and mechanism_of(c.mechanism) != "no_fault")):
        flag("no_fault_with_root_cause", "contradiction",
             "the correction says nothing was broken and also names a root cause")
    v = s.verdict
    truth: Truth | None
    if v == "right":
        if diag is None:
            flag("right_without_diagnosis", "contradiction",
                 "verdict right, but the investigation has no diagnosis (no root cause, not no-fault)")
        if _corr_given(s) and not _corr_matches_diag(s, diag) and diag is not None:
            flag("right_with_correction", "contradiction",
                 "verdict right, but a correction that differs from the diagnosis is given; the draft uses the correction")
        truth = _corr_truth(s, diag) if _corr_given(s) else diag
        if s.comment and _DISAGREES.search(s.comment):
            flag("comment_disagrees", "warning", "verdict right, but the comment reads as a disagreement")
    elif v == "wrong":
        if not _corr_given(s):
            truth = None
            flag("wrong_without_correction", "unresolved",
                 "verdict wrong and no correction: the root cause must be found from the claim"
                 + ("" if s.comment else " (and there is no comment either)"))
        else:
            truth = _corr_truth(s, None)
            if _corr_matches_diag(s, diag):
                flag("wrong_but_correction_matches", "contradiction",
                     "verdict wrong, but the correction names the agent's own root cause")
            elif truth is not None and not truth.no_fault and truth.entity is None:
                flag("correction_without_entity", "unresolved",
                     "the correction gives no root-cause entity: the validator must find it")
    else:  # partly, unsure
        if _corr_given(s):
            truth = _corr_truth(s, diag)
            if v == "partly" and _corr_matches_diag(s, diag):
                flag("partly_but_correction_matches", "contradiction",
                     "verdict partly right, but the correction repeats the diagnosis")
        else:
            truth = diag
            if v == "partly":
                flag("partly_without_correction", "unresolved",
                     "verdict partly right without a correction: the diagnosis is only a hypothesis; which part is "
                     "wrong must be resolved from the claim")
        if v == "unsure":
            flag("unsure", "unresolved", "the user was unsure: the draft is a hypothesis to validate")
    if truth is not None and not truth.no_fault and truth.mechanism and mechanism_of(truth.mechanism) is None:
        flag("mechanism_unmapped", "unresolved",
             f"mechanism {truth.mechanism[:80]!r} is not in the closed vocabulary; map it with an edit")
    if truth is not None and truth.onset is not None and truth.onset > s.fired_at + timedelta(minutes=5):
        flag("onset_after_page", "warning", "the onset is after the page fired")
    return truth, flags


def _context_flags(s: Source, truth: Truth | None) -> list[Flag]:
    out: list[Flag] = []
    if s.world.snapshot is None:
        out.append(Flag(code="no_snapshot", severity="unresolved",
                        message="no world snapshot: capture the incident's world (proctor capture) and set world.snapshot"))
    if not s.provenance.source_incident and not s.provenance.reporter:
        out.append(Flag(code="no_provenance", severity="warning", message="no source incident and no reporter"))
    w = s.world.incident_window
    if w is not None and not (w.start <= s.fired_at <= w.end):
        out.append(Flag(code="page_outside_window", severity="warning", message="the page is outside the incident window"))
    if truth is not None and truth.entity and s.services:
        known = {x.lower() for x in s.services} | {x.lower() for x in truth.chain}
        if s.diagnosis is not None:
            known |= {rc.entity.lower() for rc in s.diagnosis.root_causes}
        if truth.entity.lower() not in known:
            out.append(Flag(code="entity_not_in_scope", severity="warning",
                            message=f"root cause {truth.entity[:80]!r} is none of the investigation's services: resolve it "
                            "against the snapshot"))
    if truth is None and s.comment:
        out.append(Flag(code="claim_to_resolve", severity="unresolved",
                        message="the ground truth rests on the claim text: the validator must resolve it"))
    return out


# ----------------------------------------------------------------------------- the draft




def _set_path(doc: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split(".")
    for p in parents:
        doc = doc.setdefault(p, {})
    doc[last] = value


def _get_path(doc: dict[str, Any], path: str) -> Any:
    for p in path.split("."):
        if not isinstance(doc, dict) or p not in doc:
            return None
        doc = doc[p]
    return doc


def derive(draft: dict[str, Any], assumed: list[str]) -> None:
    """Refill the fields derived from others (taxonomy from the mechanism, the failure pattern
    from the chain, chain length, prompt from the trigger) where they are missing or assumed."""
    gt = draft.get("ground_truth") or {}
    mech = mechanism_of(gt.get("mechanism")) if isinstance(gt.get("mechanism"), str) else None
    chain = gt.get("causal_chain") if isinstance(gt.get("causal_chain"), list) else []
    no_fault = bool(gt.get("no_fault"))
    trig = (draft.get("task") or {}).get("trigger") or {}
    rcs = gt.get("root_causes") if isinstance(gt.get("root_causes"), list) else []
    entity = rcs[0].get("entity") if rcs and isinstance(rcs[0], dict) and isinstance(rcs[0].get("entity"), str) else None
    if entity and not no_fault and ("ground_truth.causal_chain" in assumed or not chain):
        if not chain or not _same(str(chain[0]), entity):
            chain = [entity]
        _set_path(draft, "ground_truth.causal_chain", chain)
        if "ground_truth.causal_chain" not in assumed:
            assumed.append("ground_truth.causal_chain")
    herrings = gt.get("must_not_blame") if isinstance(gt.get("must_not_blame"), list) else []
    values: dict[str, Any] = {
        "difficulty.factors.chain_length": len(chain),
        "difficulty.factors.red_herrings": len(herrings),
        "taxonomy.failure_pattern": "no_fault" if no_fault else "single" if len(chain) <= 1 else "cascading",
    }
    if mech is not None:
        segment, category = MECHANISM_INFO[mech]
        values |= {
            "taxonomy.mechanism": mech, "taxonomy.segment": "business_logic" if segment == "no_fault" else segment,
            "taxonomy.problem_category": category, "taxonomy.system_level": SYSTEM_LEVEL.get(mech, "application"),
        }
    if chain and isinstance(chain[-1], str):
        values["ground_truth.first_symptom"] = chain[-1]
    if trig.get("title") and trig.get("fired_at"):
        mid = trig.get("monitor_id")
        values["task.prompt"] = PROMPT.format(title=trig["title"], monitor_id=f" (id {mid})" if mid is not None else "",
                                              at=str(trig["fired_at"]).replace("+00:00", "Z"))
    windows = _windows(trig.get("fired_at"), gt.get("onset"), (gt.get("triggering_change") or {}).get("at")
                       if isinstance(gt.get("triggering_change"), dict) else None)
    if windows is not None:
        values["world.incident_window"], values["world.baseline_window"] = windows
    for path, value in values.items():
        if path in assumed or _get_path(draft, path) is None:
            _set_path(draft, path, value)
            if path not in assumed:
                assumed.append(path)


def _windows(fired: Any, onset: Any, change_at: Any) -> tuple[dict[str, str], dict[str, str]] | None:
    """Default windows: the incident from 10 min before the earliest of onset, change and page to
    10 min after the page; the baseline the 3 h before that (a captured world's own windows win)."""
    page = parse_utc(fired)
    if page is None:
        return None
    anchor = min(t for t in (parse_utc(onset), parse_utc(change_at), page) if t is not None)
    return ({"start": iso(anchor - timedelta(minutes=10)), "end": iso(page + timedelta(minutes=10))},
            {"start": iso(anchor - timedelta(hours=3, minutes=10)), "end": iso(anchor - timedelta(minutes=20))})


def build_draft(s: Source, truth: Truth | None) -> tuple[dict[str, Any], list[str]]:
    """The ``Label``-shaped draft of a source and the paths filled by defaults."""
    assumed: list[str] = []
    label_id = "lbl_" + hashlib.sha256(f"label:{s.content_hash}".encode()).hexdigest()[:10]
    gt: dict[str, Any] = {"onset_tolerance_s": 300, "key_evidence": [], "partial_credit": [], "must_not_blame": []}
    chain: list[str] = []
    if truth is not None:
        gt["no_fault"] = truth.no_fault
        mech = "no_fault" if truth.no_fault else (mechanism_of(truth.mechanism) or truth.mechanism)
        if mech:
            gt["mechanism"] = mech
        if truth.no_fault:
            gt["root_causes"] = []
        elif truth.entity:
            gt["root_causes"] = [{"entity": truth.entity, "aliases": [a for a in truth.aliases if a != truth.entity],
                                  "kind": truth.kind}]
            chain = list(truth.chain)
            if not chain:
                chain = [truth.entity]
                if s.monitor.service and not _same(s.monitor.service, truth.entity):
                    chain.append(s.monitor.service)
                assumed.append("ground_truth.causal_chain")
            elif not _same(chain[0], truth.entity):
                chain = [truth.entity, *chain]
            gt["causal_chain"] = chain
        if truth.onset is not None:
            gt["onset"] = iso(truth.onset)
        if truth.change is not None:
            gt["triggering_change"] = truth.change.model_dump(mode="json", exclude_none=True)
        # the agent's wrong culprit, off the true chain, is a red herring it fell for
        if s.verdict == "wrong" and not truth.no_fault and s.diagnosis is not None and s.diagnosis.root_causes:
            blamed = s.diagnosis.root_causes[0].entity
            if truth.entity and blamed.lower() not in {x.lower() for x in chain}:
                gt["must_not_blame"] = [{"entity": blamed, "why": "the agent blamed it; the user said the diagnosis was wrong"}]
    w = s.world
    world: dict[str, Any] = {}  # windows not given are derived (and refollow the onset after edits)
    if w.incident_window is not None:
        world["incident_window"] = w.incident_window.model_dump(mode="json")
    if w.baseline_window is not None:
        world["baseline_window"] = w.baseline_window.model_dump(mode="json")
    signals = sorted({SIGNALS_OF_TOOL[q.tool] for q in s.tool_queries if q.tool in SIGNALS_OF_TOOL})
    offset = 0
    if truth is not None and truth.onset and truth.change and truth.change.at and truth.onset > truth.change.at:
        offset = int((truth.onset - truth.change.at).total_seconds())
    prov = s.provenance
    source = f"feedback {s.feedback_id}" if s.kind != "postmortem" else f"postmortem {s.feedback_id}"
    if prov.source_incident:
        source += f" on incident {prov.source_incident}"
    if prov.reporter:
        source += f", reported by {prov.reporter}"
    if prov.reported_at:
        source += f" at {iso(prov.reported_at)}"
    draft: dict[str, Any] = {
        "id": label_id,
        "schema_version": 1,
        "status": "draft",
        "provenance": {"kind": "feedback", "source": source[:2000],
                       **({"postmortem": s.monitor.name} if s.kind == "postmortem" else {})},
        "split": "public",
        "family": f"incident/{prov.source_incident}" if prov.source_incident else None,
        "taxonomy": {"technologies": [], "monitor_type": s.monitor.type or "metric alert",
                     "tags": [f"source:{s.kind}"] + ([f"verdict:{s.verdict}"] if s.verdict else [])},
        "difficulty": {"tier": "medium", "factors": {
            "red_herrings": len(gt["must_not_blame"]), "services": max(1, len(set(s.services))),
            "signal_kinds": signals, "time_offset_s": offset}},
        "task": {"trigger": {"monitor_id": s.monitor.id, "title": s.monitor.name, "fired_at": iso(s.fired_at)}},
        "world": world,
        "ground_truth": gt,
        "rubric": {},
    }
    if draft["family"] is None:
        del draft["family"]
    if w.snapshot:
        draft["world"]["snapshot"] = w.snapshot
    assumed += ["difficulty.tier", "difficulty.factors.red_herrings", "split"]
    if s.monitor.type is None:
        assumed.append("taxonomy.monitor_type")
    if not s.services:
        assumed.append("difficulty.factors.services")
    derive(draft, assumed)
    return draft, sorted(set(assumed))


def problems(draft: dict[str, Any]) -> list[dict[str, str]]:
    """Where the draft fails the ``Label`` model: [{loc, type, msg}] (empty: it is a label)."""
    from pydantic import ValidationError

    try:
        Label.model_validate(draft)
    except ValidationError as e:
        return [{"loc": ".".join(str(x) for x in err["loc"]), "type": err["type"], "msg": err["msg"]} for err in e.errors()]
    return []


def draft_candidate(s: Source) -> Candidate:
    """A new pending candidate from a source."""
    truth, flags = derive_truth(s)
    flags += _context_flags(s, truth)
    draft, assumed = build_draft(s, truth)
    now = time.time()
    notes = list(s.notes)
    if s.agent:
        notes.insert(0, f"agent: {s.agent}")
    return Candidate(
        id=f"cand_{s.content_hash[:12]}", content_hash=s.content_hash, source_kind=s.kind,  # type: ignore[arg-type]
        feedback_id=s.feedback_id, source_incident=s.provenance.source_incident, verdict=s.verdict,
        title=s.monitor.name, claim=s.comment, notes=notes,
        evidence=[q.model_dump(mode="json", exclude_none=True) for q in s.tool_queries],
        truth_origin=truth.origin if truth else None, draft=draft, original_draft=None, assumed=assumed, flags=flags,
        record=s.record, created_at=now, updated_at=now,
    )
