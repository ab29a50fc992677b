"""``proctor labels validate`` over feedback on GENERATED worlds (the smoke label set, whose
labels hold the generator's truth): right verdicts, wrong ones with the true correction (exact
and loosely named), vague claims ("web-bff was slow after the deploy", "it was slow"),
contradictory ones, a "wrong" that falls on the true answer, and no-fault pages are drafted into
a queue through the labelops drafting API, validated with the reference investigator (the
offline second investigation), and checked against the generator's truth. The grounding alone
(``--investigator none``) is checked too: it never resolves a vague claim above the threshold.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import pytest

from evaluator_agent.cli.validate import add_arguments, cmd_labels_validate
from evaluator_agent.core.labels import Label, load_labelset
from evaluator_agent.labelops.drafting import draft_candidate, problems
from evaluator_agent.labelops.investigator import TargetInvestigator
from evaluator_agent.labelops.queue import Queue
from evaluator_agent.labelops.records import parse_record
from evaluator_agent.labelops.sources import to_source
from evaluator_agent.labelops.validate import Validator

THRESHOLD = 0.7
#: kinds a validator can resolve: the claim names the true root cause, or is vague but consistent
#: with the world (the second investigation resolves it), or is a true no-fault
RESOLVABLE = {"right", "wrong-corrected", "wrong-loose", "vague", "vague-noentity", "nofault-right"}
#: kinds whose claim is wrong or contradicts itself: never above the threshold
WRONG = {"wrong-claim", "contradictory", "nofault-blamed", "wrong-on-truth"}
VAGUE = {"vague", "vague-noentity"}


def _record(lb: Label, kind: str, verdict: str, *, diag: dict[str, Any] | None = None,
            correction: dict[str, Any] | None = None, comment: str = "") -> dict[str, Any]:
    w = lb.world
    rec: dict[str, Any] = {
        "id": f"{lb.id}-{kind}",
        "investigation": {"agent": "acme-sre 1.2",
                          "monitor": {"id": lb.task.trigger.monitor_id, "name": lb.task.trigger.title,
                                      "type": lb.taxonomy.monitor_type},
                          "fired_at": lb.task.trigger.fired_at.isoformat()},
        "verdict": verdict, "comment": comment,
        "world": {"snapshot": w.snapshot, "incident_window": w.incident_window.model_dump(mode="json"),
                  "baseline_window": w.baseline_window.model_dump(mode="json")},
        "provenance": {"source_incident": f"INC-{lb.id[-4:]}", "reporter": "alice"},
    }
    if diag is not None:
        rec["investigation"]["diagnosis"] = diag
    if correction is not None:
        rec["correction"] = correction
    return rec


def _loose(entity: str) -> str:
    """A person's way of naming a service: its parts as words, kind words for datastores."""
    return "the " + entity.replace("-redis", " cache").replace("-db", " database").replace("-", " ")


def corpus(labels: list[Label]) -> list[tuple[str, str | None, dict[str, Any]]]:
    """(kind, the generator's root cause, record) for every label."""
    out: list[tuple[str, str | None, dict[str, Any]]] = []
    for lb in labels:
        gt = lb.ground_truth
        herring = gt.must_not_blame[0].entity
        page_at = lb.task.trigger.fired_at.isoformat()
        blame = {"root_causes": [{"entity": herring, "mechanism": "bad_release"}], "onset": page_at}
        if gt.no_fault:
            out.append(("nofault-right", None, _record(lb, "nofault-right", "right", diag={"no_fault": True},
                                                       comment="nothing was broken, a batch job made it slow")))
            out.append(("nofault-blamed", None, _record(lb, "nofault-blamed", "right", diag=blame)))
            continue
        truth = gt.root_causes[0].entity
        right = {"root_causes": [{"entity": truth, "mechanism": gt.mechanism}]}
        change = gt.triggering_change.kind if gt.triggering_change and gt.triggering_change.kind != "none" else "deploy"
        out += [
            ("right", truth, _record(lb, "right", "right", diag=right)),
            ("wrong-corrected", truth, _record(lb, "wrong-corrected", "wrong", diag=blame,
                                               correction={"entity": truth, "mechanism": gt.mechanism})),
            ("wrong-loose", truth, _record(lb, "wrong-loose", "wrong", diag=blame,
                                           correction={"entity": _loose(truth), "mechanism": gt.mechanism})),
            ("wrong-claim", truth, _record(lb, "wrong-claim", "right", diag=blame)),
            ("contradictory", truth, _record(lb, "contradictory", "wrong", diag=blame,
                                             correction={"entity": herring, "mechanism": "bad_release"})),
            ("vague", truth, _record(lb, "vague", "wrong", diag=blame,
                                     comment=f"{gt.first_symptom} was slow after the {change}")),
            ("vague-noentity", truth, _record(lb, "vague-noentity", "wrong", comment="it was slow")),
            # the user says the agent was wrong, but the agent had named the true root cause
            ("wrong-on-truth", truth, _record(lb, "wrong-on-truth", "wrong", diag=right, comment="it was slow")),
        ]
    return out


