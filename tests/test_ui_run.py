"""The run page and the investigation page of the web interface, in process (Starlette's
TestClient) on a results database of real runs (``tests/ui_data.py``) plus one synthetic run
big enough to page (``tests/benchmarks/bench_ui.synth_run``).

What is checked against the store's own rows: the table's order under every sort key, its
filters, its pages and its facet counts; then tenancy (another key's run is not found), escaping
of a hostile target name, the disclosure policy on both pages, the timeline's tool calls, and
hostile query parameters (a sane page, never a 500).
"""

from __future__ import annotations

import html
import json
import math
import re
from pathlib import Path
from typing import Any

import pytest
from markupsafe import escape
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.testclient import TestClient

from evaluator_agent.core.labels import load_labelset
from evaluator_agent.core.vocab import INFRA_ERROR_KINDS
from evaluator_agent.results import browse
from evaluator_agent.results.store import Store
from evaluator_agent.web.app import UIConfig, ui_app
from tests.benchmarks.bench_ui import synth_run
from tests.ui_data import HOSTILE, KEY, OTHER_KEY, build_ui_db

SYNTH = "run_synth_ui"
LIVE = "run_live_ui"


def esc(s: str) -> str:
    """As the templates escape text (Jinja2 autoescape)."""
    return str(escape(s))


N_SYNTH = 137  # three pages of 50


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    path = tmp_path_factory.mktemp("ui_run") / "results.db"
    runs = build_ui_db(path)
    store = Store(path)
    try:
        made = synth_run(store, N_SYNTH, 20, seed=11, run_id=SYNTH, target="synth-agent")
        live_run(store, made["label_meta"])
        rows = {rid: store.investigations(rid) for rid in [*runs.values(), SYNTH, LIVE]}
        calls = {r["id"]: store.tool_calls(r["id"]) for rid in rows for r in rows[rid]}
        stored = {rid: store.get_run(rid) for rid in rows}
    finally:
        store.close()
    return {"path": path, "runs": runs, "rows": rows, "calls": calls, "meta": made["label_meta"], "stored": stored}


def live_run(store: Store, meta: dict[str, Any]) -> None:
    """A run still running, of a private label set: 5 investigations recorded, no summary stored."""
    import random

    from tests.benchmarks.bench_ui import fake_investigation

    rng = random.Random(3)
    ids = sorted(meta)[:5]
    store.create_run(LIVE, {"run_id": LIVE, "target": {"name": "live-agent", "version": "0"},
                            "labelset": {"name": "bench", "hash": "c" * 64, "private": True}, "label_ids": ids,
                            "label_meta": {k: meta[k] for k in ids}})
    for k, lid in enumerate(ids):
        store.record_investigation(LIVE, fake_investigation(k, lid, 1, meta[lid], rng))


def client(db: dict[str, Any], disclosure: str = "full", keys: tuple[str, ...] = (), **kw: Any) -> TestClient:
    app = Starlette(routes=[Mount("/ui", app=ui_app(db["path"], api_keys=keys, secret=b"s" * 32,
                                                    config=UIConfig(disclosure=disclosure, **kw)))])
    return TestClient(app, base_url="http://testserver", follow_redirects=False)


def signed_in(db: dict[str, Any], key: str = KEY, disclosure: str = "full") -> TestClient:
    c = client(db, disclosure, keys=(KEY, OTHER_KEY))
    r = c.post("/ui/signin", data={"key": key, "next": "/ui/runs"})
    assert r.status_code == 303, r.text
    return c


# ---------------------------------------------------------------------- reading the page

_ROW = re.compile(r'data-testid="investigation-row" data-label="([^"]*)" data-attempt="(\d+)"')


def table(text: str) -> list[tuple[str, int]]:
    return [(html.unescape(lab), int(a)) for lab, a in _ROW.findall(text)]


def count_of(text: str) -> tuple[int, int]:
    m = re.search(r'<span id="match-count">(\d+)</span> of (\d+) investigation', text)
    assert m, text[:2000]
    return int(m.group(1)), int(m.group(2))


