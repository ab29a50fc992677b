"""The web interface in a real browser: headless Chromium (Debian's package) driven by Playwright,
against ``proctor serve``'s own app (A2A, MCP, REST and ``/ui``) on a loopback port, with API
keys: sign in, open the runs list, open a run, filter to failures, open an investigation, expand
a tool call, compare two runs, accept a candidate in the review queue. Every step asserts on
what is on the page, at 1280 px and 390 px wide, and saves a screenshot (into the test's temp
folder, and into ``$PROCTOR_UI_SCREENSHOTS`` when set: that is how the README's are made).

In CI (``PROCTOR_REQUIRE_BROWSER=1``, set by ``.ci/run``) a missing browser fails these tests;
elsewhere they are skipped with the reason.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from evaluator_agent.core.labels import labelsets_dir
from tests.conftest import serving_in_thread
from tests.ui_data import HOSTILE, KEY, OTHER_KEY, build_ui_db

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
WIDTHS = (1280, 390)


def _browser_or_skip() -> str:
    if CHROMIUM is None or not _has_playwright():
        why = "chromium" if CHROMIUM is None else "the playwright package"
        if os.environ.get("PROCTOR_REQUIRE_BROWSER"):
            pytest.fail(f"browser tests need {why} (.ci/run installs it); PROCTOR_REQUIRE_BROWSER is set")
        pytest.skip(f"{why} not installed: browser tests skipped (CI requires them)")
    return CHROMIUM


def _has_playwright() -> bool:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The proctor's server app with API keys, its results, a review queue and a scratch label
    set root, on a loopback port."""
    exe = _browser_or_skip()
    tmp = tmp_path_factory.mktemp("ui-browser")
    root = tmp / "labelsets"
    shutil.copytree(labelsets_dir() / "smoke", root / "smoke")
    runs = build_ui_db(tmp / "results.db")
    saved = {k: os.environ.get(k) for k in ("PROCTOR_LABELSETS", "PROCTOR_LABEL_QUEUE")}
    os.environ["PROCTOR_LABELSETS"] = str(root)
    from tests.test_ui_review import build_review_queue

    cands = build_review_queue(tmp / "queue.db")
    os.environ["PROCTOR_LABEL_QUEUE"] = str(tmp / "queue.db")
    from evaluator_agent.service.server import create_app

    app = create_app(str(tmp / "results.db"), api_keys=f"{KEY},{OTHER_KEY}")
    shots = [tmp / "screenshots"] + ([Path(os.environ["PROCTOR_UI_SCREENSHOTS"])]
                                     if os.environ.get("PROCTOR_UI_SCREENSHOTS") else [])
    for d in shots:
        d.mkdir(parents=True, exist_ok=True)
    try:
        with serving_in_thread(app) as base:
            yield {"base": base + "/ui", "runs": runs, "cands": cands, "root": root, "exe": exe, "shots": shots}
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture(params=WIDTHS, ids=lambda w: f"{w}px")
def page(site: dict[str, Any], request: pytest.FixtureRequest) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    width = request.param
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=site["exe"], args=["--no-sandbox", "--disable-gpu"])
        ctx = browser.new_context(viewport={"width": width, "height": 900})
        pg = ctx.new_page()
        errors: list[str] = []
        pg.on("pageerror", lambda e: errors.append(str(e)))
        # a CSP violation is a console error; a page's own 404 (asked for) is not a fault
        pg.on("console", lambda m: errors.append(m.text) if m.type == "error" and "Failed to load resource" not in m.text
              else None)
        pg.on("response", lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400 and
              r.request.resource_type in ("stylesheet", "script", "image", "font", "fetch", "xhr") else None)
        pg.width = width  # type: ignore[attr-defined]
        pg.errors = errors  # type: ignore[attr-defined]
        try:
            yield pg
        finally:
            browser.close()
    # no script error, no CSP violation, no missing stylesheet, script or image
    assert not errors, errors


def shot(site: dict[str, Any], pg: Any, name: str) -> None:
    for d in site["shots"]:
        pg.screenshot(path=str(d / f"{name}-{pg.width}.png"), full_page=True)


def sign_in(site: dict[str, Any], pg: Any, key: str = KEY) -> None:
    pg.goto(site["base"] + "/runs")
    assert "/signin" in pg.url
    pg.fill("input[name=key]", key)
    pg.click("form.signin button[type=submit]")
    pg.wait_for_url(re.compile(r".*/ui/runs$"))


def no_horizontal_overflow(pg: Any) -> None:
    """The page itself never scrolls sideways (wide tables scroll in their own box)."""
    over = pg.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert over <= 1, f"the page is {over}px wider than the viewport"


