"""The scorer is total: whatever diagnosis a target can send, scoring never raises (issue 11).

A scorer that raises on a diagnosis turns the target's answer into a harness error, which is
left out of the pass rate: a target could remove the labels it cannot solve by answering them
with an onset of ``0001-01-01T00:00:00+01:00``. Two properties, over every smoke label:

- diagnoses built from the protocol's reply model (:class:`evaluator_agent.core.protocol.Diagnosis`)
  with hostile values (year 1 and 9999 with offsets, unicode, empty and full lists, names
  that collide with the truth, red herrings, aliases);
- raw JSON objects pushed through the parsing path the proctor uses for a reply
  (``extract_json_object`` on the reply text, or the DataPart after the protobuf ``Struct`` round
  trip, then ``parse_reply``): either the reply is refused with a ``ReplyError`` (the target is
  told, the turn counts as malformed) or it is scored; nothing else may happen.

Example counts are modest (``max_examples`` 200 per property) so the file runs in seconds.
"""

from __future__ import annotations

import asyncio
import json
import math
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from evaluator_agent.core.labels import load_labelset
from evaluator_agent.core.protocol import (
    Budget,
    CausalEdge,
    Diagnosis,
    DiagnosisReply,
    EvidenceItem,
    ReplyError,
    RootCauseCandidate,
    extract_json_object,
    parse_reply,
)
from evaluator_agent.core.vocab import MECHANISMS
from evaluator_agent.engine.investigation import investigate
from evaluator_agent.engine.local import LocalTarget
from evaluator_agent.engine.scoring import (
    DIMENSIONS,
    ViewedResult,
    onset_score,
    score_investigation,
)
from evaluator_agent.engine.worlds import WorldCache

LABELS = load_labelset("smoke").labels
SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _truth_names() -> list[str]:
    """Every name the labels know (root causes, aliases, partial credit, red herrings), in the
    spellings the scorer normalises: hits and near-hits are more interesting than noise."""
    out: set[str] = set()
    for lb in LABELS:
        gt = lb.ground_truth
        for rc in gt.root_causes:
            out.update([rc.entity, *rc.aliases])
        out.update(pc.entity for pc in gt.partial_credit)
        out.update(rh.entity for rh in gt.must_not_blame)
    styled = set()
    for n in out:
        styled.update({n, f"service:{n}", f"deployment/{n.upper()}", f"{n}.prod.svc.cluster.local:8080", f"{n} (primary)"})
    return sorted(styled)


NAMES = _truth_names()

offsets = st.timedeltas(min_value=-timedelta(hours=23, minutes=59), max_value=timedelta(hours=23, minutes=59)).map(
    lambda d: timezone(timedelta(minutes=int(d.total_seconds() // 60)))
)
extreme_times = st.sampled_from([
    datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=1))),
    datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=23, minutes=59))),
    datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=timezone(-timedelta(hours=23, minutes=59))),
    datetime(9999, 12, 31, 23, 59, 59, 999999),
    datetime(1, 1, 1),
])
onsets = st.one_of(
    st.none(),
    extreme_times,
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59), timezones=st.none() | offsets),
)
text = st.text(max_size=60)  # unicode of every category, surrogates excluded (JSON cannot carry them)
entities = st.one_of(st.sampled_from(NAMES), text, st.just(""), st.just("x" * 500))
mechanisms = st.one_of(st.none(), st.sampled_from(list(MECHANISMS)), text, st.just("no_fault"), st.just(" OOM-Killed "))
confidences = st.one_of(st.none(), st.floats(min_value=0, max_value=1), st.sampled_from([0.0, 1.0, 5e-324, 0.5]))

candidates = st.builds(RootCauseCandidate, entity=entities, mechanism=mechanisms, confidence=confidences)
edges = st.builds(CausalEdge, source=entities, target=entities)
evidence = st.builds(EvidenceItem, tool_call_id=st.none() | text, description=text)
diagnoses = st.builds(
    Diagnosis,
    no_fault=st.booleans(),
    root_causes=st.lists(candidates, max_size=20),
    causal_chain=st.lists(edges, max_size=50),
    onset=onsets,
    evidence=st.lists(evidence, max_size=5),
    summary=st.one_of(text, st.sampled_from(["no fault", "a false positive", "benign"]), st.just("y" * 20000)),
)

