"""Label set lint: smoke is clean, and each kind of planted problem is reported by its check id.

Planted problems go into a small temp copy of smoke (two labels, snapshots symlinked) so each
lint takes a fraction of a second; a world is changed by rewriting it with write_snapshot.
"""

from __future__ import annotations

import gzip
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from evaluator_agent.lint.checks import CHECKS, LintReport, lint_labelset
from evaluator_agent.telemetry.world import load_snapshot_dict, write_snapshot

ROOT = Path(__file__).resolve().parent.parent
SMOKE = ROOT / "labelsets" / "smoke"
SNAPS = ROOT / "environments" / "snapshots"

POOL = "lbl_f2ac2901c2"  # connection_pool_exhaustion: orders, paged on api-gateway, herring billing-api
NOFAULT = "lbl_94fb6c64b0"  # no-fault control
MINI = (POOL, NOFAULT)



@dataclass
class Mini:
    root: Path  # labelsets root
    folder: Path  # the set folder
    snaps: Path  # snapshots dir (symlinks to the real files)

    def path(self, lid: str) -> Path:
        return self.folder / f"{lid}.json"

    def label(self, lid: str) -> dict[str, Any]:
        return json.loads(self.path(lid).read_text())

    def save(self, d: dict[str, Any], name: str | None = None) -> None:
        (self.folder / f"{name or d['id']}.json").write_text(json.dumps(d, indent=2))

    def edit(self, lid: str, fn: Callable[[dict[str, Any]], Any]) -> None:
        d = self.label(lid)
        fn(d)
        self.save(d)

    def snapshot_path(self, lid: str) -> Path:
        return self.snaps / f"{self.label(lid)['world']['snapshot']}.json.gz"

    def edit_world(self, lid: str, fn: Callable[[dict[str, Any]], Any]) -> None:
        """Rewrite the label's world (new hash); the noise-free twin is dropped."""
        d = self.label(lid)
        data = load_snapshot_dict(d["world"]["snapshot"], self.snaps)
        fn(data)
        d["world"]["snapshot"] = write_snapshot(data, self.snaps)
        d["world"].pop("snapshot_noise_free", None)
        self.save(d)

    def lint(self) -> LintReport:
        return lint_labelset("mini", labelsets_root=self.root, snapshots_dir=self.snaps)


def copy_set(tmp: Path, ids: tuple[str, ...] | None = None, name: str = "mini") -> Mini:
    root = tmp / "labelsets"
    folder = root / name
    folder.mkdir(parents=True)
    snaps = tmp / "snapshots"
    snaps.mkdir()
    (folder / "labelset.json").write_text(json.dumps({"name": name, "description": "lint test copy"}))
    files = [SMOKE / f"{i}.json" for i in ids] if ids else sorted(SMOKE.glob("lbl_*.json"))
    for f in files:
        shutil.copy(f, folder / f.name)
        world = json.loads(f.read_text())["world"]
        for h in (world["snapshot"], world.get("snapshot_noise_free")):
            if h and not (snaps / f"{h}.json.gz").exists():
                (snaps / f"{h}.json.gz").symlink_to(SNAPS / f"{h}.json.gz")
    return Mini(root, folder, snaps)


@pytest.fixture
def mini(tmp_path: Path) -> Mini:
    return copy_set(tmp_path, MINI)


def errors(report: LintReport) -> set[tuple[str | None, str]]:
    return {(p.label_id, p.check) for p in report.errors}


def only(report: LintReport, check: str, label_id: str | None = POOL) -> str:
    """Assert the report's errors are exactly ``check`` (for ``label_id``); return the messages."""
    assert errors(report) == {(label_id, check)}, report.render()
    return "\n".join(p.message for p in report.errors)


# --------------------------------------------------------------------------- clean sets


def test_shipped_core_lints_clean() -> None:
    report = lint_labelset("core", jobs=2)
    assert report.ok and not report.errors, report.render()
    assert report.checked["labels"] >= 150


