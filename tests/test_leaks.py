"""The set-level leak census (evaluator_agent/lint/leaks.py): each structural leak class is found when
planted into a set of small worlds, and the same value is not flagged when it also occurs in
other mechanisms' worlds or on services that are not the culprit.

The worlds are copies of tests/worlds.small_world (a 3-hour shop; a sample of its logs), one per seed,
with the culprit rotating over its four services; a test plants values into some of them. The
last tests run the census through ``lint_labelset`` on a label set written to a temp folder.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from evaluator_agent.lint.checks import CENSUS_FILE, lint_labelset
from evaluator_agent.lint.leaks import Census, Leak, Masker, WorldTruth
from evaluator_agent.telemetry.world import write_snapshot
from tests.worlds import APP_SERVICES, DEPLOY, END, INCIDENT, START, small_world

# chain from each culprit to the paged edge (web-gateway calls checkout, checkout calls the rest)
CHAINS = {
    "checkout": ["checkout", "web-gateway"],
    "payments": ["payments", "checkout", "web-gateway"],
    "inventory": ["inventory", "checkout", "web-gateway"],
    "web-gateway": ["web-gateway"],
}
PAGE = 1001  # small_world's checkout error-rate monitor


class World:
    """One world of a synthetic set: its data, mechanism, culprit and label id."""

    def __init__(self, i: int, mechanism: str):
        self.i = i
        self.data = small_world(seed=i)
        self.data["world_id"] = f"w_{i:08x}"
        self.data["logs"] = self.data["logs"][::6]  # a sample keeps every kind of line, and the tests fast
        self.mechanism = mechanism
        self.culprit = None if mechanism == "no_fault" else APP_SERVICES[i % len(APP_SERVICES)]
        self.label = f"lbl_{i:010x}"

    @property
    def bystander(self) -> str:
        """An app service off the causal chain (or any, in a no-fault world)."""
        chain = CHAINS.get(self.culprit or "", [])
        return next(s for s in reversed(APP_SERVICES) if s not in chain)

    def truth(self) -> WorldTruth:
        if self.culprit is None:
            return WorldTruth("no_fault", (self.label,), paging_monitors=frozenset({PAGE}))
        return WorldTruth(
            self.mechanism, (self.label,), frozenset({self.culprit}), frozenset(CHAINS[self.culprit]), frozenset({PAGE})
        )

    # -- planting

    def event(self, source: str, service: str, title: str = "something changed", ts: float = DEPLOY - 60.25) -> None:
        self.data["events"].append(
            {"id": f"ev-{len(self.data['events'])}", "ts": ts, "source": source, "title": title, "text": "",
             "tags": {"service": service, "env": "prod"}}
        )

    def metric(self, name: str, tags: dict[str, str]) -> None:
        n = (END - START) // 60
        self.data["metrics"].append(
            {"metric": name, "tags": tags, "type": "gauge", "start": START, "interval": 60, "values": [1.0] * n}
        )

    def log(self, service: str, message: str, status: str = "error", ts: float = INCIDENT + 30.5) -> None:
        self.data["logs"].append(
            {"ts": ts, "service": service, "host": "", "status": status, "message": message, "attrs": {}, "trace_id": None}
        )

    def page_name(self, name: str) -> None:
        next(m for m in self.data["monitors"] if m["id"] == PAGE)["name"] = name


def make_set(mechanisms: dict[str, int]) -> list[World]:
    """Worlds numbered from 1, ``count`` of each mechanism in order."""
    out: list[World] = []
    for mech, count in mechanisms.items():
        for _ in range(count):
            out.append(World(len(out) + 1, mech))
    return out


THREE = {"oom_killed": 8, "dns_failure": 8, "no_fault": 8}
# More mechanisms than MAX_CLASSES: a value in every fault world is then not "exclusive".
FIVE = {"oom_killed": 4, "dns_failure": 4, "disk_full": 4, "bad_release": 4, "no_fault": 4}


def census(worlds: Iterable[World]) -> list[Leak]:
    c = Census()
    for w in worlds:
        c.add_world(w.data, w.truth())
    return c.leaks()


def about(leaks: list[Leak], value_part: str) -> list[Leak]:
    return [x for x in leaks if value_part in x.value]


def checks(leaks: list[Leak]) -> set[tuple[str, str]]:
    return {(x.check, x.severity) for x in leaks}


@pytest.fixture(scope="module")
def baseline() -> list[Leak]:
    return census(make_set(THREE))


# --------------------------------------------------------------------------- the set as built


def test_unplanted_set_has_no_leaks(baseline: list[Leak]) -> None:
    # The same shop in every world, culprits rotating: nothing belongs to one mechanism or
    # to the culprit alone.
    assert [x.message for x in baseline if x.severity == "error"] == []


# --------------------------------------------------------------------------- (a) one mechanism only


def test_event_source_of_one_mechanism_only() -> None:
    worlds = make_set(THREE)
    for w in worlds:
        if w.mechanism == "oom_killed":
            w.event("statuspage", w.bystander)
    leaks = about(census(worlds), "statuspage")
    src = [x for x in leaks if x.kind == "event.source"]
    assert len(src) == 1, leaks  # one problem per value, not one per label
    x = src[0]
    assert (x.check, x.severity) == ("leak.exclusive_mechanism", "error")
    assert "'statuspage'" in x.message and "oom_killed" in x.message and "8 of its 8" in x.message
    assert set(x.labels) == {w.label for w in worlds if w.mechanism == "oom_killed"}
    assert "lbl_0000000001" in x.message  # names the worlds (by their labels)


def test_the_same_value_in_another_mechanism_is_not_flagged() -> None:
    worlds = make_set(THREE)
    for w in worlds:
        if w.mechanism == "oom_killed":
            w.event("statuspage", w.bystander)
    worlds[-1].event("statuspage", worlds[-1].bystander)  # one no-fault world has it too
    assert about(census(worlds), "statuspage") == []


def test_event_source_of_two_mechanisms_only() -> None:
    # terraform in every dns_failure and oom_killed world, never in the no-fault ones: a
    # lookup table still narrows the answer to two mechanisms.
    worlds = make_set(THREE)
    for w in worlds:
        if w.mechanism != "no_fault":
            w.event("terraform", w.bystander)
    x = next(x for x in census(worlds) if x.kind == "event.source" and x.value == "terraform")
    assert (x.check, x.severity) == ("leak.exclusive_mechanism", "error")
    assert "only in dns_failure and oom_killed worlds (16 of their 16" in x.message
    # in three worlds of each, it could be chance: nothing is said
    worlds = make_set(THREE)
    for w in worlds[:3] + worlds[8:11]:
        w.event("terraform", w.bystander)
    assert about(census(worlds), "terraform") == []


def test_no_fault_counts_as_a_mechanism() -> None:
    worlds = make_set(THREE)
    for w in worlds:
        if w.mechanism == "no_fault":
            w.event("marketing", "web-gateway", title="Campaign sent")
    x = next(x for x in census(worlds) if x.kind == "event.source" and x.value == "marketing")
    assert x.check == "leak.exclusive_mechanism" and x.severity == "error" and "no_fault worlds" in x.message


def test_too_little_support_is_a_warning() -> None:
    worlds = make_set(THREE)
    for w in [w for w in worlds if w.mechanism == "dns_failure"][:3]:
        w.event("terraform", w.bystander)
    leaks = about(census(worlds), "terraform")
    assert checks([x for x in leaks if x.kind == "event.source"]) == {("leak.exclusive_mechanism", "warning")}
    # and two worlds are not judged at all
    worlds = make_set(THREE)
    for w in [w for w in worlds if w.mechanism == "dns_failure"][:2]:
        w.event("terraform", w.bystander)
    assert about(census(worlds), "terraform") == []


def test_log_level_of_one_mechanism() -> None:
    worlds = make_set(THREE)
    for w in worlds:
        w.data["logs"] = [r for r in w.data["logs"] if r["status"] != "critical"]  # small_world has some
        if w.mechanism == "dns_failure":
            w.log(w.bystander, "disk almost full", status="critical")
    leaks = census(worlds)
    x = next(x for x in leaks if x.kind == "log.status")
    assert x.value == "critical" and x.check == "leak.exclusive_mechanism" and x.severity == "error"


def test_signature_line_is_one_template_across_services_and_worlds() -> None:
    # The same library line with other numbers, hosts and services in every world is one value.
    worlds = make_set(THREE)
    for w in worlds:
        if w.mechanism == "oom_killed":
            svc = w.bystander
            w.log(svc, f"Memory cgroup out of memory: Killed process {1000 + w.i} ({svc}) on k8s-node-{w.i % 3 + 1} "
                       f"after {w.i * 7}ms, pod {svc}-7f9c{w.i:02d}b1d-x{w.i:02d}qz")
    leaks = [x for x in census(worlds) if x.kind == "log.template"]
    assert len(leaks) == 1, [x.value for x in leaks]
    assert leaks[0].value == (
        "Memory cgroup out of memory: Killed process <num> (<svc>) on <host> after <dur>, pod <pod>"
    )
    assert leaks[0].check == "leak.exclusive_mechanism" and leaks[0].severity == "error"


def test_paging_monitor_title_only_on_no_fault_controls() -> None:
    worlds = make_set(THREE)
    for w in worlds:
        if w.mechanism == "no_fault":
            w.page_name(f"[P3] checkout request rate above {100 + w.i} per 5m")
    leaks = [x for x in census(worlds) if x.kind == "page.name"]
    assert [(x.check, x.severity, x.value) for x in leaks] == [
        ("leak.exclusive_mechanism", "error", "High error rate on <svc>"),  # now never a control's page
        ("leak.exclusive_mechanism", "error", "[P<num>] <svc> request rate above <num> per <dur>"),
    ]
    assert "only in dns_failure and oom_killed worlds" in leaks[0].message
    assert "only in no_fault worlds" in leaks[1].message


def test_other_monitors_are_not_the_page() -> None:
    # The same monitor name on a monitor that did not page: a monitor value, not a page value.
    worlds = make_set(THREE)
    for w in worlds:
        if w.mechanism == "no_fault":
            next(m for m in w.data["monitors"] if m["id"] == 1003)["name"] = "inventory request rate above 5"
    kinds = {x.kind for x in census(worlds) if "request rate" in x.value}
    assert kinds == {"monitor.name"}


# --------------------------------------------------------------------------- (b) the culprit only


def faults(worlds: list[World]) -> list[World]:
    return [w for w in worlds if w.culprit is not None]


def test_metric_only_on_the_culprit() -> None:
    # In the worlds of four mechanisms: not exclusive to any, but always on the culprit.
    worlds = make_set(FIVE)
    for w in faults(worlds):
        w.metric("kubernetes.cpu.cfs.throttled.seconds", {"service": w.culprit or ""})
    leaks = about(census(worlds), "throttled")
    assert checks(leaks) == {("leak.culprit_only", "error")}, leaks
    assert "in all 16 worlds" in leaks[0].message


def test_a_value_also_on_a_bystander_is_not_culprit_only() -> None:
    worlds = make_set(FIVE)
    for w in faults(worlds):
        w.metric("kubernetes.cpu.cfs.throttled.seconds", {"service": w.culprit or ""})
    worlds[3].metric("kubernetes.cpu.cfs.throttled.seconds", {"service": worlds[3].bystander})
    assert about(census(worlds), "throttled") == []


def test_a_value_in_a_no_fault_world_is_not_culprit_only() -> None:
    worlds = make_set(THREE)
    for w in worlds:
        w.metric("postgresql.locks", {"service": w.culprit or "inventory"})
    assert about(census(worlds), "postgresql.locks") == []


def test_culprit_host_counts_as_the_culprit() -> None:
    worlds = make_set(FIVE)
    hosts = {s["name"]: s["hosts"] for s in worlds[0].data["topology"]["services"]}
    for w in faults(worlds):
        assert w.culprit is not None
        w.metric("kubernetes_state.container.status_report.count.terminated", {"host": hosts[w.culprit][0]})
    leaks = about(census(worlds), "terminated")
    assert checks(leaks) == {("leak.culprit_only", "error")}


def test_only_on_the_causal_chain_is_a_warning() -> None:
    worlds = make_set(FIVE)
    for w in faults(worlds):
        assert w.culprit is not None
        w.log(CHAINS[w.culprit][-1], "upstream request timeout")  # the caller end of the chain
        w.log(w.culprit, "upstream request timeout")
    leaks = about(census(worlds), "upstream request timeout")
    assert checks(leaks) == {("leak.chain_only", "warning")}, leaks


def test_culprit_events_on_whole_seconds() -> None:
    worlds = make_set(FIVE)
    for w in worlds:
        for e in w.data["events"]:  # small_world's own events sit on whole seconds
            e["ts"] += 0.25
        for svc in APP_SERVICES:  # routine deploys on milliseconds everywhere
            w.event("deploy", svc, ts=START + 1000.5 + 0.125 * APP_SERVICES.index(svc))
        if w.culprit:
            w.event("deploy", w.culprit, ts=DEPLOY)  # the culprit's deploy on a whole second
    leaks = [x for x in census(worlds) if x.kind == "event.precision" and x.value.startswith("deploy")]
    assert [(x.check, x.value) for x in leaks] == [("leak.culprit_only", "deploy: whole seconds")]


# --------------------------------------------------------------------------- (c) names in metric names


def test_metric_name_carrying_an_entity_name() -> None:
    worlds = make_set({"oom_killed": 2, "no_fault": 1})
    worlds[0].metric("checkout.generated_rules.size_kb", {"service": "checkout"})
    worlds[1].metric("web_gateway.generated_rules.size_kb", {"service": "web-gateway"})
    worlds[2].metric("redis.mem.used", {"service": "redis-cache"})  # an integration prefix, no entity
    leaks = [x for x in census(worlds) if x.check == "leak.entity_in_metric_name"]
    assert [(x.value, x.severity, x.labels) for x in leaks] == [
        ("<service>.generated_rules.size_kb", "error", ("lbl_0000000001", "lbl_0000000002"))
    ]
    assert "the culprit in 1 of 2" in leaks[0].message  # world 1's culprit is payments


# --------------------------------------------------------------------------- masking


@pytest.mark.parametrize(
    ("line", "template"),
    [
        ("HikariPool-1 - Connection is not available, request timed out after 30000ms.",
         "HikariPool-<num> - Connection is not available, request timed out after <dur>."),
        ("GET http://checkout.shop.svc.cluster.local:8080/v1/orders/8079164 took 1.5s",
         "GET http://<svc>.<ns>.svc.cluster.local:<num>/v<num>/orders/<num> took <dur>"),
        ("x509: certificate expired on k8s-node-2 (10.1.2.3:443) trace 4bf92f3577b34da6a3ce929d0e0e4736",
         "x<num>: certificate expired on <host> (<ip>) trace <hex>"),
        ("KeyError: 'currency' in request 123e4567-e89b-12d3-a456-426614174000",
         "KeyError: <str> in request <uuid>"),
        ("[P2] payments error rate above 2.90%", "[P<num>] <svc> error rate above <num>%"),
    ],
)
def test_masker_templates(line: str, template: str) -> None:
    names = {"checkout": "service", "payments": "service", "shop": "namespace", "k8s-node-2": "host"}
    assert Masker(names)(line) == template


def test_masker_values_keep_codes() -> None:
    m = Masker({"checkout": "service", "k8s-node-2": "host"})
    assert m.value("priority:P3") == "priority:P3"
    assert m.value("error.kind:psycopg2.errors.DiskFull") == "error.kind:psycopg2.errors.DiskFull"
    assert m.value("migration:V394") == "migration:V<num>"
    assert m.value("host:k8s-node-2") == "host:<host>"
    assert m.value("pod_name:checkout-7f9c6b1d4-x2kqz") == "pod_name:<pod>"


# --------------------------------------------------------------------------- through lint_labelset


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def _label(w: World, snapshot: str) -> dict[str, Any]:
    fault = w.culprit is not None
    chain = CHAINS[w.culprit] if w.culprit else []
    gt: dict[str, Any] = {
        "no_fault": not fault,
        "root_causes": [{"entity": w.culprit, "aliases": [], "kind": "service"}] if fault else [],
        "mechanism": w.mechanism,
        "onset": _iso(INCIDENT) if fault else None,
        "causal_chain": chain,
        "key_evidence": [],
    }
    from evaluator_agent.core.vocab import MECHANISM_INFO

    seg, cat = ("business_logic", "none") if not fault else MECHANISM_INFO[w.mechanism]
    return {
        "id": w.label,
        "family": f"test/{w.mechanism}",
        "taxonomy": {"segment": seg, "problem_category": cat, "mechanism": w.mechanism, "system_level": "application",
                     "failure_pattern": "cascading" if fault else "no_fault", "monitor_type": "query alert"},
        "difficulty": {"tier": "medium", "factors": {"chain_length": len(chain), "red_herrings": 0, "services": 7}},
        "task": {"trigger": {"monitor_id": PAGE, "title": "High error rate", "fired_at": _iso(INCIDENT + 120)},
                 "prompt": "Something pages. Find out why."},
        "world": {"snapshot": snapshot,
                  "incident_window": {"start": _iso(INCIDENT - 1800), "end": _iso(INCIDENT + 1800)},
                  "baseline_window": {"start": _iso(START), "end": _iso(INCIDENT - 1800)}},
        "ground_truth": gt,
    }


def write_set(tmp: Path, worlds: list[World], plant: Callable[[World], Any] = lambda w: None) -> Path:
    folder = tmp / "labelsets" / "synthetic"
    folder.mkdir(parents=True)
    snaps = tmp / "snapshots"
    (folder / "labelset.json").write_text(json.dumps({"name": "synthetic", "description": "census test"}))
    for w in worlds:
        plant(w)
        digest = write_snapshot(w.data, snaps)
        (folder / f"{w.label}.json").write_text(json.dumps(_label(w, digest)))
    return folder


def test_lint_reports_each_leak_once_for_the_set(tmp_path: Path) -> None:
    worlds = make_set({"oom_killed": 8, "no_fault": 8})

    def plant(w: World) -> None:
        page = next(m for m in w.data["monitors"] if m["id"] == PAGE)
        page["transitions"] = page["transitions"][:1]  # still alerting at the world's end
        if w.mechanism == "no_fault":
            w.event("marketing", "web-gateway", title="Campaign sent")
        else:
            w.metric(f"{w.culprit}.generated_columns.size_kb", {"service": w.culprit or ""})

    folder = write_set(tmp_path, worlds, plant)
    report = lint_labelset(folder, snapshots_dir=tmp_path / "snapshots")
    census_problems = [p for p in report.problems if p.file == CENSUS_FILE]
    assert all(p.label_id is None for p in census_problems)
    marketing = [p for p in census_problems if "'marketing'" in p.message]
    assert [(p.check, p.severity) for p in marketing] == [("leak.exclusive_mechanism", "error")]
    named = [p for p in census_problems if p.check == "leak.entity_in_metric_name"]
    assert len(named) == 1 and "<service>.generated_columns.size_kb" in named[0].message
    # Nothing else is wrong with these labels: the errors are the census's, each once.
    assert {p.check for p in report.errors} == {"leak.exclusive_mechanism", "leak.entity_in_metric_name"}, report.render()
    assert all(p.file == CENSUS_FILE for p in report.errors)
    assert report.checked["census_worlds"] == 16
    text = report.render()
    assert "structural leaks across the set (census of 16 worlds" in text
    assert "across the set" in text.splitlines()[-1]
