"""The compare, labels and difficulty pages of the web interface, in process (TestClient) over a
results database of real runs (tests/ui_data.py): tenancy, disclosure, escaping, bad params."""

from __future__ import annotations

import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.testclient import TestClient

from evaluator_agent.core.labels import labelsets_dir, load_labelset, snapshots_dir
from evaluator_agent.results.analysis import fit_difficulty
from evaluator_agent.results.store import Store
from evaluator_agent.telemetry.world import load_snapshot_dict
from evaluator_agent.web.app import UIConfig, ui_app
from evaluator_agent.web.pages import _glance
from evaluator_agent.web.pages import difficulty as difficulty_page
from tests.ui_data import HOSTILE, KEY, OTHER_KEY, build_ui_db

RAW_HOSTILE = ("<script>alert", "onerror=alert(1)>", "<img src=x")
EMPTY_CORE_RUN = "run_emptycore0001"


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    path = tmp_path_factory.mktemp("ui_pages") / "results.db"
    runs = build_ui_db(path)
    store = Store(path)  # a run of another label set, with nothing in common with the others
    store.create_run(EMPTY_CORE_RUN, {"target": {"name": "empty", "version": "1"}, "labelset": {"name": "core", "hash": "x"},
                                      "options": {}, "label_ids": []})
    store.close()
    return path, runs


def _client(path: Path, *, keys: bool = False, policy: str = "full", **config: object) -> TestClient:
    app = ui_app(path, api_keys=[KEY, OTHER_KEY] if keys else (), secret="test-secret",
                 config=UIConfig(disclosure=policy, **config))  # type: ignore[arg-type]
    client = TestClient(Starlette(routes=[Mount("/ui", app=app)]), base_url="http://testserver")
    if keys:
        r = client.post("/ui/signin", data={"key": KEY, "next": "/ui/runs"}, follow_redirects=False)
        assert r.status_code == 303
    return client


@pytest.fixture(scope="module")
def open_full(db: tuple[Path, dict[str, str]]) -> TestClient:
    return _client(db[0])


@pytest.fixture(scope="module")
def owner(db: tuple[Path, dict[str, str]]) -> TestClient:
    """Signed in with KEY: sees its own runs and the unowned one, not OTHER_KEY's hostile run."""
    return _client(db[0], keys=True)


@pytest.fixture(scope="module")
def open_scores(db: tuple[Path, dict[str, str]]) -> TestClient:
    return _client(db[0], policy="scores")