def options(text: str, select_id: str) -> dict[str, int]:
    """{value: count} of a filter's options ("any" left out)."""
    m = re.search(rf'<select name="\w+" id="{select_id}".*?</select>', text, re.S)
    assert m, select_id
    return {html.unescape(v): int(n) for v, n in re.findall(r'<option value="([^"]+)"[^>]*>[^<]*\((\d+)\)</option>', m.group(0))}


def every_page(c: TestClient, url: str) -> list[tuple[str, int]]:
    sep = "&" if "?" in url else "?"
    first = c.get(url)
    assert first.status_code == 200
    total = count_of(first.text)[0]
    out = table(first.text)
    for p in range(2, math.ceil(total / 50) + 1):
        out += table(c.get(f"{url}{sep}page={p}").text)
    return out


# ---------------------------------------------------------------------- what the store says


def outcome(r: dict[str, Any]) -> str:
    return "error" if r.get("error_kind") in INFRA_ERROR_KINDS else ("pass" if r["passed"] else "fail")


KEYS = {"label": lambda r: r["label_id"], "attempt": lambda r: r["attempt"], "outcome": outcome,
        "score": lambda r: r["score"], "end_reason": lambda r: r["end_reason"] or "", "turns": lambda r: r["turns"],
        "tool_calls": lambda r: r["tool_calls"], "duration": lambda r: r["duration_s"]}


def expected_order(rows: list[dict[str, Any]], sort: str, desc: bool) -> list[tuple[str, int]]:
    if sort == "label":
        ordered = sorted(rows, key=lambda r: (r["label_id"], r["attempt"]), reverse=desc)
    else:  # ties: label then attempt, ascending whatever the direction
        ordered = sorted(rows, key=lambda r: (r["label_id"], r["attempt"]))
        ordered = sorted(ordered, key=KEYS[sort], reverse=desc)
    return [(r["label_id"], r["attempt"]) for r in ordered]


def matching(db: dict[str, Any], **f: str) -> list[dict[str, Any]]:
    meta = db["meta"]
    return [r for r in db["rows"][SYNTH]
            if ("segment" not in f or meta[r["label_id"]]["segment"] == f["segment"])
            and ("tier" not in f or meta[r["label_id"]]["tier"] == f["tier"])
            and ("outcome" not in f or outcome(r) == f["outcome"])
            and ("end_reason" not in f or r["end_reason"] == f["end_reason"])]


# ---------------------------------------------------------------------- the run page


def test_the_run_page_shows_the_summary_and_pass_rates_with_intervals(db: dict[str, Any]) -> None:
    rid = db["runs"]["good2"]
    r = client(db).get(f"/ui/runs/{rid}")
    assert r.status_code == 200
    s = db["stored"][rid]["summary"]
    assert 'data-testid="run-cards"' in r.text and "methodical" in r.text and "smoke" in r.text
    assert db["stored"][rid]["labelset_hash"][:12] in r.text
    assert re.search(r'data-testid="run-status">completed', r.text)
    assert re.search(rf'data-testid="pass-rate">{s["pass_rate"]:.1%}', r.text)
    assert re.search(rf'data-testid="run-n">{s["n"]}<', r.text)
    for dim in ("segment", "tier"):
        m = re.search(rf'data-testid="breakdown-{dim}">.*?</table>', r.text, re.S)
        assert m, dim
        for name, b in s["breakdown"][dim].items():
            ci = f"[{b['ci95'][0]:.0%}, {b['ci95'][1]:.0%}]"
            assert re.search(rf"<td>{re.escape(name)}</td><td class=\"num\">{b['pass_rate']:.1%}</td><td>{re.escape(ci)}</td>",
                             m.group(0)), (dim, name)
    assert 'data-testid="chart-score"' in r.text and "<svg" in r.text


