"""Plain-text rendering of results for terminals and A2A TextParts."""

from __future__ import annotations

from typing import Any

from evaluator_agent.core.records import RunSummary
from evaluator_agent.core.untrusted import clean


def table(headers: list[str], rows: list[list[Any]]) -> str:
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _ci(est: Any) -> str:
    """" [lo%–hi%]" of an estimate dict or a [lo, hi] pair; "" when there is none."""
    ci = est.get("ci95") if isinstance(est, dict) else est
    if not isinstance(ci, list | tuple) or len(ci) != 2:
        return ""
    return f" [{ci[0]:.0%}–{ci[1]:.0%}]"


def accuracy_line(s: dict[str, Any]) -> str:
    """"root cause AC@1 … AC@3 … mechanism …" with 95% CIs, from a run summary; "" for a
    summary made before the accuracies existed."""
    if "ac_at_1" not in s:
        return ""
    acc = s.get("accuracy") or {}
    parts = [
        f"{name} {s[key]:.1%}{_ci(acc.get(key))}"
        for key, name in (("ac_at_1", "root cause AC@1"), ("ac_at_3", "AC@3"),
                          ("mechanism_accuracy", "mechanism"))
        if key in s
    ]
    return "  ".join(parts)


def result_text(result: dict[str, Any], per_investigation: bool = True) -> str:
    """A run result (``RunResult.as_dict()``, disclosed) as terminal text."""
    s = RunSummary.model_validate(result["summary"])
    t = result["target"]
    head = (
        f"run {result['run_id']}  target {clean(t['name'])} {clean(t['version'], 40)}  labelset {result['labelset']['name']}\n"
        f"pass rate {s.pass_rate:.1%}{_ci(s.ci95)} ({s.passed}/{s.scored})  "
        f"mean score {s.mean_score:.3f}  infra errors {s.errors}  ({s.n} investigations)"
    )
    acc = accuracy_line(result["summary"])
    if acc:
        head += "\n" + acc
    if s.degraded:
        head += (f"\nDEGRADED: {s.infra_error_rate:.1%} of investigations were infra errors "
                 f"(over {(s.model_extra or {}).get('degraded_threshold', 0):.0%}); this is not the target's result")
    if s.previous_run:
        head += (f"\nvs previous run {s.previous_run}: {len(s.newly_failing)} newly failing"
                 f"{' (' + ', '.join(s.newly_failing[:8]) + ')' if s.newly_failing else ''}, "
                 f"{len(s.newly_passing)} newly passing")
    if not per_investigation:
        return head
    rows = [
        [i["label_id"], i["attempt"], f"{i['score']:.2f}", "PASS" if i["passed"] else "fail", i["end_reason"],
         i["turns"], i["tool_calls"], f"{i['duration_s']:.2f}"]
        for i in result["investigations"]
    ]
    return head + "\n\n" + table(["label", "try", "score", "result", "end", "turns", "calls", "secs"], rows)
