"""Feedback -> candidate labels -> the review queue -> a label set (issue 14, labelops part).

Every command goes through the CLI functions (``cli/labelops.py``) as ``proctor labels ...``
would call them; label sets are written under a temporary labelsets root only.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from evaluator_agent.cli.labelops import (
    add_labelops_parsers,
    add_schema_arguments,
    cmd_labels_schema,
)
from evaluator_agent.core.labels import Label, load_labelset
from evaluator_agent.core.records import InvestigationResult, ToolCallRecord
from evaluator_agent.labelops import (
    Queue,
    QueueError,
    Score,
    Validation,
    ValidationScores,
    read_provenance,
)
from evaluator_agent.labelops.drafting import problems
from evaluator_agent.results.store import Store

CASCADE = "lbl_0ce1c089a1"  # smoke: catalog-redis cache stampede -> catalog -> web-bff
NO_FAULT = "lbl_94fb6c64b0"  # smoke: a benign page


# ----------------------------------------------------------------------------- helpers


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="proctor labels")
    sub = p.add_subparsers(dest="labels_cmd", required=True)
    sc = sub.add_parser("schema")
    add_schema_arguments(sc)
    sc.set_defaults(fn=cmd_labels_schema)
    add_labelops_parsers(sub)
    return p


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    a = _parser().parse_args(list(argv))
    rc = a.fn(a)
    out = capsys.readouterr()
    return rc, out.out, out.err


@pytest.fixture(scope="module")
def smoke() -> Any:
    return load_labelset("smoke")


def _world(lb: Label) -> dict[str, Any]:
    return {"snapshot": lb.world.snapshot, "incident_window": lb.world.incident_window.model_dump(mode="json"),
            "baseline_window": lb.world.baseline_window.model_dump(mode="json")}


def feedback(lb: Label, verdict: str, *, diag: dict[str, Any] | None = None, correction: dict[str, Any] | None = None,
             comment: str = "", fid: str | None = None, world: bool = True, services: list[str] | None = None) -> dict[str, Any]:
    """A feedback record on an investigation of ``lb``'s page."""
    gt = lb.ground_truth
    rec: dict[str, Any] = {
        "investigation": {
            "agent": "acme-sre 1.2",
            "monitor": {"id": lb.task.trigger.monitor_id, "name": lb.task.trigger.title, "type": lb.taxonomy.monitor_type,
                        "service": gt.first_symptom},
            "fired_at": lb.task.trigger.fired_at.isoformat(),
            "services": services if services is not None else sorted(
                set(gt.causal_chain) | {h.entity for h in gt.must_not_blame} | {p.entity for p in gt.partial_credit}),
            "tool_queries": [{"tool": k.tool, "arguments": k.arguments, "ok": True, "result_excerpt": k.expect}
                             for k in gt.key_evidence],
        },
        "verdict": verdict,
        "comment": comment,
        "provenance": {"source_incident": f"INC-{lb.id[-4:]}", "reporter": "alice", "reported_at": "2026-03-01T10:00:00Z",
                       "system": "slack"},
    }
    if diag is not None:
        rec["investigation"]["diagnosis"] = diag
    if correction is not None:
        rec["correction"] = correction
    if world:
        rec["world"] = _world(lb)
    if fid:
        rec["id"] = fid
    return rec


def right_diag(lb: Label) -> dict[str, Any]:
    gt = lb.ground_truth
    if gt.no_fault:
        return {"no_fault": True}
    return {"root_causes": [{"entity": gt.root_causes[0].entity, "mechanism": gt.mechanism, "confidence": 0.8}],
            "causal_chain": [{"source": a, "target": b} for a, b in zip(gt.causal_chain, gt.causal_chain[1:], strict=False)],
            "onset": gt.onset.isoformat() if gt.onset else None, "summary": "evictions after the maxmemory change"}


def write_jsonl(path: Path, records: list[Any]) -> Path:
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in records) + "\n")
    return path


def draft(capsys: Any, tmp_path: Path, records: list[Any], name: str = "fb.jsonl", *extra: str) -> tuple[int, dict[str, Any]]:
    f = write_jsonl(tmp_path / name, records)
    rc, out, _ = cli(capsys, "draft", str(f), "--into", str(tmp_path / "q.db"), "--json", *extra)
    return rc, json.loads(out)


def only(report: dict[str, Any]) -> str:
    [o] = report["outcomes"]
    assert o["status"] in ("new", "duplicate"), o
    return o["candidate_id"]


def queue(tmp_path: Path) -> Queue:
    return Queue(tmp_path / "q.db")


def codes(c: Any) -> set[str]:
    return {f.code for f in c.flags}


# ----------------------------------------------------------------------------- schema