def test_the_table_pages_through_every_investigation_in_label_order(db: dict[str, Any]) -> None:
    c = client(db)
    r = c.get(f"/ui/runs/{SYNTH}")
    assert count_of(r.text) == (N_SYNTH, N_SYNTH) and len(table(r.text)) == 50
    assert "page 1 of 3" in r.text
    assert every_page(c, f"/ui/runs/{SYNTH}") == expected_order(db["rows"][SYNTH], "label", False)
    assert len(table(c.get(f"/ui/runs/{SYNTH}?page=3").text)) == N_SYNTH - 100
    # out of range: clamped to the last page, and to the first
    assert table(c.get(f"/ui/runs/{SYNTH}?page=999").text) == table(c.get(f"/ui/runs/{SYNTH}?page=3").text)
    assert table(c.get(f"/ui/runs/{SYNTH}?page=0").text) == table(r.text)
    # each row links to its investigation
    lab, att = table(r.text)[0]
    assert f'href="/ui/runs/{SYNTH}/investigations/{lab}/{att}"' in r.text


@pytest.mark.parametrize("sort", sorted(browse.SORTS))
def test_every_sort_key_orders_like_the_store(db: dict[str, Any], sort: str) -> None:
    c = client(db)
    for desc in (False, True):
        url = f"/ui/runs/{SYNTH}?sort={sort}&dir={'desc' if desc else 'asc'}"
        want = expected_order(db["rows"][SYNTH], sort, desc)
        if sort in ("score", "duration", "outcome"):
            assert every_page(c, url) == want, (sort, desc)
        else:
            assert table(c.get(url).text) == want[:50], (sort, desc)
    r = c.get(f"/ui/runs/{SYNTH}?sort=score&dir=desc")
    assert 'aria-sort="descending" data-sort="score"' in r.text
    # the links keep the sort: the next page is sorted the same way
    nxt = re.search(r'href="([^"]*)" rel="next"', r.text)
    assert nxt and "sort=score" in html.unescape(nxt.group(1)) and "dir=desc" in html.unescape(nxt.group(1))


@pytest.mark.parametrize("filters", [
    {"outcome": "pass"}, {"outcome": "fail"}, {"outcome": "error"}, {"tier": "hard"}, {"end_reason": "diagnosis"},
    {"segment": "SEG"}, {"segment": "SEG", "tier": "TIER", "outcome": "fail"}, {"tier": "easy", "end_reason": "timeout"},
])
def test_filters_select_what_the_store_holds(db: dict[str, Any], filters: dict[str, str]) -> None:
    first = db["meta"][sorted(db["meta"])[0]]
    filters = {k: {"SEG": first["segment"], "TIER": first["tier"]}.get(v, v) for k, v in filters.items()}
    want = matching(db, **filters)
    qs = "&".join(f"{k}={v}" for k, v in filters.items())
    c = client(db)
    r = c.get(f"/ui/runs/{SYNTH}?{qs}")
    assert r.status_code == 200 and count_of(r.text) == (len(want), N_SYNTH)
    assert every_page(c, f"/ui/runs/{SYNTH}?{qs}") == expected_order(want, "label", False)
    assert every_page(c, f"/ui/runs/{SYNTH}?{qs}&sort=score&dir=desc") == expected_order(want, "score", True)
    for k, v in filters.items():  # the form shows what is in force
        assert re.search(rf'<option value="{re.escape(v)}" selected>', r.text), k


def test_facet_counts_are_what_each_choice_would_give(db: dict[str, Any]) -> None:
    c = client(db)
    seg = db["meta"][sorted(db["meta"])[0]]["segment"]
    for given in ({}, {"segment": seg}, {"outcome": "fail", "tier": "medium"}):
        qs = "&".join(f"{k}={v}" for k, v in given.items())
        r = c.get(f"/ui/runs/{SYNTH}?{qs}")
        for dim, sel in (("outcome", "filter-outcome"), ("tier", "filter-tier"), ("segment", "filter-segment"),
                         ("end_reason", "filter-end-reason")):
            others = {k: v for k, v in given.items() if k != dim}
            shown = options(r.text, sel)
            for value, n in shown.items():
                assert n == len(matching(db, **others, **{dim: value})), (given, dim, value)
            values = {outcome(x) if dim == "outcome" else x["end_reason"] if dim == "end_reason"
                      else db["meta"][x["label_id"]][dim] for x in db["rows"][SYNTH]}
            assert values <= set(shown), (dim, values, shown)  # every value of the run is offered