class _Collect(HTMLParser):
    """Elements by data-testid, select options, links and SVG service nodes of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.testids: set[str] = set()
        self.options: dict[str, list[str]] = {}
        self.links: list[str] = []
        self.services: list[tuple[str, str]] = []
        self.rows: dict[str, list[str]] = {}
        self._select: str | None = None
        self._table: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if a.get("data-testid"):
            self.testids.add(str(a["data-testid"]))
        if tag == "select":
            self._select = str(a.get("name"))
            self.options[self._select] = []
        if tag == "option" and self._select and a.get("value"):
            self.options[self._select].append(str(a["value"]))
        if tag == "table":
            self._table = a.get("data-testid")
            if self._table:
                self.rows[self._table] = []
        if tag == "tr" and self._table:
            key = a.get("data-run") or a.get("data-label")
            if key:
                self.rows[self._table].append(str(key))
        if tag == "a" and a.get("href"):
            self.links.append(str(a["href"]))
        if tag == "g" and a.get("data-service"):
            self.services.append((str(a["data-service"]), str(a.get("class"))))

    def handle_endtag(self, tag: str) -> None:
        if tag == "select":
            self._select = None
        if tag == "table":
            self._table = None


def parse(html: str) -> _Collect:
    p = _Collect()
    p.feed(html)
    return p


def _safe(html: str) -> None:
    """No hostile markup reaches a page raw, and nothing inline the CSP would block."""
    for raw in RAW_HOSTILE:
        assert raw not in html
    assert " style=" not in html
    assert re.findall(r"<script[^>]*>", html) == ['<script src="/ui/static/ui.js" defer>']


def _get(client: TestClient, url: str, status: int = 200) -> str:
    r = client.get(url, follow_redirects=False)
    assert r.status_code == status, (url, r.status_code, r.text[-800:])
    _safe(r.text)
    return r.text


# ---------------------------------------------------------------------- compare


def test_compare_form_lists_only_visible_runs(owner: TestClient, open_full: TestClient, db: tuple[Path, dict[str, str]]) -> None:
    runs = db[1]
    page = parse(_get(owner, "/ui/compare"))
    assert {"compare-form", "compare-a", "compare-b", "compare-submit"} <= page.testids
    for side in ("a", "b"):
        assert set(page.options[side]) == {runs["good"], runs["bad"], runs["good2"], EMPTY_CORE_RUN}
    # newest first
    assert page.options["a"][0] == EMPTY_CORE_RUN and page.options["a"][-1] == runs["good"]
    html = _get(open_full, "/ui/compare")
    assert runs["hostile"] in parse(html).options["a"]
    assert "&lt;script&gt;alert(&#34;pwn&#34;)&lt;/script&gt;" in html  # the hostile name, as text


def test_compare_shows_verdict_flips_and_links(owner: TestClient, db: tuple[Path, dict[str, str]]) -> None:
    runs = db[1]
    smoke = [lb.id for lb in load_labelset("smoke").labels]
    html = _get(owner, f"/ui/compare?a={runs['bad']}&b={runs['good']}")
    page = parse(html)
    assert 'data-verdict="improvement"' in html and ">improved<" in html
    assert {"verdict", "delta", "mcnemar", "flips-newly-passing", "tiers", "cost", "segments"} <= page.testids
    assert sorted(page.rows["flips-newly-passing"]) == sorted(smoke)
    for lid in smoke:  # each flip links both investigations and the label
        assert f"/ui/runs/{runs['bad']}/investigations/{lid}/1" in page.links
        assert f"/ui/runs/{runs['good']}/investigations/{lid}/1" in page.links
        assert f"/ui/labels/smoke/{lid}" in page.links
    assert "+100.0 pts" in html and "McNemar" in html

    back = _get(owner, f"/ui/compare?a={runs['good']}&b={runs['bad']}")
    assert 'data-verdict="regression"' in back and ">regressed<" in back
    assert sorted(parse(back).rows["flips-newly-failing"]) == sorted(smoke)

    same = _get(owner, f"/ui/compare?a={runs['good']}&b={runs['good2']}")  # two methodical runs
    assert 'data-verdict="inconclusive"' in same and "no significant change" in same
    assert f"/ui/runs/{runs['good2']}/investigations/{smoke[0]}/2" in parse(same).links  # 2 attempts


def test_compare_tenancy_and_bad_params(owner: TestClient, db: tuple[Path, dict[str, str]]) -> None:
    runs = db[1]
    for a, b in ((runs["bad"], runs["hostile"]), (runs["hostile"], runs["good"]), (runs["good"], "run_nope"),
                 ("x" * 5000, runs["good"]), ("../../etc/passwd", runs["good"])):
        html = _get(owner, f"/ui/compare?a={a}&b={b}", 404)
        assert "alert" not in html
    _get(owner, f"/ui/compare?a={runs['good']}&b={runs['bad']}&margin=abc", 400)
    _get(owner, f"/ui/compare?a={runs['good']}&b={runs['bad']}&margin=2", 400)
    # one side only: the form, with it chosen
    page = parse(_get(owner, f"/ui/compare?a={runs['good']}"))
    assert "compare-form" in page.testids and "verdict" not in page.testids


def test_compare_runs_without_shared_labels_is_a_400(owner: TestClient, db: tuple[Path, dict[str, str]]) -> None:
    html = _get(owner, f"/ui/compare?a={db[1]['good']}&b={EMPTY_CORE_RUN}", 400)
    assert "cannot be compared" in html and "share no labels" in html


def test_compare_under_scores_withholds_segments(open_scores: TestClient, db: tuple[Path, dict[str, str]]) -> None:
    runs = db[1]
    html = _get(open_scores, f"/ui/compare?a={runs['bad']}&b={runs['good']}")
    page = parse(html)
    assert "segments-withheld" in page.testids and "segments" not in page.testids
    assert "tiers" in page.testids  # tier is not the answer
    segments = {lb.taxonomy.segment for lb in load_labelset("smoke").labels}
    for seg in segments:
        assert f">{seg}<" not in html and f"{seg} (base)" not in html


# ---------------------------------------------------------------------- labels


def test_labelsets_list(open_full: TestClient) -> None:
    html = _get(open_full, "/ui/labels")
    page = parse(html)
    assert "labelsets" in page.testids
    assert "/ui/labels/smoke" in page.links and "/ui/labels/core" in page.links
    n = len(load_labelset("smoke").labels)
    row = re.search(r'data-labelset="smoke">.*?</tr>', html, re.S)
    assert row and f'<td class="num">{n}' in row.group(0)


def _facets(html: str) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for block in re.findall(r'<div class="facet" data-facet="([a-z_]+)">(.*?)</div>', html, re.S):
        out[block[0]] = {v: int(c) for v, c in re.findall(r'data-value="([^"]+)" data-count="(\d+)"', block[1])}
    return out


def test_labelset_browse_and_filter_counts(open_full: TestClient) -> None:
    labels = load_labelset("smoke").labels
    html = _get(open_full, "/ui/labels/smoke")
    page = parse(html)
    assert {"label-filters", "filter-tier", "filter-segment", "filter-mechanism", "labels-table", "facets"} <= page.testids
    assert sorted(page.rows["labels-table"]) == sorted(lb.id for lb in labels)
    facets = _facets(html)
    tiers = {t: sum(1 for lb in labels if lb.difficulty.tier == t) for t in {lb.difficulty.tier for lb in labels}}
    assert facets["tier"] == tiers
    assert sum(facets["segment"].values()) == len(labels)

    tier = max(tiers, key=lambda t: tiers[t])
    html = _get(open_full, f"/ui/labels/smoke?tier={tier}")
    chosen = [lb for lb in labels if lb.difficulty.tier == tier]
    assert sorted(parse(html).rows["labels-table"]) == sorted(lb.id for lb in chosen)
    facets = _facets(html)
    assert facets["tier"] == tiers  # a facet's own counts ignore its own filter
    seg = {}
    for lb in chosen:
        seg[lb.taxonomy.segment] = seg.get(lb.taxonomy.segment, 0) + 1
    assert facets["segment"] == seg
    one = chosen[0]
    html = _get(open_full, f"/ui/labels/smoke?tier={tier}&mechanism={one.taxonomy.mechanism}")
    assert one.id in parse(html).rows["labels-table"]
    assert f"{len([lb for lb in chosen if lb.taxonomy.mechanism == one.taxonomy.mechanism])} of {len(labels)}" in html


def test_labelset_under_scores_shows_no_taxonomy(open_scores: TestClient) -> None:
    labels = load_labelset("smoke").labels
    html = _get(open_scores, "/ui/labels/smoke")
    page = parse(html)
    assert "taxonomy-withheld" in page.testids and "filter-mechanism" not in page.testids
    for lb in labels:
        assert lb.taxonomy.mechanism not in html
    for key in ("mechanism", "segment", "problem_category"):  # filtering by it would tell it too
        value = getattr(labels[0].taxonomy, key)
        _get(open_scores, f"/ui/labels/smoke?{key}={value}", 400)
    _get(open_scores, f"/ui/labels/smoke?tier={labels[0].difficulty.tier}")


@pytest.mark.parametrize("url,status", [
    ("/ui/labels/nope", 404),
    ("/ui/labels/SMOKE", 404),
    ("/ui/labels/%2e%2e", 404),
    ("/ui/labels/..%2F..%2Fetc", 404),
    ("/ui/labels/smoke%2F..%2F..", 404),
    ("/ui/labels/" + "a" * 3000, 404),
    ("/ui/labels/smoke/lbl_0000000000", 404),
    ("/ui/labels/smoke/..", 200),  # the client resolves the dot segment: /ui/labels/
    ("/ui/labels/smoke/%2e%2e%2f%2e%2e%2flabelset.json", 404),
    ("/ui/labels/smoke/lbl_" + "0" * 5000, 404),
    ("/ui/labels/core/lbl_0ce1c089a1", 404),  # a smoke label, not in core
    ("/ui/labels/smoke?tier=impossible", 400),
    ("/ui/labels/smoke?tier=%3Cscript%3Ealert(1)%3C/script%3E", 400),
    ("/ui/labels/smoke?segment=" + "x" * 5000, 400),
    ("/ui/labels/smoke?page=abc", 200),
    ("/ui/labels/smoke?page=-5", 200),
    ("/ui/labels/smoke?page=99999999999999999999", 200),
])
def test_label_pages_bad_params(open_full: TestClient, url: str, status: int) -> None:
    r = open_full.get(url, follow_redirects=False)
    assert r.status_code == status, (url, r.status_code)
    _safe(r.text)


def _paged(label_id: str) -> str:
    lb = load_labelset("smoke").get(label_id)
    world = load_snapshot_dict(lb.world.snapshot, snapshots_dir())
    monitor = next(m for m in world["monitors"] if m["id"] == lb.task.trigger.monitor_id)
    return monitor["tags"]["service"]


def test_label_page_history_and_world(owner: TestClient, open_full: TestClient, db: tuple[Path, dict[str, str]]) -> None:
    runs = db[1]
    lb = load_labelset("smoke").labels[0]
    html = _get(owner, f"/ui/labels/smoke/{lb.id}")
    page = parse(html)
    history = page.rows["history"]
    assert set(history) == {runs["good"], runs["bad"], runs["good2"]}  # not OTHER_KEY's hostile run
    assert history.count(runs["good2"]) == 2  # one row per attempt
    assert f"/ui/runs/{runs['good2']}/investigations/{lb.id}/2" in page.links
    assert runs["hostile"] not in html
    # the world: a service map with the paging service highlighted, and 2-4 charts
    paged = _paged(lb.id)
    assert "service-map" in page.testids and "metric-charts" in page.testids
    assert (paged, "svc paged") in page.services
    assert [n for n, c in page.services if c == "svc paged"] == [paged]
    assert 2 <= html.count('data-testid="metric-chart"') <= 4
    assert len(page.services) <= _glance.MAX_NODES
    assert lb.task.trigger.title in html.replace("&#34;", '"').replace("&quot;", '"')

    html = _get(open_full, f"/ui/labels/smoke/{lb.id}")  # open: every run, the hostile one as text
    assert runs["hostile"] in parse(html).rows["history"]
    assert "&lt;script&gt;alert(&#34;pwn&#34;)&lt;/script&gt;" in html


def test_label_ground_truth_only_under_full(open_full: TestClient, open_scores: TestClient, db: tuple[Path, dict[str, str]],
                                            tmp_path: Path) -> None:
    lb = next(lb for lb in load_labelset("smoke").labels if not lb.ground_truth.no_fault)
    full = _get(open_full, f"/ui/labels/smoke/{lb.id}")
    assert "ground-truth" in parse(full).testids
    assert lb.ground_truth.mechanism in full
    assert all(h.entity in full for h in lb.ground_truth.must_not_blame)

    scores = _get(open_scores, f"/ui/labels/smoke/{lb.id}")
    page = parse(scores)
    assert "ground-truth-withheld" in page.testids and "ground-truth" not in page.testids
    assert lb.ground_truth.mechanism not in scores and "Must not blame" not in scores
    assert (lb.family or "family") not in scores and "Chain length" not in scores

    # a private label set: withheld whatever the policy
    root = tmp_path / "labelsets"
    shutil.copytree(labelsets_dir() / "smoke", root / "smoke")
    info = json.loads((root / "smoke" / "labelset.json").read_text())
    (root / "smoke" / "labelset.json").write_text(json.dumps({**info, "private": True}))
    private = _client(db[0], labelsets_root=root)
    html = _get(private, f"/ui/labels/smoke/{lb.id}")
    assert "ground-truth-withheld" in parse(html).testids and lb.ground_truth.mechanism not in html
    assert "private" in _get(private, "/ui/labels")


def test_glance_cache_is_bounded() -> None:
    assert _glance.glance.cache_info().maxsize == _glance.CACHE <= 4


def test_label_page_without_snapshot(db: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    client = _client(db[0], snapshots=tmp_path)  # an empty snapshots folder
    lb = load_labelset("smoke").labels[1]
    page = parse(_get(client, f"/ui/labels/smoke/{lb.id}"))
    assert "world-missing" in page.testids and "service-map" not in page.testids


# ---------------------------------------------------------------------- difficulty


def test_difficulty_without_fit_fits_live(owner: TestClient, open_full: TestClient) -> None:
    html = _get(open_full, "/ui/difficulty")
    page = parse(html)
    assert 'data-source="live"' in html and "proctor difficulty --db" in html
    assert {"difficulty-map", "targets", "label-difficulty"} <= page.testids
    assert "&lt;script&gt;alert(&#34;pwn&#34;)&lt;/script&gt;" in html  # the hostile target, escaped
    assert sorted(page.rows["label-difficulty"]) == sorted(lb.id for lb in load_labelset("smoke").labels)
    assert f"/ui/labels/smoke/{page.rows['label-difficulty'][0]}" in page.links

    mine = _get(owner, "/ui/difficulty")  # the live fit is over the viewer's runs only
    assert "alert" not in mine and "methodical" in mine and "random_guess" in mine


def test_difficulty_live_fit_skipped_when_large(open_full: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(difficulty_page, "LIVE_MAX_CELLS", 2)
    html = _get(open_full, "/ui/difficulty")
    assert 'data-source="none"' in html and "too many for a live fit" in html
    assert "not-fitted" in parse(html).testids


def test_difficulty_nothing_to_fit(tmp_path: Path) -> None:
    Store(tmp_path / "empty.db").close()
    html = _get(_client(tmp_path / "empty.db"), "/ui/difficulty")
    assert "not-fitted" in parse(html).testids and "proctor difficulty --db" in html


def test_difficulty_with_a_stored_fit(db: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    path = tmp_path / "fitted.db"
    shutil.copy(db[0], path)
    fit_difficulty(Store(path))
    open_client = _client(path)
    html = _get(open_client, "/ui/difficulty")
    page = parse(html)
    assert 'data-source="stored"' in html and "fit-live" in page.testids
    assert "&lt;script&gt;alert(&#34;pwn&#34;)&lt;/script&gt;" in html
    assert len(page.rows["label-difficulty"]) == len(load_labelset("smoke").labels)
    assert 'data-source="live"' in _get(open_client, "/ui/difficulty?fit=live")
    _get(open_client, "/ui/difficulty?flagged=1")

    owner_client = _client(path, keys=True)  # another key's targets are not listed
    mine = _get(owner_client, "/ui/difficulty")
    assert "alert" not in mine and "1 target of runs you cannot see" in mine
    # the label page shows the fitted difficulty
    lb = load_labelset("smoke").labels[0]
    assert "logits over" in _get(open_client, f"/ui/labels/smoke/{lb.id}")


@pytest.mark.parametrize("q", ["fit=x", "fit=" + "l" * 5000, "flagged=2", "flagged=<script>"])
def test_difficulty_bad_params(open_full: TestClient, q: str) -> None:
    _get(open_full, f"/ui/difficulty?{q}", 400)


def test_signed_out_is_sent_to_sign_in(db: tuple[Path, dict[str, str]]) -> None:
    app = ui_app(db[0], api_keys=[KEY], secret="s", config=UIConfig())
    client = TestClient(Starlette(routes=[Mount("/ui", app=app)]), base_url="http://testserver")
    for url in ("/ui/compare", "/ui/labels", "/ui/labels/smoke", "/ui/difficulty"):
        r = client.get(url, follow_redirects=False)
        assert r.status_code == 303 and "/ui/signin" in r.headers["location"]


def test_hostile_name_not_in_a_signed_in_owner_pages(owner: TestClient) -> None:
    for url in ("/ui/compare", "/ui/labels", "/ui/labels/smoke", "/ui/difficulty"):
        assert HOSTILE not in _get(owner, url)