def test_feedback_schema_is_published_and_valid(capsys: Any, smoke: Any) -> None:
    rc, out, _ = cli(capsys, "schema", "--feedback")
    assert rc == 0
    schema = json.loads(out)
    jsonschema.Draft202012Validator.check_schema(schema)
    v = jsonschema.Draft202012Validator(schema)
    lb = smoke.get(CASCADE)
    good = feedback(lb, "right", diag={"root_causes": [{"entity": "catalog-redis", "mechanism": "cache_stampede"}],
                                       "causal_chain": ["catalog-redis", "catalog", "web-bff"]})
    assert not list(v.iter_errors(good))  # kind may be left out: feedback
    assert not list(v.iter_errors({"kind": "stored", "run_id": "r1", "label_id": CASCADE, "verdict": "wrong"}))
    assert not list(v.iter_errors(_postmortem()))
    assert list(v.iter_errors({**good, "verdict": "maybe"}))
    assert list(v.iter_errors({**good, "verdit": "right"}))
    props = schema["$defs"]["FeedbackRecord"]["properties"]
    for key in ("investigation", "verdict", "comment", "correction", "world", "provenance"):
        assert key in props
    inv = schema["$defs"]["InvestigationInfo"]["properties"]
    assert {"monitor", "fired_at", "services", "diagnosis", "tool_queries"} <= set(inv)
    assert set(schema["$defs"]["SourceProvenance"]["properties"]) >= {"source_incident", "reporter", "reported_at"}
    # without --feedback: the label's schema, as before
    rc, out, _ = cli(capsys, "schema")
    assert json.loads(out)["title"] == "Label"


# ----------------------------------------------------------------------------- drafting


def test_right_verdict_takes_the_diagnosis_and_accepts_without_edits(capsys: Any, tmp_path: Path, smoke: Any) -> None:
    lb = smoke.get(CASCADE)
    rc, rep = draft(capsys, tmp_path, [feedback(lb, "right", diag=right_diag(lb), comment="spot on", fid="fb-1")])
    assert rc == 0 and rep["counts"] == {"new": 1, "duplicate": 0, "error": 0}
    cid = only(rep)
    with queue(tmp_path) as q:
        c = q.get(cid)
    assert c.truth_origin == "diagnosis" and c.claim == "spot on" and not c.blocking_flags()
    gt = c.draft["ground_truth"]
    assert gt["root_causes"][0]["entity"] == "catalog-redis" and gt["mechanism"] == "cache_stampede"
    assert gt["causal_chain"] == ["catalog-redis", "catalog", "web-bff"] and gt["first_symptom"] == "web-bff"
    assert c.draft["task"]["trigger"]["title"] == lb.task.trigger.title
    assert c.draft["taxonomy"]["segment"] == "cache" and c.draft["taxonomy"]["failure_pattern"] == "cascading"
    assert len(c.evidence) == len(lb.ground_truth.key_evidence)
    assert problems(c.draft) == []
    root = tmp_path / "labelsets"
    rc, out, err = cli(capsys, "review", "accept", cid[:10], "--queue", str(tmp_path / "q.db"), "--reviewer", "bob",
                       "--into", "from-feedback", "--labelsets-root", str(root))
    assert rc == 0, err
    ls = load_labelset("from-feedback", root)
    [label] = ls.labels
    assert label == Label.model_validate(json.loads((root / "from-feedback" / f"{label.id}.json").read_text()))
    assert label.status == "validated" and label.provenance.kind == "feedback" and label.provenance.validated_by == "bob"
    assert "fb-1" in label.provenance.source and "INC-" in label.provenance.source
    assert label.ground_truth.onset == lb.ground_truth.onset and label.world.snapshot == lb.world.snapshot
    assert ls.info.version == "1" and ls.content_hash in out


def test_wrong_verdict_takes_the_correction_and_marks_the_agents_culprit(capsys: Any, tmp_path: Path, smoke: Any) -> None:
    lb = smoke.get(CASCADE)
    diag = {"root_causes": [{"entity": "media-api", "mechanism": "bad_release"}], "causal_chain": ["media-api", "web-bff"]}
    corr = {"entity": "catalog-redis", "mechanism": "cache stampede", "causal_chain": ["catalog-redis", "catalog", "web-bff"],
            "onset": "2026-02-24T19:39:10Z",
            "triggering_change": {"kind": "config", "entity": "catalog-redis", "description": "maxmemory lowered"}}
    _, rep = draft(capsys, tmp_path, [feedback(lb, "wrong", diag=diag, correction=corr, comment="it was the cache")])
    with queue(tmp_path) as q:
        c = q.get(only(rep))
    gt = c.draft["ground_truth"]
    assert c.truth_origin == "correction" and gt["root_causes"][0]["entity"] == "catalog-redis"
    assert gt["mechanism"] == "cache_stampede"  # free text mapped to the vocabulary
    assert gt["must_not_blame"] == [{"entity": "media-api", "why": "the agent blamed it; the user said the diagnosis was wrong"}]
    assert gt["triggering_change"]["kind"] == "config" and not c.blocking_flags() and problems(c.draft) == []