def test_the_histogram_and_counts_come_from_sql_aggregates(db: dict[str, Any]) -> None:
    store = Store(db["path"])
    try:
        assert browse.ensure_indexes(store)
        names = {r[1] for r in store.db.conn.execute("PRAGMA index_list(investigations)")}
        assert browse.INDEX_NAME in names
        rows = db["rows"][SYNTH]
        hist = [0] * 10
        for r in rows:
            if outcome(r) != "error":
                hist[min(9, max(0, int(r["score"] * 10)))] += 1
        assert browse.score_histogram(store, SYNTH) == hist
        # a label filter of more ids than SQLite allows variables is still one parameter
        ids = [f"nope-{i}" for i in range(40_000)] + sorted(db["meta"])[:3]
        want = sum(1 for r in rows if r["label_id"] in ids[-3:])
        assert browse.count(store, SYNTH, browse.Filters(), ids) == want
        assert len(browse.page(store, SYNTH, browse.Filters(), ids, limit=500)) == want
    finally:
        store.close()


def test_a_running_run_shows_its_live_summary(db: dict[str, Any]) -> None:
    from evaluator_agent.results.runs import summarize

    r = client(db).get(f"/ui/runs/{LIVE}")
    assert r.status_code == 200 and 'data-testid="run-status">running' in r.text
    assert re.search(r'data-testid="run-n">5<', r.text) and count_of(r.text) == (5, 5)
    # a private label set is "scores" whatever the server's policy
    assert 'data-testid="disclosure-note"' in r.text and 'id="filter-segment"' not in r.text
    inv = db["rows"][LIVE][0]
    page = client(db).get(f"/ui/runs/{LIVE}/investigations/{inv['label_id']}/{inv['attempt']}")
    assert page.status_code == 200 and 'data-testid="ground-truth-withheld"' in page.text
    store = Store(db["path"])
    try:  # the live summary from the narrow columns is the summary of the whole rows
        for rid, rows in db["rows"].items():
            meta = db["stored"][rid]["manifest"]["label_meta"]
            assert summarize(browse.summary_rows(store, rid), meta) == summarize(rows, meta), rid
    finally:
        store.close()


def test_segments_are_withheld_under_the_scores_policy(db: dict[str, Any]) -> None:
    c = client(db, "scores")
    seg = db["meta"][sorted(db["meta"])[0]]["segment"]
    r = c.get(f"/ui/runs/{SYNTH}?segment={seg}")
    assert r.status_code == 200
    assert 'id="filter-segment"' not in r.text and 'data-testid="chart-segment"' not in r.text
    assert 'data-testid="segments-withheld"' in r.text and 'data-testid="disclosure-note"' in r.text
    assert count_of(r.text) == (N_SYNTH, N_SYNTH)  # the segment filter is no oracle either
    assert 'data-testid="chart-tier"' in r.text and 'id="filter-tier"' in r.text
    assert ">Segment<" not in r.text


# ---------------------------------------------------------------------- tenancy, escaping


def test_another_keys_run_is_not_found(db: dict[str, Any]) -> None:
    c = signed_in(db, KEY)
    hostile = db["runs"]["hostile"]
    assert c.get(f"/ui/runs/{db['runs']['good']}").status_code == 200
    assert c.get(f"/ui/runs/{SYNTH}").status_code == 200  # nobody's run: everyone's
    r = c.get(f"/ui/runs/{hostile}")
    assert r.status_code == 404 and "alert" not in r.text
    inv = db["rows"][hostile][0]
    assert c.get(f"/ui/runs/{hostile}/investigations/{inv['label_id']}/{inv['attempt']}").status_code == 404
    assert c.get(f"/ui/runs/{hostile[:8]}").status_code == 404
    other = signed_in(db, OTHER_KEY)
    assert other.get(f"/ui/runs/{hostile}").status_code == 200
    assert other.get(f"/ui/runs/{db['runs']['good']}").status_code == 404
    assert client(db, keys=(KEY,)).get(f"/ui/runs/{SYNTH}").status_code == 303  # not signed in


