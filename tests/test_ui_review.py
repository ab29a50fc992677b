"""The web interface's review queue (``web/pages/review.py``), in process: a real queue of
candidates drafted from feedback on the smoke label set's generated worlds and validated by the
real validator (grounding and lint, no second investigation: fast), served by the real app
mounted at ``/ui`` as ``proctor serve`` mounts it.

Covered: the table and its filters, one candidate (scores with reasons, checks, flags, evidence,
history; a hostile claim only escaped), accept (into a set under a temporary labelsets root,
provenance naming the signed-in principal, whatever the form claims), a checked edit (refused:
nothing changes), reject (a reason required), CSRF (missing or wrong token: 403, nothing
changes), a second principal acting on the shared queue, the open UI's reviewer field, blocking
flags needing an acknowledgement, and no queue configured (no link, 404 with how to set one).
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.testclient import TestClient

from evaluator_agent.core.keys import principal_of
from evaluator_agent.core.labels import Label, load_labelset
from evaluator_agent.labelops.drafting import draft_candidate
from evaluator_agent.labelops.promote import read_provenance
from evaluator_agent.labelops.queue import Queue
from evaluator_agent.labelops.records import parse_record
from evaluator_agent.labelops.sources import to_source
from evaluator_agent.labelops.validate import Validator
from evaluator_agent.results.store import Store
from evaluator_agent.web.app import UIConfig, ui_app

KEY, OTHER_KEY = "review-key-1", "review-key-2"
OWNER, OTHER = principal_of(KEY), principal_of(OTHER_KEY)
SECRET = "review-test-secret"
HOSTILE_CLAIM = "<script>alert(1)</script> web-bff was slow after the deploy"
HOSTILE_EXCERPT = '<img src=x onerror="alert(2)">deploy 4.2 of the service'


# ---------------------------------------------------------------------- a queue over smoke worlds


def feedback_record(lb: Label, kind: str, verdict: str, *, diag: dict[str, Any] | None = None,
                    correction: dict[str, Any] | None = None, comment: str = "",
                    tool_queries: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A feedback record on the world of a generated label (tests/test_validate.py's), with the
    agent's tool queries when given."""
    from tests.test_validate import _record

    rec = _record(lb, kind, verdict, diag=diag, correction=correction, comment=comment)
    if tool_queries:
        rec["investigation"]["tool_queries"] = tool_queries
    return rec


def build_review_queue(path: str | Path) -> dict[str, str]:
    """A queue of candidates by role: ``right`` (validated, with the agent's tool queries),
    ``corrected`` (validated), ``hostile`` (a vague claim holding markup, left for review),
    ``contradictory`` (a blocking flag that stays), ``fresh`` (never validated)."""
    labels = [lb for lb in load_labelset("smoke").labels if not lb.ground_truth.no_fault]
    a, b, c = labels[0], labels[1], labels[2]

    def right(lb: Label) -> dict[str, Any]:
        return {"root_causes": [{"entity": lb.ground_truth.root_causes[0].entity, "mechanism": lb.ground_truth.mechanism}]}

    def blame(lb: Label) -> dict[str, Any]:
        return {"root_causes": [{"entity": lb.ground_truth.must_not_blame[0].entity, "mechanism": "bad_release"}]}

    queries = [{"tool": "get_events", "arguments": {"query": f"service:{a.ground_truth.root_causes[0].entity}"},
                "ok": True, "result_excerpt": HOSTILE_EXCERPT},
               {"tool": "query_metrics", "arguments": {"query": "avg:latency{service:web-bff}"}, "ok": False}]
    records = {
        "right": feedback_record(a, "right", "right", diag=right(a), tool_queries=queries),
        "corrected": feedback_record(b, "wrong-corrected", "wrong", diag=blame(b), correction={
            "entity": b.ground_truth.root_causes[0].entity, "mechanism": b.ground_truth.mechanism}),
        "hostile": feedback_record(a, "vague", "wrong", diag=blame(a), comment=HOSTILE_CLAIM),
        "contradictory": feedback_record(b, "contradictory", "wrong", diag=blame(b), correction={
            "entity": b.ground_truth.must_not_blame[0].entity, "mechanism": "bad_release"}),
    }
    ids: dict[str, str] = {}
    with Queue(path) as q:
        for role, rec in records.items():
            cand, new = q.add(draft_candidate(to_source(parse_record(rec))))
            assert new
            ids[role] = cand.id
        Validator(threshold=0.7, lint=True).run(q)
        cand, _ = q.add(draft_candidate(to_source(parse_record(feedback_record(c, "right", "right", diag=right(c))))))
        ids["fresh"] = cand.id
    return ids


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    d = tmp_path_factory.mktemp("review")
    ids = build_review_queue(d / "queue.db")
    Store(d / "results.db").close()
    with Queue(d / "queue.db") as q:
        cands = {role: q.get(cid) for role, cid in ids.items()}
    return {"dir": d, "ids": ids, "cands": cands}