def test_vague_feedback_keeps_the_claim_for_the_validator(capsys: Any, tmp_path: Path, smoke: Any) -> None:
    lb = smoke.get(CASCADE)
    diag = {"root_causes": [{"entity": "web-bff", "mechanism": "latency_regression"}]}
    _, rep = draft(capsys, tmp_path, [feedback(lb, "wrong", diag=diag, comment="checkout was slow after the deploy")])
    with queue(tmp_path) as q:
        c = q.get(only(rep))
        assert c.claim == "checkout was slow after the deploy" and c.truth_origin is None
        assert {"wrong_without_correction", "claim_to_resolve"} <= {f.code for f in c.blocking_flags()}
        assert any(p["loc"] == "ground_truth.mechanism" for p in problems(c.draft))
        with pytest.raises(QueueError, match="unresolved flags"):
            q.accept(c.id, "bob", "x", tmp_path / "ls")
        with pytest.raises(QueueError, match="not a valid label"):
            q.accept(c.id, "bob", "x", tmp_path / "ls", acknowledge_flags=True)
    assert not (tmp_path / "ls" / "x" / "labelset.json").exists()


@pytest.mark.parametrize(
    ("verdict", "diag", "corr", "code"),
    [
        ("right", "right", {"entity": "catalog-db", "mechanism": "connection_pool_exhaustion"}, "right_with_correction"),
        ("wrong", "right", {"entity": "catalog-redis", "mechanism": "cache_stampede"}, "wrong_but_correction_matches"),
        ("partly", "right", {"entity": "catalog-redis", "mechanism": "cache_stampede"}, "partly_but_correction_matches"),
        ("right", None, None, "right_without_diagnosis"),
        ("wrong", None, {"no_fault": True, "entity": "catalog-redis"}, "no_fault_with_root_cause"),
    ],
)
def test_contradictory_input_is_flagged(capsys: Any, tmp_path: Path, smoke: Any, verdict: str, diag: Any, corr: Any,
                                        code: str) -> None:
    lb = smoke.get(CASCADE)
    rec = feedback(lb, verdict, diag=right_diag(lb) if diag == "right" else None, correction=corr)
    _, rep = draft(capsys, tmp_path, [rec])
    with queue(tmp_path) as q:
        c = q.get(only(rep))
    flag = next(f for f in c.flags if f.code == code)
    assert flag.severity == "contradiction" and code in {f.code for f in c.blocking_flags()}
    assert code in rep["outcomes"][0]["flags"]


def test_contradiction_is_accepted_only_when_acknowledged(capsys: Any, tmp_path: Path, smoke: Any) -> None:
    lb = smoke.get(CASCADE)
    rec = feedback(lb, "right", diag=right_diag(lb), correction={"entity": "catalog-db", "mechanism": "connection pool"},
                   comment="right, actually it was the database")
    _, rep = draft(capsys, tmp_path, [rec])
    cid, qdb, root = only(rep), str(tmp_path / "q.db"), str(tmp_path / "ls")
    with queue(tmp_path) as q:
        c = q.get(cid)
    assert {"right_with_correction", "comment_disagrees"} <= codes(c)
    gt = c.draft["ground_truth"]  # the correction wins over the diagnosis; its chain is not the other culprit's
    assert gt["root_causes"][0]["entity"] == "catalog-db" and gt["mechanism"] == "connection_pool_exhaustion"
    assert gt["causal_chain"] == ["catalog-db", "web-bff"] and "onset" not in gt  # to the alerting service, assumed
    assert "ground_truth.causal_chain" in c.assumed
    rc, _, err = cli(capsys, "review", "accept", cid, "--queue", qdb, "--reviewer", "bob", "--labelsets-root", root)
    assert rc == 1 and "right_with_correction" in err
    rc, _, _ = cli(capsys, "review", "edit", cid, "--queue", qdb, "--set", "ground_truth.onset=2026-02-24T19:39:10Z",
                   "--set", 'ground_truth.causal_chain=["catalog-db","catalog","web-bff"]', "--reviewer", "bob")
    assert rc == 0
    rc, _, err = cli(capsys, "review", "accept", cid, "--queue", qdb, "--reviewer", "bob", "--labelsets-root", root,
                     "--acknowledge-flags")
    assert rc == 0, err
    with queue(tmp_path) as q:
        ev = q.events(cid)
    assert ev[-1]["action"] == "accepted" and ev[-1]["detail"]["acknowledged_flags"] == ["right_with_correction"]
    assert read_provenance("feedback", c.draft["id"], Path(root))["flags_acknowledged"] is True