def test_the_hostile_target_name_is_only_ever_text(db: dict[str, Any]) -> None:
    c = signed_in(db, OTHER_KEY)
    hostile = db["runs"]["hostile"]
    inv = db["rows"][hostile][0]
    for url in (f"/ui/runs/{hostile}", f"/ui/runs/{hostile}/investigations/{inv['label_id']}/{inv['attempt']}"):
        r = c.get(url)
        assert r.status_code == 200, url
        assert HOSTILE not in r.text and "<script>alert" not in r.text and "<img src=x" not in r.text
        assert esc(HOSTILE) in r.text, url


# ---------------------------------------------------------------------- the investigation page


def _inv(db: dict[str, Any], role: str = "good2", passed: bool = True) -> dict[str, Any]:
    return next(r for r in db["rows"][db["runs"][role]] if r["passed"] == passed and r["diagnosis"])


def test_the_timeline_shows_each_turn_and_tool_call_with_its_arguments(db: dict[str, Any]) -> None:
    inv = _inv(db)
    calls = db["calls"][inv["id"]]
    assert calls
    r = client(db).get(f"/ui/runs/{inv['run_id']}/investigations/{inv['label_id']}/{inv['attempt']}")
    assert r.status_code == 200
    blocks = re.findall(r'<details class="call[^"]*" id="call-\d+" data-testid="tool-call".*?</details>', r.text, re.S)
    assert len(blocks) == len(calls)
    for block, call in zip(blocks, calls, strict=True):
        assert f'data-testid="tool-name">{esc(call["name"])}<' in block
        args = json.dumps(call["arguments"], ensure_ascii=False, separators=(",", ":"))
        short = html.unescape(re.search(r'data-testid="tool-args">(.*?)</code>', block, re.S).group(1))
        assert short == args or (len(args) > 160 and short[:-1] == args[:159])
        full = html.unescape(re.search(r'data-testid="tool-args-full">(.*?)</pre>', block, re.S).group(1))
        assert json.loads(full) == call["arguments"]
    assert r.text.count('data-testid="turn"') == inv["turns"]
    assert 'data-testid="briefing-prompt"' in r.text
    label = load_labelset("smoke").get(inv["label_id"])
    assert esc(label.task.trigger.title) in r.text
    assert r.text.index('data-testid="briefing"') < r.text.index('data-testid="turn"') < r.text.index('data-testid="diagnosis"')