viewed = st.lists(
    st.builds(
        ViewedResult,
        tool=st.sampled_from(["search_logs", "query_metrics", "get_events", "list_services", "nope"]),
        arguments=st.dictionaries(st.sampled_from(["query", "service", "from"]), st.one_of(text, st.sampled_from(NAMES)), max_size=3),
        ok=st.booleans(),
        text=st.one_of(text, st.just("{not json"), st.just('{"query": "avg:x", "series": []}'), st.just("[" * 5000)),
    ),
    max_size=4,
)


def _check(result: Any) -> None:
    assert 0.0 <= result.score <= 1.0 and not math.isnan(result.score)
    assert set(result.subscores) == set(DIMENSIONS)
    assert all(0.0 <= v <= 1.0 for v in result.subscores.values())
    assert isinstance(result.passed, bool) and isinstance(result.explanation, str)
    json.dumps(result.details, default=str)  # what the store writes


@SETTINGS
@given(label=st.sampled_from(LABELS), diagnosis=diagnoses, seen=viewed)
@example(label=LABELS[0], diagnosis=Diagnosis(onset=datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=1)))), seen=[])
@example(label=LABELS[0], diagnosis=Diagnosis(onset=datetime(9999, 12, 31, 23, 59, tzinfo=timezone(-timedelta(hours=23)))), seen=[])
def test_model_diagnoses_always_score(label: Any, diagnosis: Diagnosis, seen: list[ViewedResult]) -> None:
    _check(score_investigation(label, diagnosis, seen))
    json.dumps(diagnosis.model_dump(mode="json"), default=str)  # what the investigation stores


# ---------------------------------------------------------------- raw JSON through the reply parser

json_scalars = st.one_of(
    st.none(), st.booleans(), text,
    st.integers(min_value=-(10**30), max_value=10**30), st.sampled_from([2**63, -(2**63) - 1, 10**18, 253402300800, -62135596800]),
    st.floats(allow_nan=True, allow_infinity=True),
)
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4), max_leaves=12)
onset_strings = st.one_of(
    st.sampled_from([
        "0001-01-01T00:00:00+01:00", "0001-01-01T00:00:00+23:59", "9999-12-31T23:59:59-23:59", "9999-12-31T23:59:59Z",
        "0000-01-01T00:00:00Z", "2024-02-30T00:00:00Z", "2024-05-01T10:00:00+99:00", "now-1h", "", "NaN",
        "2024-05-01", "2024-05-01T10:00:00.123456789+05:30", "１９９９-01-01T00:00:00Z",
    ]),
    onsets.map(lambda t: t.isoformat() if t else None),
    st.integers(min_value=-(10**12), max_value=10**12), st.floats(allow_nan=True, allow_infinity=True),
)
raw_candidates = st.fixed_dictionaries(
    {"entity": st.one_of(entities, json_values)},
    optional={"mechanism": st.one_of(mechanisms, json_values), "confidence": st.one_of(confidences, json_scalars, st.just("0.7"))},
)
raw_chains = st.one_of(
    st.lists(entities, max_size=8),  # a path of names
    st.lists(st.fixed_dictionaries({"source": entities, "target": entities}), max_size=8),
    json_values,
)
raw_diagnoses = st.fixed_dictionaries(
    {},
    optional={
        "no_fault": st.one_of(st.booleans(), json_scalars, st.sampled_from(["true", "yes", "0"])),
        "root_causes": st.one_of(st.lists(raw_candidates, max_size=22), json_values),
        "causal_chain": raw_chains,
        "onset": st.one_of(onset_strings, json_values),
        "evidence": st.one_of(st.lists(st.one_of(text, st.fixed_dictionaries({"description": text})), max_size=5), json_values),
        "summary": st.one_of(text, json_scalars),
        "extra": json_values,
    },
)
raw_replies = st.one_of(
    st.fixed_dictionaries({"diagnosis": raw_diagnoses}, optional={"usage": json_values}),
    st.fixed_dictionaries({"diagnosis": json_values}),
)


def _struct_round_trip(obj: dict[str, Any]) -> dict[str, Any] | None:
    """What a DataPart carries: the A2A client hands the proctor a protobuf Struct (every number a
    double), read back with MessageToDict as target.py does. None when a Struct cannot hold it."""
    from google.protobuf import struct_pb2
    from google.protobuf.json_format import MessageToDict

    value = struct_pb2.Struct()
    try:
        value.update(obj)
        out = MessageToDict(value)
    except (TypeError, ValueError, OverflowError):
        return None  # NaN and Infinity do not survive it: target.py ends such a turn as target_error
    return out if isinstance(out, dict) else None