def test_partly_and_unsure_are_hypotheses(capsys: Any, tmp_path: Path, smoke: Any) -> None:
    lb = smoke.get(CASCADE)
    recs = [feedback(lb, "partly", diag=right_diag(lb), comment="the culprit is right but not the mechanism"),
            feedback(lb, "partly", diag=right_diag(lb), correction={"mechanism": "memory_leak"}),
            feedback(lb, "unsure", diag=right_diag(lb))]
    _, rep = draft(capsys, tmp_path, recs)
    with queue(tmp_path) as q:
        a, b, u = (q.get(o["candidate_id"]) for o in rep["outcomes"])
    assert "partly_without_correction" in codes(a) and a.truth_origin == "diagnosis"
    # the correction's mechanism over the diagnosis's culprit, chain and onset
    assert b.truth_origin == "correction+diagnosis" and not b.blocking_flags()
    gt = b.draft["ground_truth"]
    assert gt["mechanism"] == "memory_leak" and gt["root_causes"][0]["entity"] == "catalog-redis" and gt["onset"]
    assert b.draft["taxonomy"]["segment"] == "resource"
    assert "unsure" in codes(u)


def test_no_fault_feedback(capsys: Any, tmp_path: Path, smoke: Any) -> None:
    lb = smoke.get(NO_FAULT)
    _, rep = draft(capsys, tmp_path, [feedback(lb, "right", diag={"no_fault": True}),
                                       feedback(lb, "wrong", diag={"root_causes": [{"entity": "payments"}]},
                                                correction={"no_fault": True}, comment="false alarm")])
    with queue(tmp_path) as q:
        for o in rep["outcomes"]:
            c = q.get(o["candidate_id"])
            gt = c.draft["ground_truth"]
            assert gt["no_fault"] is True and gt["root_causes"] == [] and gt["mechanism"] == "no_fault"
            assert c.draft["taxonomy"]["failure_pattern"] == "no_fault" and problems(c.draft) == []


def _postmortem() -> dict[str, Any]:
    return {
        "kind": "postmortem", "id": "PM-7", "title": "Checkout latency after the catalog cache change",
        "impact_window": {"start": "2026-02-24T19:40:00Z", "end": "2026-02-24T20:30:00Z"},
        "root_cause": {"entity": "catalog-redis", "mechanism": "cache_stampede", "description": "maxmemory was lowered",
                       "causal_chain": ["catalog-redis", "catalog", "web-bff"]},
        "contributing_factors": ["no alert on evictions", "cache sized by hand"],
        "timeline": [
            {"at": "2026-02-24T19:39:10Z", "event": "config change: maxmemory 6gb -> 1536mb", "kind": "change",
             "entity": "catalog-redis"},
            {"at": "2026-02-24T19:39:30Z", "event": "evictions start", "kind": "onset"},
            {"at": "2026-02-24T19:55:00Z", "event": "web-bff latency monitor fired", "kind": "detected"},
            {"at": "2026-02-24T20:30:00Z", "event": "maxmemory restored", "kind": "resolved"},
        ],
        "monitor": {"id": 79951874, "name": "[P2] web-bff average latency above 0.46s", "type": "metric alert"},
        "world": {"snapshot": "87fa501f38e830466173d0ea05d232f9d7f968bd96c2a4a4355e79f48ba6b08a"},
        "provenance": {"source_incident": "INC-9", "reporter": "sre-team"},
    }


def test_postmortem_becomes_a_candidate(capsys: Any, tmp_path: Path) -> None:
    pm_file = tmp_path / "pm.json"
    pm_file.write_text(json.dumps(_postmortem(), indent=2))  # a pretty-printed single record is read whole
    rc, out, err = cli(capsys, "draft", str(pm_file), "--into", str(tmp_path / "q.db"), "--json")
    assert rc == 0, err
    with queue(tmp_path) as q:
        c = q.get(only(json.loads(out)))
    gt = c.draft["ground_truth"]
    assert c.source_kind == "postmortem" and c.truth_origin == "postmortem" and c.feedback_id == "PM-7"
    assert gt["root_causes"][0]["entity"] == "catalog-redis" and gt["onset"] == "2026-02-24T19:39:30Z"
    assert gt["triggering_change"]["at"] == "2026-02-24T19:39:10Z" and gt["triggering_change"]["kind"] == "config"
    assert c.draft["task"]["trigger"]["fired_at"] == "2026-02-24T19:55:00Z"
    assert c.draft["provenance"]["postmortem"] == "[P2] web-bff average latency above 0.46s"
    assert any("no alert on evictions" in n for n in c.notes) and problems(c.draft) == []
    assert "world.incident_window" in c.assumed and not c.blocking_flags()


def _results_db(tmp_path: Path, lb: Label) -> Path:
    db = tmp_path / "results.db"
    st = Store(db)
    st.create_run("run-1", {"labelset": {"name": "smoke", "hash": "x", "version": "1"},
                            "target": {"name": "acme-sre", "version": "1.2", "url": "http://agent"}})
    r = InvestigationResult(investigation_id="inv-1", label_id=lb.id, attempt=1, context_id="ctx", started_at=time.time() - 5,
                            finished_at=time.time(), world=lb.world.snapshot, end_reason="diagnosis",
                            diagnosis={"no_fault": False, "root_causes": [{"entity": "catalog-db", "mechanism": "lock_contention"}],
                                       "causal_chain": [{"source": "catalog-db", "target": "catalog"}], "onset": None,
                                       "evidence": [], "summary": "db locks"})
    r.call_records = [ToolCallRecord(turn=1, call_id="c1", name="search_logs", arguments={"query": "service:catalog-db"},
                                     ok=True, error=None, result_size=100, duration_ms=3.0, result_preview="lock wait timeout")]
    st.record_investigation("run-1", r)
    st.close()
    return db


