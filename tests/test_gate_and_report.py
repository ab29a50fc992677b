"""The regression gate and reports over real runs of the mock agents (HTTP on loopback)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import anyio.to_thread
import pytest

from evaluator_agent.cli.main import main
from evaluator_agent.service.client import call_proctor
from tests.conftest import serve_app

pytestmark = pytest.mark.anyio

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


async def _cli(*args: str) -> int:
    return await anyio.to_thread.run_sync(lambda: main(list(args)))


async def test_gate_compare_and_reports(tmp_path: Path, capsys) -> None:
    from evaluator_agent.service.server import create_app as create_proctor
    from mock_agents.server import create_app

    db = str(tmp_path / "g.db")
    async with serve_app(lambda base: create_app(agents=["methodical", "random_guess"], base_url=base)) as agents:
        card = f"{agents}/{{}}/.well-known/agent-card.json"
        runs = {}
        for name, attempts in (("methodical", "1"), ("random_guess", "2")):
            out = tmp_path / f"{name}.json"
            assert await _cli("run", "--target", card.format(name), "--db", db, "--attempts", attempts, "--json", str(out), "--quiet") == 0
            runs[name] = json.loads(out.read_text())
        capsys.readouterr()

        # The summary carries the statistics, keyed as documented.
        s = runs["random_guess"]["summary"]
        assert set(s["pass_at_k"]) == {"1", "2"} and set(s["pass_hat_k"]) == {"1", "2"}
        lo, hi = s["ci95"]
        assert 0 <= lo <= s["pass_at_1"]["value"] <= hi <= 1 and s["stderr"] >= 0
        assert {"tier", "segment", "technology", "problem_category", "monitor_type"} <= set(s["breakdown"])
        # ... and root-cause and mechanism accuracy beside the pass rate, with intervals
        m = runs["methodical"]["summary"]
        # a pass needs the top candidate and its mechanism right; the top 3 hold the top 1
        assert m["ac_at_3"] >= m["ac_at_1"] >= m["pass_rate"] > s["pass_rate"]
        assert m["mechanism_accuracy"] >= m["pass_rate"]
        for est in m["accuracy"].values():
            assert 0 <= est["ci95"][0] <= est["value"] <= est["ci95"][1] <= 1

        # methodical -> random_guess on the same labels is a regression: exit 3 with the gate.
        base, new = runs["methodical"]["run_id"], runs["random_guess"]["run_id"]
        assert await _cli("compare", base, new, "--db", db, "--json", "--fail-on", "regression") == 3
        cmp = json.loads(capsys.readouterr().out)
        assert cmp["verdict"] == "regression" and cmp["delta"] < 0 and cmp["mcnemar_p"] < 0.05
        assert set(cmp) >= {"verdict", "delta", "ci95", "mcnemar_p", "flips", "segments"}
        assert cmp["flips"]["pass_to_fail"] and not cmp["flips"]["fail_to_pass"]
        assert await _cli("compare", base, new, "--db", db) == 0  # no gate: report only

        # The one-command CI gate: the same deterministic agent again is inconclusive, exit 0.
        code = await _cli("run", "--target", card.format("methodical"), "--db", db, "--quiet", "--brief",
                          "--baseline", base, "--fail-on", "regression")
        assert code == 0
        assert "inconclusive" in capsys.readouterr().out

        # Compare is also a skill of the proctor's A2A endpoint.
        async with serve_app(lambda b: create_proctor(db, public_url=b)) as proctor:
            over_a2a = await call_proctor(proctor, {"action": "compare", "base": base, "new": new})
        assert over_a2a["verdict"] == "regression"

    # Empirical difficulty over everything stored.
    assert await _cli("difficulty", "--db", db, "--json") == 0
    diff = json.loads(capsys.readouterr().out)
    assert diff and all({"label_id", "difficulty"} <= set(x) for x in diff)

    # Reports: Markdown for a pull request, HTML for people, a comparison.
    assert await _cli("report", base, "--db", db, "--markdown") == 0
    md = capsys.readouterr().out
    assert "pass@1" in md and "| tier |" in md and "root cause AC@1" in md
    assert await _cli("report", base, "--db", db, "--compare", new) == 0
    assert "regression" in capsys.readouterr().out
    page = tmp_path / "report.html"
    assert await _cli("report", new, "--db", db, "--html", str(page)) == 0
    text = page.read_text()
    assert "<script" not in text and "http://" not in text.split("</style>")[0]
    assert text.count("<svg") >= 4



def _some_right(_turn: int, msg: dict) -> dict:
    """Says no fault for about half the problems (by the text's checksum) and blames checkout for
    the rest: a mix of passes and failures, so every chart of the report has something to draw."""
    return {"diagnosis": {"no_fault": sum(map(ord, str(msg.get("problem", "")))) % 2 == 0, "summary": "scripted",
                          "root_cause": {"service": "checkout", "mechanism": "deploy_regression"}}}


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (.ci/run installs it); only the browser check is skipped")
async def test_html_report_renders_in_a_browser(tmp_path: Path) -> None:
    """The HTML report as a browser draws it: its charts survive rendering, and it has a screenshot."""
    from tests.targets import build_targets_app

    db = str(tmp_path / "b.db")
    out = tmp_path / "run.json"
    async with serve_app(lambda b: build_targets_app(b, {"t": (_some_right, False)})) as targets:
        assert await _cli("run", "--target", f"{targets}/t/.well-known/agent-card.json", "--db", db,
                          "--attempts", "2", "--json", str(out), "--quiet") == 0
    page = tmp_path / "report.html"
    assert await _cli("report", json.loads(out.read_text())["run_id"], "--db", db, "--html", str(page)) == 0
    assert page.read_text().count("<svg") >= 4
    shot = tmp_path / "report.png"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'chrome'}"]
    dom = subprocess.run([CHROMIUM, *flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    rendered = dom.stdout
    assert rendered.count("<svg") >= 4
    assert 'class="bar"' in rendered and 'class="dot"' in rendered and 'class="ci"' in rendered
    subprocess.run([CHROMIUM, *flags, "--window-size=1280,2000", f"--screenshot={shot}", page.as_uri()],
                   capture_output=True, timeout=120, check=True)
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000