def reference_investigator() -> TargetInvestigator:
    from mock_agents.inprocess import ROSTER

    return TargetInvestigator(lambda: ROSTER.make_target("methodical"), "methodical")


@pytest.fixture(scope="module")
def validated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    labels = load_labelset("smoke").labels
    path = tmp_path_factory.mktemp("validate") / "q.db"
    cases: dict[str, tuple[str, str | None]] = {}
    with Queue(path) as q:
        for kind, truth, rec in corpus(labels):
            c, new = q.add(draft_candidate(to_source(parse_record(rec))))
            assert new
            cases[c.id] = (kind, truth)
        outcomes = Validator(threshold=THRESHOLD, investigator=reference_investigator()).run(q)
        cands = {c.id: c for c in q.list()}
        stats = q.stats()
    return {"cases": cases, "outcomes": {o.candidate_id: o for o in outcomes}, "cands": cands, "stats": stats, "path": path}


def test_corpus_is_big_enough_and_everything_is_validated(validated: dict[str, Any]) -> None:
    assert len(validated["cases"]) >= 30
    outs = validated["outcomes"]
    assert {o.status for o in outs.values()} <= {"validated", "review"}, [o for o in outs.values() if o.status == "error"]
    for cid, c in validated["cands"].items():
        assert c.status == "pending", "never accepted by the validator"
        assert c.validation is not None and c.validation.seconds is not None
        for s in (c.validation.scores.thoroughness, c.validation.scores.specificity, c.validation.scores.accuracy):
            assert 0 <= s.score <= 1 and s.reasons, cid
    assert validated["stats"]["validation_seconds_per_label"]["mean"] < 1.0


def test_resolvable_claims_match_the_generators_truth(validated: dict[str, Any]) -> None:
    res = [(cid, k, t) for cid, (k, t) in validated["cases"].items() if k in RESOLVABLE]
    matched = [cid for cid, _, t in res if validated["outcomes"][cid].root_cause == t]
    assert len(matched) >= 0.8 * len(res), [(validated["cases"][c], validated["outcomes"][c].root_cause)
                                            for c, _, _ in res if c not in matched]
    high = [cid for cid in matched if validated["outcomes"][cid].status == "validated"]
    assert len(high) >= 0.6 * len(res)


def test_grounded_draft_is_a_label_with_evidence_that_returns_it(validated: dict[str, Any]) -> None:
    from evaluator_agent.core.labels import snapshots_dir
    from evaluator_agent.telemetry.index import WorldIndex
    from evaluator_agent.telemetry.tools import Toolbox
    from evaluator_agent.telemetry.world import load_snapshot_dict

    checked = 0
    for cid, (kind, truth) in validated["cases"].items():
        c = validated["cands"][cid]
        if kind not in ("right", "vague", "vague-noentity") or validated["outcomes"][cid].status != "validated":
            continue
        d = c.draft
        assert problems(d) == [], problems(d)[:3]
        gt = d["ground_truth"]
        assert gt["root_causes"][0]["entity"] == truth
        assert gt["causal_chain"][0] == truth and gt["onset"]
        data = load_snapshot_dict(d["world"]["snapshot"], snapshots_dir())
        tb = Toolbox(WorldIndex.from_dict(data), now=float(data["end"]))
        assert gt["key_evidence"]
        for ke in gt["key_evidence"]:
            o = tb.call(ke["tool"], ke["arguments"])
            assert o.ok and ke["expect"].lower() in json.dumps(o.content).lower(), ke
        checked += 1
    assert checked >= 10


def test_chain_runs_from_root_cause_to_paged_service(validated: dict[str, Any]) -> None:
    labels = {lb.id: lb for lb in load_labelset("smoke").labels}
    for cid, (kind, _) in validated["cases"].items():
        if kind != "right":
            continue
        c = validated["cands"][cid]
        lb = labels[cid and c.feedback_id.split("-")[0]]
        assert c.draft["ground_truth"]["causal_chain"] == lb.ground_truth.causal_chain, c.feedback_id


