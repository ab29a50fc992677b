"""The web interface's doors: sign-in with an API key, the session cookie, tenancy, escaping,
the Content-Security-Policy and the other headers, redirects that stay on the site. In-process
(Starlette's TestClient): HTTP semantics are the point, not sockets. The browser tests are in
``tests/test_ui_browser.py``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.testclient import TestClient

from evaluator_agent.web.app import UIConfig, ui_app
from evaluator_agent.web.session import COOKIE, CSP, Sessions
from tests.ui_data import HOSTILE, KEY, OTHER_KEY, build_ui_db


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    path = tmp_path_factory.mktemp("ui") / "results.db"
    runs = build_ui_db(path)
    return {"path": path, "runs": runs}


def client(db: dict[str, Any], keys: tuple[str, ...] = (KEY, OTHER_KEY), **kw: Any) -> TestClient:
    app = Starlette(routes=[Mount("/ui", app=ui_app(db["path"], api_keys=keys, secret=b"k" * 32,
                                                    config=UIConfig(disclosure="full", **kw)))])
    return TestClient(app, base_url="https://testserver", follow_redirects=False)


def signed_in(db: dict[str, Any], key: str = KEY) -> TestClient:
    c = client(db)
    r = c.post("/ui/signin", data={"key": key, "next": "/ui/runs"})
    assert r.status_code == 303 and r.headers["location"] == "/ui/runs", r.text
    return c


def test_pages_need_a_sign_in_and_a_bad_key_is_refused(db: dict[str, Any]) -> None:
    c = client(db)
    r = c.get("/ui/runs?target=x")
    assert r.status_code == 303 and r.headers["location"].startswith("/ui/signin?next=")
    assert "%2Fui%2Fruns%3Ftarget%3Dx" in r.headers["location"]
    r = c.post("/ui/signin", data={"key": "wrong", "next": "/ui/runs"})
    assert r.status_code == 401 and COOKIE not in r.cookies and "not valid" in r.text
    assert c.post("/ui/signin", data={"key": "x" * 5000}).status_code in (400, 401, 413)


def test_the_session_cookie_is_signed_httponly_strict_and_secure(db: dict[str, Any]) -> None:
    c = client(db)
    r = c.post("/ui/signin", data={"key": KEY, "next": "/ui/"})
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict") and "Secure" in cookie
    assert KEY not in cookie  # the key never leaves the sign-in form
    value = r.cookies[COOKIE]
    body, sig = value.split(".")
    forged = c.get("/ui/runs", cookies={COOKIE: body + "." + sig[:-2] + ("AA" if sig[-2:] != "AA" else "BB")})
    assert forged.status_code == 303  # a tampered cookie is no session
    other = Sessions((KEY,), secret=b"other-secret" * 3)
    assert other.viewer(value) is None  # another secret (another deployment) does not accept it


def test_redirects_after_sign_in_stay_on_the_interface(db: dict[str, Any]) -> None:
    c = client(db)
    for bad in ("https://evil.example/", "//evil.example/x", "/\\evil.example", "javascript:alert(1)"):
        r = c.post("/ui/signin", data={"key": KEY, "next": bad})
        assert r.status_code == 303 and r.headers["location"] in ("/ui/", "/ui"), (bad, r.headers["location"])


def test_a_tenant_sees_its_runs_and_unowned_ones_never_another_tenants(db: dict[str, Any]) -> None:
    runs = db["runs"]
    mine = signed_in(db, KEY)
    page = mine.get("/ui/runs").text
    for role in ("good", "bad", "good2"):
        assert runs[role] in page
    assert runs["hostile"] not in page
    r = mine.get(f"/ui/runs/{runs['hostile']}")
    assert r.status_code == 404
    theirs = signed_in(db, OTHER_KEY)
    page = theirs.get("/ui/runs").text
    assert runs["hostile"] in page and runs["good2"] in page and runs["good"] not in page


def test_hostile_names_are_text_on_the_runs_page(db: dict[str, Any]) -> None:
    page = signed_in(db, OTHER_KEY).get("/ui/runs").text
    assert HOSTILE not in page and "<script>alert" not in page and "onerror=alert" not in page.replace("onerror=alert(1)&gt;", "")
    assert "&lt;script&gt;alert(&#34;pwn&#34;)&lt;/script&gt;" in page or "&lt;script&gt;alert(&quot;pwn&quot;)" in page


def test_every_answer_carries_the_security_headers(db: dict[str, Any]) -> None:
    c = signed_in(db)
    for path in ("/ui/runs", "/ui/signin", "/ui/static/ui.css", "/ui/no-such-page", f"/ui/runs/{db['runs']['hostile']}"):
        r = c.get(path)
        assert r.headers.get("content-security-policy") == CSP, path
        assert r.headers.get("x-frame-options") == "DENY" and r.headers.get("x-content-type-options") == "nosniff"
    assert c.get("/ui/no-such-page").status_code == 404


def test_no_inline_script_or_style_in_pages(db: dict[str, Any]) -> None:
    """The CSP forbids them; a page that used one would break in the browser."""
    c = signed_in(db)
    for path in ("/ui/runs", "/ui/signin"):
        page = c.get(path).text
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", page), path
        assert not re.search(r"\sstyle=", page) and "<style" not in page, path
        assert not re.search(r"\son[a-z]+=", page), path


def test_signing_out_needs_the_form_and_ends_the_session(db: dict[str, Any]) -> None:
    c = signed_in(db)
    assert c.get("/ui/signout").status_code == 405
    r = c.post("/ui/signout")
    assert r.status_code == 303 and 'proctor_ui=""' in r.headers["set-cookie"]


def test_an_open_interface_has_no_sign_in(db: dict[str, Any], tmp_path: Path) -> None:
    c = client(db, keys=())
    page = c.get("/ui/runs").text
    assert all(run in page for run in db["runs"].values())  # no keys: the operator's own database
    assert "Sign out" not in page
    assert c.get("/ui/signin").status_code == 303


def test_proctor_ui_serves_the_pages_on_a_local_database(db: dict[str, Any], tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """`proctor ui --db FILE`: the same pages at /ui, open (no keys), the root redirecting there;
    a missing database is a usage error, not an empty interface."""
    import uvicorn

    from evaluator_agent.cli.main import main

    assert main(["ui", "--db", str(tmp_path / "missing.db")]) == 2
    served: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: served.update(app=app, **kw))
    monkeypatch.delenv("PROCTOR_API_KEYS", raising=False)
    assert main(["ui", "--db", str(db["path"]), "--port", "8765"]) == 0
    assert served["host"] == "127.0.0.1" and served["port"] == 8765
    c = TestClient(served["app"], follow_redirects=False)
    assert c.get("/").headers["location"] == "/ui/"
    page = c.get("/ui/runs")
    assert page.status_code == 200 and db["runs"]["good"] in page.text
