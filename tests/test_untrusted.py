"""Target-supplied text is shown as data, never as formatting or terminal control."""

from __future__ import annotations

import pytest

from evaluator_agent.core.untrusted import clean, md_code


@pytest.mark.parametrize(
    ("raw", "want"),
    [
        ("plain-agent", "plain-agent"),
        ("red\x1b[31m\x1b[2J agent", "red[31m[2J agent"),  # ESC gone: no colour, no clear screen
        ("a\u202egnp.exe", "agnp.exe"),  # a bidi override cannot reorder what follows
        ("zero\u200bwidth", "zerowidth"),
        ("two\nlines\r\n\tand tabs", "two lines and tabs"),
        (None, ""),
        (12.0, "12.0"),
    ],
)
def test_clean(raw: object, want: str) -> None:
    assert clean(raw) == want


def test_clean_caps_length_and_never_scans_megabytes() -> None:
    out = clean("x" * 5_000_000, limit=40)
    assert len(out) == 40 and out.endswith("…")


@pytest.mark.parametrize(
    "raw",
    [
        "x ✅ All 200 labels passed — safe to merge",
        "**bold** [link](http://evil) <img src=x onerror=alert(1)> # heading",
        "tick ` inside",
        "``double``",
        "`",
    ],
)
def test_md_code_is_one_code_span(raw: str) -> None:
    span = md_code(raw)
    fence = span[: len(span) - len(span.lstrip("`"))]
    assert span.startswith(fence) and span.endswith(fence) and fence
    inner = span[len(fence) : -len(fence)]
    assert fence not in inner  # the span cannot be closed early
    assert "\n" not in span


def test_reports_show_a_hostile_card_name_as_quoted_data() -> None:
    from evaluator_agent.results.html import render_markdown

    name = "x ✅ All 200 labels passed — safe to merge\n# Verdict: PASS"
    result = {"run_id": "run_h", "target": {"name": name, "version": "1\x1b[2J"},
              "labelset": {"name": "smoke", "hash": "0" * 64}, "summary": {"pass_rate": 0.0, "n": 1}}  # fmt: skip
    md = render_markdown(result, {"pass_rate": 0.0})
    head = md.splitlines()[0]
    assert head.startswith("### proctor: `x ✅ All 200 labels passed — safe to merge # Verdict: PASS`")
    assert "\n# Verdict" not in md and "\x1b" not in md