def test_no_wrong_claim_gets_high_confidence(validated: dict[str, Any]) -> None:
    for cid, (kind, truth) in validated["cases"].items():
        o = validated["outcomes"][cid]
        if kind in WRONG:
            assert o.status == "review" and o.confidence < THRESHOLD, (kind, o)
        if o.status == "validated":  # whatever the kind: nothing validated is wrong
            assert o.root_cause == truth, (kind, o.root_cause, truth)


def test_vague_claims_are_resolved_only_when_the_claim_agrees_with_the_world(validated: dict[str, Any]) -> None:
    vague = [(cid, k) for cid, (k, _) in validated["cases"].items() if k in VAGUE]
    assert len(vague) >= 10
    for cid, _ in vague:
        c, o = validated["cands"][cid], validated["outcomes"][cid]
        spec = " ".join(c.validation.scores.specificity.reasons)
        assert "resolved by a second investigation" in spec, spec
        if o.status == "review":  # the claim says more than the world backs ("after the deploy", no deploy)
            assert any("claim" in r for r in c.validation.scores.accuracy.reasons), c.validation.scores.accuracy.reasons
    # the hint is checked: a vague claim about a deploy on a world with no change stays for review
    hinted = [cid for cid, k in vague if k == "vague" and validated["outcomes"][cid].status == "review"]
    assert all("no deploy change" in " ".join(validated["cands"][c].validation.scores.accuracy.reasons) for c in hinted)


def test_a_wrong_that_falls_on_the_investigations_answer_stays_for_review(validated: dict[str, Any]) -> None:
    cases = [cid for cid, (k, _) in validated["cases"].items() if k == "wrong-on-truth"]
    assert cases
    for cid in cases:
        o = validated["outcomes"][cid]
        assert o.status == "review"
        assert any("the second investigation blames it too" in r for r in o.reasons), o.reasons


def test_revalidation_starts_from_the_claim_not_from_the_last_grounding(validated: dict[str, Any]) -> None:
    """Validating again gives the same answer (the first grounding is not read as the claim);
    after a reviewer's edit, the edited draft is the claim."""
    cid = next(cid for cid, (k, _) in validated["cases"].items() if k == "vague-noentity")
    with Queue(validated["path"]) as q:
        before = q.get(cid)
        again = Validator(threshold=THRESHOLD, investigator=reference_investigator()).run(q, ids=[cid])[0]
        after = q.get(cid)
        assert again.root_cause == validated["outcomes"][cid].root_cause
        assert after.draft["ground_truth"]["root_causes"] == before.draft["ground_truth"]["root_causes"]
        assert after.validation.basis == before.validation.basis and after.validation.basis_edits == 0
        gt = after.draft["ground_truth"]
        herring = "mainframe-legacy"  # no service of the world
        q.edit(cid, "bob", sets=[("ground_truth.root_causes", [{"entity": herring, "aliases": [], "kind": "service"}]),
                                 ("ground_truth.causal_chain", [herring, *gt["causal_chain"][1:]])])
        edited = Validator(threshold=THRESHOLD, investigator=reference_investigator()).run(q, ids=[cid])[0]
        assert edited.status == "review"  # the reviewer's claim is checked, and names no service of the world
        assert any("names no service of the world" in r for r in edited.reasons), edited.reasons


def test_the_grounding_alone_never_validates_a_vague_claim(validated: dict[str, Any], tmp_path: Any) -> None:
    labels = load_labelset("smoke").labels
    with Queue(tmp_path / "q.db") as q:
        for kind, _, rec in corpus(labels):
            if kind in VAGUE:
                q.add(draft_candidate(to_source(parse_record(rec))))
        outcomes = Validator(threshold=THRESHOLD).run(q)
        assert len(outcomes) >= 10
        for o in outcomes:
            c = q.get(o.candidate_id)
            assert o.status == "review" and o.confidence < THRESHOLD, o
            assert any("found by search" in r or "could be resolved" in r for r in c.validation.scores.specificity.reasons)