# ---------------------------------------------------------------------- the app


@dataclass
class Env:
    client: TestClient
    queue: Path
    root: Path
    ids: dict[str, str]

    def cand(self, role: str) -> Any:
        with Queue(self.queue) as q:
            return q.get(self.ids[role])

    def events(self, role: str) -> list[dict[str, Any]]:
        with Queue(self.queue) as q:
            return q.events(self.ids[role])

    def page(self, role: str) -> str:
        r = self.client.get(f"/ui/review/{self.ids[role]}")
        assert r.status_code == 200, r.text
        return r.text

    def post(self, role: str, action: str, data: dict[str, str], csrf: str | None = "page") -> Any:
        if csrf == "page":
            csrf = token(self.page(role))
        body = {**data, **({"csrf": csrf} if csrf is not None else {})}
        return self.client.post(f"/ui/review/{self.ids[role]}/{action}", data=body, follow_redirects=False)


def make_app(results: Path, config: UIConfig, keys: tuple[str, ...] = (KEY, OTHER_KEY)) -> Starlette:
    return Starlette(routes=[Mount("/ui", app=ui_app(results, api_keys=keys, secret=SECRET, config=config))])


def signed_in(app: Starlette, key: str | None) -> TestClient:
    client = TestClient(app, base_url="http://testserver")
    if key is not None:
        r = client.post("/ui/signin", data={"key": key, "next": "/ui/review"}, follow_redirects=False)
        assert r.status_code == 303, r.text
    return client