def test_worker_processes_give_the_same_report(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import evaluator_agent.lint.checks as lint_mod

    m = copy_set(tmp_path)  # all of smoke, one label broken so there is something to report
    m.edit(POOL, lambda d: d["ground_truth"]["key_evidence"][0].update(expect="no such text anywhere"))
    monkeypatch.setattr(lint_mod, "_MIN_WORLDS_PER_JOB", 1)
    one = lint_labelset("mini", labelsets_root=m.root, snapshots_dir=m.snaps, jobs=1).to_dict()
    two = lint_labelset("mini", labelsets_root=m.root, snapshots_dir=m.snaps, jobs=2).to_dict()
    for d in (one, two):
        d.pop("duration_s", None)
    assert one == two and one["errors"] == 1 and one["checked"]["census_worlds"] == 8


def test_smoke_lints_clean() -> None:
    report = lint_labelset("smoke")
    assert report.ok and not report.errors, report.render()
    assert report.checked["labels"] == report.checked["valid_labels"] == 8
    assert report.checked["snapshots"] == 16
    assert report.checked["key_evidence"] > 0
    assert report.duration_s < 30  # ~1 s unloaded; generous for busy CI machines
    text = report.render()
    assert "8 label file(s), 16 snapshot(s)" in text.splitlines()[-1]


def test_mini_copy_is_clean(mini: Mini) -> None:
    report = mini.lint()
    assert report.ok and not report.problems, report.render()
    assert report.checked["valid_labels"] == 2
    assert "OK, no problems" in report.render()


def test_lint_by_path_and_missing_set(mini: Mini, tmp_path: Path) -> None:
    assert lint_labelset(mini.folder, snapshots_dir=mini.snaps).ok
    report = lint_labelset("nope", labelsets_root=mini.root, snapshots_dir=mini.snaps)
    assert errors(report) == {(None, "labelset.missing")}


# --------------------------------------------------------------------------- files and ids


def test_bad_json_is_reported_and_the_rest_still_linted(mini: Mini) -> None:
    (mini.folder / "lbl_0123456789.json").write_text('{"id": "lbl_0123456789", ')
    mini.edit(POOL, lambda d: d["difficulty"].update(tier="extreme"))
    report = mini.lint()
    assert errors(report) == {(None, "label.json"), (POOL, "label.schema")}, report.render()
    assert report.checked["labels"] == 3 and report.checked["valid_labels"] == 1
    msgs = {p.check: p for p in report.errors}
    assert msgs["label.json"].file == "lbl_0123456789.json"
    assert "tier" in msgs["label.schema"].message and "extreme" in msgs["label.schema"].message


def test_schema_error_carries_the_pydantic_message(mini: Mini) -> None:
    mini.edit(POOL, lambda d: d["ground_truth"].pop("onset"))
    msg = only(mini.lint(), "label.schema")
    assert "onset" in msg


def test_labelset_json_problems(mini: Mini) -> None:
    (mini.folder / "labelset.json").write_text(json.dumps({"name": "other"}))
    assert "'other'" in only(mini.lint(), "labelset.name", None)
    (mini.folder / "labelset.json").write_text("{")
    only(mini.lint(), "labelset.json", None)
    (mini.folder / "labelset.json").write_text(json.dumps({"name": "mini", "colour": "red"}))
    only(mini.lint(), "labelset.schema", None)


@pytest.mark.parametrize("new_id", ["lbl_oom_killed", "lbl_0bad000001", "label-7"])
def test_non_opaque_id(mini: Mini, new_id: str) -> None:
    d = mini.label(POOL)
    mini.path(POOL).unlink()
    d["id"] = new_id
    mini.save(d)
    msg = only(mini.lint(), "label.id_opaque", new_id)
    assert new_id in msg
    if new_id == "lbl_0bad000001":
        assert "bad" in msg


def test_file_name_must_be_the_id(mini: Mini) -> None:
    mini.path(POOL).rename(mini.folder / "lbl_f2ac2901c3.json")
    msg = only(mini.lint(), "label.filename")
    assert "lbl_f2ac2901c2.json" in msg


def test_duplicate_id(mini: Mini) -> None:
    shutil.copy(mini.path(POOL), mini.folder / "lbl_aaaaaaaaaa.json")
    report = mini.lint()
    # The copy is necessarily misnamed too: both problems are reported, on the copy.
    assert errors(report) == {(POOL, "label.duplicate_id"), (POOL, "label.filename")}, report.render()
    dup = next(p for p in report.errors if p.check == "label.duplicate_id")
    assert dup.file == "lbl_aaaaaaaaaa.json" and f"{POOL}.json" in dup.message


# --------------------------------------------------------------------------- leaks


def test_leak_of_the_mechanism_in_the_prompt(mini: Mini) -> None:
    mini.edit(POOL, lambda d: d["task"].update(prompt=d["task"]["prompt"] + " Smells like Connection-Pool exhaustion."))
    assert "connection_pool_exhaustion" in only(mini.lint(), "leak.mechanism")


def test_leak_of_the_mechanism_in_the_title(mini: Mini) -> None:
    mini.edit(POOL, lambda d: d["task"]["trigger"].update(title="connection_pool_exhaustion on api-gateway"))
    assert "title" in only(mini.lint(), "leak.mechanism")


def test_leak_of_the_root_cause_in_the_prompt(mini: Mini) -> None:
    mini.edit(POOL, lambda d: d["task"].update(prompt=d["task"]["prompt"] + " This is caused by orders."))
    assert "orders" in only(mini.lint(), "leak.entity")


def test_paged_service_and_lookalike_names_are_not_entity_leaks(mini: Mini) -> None:
    # api-gateway is what the monitor watches; orders-gateway is another name.
    mini.edit(POOL, lambda d: d["task"].update(prompt=d["task"]["prompt"] + " api-gateway; orders-gateway."))
    assert mini.lint().ok


def test_leak_in_the_paging_monitor(mini: Mini) -> None:
    def plant(w: dict[str, Any]) -> None:
        mon = next(m for m in w["monitors"] if m["id"] == 56902709)
        mon["message"] += "\nUsually a connection pool exhaustion in orders."

    mini.edit_world(POOL, plant)
    report = mini.lint()
    assert errors(report) == {(POOL, "leak.monitor_mechanism"), (POOL, "leak.entity")}, report.render()


def test_label_id_in_the_world_is_a_leak(mini: Mini) -> None:
    def plant(w: dict[str, Any]) -> None:
        w["logs"][0]["attrs"]["ticket"] = POOL

    mini.edit_world(POOL, plant)
    only(mini.lint(), "leak.label_id")


def test_ground_truth_words_in_data_keys(mini: Mini) -> None:
    def plant(w: dict[str, Any]) -> None:
        w["logs"][0]["attrs"]["root_cause"] = "yes"

    mini.edit_world(POOL, plant)
    assert "root_cause" in only(mini.lint(), "leak.tool_metadata")


@pytest.mark.parametrize(
    ("name", "severity"),
    [("conn-pool-exhaustion-proxy", "error"), ("connectionpoolexhaustion", "error"), ("oom-killer", "warning")],
)
def test_entity_name_spelling_a_mechanism(mini: Mini, name: str, severity: str) -> None:
    def plant(w: dict[str, Any]) -> None:
        svc = next(s for s in w["topology"]["services"] if s["name"] == "order-export")
        svc["name"] = name

    mini.edit_world(POOL, plant)
    report = mini.lint()
    hits = [p for p in report.problems if p.check == "world.entity_name"]
    assert [p.severity for p in hits] == [severity], report.render()
    assert name in hits[0].message
    assert {p.check for p in report.errors} <= {"world.entity_name"}


def test_generic_words_in_names_are_fine(mini: Mini) -> None:
    def plant(w: dict[str, Any]) -> None:
        for s, new in zip(w["topology"]["services"][:4], ["feature-store", "config-server", "db-pool", "replica-reader"], strict=True):
            s["name"] = new

    mini.edit_world(POOL, plant)
    report = mini.lint()
    assert not [p for p in report.problems if p.check == "world.entity_name"], report.render()


def test_world_id_must_be_opaque(mini: Mini) -> None:
    mini.edit_world(POOL, lambda w: w.update(world_id="w_billing_pool"))
    only(mini.lint(), "world.id_opaque")


# --------------------------------------------------------------------------- snapshots


def test_snapshot_hash_mismatch(mini: Mini) -> None:
    path = mini.snapshot_path(POOL)
    raw = gzip.decompress(path.read_bytes())
    path.unlink()
    path.write_bytes(gzip.compress(raw.replace(b'"env":"prod"', b'"env":"prot"', 1)))
    assert "content hash" in only(mini.lint(), "snapshot.hash")


def test_snapshot_not_gzip(mini: Mini) -> None:
    path = mini.snapshot_path(POOL)
    path.unlink()
    path.write_bytes(b"not gzip at all")
    only(mini.lint(), "snapshot.gzip")


def test_missing_snapshot(mini: Mini) -> None:
    path = mini.snapshot_path(POOL)
    path.unlink()
    assert path.name[:12] in only(mini.lint(), "snapshot.missing")


def test_missing_noise_free_snapshot(mini: Mini) -> None:
    (mini.snaps / f"{mini.label(POOL)['world']['snapshot_noise_free']}.json.gz").unlink()
    assert "noise-free" in only(mini.lint(), "snapshot.missing")


def test_invalid_world(mini: Mini) -> None:
    mini.edit_world(POOL, lambda w: w["logs"][0].update(status="fatal"))
    assert "status" in only(mini.lint(), "snapshot.schema")


def test_snapshot_file_names_carry_no_words(mini: Mini) -> None:
    (mini.snaps / "connection_pool_exhaustion.json.gz").write_bytes(b"")
    only(mini.lint(), "snapshot.filename", None)


# --------------------------------------------------------------------------- ground truth


def test_unknown_root_cause_entity(mini: Mini) -> None:
    def plant(d: dict[str, Any]) -> None:
        d["ground_truth"]["root_causes"][0].update(entity="ghost-service", aliases=[])
        d["ground_truth"]["causal_chain"][0] = "ghost-service"

    mini.edit(POOL, plant)
    assert "ghost-service" in only(mini.lint(), "truth.unknown_entity")


def test_root_cause_found_by_alias(mini: Mini) -> None:
    mini.edit(POOL, lambda d: d["ground_truth"]["root_causes"][0].update(entity="ordering", aliases=["deployment/orders"]))
    assert mini.lint().ok


def test_unknown_red_herring(mini: Mini) -> None:
    def plant(d: dict[str, Any]) -> None:
        d["ground_truth"]["must_not_blame"].append({"entity": "phantom-api", "why": "made up"})
        d["difficulty"]["factors"]["red_herrings"] += 1

    mini.edit(POOL, plant)
    assert "phantom-api" in only(mini.lint(), "herring.unknown")


def test_invisible_red_herring(mini: Mini) -> None:
    def world(w: dict[str, Any]) -> None:
        w["topology"]["services"].append({"name": "silent-svc", "team": "orders"})

    def label(d: dict[str, Any]) -> None:
        d["ground_truth"]["must_not_blame"].append({"entity": "silent-svc", "why": "no signal at all"})
        d["difficulty"]["factors"]["red_herrings"] += 1
        d["difficulty"]["factors"]["services"] += 1

    mini.edit_world(POOL, world)
    mini.edit(POOL, label)
    assert "silent-svc" in only(mini.lint(), "herring.invisible")


def test_key_evidence_that_finds_nothing(mini: Mini) -> None:
    mini.edit(POOL, lambda d: d["ground_truth"]["key_evidence"][0].update(expect="no such text anywhere"))
    assert "no such text anywhere" in only(mini.lint(), "evidence.missing")


_PG = {"query": "max:postgresql.percent_usage_connections{service:orders-db} by {host}",
       "from": "2026-03-10T15:08:25Z", "to": "2026-03-10T16:28:00Z"}


@pytest.mark.parametrize(
    ("tool", "arguments", "expect", "says"),
    [
        ("query_metrics", _PG, "orders-db", "a bare service name of the world"),
        ("query_metrics", _PG, "pg-orders-01", "a bare host name of the world"),
        ("list_metrics", {"query": "service:orders"}, "2.19.0",
         "which list_metrics also return"),  # a version tag list_metrics shows unfiltered
        ("list_services", {"query": "orders"}, "PostgreSQL 15, orders", "which list_services also return"),
    ],
)
def test_key_evidence_that_a_listing_call_satisfies(
    mini: Mini, tool: str, arguments: dict[str, Any], expect: str, says: str
) -> None:
    # The query does return it (no evidence.missing), but so does a call that only lists the
    # catalog: finding it proves nothing was looked at.
    mini.edit(POOL, lambda d: d["ground_truth"]["key_evidence"].append(
        {"tool": tool, "arguments": arguments, "expect": expect}))
    msg = only(mini.lint(), "evidence.listing_satisfies")
    assert "key_evidence[4]" in msg and repr(expect) in msg and says in msg


def test_another_tools_listing_does_not_earn_evidence(mini: Mini) -> None:
    # list_metrics shows the version as a tag value, but scoring credits a get_events item only
    # for a get_events result: a version the deploy event shows is fine evidence
    mini.edit(POOL, lambda d: d["ground_truth"]["key_evidence"].append(
        {"tool": "get_events", "arguments": {"query": "source:deploy service:orders"}, "expect": "2.19.0"}))
    report = mini.lint()
    assert "evidence.listing_satisfies" not in {p.check for p in report.problems}, report.render()


def test_key_evidence_only_its_query_shows_is_fine(mini: Mini) -> None:
    # The deploy's version: list_metrics shows it too, but only the event earns get_events evidence.
    ke = mini.label(POOL)["ground_truth"]["key_evidence"][0]
    assert (ke["tool"], ke["expect"]) == ("get_events", "2.19.0")
    report = mini.lint()
    assert report.ok and not report.problems, report.render()


def test_key_evidence_that_fails(mini: Mini) -> None:
    mini.edit(POOL, lambda d: d["ground_truth"]["key_evidence"][0].update(tool="query_metrics", arguments={"query": "avg:("}))
    only(mini.lint(), "evidence.error")


def test_monitor_id_missing(mini: Mini) -> None:
    mini.edit(POOL, lambda d: d["task"]["trigger"].update(monitor_id=1))
    assert "monitor_id 1" in only(mini.lint(), "trigger.monitor_missing")


def test_monitor_not_alerting_at_world_end(mini: Mini) -> None:
    def plant(w: dict[str, Any]) -> None:
        mon = next(m for m in w["monitors"] if m["id"] == 56902709)
        mon["transitions"].append({"ts": w["end"] - 60, "from": "Alert", "to": "OK", "value": 0.0})

    mini.edit_world(POOL, plant)
    assert "'OK'" in only(mini.lint(), "trigger.monitor_state")


@pytest.mark.parametrize(
    ("check", "edit"),
    [
        ("trigger.fired_at", lambda d: d["task"]["trigger"].update(fired_at="2020-01-01T00:00:00Z")),
        ("time.onset", lambda d: d["ground_truth"].update(onset="2030-01-01T00:00:00Z")),
        ("time.incident_window", lambda d: d["world"]["incident_window"].update(end="2030-01-01T00:00:00Z")),
        ("time.baseline_window", lambda d: d["world"]["baseline_window"].update(start="2020-01-01T00:00:00Z")),
        ("difficulty.factors", lambda d: d["difficulty"]["factors"].update(chain_length=7)),
        ("difficulty.factors", lambda d: d["difficulty"]["factors"].update(services=3)),
        ("truth.taxonomy", lambda d: d["taxonomy"].update(segment="kafka")),
    ],
)
def test_label_field_checks(mini: Mini, check: str, edit: Callable[[dict[str, Any]], Any]) -> None:
    mini.edit(POOL, edit)
    only(mini.lint(), check)


def test_no_fault_consistency(mini: Mini) -> None:
    def plant(d: dict[str, Any]) -> None:
        d["ground_truth"]["causal_chain"] = ["checkout"]

    mini.edit(NOFAULT, plant)
    report = mini.lint()
    assert "causal_chain ['checkout']" in only(report, "truth.no_fault", NOFAULT)


@pytest.mark.parametrize("weights", [{"nonsense": 1.0}, {"root_cause": 0.01}])
def test_bad_weights(mini: Mini, weights: dict[str, float]) -> None:
    mini.edit(POOL, lambda d: d.update(rubric={"weights": weights}))
    only(mini.lint(), "weights.invalid")


# --------------------------------------------------------------------------- the report


def test_many_problems_all_reported_and_rendered(mini: Mini) -> None:
    mini.edit(POOL, lambda d: d["task"]["trigger"].update(monitor_id=1))
    mini.edit(NOFAULT, lambda d: d.update(rubric={"weights": {"nonsense": 1.0}}))
    (mini.folder / "broken.json").write_text("[")
    report = mini.lint()
    assert errors(report) == {
        (POOL, "trigger.monitor_missing"),
        (NOFAULT, "weights.invalid"),
        (None, "label.json"),
    }
    assert not report.ok
    text = report.render()
    for needle in (POOL, NOFAULT, "broken.json", "trigger.monitor_missing", "weights.invalid"):
        assert needle in text
    assert text.splitlines()[-1].startswith("FAIL") and "3 error(s)" in text.splitlines()[-1]
    assert report.to_dict()["errors"] == 3
    assert all(p.check in CHECKS for p in report.problems)


def test_fired_at_must_match_the_monitor(mini: Mini) -> None:
    mini.edit(POOL, lambda d: d["task"]["trigger"].update(fired_at="2026-03-10T16:05:00Z"))
    assert "went to Alert at 2026-03-10T16:21:00Z" in only(mini.lint(), "trigger.fired_at")


def test_red_herring_that_is_the_root_cause(mini: Mini) -> None:
    def plant(d: dict[str, Any]) -> None:
        d["ground_truth"]["must_not_blame"].append({"entity": "orders", "why": "contradiction"})
        d["difficulty"]["factors"]["red_herrings"] += 1

    mini.edit(POOL, plant)
    only(mini.lint(), "herring.is_root_cause")


def test_checks_for(mini: Mini) -> None:
    mini.edit(POOL, lambda d: d["task"]["trigger"].update(monitor_id=1))
    report = mini.lint()
    assert report.checks_for(POOL) == {"trigger.monitor_missing"}
    assert report.checks_for(NOFAULT) == set() and report.checks_for(None) == set()


def test_data_key_spelling_the_mechanism_is_a_warning(mini: Mini) -> None:
    def plant(w: dict[str, Any]) -> None:
        w["logs"][0]["attrs"]["connection_pool"] = "exhausted"
        w["logs"][1]["attrs"]["pool_exhaustion"] = "yes"
        w["logs"][2]["attrs"]["connection-pool-exhaustion"] = "yes"

    mini.edit_world(POOL, plant)
    report = mini.lint()
    assert report.ok, report.render()
    keys = [p.message for p in report.warnings if p.check == "leak.tool_metadata"]
    assert len(keys) == 1 and "connection-pool-exhaustion" in keys[0]


def test_noise_free_twin_of_another_world(mini: Mini) -> None:
    other = mini.label(NOFAULT)["world"]["snapshot"]
    mini.edit(POOL, lambda d: d["world"].update(snapshot_noise_free=other))
    msg = only(mini.lint(), "snapshot.noise_free")
    assert "time range" in msg and "paging monitor 56902709 missing" in msg


def test_triggering_change_outside_the_world(mini: Mini) -> None:
    mini.edit(POOL, lambda d: d["ground_truth"]["triggering_change"].update(at="2020-01-01T00:00:00Z"))
    only(mini.lint(), "time.triggering_change")


def test_label_id_in_the_prompt(mini: Mini) -> None:
    mini.edit(POOL, lambda d: d["task"].update(prompt=d["task"]["prompt"] + f" (ref {POOL})"))
    only(mini.lint(), "leak.label_id")


def test_tool_name_spelling_a_mechanism(mini: Mini, monkeypatch: pytest.MonkeyPatch) -> None:
    from evaluator_agent.core.protocol import ToolSpec
    from evaluator_agent.telemetry import catalog as tool_catalog

    extra = ToolSpec(name="list_oom_killed_pods", description="x", parameters={"type": "object", "properties": {}})
    monkeypatch.setattr(tool_catalog, "TOOL_SPECS", [*tool_catalog.TOOL_SPECS, extra])
    assert "list_oom_killed_pods" in only(mini.lint(), "leak.tool_metadata", None)


def test_empty_set(mini: Mini) -> None:
    for f in mini.folder.glob("lbl_*.json"):
        f.unlink()
    only(mini.lint(), "labelset.empty", None)


def test_a_crash_in_one_label_does_not_stop_the_lint(mini: Mini, monkeypatch: pytest.MonkeyPatch) -> None:
    from evaluator_agent.lint import checks as lint

    real = lint.LabelCheck._herrings

    def boom(self: Any, w: Any) -> None:
        if self.label.id == POOL:
            raise RuntimeError("boom")
        real(self, w)

    monkeypatch.setattr(lint.LabelCheck, "_herrings", boom)
    assert "boom" in only(mini.lint(), "lint.internal")
