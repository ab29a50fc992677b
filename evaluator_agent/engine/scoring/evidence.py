"""What the target was shown: ``ViewedResult`` (one tool call and its result text), ``Seen``
(a result's text searched the way scoring looks for a string, raw and decoded), the evidence
sub-score, and ``red_herrings_chased`` (must-not-blame entities named in tool arguments).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from evaluator_agent.core.labels import Label
from evaluator_agent.engine.scoring.names import fold, normalize_entity


@dataclass(frozen=True)
class ViewedResult:
    """One tool call the target made: tool name, its arguments, and the JSON text it was shown."""

    tool: str
    arguments: dict[str, Any]
    ok: bool
    text: str


def strings(obj: Any) -> list[str]:
    """Every string in a JSON value, keys included (other scalars as text)."""
    out: list[str] = []
    stack = [obj]
    while stack:
        x = stack.pop()
        if isinstance(x, str):
            out.append(x)
        elif isinstance(x, dict):
            stack.extend(x.keys())
            stack.extend(x.values())
        elif isinstance(x, (list, tuple)):
            stack.extend(x)
        elif x is not None:
            out.append(str(x))
    return out


def squash(s: str) -> str:
    """Lower case, whitespace runs folded into one space: how scoring compares text."""
    return " ".join(s.lower().split())


# Parts of a result that echo what the target asked rather than what the world holds: a
# metric name found only in the echoed query proves nothing was seen.
_ECHOED = {"query_metrics": ("query", "from", "to")}


class Seen:
    """Lower-cased text of a viewed result, raw and decoded, computed once."""

    def __init__(self, v: ViewedResult):
        self.v = v
        self._decoded: str | None = None
        text = v.text
        echoed = _ECHOED.get(v.tool)
        if echoed:
            try:
                data = json.loads(text)
            except (ValueError, RecursionError):
                data = None
            if isinstance(data, dict):
                text = json.dumps({k: x for k, x in data.items() if k not in echoed})
                self._decoded = squash("\n".join(strings({k: x for k, x in data.items() if k not in echoed})))
        self.raw = squash(text)

    def contains(self, needle: str) -> bool:
        if needle in self.raw:
            return True
        if self._decoded is None:
            try:
                self._decoded = squash("\n".join(strings(json.loads(self.v.text))))
            except (ValueError, RecursionError):
                self._decoded = ""
        return needle in self._decoded


def score_evidence(label: Label, viewed: list[ViewedResult]) -> tuple[float, dict[str, Any], str]:
    items = label.ground_truth.key_evidence
    if not items:
        return 1.0, {"evidence": []}, "No key evidence required."
    seen = [Seen(v) for v in viewed if v.ok]
    rows = []
    for ke in items:
        needle = squash(ke.expect)
        found = bool(needle) and any(s.v.tool == ke.tool and s.contains(needle) for s in seen)
        rows.append({"tool": ke.tool, "expect": ke.expect, "found": "viewed" if found else None})
    found_rows = [r for r in rows if r["found"]]
    score = len(found_rows) / len(rows)
    msg = f"Key evidence {len(found_rows)}/{len(rows)} found"
    parts = [f"viewed: {r['expect']!r}" for r in found_rows]
    missing = [repr(r["expect"]) for r in rows if not r["found"]]
    if parts:
        msg += " (" + "; ".join(parts) + ")"
    if missing:
        msg += f"; missing {', '.join(missing)}"
    return score, {"evidence": rows}, msg + "."


# --------------------------------------------------------------------------- red herrings chased


def _mentions(text: str, entity: str) -> bool:
    return re.search(rf"(?<![a-z0-9\-]){re.escape(entity)}(?![a-z0-9\-])", text) is not None


def red_herrings_chased(label: Label, viewed: list[ViewedResult]) -> int:
    """How many distinct must-not-blame entities the target named in some tool call's arguments."""
    reds = {normalize_entity(r.entity) for r in label.ground_truth.must_not_blame} - {""}
    if not reds:
        return 0
    texts = [fold(s) for v in viewed for s in strings(list(v.arguments.values()))]
    return sum(1 for r in reds if any(_mentions(t, r) for t in texts))
