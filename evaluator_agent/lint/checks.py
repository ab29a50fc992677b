"""Label set lint: every label of a set checked against its world, all problems reported.

``lint_labelset("smoke")`` (or a folder path) loads each label file on its own, so one broken
file does not hide the others, loads each referenced snapshot once, and runs the checks
below. The result is a :class:`LintReport`; ``report.ok`` is true when no *error* was found
(warnings are shown but do not fail the set) and ``report.render()`` is the human report.

Check ids (``LintProblem.check``) and what they mean; see :data:`CHECKS` for the one-liners:

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
  :data:`evaluator_agent.lint.words.MECHANISM_SYNONYMS`).
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

import json
import logging
import re
import time
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from evaluator_agent.core.labels import LABEL_ID_RE, Label, LabelSetInfo, labelsets_dir
from evaluator_agent.core.labels import snapshots_dir as default_snapshots_dir
from evaluator_agent.core.vocab import MECHANISM_INFO, SEGMENTS
from evaluator_agent.lint.label import LabelCheck
from evaluator_agent.lint.leaks import Census, WorldTruth
from evaluator_agent.lint.report import CENSUS_FILE, CHECKS, LintProblem, LintReport
from evaluator_agent.lint.words import mech_words, mechanism_re, truth_word
from evaluator_agent.lint.worlds import Snapshots, iter_keys, short_validation

__all__ = ["CENSUS_FILE", "CHECKS", "LintReport", "LintProblem", "lint_labelset"]

log = logging.getLogger(__name__)

_SNAPSHOT_NAME_RE = re.compile(r"^[0-9a-f]{64}\.json\.gz$")


# --------------------------------------------------------------------------- the linter


def _resolve_folder(name_or_path: str | Path, labelsets_root: Path | None) -> Path:
    """A plain name is a set under the labelsets root; anything with a separator is a folder path."""
    p = Path(name_or_path)
    if p.is_absolute() or len(p.parts) > 1:
        return p
    root = Path(labelsets_root) if labelsets_root is not None else labelsets_dir()
    return root / p



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
) -> tuple[list[LintProblem], dict[str, int], Census, set[str]]:
    """Worker entry: lint some worlds' labels; return problems, counters, census part, hashes."""
    linter = Linter(folder, snapshots)
    census = Census()
    linter._lint_worlds(groups, census)
    return linter.problems, linter.checked, census, linter.snaps.loaded


class Linter:
    def __init__(self, folder: Path, snapshots: Path, jobs: int = 1):
        self.jobs = jobs
        self.folder = folder
        self.snaps = Snapshots(snapshots)
        self.snap_dir = snapshots
        self.problems: list[LintProblem] = []
        self.checked = {"labels": 0, "valid_labels": 0, "snapshots": 0, "key_evidence": 0, "tool_calls": 0}

    def add(self, label_id: str | None, file: str | Path, check: str, message: str, severity: str = "error") -> None:
        assert check in CHECKS, check
        self.problems.append(LintProblem(label_id, str(file), check, message, severity))

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
                self.add(None, info_path.name, check, f"invalid labelset.json: {short_validation(e)}")
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
                    LabelCheck(self, label, fname).run()
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
                if mechanism_re(mech, False).search(spec.name):
                    self.add(None, "tool_catalog.py", "leak.tool_metadata", f"tool name {spec.name!r} spells mechanism {mech}")
            for key in iter_keys(spec.parameters.get("properties", {})):
                if truth_word(key):
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
                self.add(lid, fname, "label.schema", f"invalid label: {short_validation(e)}")
            return None
        self.checked["valid_labels"] += 1
        return label, fname

    def _check_id_words(self, lid: str, fname: str) -> None:
        if not LABEL_ID_RE.match(lid):
            return  # the schema reports it
        body = lid[4:]
        words = {w for m in MECHANISM_INFO for w in mech_words(m) if len(w) >= 3}
        words |= {w for s in SEGMENTS for w in s.split("_") if len(w) >= 3}
        hits = sorted(w for w in words if w in body)
        if hits:
            self.add(lid, fname, "label.id_opaque",
                     f"id {lid} contains the mechanism/segment word(s) {', '.join(hits)}; draw another id")


def _is_json_error(e: ValidationError) -> bool:
    errs = e.errors()
    return bool(errs) and all(err.get("type") == "json_invalid" for err in errs)


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
    linter = Linter(folder, snaps, jobs=jobs)
    linter.run()
    return LintReport(
        labelset=folder.name,
        path=str(folder),
        problems=linter.problems,
        checked=linter.checked,
        duration_s=time.perf_counter() - t0,
    )