def test_stored_investigation_plus_feedback(capsys: Any, tmp_path: Path, smoke: Any) -> None:
    lb = smoke.get(CASCADE)
    db = _results_db(tmp_path, lb)
    recs = [
        {"kind": "stored", "run_id": "run-1", "label_id": lb.id, "attempt": 1, "verdict": "wrong",
         "comment": "not the db", "correction": {"entity": "catalog-redis", "mechanism": "cache_stampede",
                                                 "onset": "2026-02-24T19:39:10Z"},
         "provenance": {"reporter": "alice"}},
        {"kind": "stored", "run_id": "run-404", "label_id": lb.id, "verdict": "right"},
    ]
    rc, rep = draft(capsys, tmp_path, recs, "fb.jsonl", "--db", str(db))
    assert rc == 1  # one bad record
    ok, bad = rep["outcomes"]
    assert ok["status"] == "new" and bad["status"] == "error" and "run-404" in bad["error"] and bad["where"] == "line 2"
    with queue(tmp_path) as q:
        c = q.get(ok["candidate_id"])
    assert c.source_kind == "stored" and c.draft["task"]["trigger"]["title"] == lb.task.trigger.title
    assert c.draft["world"]["snapshot"] == lb.world.snapshot
    assert c.evidence == [{"tool": "search_logs", "arguments": {"query": "service:catalog-db"}, "ok": True,
                           "result_excerpt": "lock wait timeout"}]
    assert c.draft["ground_truth"]["must_not_blame"][0]["entity"] == "catalog-db"
    assert c.source_incident == f"run run-1 / {lb.id} / attempt 1" and any("acme-sre 1.2" in n for n in c.notes)
    # a file that is no results database is reported, never altered
    other = tmp_path / "notes.txt"
    other.write_text("hello")
    rc, rep = draft(capsys, tmp_path, recs[:1], "again.jsonl", "--db", str(other))
    assert rc == 1 and "not a results database" in rep["outcomes"][0]["error"] and other.read_text() == "hello"


# ----------------------------------------------------------------------------- idempotency, bad lines


def test_drafting_is_idempotent(capsys: Any, tmp_path: Path, smoke: Any) -> None:
    lb = smoke.get(CASCADE)
    rec = feedback(lb, "right", diag=right_diag(lb), fid="fb-9")
    reordered = json.dumps(dict(reversed(list(rec.items()))), indent=None, separators=(" , ", " : "))
    _, first = draft(capsys, tmp_path, [rec, rec])
    assert [o["status"] for o in first["outcomes"]] == ["new", "duplicate"]
    _, again = draft(capsys, tmp_path, [reordered], "again.jsonl")
    assert again["counts"]["duplicate"] == 1 and again["outcomes"][0]["candidate_id"] == first["outcomes"][0]["candidate_id"]
    # the same feedback id with other content is a second candidate, flagged
    _, changed = draft(capsys, tmp_path, [{**rec, "comment": "edited later"}], "changed.jsonl")
    with queue(tmp_path) as q:
        assert len(q.list()) == 2
        assert "duplicate_feedback_id" in codes(q.get(changed["outcomes"][0]["candidate_id"]))
        assert [e["action"] for e in q.events(first["outcomes"][0]["candidate_id"])] == ["drafted"]


def test_bad_records_get_per_line_errors_and_do_not_stop_the_others(capsys: Any, tmp_path: Path, smoke: Any) -> None:
    lb = smoke.get(CASCADE)
    good = feedback(lb, "right", diag=right_diag(lb))
    lines = [
        good,
        "this is not json",
        {"kind": "survey", "verdict": "right"},
        {**good, "verdict": "maybe"},
        {**good, "verdit": "right"},
        "[1, 2]",
        "",
        "# a comment line",
        {**good, "investigation": {**good["investigation"], "fired_at": "yesterday"}},
        feedback(lb, "wrong", diag=right_diag(lb), comment="second good one"),
    ]
    f = write_jsonl(tmp_path / "mixed.jsonl", lines)
    rc, out, err = cli(capsys, "draft", str(f), "--into", str(tmp_path / "q.db"))
    assert rc == 1
    assert "2 new, 0 already queued, 6 bad" in out
    for n, text in [(2, "not JSON"), (3, "unknown kind 'survey'"), (4, "verdict"), (5, "verdit: Extra inputs"),
                    (6, "a record is a JSON object"), (9, "investigation.fired_at")]:
        assert f"mixed.jsonl line {n}: error:" in err and text in err, (n, err)
    assert "line 1: new" in out and "line 10: new" in out


# ----------------------------------------------------------------------------- the queue