def test_runs_run_failures_investigation_tool_call(site: dict[str, Any], page: Any) -> None:
    runs = site["runs"]
    sign_in(site, page)
    table = page.locator("#runs")
    text = table.inner_text()
    for role in ("good", "bad", "good2"):
        assert runs[role] in text
    assert runs["hostile"] not in text  # another key's run
    no_horizontal_overflow(page)
    shot(site, page, "runs")

    # open a run (random_guess: it fails most labels)
    page.click(f"#runs a[href$='/runs/{runs['bad']}']")
    page.wait_for_url(re.compile(rf".*/runs/{runs['bad']}$"))
    assert "random_guess" in page.inner_text("[data-testid=run-title]") and runs["bad"] in page.inner_text("main")
    rows = page.locator("[data-testid=investigation-row]")
    total = rows.count()
    assert total >= 1
    no_horizontal_overflow(page)
    shot(site, page, "run")

    # filter to failures: every row left is a failure, and there are some
    page.select_option("[data-testid=filter-outcome]", "fail")
    if page.locator("[data-testid=filter-submit]").is_visible():
        page.click("[data-testid=filter-submit]")
    page.wait_for_url(re.compile(r".*outcome=fail.*"))
    failed = page.locator("[data-testid=investigation-row]")
    assert 1 <= failed.count() <= total
    outcomes = failed.locator("td.outcome").all_inner_texts() if failed.locator("td.outcome").count() else \
        [r.inner_text() for r in failed.all()]
    assert all("fail" in o.lower() for o in outcomes), outcomes

    # open an investigation, expand a tool call
    failed.first.locator("[data-testid=investigation-link]").click()
    page.wait_for_url(re.compile(r".*/investigations/.+/\d+$"))
    assert page.locator("[data-testid=timeline]").is_visible()
    call = page.locator("[data-testid=tool-call]").first
    assert call.get_attribute("open") is None
    name = call.locator("[data-testid=tool-name]").inner_text()
    assert name
    call.locator("summary").click()
    assert call.get_attribute("open") is not None
    args = call.locator("[data-testid=tool-args]")
    assert args.is_visible() and args.inner_text().strip()
    no_horizontal_overflow(page)
    shot(site, page, "investigation")


def test_compare_two_runs(site: dict[str, Any], page: Any) -> None:
    runs = site["runs"]
    sign_in(site, page)
    page.click("header.top nav a:text('Compare')")
    page.wait_for_url(re.compile(r".*/ui/compare"))
    options = page.locator("[data-testid=compare-a] option").all_inner_texts()
    assert not any(HOSTILE in o for o in options)  # another key's run is not offered
    page.select_option("[data-testid=compare-a]", runs["bad"])
    page.select_option("[data-testid=compare-b]", runs["good"])
    page.click("[data-testid=compare-submit]")
    page.wait_for_url(re.compile(r".*/compare\?.*a=.*b=.*"))
    verdict = page.locator("[data-testid=verdict]")
    assert verdict.is_visible() and verdict.get_attribute("data-verdict")
    assert page.locator("[data-testid=flips-newly-passing]").is_visible()
    no_horizontal_overflow(page)
    shot(site, page, "compare")


def test_labels_and_difficulty_pages(site: dict[str, Any], page: Any) -> None:
    sign_in(site, page)
    page.click("header.top nav a:text('Labels')")
    page.wait_for_url(re.compile(r".*/ui/labels$"))
    page.click("[data-testid=labelsets] a:text('smoke')")
    assert page.locator("[data-testid=labels-table]").is_visible()
    shot(site, page, "labelset")
    page.locator("[data-testid=labels-table] a").first.click()
    page.wait_for_url(re.compile(r".*/ui/labels/smoke/lbl_[0-9a-f]+$"))
    smap = page.locator("[data-testid=service-map]")
    assert smap.is_visible() and page.locator("[data-testid=service-map] g.svc.paged").count() == 1
    assert page.locator("[data-testid=history] tr[data-run]").count() >= 1
    no_horizontal_overflow(page)
    shot(site, page, "label")
    page.click("header.top nav a:text('Difficulty')")
    page.wait_for_url(re.compile(r".*/ui/difficulty"))
    assert page.locator("[data-testid=fit-source]").is_visible()
    no_horizontal_overflow(page)
    shot(site, page, "difficulty")


def test_another_tenants_run_is_not_found_and_hostile_names_are_text(site: dict[str, Any], page: Any) -> None:
    sign_in(site, page)
    resp = page.goto(site["base"] + f"/runs/{site['runs']['hostile']}")
    assert resp.status == 404 and "Not found" in page.inner_text("main")
    page.click("form.signout button")
    sign_in(site, page, OTHER_KEY)
    assert page.locator("#runs td.target", has_text=HOSTILE).count() == 1  # shown as text, whole
    assert page.evaluate("document.querySelectorAll('#runs script, #runs img').length") == 0


def test_accept_a_candidate_in_the_review_queue(site: dict[str, Any], page: Any) -> None:
    sign_in(site, page)
    page.click("header.top nav a:text('Review')")
    page.wait_for_url(re.compile(r".*/ui/review"))
    assert page.locator("[data-testid=review-table]").is_visible()
    shot(site, page, "review")
    width = page.width
    cid = site["cands"]["right"] if width == WIDTHS[0] else site["cands"]["corrected"]
    page.goto(site["base"] + f"/review/{cid}")
    assert page.locator("[data-testid=score-accuracy]").is_visible()
    shot(site, page, "candidate")
    page.fill("[data-testid=accept-into]", f"reviewed-{width}")
    page.click("[data-testid=accept-button]")
    page.wait_for_url(re.compile(r".*done=accepted"))
    assert "accepted" in page.inner_text("[data-testid=candidate-status]").lower()
    assert any((site["root"] / f"reviewed-{width}").glob("lbl_*.json"))
    no_horizontal_overflow(page)
