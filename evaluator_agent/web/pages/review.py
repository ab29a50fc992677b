"""The label review queue: the candidates table (``GET /review``), one candidate
(``GET /review/{cand_id}``) and its three decisions (``POST /review/{cand_id}/accept|edit|reject``).

The pages are the browser's ``proctor labels review list/show/stats/accept/edit/reject``: the same
queue (``labelops/queue.py``, the file ``ui.config.queue_path()``: ``proctor ui --queue`` or
``$PROCTOR_LABEL_QUEUE``) and the same rules, enforced by the queue itself, not by the page:
only a pending candidate is decided; accepting with blocking flags (contradiction, unresolved)
needs an explicit acknowledgement, which is recorded; an edit is a list of ``path=value``
assignments and paths to unset, parsed by ``patching.parse_assignment`` and checked against the
``Label`` model by ``Queue.edit`` exactly as ``--set``/``--unset`` are (refused: nothing changes);
a rejection needs a reason. Accepting promotes into the label set named by the form (default
``$PROCTOR_FEEDBACK_LABELSET``, else ``feedback``; a plain set name) under
``ui.config.labelsets_root``, else the default labelsets folder.

Without a queue the Review link is hidden (``base.html``) and every review page is a 404 that
says how to configure one.

Who decides: with API keys the reviewer recorded (in the queue's history and the promoted label's
provenance) is the signed-in principal, ``viewer.principal``; a form field cannot claim another
name. The open UI (no keys, a local ``proctor ui``) has no identity, so its forms carry a
required reviewer name. The queue is shared by the deployment: it is not tenanted by run owner
(a candidate comes from a team's feedback, not from a run), so every signed-in principal sees
every candidate and may decide any pending one. Configuring a queue on a server therefore makes
every key holder a reviewer, able to read the ground truth of the labels to be.

Every POST checks its CSRF token before it reads the queue; a refused decision re-renders the
candidate page with the queue's message (escaped), 400 for a malformed form or an edit the
model refuses, 409 for a decision the candidate's state refuses; a done one redirects (303) to
the candidate page with ``?done=accepted|edited|rejected``.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from evaluator_agent.core.untrusted import clean
from evaluator_agent.labelops.candidate import Candidate
from evaluator_agent.labelops.drafting import problems
from evaluator_agent.labelops.patching import MAX_OPS, EditError, parse_assignment
from evaluator_agent.labelops.promote import SET_NAME_RE
from evaluator_agent.labelops.queue import Queue, QueueError
from evaluator_agent.labelops.validate import DEFAULT_THRESHOLD
from evaluator_agent.web.app import BadRequest, NotFound
from evaluator_agent.web.session import Viewer

PAGE = 50
#: candidates read for the table (oldest first)
SCAN = 20000
STATUSES = ("pending", "accepted", "rejected", "all")
SORTS = ("created", "updated", "confidence")
LABELSET_ENV = "PROCTOR_FEEDBACK_LABELSET"
#: flash messages after a decision (``?done=``): only these, whatever the query says
DONE = {"accepted": "Accepted: the label was promoted into its set.",
        "edited": "Edited: the draft was changed and checked against the Label model.",
        "rejected": "Rejected."}
DONE_AS = {"accept": "accepted", "edit": "edited", "reject": "rejected"}
MAX_FIELD = 64 * 1024  # a form field's characters
MAX_REVIEWER = 100
MAX_EVIDENCE = 200  # tool queries shown
ID_RE = re.compile(r"^[A-Za-z0-9_]{6,64}$")
NO_QUEUE = ("No label review queue is configured. Point the interface at one: set PROCTOR_LABEL_QUEUE to the "
            "queue file (proctor labels draft FEEDBACK.jsonl --into QUEUE.db creates it), or start it with "
            "proctor ui --db RESULTS.db --queue QUEUE.db.")


class Refused(Exception):
    """A decision refused; the candidate page is shown again with the message."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


# ---------------------------------------------------------------------- the queue