def test_entity_resolution_from_loose_words() -> None:
    from evaluator_agent.labelops.grounding import World

    lb = load_labelset("smoke").get("lbl_0ce1c089a1")  # catalog-redis -> catalog -> web-bff
    v = Validator()
    idx, end = v._index(lb.world.snapshot)
    from evaluator_agent.telemetry.tools import Toolbox

    iw, bw = lb.world.incident_window, lb.world.baseline_window
    w = World(Toolbox(idx, end), (iw.start.timestamp(), iw.end.timestamp()), (bw.start.timestamp(), bw.end.timestamp()))
    assert w.resolve("catalog-redis") == ("catalog-redis", "exact")
    assert w.resolve("the catalog cache", near="web-bff")[0] == "catalog-redis"
    assert w.resolve("catalog database")[0] == "catalog-db"
    assert w.resolve("web bff was slow")[0] == "web-bff"
    assert w.resolve("the mainframe")[0] is None
    assert w.path("web-bff", "catalog-redis") == ["web-bff", "catalog", "catalog-redis"]


def test_cli_validates_again_only_pending_and_reports(validated: dict[str, Any], capsys: pytest.CaptureFixture[str],
                                                      tmp_path: Any) -> None:
    p = argparse.ArgumentParser()
    add_arguments(p)
    cid = next(c for c, (k, _) in validated["cases"].items() if k == "right")
    a = p.parse_args(["--queue", str(validated["path"]), "--id", cid, "--json"])
    assert cmd_labels_validate(a) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["counts"] == {"validated": 1} and out["seconds_per_label"] is not None
    a = p.parse_args(["--queue", str(tmp_path / "none.db")])
    assert cmd_labels_validate(a) == 2
    a = p.parse_args(["--queue", str(validated["path"]), "--threshold", "2"])
    assert cmd_labels_validate(a) == 2


def test_candidate_without_snapshot_is_skipped_not_failed() -> None:
    lb = load_labelset("smoke").get("lbl_0ce1c089a1")
    rec = _record(lb, "no-world", "right", diag={"root_causes": [{"entity": "catalog-redis", "mechanism": "cache_stampede"}]})
    del rec["world"]
    with Queue(":memory:") as q:
        c, _ = q.add(draft_candidate(to_source(parse_record(rec))))
        [o] = Validator().run(q)
        assert o.status == "skipped" and "snapshot" in o.reasons[0]
        assert q.get(c.id).validation is None


def test_validated_drafts_lint_clean_and_a_lint_error_holds_a_candidate(validated: dict[str, Any]) -> None:
    """Lint runs on every grounded draft: nothing validated carries a lint error, and an edit that
    breaks a per-label check (key evidence any listing satisfies) keeps the candidate for review."""
    n = 0
    for cid, o in validated["outcomes"].items():
        checks = validated["cands"][cid].validation.checks
        if o.status == "validated":
            assert not [f for f in checks if f["severity"] == "error"], checks
            n += 1
    assert n >= 20
    cid = next(cid for cid, (k, _) in validated["cases"].items()
               if k == "right" and validated["outcomes"][cid].status == "validated")
    with Queue(validated["path"]) as q:
        c = q.get(cid)
        entity = c.draft["ground_truth"]["root_causes"][0]["entity"]
        bad = {"tool": "search_logs", "arguments": {"query": f"service:{entity}"}, "expect": entity,
               "description": "its name"}
        q.edit(cid, "bob", sets=[("ground_truth.key_evidence", [*c.draft["ground_truth"]["key_evidence"], bad])])
        o = Validator(threshold=THRESHOLD, investigator=reference_investigator()).run(q, ids=[cid])[0]
        assert o.status == "review" and o.confidence >= THRESHOLD, o
        assert any(r.startswith("lint evidence.listing_satisfies") for r in o.reasons), o.reasons[:3]
        assert "held for review by" in q.get(cid).validation.notes[0]


def test_the_shortcut_battery_runs_on_each_grounded_label(tmp_path: Any) -> None:
    """With a roster, each grounded label meets the shortcut policies: one that passes it is a
    leak warning (the catalog-redis label: the biggest metric jump is the culprit's)."""
    from mock_agents.inprocess import ROSTER

    lb = load_labelset("smoke").get("lbl_0ce1c089a1")
    rec = next(r for k, _, r in corpus([lb]) if k == "right")
    with Queue(tmp_path / "q.db") as q:
        c, _ = q.add(draft_candidate(to_source(parse_record(rec))))
        o = Validator(threshold=THRESHOLD, shortcuts=ROSTER).run(q)[0]
        checks = q.get(c.id).validation.checks
    leaks = [f for f in checks if f["kind"] == "leak"]
    assert [f["check"] for f in leaks] == ["leak.shortcut"] and "metric_jump" in leaks[0]["message"], checks
    assert o.status == "validated"  # a warning: the label is true, only easy
    assert any("metric_jump" in r for r in o.reasons)