def test_the_scores_policy_withholds_truth_explanation_and_diagnosis(db: dict[str, Any]) -> None:
    inv = _inv(db)
    url = f"/ui/runs/{inv['run_id']}/investigations/{inv['label_id']}/{inv['attempt']}"
    truth = load_labelset("smoke").get(inv["label_id"]).ground_truth
    r = client(db, "scores").get(url)
    assert r.status_code == 200
    for hook in ("ground-truth-withheld", "explanation-withheld", "diagnosis-withheld", "disclosure-note"):
        assert f'data-testid="{hook}"' in r.text, hook
    assert r.text.count("withheld by the disclosure policy") >= 3
    assert 'data-testid="ground-truth"' not in r.text and 'data-testid="truth-root-cause"' not in r.text and 'data-testid="diagnosis-candidates"' not in r.text
    assert esc(inv["explanation"]) not in r.text and "Top candidate" not in r.text
    assert esc(inv["diagnosis"]["summary"]) not in r.text
    assert "truth_path" not in r.text and "root_cause_ranks" not in r.text and "predicted_path" not in r.text
    assert f">{truth.mechanism}<" not in r.text
    # sub-score numbers and the safe details stay
    assert 'data-testid="subscores"' in r.text and "pass_threshold" in r.text

    f = client(db, "full").get(url)
    assert f.status_code == 200
    assert 'data-testid="ground-truth-withheld"' not in f.text and 'data-testid="ground-truth"' in f.text
    assert "withheld by the disclosure policy" not in f.text
    cause = re.search(r'data-testid="truth-root-cause">(.*?)</dd>', f.text, re.S)
    assert cause and all(esc(rc.entity) in cause.group(1) for rc in truth.root_causes)
    assert f'data-testid="truth-mechanism">{truth.mechanism}<' in f.text
    assert esc(inv["explanation"]) in f.text
    assert esc(inv["diagnosis"]["summary"]) in f.text and 'data-testid="diagnosis-candidates"' in f.text
    assert "truth_path" in f.text
    for e in truth.causal_chain:
        assert f"<li>{esc(e)}</li>" in f.text


def test_a_label_gone_from_its_set_is_shown_by_what_the_run_froze(db: dict[str, Any], tmp_path: Path) -> None:
    inv = _inv(db)
    c = client(db, "full", labelsets_root=tmp_path)  # no label sets here
    r = c.get(f"/ui/runs/{inv['run_id']}/investigations/{inv['label_id']}/{inv['attempt']}")
    assert r.status_code == 200
    assert "is not available here" in r.text and 'data-testid="briefing-prompt"' not in r.text
    frozen = db["stored"][inv["run_id"]]["manifest"]["label_meta"][inv["label_id"]]
    assert f"<b>{frozen['mechanism']}</b>" in r.text and f"tier {frozen['tier']}" in r.text
    assert c.get(f"/ui/runs/{inv['run_id']}").status_code == 200  # the run page needs no label set


def test_unknown_investigations_are_not_found(db: dict[str, Any]) -> None:
    c = client(db)
    rid = db["runs"]["good"]
    lab = db["rows"][rid][0]["label_id"]
    for url in (f"/ui/runs/{rid}/investigations/{lab}/99", f"/ui/runs/{rid}/investigations/lbl_nope/1",
                f"/ui/runs/{rid}/investigations/{lab}/99999999999999999999999", f"/ui/runs/{rid}/investigations/{'x' * 5000}/1",
                f"/ui/runs/{rid}/investigations/%3Cscript%3Ealert(1)%3C%2Fscript%3E/1", f"/ui/runs/{rid}/investigations/{lab}/one",
                "/ui/runs/run_nope", "/ui/runs/run_nope/investigations/x/1"):
        r = c.get(url)
        assert r.status_code == 404, url
        assert "<script>alert" not in r.text


def test_bad_query_parameters_give_a_sane_page(db: dict[str, Any]) -> None:
    c = client(db)
    base = f"/ui/runs/{SYNTH}"
    first = table(c.get(base).text)
    for qs in ("page=-1", "page=abc", "page=1e9", "page=" + "9" * 400, "sort=evil", "sort=score;DROP TABLE runs",
               "dir=sideways", "outcome=<script>alert(1)</script>", "segment=" + "x" * 10_000, "tier=" + "é" * 300,
               "end_reason=%00%FF", "sort=label&dir=asc&page=1", "segment=&tier=&outcome=&end_reason="):
        r = c.get(f"{base}?{qs}")
        assert r.status_code == 200, qs
        assert "<script>alert" not in r.text and "x" * 200 not in r.text
        assert count_of(r.text) == (N_SYNTH, N_SYNTH), qs
        assert table(r.text) == first, qs
    r = c.get(f"{base}?sort=evil&outcome=maybe")
    assert 'data-testid="ignored-params"' in r.text and "outcome" in r.text
    assert c.get(f"/ui/runs/{db['runs']['good']}?page=" + "1" * 2000).status_code in (200, 414, 431)
