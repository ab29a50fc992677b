"""``proctor labels schema --feedback``, ``proctor labels draft`` and ``proctor labels review``.

Wiring (``cli/main.py``): ``add_schema_arguments(schema_parser)`` with ``fn=cmd_labels_schema``
for ``labels schema``, and ``add_labelops_parsers(labels_subparsers)`` for ``draft`` and
``review``.

Usage::

    proctor labels schema --feedback                      # JSON Schema of one input record
    proctor labels draft FEEDBACK.jsonl --into QUEUE.db   # [--db RESULTS.db] for kind "stored"
    proctor labels review list [--status pending|accepted|rejected] [--min-confidence X] [--max-confidence X]
    proctor labels review show ID [--json]
    proctor labels review edit ID --set path=value ... [--unset path] | --patch FILE  [--reviewer NAME]
    proctor labels review accept ID --reviewer NAME [--into SET] [--acknowledge-flags]
    proctor labels review reject ID --reason TEXT --reviewer NAME
    proctor labels review stats

The queue is ``--queue`` (default $PROCTOR_LABEL_QUEUE, else label-queue.db); accepted labels
go into label sets under ``--labelsets-root`` (default the project's labelsets, or
$PROCTOR_LABELSETS). Exit codes: 0 ok, 1 refused or some records bad, 2 usage.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from pathlib import Path
from typing import Any

from evaluator_agent.cli.common import EXIT_ERROR, EXIT_OK, EXIT_USAGE, _write_json, default_db
from evaluator_agent.core.untrusted import clean


def default_queue() -> str:
    return os.environ.get("PROCTOR_LABEL_QUEUE", "label-queue.db")


def _root(a: argparse.Namespace) -> Path:
    from evaluator_agent.core.labels import labelsets_dir

    return Path(a.labelsets_root) if getattr(a, "labelsets_root", None) else labelsets_dir()


def _err(prog: str, msg: str) -> None:
    print(f"proctor labels {prog}: {msg}", file=sys.stderr)


# ----------------------------------------------------------------------------- schema


def add_schema_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--feedback", action="store_true",
                   help="the JSON Schema of a feedback record (proctor labels draft input) instead of the label's")


def cmd_labels_schema(a: argparse.Namespace) -> int:
    if getattr(a, "feedback", False):
        from evaluator_agent.labelops.records import feedback_json_schema

        _write_json("-", feedback_json_schema())
    else:
        from evaluator_agent.core.labels import label_json_schema

        _write_json("-", label_json_schema())
    return EXIT_OK


# ----------------------------------------------------------------------------- draft


def add_draft_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", metavar="FEEDBACK.jsonl",
                   help="feedback records, JSON lines (kinds feedback, stored, postmortem; see labels schema --feedback)")
    p.add_argument("--into", default=default_queue(), metavar="QUEUE.db",
                   help="the review queue (SQLite; created if missing; default $PROCTOR_LABEL_QUEUE or label-queue.db)")
    p.add_argument("--db", default=default_db(), help="results database for records of kind stored (default $PROCTOR_DB)")
    p.add_argument("--labelsets-root", default=None, metavar="DIR",
                   help="where the labels of stored investigations are found (default the project's labelsets)")
    p.add_argument("--json", action="store_true")


def cmd_labels_draft(a: argparse.Namespace) -> int:
    from evaluator_agent.labelops.intake import draft_file
    from evaluator_agent.labelops.queue import Queue

    path = Path(a.input)
    if not path.is_file():
        _err("draft", f"{a.input}: no such file")
        return EXIT_USAGE
    with Queue(a.into) as q:
        report = draft_file(path, q, results_db=a.db, labelsets_root=_root(a))
    if a.json:
        _write_json("-", report.as_dict())
    else:
        for o in report.outcomes:
            if o.status == "error":
                print(f"{path.name} {o.where}: error: {clean(o.error, 400)}", file=sys.stderr)
            else:
                extra = f"  flags: {', '.join(o.flags)}" if o.flags else ""
                todo = f"  ({o.problems} to complete)" if o.problems else ""
                print(f"{o.where}: {o.status:9s} {o.candidate_id}{todo}{extra}")
        c = report.counts
        print(f"{c['new']} new, {c['duplicate']} already queued, {c['error']} bad -> {a.into}")
    return EXIT_ERROR if report.counts["error"] else EXIT_OK


# ----------------------------------------------------------------------------- review


def add_review_arguments(p: argparse.ArgumentParser) -> None:
    def common(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--queue", default=default_queue(), metavar="QUEUE.db",
                        help="the review queue (default $PROCTOR_LABEL_QUEUE or label-queue.db)")

    rsub = p.add_subparsers(dest="review_cmd", required=True)
    ls = rsub.add_parser("list", help="candidates, oldest first")
    common(ls)
    ls.add_argument("--status", choices=["pending", "accepted", "rejected"])
    ls.add_argument("--min-confidence", type=float, metavar="X", help="only validated candidates with confidence >= X")
    ls.add_argument("--max-confidence", type=float, metavar="X", help="only validated candidates with confidence <= X")
    ls.add_argument("--limit", type=int, default=1000)
    ls.add_argument("--json", action="store_true")
    sh = rsub.add_parser("show", help="one candidate: draft, claim, evidence, flags, scores and reasons, history")
    common(sh)
    sh.add_argument("id", help="candidate id (or a unique prefix of 6+ characters)")
    sh.add_argument("--json", action="store_true")
    sh.add_argument("--draft", action="store_true", help="also print the whole draft label")
    ac = rsub.add_parser("accept", help="promote a candidate into a label set")
    common(ac)
    ac.add_argument("id")
    ac.add_argument("--reviewer", default=os.environ.get("PROCTOR_REVIEWER"), help="who accepts (default $PROCTOR_REVIEWER)")
    ac.add_argument("--into", default=os.environ.get("PROCTOR_FEEDBACK_LABELSET", "feedback"), metavar="SET",
                    help="label set to promote into, created if missing (default $PROCTOR_FEEDBACK_LABELSET or feedback)")
    ac.add_argument("--labelsets-root", default=None, metavar="DIR", help="where label sets live (default the project's)")
    ac.add_argument("--acknowledge-flags", action="store_true",
                    help="accept although contradiction or unresolved flags remain (recorded)")
    ac.add_argument("--json", action="store_true")
    ed = rsub.add_parser("edit", help="change the draft (checked against the Label model)")
    common(ed)
    ed.add_argument("id")
    ed.add_argument("--set", dest="sets", action="append", default=[], metavar="PATH=VALUE",
                    help="e.g. ground_truth.root_causes.0.entity=catalog-db; VALUE is JSON when it parses")
    ed.add_argument("--unset", dest="unsets", action="append", default=[], metavar="PATH")
    ed.add_argument("--patch", metavar="FILE", help="JSON Patch (RFC 6902 array) or JSON Merge Patch (object) file")
    ed.add_argument("--reviewer", default=None, help="who edits (default $PROCTOR_REVIEWER, else the login name)")
    ed.add_argument("--json", action="store_true")
    rj = rsub.add_parser("reject", help="reject a candidate with a reason")
    common(rj)
    rj.add_argument("id")
    rj.add_argument("--reason", required=True)
    rj.add_argument("--reviewer", default=os.environ.get("PROCTOR_REVIEWER"), help="who rejects (default $PROCTOR_REVIEWER)")
    rj.add_argument("--json", action="store_true")
    st = rsub.add_parser("stats", help="throughput: counts by status, share accepted without edits, times")
    common(st)
    st.add_argument("--json", action="store_true")


def add_labelops_parsers(lsub: Any) -> None:
    """``draft`` and ``review`` under ``proctor labels`` (``lsub``: its subparsers)."""
    dr = lsub.add_parser("draft", help="feedback records -> candidate labels in the review queue")
    add_draft_arguments(dr)
    dr.set_defaults(fn=cmd_labels_draft)
    rv = lsub.add_parser("review", help="the review queue: list, show, edit, accept, reject, stats")
    add_review_arguments(rv)
    rv.set_defaults(fn=cmd_labels_review)


def cmd_labels_review(a: argparse.Namespace) -> int:
    from evaluator_agent.labelops.patching import EditError
    from evaluator_agent.labelops.queue import Queue, QueueError

    cmd = a.review_cmd
    if cmd in ("accept", "reject") and not (a.reviewer or "").strip():
        _err(f"review {cmd}", "--reviewer NAME is required (or set $PROCTOR_REVIEWER)")
        return EXIT_USAGE
    if not Path(a.queue).is_file():
        _err(f"review {cmd}", f"{a.queue}: no queue there (draft into it first)")
        return EXIT_ERROR
    try:
        with Queue(a.queue) as q:
            return _REVIEW[cmd](a, q)
    except (QueueError, EditError) as e:
        _err(f"review {cmd}", str(e))
        return EXIT_ERROR


def _list(a: argparse.Namespace, q: Any) -> int:
    from evaluator_agent.labelops.drafting import problems
    from evaluator_agent.results.text import table

    items = q.list(status=a.status, min_confidence=a.min_confidence, max_confidence=a.max_confidence, limit=a.limit)
    rows = [{"id": c.id, "status": c.status, "source": c.source_kind, "verdict": c.verdict, "confidence": c.confidence,
             "flags": [f.code for f in c.flags], "blocking": [f.code for f in c.blocking_flags()],
             "problems": len(problems(c.draft)), "edits": c.edits, "title": c.title, "feedback_id": c.feedback_id,
             "source_incident": c.source_incident} for c in items]
    if a.json:
        _write_json("-", rows)
        return EXIT_OK
    if not rows:
        print("no candidates")
        return EXIT_OK
    print(table(["id", "status", "source", "verdict", "conf", "flags", "todo", "title"],
                [[r["id"], r["status"], r["source"], r["verdict"] or "-",
                  "-" if r["confidence"] is None else f"{r['confidence']:.2f}",
                  f"{len(r['blocking'])}!/{len(r['flags'])}" if r["flags"] else "", r["problems"] or "",
                  clean(r["title"], 60)] for r in rows]))
    return EXIT_OK


def _show(a: argparse.Namespace, q: Any) -> int:
    from evaluator_agent.labelops.drafting import problems

    c = q.get(a.id)
    probs = problems(c.draft)
    events = q.events(c.id)
    if a.json:
        _write_json("-", c.model_dump(mode="json") | {"problems": probs, "blocking_flags": [f.code for f in c.blocking_flags()],
                                                      "history": events})
        return EXIT_OK
    print("\n".join(render_candidate(c, probs, events, full_draft=a.draft)))
    return EXIT_OK


def render_candidate(c: Any, probs: list[dict[str, str]], events: list[dict[str, Any]], full_draft: bool = False) -> list[str]:
    """``review show`` as lines of text (untrusted text cleaned and capped)."""
    out = [f"{c.id}  {c.status}  ({c.source_kind}{', verdict ' + c.verdict if c.verdict else ''})  label {c.draft.get('id')}",
           f"page:      {clean(c.title, 120)} at {c.draft.get('task', {}).get('trigger', {}).get('fired_at')}",
           f"feedback:  {clean(c.feedback_id, 80)}  incident {clean(c.source_incident or '-', 80)}"]
    if c.claim:
        out.append(f"claim:     \"{clean(c.claim, 400)}\"")
    gt = c.draft.get("ground_truth") or {}
    if gt.get("no_fault"):
        out.append("truth:     no fault (nothing was broken)")
    else:
        rcs = ", ".join(clean(r.get("entity"), 80) for r in gt.get("root_causes") or []) or "? (unknown)"
        chain = " -> ".join(clean(x, 60) for x in gt.get("causal_chain") or []) or "-"
        out.append(f"truth:     root cause {rcs}; mechanism {clean(gt.get('mechanism') or '?', 60)}; onset "
                   f"{gt.get('onset') or '?'}; chain {chain}  (from {c.truth_origin or 'nothing yet'})")
        if gt.get("must_not_blame"):
            out.append("           must not blame: " + ", ".join(clean(h.get("entity"), 60) for h in gt["must_not_blame"]))
    out.append(f"snapshot:  {(c.draft.get('world') or {}).get('snapshot') or '(none yet)'}")
    if c.flags:
        resolved = c.resolved_flags()
        out.append("flags:")
        out += [f"  [{f.severity}] {f.code}{' (resolved)' if f.code in resolved else ''}: "
                f"{clean(f.message, 300)}" for f in c.flags]
    if c.validation is not None:
        v = c.validation
        out.append(f"validation: confidence {v.confidence:.2f}" + (f" by {clean(v.validator, 60)}" if v.validator else "")
                   + (f", {v.seconds:.1f} s" if v.seconds is not None else ""))
        for dim in ("thoroughness", "specificity", "accuracy"):
            s = getattr(v.scores, dim)
            out.append(f"  {dim:12s} {s.score:.2f}")
            out += [f"    - {clean(r, 300)}" for r in s.reasons]
        out += [f"  note: {clean(n, 300)}" for n in v.notes]
    else:
        out.append("validation: not validated yet")
    if probs:
        out.append("to complete (the draft is not a valid label yet):")
        out += [f"  {p['loc'] or '(label)'}: {clean(p['msg'], 200)}" for p in probs]
    if c.assumed:
        out.append("assumed (defaults): " + ", ".join(c.assumed))
    if c.evidence:
        out.append(f"evidence ({len(c.evidence)} tool queries of the agent):")
        for e in c.evidence[:30]:
            args = json.dumps(e.get("arguments") or {}, separators=(",", ":"), default=str)
            ok = "" if e.get("ok") is None else (" ok" if e["ok"] else " failed")
            out.append(f"  {clean(e.get('tool'), 40)}{ok} {clean(args, 200)}")
            if e.get("result_excerpt"):
                out.append(f"      -> {clean(e['result_excerpt'], 200)}")
        if len(c.evidence) > 30:
            out.append(f"  ... and {len(c.evidence) - 30} more")
    if c.notes:
        out.append("notes:")
        out += [f"  {clean(n, 300)}" for n in c.notes[:30]]
    if c.status == "rejected":
        out.append(f"rejected by {clean(c.reviewer, 60)}: {clean(c.reason, 500)}")
    if c.promoted is not None:
        p = c.promoted
        out.append(f"promoted:  {p.label_id} into {p.labelset} version {p.version} (content hash {p.content_hash[:16]}) "
                   f"by {clean(c.reviewer, 60)}")
    out.append("history:")
    out += [f"  {e['when']}  {clean(e['actor'], 40):12s} {e['action']}" + _detail(e) for e in events]
    if full_draft:
        out.append("draft:")
        out.append(json.dumps(c.draft, indent=2, default=str))
    return out


def _detail(e: dict[str, Any]) -> str:
    d = e.get("detail") or {}
    if e["action"] == "edited":
        return "  " + ", ".join(d.get("paths") or [])
    if e["action"] == "rejected":
        return f"  {clean(d.get('reason'), 120)}"
    if e["action"] == "accepted":
        return f"  -> {d.get('labelset')} v{d.get('version')}"
    if e["action"] == "validated":
        return f"  confidence {d.get('confidence')}"
    return ""


def _accept(a: argparse.Namespace, q: Any) -> int:
    c = q.accept(a.id, a.reviewer.strip(), a.into, _root(a), acknowledge_flags=a.acknowledge_flags)
    p = c.promoted
    if a.json:
        _write_json("-", {"id": c.id, "status": c.status, "promoted": p.model_dump()})
    else:
        made = " (new set)" if p.created_set else ""
        print(f"{c.id} accepted by {clean(c.reviewer, 60)}: {p.label_id} -> {p.path}\n"
              f"label set {p.labelset}{made} version {p.version}, content hash {p.content_hash}")
    return EXIT_OK


def _edit(a: argparse.Namespace, q: Any) -> int:
    from evaluator_agent.labelops.patching import EditError, load_patch_file, parse_assignment

    if a.patch and (a.sets or a.unsets):
        raise EditError("give --patch, or --set/--unset, not both")
    patch = None
    if a.patch:
        try:
            patch = load_patch_file(Path(a.patch).read_text())
        except OSError as e:
            raise EditError(f"{a.patch}: {e.strerror or e}") from None
    sets = [parse_assignment(s) for s in a.sets]
    actor = (a.reviewer or os.environ.get("PROCTOR_REVIEWER") or _login()).strip() or "unknown"
    c = q.edit(a.id, actor, sets=sets, unsets=a.unsets, patch=patch)
    from evaluator_agent.labelops.drafting import problems

    probs = problems(c.draft)
    if a.json:
        _write_json("-", {"id": c.id, "edits": c.edits, "problems": probs, "draft": c.draft})
    else:
        print(f"{c.id} edited by {clean(actor, 60)} (edit {c.edits})"
              + (f"; still to complete: {', '.join(p['loc'] or '(label)' for p in probs)}" if probs else "; a valid label"))
    return EXIT_OK


def _login() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _reject(a: argparse.Namespace, q: Any) -> int:
    c = q.reject(a.id, a.reviewer.strip(), a.reason)
    if a.json:
        _write_json("-", {"id": c.id, "status": c.status, "reviewer": c.reviewer, "reason": c.reason})
    else:
        print(f"{c.id} rejected by {clean(c.reviewer, 60)}: {clean(c.reason, 200)}")
    return EXIT_OK


def _stats(a: argparse.Namespace, q: Any) -> int:
    s = q.stats()
    if a.json:
        _write_json("-", s)
        return EXIT_OK
    st = s["by_status"]
    share = s["share_accepted_without_edits"]
    print(f"candidates {s['total']}: pending {st['pending']} ({s['pending_flagged']} flagged), accepted {st['accepted']}, "
          f"rejected {st['rejected']}")
    print(f"accepted without edits: {s['accepted_without_edits']}"
          + (f" ({100 * share:.0f}% of accepted)" if share is not None else ""))
    print("by source: " + (", ".join(f"{k} {v}" for k, v in s["by_source"].items()) or "-"))
    vs = s["validation_seconds_per_label"]
    print(f"validated: {s['validated']}" + (f", mean confidence {s['mean_confidence']:.2f}" if s["mean_confidence"] is not None else "")
          + (f", {vs['mean']:.1f} s per label (median {vs['median']:.1f}, n {vs['n']})" if vs else ""))
    if s["median_seconds_to_decision"] is not None:
        print(f"median time to a decision: {s['median_seconds_to_decision'] / 3600:.1f} h")
    return EXIT_OK


_REVIEW = {"list": _list, "show": _show, "accept": _accept, "edit": _edit, "reject": _reject, "stats": _stats}