@pytest.fixture
def env(built: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Env:
    monkeypatch.delenv("PROCTOR_FEEDBACK_LABELSET", raising=False)
    queue = tmp_path / "queue.db"
    shutil.copy(built["dir"] / "queue.db", queue)
    root = tmp_path / "labelsets"
    app = make_app(built["dir"] / "results.db", UIConfig(queue=queue, labelsets_root=root))
    return Env(signed_in(app, KEY), queue, root, built["ids"])


def token(html: str) -> str:
    m = re.search(r'name="csrf" value="([^"]+)"', html)
    assert m, "no CSRF token in the page"
    return m.group(1)


def rows(html: str) -> list[str]:
    return re.findall(r'data-testid="candidate-row" data-id="([^"]+)"', html)


def error_of(html: str) -> str:
    m = re.search(r'<span class="msg">(.*?)</span>', html, re.S)
    assert m, "no error shown"
    return m.group(1)


def never_raw(html: str) -> None:
    assert "<script>alert" not in html and "<img src=x" not in html
    assert " style=" not in html and "onerror=\"alert" not in html


# ---------------------------------------------------------------------- the table


def test_list_filters_and_stats(env: Env, built: dict[str, Any]) -> None:
    r = env.client.get("/ui/review")
    assert r.status_code == 200
    never_raw(r.text)
    assert 'href="/ui/review"' in r.text  # the nav link
    assert sorted(rows(r.text)) == sorted(env.ids.values())  # all pending
    stats = re.search(r'data-testid="review-stats".*?</section>', r.text, re.S).group(0)
    assert re.search(r'data-testid="stat-pending">5<', stats) and re.search(r'data-testid="stat-accepted">0<', stats)
    assert re.search(r'data-testid="stat-validated">80%<', stats)  # 4 of 5 validated
    assert "n 4" in stats and re.search(r'data-testid="stat-seconds">[0-9.]+ s<', stats)
    assert "<meter" in r.text

    confident = {role for role, c in built["cands"].items() if c.confidence is not None and c.confidence >= 0.7}
    assert confident and confident != set(env.ids) - {"fresh"}
    r = env.client.get("/ui/review", params={"min_confidence": "0.7"})
    assert set(rows(r.text)) == {env.ids[role] for role in confident}
    r = env.client.get("/ui/review", params={"min_confidence": "0"})
    assert env.ids["fresh"] not in rows(r.text)  # a bound leaves out the unvalidated, as the CLI does

    r = env.client.get("/ui/review", params={"q": built["cands"]["contradictory"].feedback_id.upper()})
    assert rows(r.text) == [env.ids["contradictory"]]
    r = env.client.get("/ui/review", params={"q": "web-bff average"})
    assert env.ids["right"] in rows(r.text)
    assert rows(env.client.get("/ui/review", params={"status": "accepted"}).text) == []
    r = env.client.get("/ui/review", params={"status": "all", "sort": "confidence"})
    order = rows(r.text)
    confs = [built["cands"][next(k for k, v in env.ids.items() if v == cid)].confidence for cid in order]
    assert confs[-1] is None and confs[:-1] == sorted(confs[:-1], reverse=True)
    assert "<th>Status</th>" in r.text

    for bad in ({"status": "deleted"}, {"sort": "id; drop"}, {"min_confidence": "abc"}, {"min_confidence": "2"},
                {"min_confidence": "nan"}):
        r = env.client.get("/ui/review", params=bad)
        assert r.status_code == 400, bad
    assert env.client.get("/ui/review", params={"page": "99999"}).status_code == 200


# ---------------------------------------------------------------------- one candidate


def test_candidate_page_shows_scores_reasons_checks_and_history(env: Env, built: dict[str, Any]) -> None:
    c = built["cands"]["right"]
    html = env.page("right")
    never_raw(html)
    for name in ("thoroughness", "specificity", "accuracy"):
        card = re.search(rf'data-testid="score-{name}".*?</ul>', html, re.S).group(0)
        score = getattr(c.validation.scores, name)
        assert f"{score.score:.2f}" in card
        for reason in score.reasons:
            assert reason.replace("->", "-&gt;").replace("'", "&#39;") in card
    assert f"{c.validation.confidence:.2f}" in html and 'data-testid="checks"' in html
    truth = re.search(r'data-testid="ground-truth".*?</section>', html, re.S).group(0)
    assert c.draft["ground_truth"]["root_causes"][0]["entity"] in truth and "Causal chain" in truth
    assert "Key evidence queries" in truth
    # the agent's evidence: tool, arguments, the excerpt escaped
    ev = re.search(r'data-testid="evidence".*?</section>', html, re.S).group(0)
    assert "get_events" in ev and "query_metrics" in ev and "failed" in ev
    assert "&lt;img src=x onerror=&#34;alert(2)&#34;&gt;deploy 4.2" in ev
    hist = re.search(r'data-testid="history".*?</ol>', html, re.S).group(0)
    assert "drafted" in hist and "validated" in hist and ">validator<" in hist
    assert 'data-testid="accept-button"' in html and 'data-testid="accept-ack"' not in html  # nothing blocks
    assert 'name="reviewer"' not in html and OWNER in html  # the principal decides
    assert 'value="feedback"' in html


def test_hostile_claim_appears_only_escaped(env: Env) -> None:
    html = env.page("hostile")
    never_raw(html)
    claim = re.search(r'data-testid="claim-text">(.*?)</blockquote>', html, re.S).group(1)
    assert claim == "&lt;script&gt;alert(1)&lt;/script&gt; web-bff was slow after the deploy"
    listing = env.client.get("/ui/review", params={"status": "all"}).text
    never_raw(listing)


def test_unvalidated_and_unknown_candidates(env: Env) -> None:
    html = env.page("fresh")
    assert "Not validated yet" in html
    assert env.client.get("/ui/review/cand_000000000000").status_code == 404
    r = env.client.get("/ui/review/%3Cscript%3Ealert(1)%3C%2Fscript%3E")
    assert r.status_code == 404
    never_raw(r.text)


# ---------------------------------------------------------------------- decisions


def test_accept_promotes_with_the_principal_as_reviewer(env: Env) -> None:
    label_id = env.cand("right").draft["id"]
    r = env.post("right", "accept", {"into": "team-x", "reviewer": "mallory"})
    assert r.status_code == 303
    assert r.headers["location"] == f"/ui/review/{env.ids['right']}?done=accepted"
    page = env.client.get(r.headers["location"]).text
    assert 'data-testid="review-flash"' in page and "team-x" in page and 'data-testid="accept-form"' not in page
    c = env.cand("right")
    assert c.status == "accepted" and c.reviewer == OWNER and c.promoted.labelset == "team-x"
    assert (env.root / "team-x" / f"{label_id}.json").is_file()
    prov = read_provenance("team-x", label_id, env.root)
    assert prov["reviewer"] == OWNER and prov["candidate_id"] == env.ids["right"] and not prov["flags_acknowledged"]
    label = json.loads((env.root / "team-x" / f"{label_id}.json").read_text())
    assert label["provenance"]["validated_by"] == OWNER and label["status"] == "validated"
    assert "mallory" not in json.dumps(prov) and env.events("right")[-1]["actor"] == OWNER
    assert load_labelset("team-x", env.root).get(label_id) is not None

    r = env.post("right", "accept", {"into": "team-x"}, csrf=token(page))  # decided already
    assert r.status_code == 409 and "only a pending candidate" in error_of(r.text)
    never_raw(env.client.get("/ui/review?status=accepted").text)


def test_accept_into_the_default_set_and_refuses_a_bad_name(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    for bad in ("../escape", "Team X", "a" * 65, "<b>x</b>"):
        r = env.post("corrected", "accept", {"into": bad})
        assert r.status_code == 400 and "invalid label set name" in error_of(r.text), bad
        never_raw(r.text)
    assert env.cand("corrected").status == "pending" and not env.root.exists()
    monkeypatch.setenv("PROCTOR_FEEDBACK_LABELSET", "from-env")
    html = env.page("corrected")
    assert 'value="from-env"' in html
    r = env.post("corrected", "accept", {})
    assert r.status_code == 303 and env.cand("corrected").promoted.labelset == "from-env"
    assert (env.root / "from-env" / "labelset.json").is_file()


def test_an_incomplete_draft_is_not_accepted(env: Env) -> None:
    html = env.page("hostile")
    assert 'data-testid="accept-incomplete"' in html and 'data-testid="problems"' in html
    r = env.post("hostile", "accept", {"into": "feedback", "acknowledge_flags": "yes"})
    assert r.status_code == 409 and "is not a valid label yet" in error_of(r.text)
    never_raw(r.text)
    assert env.cand("hostile").status == "pending" and not (env.root / "feedback" / "labelset.json").exists()


def test_an_unwritable_labelsets_root_changes_nothing(env: Env) -> None:
    env.root.write_text("not a folder")
    r = env.post("right", "accept", {"into": "feedback"})
    assert r.status_code == 500 and "could not be written" in error_of(r.text) and str(env.root) not in r.text
    assert env.cand("right").status == "pending"


def test_blocking_flags_need_an_acknowledgement(env: Env) -> None:
    c = env.cand("contradictory")
    assert [f.code for f in c.blocking_flags()] == ["wrong_but_correction_matches"]
    html = env.page("contradictory")
    assert 'data-testid="accept-ack"' in html and "wrong_but_correction_matches" in html
    before = len(env.events("contradictory"))
    r = env.post("contradictory", "accept", {"into": "feedback"})
    assert r.status_code == 409
    assert "unresolved flags (wrong_but_correction_matches)" in error_of(r.text)
    assert 'data-testid="review-error"' in r.text and 'data-testid="accept-ack"' in r.text
    assert env.cand("contradictory").status == "pending" and len(env.events("contradictory")) == before
    assert not (env.root / "feedback").exists()
    r = env.post("contradictory", "accept", {"into": "feedback", "acknowledge_flags": "yes"})
    assert r.status_code == 303
    prov = read_provenance("feedback", c.draft["id"], env.root)
    assert prov["flags_acknowledged"] is True and prov["reviewer"] == OWNER
    assert env.events("contradictory")[-1]["detail"]["acknowledged_flags"] == ["wrong_but_correction_matches"]


def test_edit_goes_through_the_checked_path(env: Env) -> None:
    before, history = env.cand("right"), len(env.events("right"))
    for sets, unsets, expect in (
            ("ground_truth.mechanism=<script>alert(1)</script>", "", "the Label model refuses this edit"),
            ("ground_truth.no_such_field=1", "", "the Label model refuses this edit"),
            ("no equals sign here", "", "path=value"),
            ("id=lbl_other", "", "cannot be edited"),
            ("", "ground_truth.nothing_here", "no 'ground_truth.nothing_here'"),
            ("", "", "nothing to edit")):
        r = env.post("right", "edit", {"sets": sets, "unsets": unsets})
        assert r.status_code == 400, (sets, r.text[:300])
        assert expect in error_of(r.text).replace("&#39;", "'"), (sets, error_of(r.text))
        never_raw(r.text)
        if sets:
            assert sets.replace("<", "&lt;").replace(">", "&gt;") in r.text  # kept in the textarea, escaped
    after = env.cand("right")
    assert after.draft == before.draft and after.edits == 0 and len(env.events("right")) == history

    r = env.post("right", "edit", {"sets": "# a comment\nground_truth.onset_tolerance_s=600\n\n", "reviewer": "mallory"})
    assert r.status_code == 303 and r.headers["location"].endswith("?done=edited")
    c = env.cand("right")
    assert c.edits == 1 and c.draft["ground_truth"]["onset_tolerance_s"] == 600
    ev = env.events("right")[-1]
    assert ev["action"] == "edited" and ev["actor"] == OWNER and ev["detail"]["paths"] == ["ground_truth.onset_tolerance_s"]
    page = env.client.get(r.headers["location"]).text
    assert "Edited" in page and 'data-testid="original-json"' in page


def test_reject_needs_a_reason(env: Env) -> None:
    for reason in ("", "   \n "):
        r = env.post("hostile", "reject", {"reason": reason})
        assert r.status_code == 400 and "needs a reason" in error_of(r.text)
    assert env.cand("hostile").status == "pending"
    r = env.post("hostile", "reject", {"reason": "not our incident <b>at all</b>", "reviewer": "mallory"})
    assert r.status_code == 303 and r.headers["location"].endswith("?done=rejected")
    c = env.cand("hostile")
    assert c.status == "rejected" and c.reviewer == OWNER and c.reason == "not our incident <b>at all</b>"
    page = env.client.get(r.headers["location"]).text
    assert "not our incident &lt;b&gt;at all&lt;/b&gt;" in page and "<b>at all" not in page
    never_raw(page)


def test_flash_is_whitelisted(env: Env) -> None:
    html = env.client.get(f"/ui/review/{env.ids['fresh']}", params={"done": "<script>alert(1)</script>"}).text
    never_raw(html)
    assert 'data-testid="review-flash"' not in html


# ---------------------------------------------------------------------- who may change what


def _snapshot(env: Env) -> tuple[Any, ...]:
    with Queue(env.queue) as q:
        return tuple((c.id, c.status, c.edits, c.draft == c.original_draft, len(q.events(c.id))) for c in q.list())


@pytest.mark.parametrize("action,data", [("accept", {"into": "feedback", "acknowledge_flags": "yes"}),
                                         ("edit", {"sets": "ground_truth.onset_tolerance_s=600"}),
                                         ("reject", {"reason": "forged"})])
def test_csrf_missing_or_wrong_is_refused_and_changes_nothing(env: Env, action: str, data: dict[str, str]) -> None:
    before = _snapshot(env)
    other = signed_in(env.client.app, OTHER_KEY)
    other_token = token(other.get(f"/ui/review/{env.ids['right']}").text)
    for csrf in (None, "", "forged-token", other_token):  # another session's token is wrong here
        r = env.post("right", action, data, csrf=csrf)
        assert r.status_code == 403, (csrf, r.status_code)
        assert "did not come from this page" in r.text
    anonymous = TestClient(env.client.app, base_url="http://testserver")
    r = anonymous.post(f"/ui/review/{env.ids['right']}/{action}", data={**data, "csrf": token(env.page("right"))},
                       follow_redirects=False)
    assert r.status_code == 403  # signed out
    assert _snapshot(env) == before and not env.root.exists()


def test_another_principal_acts_on_the_shared_queue(env: Env) -> None:
    other = signed_in(env.client.app, OTHER_KEY)
    assert sorted(rows(other.get("/ui/review").text)) == sorted(env.ids.values())
    html = other.get(f"/ui/review/{env.ids['corrected']}").text
    assert OTHER in html
    r = other.post(f"/ui/review/{env.ids['corrected']}/reject", data={"csrf": token(html), "reason": "duplicate"},
                   follow_redirects=False)
    assert r.status_code == 303
    c = env.cand("corrected")
    assert c.status == "rejected" and c.reviewer == OTHER
    assert OTHER in env.page("corrected")  # and the first principal sees who decided


def test_open_ui_asks_for_a_reviewer(built: dict[str, Any], tmp_path: Path) -> None:
    queue = tmp_path / "queue.db"
    shutil.copy(built["dir"] / "queue.db", queue)
    root = tmp_path / "labelsets"
    client = signed_in(make_app(built["dir"] / "results.db", UIConfig(queue=queue, labelsets_root=root), keys=()), None)
    cid = built["ids"]["right"]
    html = client.get(f"/ui/review/{cid}").text
    assert 'data-testid="accept-reviewer"' in html and 'data-testid="reject-reviewer"' in html
    for name in ("", "   "):
        r = client.post(f"/ui/review/{cid}/accept", data={"csrf": token(html), "reviewer": name}, follow_redirects=False)
        assert r.status_code == 400 and "reviewer name is required" in error_of(r.text)
    assert not root.exists()
    r = client.post(f"/ui/review/{cid}/accept", data={"csrf": token(html), "reviewer": "Dana <b>"}, follow_redirects=False)
    assert r.status_code == 303
    with Queue(queue) as q:
        assert q.get(cid).reviewer == "Dana <b>"
    page = client.get(r.headers["location"]).text
    assert "Dana &lt;b&gt;" in page and "Dana <b>" not in page


# ---------------------------------------------------------------------- no queue


def test_no_queue_hides_the_link_and_answers_404(built: dict[str, Any], tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PROCTOR_LABEL_QUEUE", raising=False)
    for config in (UIConfig(), UIConfig(queue=tmp_path / "missing.db")):
        client = signed_in(make_app(built["dir"] / "results.db", config), KEY)
        runs = client.get("/ui/runs")
        assert runs.status_code == 200 and 'href="/ui/review"' not in runs.text
        for path in ("/ui/review", f"/ui/review/{built['ids']['right']}"):
            r = client.get(path)
            assert r.status_code == 404 and "PROCTOR_LABEL_QUEUE" in r.text and "proctor ui" in r.text
            assert "--queue" in r.text
        r = client.post(f"/ui/review/{built['ids']['right']}/reject", data={"csrf": token(runs.text), "reason": "x"},
                        follow_redirects=False)
        assert r.status_code == 404
    monkeypatch.setenv("PROCTOR_LABEL_QUEUE", str(built["dir"] / "queue.db"))
    client = signed_in(make_app(built["dir"] / "results.db", UIConfig()), KEY)
    assert 'href="/ui/review"' in client.get("/ui/runs").text
    assert client.get("/ui/review").status_code == 200
