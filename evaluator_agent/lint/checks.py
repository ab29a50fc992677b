"""Label set lint: every label of a set checked against its world, all problems reported.

``lint_labelset("smoke")`` (or a folder path) loads each label file on its own, so one broken
file does not hide the others, loads each referenced snapshot once, and runs the checks
below. The result is a :class:`LintReport`; ``report.ok`` is true when no *error* was found
(warnings are shown but do not fail the set) and ``report.render()`` is the human report.

Check ids (``Problem.check``) and what they mean; see :data:`CHECKS` for the one-liners:

labelset.*   the set itself: ``labelset.json`` present and valid, its name equal to the
             folder name, at least one label.
label.*      one label file: valid JSON (``label.json``), valid schema (``label.schema``, with
             the pydantic message), file name equal to the id, id opaque (``lbl_`` + 10 hex
             and no mechanism / segment word in it), id unique in the set.
snapshot.*   the world files: file present, gzip readable, sha256 of the uncompressed bytes
             equal to the name, valid ``WorldSnapshot``; the noise-free twin covers the same
             time range and topology; every file in the snapshots folder is named
             ``<sha256>.json.gz`` (no words).
world.*      what the world shows a target: ``world_id`` opaque; entity names (services,
             hosts, clusters, zones, teams, namespaces) that spell a mechanism.
leak.*       the answer reaching a target: the label's mechanism in the briefing's title or
             prompt; in the paging monitor; a root-cause entity named in the title, prompt or
             monitor text when it is not what the monitor watches; the label id anywhere a
             target can see (briefing, world data); tool names or result / data keys that
             spell a mechanism or ground-truth words (``root_cause``, ``mechanism`` ...).
             Across the set (:mod:`evaluator_agent.lint.leaks`, one problem per value, reported
             with ``label_id`` None and file ``(census)``): a value of any world field that
             occurs only in worlds of one mechanism (``leak.exclusive_mechanism``; an error
             when chance is implausible, else a warning), only on the culprit wherever it
             occurs (``leak.culprit_only``) or only on the causal chain
             (``leak.chain_only``, a warning); a metric name carrying an entity name of its
             world (``leak.entity_in_metric_name``).
trigger.*    the paging monitor exists in the world and is in Alert at the world's end;
             ``fired_at`` is inside the world's time range and within
             ``FIRED_AT_TOLERANCE_S`` of the monitor's transition to Alert.
time.*       onset, triggering change, incident and baseline windows inside the world range.
truth.*      ground-truth entities (root causes with their aliases, causal chain, first
             symptom, partial credit) exist in the world; no-fault consistency; taxonomy
             segment and category match the mechanism.
herring.*    every must-not-blame entity exists in the topology and has at least one signal
             (log, span, event, metric series or monitor) a target could be misled by; none
             is also a root cause.
evidence.*   every key-evidence query, run through the real Toolbox at ``now`` = world end,
             returns ok and contains ``expect`` the way scoring looks for it; an ``expect``
             that is a bare entity name of the world, or that listing calls return
             (list_services, list_metrics with any tag value, get_service_dependencies), is
             an error too (``evidence.listing_satisfies``): it proves nothing was looked at.
difficulty.* factors agree with the label: ``chain_length == len(causal_chain)`` (the
             generator's convention: entities from culprit to paged service; 0 for no-fault),
             ``red_herrings == len(must_not_blame)``, ``services`` == services in the world.
weights.*    rubric weights valid (``scoring.resolve_weights``).

Decisions worth knowing:

- The mechanism is looked for "in any spelling": its words joined by nothing, spaces, ``_``,
  ``-``, ``.`` or ``/`` (``connection_pool_exhaustion``, ``Connection pool exhaustion``,
  ``connection-pool-exhaustion``, ``OOMKilled``), plus a few unmistakable synonyms in the
  author-written text (``evict``, ``thundering herd``, ``expired cert`` ...; see
  :data:`MECHANISM_SYNONYMS`).
- Text written for the label (title, prompt) is judged apart from the paging monitor, which
  is world data: the monitor's name is removed from the title and prompt before they are
  searched. A monitor whose *query* measures the mechanism itself (``kafka.consumer_lag``
  for ``consumer_lag``) may name it: that is how real monitors read, so it is a warning
  (the label is easier than its tier may say). A monitor that names the mechanism in its
  name, message or tags while its query does not measure it is an error.
- Entity leaks: a root-cause name (or alias) in the title/prompt/monitor name/message is a
  leak unless the paging monitor watches that entity (it is one of the monitor's tag
  values, e.g. ``service:fulfillment`` when fulfillment is both culprit and symptom).
- Entity names: only distinctive mechanism words count when they appear alone (``oom``,
  ``crashloop``, ``evict*``, ``regression``, ``exhaust*``, ``contention``, ``outage``,
  ``stampede``, ``leak``), plus a few pairs (``cert-expir*``, ``tls-expir*``,
  ``cpu-throttl*``); generic words (``bad``, ``data``, ``lag``, ``release``, ``config``,
  ``feature``, ``flag``, ``pool``, ``query``, ``disk``, ``cache``, ``replica``, ``node``,
  ``zone``, ``dns``, ``retry`` ...) and words real components use (``throttler``,
  ``rebalancer``, ``storm``, ``session-expiry``, ``leaky-bucket``) only count as the whole
  mechanism phrase (``feature-flag*``, ``disk-full``, ``replica-lag``, ``retry-storm``).
  A name spelling the label's own mechanism is an error; one spelling another mechanism is
  a warning (misleading, but not the answer).
- Keys: a key naming ground truth (``root_cause``, ``culprit``, ``mechanism`` ...) or holding
  the label id is an error. A key of the world's data spelling the label's mechanism (a log
  attribute ``feature_flag`` on the culprit's errors) is realistic telemetry, so a warning;
  the same in a key the tools add themselves is an error.
- Label ids: ``lbl_`` + 10 hex is enforced by the schema; the word check can then only ever
  find ``bad`` (the one mechanism word made of hex letters), which is flagged as asked
  (about 1 id in 500 draws it: draw another).
- ``chain_length`` follows the generator (``len(causal_chain)``, entities not hops).
- Both the snapshot and its noise-free twin are hash-checked and schema-validated; the twin
  must also span the same time range, hold the same services and the paging monitor.
- Speed and memory: labels are checked grouped by world and each world is dropped after its
  group (the census keeps only a summary of each: its distinct values); a small process-wide
  LRU (keyed by file identity) serves repeat lints. Roughly 0.1 s per label on one core, most
  of it JSON parsing and WorldSnapshot validation; the census adds ~15 ms per world.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import re
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import pydantic_core
from pydantic import ValidationError

from evaluator_agent.core.labels import LABEL_ID_RE, Label, LabelSetInfo, labelsets_dir
from evaluator_agent.core.labels import snapshots_dir as default_snapshots_dir
from evaluator_agent.core.vocab import MECHANISM_INFO, SEGMENTS
from evaluator_agent.lint.leaks import Census, WorldTruth

__all__ = ["CHECKS", "LintReport", "Problem", "lint_labelset"]

log = logging.getLogger(__name__)

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

# A few unmistakable synonyms per mechanism (regex fragments), looked for in author text.
MECHANISM_SYNONYMS: dict[str, tuple[str, ...]] = {
    "oom_killed": (r"oom\b", r"out[\s_-]*of[\s_-]*memory"),
    "crashloop_bad_config": (r"crash[\s_-]*loop",),
    "cpu_throttling": (r"throttl",),
    "node_pressure_eviction": (r"evict", r"node[\s_-]*pressure"),
    "rebalance_storm": (r"rebalanc",),
    "bad_release": (r"bad[\s_-]*(?:deploy|release|build|version)",),
    "latency_regression": (r"regression",),
    "feature_flag": (r"feature[\s_-]*(?:flag|toggle)",),
    "connection_pool_exhaustion": (r"(?:connection|conn|db)[\s_-]*pool", r"pool[\s_-]*exhaust"),
    "slow_query_migration": (r"slow[\s_-]*quer", r"migration"),
    "lock_contention": (r"lock[\s_-]*(?:contention|wait)", r"deadlock"),
    "replica_lag": (r"replica(?:tion)?[\s_-]*lag",),
    "certificate_expiry": (r"(?:certificate|cert|tls|ssl)[\s_-]*expir", r"expired[\s_-]*(?:certificate|cert|tls|ssl)"),
    "dns_failure": (r"dns[\s_-]*(?:fail|resolution|error)", r"nxdomain"),
    "zone_outage": (r"(?:zone|zonal|az)[\s_-]*outage",),
    "cache_stampede": (r"stampede", r"thundering[\s_-]*herd", r"cold[\s_-]*cache"),
    "third_party_outage": (r"(?:third[\s_-]*party|vendor|provider)[\s_-]*outage",),
    "retry_storm": (r"retry[\s_-]*storm",),
    "disk_full": (r"disk[\s_-]*full", r"no[\s_-]*space[\s_-]*left", r"out[\s_-]*of[\s_-]*disk"),
    "memory_leak": (r"memory[\s_-]*leak", r"leak(?:s|ing|ed)?\b"),
    "gc_pauses": (r"gc[\s_-]*pause", r"garbage[\s_-]*collection[\s_-]*pause"),
    "bad_data": (r"bad[\s_-]*data", r"corrupt"),
    "no_fault": (r"false[\s_-]*alarm",),
}

# Entity-name check: words distinctive enough to count alone (prefix match on a name token).
# Left out on purpose, because real systems use them for unrelated components: "throttl"
# (rate-limit throttlers), "rebalanc" (shard rebalancers), "storm" (Apache Storm), "expir"
# (session expiry), "leaky" (leaky-bucket limiters).
_DISTINCTIVE_STEMS: dict[str, tuple[str, ...]] = {
    "crashloop_bad_config": ("crashloop",),
    "node_pressure_eviction": ("evict",),
    "latency_regression": ("regression",),
    "connection_pool_exhaustion": ("exhaust",),
    "lock_contention": ("contention",),
    "zone_outage": ("outage",),
    "third_party_outage": ("outage",),
    "cache_stampede": ("stampede",),
}
_EXACT_TOKENS: dict[str, tuple[str, ...]] = {
    "oom_killed": ("oom", "oomkilled", "oomkiller", "oomkill"),
    "memory_leak": ("leak", "leaks", "leaking", "memleak"),
}
# Two-token phrases (each token a prefix) besides the mechanism's own words.
_NAME_PHRASES: dict[str, tuple[tuple[str, str], ...]] = {
    "certificate_expiry": (("cert", "expir"), ("tls", "expir"), ("ssl", "expir")),
    "cpu_throttling": (("cpu", "throttl"),),
    "oom_killed": (("oom", "kill"),),
}

# Keys no result or world record should carry: they name the ground truth.
_TRUTH_KEY_WORDS = ("ground_truth", "groundtruth", "root_cause", "rootcause", "culprit", "red_herring",
                    "must_not_blame", "mechanism", "label_id", "injected", "scenario")

FIRED_AT_TOLERANCE_S = 300  # fired_at vs the paging monitor's transition to Alert
CENSUS_FILE = "(census)"  # Problem.file of set-level leaks found across all worlds
_TAG_VALUES = "a filtered list_metrics (tag values)"
_SNAPSHOT_NAME_RE = re.compile(r"^[0-9a-f]{64}\.json\.gz$")
_WORLD_ID_RE = re.compile(r"^w_[0-9a-f]{8,64}$")
_SEP = r"[\s_\-./]*"


def _mech_words(mech: str) -> list[str]:
    return mech.split("_")


@lru_cache(maxsize=64)
def _mechanism_re(mech: str, synonyms: bool) -> re.Pattern[str]:
    """The mechanism in any spelling (words joined by nothing or separators), optionally synonyms."""
    alts = [_SEP.join(map(re.escape, _mech_words(mech)))]
    if synonyms:
        alts += list(MECHANISM_SYNONYMS.get(mech, ()))
    return re.compile(r"(?<![a-z0-9])(?:" + "|".join(alts) + ")", re.IGNORECASE)


def _entity_re(names: Iterable[str]) -> re.Pattern[str] | None:
    names = sorted({n.lower() for n in names if n and len(n) >= 2}, key=len, reverse=True)
    if not names:
        return None
    alts = "|".join(re.escape(n) for n in names)
    return re.compile(rf"(?<![a-z0-9_\-./@])(?:{alts})(?![a-z0-9_]|[-.@][a-z0-9])", re.IGNORECASE)


def _name_tokens(name: str) -> list[str]:
    return [t for t in re.split(r"[^a-z0-9]+", name.lower()) if t]


@lru_cache(maxsize=65536)
def _name_spells(name: str, mech: str) -> str | None:
    """The word(s) of ``name`` that spell ``mech``, or None."""
    toks = _name_tokens(name)
    squashed = "".join(toks)
    phrase = "".join(_mech_words(mech))
    if len(phrase) >= 6 and phrase in squashed:
        return "-".join(_mech_words(mech))
    words = _mech_words(mech)
    n = len(words)
    for i in range(len(toks) - n + 1):  # the whole phrase as tokens, the last one as a prefix
        if toks[i : i + n - 1] == words[:-1] and toks[i + n - 1].startswith(words[-1]):
            return "-".join(toks[i : i + n])
    for first, second in _NAME_PHRASES.get(mech, ()):
        for i in range(len(toks) - 1):
            if toks[i].startswith(first) and toks[i + 1].startswith(second):
                return f"{toks[i]}-{toks[i + 1]}"
    for t in toks:
        if t in _EXACT_TOKENS.get(mech, ()):
            return t
        for stem in _DISTINCTIVE_STEMS.get(mech, ()):
            if t.startswith(stem):
                return t
    return None


# --------------------------------------------------------------------------- report


@dataclass(frozen=True)
class Problem:
    label_id: str | None
    file: str
    check: str
    message: str
    severity: str = "error"  # "error" | "warning"


@dataclass
class LintReport:
    labelset: str
    path: str
    problems: list[Problem] = field(default_factory=list)
    checked: dict[str, int] = field(default_factory=dict)
    duration_s: float = 0.0

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
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
        groups: dict[str | None, list[Problem]] = {}
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


# --------------------------------------------------------------------------- worlds


def _iter_keys(obj: Any) -> Iterator[str]:
    stack = [obj]
    while stack:
        x = stack.pop()
        if isinstance(x, dict):
            for k, v in x.items():
                yield k
                if isinstance(v, (dict, list)):
                    stack.append(v)
        elif isinstance(x, list):
            stack.extend(v for v in x if isinstance(v, (dict, list)))


class _World:
    """One loaded snapshot with the lookups the checks need (built lazily, once)."""

    def __init__(self, digest: str, data: dict[str, Any], raw: bytes):
        self.digest = digest
        self.data = data
        self.raw_lower = raw.decode("utf-8", "replace").lower()
        self.start = float(data["start"])
        self.end = float(data["end"])
        self.monitors = {m["id"]: m for m in data.get("monitors", [])}
        topo = data.get("topology") or {}
        self.services = {s["name"] for s in topo.get("services", [])}
        names: dict[str, str] = {}  # lower name -> kind of entity

        def add(n: str | None, kind: str) -> None:
            if n:
                names.setdefault(n.lower(), kind)

        for s in topo.get("services", []):
            add(s["name"], "service")
            for h in s.get("hosts", []):
                add(h, "host")
        for h in topo.get("hosts", []):
            add(h["name"], "host")
            add(h.get("zone"), "zone")
        for c in topo.get("clusters", []):
            add(c["name"], "cluster")
            for z in c.get("zones", []):
                add(z, "zone")
            add(c.get("region"), "region")
        for t in topo.get("teams", []):
            add(t["name"], "team")
        for s in topo.get("services", []):
            add(s.get("namespace"), "namespace")
            add(s.get("cluster"), "cluster")
        self.names = names
        self.norm_names = {_norm(n): n for n in names}
        self._index: Any = None
        self._toolbox: Any = None
        self._signals: tuple[set[str], str] | None = None
        self._keys: set[str] | None = None
        self._spelled: list[tuple[str, str, str, str]] | None = None
        self._listing: list[tuple[str, Any]] | None = None

    def has_entity(self, name: str) -> bool:
        low = name.strip().lower()
        return low in self.names or _norm(name) in self.norm_names

    def event_ids(self) -> set[str]:
        return {str(e["id"]).lower() for e in self.data.get("events", [])}

    def signals(self) -> tuple[set[str], str]:
        """(tag/service/host values seen in any signal, text of event and monitor wording)."""
        if self._signals is None:
            vals: set[str] = set()
            d = self.data
            for r in d.get("logs", []):
                vals.add(r["service"])
                if r.get("host"):
                    vals.add(r["host"])
            for s in d.get("spans", []):
                vals.add(s["service"])
                vals.update(v for v in (s.get("tags") or {}).values() if isinstance(v, str))
            for m in d.get("metrics", []):
                vals.update((m.get("tags") or {}).values())
            texts = []
            for e in d.get("events", []):
                vals.update((e.get("tags") or {}).values())
                texts.append(f"{e.get('title', '')}\n{e.get('text', '')}")
            for m in d.get("monitors", []):
                vals.update((m.get("tags") or {}).values())
                texts.append(f"{m.get('name', '')}\n{m.get('query', '')}\n{m.get('message', '')}")
            low = {v.lower() for v in vals if isinstance(v, str)}
            self._signals = (low | {_norm(v) for v in low}, "\n".join(texts).lower())
        return self._signals

    def visible(self, entity: str) -> bool:
        vals, text = self.signals()
        if entity.lower() in vals or _norm(entity) in vals:
            return True
        rx = _entity_re([entity, _norm(entity)])
        return bool(rx and rx.search(text))

    def keys(self) -> set[str]:
        """Every key a tool result can show from the data: tag keys, log attribute keys (nested)."""
        if self._keys is None:
            keys: set[str] = set()
            nested: list[Any] = []
            d = self.data
            for group, fld in (("metrics", "tags"), ("logs", "attrs"), ("spans", "tags"), ("events", "tags"),
                               ("monitors", "tags")):
                for r in d.get(group, []):
                    sub = r.get(fld)
                    if sub:
                        keys.update(sub)
                        if fld == "attrs":
                            nested.extend(v for v in sub.values() if isinstance(v, (dict, list)))
            keys.update(_iter_keys(nested))
            self._keys = keys
        return self._keys

    def spelled_names(self) -> list[tuple[str, str, str, str]]:
        """(name, kind, mechanism, matched words) for entity names that spell a mechanism."""
        if self._spelled is None:
            self._spelled = [
                (name, kind, mech, hit)
                for name, kind in sorted(self.names.items())
                for mech in MECHANISM_INFO
                if (hit := _name_spells(name, mech)) is not None
            ]
        return self._spelled

    def toolbox(self) -> Any:
        if self._toolbox is None:
            from evaluator_agent.telemetry.index import WorldIndex
            from evaluator_agent.telemetry.tools import Toolbox

            self._index = WorldIndex.from_dict(self.data)
            self._toolbox = Toolbox(self._index, now=self.end)
        return self._toolbox

    def listing(self) -> list[tuple[str, Any]]:
        """(tool, scoring's view of its results) for the listing calls: every page of
        list_services and list_metrics, the dependencies of every service, and every tag
        value of every metric series (what filtered list_metrics calls can show)."""
        if self._listing is None:
            from evaluator_agent.engine.scoring import ViewedResult, _Seen

            tb = self.toolbox()
            out: list[tuple[str, Any]] = []
            for tool in ("list_services", "list_metrics"):
                pages: list[Any] = []
                args: dict[str, Any] = {"limit": 500}
                for _ in range(1000):
                    res = tb.call(tool, dict(args))
                    if not res.ok:
                        break
                    pages.append(res.content)
                    cursor = res.content.get("next_cursor") if isinstance(res.content, dict) else None
                    if not cursor:
                        break
                    args["cursor"] = cursor
                out.append((tool, pages))
            topo = self.data.get("topology") or {}
            out.append(("get_service_dependencies", topo.get("dependencies") or []))
            tag_values = sorted({f"{k}:{v}" for m in self.data.get("metrics", []) for k, v in (m.get("tags") or {}).items()})
            out.append((_TAG_VALUES, tag_values))
            self._listing = [
                (tool, _Seen(ViewedResult(tool=tool, arguments={}, ok=True,
                                          text=json.dumps(content, default=str, separators=(",", ":")))))
                for tool, content in out
            ]
        return self._listing

    def monitor_state(self, m: dict[str, Any]) -> str:
        """State at the world's end, the way get_monitors computes it."""
        trans = sorted(m.get("transitions") or [], key=lambda t: t["ts"])
        past = [t for t in trans if t["ts"] <= self.end]
        if past:
            return past[-1]["to"]
        if trans:
            return trans[0]["from"]
        return m.get("state", "OK")


def _norm(name: str) -> str:
    from evaluator_agent.engine.scoring import normalize_entity

    return normalize_entity(name)


_SHARED: dict[tuple[Any, ...], tuple[_World | None, list[tuple[str, str]]]] = {}
_SHARED_CAPACITY = 6


class _Snapshots:
    """Snapshots by hash, each read, verified and validated once per lint run."""

    def __init__(self, directory: Path):
        self.directory = directory
        self._cache: dict[str, tuple[_World | None, list[tuple[str, str]]]] = {}
        self.loaded: set[str] = set()

    def __len__(self) -> int:
        return len(self.loaded)

    def get(self, digest: str) -> tuple[_World | None, list[tuple[str, str]]]:
        if digest not in self._cache:
            self._cache[digest] = self._load_shared(digest)
            self.loaded.add(digest)
        return self._cache[digest]

    def _load_shared(self, digest: str) -> tuple[_World | None, list[tuple[str, str]]]:
        """Through a small process-wide LRU keyed by the file's identity (repeat lints, tests)."""
        path = self.directory / f"{digest}.json.gz"
        try:
            st = path.stat()
        except OSError:
            return self._load(digest)
        key = (digest, str(path.resolve()), st.st_ino, st.st_mtime_ns, st.st_size)
        hit = _SHARED.pop(key, None)
        if hit is None:
            hit = self._load(digest)
        _SHARED[key] = hit
        while len(_SHARED) > _SHARED_CAPACITY:
            _SHARED.pop(next(iter(_SHARED)))
        return hit

    def release(self, digest: str) -> None:
        """Forget a loaded world (a big dict and index); a later get loads it again."""
        self._cache.pop(digest, None)

    def _load(self, digest: str) -> tuple[_World | None, list[tuple[str, str]]]:
        from evaluator_agent.telemetry.world import WORLD_SCHEMA_VERSION, WorldSnapshot

        short = digest[:12]
        path = self.directory / f"{digest}.json.gz"
        if not path.is_file():
            return None, [("snapshot.missing", f"snapshot {short}… not found: {path}")]
        try:
            raw = gzip.decompress(path.read_bytes())
        except (OSError, EOFError) as e:
            return None, [("snapshot.gzip", f"snapshot {short}… is not valid gzip: {e}")]
        problems: list[tuple[str, str]] = []
        actual = hashlib.sha256(raw).hexdigest()
        if actual != digest:
            problems.append(
                ("snapshot.hash", f"snapshot {short}… does not match its content hash (sha256 of its bytes is {actual[:12]}…)")
            )
        try:
            data = pydantic_core.from_json(raw)  # ~2x faster than json.loads on big snapshots
        except ValueError as e:
            return None, problems + [("snapshot.schema", f"snapshot {short}… is not valid JSON: {e}")]
        if not isinstance(data, dict) or data.get("schema_version") != WORLD_SCHEMA_VERSION:
            got = data.get("schema_version") if isinstance(data, dict) else type(data).__name__
            return None, problems + [("snapshot.schema", f"snapshot {short}… has unsupported schema_version {got!r}")]
        try:
            WorldSnapshot.model_validate(data)
        except ValidationError as e:
            return None, problems + [("snapshot.schema", f"snapshot {short}… is not a valid WorldSnapshot: {_short_validation(e)}")]
        return _World(digest, data, raw), problems


def _short_validation(e: ValidationError, limit: int = 5) -> str:
    errs = e.errors()
    parts = []
    for err in errs[:limit]:
        loc = ".".join(str(x) for x in err.get("loc", ())) or "(root)"
        parts.append(f"{loc}: {err.get('msg', '')}")
    more = f" (+{len(errs) - limit} more)" if len(errs) > limit else ""
    return f"{len(errs)} validation error(s): " + "; ".join(parts) + more


# --------------------------------------------------------------------------- the linter


def _resolve_folder(name_or_path: str | Path, labelsets_root: Path | None) -> Path:
    """A plain name is a set under the labelsets root; anything with a separator is a folder path."""
    p = Path(name_or_path)
    if p.is_absolute() or len(p.parts) > 1:
        return p
    root = Path(labelsets_root) if labelsets_root is not None else labelsets_dir()
    return root / p


def _ts(dt: datetime) -> float:
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


_MIN_WORLDS_PER_JOB = 8  # below this a worker process costs more than it saves


def _chunks(groups: list[Any], jobs: int) -> list[list[Any]]:
    """``groups`` in at most ``jobs`` contiguous runs of near-equal size."""
    jobs = max(1, min(jobs, len(groups)))
    size, extra = divmod(len(groups), jobs)
    out, i = [], 0
    for j in range(jobs):
        n = size + (j < extra)
        out.append(groups[i : i + n])
        i += n
    return [c for c in out if c]


def _lint_chunk(
    folder: Path, snapshots: Path, groups: list[list[tuple[Label, str]]]
) -> tuple[list[Problem], dict[str, int], Census, set[str]]:
    """Worker entry: lint some worlds' labels; return problems, counters, census part, hashes."""
    linter = _Linter(folder, snapshots)
    census = Census()
    linter._lint_worlds(groups, census)
    return linter.problems, linter.checked, census, linter.snaps.loaded


class _Linter:
    def __init__(self, folder: Path, snapshots: Path, jobs: int = 1):
        self.jobs = jobs
        self.folder = folder
        self.snaps = _Snapshots(snapshots)
        self.snap_dir = snapshots
        self.problems: list[Problem] = []
        self.checked = {"labels": 0, "valid_labels": 0, "snapshots": 0, "key_evidence": 0, "tool_calls": 0}

    def add(self, label_id: str | None, file: str | Path, check: str, message: str, severity: str = "error") -> None:
        assert check in CHECKS, check
        self.problems.append(Problem(label_id, str(file), check, message, severity))

    # ---------------------------------------------------------------- set level

    def run(self) -> None:
        folder = self.folder
        if not folder.is_dir():
            self.add(None, folder, "labelset.missing", f"label set folder {folder} does not exist")
            return
        info_path = folder / "labelset.json"
        if not info_path.is_file():
            self.add(None, info_path.name, "labelset.missing", f"{info_path} is missing")
        else:
            try:
                info = LabelSetInfo.model_validate_json(info_path.read_bytes())
                if info.name != folder.name:
                    self.add(None, info_path.name, "labelset.name",
                             f"name {info.name!r} differs from the folder name {folder.name!r}")
            except ValidationError as e:
                check = "labelset.json" if _is_json_error(e) else "labelset.schema"
                self.add(None, info_path.name, check, f"invalid labelset.json: {_short_validation(e)}")
        files = sorted(p for p in folder.glob("*.json") if p.name != "labelset.json")
        if not files:
            self.add(None, folder.name, "labelset.empty", "the label set has no label files")
        self._check_tool_names()
        seen: dict[str, list[str]] = {}
        valid: list[tuple[Label, str]] = []
        for path in files:
            self.checked["labels"] += 1
            parsed = self._lint_file(path, seen)
            if parsed is not None:
                valid.append(parsed)
        for lid, names in seen.items():
            if len(names) < 2:
                continue
            # Blame the copies: every file but the one named after the id (or but the first).
            keep = f"{lid}.json" if f"{lid}.json" in names else names[0]
            for n in names:
                if n != keep:
                    others = ", ".join(x for x in names if x != n)
                    self.add(lid, n, "label.duplicate_id", f"id {lid} is also used by {others}")
        # Labels grouped by world, each world released after its group: memory stays at a
        # couple of worlds per process however large the set is.
        valid.sort(key=lambda x: (x[0].world.snapshot, x[0].id))
        groups: list[list[tuple[Label, str]]] = []
        for label, fname in valid:
            if groups and groups[-1][0][0].world.snapshot == label.world.snapshot:
                groups[-1].append((label, fname))
            else:
                groups.append([(label, fname)])
        chunks = _chunks(groups, self.jobs if len(groups) >= 2 * _MIN_WORLDS_PER_JOB else 1)
        census = Census()
        if len(chunks) <= 1:
            self._lint_worlds(groups, census)
        else:
            self._lint_in_processes(chunks, census)
        self._census_report(census)
        self._check_snapshot_folder()
        self.checked["snapshots"] = len(self.snaps)

    def _lint_worlds(self, groups: list[list[tuple[Label, str]]], census: Census) -> None:
        """Per-label checks and the census, one world (and its twin) loaded at a time."""
        for group in groups:
            for label, fname in group:
                try:
                    _LabelCheck(self, label, fname).run()
                except Exception as e:  # noqa: BLE001 - a bug of ours must not hide the other labels
                    log.exception("lint crashed on %s", label.id)
                    self.add(label.id, fname, "lint.internal", f"lint itself failed on this label: {type(e).__name__}: {e}")
            self._census_world(census, group)
            for label, _ in group:
                self.snaps.release(label.world.snapshot)
                if label.world.snapshot_noise_free:
                    self.snaps.release(label.world.snapshot_noise_free)

    def _lint_in_processes(self, chunks: list[list[list[tuple[Label, str]]]], census: Census) -> None:
        """The same, each chunk of worlds in a worker process; results merged in chunk order,
        so the report is the one a single process gives."""
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        ctx = multiprocessing.get_context("spawn")  # the caller may run threads (servers, tests)
        with ProcessPoolExecutor(max_workers=len(chunks), mp_context=ctx) as pool:
            futures = [pool.submit(_lint_chunk, self.folder, self.snap_dir, chunk) for chunk in chunks]
            for chunk, fut in zip(chunks, futures, strict=True):
                try:
                    problems, checked, part, loaded = fut.result()
                except Exception as e:  # noqa: BLE001 - a worker that died loses its chunk, not the run
                    log.exception("lint worker failed")
                    for label, fname in (x for g in chunk for x in g):
                        self.add(label.id, fname, "lint.internal", f"lint worker failed: {type(e).__name__}: {e}")
                    continue
                self.problems.extend(problems)
                for k in ("key_evidence", "tool_calls"):
                    self.checked[k] += checked[k]
                census.merge(part)
                self.snaps.loaded |= loaded

    # ---------------------------------------------------------------- census

    def _census_world(self, census: Census, group: list[tuple[Label, str]]) -> None:
        """Feed one world (still loaded) and its labels to the set-level leak census."""
        world, _ = self.snaps.get(group[0][0].world.snapshot)
        if world is None:
            return
        try:
            census.add_world(world.data, WorldTruth.from_labels([lb for lb, _ in group]))
        except Exception as e:  # noqa: BLE001 - a bug of ours must not hide the other checks
            log.exception("leak census crashed on world %s", world.digest)
            lb, fname = group[0]
            self.add(lb.id, fname, "lint.internal", f"the leak census failed on this world: {type(e).__name__}: {e}")

    def _census_report(self, census: Census) -> None:
        """Set-level leaks, one problem per value (see :mod:`evaluator_agent.lint.leaks`)."""
        try:
            found = census.leaks()
        except Exception as e:  # noqa: BLE001
            log.exception("leak census crashed")
            self.add(None, CENSUS_FILE, "lint.internal", f"the leak census failed: {type(e).__name__}: {e}")
            return
        for leak in found:
            self.add(None, CENSUS_FILE, leak.check, leak.message, leak.severity)
        self.checked["census_worlds"] = census.worlds
        self.checked["census_values"] = census.values
        self.checked["census_tested"] = census.tested

    def _check_tool_names(self) -> None:
        from evaluator_agent.telemetry.catalog import TOOL_SPECS

        for spec in TOOL_SPECS:
            for mech in MECHANISM_INFO:
                if _mechanism_re(mech, False).search(spec.name):
                    self.add(None, "tool_catalog.py", "leak.tool_metadata", f"tool name {spec.name!r} spells mechanism {mech}")
            for key in _iter_keys(spec.parameters.get("properties", {})):
                if _truth_word(key):
                    self.add(None, "tool_catalog.py", "leak.tool_metadata",
                             f"tool {spec.name} has an argument named {key!r}")

    def _check_snapshot_folder(self) -> None:
        if not self.snap_dir.is_dir():
            return
        for p in sorted(self.snap_dir.iterdir()):
            if p.name.startswith(".") or _SNAPSHOT_NAME_RE.match(p.name):
                continue
            if re.fullmatch(r"[0-9a-f]{64}\.json\.tmp", p.name):
                self.add(None, p.name, "snapshot.filename",
                         "leftover temporary file from an interrupted write_snapshot", "warning")
                continue
            self.add(None, p.name, "snapshot.filename",
                     f"file {p.name!r} in {self.snap_dir} is not named <sha256>.json.gz (snapshot names carry no words)")

    # ---------------------------------------------------------------- one file

    def _lint_file(self, path: Path, seen: dict[str, list[str]]) -> tuple[Label, str] | None:
        fname = path.name
        raw = path.read_bytes()
        try:
            doc = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as e:
            self.add(None, fname, "label.json", f"not valid JSON: {e}")
            return None
        raw_id = doc.get("id") if isinstance(doc, dict) else None
        lid = raw_id if isinstance(raw_id, str) else None
        if lid is not None:
            seen.setdefault(lid, []).append(fname)
            if path.stem != lid:
                self.add(lid, fname, "label.filename", f"file name must be the label id: {lid}.json (is {fname})")
            self._check_id_words(lid, fname)
        try:
            label = Label.model_validate_json(raw)
        except ValidationError as e:
            id_errs = [err for err in e.errors() if tuple(err.get("loc", ())) == ("id",)]
            other = [err for err in e.errors() if tuple(err.get("loc", ())) != ("id",)]
            if id_errs:
                self.add(lid, fname, "label.id_opaque", f"id {raw_id!r}: {id_errs[0].get('msg', '')}")
            if other:
                self.add(lid, fname, "label.schema", f"invalid label: {_short_validation(e)}")
            return None
        self.checked["valid_labels"] += 1
        return label, fname

    def _check_id_words(self, lid: str, fname: str) -> None:
        if not LABEL_ID_RE.match(lid):
            return  # the schema reports it
        body = lid[4:]
        words = {w for m in MECHANISM_INFO for w in _mech_words(m) if len(w) >= 3}
        words |= {w for s in SEGMENTS for w in s.split("_") if len(w) >= 3}
        hits = sorted(w for w in words if w in body)
        if hits:
            self.add(lid, fname, "label.id_opaque",
                     f"id {lid} contains the mechanism/segment word(s) {', '.join(hits)}; draw another id")


def _is_json_error(e: ValidationError) -> bool:
    errs = e.errors()
    return bool(errs) and all(err.get("type") == "json_invalid" for err in errs)


def _truth_word(key: str) -> str | None:
    k = key.lower().replace("-", "_").replace(".", "_")
    for w in _TRUTH_KEY_WORDS:
        if w in k or w.replace("_", "") in k.replace("_", ""):
            return w
    return None


class _LabelCheck:
    """All checks of one schema-valid label."""

    def __init__(self, linter: _Linter, label: Label, fname: str):
        self.L = linter
        self.label = label
        self.fname = fname
        self.gt = label.ground_truth

    def add(self, check: str, message: str, severity: str = "error") -> None:
        self.L.add(self.label.id, self.fname, check, message, severity)

    def run(self) -> None:
        lb = self.label
        self._static_checks()
        world, probs = self.L.snaps.get(lb.world.snapshot)
        for check, msg in probs:
            self.add(check, msg)
        nf_world = None
        if lb.world.snapshot_noise_free:
            nf_world, nf_probs = self.L.snaps.get(lb.world.snapshot_noise_free)
            for check, msg in nf_probs:
                self.add(check, "noise-free " + msg)
        if world is None:
            return
        if nf_world is not None:
            self._noise_free(world, nf_world)
        self._world_checks(world)
        self._trigger_and_time(world)
        self._briefing_leaks(world)
        self._entities(world)
        self._herrings(world)
        self._evidence(world)
        if lb.difficulty.factors.services != len(world.services):
            self.add("difficulty.factors",
                     f"factors.services is {lb.difficulty.factors.services} but the world has {len(world.services)} services")

    # ---------------------------------------------------------------- label-only

    def _static_checks(self) -> None:
        lb, gt = self.label, self.gt
        f = lb.difficulty.factors
        want_chain = 0 if gt.no_fault else len(gt.causal_chain)
        if f.chain_length != want_chain:
            self.add("difficulty.factors",
                     f"factors.chain_length is {f.chain_length} but the causal chain has {len(gt.causal_chain)} "
                     f"entities (expected {want_chain})")
        if f.red_herrings != len(gt.must_not_blame):
            self.add("difficulty.factors",
                     f"factors.red_herrings is {f.red_herrings} but must_not_blame lists {len(gt.must_not_blame)}")
        try:
            from evaluator_agent.engine.scoring import resolve_weights

            resolve_weights(lb)
        except ValueError as e:
            self.add("weights.invalid", str(e))
        if gt.no_fault:
            bad = []
            if gt.causal_chain:
                bad.append(f"causal_chain {gt.causal_chain}")
            if gt.partial_credit:
                bad.append("partial_credit entries")
            if gt.triggering_change and gt.triggering_change.kind != "none" and gt.triggering_change.entity:
                bad.append(f"a triggering change on {gt.triggering_change.entity}")
            if lb.taxonomy.problem_category != MECHANISM_INFO["no_fault"][1]:
                bad.append(f"problem_category {lb.taxonomy.problem_category!r} (expected 'none')")
            if bad:
                self.add("truth.no_fault", "a no-fault label has " + ", ".join(bad))
        else:
            if lb.taxonomy.problem_category == "none":
                self.add("truth.no_fault", "a fault label has problem_category 'none'")
            if not gt.causal_chain:
                self.add("truth.no_fault", "a fault label has an empty causal_chain")
            elif gt.root_causes and not any(
                _norm(gt.causal_chain[0]) in {_norm(x) for x in [rc.entity, *rc.aliases]} for rc in gt.root_causes
            ):
                self.add("truth.no_fault",
                         f"the causal chain starts at {gt.causal_chain[0]!r}, not at a root cause")
            seg, cat = MECHANISM_INFO[gt.mechanism]
            if lb.taxonomy.segment != seg or lb.taxonomy.problem_category != cat:
                self.add("truth.taxonomy",
                         f"mechanism {gt.mechanism} belongs to segment {seg!r} / category {cat!r}, label says "
                         f"{lb.taxonomy.segment!r} / {lb.taxonomy.problem_category!r}")

    # ---------------------------------------------------------------- world

    def _noise_free(self, w: _World, nf: _World) -> None:
        diffs = []
        if (w.start, w.end) != (nf.start, nf.end):
            diffs.append(f"time range {_iso(nf.start)}..{_iso(nf.end)} vs {_iso(w.start)}..{_iso(w.end)}")
        if w.services != nf.services:
            diffs.append(f"services differ ({len(w.services ^ nf.services)} names)")
        mid = self.label.task.trigger.monitor_id
        if mid is not None and mid in w.monitors and mid not in nf.monitors:
            diffs.append(f"paging monitor {mid} missing")
        if diffs:
            self.add("snapshot.noise_free", "the noise-free world differs: " + "; ".join(diffs))

    def _world_checks(self, w: _World) -> None:
        lb = self.label
        wid = str(w.data.get("world_id", ""))
        if not _WORLD_ID_RE.match(wid):
            self.add("world.id_opaque", f"world_id {wid!r} is not opaque ('w_' followed by hex digits)")
        for name, kind, mech, hit in w.spelled_names():
            if mech == lb.ground_truth.mechanism:
                self.add("world.entity_name", f"{kind} name {name!r} spells the label's mechanism {mech} ({hit!r})")
            else:
                self.add("world.entity_name",
                         f"{kind} name {name!r} spells mechanism {mech} ({hit!r}); misleading, not the answer",
                         "warning")
        if lb.id.lower() in w.raw_lower:
            self.add("leak.label_id", f"the label id {lb.id} appears in the world snapshot data")
        mech_rx = _mechanism_re(lb.ground_truth.mechanism, False)
        for key in sorted(w.keys()):
            self._check_key(key, "world data key", mech_rx)

    def _check_key(self, key: str, where: str, mech_rx: re.Pattern[str], data_key: bool = True) -> None:
        """Ground-truth words or the label id in a key: error; the mechanism's spelling: warning
        for a key of the world's data, error for a key the tools themselves add.

        A data key spelled like the mechanism (a log attribute ``feature_flag``) is realistic
        telemetry, but when it is the only thing an agent needs to read, the label is easier
        than it should be; so it is reported, as a warning.
        """
        if self.label.id.lower() in key.lower():
            self.add("leak.tool_metadata", f"{where} {key!r} contains the label id")
        elif (word := _truth_word(key)) is not None:
            self.add("leak.tool_metadata", f"{where} {key!r} names ground truth ({word})")
        elif mech_rx.search(key) and not data_key:
            self.add("leak.tool_metadata", f"{where} {key!r} (added by the tools) spells the mechanism {self.gt.mechanism}")
        elif mech_rx.search(key):
            self.add("leak.tool_metadata",
                     f"{where} {key!r} spells the mechanism {self.gt.mechanism}; realistic attribute names are fine, "
                     "but make sure it also appears outside the incident", "warning")

    def _trigger_and_time(self, w: _World) -> None:
        lb, gt = self.label, self.gt
        trig = lb.task.trigger
        rng = f"world range {_iso(w.start)}..{_iso(w.end)}"
        if trig.monitor_id is not None:
            m = w.monitors.get(trig.monitor_id)
            if m is None:
                self.add("trigger.monitor_missing",
                         f"trigger.monitor_id {trig.monitor_id} is not a monitor of the world "
                         f"({len(w.monitors)} monitors: {', '.join(map(str, sorted(w.monitors)[:8]))}…)")
            else:
                state = w.monitor_state(m)
                if state != "Alert":
                    self.add("trigger.monitor_state",
                             f"paging monitor {trig.monitor_id} ({m['name']!r}) is {state!r} at the world's end, not 'Alert'")
                fired_at = _ts(trig.fired_at)
                alerts = [t["ts"] for t in m.get("transitions") or [] if t.get("to") == "Alert"]
                if alerts and min(abs(t - fired_at) for t in alerts) > FIRED_AT_TOLERANCE_S:
                    near = min(alerts, key=lambda t: abs(t - fired_at))
                    self.add("trigger.fired_at",
                             f"fired_at {_iso(fired_at)} but the paging monitor went to Alert at {_iso(near)} "
                             f"({abs(near - fired_at):.0f}s apart)")
        fired = _ts(trig.fired_at)
        if not (w.start <= fired <= w.end):
            self.add("trigger.fired_at", f"fired_at {_iso(fired)} is outside the {rng}")
        if gt.onset is not None and not (w.start <= _ts(gt.onset) <= w.end):
            self.add("time.onset", f"onset {_iso(_ts(gt.onset))} is outside the {rng}")
        tc = gt.triggering_change
        if tc is not None and tc.at is not None and not (w.start <= _ts(tc.at) <= w.end):
            self.add("time.triggering_change", f"triggering change at {_iso(_ts(tc.at))} is outside the {rng}")
        for check, name, win in (
            ("time.incident_window", "incident", lb.world.incident_window),
            ("time.baseline_window", "baseline", lb.world.baseline_window),
        ):
            a, b = _ts(win.start), _ts(win.end)
            if a < w.start or b > w.end:
                self.add(check, f"{name} window {_iso(a)}..{_iso(b)} is outside the {rng}")
        if gt.onset is not None:
            a, b = _ts(lb.world.incident_window.start), _ts(lb.world.incident_window.end)
            if not (a <= _ts(gt.onset) <= b):
                self.add("time.onset", f"onset {_iso(_ts(gt.onset))} is outside the incident window {_iso(a)}..{_iso(b)}")

    # ---------------------------------------------------------------- leaks

    def _briefing_leaks(self, w: _World) -> None:
        from evaluator_agent.core.protocol import Budget
        from evaluator_agent.engine.investigation import build_briefing

        lb, gt = self.label, self.gt
        header = {"start": w.data["start"], "end": w.data["end"], "monitors": w.monitors}
        br = build_briefing(lb, header, Budget(), "inv_lint")
        title, prompt, mon = br.problem.title, br.problem.prompt, br.problem.monitor
        mon_name = (mon or {}).get("name", "") or ""

        def author(text: str) -> str:  # the text minus quotations of the monitor's own name
            return text.replace(mon_name, " ") if mon_name else text

        mech = gt.mechanism
        loose = _mechanism_re(mech, True)
        for where, text in (("title", author(title)), ("prompt", author(prompt))):
            m = loose.search(text)
            if m:
                self.add("leak.mechanism", f"the {where} names the mechanism {mech} ({_snip(text, m)})")
        if mon:
            strict = _mechanism_re(mech, False)
            fields = {
                "name": mon.get("name", ""),
                "message": mon.get("message", ""),
                "tags": " ".join(mon.get("tags", [])),
                "query": mon.get("query", ""),
            }
            measured = bool(strict.search(fields["query"]))
            hits = []
            for where, text in fields.items():
                m = strict.search(text) or (loose.search(text) if where != "query" else None)
                if m:
                    hits.append(f"{where}: {_snip(text, m)}")
            if hits and measured:
                self.add("leak.monitor_mechanism",
                         f"the paging monitor names the mechanism {mech} ({'; '.join(hits)}); its query measures "
                         "it, which is realistic but makes the label easier", "warning")
            elif hits:
                self.add("leak.monitor_mechanism",
                         f"the paging monitor names the mechanism {mech} ({'; '.join(hits)}) though its query "
                         "does not measure it")
        # Root-cause entities the briefing should not name.
        watched = set()
        if mon:
            for tag in mon.get("tags", []):
                watched.add(tag.split(":", 1)[-1].lower())
        watched_norm = {_norm(x) for x in watched}
        for rc in gt.root_causes:
            spellings = [rc.entity, *rc.aliases]
            if any(s.lower() in watched or _norm(s) in watched_norm for s in spellings):
                continue  # the monitor watches the culprit itself: naming it is not a leak
            rx = _entity_re(spellings)
            if rx is None:
                continue
            texts = [("title", author(title)), ("prompt", author(prompt))]
            if mon:
                texts += [("monitor name", mon.get("name", "")), ("monitor message", mon.get("message", ""))]
            for where, text in texts:
                m = rx.search(text)
                if m:
                    self.add("leak.entity", f"the {where} names root cause {rc.entity!r} ({_snip(text, m)})")
        blob = "\n".join([title, prompt, json.dumps(mon or {})]).lower()
        if lb.id.lower() in blob:
            self.add("leak.label_id", f"the briefing shows the label id {lb.id}")

    # ---------------------------------------------------------------- entities

    def _entities(self, w: _World) -> None:
        gt = self.gt
        for rc in gt.root_causes:
            spellings = [rc.entity, *rc.aliases]
            found = any(w.has_entity(s) for s in spellings)
            if not found and rc.kind in ("change", "external"):
                ids = w.event_ids()
                found = any(s.lower() in ids for s in spellings) or any(w.visible(s) for s in spellings)
            if not found:
                what = "topology" + (" or events" if rc.kind in ("change", "external") else "")
                self.add("truth.unknown_entity",
                         f"root cause {rc.entity!r} (kind {rc.kind}, aliases {rc.aliases}) is not in the world's {what}")
        aliases = {_norm(s) for rc in gt.root_causes for s in [rc.entity, *rc.aliases]}
        for what, names in (
            ("causal_chain entity", gt.causal_chain),
            ("first_symptom", [gt.first_symptom] if gt.first_symptom else []),
            ("partial_credit entity", [p.entity for p in gt.partial_credit]),
        ):
            for n in names:
                if not w.has_entity(n) and _norm(n) not in aliases:
                    self.add("truth.unknown_entity", f"{what} {n!r} is not in the world's topology")

    def _herrings(self, w: _World) -> None:
        culprits = {_norm(s) for rc in self.gt.root_causes for s in [rc.entity, *rc.aliases]}
        for rh in self.gt.must_not_blame:
            if _norm(rh.entity) in culprits:
                self.add("herring.is_root_cause", f"red herring {rh.entity!r} is also a root cause (or its alias)")
            if not w.has_entity(rh.entity):
                self.add("herring.unknown", f"red herring {rh.entity!r} is not in the world's topology")
            elif not w.visible(rh.entity):
                self.add("herring.invisible",
                         f"red herring {rh.entity!r} has no log, span, event, metric series or monitor in the world")

    # ---------------------------------------------------------------- evidence

    def _evidence(self, w: _World) -> None:
        if not self.gt.key_evidence:
            return
        from evaluator_agent.engine.scoring import ViewedResult, _Seen, _squash

        tb = w.toolbox()
        world_keys = w.keys()  # already judged by _world_checks
        mech_rx = _mechanism_re(self.gt.mechanism, False)
        for i, ke in enumerate(self.gt.key_evidence, start=1):
            self.L.checked["key_evidence"] += 1
            self.L.checked["tool_calls"] += 1
            what = f"key_evidence[{i}] {ke.tool}({json.dumps(ke.arguments, sort_keys=True)})"
            out = tb.call(ke.tool, dict(ke.arguments))
            if not out.ok:
                self.add("evidence.error", f"{what} fails: {out.error}")
                continue
            body = json.dumps(out.content, default=str, separators=(",", ":"))
            needle = _squash(ke.expect)
            if not needle or not _Seen(ViewedResult(tool=ke.tool, arguments=ke.arguments, ok=True, text=body)).contains(needle):
                n = _result_size(out.content)
                self.add("evidence.missing",
                         f"{what} returns {n} but not {ke.expect!r}")
            for key in sorted(set(_iter_keys(out.content)) - world_keys):
                self._check_key(key, f"{what} result key", mech_rx, data_key=False)
        self._evidence_listing(w)

    def _evidence_listing(self, w: _World) -> None:
        """Key evidence whose ``expect`` any listing call shows proves nothing was looked at.

        An ``expect`` that is an entity name of the world (``invoices-db``) is found in any
        result of the evidence's tool that mentions the entity; an evidence item of a listing
        tool (list_services, get_service_dependencies, list_metrics) whose ``expect`` that
        listing returns (metric names, tag keys and any tag value, which a filtered
        list_metrics reveals) is earned by listing. Scoring credits only results of the
        evidence's own tool, so another tool's listing showing the string earns nothing.
        """
        from evaluator_agent.engine.scoring import _squash

        listing = None
        for i, ke in enumerate(self.gt.key_evidence, start=1):
            needle = _squash(ke.expect)
            if not needle:
                continue
            what = f"key_evidence[{i}] ({ke.tool}) expects {ke.expect!r}"
            kind = w.names.get(needle)
            if kind is not None:
                self.add("evidence.listing_satisfies",
                         f"{what}, a bare {kind} name of the world: any listing call returns it, so finding it "
                         "proves nothing was looked at; expect what only this query shows")
                continue
            listing = listing if listing is not None else w.listing()
            tools = [tool for tool, seen in listing if seen.contains(needle)]
            if "list_metrics" in tools and _TAG_VALUES in tools:  # shown unfiltered already
                tools.remove(_TAG_VALUES)
            # scoring credits only results of the evidence's own tool: a listing of another
            # tool that shows the string earns nothing
            tools = [t for t in tools if t == ke.tool or (t == _TAG_VALUES and ke.tool == "list_metrics")]
            if tools:
                self.add("evidence.listing_satisfies",
                         f"{what}, which {' and '.join(tools)} also return: a target earns it without running "
                         "the query; expect what only this query shows")


def _result_size(content: Any) -> str:
    if isinstance(content, dict):
        for k in ("logs", "spans", "events", "monitors", "services", "metrics", "series", "buckets", "groups"):
            if isinstance(content.get(k), list):
                return f"{len(content[k])} {k}"
    return f"{len(json.dumps(content, default=str))} bytes"


def _snip(text: str, m: re.Match[str], pad: int = 30) -> str:
    a, b = max(0, m.start() - pad), min(len(text), m.end() + pad)
    s = text[a:b].replace("\n", " ")
    return ("…" if a else "") + repr(s)[1:-1] + ("…" if b < len(text) else "")


# --------------------------------------------------------------------------- entry point


def lint_labelset(
    name_or_path: str | Path,
    *,
    labelsets_root: Path | None = None,
    snapshots_dir: Path | None = None,
    jobs: int = 1,
) -> LintReport:
    """Lint one label set (a name under ``labelsets_root`` or a folder path); never stops early.

    ``jobs`` > 1 checks the worlds in that many worker processes (for sets of more than a few
    dozen worlds); the report is the same as with one."""
    t0 = time.perf_counter()
    folder = _resolve_folder(name_or_path, labelsets_root)
    snaps = Path(snapshots_dir) if snapshots_dir is not None else default_snapshots_dir()
    linter = _Linter(folder, snaps, jobs=jobs)
    linter.run()
    return LintReport(
        labelset=folder.name,
        path=str(folder),
        problems=linter.problems,
        checked=linter.checked,
        duration_s=time.perf_counter() - t0,
    )