@pytest.fixture
def filled(capsys: Any, tmp_path: Path, smoke: Any) -> dict[str, Any]:
    """A queue with one ready candidate, one vague one and one to reject."""
    lb = smoke.get(CASCADE)
    recs = [feedback(lb, "right", diag=right_diag(lb), fid="fb-ready"),
            feedback(lb, "wrong", diag={"root_causes": [{"entity": "web-bff"}]}, comment="checkout was slow after the deploy",
                     fid="fb-vague", world=False),
            feedback(lb, "unsure", diag=right_diag(lb), fid="fb-junk", comment="no idea")]
    _, rep = draft(capsys, tmp_path, recs)
    ids = [o["candidate_id"] for o in rep["outcomes"]]
    return {"ready": ids[0], "vague": ids[1], "junk": ids[2], "q": str(tmp_path / "q.db"), "root": tmp_path / "labelsets",
            "lb": lb}


def test_list_show_filters(capsys: Any, filled: dict[str, Any]) -> None:
    q = filled["q"]
    rc, out, _ = cli(capsys, "review", "list", "--queue", q)
    assert rc == 0 and all(filled[k] in out for k in ("ready", "vague", "junk"))
    rc, out, _ = cli(capsys, "review", "list", "--queue", q, "--status", "pending", "--json")
    rows = json.loads(out)
    assert len(rows) == 3 and {r["status"] for r in rows} == {"pending"}
    assert next(r for r in rows if r["id"] == filled["vague"])["problems"] > 0
    rc, out, _ = cli(capsys, "review", "list", "--queue", q, "--status", "accepted", "--json")
    assert json.loads(out) == []
    rc, out, _ = cli(capsys, "review", "show", filled["vague"], "--queue", q)
    assert rc == 0
    assert '"checkout was slow after the deploy"' in out and "wrong_without_correction" in out
    assert "no_snapshot" in out and "world.snapshot: Field required" in out and "not validated yet" in out
    assert "evidence (" in out and "history:" in out
    rc, out, _ = cli(capsys, "review", "show", filled["ready"], "--queue", q, "--json")
    shown = json.loads(out)
    assert shown["problems"] == [] and shown["history"][0]["action"] == "drafted" and shown["draft"]["id"].startswith("lbl_")
    rc, _, err = cli(capsys, "review", "show", "cand_nope", "--queue", q)
    assert rc == 1 and "no candidate" in err


def test_validation_seam_scores_shown_and_filtered(capsys: Any, filled: dict[str, Any]) -> None:
    def val(conf: float, resolved: list[str] | None = None) -> Validation:
        s = Score(score=conf, reasons=[f"reason for {conf}"])
        return Validation(scores=ValidationScores(thoroughness=s, specificity=s, accuracy=s), confidence=conf,
                          validator="test-validator 0", seconds=2.5, resolved=resolved or [])

    with Queue(filled["q"]) as q:
        q.record_validation(filled["ready"], val(0.9))
        q.record_validation(filled["junk"], val(0.3, ["unsure"]))
    rc, out, _ = cli(capsys, "review", "list", "--queue", filled["q"], "--min-confidence", "0.5", "--json")
    assert [r["id"] for r in json.loads(out)] == [filled["ready"]]
    rc, out, _ = cli(capsys, "review", "list", "--queue", filled["q"], "--max-confidence", "0.5", "--json")
    assert [r["id"] for r in json.loads(out)] == [filled["junk"]]
    rc, out, _ = cli(capsys, "review", "show", filled["junk"], "--queue", filled["q"])
    assert "confidence 0.30 by test-validator 0, 2.5 s" in out and "reason for 0.3" in out and "unsure (resolved)" in out
    rc, _, err = cli(capsys, "review", "accept", filled["ready"], "--queue", filled["q"], "--reviewer", "bob",
                     "--labelsets-root", str(filled["root"]))
    assert rc == 0, err
    label_id = Queue(filled["q"]).get(filled["ready"]).promoted.label_id
    prov = read_provenance("feedback", label_id, filled["root"])
    assert prov["validation"]["confidence"] == 0.9 and prov["validation"]["scores"]["accuracy"]["reasons"] == ["reason for 0.9"]
    assert "confidence 0.90" in load_labelset("feedback", filled["root"]).get(label_id).provenance.source
    rc, out, _ = cli(capsys, "review", "stats", "--queue", filled["q"], "--json")
    s = json.loads(out)
    assert s["validated"] == 2 and s["validation_seconds_per_label"] == {"mean": 2.5, "median": 2.5, "n": 2}


