"""``proctor labels validate`` over feedback on GENERATED worlds (the smoke label set, whose
labels hold the generator's truth): right verdicts, wrong ones with the true correction (exact
and loosely named), vague claims, contradictory ones and no-fault pages are drafted into a queue
through the labelops drafting API, validated, and checked against the generator's truth.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import pytest

from evaluator_agent.cli.validate import add_arguments, cmd_labels_validate
from evaluator_agent.core.labels import Label, load_labelset
from evaluator_agent.labelops.drafting import draft_candidate, problems
from evaluator_agent.labelops.queue import Queue
from evaluator_agent.labelops.records import parse_record
from evaluator_agent.labelops.sources import to_source
from evaluator_agent.labelops.validate import Validator

THRESHOLD = 0.7
#: kinds whose claim names the true root cause (resolvable: the validated entity must be the truth)
RESOLVABLE = {"right", "wrong-corrected", "wrong-loose"}
#: kinds whose claim is wrong: never above the threshold
WRONG = {"wrong-claim", "contradictory", "nofault-blamed"}
#: kinds no claim resolves (the root cause would be a guess): must stay for review with a reason
UNRESOLVABLE = {"vague", "vague-noentity", "nofault-right"}


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
        ]
    return out


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
        outcomes = Validator(threshold=THRESHOLD).run(q)
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
        if kind != "right" or validated["outcomes"][cid].status != "validated":
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
    assert checked >= 3


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


def test_unresolvable_claims_stay_for_review_with_a_reason(validated: dict[str, Any]) -> None:
    for cid, (kind, _) in validated["cases"].items():
        if kind not in UNRESOLVABLE:
            continue
        o = validated["outcomes"][cid]
        c = validated["cands"][cid]
        assert o.status == "review" and o.confidence < THRESHOLD, (kind, o)
        assert o.reasons
        if kind.startswith("vague"):
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