@contextmanager
def opened(ui: Any) -> Iterator[Queue]:
    path = ui.config.queue_path()
    if path is None:
        raise NotFound(NO_QUEUE)
    q = Queue(path)
    try:
        yield q
    finally:
        q.close()


def default_labelset() -> str:
    return (os.environ.get(LABELSET_ENV) or "").strip() or "feedback"


def labelsets_root(ui: Any) -> Path:
    from evaluator_agent.core.labels import labelsets_dir

    return Path(ui.config.labelsets_root) if ui.config.labelsets_root else labelsets_dir()


def candidate_of(q: Queue, cand_id: str) -> Candidate:
    if not ID_RE.match(cand_id):
        raise NotFound(f"no candidate {cand_id[:64]!r}")
    try:
        return q.get(cand_id)
    except QueueError as e:
        raise NotFound(str(e)) from None


def validation_state(c: Candidate) -> str:
    """``validated`` (at or above the validator's threshold, no lint error), ``review`` (below or
    held), or ``not validated``."""
    v = c.validation
    if v is None:
        return "not validated"
    for note in v.notes[:1]:
        if note.startswith("validated"):
            return "validated"
        if note.startswith("review"):
            return "review"
    errors = any(ch.get("severity") == "error" for ch in v.checks)
    return "validated" if v.confidence >= DEFAULT_THRESHOLD and not errors else "review"


def _ts(c: Candidate) -> float:
    return c.updated_at or c.created_at


def row(c: Candidate) -> dict[str, Any]:
    return {"id": c.id, "title": c.title, "feedback_id": c.feedback_id, "source_incident": c.source_incident or "",
            "verdict": c.verdict or "", "truth_origin": c.truth_origin or "", "confidence": c.confidence,
            "state": validation_state(c), "flags": len(c.flags), "blocking": len(c.blocking_flags()),
            "status": c.status, "updated": _ts(c), "edits": c.edits}


# ---------------------------------------------------------------------- the table


def _float(value: str | None, name: str) -> float | None:
    if value is None or value.strip() == "":
        return None
    if len(value) > 16:
        raise BadRequest(f"{name}: a number between 0 and 1")
    try:
        x = float(value)
    except ValueError:
        raise BadRequest(f"{name}: a number between 0 and 1") from None
    if math.isnan(x) or not 0 <= x <= 1:
        raise BadRequest(f"{name}: a number between 0 and 1")
    return x


