"""The deterministic scorer: each rule of evaluator_agent/engine/scoring.py, with numbers checked by hand."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from evaluator_agent.core.labels import Label
from evaluator_agent.core.protocol import Diagnosis
from evaluator_agent.core.vocab import MECHANISM_INFO, MECHANISM_NEAR_SYNONYMS, near_synonym
from evaluator_agent.engine.scoring import (
    DEFAULT_WEIGHTS,
    NEAR_MECHANISM_CREDIT,
    PASS_THRESHOLD,
    TOP1_MISS_MAX,
    ScoreResult,
    ViewedResult,
    chain_f1,
    check_weights,
    normalize_entity,
    onset_score,
    predicted_path,
    red_herrings_chased,
    score_investigation,
)

ONSET = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)
CHAIN = ["payments-db", "payments-api", "checkout", "web-frontend"]


def make_label(**gt_overrides: Any) -> Label:
    """A valid fault label: payments-db connection pool exhaustion cascading to the frontend."""
    no_fault = gt_overrides.get("no_fault", False)
    gt: dict[str, Any] = {
        "root_causes": [
            {
                "entity": "payments-db",
                "aliases": ["orders-db-primary", "pg-payments-01"],
                "kind": "service",
            }
        ],
        "mechanism": "connection_pool_exhaustion",
        "onset": ONSET.isoformat(),
        "onset_tolerance_s": 300,
        "causal_chain": CHAIN,
        "key_evidence": [
            {
                "tool": "search_logs",
                "arguments": {"query": "service:payments-api status:error"},
                "expect": "remaining connection slots are reserved",
            },
            {
                "tool": "query_metrics",
                "arguments": {"query": "max:postgresql.connections{service:payments-db}"},
                "expect": "postgresql.percent_usage_connections",
            },
        ],
        "partial_credit": [
            {"entity": "payments-api", "credit": 0.5, "why": "first symptomatic caller"}
        ],
        "must_not_blame": [
            {"entity": "payments-db-replica", "why": "similar name, lag alert"},
            {"entity": "fraud-scorer", "why": "same team, coincident deploy"},
            {"entity": "ledger", "why": "same platform"},
            {"entity": "notifications", "why": "background errors"},
        ],
    }
    gt.update(gt_overrides)
    if no_fault:
        gt.setdefault("mechanism", "no_fault")
    mech = gt["mechanism"]
    raw = {
        "id": "lbl_0123456789",
        "family": "db-pool",
        "taxonomy": {
            "segment": "database",
            "problem_category": "saturation",
            "mechanism": mech,
            "system_level": "data",
            "failure_pattern": "no_fault" if no_fault else "cascading",
            "monitor_type": "apm",
        },
        "difficulty": {
            "tier": "medium",
            "factors": {"chain_length": 3, "red_herrings": 4, "services": 12},
        },
        "task": {
            "trigger": {"title": "checkout p99 latency high", "fired_at": "2026-03-02T14:10:00Z"},
            "prompt": "Checkout is slow. Find the root cause.",
        },
        "world": {
            "snapshot": "a" * 64,
            "incident_window": {"start": "2026-03-02T13:30:00Z", "end": "2026-03-02T14:30:00Z"},
            "baseline_window": {"start": "2026-03-02T12:30:00Z", "end": "2026-03-02T13:30:00Z"},
        },
        "ground_truth": gt,
    }
    return Label.model_validate(raw)


def no_fault_label(**extra: Any) -> Label:
    return make_label(
        no_fault=True,
        mechanism="no_fault",
        root_causes=[],
        onset=None,
        causal_chain=[],
        key_evidence=extra.pop("key_evidence", []),
        partial_credit=[],
        must_not_blame=[{"entity": "batch-reporter", "why": "nightly CPU spike"}],
        **extra,
    )


def diag(**kw: Any) -> Diagnosis:
    base: dict[str, Any] = {
        "root_causes": [
            {"entity": "payments-db", "mechanism": "connection_pool_exhaustion", "confidence": 0.9}
        ],
        "causal_chain": CHAIN,
        "onset": ONSET.isoformat(),
        "evidence": [],
        "summary": "payments-db ran out of connections.",
    }
    base.update(kw)
    return Diagnosis.model_validate(base)


def seen(tool: str, content: Any, ok: bool = True, **arguments: Any) -> ViewedResult:
    return ViewedResult(tool=tool, arguments=arguments, ok=ok, text=json.dumps(content))


FULL_VIEW = [
    seen(
        "search_logs",
        {"logs": [{"message": "FATAL: remaining connection slots are reserved"}]},
        query="x",
    ),
    seen(
        "query_metrics", {"series": [{"metric": "postgresql.percent_usage_connections"}]}, query="y"
    ),
]


def score(
    d: Diagnosis | None, viewed: list[ViewedResult] | None = None, label: Label | None = None
) -> ScoreResult:
    return score_investigation(label or make_label(), d, FULL_VIEW if viewed is None else viewed)


# --------------------------------------------------------------------------- constants


def test_weights_sum_to_one_and_wrong_top1_or_mechanism_cannot_pass_on_score_alone():
    assert sum(DEFAULT_WEIGHTS.values()) == pytest.approx(1.0)
    assert PASS_THRESHOLD == 0.7
    best_wrong = DEFAULT_WEIGHTS["root_cause"] * TOP1_MISS_MAX + (1 - DEFAULT_WEIGHTS["root_cause"])
    assert best_wrong < PASS_THRESHOLD
    assert 1 - DEFAULT_WEIGHTS["mechanism"] < PASS_THRESHOLD
    with pytest.raises(ValueError, match="root_cause weight 0.2 is too low"):
        check_weights(
            {
                "root_cause": 0.2,
                "mechanism": 0.2,
                "causal_chain": 0.2,
                "onset": 0.2,
                "evidence": 0.2,
            }
        )
    # the old defaults: a right root cause with a wrong mechanism scored 0.8
    with pytest.raises(ValueError, match="mechanism weight 0.2 is too low"):
        check_weights(
            {
                "root_cause": 0.5,
                "mechanism": 0.2,
                "causal_chain": 0.15,
                "onset": 0.05,
                "evidence": 0.1,
            }
        )


def test_label_rubric_weights_are_used_and_checked():
    label = make_label()
    label.rubric.weights = {"onset": 0.0, "evidence": 0.1}
    r = score(diag(onset=None), label=label)
    assert r.details["weights"]["onset"] == 0.0
    assert r.score == pytest.approx(1.0)
    label.rubric.weights = {"root_cause": 0.1}
    with pytest.raises(ValueError, match="lbl_0123456789"):
        score(diag(), label=label)


# --------------------------------------------------------------------------- root cause


def test_perfect_diagnosis_scores_one_and_passes():
    r = score(diag())
    assert r.score == 1.0 and r.passed
    assert r.subscores == dict.fromkeys(DEFAULT_WEIGHTS, 1.0)
    assert r.details["matched_rank"] == 1 and r.details["blamed_red_herrings"] == []
    assert "Top candidate payments-db matches root cause payments-db." in r.explanation
    assert "Mechanism connection_pool_exhaustion correct." in r.explanation
    assert r.explanation.endswith("→ pass (threshold 0.70).")


@pytest.mark.parametrize(
    "name", ["orders-db-primary", "service:pg-payments-01", "Payments_DB", "deployment/payments-db"]
)
def test_alias_and_kind_forms_match(name):
    r = score(diag(root_causes=[{"entity": name, "mechanism": "connection_pool_exhaustion"}]))
    assert r.subscores["root_cause"] == 1.0 and r.passed


def test_alias_in_explanation_and_chain():
    chain = ["orders-db-primary", "payments-api", "checkout", "web-frontend"]
    r = score(
        diag(
            root_causes=[
                {"entity": "orders-db-primary", "mechanism": "connection_pool_exhaustion"}
            ],
            causal_chain=chain,
        )
    )
    assert "matches root cause payments-db (alias orders-db-primary)" in r.explanation
    assert r.subscores["causal_chain"] == 1.0
    assert r.details["predicted_path"][0] == "payments-db"


def test_wrong_top1_with_everything_else_right_fails():
    r = score(
        diag(
            root_causes=[
                {
                    "entity": "checkout",
                    "mechanism": "connection_pool_exhaustion",
                    "confidence": 0.6,
                },
                {
                    "entity": "payments-db",
                    "mechanism": "connection_pool_exhaustion",
                    "confidence": 0.4,
                },
            ]
        )
    )
    # rank 2 credit 0.3: 0.45*0.3 + 0.35 + 0.1 + 0.05 + 0.05 = 0.685
    assert r.subscores["root_cause"] == pytest.approx(0.3)
    assert r.subscores["mechanism"] == 1.0
    assert r.score == pytest.approx(0.685)
    assert not r.passed
    assert r.details["matched_rank"] == 2
    assert "payments-db at rank 2" in r.explanation
    assert r.details["gate"] == "root_cause"
    assert r.explanation.endswith("Score 0.69; wrong root cause (top candidate checkout): fail.")


def test_rank_three_and_beyond():
    cands = [{"entity": e} for e in ["checkout", "web-frontend", "payments-db"]]
    assert score(diag(root_causes=cands)).subscores["root_cause"] == pytest.approx(0.15)
    cands = [{"entity": e} for e in ["checkout", "web-frontend", "auth", "payments-db"]]
    r = score(diag(root_causes=cands))
    assert r.subscores["root_cause"] == 0.0 and r.details["matched_rank"] == 4
    assert r.details["ac_at_k"] == {"1": 0.0, "3": 0.0, "5": 1.0}


def test_root_cause_never_named():
    r = score(diag(root_causes=[{"entity": "checkout", "mechanism": "bad_release"}]))
    assert r.subscores["root_cause"] == 0.0 and r.subscores["mechanism"] == 0.0
    assert "No candidate names payments-db" in r.explanation
    assert "Mechanism bad_release wrong (expected connection_pool_exhaustion)." in r.explanation


def test_partial_credit_on_top_is_capped_and_cannot_pass():
    r = score(
        diag(root_causes=[{"entity": "payments-api", "mechanism": "connection_pool_exhaustion"}])
    )
    assert r.subscores["root_cause"] == pytest.approx(0.3)  # label credit 0.5, capped at 0.3
    assert r.details["partial_credit_entity"] == "payments-api"
    assert r.score == pytest.approx(0.685) and not r.passed
    label = make_label(partial_credit=[{"entity": "payments-api", "credit": 0.2}])
    r = score(diag(root_causes=[{"entity": "payments-api"}]), label=label)
    assert r.subscores["root_cause"] == pytest.approx(0.2)
    # partial on top, root cause at rank 2: the higher of 0.2 and 0.3
    r = score(
        diag(root_causes=[{"entity": "payments-api"}, {"entity": "payments-db"}]), label=label
    )
    assert r.subscores["root_cause"] == pytest.approx(0.3)


def test_mechanism_from_first_correct_candidate_and_vocabulary():
    cands = [
        {"entity": "checkout", "mechanism": "bad_release"},
        {"entity": "payments-db", "mechanism": "connection pool exhaustion"},
    ]
    assert score(diag(root_causes=cands)).subscores["mechanism"] == 1.0
    r = score(diag(root_causes=[{"entity": "payments-db", "mechanism": "db_overload"}]))
    assert r.subscores["mechanism"] == 0.0 and "not in the vocabulary" in r.explanation
    r = score(diag(root_causes=[{"entity": "payments-db"}]))
    assert r.subscores["mechanism"] == 0.0 and "No mechanism given" in r.explanation


def test_several_root_causes_precision_recall_and_recall_weighted_ac():
    label = make_label(
        root_causes=[{"entity": "payments-db"}, {"entity": "zone:us-east-1a", "kind": "zone"}],
        causal_chain=[],
    )
    both = diag(root_causes=[{"entity": "us-east-1a"}, {"entity": "payments-db"}], causal_chain=[])
    r = score(both, label=label)
    assert r.subscores["root_cause"] == 1.0
    assert r.details["precision_at_k"] == 1.0 and r.details["recall_at_k"] == 1.0
    # one of two in the top 2, the other behind one wrong candidate: (1 + 0.3) / 2
    r = score(
        diag(
            root_causes=[
                {"entity": "payments-db"},
                {"entity": "checkout"},
                {"entity": "us-east-1a"},
            ]
        ),
        label=label,
    )
    assert r.subscores["root_cause"] == pytest.approx(0.65)
    assert r.details["precision_at_k"] == 0.5 and r.details["recall_at_k"] == 0.5
    assert r.details["ac_at_k"]["3"] == 1.0
    # wrong top-1: each root cause has one wrong candidate above it -> 0.3, cannot pass
    r = score(
        diag(
            root_causes=[
                {"entity": "checkout"},
                {"entity": "payments-db"},
                {"entity": "us-east-1a"},
            ]
        ),
        label=label,
    )
    assert r.subscores["root_cause"] == pytest.approx(0.3) and not r.passed
    # only one of two named, on top: recall-weighted 0.5
    r = score(diag(root_causes=[{"entity": "payments-db"}]), label=label)
    assert r.subscores["root_cause"] == pytest.approx(0.5)
    assert "1/2 root causes named" in r.explanation


# --------------------------------------------------------------------------- the pass gate


def test_right_root_cause_with_wrong_mechanism_cannot_pass():
    # Everything right but the mechanism: 0.45 + 0.1 + 0.05 + 0.05 = 0.65 (it was 0.80, a pass).
    r = score(diag(root_causes=[{"entity": "payments-db", "mechanism": "lock_contention"}]))
    assert r.subscores["root_cause"] == 1.0 and r.subscores["mechanism"] == 0.0
    assert r.score == pytest.approx(0.65) and not r.passed
    assert r.details["gate"] == "mechanism" and r.details["mechanism_status"] == "wrong"
    assert r.explanation.endswith(
        "Score 0.65; right root cause, wrong mechanism (expected connection_pool_exhaustion): fail."
    )
    r = score(diag(root_causes=[{"entity": "payments-db"}]))
    assert not r.passed and "right root cause, no mechanism (expected" in r.explanation


def test_gate_reads_the_top_candidate():
    # The right mechanism on a lower candidate does not rescue a wrong top candidate, and the
    # gate holds even where penalties or weights would let the score through.
    cands = [
        {"entity": "checkout", "mechanism": "connection_pool_exhaustion"},
        {"entity": "payments-db", "mechanism": "connection_pool_exhaustion"},
    ]
    r = score(diag(root_causes=cands))
    assert r.subscores["mechanism"] == 1.0 and not r.passed and r.details["gate"] == "root_cause"
    r = score(diag(root_causes=[]))
    assert not r.passed and r.details["gate"] == "root_cause"
    assert "no root-cause candidate: fail." in r.explanation
    r = score(diag())
    assert r.passed and r.details["gate"] is None and r.details["gate_reason"] is None


@pytest.mark.parametrize(
    ("truth", "answer"),
    [
        ("oom_killed", "memory_leak"),
        ("memory_leak", "oom_killed"),
        ("rebalance_storm", "consumer_lag"),
        ("slow_query_migration", "latency_regression"),
        ("gc_pauses", "cpu_throttling"),
    ],
)
def test_near_synonym_mechanism_earns_partial_credit_never_a_pass(truth, answer):
    label = make_label(mechanism=truth)
    r = score(diag(root_causes=[{"entity": "payments-db", "mechanism": answer}]), label=label)
    assert r.subscores["mechanism"] == NEAR_MECHANISM_CREDIT == 0.5
    # 1 - 0.35 * 0.5 = 0.825: above the threshold, failed by the gate alone
    assert r.score == pytest.approx(0.825) and r.score >= PASS_THRESHOLD and not r.passed
    assert r.details["gate"] == "mechanism" and r.details["accuracy"]["mechanism"] is False
    assert f"{answer} is a near-synonym of {truth}: partial credit 0.50." in r.explanation
    assert r.explanation.endswith(
        f"right root cause, near-synonym mechanism (expected {truth}): fail."
    )


def test_near_synonym_map_is_closed_symmetric_and_small():
    assert 0 < len(MECHANISM_NEAR_SYNONYMS) <= 6
    for pair, why in MECHANISM_NEAR_SYNONYMS.items():
        a, b = sorted(pair)
        assert {a, b} <= set(MECHANISM_INFO) and "no_fault" not in pair
        assert near_synonym(a, b) == near_synonym(b, a) == why and len(why) > 40
    assert near_synonym("oom_killed", "oom_killed") is None
    assert near_synonym("oom_killed", "disk_full") is None
    assert near_synonym("memory_leak", None) is None
    # not transitive: no class is built from the pairs
    label = make_label(mechanism="oom_killed")
    r = score(diag(root_causes=[{"entity": "payments-db", "mechanism": "disk_full"}]), label=label)
    assert r.subscores["mechanism"] == 0.0


def test_accuracy_details_per_investigation():
    r = score(diag())
    assert r.details["accuracy"] == {"ac_at_1": True, "ac_at_3": True, "mechanism": True}
    cands = [
        {"entity": "checkout", "mechanism": "bad_release"},
        {"entity": "orders-db-primary", "mechanism": "connection_pool_exhaustion"},
    ]
    # mechanism accuracy reads the first correct candidate, AC@k any root cause in the top k
    r = score(diag(root_causes=cands))
    assert r.details["accuracy"] == {"ac_at_1": False, "ac_at_3": True, "mechanism": True}
    cands = [{"entity": e} for e in ["checkout", "web-frontend", "auth", "payments-db"]]
    r = score(diag(root_causes=cands))
    assert r.details["accuracy"] == {"ac_at_1": False, "ac_at_3": False, "mechanism": False}
    r = score(Diagnosis(no_fault=True), viewed=[], label=no_fault_label())
    assert r.details["accuracy"] == {"ac_at_1": True, "ac_at_3": True, "mechanism": True}
    r = score(diag(), viewed=[], label=no_fault_label())
    assert set(r.details["accuracy"].values()) == {False}
    r = score(None)
    assert set(r.details["accuracy"].values()) == {False} and r.details["gate"] == "no_diagnosis"


# --------------------------------------------------------------------------- red herrings


def test_red_herring_on_top_zeroes_root_cause_and_costs_point_two():
    r = score(
        diag(
            root_causes=[
                {"entity": "payments-db-replica", "mechanism": "connection_pool_exhaustion"}
            ]
        )
    )
    assert r.subscores["root_cause"] == 0.0
    assert r.details["penalty"] == pytest.approx(0.2)
    assert r.details["blamed_red_herrings"] == ["payments-db-replica"]
    # 0.35 + 0.1 + 0.05 + 0.05 - 0.2 = 0.35
    assert r.score == pytest.approx(0.35) and not r.passed
    assert "must-not-blame red herring" in r.explanation


def test_confident_red_herrings_below_top_cost_point_one_each_capped():
    cands = [
        {"entity": "payments-db", "mechanism": "connection_pool_exhaustion", "confidence": 0.9},
        {"entity": "fraud-scorer", "confidence": 0.6},
        {"entity": "ledger", "confidence": 0.3},  # hedged: free
        {"entity": "service:fraud-scorer", "confidence": 0.6},  # same entity again: counted once
    ]
    r = score(diag(root_causes=cands))
    assert r.details["blamed_red_herrings"] == ["fraud-scorer"]
    assert r.score == pytest.approx(0.9) and r.passed
    cands = [{"entity": "payments-db", "mechanism": "connection_pool_exhaustion"}] + [
        {"entity": e} for e in ["fraud-scorer", "ledger", "notifications", "payments-db-replica"]
    ]  # no confidence stated counts as blame; 4 x 0.1 capped at 0.3
    r = score(diag(root_causes=cands))
    assert r.details["penalty"] == pytest.approx(0.3)
    assert r.score == pytest.approx(0.7) and r.passed


def test_red_herrings_chased_counts_entities_named_in_arguments():
    label = make_label()
    viewed = [
        seen(
            "query_metrics", {}, query="avg:postgresql.replication.lag{service:payments_db_replica}"
        ),
        seen("get_service_dependencies", {}, service="fraud-scorer"),
        seen("search_logs", {}, query="service:fraud-scorer status:error"),
        seen("search_logs", {}, query="service:payments-db"),  # the root cause, not a red herring
        seen("search_logs", {}, query="service:ledger-archive"),  # a different entity
    ]
    assert red_herrings_chased(label, viewed) == 2
    assert red_herrings_chased(label, []) == 0
    assert score(diag(), viewed=viewed).details["red_herrings_chased"] == 2


# --------------------------------------------------------------------------- no fault


def test_no_fault_control_answered_no_fault():
    label = no_fault_label()
    r = score(
        Diagnosis(no_fault=True, summary="Nightly batch spike, nothing is broken."),
        viewed=[],
        label=label,
    )
    assert r.score == 1.0 and r.passed
    assert r.details["verdict"] == "no_fault"
    r = score(Diagnosis(summary="This alert is a false positive."), viewed=[], label=label)
    assert r.passed
    r = score(
        Diagnosis(root_causes=[{"entity": "batch-reporter", "mechanism": "no_fault"}]),
        viewed=[],
        label=label,
    )
    assert r.passed and r.details["penalty"] == 0.0


def test_no_fault_control_evidence_scored_as_usual():
    ke = [
        {
            "tool": "get_events",
            "arguments": {"query": "source:cron"},
            "expect": "nightly-report started",
        }
    ]
    label = no_fault_label(key_evidence=ke)
    r = score(Diagnosis(no_fault=True), viewed=[], label=label)
    assert r.subscores["evidence"] == 0.0 and r.score == pytest.approx(0.95) and r.passed
    r = score(
        Diagnosis(no_fault=True),
        viewed=[seen("get_events", ["nightly-report started"])],
        label=label,
    )
    assert r.score == 1.0


def test_blaming_something_on_no_fault_control_fails():
    r = score(
        diag(root_causes=[{"entity": "checkout", "mechanism": "bad_release"}]),
        viewed=[],
        label=no_fault_label(),
    )
    assert r.subscores["root_cause"] == 0.0 and not r.passed
    assert r.score == pytest.approx(0.05)  # only evidence (none required)
    assert "Blamed checkout on a no-fault control" in r.explanation
    assert r.explanation.endswith("blamed something on a no-fault control: fail.")
    r = score(diag(root_causes=[{"entity": "batch-reporter"}]), viewed=[], label=no_fault_label())
    assert r.score == 0.0 and r.details["blamed_red_herrings"] == ["batch-reporter"]


def test_fault_label_answered_no_fault_fails():
    r = score(Diagnosis(no_fault=True, summary="All good."))
    assert r.subscores["root_cause"] == 0.0 and not r.passed
    assert r.score == pytest.approx(0.05)  # evidence was viewed
    assert "Answered no fault, but the root cause is payments-db" in r.explanation
    assert r.details["gate"] == "root_cause" and r.details["accuracy"]["ac_at_1"] is False
    r = score(Diagnosis(summary="Benign spike, no incident."))
    assert r.details["verdict"] == "no_fault" and not r.passed


def test_giving_up_is_not_a_no_fault_claim():
    r = score(
        Diagnosis(summary="I could not determine the root cause."),
        viewed=[],
        label=no_fault_label(),
    )
    assert r.details["verdict"] == "fault" and not r.passed


# --------------------------------------------------------------------------- onset


@pytest.mark.parametrize(
    ("offset_s", "expected"),
    [
        (0, 1.0),
        (-300, 1.0),
        (300, 1.0),
        (450, 0.75),
        (600, 0.5),
        (-750, 0.25),
        (900, 0.0),
        (5000, 0.0),
    ],
)
def test_onset_tolerance_decay(offset_s, expected):
    r = score(diag(onset=(ONSET + timedelta(seconds=offset_s)).isoformat()))
    assert r.subscores["onset"] == pytest.approx(expected)
    assert r.details["onset_error_s"] == abs(offset_s)


def test_onset_missing_naive_and_zero_tolerance():
    r = score(diag(onset=None))
    assert r.subscores["onset"] == 0.0 and "No onset given." in r.explanation
    assert r.score == pytest.approx(0.95)
    naive = ONSET.replace(tzinfo=None)
    assert onset_score(naive, ONSET, 300) == (1.0, 0.0)
    assert onset_score(ONSET + timedelta(seconds=1), ONSET, 0) == (0.0, 1.0)
    assert onset_score(ONSET, ONSET, 0) == (1.0, 0.0)


# --------------------------------------------------------------------------- causal chain


def test_chain_lcs_f1_by_hand():
    truth = ["a", "b", "c", "d"]
    # predicted a,b,d: LCS 3, P 3/3, R 3/4, F1 = 2*1*0.75/1.75 = 6/7
    assert chain_f1(["a", "b", "d"], truth)[0] == pytest.approx(6 / 7)
    # predicted a,x,c,y,d: LCS 3 (a,c,d), P 3/5, R 3/4, F1 = 2*.6*.75/1.35 = 2/3
    f1, lcs, p, r = chain_f1(["a", "x", "c", "y", "d"], truth)
    assert (lcs, p, r) == (3, 0.6, 0.75) and f1 == pytest.approx(2 / 3)
    # reversed order: LCS 1, P 1/4, R 1/4
    assert chain_f1(["d", "c", "b", "a"], truth)[0] == pytest.approx(0.25)
    assert chain_f1([], truth)[0] == 0.0


def test_chain_built_from_unordered_edges_and_scored():
    edges = [
        {"source": "checkout", "target": "web-frontend"},
        {"source": "service:payments-api", "target": "checkout"},
        {"source": "orders-db-primary", "target": "payments-api"},
    ]
    r = score(diag(causal_chain=edges))
    assert r.details["predicted_path"] == CHAIN and r.subscores["causal_chain"] == 1.0
    # skipping checkout: path db, api, frontend -> LCS 3, P 1, R 3/4, F1 6/7
    r = score(diag(causal_chain=["payments-db", "payments-api", "web-frontend"]))
    assert r.subscores["causal_chain"] == pytest.approx(6 / 7)
    assert "Causal chain F1 0.86 (LCS 3 of predicted 3, truth 4 nodes)." in r.explanation
    # an extra wrong hop: db, pgbouncer, api, checkout, frontend -> LCS 4, P 4/5, R 1, F1 8/9
    r = score(
        diag(causal_chain=["payments-db", "pgbouncer", "payments-api", "checkout", "web-frontend"])
    )
    assert r.subscores["causal_chain"] == pytest.approx(8 / 9)


def test_predicted_path_branches_and_cycles():
    from evaluator_agent.core.protocol import CausalEdge

    def e(s, t):
        return CausalEdge(source=s, target=t)

    # a branch off the main path is appended so that it costs precision
    assert predicted_path([e("a", "b"), e("b", "c"), e("a", "x")]) == ["a", "b", "c", "x"]
    # a cycle has no start: edges are read in order
    assert predicted_path([e("a", "b"), e("b", "a")]) == ["a", "b", "a"]
    assert predicted_path([]) == []


def test_label_without_chain_is_judged_leniently():
    label = make_label(causal_chain=[])
    assert score(diag(causal_chain=[]), label=label).subscores["causal_chain"] == 1.0
    assert score(diag(), label=label).subscores["causal_chain"] == 1.0
    r = score(diag(causal_chain=["checkout", "web-frontend"]), label=label)
    assert r.subscores["causal_chain"] == 0.5
    assert score(diag(causal_chain=[])).subscores["causal_chain"] == 0.0


def test_single_service_incident_needs_no_chain():
    label = make_label(causal_chain=["payments-db"])
    r = score(diag(causal_chain=[]), label=label)
    assert r.subscores["causal_chain"] == 1.0 and r.score == 1.0 and r.passed
    assert "Single-service incident: an empty causal chain is right." in r.explanation
    # naming only the root cause (a self-loop, here through an alias) is right as well
    loop = [{"source": "orders-db-primary", "target": "service:payments-db"}]
    assert score(diag(causal_chain=loop), label=label).subscores["causal_chain"] == 1.0
    # naming other services costs precision: path db, checkout -> P 1/2, R 1, F1 2/3
    r = score(diag(causal_chain=["payments-db", "checkout"]), label=label)
    assert r.subscores["causal_chain"] == pytest.approx(2 / 3)
    r = score(diag(causal_chain=["checkout", "web-frontend"]), label=label)
    assert r.subscores["causal_chain"] == 0.0
    # a longer true chain still needs one
    assert score(diag(causal_chain=[])).subscores["causal_chain"] == 0.0


# --------------------------------------------------------------------------- evidence


def test_evidence_viewed_with_the_right_tool_only():
    assert score(diag(), viewed=FULL_VIEW).subscores["evidence"] == 1.0
    r = score(diag(), viewed=FULL_VIEW[:1])
    assert r.subscores["evidence"] == 0.5
    assert (
        r.details["evidence"][0]["found"] == "viewed" and r.details["evidence"][1]["found"] is None
    )
    assert (
        "Key evidence 1/2 found" in r.explanation
        and "missing 'postgresql.percent_usage_connections'" in r.explanation
    )
    # same text from another tool, or from a failed call, does not count
    wrong_tool = [seen("search_spans", {"m": "remaining connection slots are reserved"})]
    failed = [seen("search_logs", {"error": "remaining connection slots are reserved"}, ok=False)]
    assert score(diag(), viewed=wrong_tool + failed).subscores["evidence"] == 0.0


def test_evidence_matches_case_insensitively_through_json_escaping():
    text = 'FATAL:  Remaining "connection slots" are reserved'
    label = make_label(
        key_evidence=[
            {
                "tool": "search_logs",
                "arguments": {},
                "expect": 'remaining "connection slots" are reserved',
            }
        ]
    )
    assert (
        score(diag(), viewed=[seen("search_logs", [{"message": text}])], label=label).subscores[
            "evidence"
        ]
        == 1.0
    )


def test_citing_evidence_without_viewing_it_earns_nothing():
    # Pasting the expected strings into the diagnosis is not having seen them.
    d = diag(
        evidence=["Logs: FATAL remaining connection slots are reserved for superuser"],
        summary="Pool saturated; postgresql.percent_usage_connections at 100%.",
    )
    r = score(d, viewed=[])
    assert r.subscores["evidence"] == 0.0
    assert [x["found"] for x in r.details["evidence"]] == [None, None]
    assert r.score == pytest.approx(0.95)
    # a result of another tool that was shown, or a failed call, still earns nothing
    shown = [
        seen("search_spans", {"m": "remaining connection slots are reserved"}),
        seen("query_metrics", {"error": "postgresql.percent_usage_connections"}, ok=False),
    ]
    assert score(d, viewed=shown).subscores["evidence"] == 0.0
    assert score(d, viewed=FULL_VIEW).subscores["evidence"] == 1.0


def test_a_metric_name_echoed_back_in_the_query_is_not_seen():
    # query_metrics echoes the query: asking for a metric that returns nothing has shown nothing
    echo_only = [
        seen(
            "query_metrics",
            {"query": "max:postgresql.percent_usage_connections{service:x}", "series": []},
        )
    ]
    assert score(diag(), viewed=FULL_VIEW[:1] + echo_only).subscores["evidence"] == 0.5
    with_series = [
        seen(
            "query_metrics",
            {
                "query": "max:postgresql.percent_usage_connections{service:x}",
                "series": [{"metric": "postgresql.percent_usage_connections", "pointlist": [[1, 0.9]]}],
            },
        )
    ]
    assert score(diag(), viewed=FULL_VIEW[:1] + with_series).subscores["evidence"] == 1.0


def test_no_key_evidence_scores_one():
    assert score(diag(), viewed=[], label=make_label(key_evidence=[])).subscores["evidence"] == 1.0


# --------------------------------------------------------------------------- no answer


def test_no_diagnosis_scores_zero():
    r = score(None)
    assert r.score == 0.0 and not r.passed
    assert set(r.subscores.values()) == {0.0}
    assert r.explanation.startswith("No diagnosis")
    r = score_investigation(make_label(), None, [], no_answer_reason="turn timeout after 60 s")
    assert "turn timeout after 60 s" in r.explanation
    json.dumps(r.to_dict())


def test_result_is_json_serialisable_and_deterministic():
    d = diag(root_causes=[{"entity": "checkout"}, {"entity": "payments-db"}])
    a, b = score(d), score(d)
    assert a == b
    json.dumps(a.to_dict())


# --------------------------------------------------------------------------- names


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Payments_API", "payments-api"),
        ("  service:payments-api ", "payments-api"),
        ("SERVICE: payments-api", "payments-api"),
        ("deployment/payments-api", "payments-api"),
        ("kube_deployment:payments-api", "payments-api"),
        ("statefulset/payments-db", "payments-db"),
        ("host:ip-10-0-0-1", "ip-10-0-0-1"),
        ("@db.instance:orders-db", "orders-db"),
        ("payments-api.prod.svc.cluster.local", "payments-api"),
        ("orders-db:5432", "orders-db"),
        ("orders.db  primary", "orders-db-primary"),
        ("payments-db (postgres primary)", "payments-db"),
        ("`checkout`", "checkout"),
        ("https://api.stripe.com/", "api-stripe-com"),
        ("payments-db-replica", "payments-db-replica"),
        ("prod/payments-api", "prod/payments-api"),  # an unknown prefix is kept
        ("", ""),
    ],
)
def test_normalize_entity(raw, expected):
    assert normalize_entity(raw) == expected