def test_edit_validated_against_the_label_model(capsys: Any, tmp_path: Path, filled: dict[str, Any]) -> None:
    q, cid = filled["q"], filled["vague"]
    # a value the model refuses, a path the label does not have, the id: refused, nothing changes
    for args, text in [(["--set", "ground_truth.mechanism=slowness"], "unknown mechanism"),
                       (["--set", "ground_truth.blame=web-bff"], "ground_truth.blame"),
                       (["--set", "id=lbl_0000000000"], "label id"),
                       (["--set", "difficulty.factors.services=-3"], "difficulty.factors.services"),
                       (["--set", "novalue"], "path=value")]:
        rc, _, err = cli(capsys, "review", "edit", cid, "--queue", q, *args, "--reviewer", "bob")
        assert rc == 1 and text in err, (args, err)
    with Queue(q) as qq:
        assert qq.get(cid).edits == 0 and [e["action"] for e in qq.events(cid)] == ["drafted"]
    # path=value edits: the mechanism brings its taxonomy along
    rc, out, err = cli(capsys, "review", "edit", cid, "--queue", q, "--reviewer", "bob",
                       "--set", "ground_truth.mechanism=bad_release", "--set", "ground_truth.no_fault=false",
                       "--set", 'ground_truth.root_causes=[{"entity": "checkout", "kind": "service"}]')
    assert rc == 0 and "still to complete" in out, err
    # a JSON Patch file: the onset, the snapshot, the chain
    patch = tmp_path / "p.json"
    patch.write_text(json.dumps([
        {"op": "add", "path": "/ground_truth/onset", "value": "2026-02-24T19:40:00Z"},
        {"op": "add", "path": "/world/snapshot", "value": filled["lb"].world.snapshot},
        {"op": "add", "path": "/ground_truth/causal_chain/-", "value": "web-bff"},
        {"op": "test", "path": "/ground_truth/causal_chain/0", "value": "checkout"},
    ]))
    rc, out, err = cli(capsys, "review", "edit", cid, "--queue", q, "--patch", str(patch), "--reviewer", "carol")
    assert rc == 0 and "a valid label" in out, err
    # and a merge patch
    merge = tmp_path / "m.json"
    merge.write_text(json.dumps({"difficulty": {"tier": "hard"}, "split": "heldout"}))
    rc, _, err = cli(capsys, "review", "edit", cid, "--queue", q, "--patch", str(merge), "--reviewer", "carol")
    assert rc == 0, err
    with Queue(q) as qq:
        c = qq.get(cid)
        events = qq.events(cid)
    d = c.draft
    assert d["taxonomy"]["mechanism"] == "bad_release" and d["taxonomy"]["segment"] == "deployment"
    assert d["ground_truth"]["causal_chain"] == ["checkout", "web-bff"] and d["ground_truth"]["first_symptom"] == "web-bff"
    assert d["taxonomy"]["failure_pattern"] == "cascading" and d["difficulty"]["tier"] == "hard" and d["split"] == "heldout"
    assert c.edits == 3 and c.truth_origin == "review" and problems(d) == [] and c.original_draft != d
    # the default windows follow the onset set by the edit
    assert d["world"]["incident_window"]["start"] == "2026-02-24T19:30:00Z" and "world.incident_window" in c.assumed
    assert [(e["actor"], e["action"]) for e in events] == [("draft", "drafted"), ("bob", "edited"), ("carol", "edited"),
                                                           ("carol", "edited")]
    assert "ground_truth.mechanism" in events[1]["detail"]["paths"]
    # the flags about the missing truth and snapshot are settled by the draft now
    assert not c.blocking_flags()


def test_accept_promotes_with_provenance_and_never_twice(capsys: Any, filled: dict[str, Any]) -> None:
    q, root = filled["q"], str(filled["root"])
    rc, out, err = cli(capsys, "review", "accept", filled["ready"], "--queue", q, "--reviewer", "bob", "--into", "incidents",
                       "--labelsets-root", root)
    assert rc == 0, err
    ls = load_labelset("incidents", Path(root))
    [label] = ls.labels
    assert Label.model_validate(label.model_dump()) == label and ls.info.version == "1"
    prov = read_provenance("incidents", label.id, Path(root))
    assert prov["feedback_id"] == "fb-ready" and prov["source_incident"] == f"INC-{filled['lb'].id[-4:]}"
    assert prov["reviewer"] == "bob" and prov["reporter"] == "alice" and prov["accepted_at"] and prov["drafted_at"]
    assert prov["candidate_id"] == filled["ready"] and prov["record"]["verdict"] == "right"
    # nothing accepted twice: not again, not from another connection
    rc, _, err = cli(capsys, "review", "accept", filled["ready"], "--queue", q, "--reviewer", "carol", "--into", "incidents",
                     "--labelsets-root", root)
    assert rc == 1 and "is accepted by bob" in err
    with Queue(q) as other, pytest.raises(QueueError):
        other.accept(filled["ready"], "dave", "incidents", Path(root))
    assert len(load_labelset("incidents", Path(root)).labels) == 1
    # nor edited, nor rejected after
    rc, _, err = cli(capsys, "review", "edit", filled["ready"], "--queue", q, "--set", "split=heldout")
    assert rc == 1 and "only a pending candidate" in err
    rc, _, err = cli(capsys, "review", "reject", filled["ready"], "--queue", q, "--reviewer", "x", "--reason", "y")
    assert rc == 1
    rc, _, err = cli(capsys, "review", "accept", filled["junk"], "--queue", q, "--into", "incidents", "--labelsets-root", root)
    assert rc == 2 and "--reviewer" in err