def list_page(ui: Any, request: Request, viewer: Viewer) -> Response:
    p = request.query_params
    status = p.get("status") or "pending"
    if status not in STATUSES:
        raise BadRequest(f"status: one of {', '.join(STATUSES)}")
    sort = p.get("sort") or "created"
    if sort not in SORTS:
        raise BadRequest(f"sort: one of {', '.join(SORTS)}")
    min_conf = _float(p.get("min_confidence"), "min_confidence")
    search = (p.get("q") or "").strip()[:200]
    with opened(ui) as q:
        every = q.list(limit=SCAN)
        stats = q.stats()
    states = [validation_state(c) for c in every]
    chosen = [c for c in every
              if (status == "all" or c.status == status)
              and (min_conf is None or (c.confidence is not None and c.confidence >= min_conf))
              and (not search or any(search.lower() in (x or "").lower()
                                     for x in (c.feedback_id, c.title, c.id, c.source_incident)))]
    if sort == "updated":
        chosen.sort(key=_ts, reverse=True)
    elif sort == "confidence":
        chosen.sort(key=lambda c: (c.confidence is None, -(c.confidence or 0.0)))
    try:
        page = max(1, int(p.get("page", "1")[:9]))
    except ValueError:
        page = 1
    pages = max(1, -(-len(chosen) // PAGE))
    page = min(page, pages)
    rows = [row(c) for c in chosen[(page - 1) * PAGE: page * PAGE]]
    summary = {**stats, "passed": states.count("validated"),
               "share_validated": stats["validated"] / stats["total"] if stats["total"] else None}
    return ui.render(request, "review.html", viewer, title="Review queue", rows=rows, stats=summary, shown=status,
                     sort=sort, statuses=STATUSES, sorts=SORTS, min_confidence="" if min_conf is None else f"{min_conf:g}",
                     search=search, page=page, pages=pages, total=len(chosen))


# ---------------------------------------------------------------------- one candidate


def _items(x: Any) -> list[Any]:
    return x if isinstance(x, list) else []


def _text(x: Any) -> str:
    if x is None:
        return ""
    return x if isinstance(x, str) else json.dumps(x, default=str)


def truth_view(draft: dict[str, Any]) -> dict[str, Any]:
    gt = draft.get("ground_truth") if isinstance(draft.get("ground_truth"), dict) else {}
    tc = gt.get("triggering_change") if isinstance(gt.get("triggering_change"), dict) else None
    world = draft.get("world") if isinstance(draft.get("world"), dict) else {}
    return {
        "present": bool(gt),
        "no_fault": bool(gt.get("no_fault")),
        "root_causes": [{"entity": _text(r.get("entity")), "kind": _text(r.get("kind")),
                         "aliases": ", ".join(_text(a) for a in _items(r.get("aliases")))}
                        for r in _items(gt.get("root_causes")) if isinstance(r, dict)],
        "mechanism": _text(gt.get("mechanism")),
        "change": {"kind": _text(tc.get("kind")), "entity": _text(tc.get("entity")),
                   "description": _text(tc.get("description")), "at": _text(tc.get("at"))} if tc else None,
        "onset": _text(gt.get("onset")),
        "tolerance": _text(gt.get("onset_tolerance_s")),
        "chain": [_text(x) for x in _items(gt.get("causal_chain"))],
        "first_symptom": _text(gt.get("first_symptom")),
        "key_evidence": [{"tool": _text(k.get("tool")), "arguments": json.dumps(k.get("arguments") or {}, default=str),
                          "expect": _text(k.get("expect")), "description": _text(k.get("description"))}
                         for k in _items(gt.get("key_evidence")) if isinstance(k, dict)],
        "must_not_blame": [{"entity": _text(h.get("entity")), "why": _text(h.get("why"))}
                           for h in _items(gt.get("must_not_blame")) if isinstance(h, dict)],
        "snapshot": _text(world.get("snapshot")),
    }


def _event_detail(e: dict[str, Any]) -> str:
    d = e.get("detail") or {}
    a = e.get("action")
    if a == "edited":
        return "; ".join(f"{p} = {json.dumps((d.get('values') or {}).get(p), default=str)}" for p in d.get("paths") or [])
    if a == "rejected":
        return f"reason: {d.get('reason') or ''}"
    if a == "accepted":
        ack = d.get("acknowledged_flags") or []
        return (f"into {d.get('labelset')} version {d.get('version')} as {d.get('label_id')}"
                + (f"; flags acknowledged: {', '.join(map(str, ack))}" if ack else ""))
    if a == "validated":
        return f"confidence {d.get('confidence')}, {d.get('seconds')} s, by {d.get('validator') or '?'}"
    if a == "drafted":
        return f"from {d.get('source_kind')} {d.get('feedback_id')}" + (
            f"; flags {', '.join(map(str, d['flags']))}" if d.get("flags") else "")
    return ""


def candidate_context(q: Queue, c: Candidate) -> dict[str, Any]:
    """Everything the candidate page shows, as plain values (the template escapes them)."""
    resolved = c.resolved_flags()
    blocking = {f.code for f in c.blocking_flags()}
    v = c.validation
    validation = None
    if v is not None:
        validation = {
            "confidence": v.confidence, "validator": v.validator, "seconds": v.seconds,
            "at": v.validated_at.replace(microsecond=0).isoformat() if v.validated_at else "", "state": validation_state(c),
            "scores": [{"name": name, "score": getattr(v.scores, name).score, "reasons": getattr(v.scores, name).reasons}
                       for name in ("thoroughness", "specificity", "accuracy")],
            "notes": v.notes, "resolved": v.resolved,
            "checks": sorted(({"kind": ch.get("kind", ""), "check": ch.get("check", ""), "message": ch.get("message", ""),
                               "severity": ch.get("severity", "")} for ch in v.checks),
                             key=lambda ch: (ch["severity"] != "error", ch["kind"], ch["check"])),
        }
    inv = c.record.get("investigation") if isinstance(c.record.get("investigation"), dict) else {}
    diag = inv.get("diagnosis") if isinstance(inv.get("diagnosis"), dict) else None
    corr = c.record.get("correction") if isinstance(c.record.get("correction"), dict) else None
    trigger = ((c.draft.get("task") or {}).get("trigger") or {}) if isinstance(c.draft.get("task"), dict) else {}
    return {
        "c": c,
        "label_id": _text(c.draft.get("id")),
        "fired_at": _text(trigger.get("fired_at")) if isinstance(trigger, dict) else "",
        "agent": _text(inv.get("agent")),
        "blamed": [_text(r.get("entity")) for r in _items((diag or {}).get("root_causes")) if isinstance(r, dict)],
        "agent_no_fault": bool((diag or {}).get("no_fault")),
        "correction": {k: _text(corr.get(k)) for k in ("entity", "mechanism") if corr.get(k)} if corr else None,
        "reporter": _text((c.record.get("provenance") or {}).get("reporter")) if isinstance(c.record.get("provenance"), dict) else "",
        "truth": truth_view(c.draft),
        "problems": problems(c.draft),
        "flags": [{"code": f.code, "severity": f.severity, "message": f.message,
                   "state": "resolved" if f.code in resolved else "blocking" if f.code in blocking else "standing"}
                  for f in c.flags],
        "blocking": sorted(blocking),
        "validation": validation,
        "evidence": [{"tool": _text(e.get("tool")), "ok": e.get("ok"),
                      "arguments": json.dumps(e.get("arguments") or {}, default=str),
                      "result": _text(e.get("result_excerpt"))} for e in c.evidence[:MAX_EVIDENCE]],
        "evidence_more": max(0, len(c.evidence) - MAX_EVIDENCE),
        "events": [{"at": e["at"], "when": e["when"], "actor": e["actor"], "action": e["action"], "detail": _event_detail(e)}
                   for e in q.events(c.id)],
        "draft_json": json.dumps(c.draft, indent=2, default=str),
        "original_json": json.dumps(c.original_draft, indent=2, default=str) if c.original_draft and c.edits else "",
        "promoted": c.promoted.model_dump() if c.promoted else None,
    }


def _render(ui: Any, request: Request, viewer: Viewer, q: Queue, c: Candidate, *, status: int = 200,
            error: str | None = None, failed: str | None = None, form: dict[str, Any] | None = None) -> Response:
    done = request.query_params.get("done") if status == 200 else None
    values = {"into": default_labelset(), "reviewer": "", "sets": "", "unsets": "", "reason": "", "ack": False,
              **(form or {})}
    return ui.render(request, "candidate.html", viewer, status_code=status, title=f"Candidate {c.id}",
                     **candidate_context(q, c), error=error, failed=failed, flash=DONE.get(done or ""),
                     form=values, ask_reviewer=viewer.principal is None)


def show_page(ui: Any, request: Request, viewer: Viewer) -> Response:
    with opened(ui) as q:
        c = candidate_of(q, request.path_params["cand_id"])
        return _render(ui, request, viewer, q, c)


# ---------------------------------------------------------------------- decisions


def _field(form: Any, name: str, limit: int = MAX_FIELD) -> str:
    value = form.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise Refused(f"{name}: text expected")
    if len(value) > limit:
        raise Refused(f"{name}: at most {limit} characters")
    return value


def reviewer_of(viewer: Viewer, form: Any) -> str:
    """The signed-in principal; on the open UI the form's required reviewer name."""
    if viewer.principal is not None:
        return viewer.principal  # whatever the form says
    name = clean(_field(form, "reviewer", 1000), MAX_REVIEWER)
    if not name:
        raise Refused("a reviewer name is required")
    return name


def _lines(text: str) -> list[str]:
    out = [ln.strip() for ln in text.replace("\r\n", "\n").split("\n")]
    return [ln for ln in out if ln and not ln.startswith("#")]


def decide(q: Queue, c: Candidate, kind: str, reviewer: str, form: Any, root: Path) -> None:
    """Run one decision through the queue; Refused when the form or the queue refuses it."""
    try:
        if kind == "accept":
            into = _field(form, "into", 200).strip() or default_labelset()
            if not SET_NAME_RE.match(into):
                raise Refused(f"invalid label set name {into[:64]!r}: lowercase letters, digits, _ . - (at most 64)")
            q.accept(c.id, reviewer, into, root, acknowledge_flags=_field(form, "acknowledge_flags", 10) == "yes")
        elif kind == "edit":
            sets, unsets = _lines(_field(form, "sets")), _lines(_field(form, "unsets"))
            if not sets and not unsets:
                raise Refused("nothing to edit: give path=value lines to set, or paths to unset")
            if len(sets) + len(unsets) > MAX_OPS:
                raise Refused(f"at most {MAX_OPS} changes in one edit")
            q.edit(c.id, reviewer, sets=[parse_assignment(s) for s in sets], unsets=unsets)
        else:
            reason = _field(form, "reason", 5000)
            if not reason.strip():
                raise Refused("a rejection needs a reason")
            q.reject(c.id, reviewer, reason)
    except EditError as e:
        raise Refused(str(e), 400) from None
    except OSError as e:  # the label set's folder: permissions, a full disk (the queue rolled back)
        raise Refused(f"the label set could not be written: {e.strerror or type(e).__name__}", 500) from None
    except QueueError as e:
        msg = str(e)
        raise Refused(msg, 400 if "reviewer name" in msg or "needs a reason" in msg else 409) from None


async def _act(ui: Any, request: Request, viewer: Viewer, kind: str) -> Response:
    form = await request.form(max_files=0, max_fields=12, max_part_size=MAX_FIELD)
    ui.csrf_checked(request, viewer, form)  # before anything is read or changed
    cand_id = request.path_params["cand_id"]

    def work() -> Response:
        with opened(ui) as q:
            c = candidate_of(q, cand_id)
            try:
                decide(q, c, kind, reviewer_of(viewer, form), form, labelsets_root(ui))
            except Refused as e:
                kept: dict[str, Any] = {k: v[:MAX_FIELD] for k in ("into", "reviewer", "sets", "unsets", "reason")
                                        if isinstance(v := form.get(k), str)}
                kept["ack"] = form.get("acknowledge_flags") == "yes"
                return _render(ui, request, viewer, q, q.get(c.id), status=e.status, error=str(e), failed=kind,
                               form=kept)
        return ui.redirect(request, f"/review/{c.id}?done={DONE_AS[kind]}")

    return await run_in_threadpool(work)


async def accept(ui: Any, request: Request, viewer: Viewer) -> Response:
    return await _act(ui, request, viewer, "accept")


async def edit(ui: Any, request: Request, viewer: Viewer) -> Response:
    return await _act(ui, request, viewer, "edit")


async def reject(ui: Any, request: Request, viewer: Viewer) -> Response:
    return await _act(ui, request, viewer, "reject")


def routes(ui: Any) -> list[Route]:
    return [
        Route("/review", ui.page(list_page), methods=["GET"]),
        Route("/review/{cand_id}", ui.page(show_page), methods=["GET"]),
        Route("/review/{cand_id}/accept", ui.page(accept), methods=["POST"]),
        Route("/review/{cand_id}/edit", ui.page(edit), methods=["POST"]),
        Route("/review/{cand_id}/reject", ui.page(reject), methods=["POST"]),
    ]
