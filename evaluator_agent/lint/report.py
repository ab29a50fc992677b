"""What a lint finds and how it is shown: the check ids (``CHECKS``), one ``LintProblem``, and the
``LintReport`` of a label set (``ok``, ``to_dict``, and ``render``, the human report).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

CHECKS: dict[str, str] = {
    "labelset.missing": "the label set folder or its labelset.json does not exist",
    "labelset.json": "labelset.json is not valid JSON",
    "labelset.schema": "labelset.json does not match the LabelSetInfo schema",
    "labelset.name": "labelset.json name differs from the folder name",
    "labelset.empty": "the label set has no label files",
    "label.json": "a label file is not valid JSON",
    "label.schema": "a label file does not match the Label schema",
    "label.filename": "a label file is not named <id>.json",
    "label.id_opaque": "a label id is not opaque (lbl_ + 10 hex, no mechanism/segment word)",
    "label.duplicate_id": "two label files carry the same id",
    "snapshot.missing": "a referenced snapshot file does not exist",
    "snapshot.gzip": "a snapshot file is not readable gzip",
    "snapshot.hash": "a snapshot's sha256 differs from its file name",
    "snapshot.schema": "a snapshot is not valid JSON / WorldSnapshot",
    "snapshot.noise_free": "the noise-free twin covers another time range or topology",
    "snapshot.filename": "a file in the snapshots folder is not named <sha256>.json.gz",
    "world.id_opaque": "a world_id is not opaque (w_ + hex)",
    "world.entity_name": "an entity name in the world spells a mechanism",
    "leak.mechanism": "the briefing's title or prompt names the mechanism",
    "leak.monitor_mechanism": "the paging monitor names the mechanism",
    "leak.entity": "the briefing names a root-cause entity that is not the paged one",
    "leak.label_id": "the label id appears in something a target sees",
    "leak.tool_metadata": "tool names or result/data keys spell a mechanism or ground-truth word",
    "leak.exclusive_mechanism": "a world value occurs only in worlds of one mechanism (set-level census)",
    "leak.culprit_only": "a world value occurs only on the culprit wherever it occurs (set-level census)",
    "leak.chain_only": "a world value occurs only on the causal chain wherever it occurs (set-level census)",
    "leak.entity_in_metric_name": "a metric name carries an entity name of its world (set-level census)",
    "trigger.monitor_missing": "trigger.monitor_id is not a monitor of the world",
    "trigger.monitor_state": "the paging monitor is not in Alert at the world's end",
    "trigger.fired_at": "trigger.fired_at is outside the world's range or not when the monitor fired",
    "time.onset": "the onset is outside the world's time range",
    "time.triggering_change": "the triggering change is outside the world's time range",
    "time.incident_window": "the incident window is outside the world's time range",
    "time.baseline_window": "the baseline window is outside the world's time range",
    "truth.unknown_entity": "a ground-truth entity does not exist in the world",
    "truth.no_fault": "no-fault fields are inconsistent",
    "truth.taxonomy": "taxonomy segment/category do not match the mechanism",
    "herring.unknown": "a must-not-blame entity is not in the topology",
    "herring.invisible": "a must-not-blame entity has no signal in the world",
    "herring.is_root_cause": "a must-not-blame entity is also a root cause",
    "evidence.error": "a key-evidence query fails when run through the tools",
    "evidence.missing": "a key-evidence query result does not contain its expect string",
    "evidence.listing_satisfies": "a key-evidence expect string is an entity name or what a listing call returns",
    "difficulty.factors": "difficulty factors disagree with the label or its world",
    "weights.invalid": "rubric weights are invalid",
    "lint.internal": "the linter itself failed on a label (a bug in lint; other labels still checked)",
}

CENSUS_FILE = "(census)"  # LintProblem.file of set-level leaks found across all worlds


@dataclass(frozen=True)
class LintProblem:
    label_id: str | None
    file: str
    check: str
    message: str
    severity: str = "error"  # "error" | "warning"


@dataclass
class LintReport:
    labelset: str
    path: str
    problems: list[LintProblem] = field(default_factory=list)
    checked: dict[str, int] = field(default_factory=dict)
    duration_s: float = 0.0

    @property
    def errors(self) -> list[LintProblem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[LintProblem]:
        return [p for p in self.problems if p.severity != "error"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def checks_for(self, label_id: str | None, severity: str | None = None) -> set[str]:
        """Check ids reported for one label (``None``: set-level problems), optionally one severity."""
        return {
            p.check
            for p in self.problems
            if p.label_id == label_id and (severity is None or p.severity == severity)
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "labelset": self.labelset,
            "path": self.path,
            "ok": self.ok,
            "errors": len(self.errors),
            "warnings": len(self.warnings),
            "checked": dict(self.checked),
            "duration_s": round(self.duration_s, 3),
            "problems": [p.__dict__ for p in self.problems],
        }

    def render(self) -> str:
        lines = [f"Label set {self.labelset} ({self.path})"]
        groups: dict[str | None, list[LintProblem]] = {}
        census = [p for p in self.problems if p.file == CENSUS_FILE and p.label_id is None]
        for p in self.problems:
            if not (p.file == CENSUS_FILE and p.label_id is None):
                groups.setdefault(p.label_id, []).append(p)
        order = sorted(groups, key=lambda k: (k is not None, k or ""))
        for key in order:
            probs = groups[key]
            files = sorted({p.file for p in probs})
            head = key if key is not None else "label set"
            lines.append("")
            lines.append(f"{head}  ({', '.join(files)})" if key is not None else f"{head}:")
            for p in sorted(probs, key=lambda p: (p.severity != "error", p.check)):
                tag = "error  " if p.severity == "error" else "warning"
                where = f"{p.file}: " if key is None else ""
                lines.append(f"  {tag} {p.check:<24} {where}{p.message}")
        c = self.checked
        if census:
            counts: dict[str, list[int]] = {}
            for p in census:
                counts.setdefault(p.check, [0, 0])[p.severity != "error"] += 1
            lines.append("")
            lines.append(
                f"structural leaks across the set (census of {c.get('census_worlds', 0)} worlds, "
                f"{c.get('census_values', 0)} distinct values, {c.get('census_tested', 0)} seen in 3+ worlds; "
                "one line per value):"
            )
            for check, (ne, nw) in sorted(counts.items()):
                lines.append(f"  {check:<28} {ne} error(s), {nw} warning(s)")
            for p in sorted(census, key=lambda p: (p.severity != "error", p.check)):
                tag = "error  " if p.severity == "error" else "warning"
                lines.append(f"  {tag} {p.check:<28} {p.message}")
        summary = (
            f"{c.get('labels', 0)} label file(s), {c.get('snapshots', 0)} snapshot(s), "
            f"{c.get('key_evidence', 0)} key-evidence quer{'y' if c.get('key_evidence', 0) == 1 else 'ies'} "
            f"checked in {self.duration_s:.2f}s: "
        )
        ne, nw = len(self.errors), len(self.warnings)
        bad = len({p.label_id for p in self.errors if p.label_id})
        across = sum(1 for p in census if p.severity == "error")
        if ne:
            summary += f"{ne} error(s) in {bad} label(s)" + (f" and {across} across the set" if across else "")
            summary += ", " if nw else ""
        elif not nw:
            summary += "OK, no problems"
        else:
            summary += "OK, "
        if nw:
            summary += f"{nw} warning(s)"
        lines.append("")
        lines.append(("FAIL  " if ne else "PASS  ") + summary)
        return "\n".join(lines)