def test_accept_into_an_existing_set_bumps_its_version_and_hash(capsys: Any, tmp_path: Path, filled: dict[str, Any]) -> None:
    root = tmp_path / "roots"
    shutil.copytree(Path(load_labelset("smoke").path), root / "smoke")
    before = load_labelset("smoke", root)
    rc, out, err = cli(capsys, "review", "accept", filled["ready"], "--queue", filled["q"], "--reviewer", "bob",
                       "--into", "smoke", "--labelsets-root", str(root))
    assert rc == 0, err
    after = load_labelset("smoke", root)
    assert len(after.labels) == len(before.labels) + 1
    assert after.info.version == "2" and after.content_hash != before.content_hash and after.content_hash in out
    assert after.info.name == "smoke" and after.info.description == before.info.description
    with Queue(filled["q"]) as q:
        ev = q.events(filled["ready"])[-1]
    assert ev["action"] == "accepted" and ev["detail"]["content_hash"] == after.content_hash and ev["detail"]["version"] == "2"


def test_accept_refuses_a_broken_set(tmp_path: Path, filled: dict[str, Any]) -> None:
    root = tmp_path / "broken"
    (root / "bad").mkdir(parents=True)
    (root / "bad" / "labelset.json").write_text('{"name": "bad", "version": "1"}')
    (root / "bad" / "lbl_0000000000.json").write_text("{}")
    with Queue(filled["q"]) as q:
        with pytest.raises(QueueError, match="does not load"):
            q.accept(filled["ready"], "bob", "bad", root)
        assert q.get(filled["ready"]).status == "pending"
        with pytest.raises(QueueError, match="invalid label set name"):
            q.accept(filled["ready"], "bob", "../escape", root)


def test_reject_keeps_its_reason_and_stats(capsys: Any, filled: dict[str, Any]) -> None:
    q, root = filled["q"], str(filled["root"])
    with pytest.raises(SystemExit):  # a rejection without a reason is a usage error
        _parser().parse_args(["review", "reject", filled["junk"], "--queue", q, "--reviewer", "carol"])
    rc, out, err = cli(capsys, "review", "reject", filled["junk"], "--queue", q, "--reviewer", "carol",
                       "--reason", "the user was guessing")
    assert rc == 0, err
    rc, _, err = cli(capsys, "review", "accept", filled["junk"], "--queue", q, "--reviewer", "bob", "--labelsets-root", root,
                     "--acknowledge-flags")
    assert rc == 1 and "is rejected by carol" in err
    rc, out, _ = cli(capsys, "review", "show", filled["junk"], "--queue", q, "--json")
    shown = json.loads(out)
    assert shown["status"] == "rejected" and shown["reason"] == "the user was guessing" and shown["reviewer"] == "carol"
    assert shown["history"][-1]["action"] == "rejected" and shown["history"][-1]["actor"] == "carol"
    # accept one without edits, one after an edit
    assert cli(capsys, "review", "accept", filled["ready"], "--queue", q, "--reviewer", "bob", "--labelsets-root", root)[0] == 0
    lb = filled["lb"]
    rc, _, err = cli(capsys, "review", "edit", filled["vague"], "--queue", q, "--reviewer", "bob",
                     "--set", "ground_truth.mechanism=cache_stampede", "--set", "ground_truth.no_fault=false",
                     "--set", 'ground_truth.root_causes=[{"entity": "catalog-redis"}]',
                     "--set", "ground_truth.onset=2026-02-24T19:39:10Z", "--set", f"world.snapshot={lb.world.snapshot}")
    assert rc == 0, err
    assert cli(capsys, "review", "accept", filled["vague"], "--queue", q, "--reviewer", "bob", "--labelsets-root", root)[0] == 0
    assert load_labelset("feedback", filled["root"]).info.version == "2"
    rc, out, _ = cli(capsys, "review", "stats", "--queue", q, "--json")
    s = json.loads(out)
    assert s["total"] == 3 and s["by_status"] == {"pending": 0, "accepted": 2, "rejected": 1}
    assert s["accepted_without_edits"] == 1 and s["share_accepted_without_edits"] == 0.5
    rc, out, _ = cli(capsys, "review", "stats", "--queue", q)
    assert "accepted without edits: 1 (50% of accepted)" in out and "rejected 1" in out


def test_review_needs_an_existing_queue(capsys: Any, tmp_path: Path) -> None:
    rc, _, err = cli(capsys, "review", "list", "--queue", str(tmp_path / "none.db"))
    assert rc == 1 and "no queue" in err and not (tmp_path / "none.db").exists()
    rc, _, err = cli(capsys, "draft", str(tmp_path / "missing.jsonl"), "--into", str(tmp_path / "q.db"))
    assert rc == 2 and "no such file" in err