def _score_reply(label: Any, obj: Any) -> None:
    try:
        parsed = parse_reply(obj)
    except ReplyError:
        return  # refused: the target is told why and the turn counts as malformed
    assert isinstance(parsed, DiagnosisReply)
    json.dumps(parsed.diagnosis.model_dump(mode="json"), default=str)
    _check(score_investigation(label, parsed.diagnosis, []))


@SETTINGS
@given(label=st.sampled_from(LABELS), obj=raw_replies)
@example(label=LABELS[0], obj={"diagnosis": {"root_causes": [{"entity": "x", "confidence": float("nan")}], "onset": "0001-01-01T00:00:00+01:00"}})
@example(label=LABELS[0], obj={"diagnosis": {"onset": 253402300799, "root_causes": [{"entity": "x", "confidence": float("inf")}]}})
@example(label=LABELS[0], obj={"diagnosis": {"causal_chain": ["a"], "evidence": "x", "root_causes": [{"entity": 10**400}]}})
def test_raw_replies_are_refused_or_scored(label: Any, obj: dict[str, Any]) -> None:
    # as JSON in a TextPart (json.dumps writes NaN and Infinity, which Python's reader accepts)
    body = json.dumps(obj, default=str)
    found = extract_json_object(f"Here is my answer:\n```json\n{body}\n```")
    if found is not None:
        _score_reply(label, found)
    # as a DataPart
    carried = _struct_round_trip(obj)
    if carried is not None:
        _score_reply(label, carried)
    _score_reply(label, obj)


def test_parse_reply_refuses_what_it_cannot_read() -> None:
    deep = "[" * 100_000
    for obj in ({"tool_calls": [{"name": "search_logs", "arguments": deep}]},
                {"tool_calls": [{"name": "search_logs", "arguments": '{"a":' * 100_000}]}):
        with pytest.raises(ReplyError, match="nested too deeply"):
            parse_reply(obj)


def test_onset_at_the_edges_of_time() -> None:
    truth = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
    year1 = datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=1)))
    s, err = onset_score(year1, truth, 300)
    assert s == 0.0 and err > 6e10
    assert onset_score(datetime(2024, 5, 1, 12, 0, tzinfo=timezone(timedelta(hours=2))), truth, 300) == (1.0, 0.0)
    assert onset_score(datetime(2024, 5, 1, 10, 0), truth, 300) == (1.0, 0.0)  # naive: UTC


# ---------------------------------------------------------------- the investigation around the scorer


def _fault_label() -> Any:
    return next(lb for lb in LABELS if not lb.ground_truth.no_fault)


def _answering(diagnosis: dict[str, Any]) -> LocalTarget:
    return LocalTarget(lambda _m: {"diagnosis": diagnosis}, "edge")


def test_year_one_onset_is_scored_not_a_harness_error() -> None:
    label = _fault_label()
    rc = label.ground_truth.root_causes[0]
    diag = {"root_causes": [{"entity": rc.entity, "mechanism": label.ground_truth.mechanism}],
            "onset": "0001-01-01T00:00:00+01:00"}
    res = asyncio.run(investigate(label, 1, _answering(diag), WorldCache(), Budget()))
    assert res.end_reason == "diagnosis" and res.error_kind is None
    assert res.subscores["onset"] == 0.0 and res.subscores["root_cause"] == 1.0


def test_a_scorer_failure_on_a_diagnosis_is_the_targets_failure(monkeypatch, caplog) -> None:
    """Defence in depth: should the scorer still raise on some diagnosis, the target gains nothing."""
    import evaluator_agent.engine.scoring as scoring

    real = scoring.score_investigation

    def flaky(label: Any, diagnosis: Any, viewed: Any, **kw: Any) -> Any:
        if diagnosis is not None:
            raise OverflowError("date value out of range")
        return real(label, diagnosis, viewed, **kw)

    monkeypatch.setattr(scoring, "score_investigation", flaky)
    label = _fault_label()
    res = asyncio.run(investigate(label, 1, _answering({"no_fault": True}), WorldCache(), Budget()))
    assert res.end_reason == "unscorable_diagnosis" and res.error_kind is None
    assert res.passed is False and res.score == 0.0 and "OverflowError" in (res.error or "")
    assert any("scorer failed" in r.message for r in caplog.records)

    # ... while a scorer that cannot score the label at all is our fault: a harness error.
    monkeypatch.setattr(scoring, "score_investigation", lambda *a, **k: (_ for _ in ()).throw(KeyError("rubric")))
    res = asyncio.run(investigate(label, 1, _answering({"no_fault": True}), WorldCache(), Budget()))
    assert res.end_reason == "harness_error" and res.error_kind == "harness"
