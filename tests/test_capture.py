"""``proctor capture`` end to end over HTTP: a generated world served by the Datadog REST facade
(uvicorn on 127.0.0.1, mounted at ``/datadog``) -> the capture through ``datadog-api-client`` ->
a snapshot whose tool answers match the source world's: the same services and dependencies,
events, monitors (with their states), logs within the caps, metrics equal at the captured
rollup, whole error traces. Then: redaction (a planted secret never reaches the disk), rate
limits (429 with ``X-RateLimit-Reset`` and a 503, waited out), resume (an interrupted capture
finishes with the same snapshot), the CLI once, and a 60-service capture (timed in
``tests/benchmarks/bench_capture.py``).
"""

from __future__ import annotations

import argparse
import copy
import gzip
import json
import math
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from evaluator_agent.capture import (
    CaptureInterrupted,
    CaptureOptions,
    CaptureResult,
    OptionsError,
    Redactor,
    capture,
    resume,
)
from evaluator_agent.capture.convert import monitor_record
from evaluator_agent.cli import capture as capture_cli
from evaluator_agent.core.labels import Label, load_labelset, snapshots_dir
from evaluator_agent.engine.surfaces import SurfaceRegistry
from evaluator_agent.service.rest_facade import rest_app
from evaluator_agent.telemetry.index import WorldIndex
from evaluator_agent.telemetry.tools import Toolbox
from evaluator_agent.telemetry.world import load_snapshot_dict, write_snapshot
from tests.conftest import serving_in_thread

BIG = {"max_error_logs": 10000, "max_other_logs": 10000, "max_error_spans": 10000, "max_other_spans": 10000,
       "max_traces": 10000, "max_events": 10000}
NARROW = {"same_monitor": False, "same_team": False, "same_platform": False, "similar_names": False}  # no widening
SMALL = {"max_error_logs": 20, "max_other_logs": 10, "max_error_spans": 5, "max_other_spans": 5, "max_traces": 2,
         "max_events": 20, "host_metrics": False}  # scope tests: little data per service


@dataclass
class Served:
    url: str
    token: str
    data: dict[str, Any]


@contextmanager
def serve_world(data: dict[str, Any], wrap: Callable[[Any], Any] | None = None) -> Iterator[Served]:
    """The world behind the REST facade on a loopback port; the session token is the API key."""
    tb = Toolbox(WorldIndex.from_dict(data), now=float(data["end"]))
    registry = SurfaceRegistry()
    session = registry.open(tb, offered={"rest"}, max_calls=10**8, record=lambda *a: None, now=float(data["end"]))
    app: Any = Starlette(routes=[Mount("/datadog", app=rest_app(registry))])
    if wrap is not None:
        app = wrap(app)
    with serving_in_thread(app) as base:
        yield Served(base + "/datadog", session.token, data)


def run(served: Served, opts: CaptureOptions, tmp: Path, name: str, **kwargs: Any) -> CaptureResult:
    kwargs.setdefault("progress", None)
    return capture(opts, directory=tmp / name, snapshots_dir=tmp / "snapshots", api_url=served.url,
                   api_key=served.token, app_key=served.token, **kwargs)


def toolbox(data: dict[str, Any]) -> Toolbox:
    return Toolbox(WorldIndex.from_dict(data), now=float(data["end"]))


def call(tb: Toolbox, tool: str, args: dict[str, Any]) -> dict[str, Any]:
    out = tb.call(tool, args)
    assert out.ok, out.error
    return out.content


def every(tb: Toolbox, tool: str, args: dict[str, Any], key: str) -> list[dict[str, Any]]:
    """All items of a paged listing."""
    items, cursor = [], None
    while True:
        c = call(tb, tool, {**args, **({"cursor": cursor} if cursor else {})})
        items += c[key]
        cursor = c.get("next_cursor")
        if not cursor:
            return items


def frozen(x: Any) -> str:
    return json.dumps(x, sort_keys=True, default=str)


# ---------------------------------------------------------------------- the world and its capture


@pytest.fixture(scope="module")
def smoke() -> dict[str, Any]:
    lb = load_labelset("smoke").labels[0]
    data = load_snapshot_dict(lb.world.snapshot, snapshots_dir())
    return {"label": lb, "data": data}


@pytest.fixture(scope="module")
def served(smoke: dict[str, Any]) -> Iterator[Served]:
    with serve_world(smoke["data"]) as s:
        yield s


def full_options(data: dict[str, Any], **over: Any) -> CaptureOptions:
    """The whole smoke world: seed web-bff, every hop, caps above its sizes."""
    kw: dict[str, Any] = {"services": ["web-bff"], "start": data["start"] + 7200, "end": data["end"],
                          "baseline_s": 7200, "depth": 6, "max_services": 100, **BIG}
    kw.update(over)
    return CaptureOptions(**kw)


@pytest.fixture(scope="module")
def full(served: Served, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("capture")
    t0 = time.perf_counter()
    result = run(served, full_options(served.data), tmp, "full")
    seconds = time.perf_counter() - t0
    data = load_snapshot_dict(result.snapshot, tmp / "snapshots")
    expected = Redactor().apply(served.data)  # the source as the capture may show it
    print(f"\nsmoke capture: {result.counts} in {seconds:.2f} s, {result.requests} requests")
    return {"result": result, "data": data, "tb": toolbox(data), "src": toolbox(expected), "expected": expected,
            "tmp": tmp}


def test_the_snapshot_is_content_addressed_and_complete(full: dict[str, Any], served: Served) -> None:
    r: CaptureResult = full["result"]
    assert r.path.is_file() and r.path.name == f"{r.snapshot}.json.gz"
    assert (full["data"]["start"], full["data"]["end"]) == (served.data["start"], served.data["end"])
    assert r.counts["scoped_services"] == len(served.data["topology"]["services"]) == 30
    assert r.retries == 0 and r.fetched > 0 and r.resumed == 0
    manifest = json.loads((r.directory / "manifest.json").read_text())
    assert manifest["request"]["services"] == ["web-bff"]
    result = json.loads((r.directory / "result.json").read_text())
    assert result["snapshot"] == r.snapshot
    # why each service is in: the seed, then the hops (every service of the smoke world is reachable)
    assert manifest["scope"]["services"] == r.scope and manifest["scope"]["reasons"] == r.reasons == result["reasons"]
    assert r.reasons["web-bff"] == ["seed"] and r.reasons["catalog"][0] == "depends:1"
    assert all(why[0].startswith("depends:") for s, why in r.reasons.items() if s != "web-bff")
    assert r.scope_reasons == {"seed": 1, "depends": 29} and r.scope_cut == {}


def test_services_and_dependencies_match(full: dict[str, Any]) -> None:
    src, cap = full["src"], full["tb"]
    s_items = sorted(every(src, "list_services", {"limit": 500}, "services"), key=lambda s: s["name"])
    c_items = sorted(every(cap, "list_services", {"limit": 500}, "services"), key=lambda s: s["name"])
    assert c_items == s_items
    for s in s_items:
        args = {"service": s["name"], "direction": "both", "depth": 1}
        a, b = call(src, "get_service_dependencies", args), call(cap, "get_service_dependencies", args)
        for side in ("downstream", "upstream"):
            assert sorted(map(frozen, b[side])) == sorted(map(frozen, a[side])), (s["name"], side)


def test_events_match(full: dict[str, Any]) -> None:
    src, cap, exp = full["src"], full["tb"], full["expected"]
    window = {"from": exp["start"], "to": exp["end"], "limit": 500}
    known = {s["name"] for s in exp["topology"]["services"]}
    a = [e for e in every(src, "get_events", window, "events")
         if not any(t.startswith("service:") and t[8:] not in known for t in e["tags"])]
    b = every(cap, "get_events", window, "events")
    assert sorted(map(frozen, b)) == sorted(map(frozen, a))
    assert len(b) == len(exp["events"]) - 1  # one event names a service the catalog does not hold


def test_monitors_match_with_their_states(full: dict[str, Any]) -> None:
    a = {m["id"]: m for m in every(full["src"], "get_monitors", {"limit": 500}, "monitors")}
    b = {m["id"]: m for m in every(full["tb"], "get_monitors", {"limit": 500}, "monitors")}
    assert b.keys() == a.keys()
    for mid, m in a.items():
        got = b[mid]
        for k in ("name", "type", "query", "message", "tags", "state"):
            assert got[k] == m[k], (mid, k)
        # the REST API gives the last entry into each state (epoch seconds): those transitions
        src_moves = {(int(t["ts"]), t["to"]) for t in m["transitions"]}
        assert {(int(t["ts"]), t["to"]) for t in got["transitions"]} <= src_moves
        if m["transitions"]:
            assert (int(got["transitions"][-1]["ts"]), got["transitions"][-1]["to"]) == \
                   (int(m["transitions"][-1]["ts"]), m["transitions"][-1]["to"])


def test_logs_match(full: dict[str, Any]) -> None:
    src, cap, exp = full["src"], full["tb"], full["expected"]
    for s in sorted({x["service"] for x in exp["logs"]}):
        args = {"query": f"service:{s}", "from": exp["start"], "to": exp["end"], "limit": 200}
        a, b = every(src, "search_logs", args, "logs"), every(cap, "search_logs", args, "logs")
        assert sorted(map(frozen, b)) == sorted(map(frozen, a)), s
    assert len(full["data"]["logs"]) == len(exp["logs"])


def _metric_query_matches(src: Toolbox, cap: Toolbox, query: str, frm: int, to: int) -> None:
    a = call(src, "query_metrics", {"query": query, "from": frm, "to": to})
    b = call(cap, "query_metrics", {"query": query, "from": frm, "to": to})
    assert [s["scope"] for s in b["series"]] == [s["scope"] for s in a["series"]], query
    for x, y in zip(a["series"], b["series"], strict=True):
        assert [p[0] for p in y["pointlist"]] == [p[0] for p in x["pointlist"]], query
        for (_, u), (_, v) in zip(x["pointlist"], y["pointlist"], strict=True):
            assert (u is None) == (v is None) and (u is None or math.isclose(u, v, rel_tol=1e-5, abs_tol=1e-9)), query


def test_metrics_equal_at_the_captured_rollup(full: dict[str, Any]) -> None:
    src, cap, exp = full["src"], full["tb"], full["expected"]
    frm, to = exp["start"], exp["end"]
    pairs = sorted({(m["metric"], m["tags"]["service"], m["type"]) for m in exp["metrics"] if "service" in m["tags"]})
    assert pairs
    for metric, service, mtype in pairs:
        agg = "sum" if mtype == "count" else "avg"
        _metric_query_matches(src, cap, f"{agg}:{metric}{{service:{service}}}.rollup({agg}, 60)", frm, to)
        _metric_query_matches(src, cap, f"max:{metric}{{service:{service}}}.rollup(max, 300)", frm, to)
    _metric_query_matches(src, cap, "avg:trace.http.request.duration{*} by {service,resource_name}", frm, to)
    _metric_query_matches(src, cap, "sum:trace.http.request.hits{service:catalog} by {version}.rollup(sum, 120)", frm, to)
    # every original series comes back, with its tags, except those of hosts no scoped record names
    key = lambda m: (m["metric"], frozen(m["tags"]))  # noqa: E731
    got = {key(m) for m in full["data"]["metrics"]}
    missing = [m for m in exp["metrics"] if key(m) not in got]
    assert all("service" not in m["tags"] and m["tags"]["host"].startswith("kafka-broker") for m in missing), missing
    assert len(got) == len(full["data"]["metrics"]) == len(exp["metrics"]) - len(missing)
    types = {m["metric"]: m["type"] for m in exp["metrics"]}
    assert all(m["type"] == types[m["metric"]] or (types[m["metric"]] == "rate" and m["type"] == "gauge")
               for m in full["data"]["metrics"])


def test_error_traces_are_whole(full: dict[str, Any]) -> None:
    src, cap, exp = full["src"], full["tb"], full["expected"]
    traces = sorted({s["trace_id"] for s in exp["spans"] if s["error"]})
    assert traces
    for t in traces:
        a, b = call(src, "get_trace", {"trace_id": t}), call(cap, "get_trace", {"trace_id": t})
        # starts come to the millisecond (ISO 8601 in the API): siblings that start within the same
        # millisecond may be listed in another order, so compare span by span
        a_spans, b_spans = ({x["span_id"]: x for x in c["spans"]} for c in (a, b))
        assert b_spans.keys() == a_spans.keys(), t
        for sid, x in a_spans.items():
            y = b_spans[sid]
            assert {k: v for k, v in y.items() if k not in ("ts", "timestamp")} == \
                   {k: v for k, v in x.items() if k not in ("ts", "timestamp")}, (t, sid)
            assert abs(x["ts"] - y["ts"]) < 0.0011
    assert len(full["data"]["spans"]) == len(exp["spans"])


def test_draft_label_is_the_page(full: dict[str, Any], smoke: dict[str, Any]) -> None:
    label, lb = full["result"].label, smoke["label"]
    assert label["status"] == "draft" and label["provenance"]["kind"] == "captured"
    assert label["world"]["snapshot"] == full["result"].snapshot
    assert label["task"]["trigger"]["monitor_id"] == lb.task.trigger.monitor_id  # web-bff's alert in the window
    assert label["task"]["trigger"]["fired_at"] == "2026-02-24T19:55:00Z"
    assert label["ground_truth"]["root_causes"] == [] and label["ground_truth"]["mechanism"] is None
    with pytest.raises(ValueError):
        Label.model_validate(label)  # not a label until reviewed
    filled = copy.deepcopy(label)
    truth = lb.model_dump(mode="json")
    for k in ("taxonomy", "difficulty", "ground_truth"):
        filled[k] = truth[k]
    assert Label.model_validate(filled).task.trigger.monitor_id == lb.task.trigger.monitor_id


# ---------------------------------------------------------------------- caps


def test_caps_hold(served: Served, tmp_path: Path) -> None:
    data = served.data
    opts = full_options(data, services=["image-resizer", "mobile-bff"], depth=0, **NARROW,
                        max_error_logs=40, max_other_logs=12, max_error_spans=5, max_other_spans=4, max_traces=3,
                        max_events=7, sample_slices=4)
    r = run(served, opts, tmp_path, "caps")
    got = load_snapshot_dict(r.snapshot, tmp_path / "snapshots")
    assert r.scope == ["image-resizer", "mobile-bff"]
    for s in r.scope:
        src_err = sorted((x for x in data["logs"] if x["service"] == s and x["status"] in ("error", "critical")),
                         key=lambda x: -x["ts"])
        err = [x for x in got["logs"] if x["service"] == s and x["status"] in ("error", "critical")]
        other = [x for x in got["logs"] if x["service"] == s and x["status"] not in ("error", "critical")]
        assert len(src_err) > 40 and len(err) == 40
        assert sorted(x["ts"] for x in err) == sorted(x["ts"] for x in src_err[:40])  # the newest, in full
        assert 0 < len(other) <= 12
        assert len([e for e in got["events"] if e["tags"].get("service") == s]) <= 7
    assert any("the first 3 kept (max_traces)" in n for n in r.notes)
    assert len(list((tmp_path / "caps" / "pieces" / "traces").glob("*.json"))) == 3
    assert any("cut at 40" in n for n in r.notes)


# ---------------------------------------------------------------------- scope


class Rewrite:
    """ASGI wrapper: the JSON answer of ``GET <path>`` goes through ``edit`` (what the facade
    cannot serve: application groupings, multi-alert monitor groups)."""

    def __init__(self, app: Any, path: str, edit: Callable[[Any], Any]):
        self.app, self.path, self.edit = app, path, edit

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] != self.path:
            return await self.app(scope, receive, send)
        start: dict[str, Any] = {}
        chunks: list[bytes] = []

        async def keep(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            else:
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, keep)
        body = json.dumps(self.edit(json.loads(b"".join(chunks)))).encode()
        headers = [(k, v) for k, v in start["headers"] if k.lower() != b"content-length"]
        await send({**start, "headers": [*headers, (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


def test_scope_widens_to_the_monitor_family_the_team_and_similar_names(served: Served, tmp_path: Path) -> None:
    # catalog alerted in the window on "[P3] catalog error rate is high": the monitors of the same
    # template ("[P2] translations error rate is high" too) bring their services, before the team
    opts = full_options(served.data, services=["catalog"], depth=0, max_services=10, **SMALL)
    r = run(served, opts, tmp_path, "widened")
    family = ["api-gateway", "fraud-detection", "image-resizer", "pricing", "risk-features", "translations"]
    assert r.scope == ["catalog", *family, "catalog-db", "catalog-events", "catalog-redis"]
    assert r.reasons == {"catalog": ["seed"], "api-gateway": ["monitor"], "fraud-detection": ["monitor"],
                         "image-resizer": ["monitor", "team"], "pricing": ["monitor", "team"],
                         "risk-features": ["monitor"], "translations": ["monitor"],
                         "catalog-db": ["team", "similar-name"], "catalog-events": ["team", "similar-name"],
                         "catalog-redis": ["team", "similar-name"]}
    # the cap bit: catalog-sync, media-api, pricing-db and pricing-redis (team) were cut
    assert r.scope_reasons == {"seed": 1, "monitor": 6, "team": 3} and r.scope_cut == {"team": 4}
    assert any(n.startswith("scope: 14 services found, the first 10 kept") for n in r.notes)
    assert any("platform:kubernetes groups 20 of the catalog's 30 services" in n for n in r.notes)  # too broad
    manifest = json.loads((r.directory / "manifest.json").read_text())
    assert manifest["scope"] == {"services": r.scope, "reasons": r.reasons, "kept": r.scope_reasons, "cut": r.scope_cut}
    assert {s["name"] for s in load_snapshot_dict(r.snapshot, tmp_path / "snapshots")["topology"]["services"]} >= set(r.scope)


def test_scope_widens_to_the_platform_grouping(smoke: dict[str, Any], tmp_path: Path) -> None:
    # web-bff's definition says application "storefront" (more specific than its platform, kubernetes);
    # translations-db has only its platform, compute-engine, as the other databases
    storefront = {"web-bff", "mobile-bff", "support-portal"}

    def edit(body: Any) -> Any:
        for item in body["data"]:
            if item["id"] in storefront:
                item["attributes"]["schema"]["application"] = "storefront"
        return body

    with serve_world(smoke["data"], lambda app: Rewrite(app, "/datadog/api/v2/services/definitions", edit)) as s:
        opts = full_options(smoke["data"], services=["web-bff", "translations-db"], depth=0,
                            **{**NARROW, "same_platform": True}, **SMALL)
        r = run(s, opts, tmp_path, "platform")
    assert r.reasons == {"web-bff": ["seed"], "translations-db": ["seed"], "mobile-bff": ["platform"],
                         "support-portal": ["platform"], **dict.fromkeys(
                             ["catalog-db", "pricing-db", "risk-db", "subscriptions-db", "support-db"], ["platform"])}
    assert r.scope[:4] == ["web-bff", "translations-db", "mobile-bff", "support-portal"]  # application first


def test_scope_widens_to_the_services_of_the_paged_monitors_groups(served: Served, smoke: dict[str, Any],
                                                                  tmp_path: Path) -> None:
    mid = smoke["label"].task.trigger.monitor_id  # web-bff's, as a multi alert by service and env

    def edit(body: Any) -> Any:
        star = body["state"]["groups"].pop("*")
        body["state"]["groups"] = {"service:web-bff,env:prod": {**star, "name": "service:web-bff,env:prod"},
                                   "env:prod,service:partner-api": {**star, "status": "OK",
                                                                    "name": "env:prod,service:partner-api"}}
        return body

    with serve_world(smoke["data"], lambda app: Rewrite(app, f"/datadog/api/v1/monitor/{mid}", edit)) as s:
        opts = CaptureOptions(monitor_id=mid, depth=0, **{**NARROW, "same_monitor": True}, **SMALL)
        r = run(s, opts, tmp_path, "groups")
    assert r.reasons == {"web-bff": ["seed"], "partner-api": ["monitor"]}
    piece = next((tmp_path / "groups" / "pieces" / "monitor").glob("*.json"))
    assert json.loads(piece.read_text())["meta"]["groups"] == ["env:prod,service:partner-api", "service:web-bff,env:prod"]
    assert r.label["task"]["trigger"]["monitor_id"] == mid


def test_scope_rules() -> None:
    from evaluator_agent.capture import scope as sc
    from evaluator_agent.capture.convert import groups_of_definition, monitor_groups

    # similar names: distinctive tokens, generic ones left out
    assert sc.name_tokens("checkout-api_v2.prod") == {"checkout"} and sc.name_tokens("payments-worker") == {"payment"}
    catalog = ["checkout-worker", "checkout-db", "checkout-redis", "web-api", "payment-svc", "cart", "api-checkout"]
    assert sc.similar_names(["checkout", "payments"], catalog) == \
        ["api-checkout", "checkout-db", "checkout-redis", "checkout-worker", "payment-svc"]
    assert sc.similar_names(["web-api"], catalog) == []  # nothing distinctive
    # monitor families: the services a monitor names, its variables and numbers masked
    m = {"name": "[P3] pricing error rate above 5%", "tags": {"service": "pricing"},
         "query": "sum(last_5m):sum:trace.http.request.errors{service:pricing,env:prod}.as_count() > 5"}
    t = sc.monitor_template(m["name"], sc.services_named(m))
    assert t == sc.monitor_template("[P2] cart error rate above 2.5%", ["cart"])
    assert t != sc.monitor_template("[P3] pricing-db error rate above 5%", ["pricing"])  # not a word of the name
    assert sc.name_fragment(t) == "error rate above"
    assert sc.monitor_template("High p95 latency on {{service.name}}", []) == \
        sc.monitor_template("High p95 latency on checkout", ["checkout"])
    assert sc.name_fragment(sc.monitor_template("{{service.name}} 5xx", [])) is None
    multi = {"name": "5xx on {{service.name}}", "tags": {}, "query": "sum:errors{env:prod} by {service,env} > 5"}
    raw = {"id": 1, "state": {"groups": {"service:a,env:prod": {}, "env:prod,service:b": {}, "*": {}}}}
    assert monitor_groups(raw) == ["env:prod,service:b", "service:a,env:prod"]
    assert sc.services_named(multi, monitor_groups(raw)) == ["b", "a"]
    # groupings of a service definition, most specific first
    d = {"id": "a", "attributes": {"schema": {"schema-version": "v2.2", "dd-service": "a", "application": "shop",
                                              "tags": ["platform:gke", "system:orders"]}}}
    assert groups_of_definition(d) == {"service": "a", "groups": [["application", "shop"], ["system", "orders"],
                                                                  ["platform", "gke"]]}
    v3 = {"attributes": {"schema": {"dd-service": "b", "spec": {"componentOf": ["system:orders"]}}}}
    assert groups_of_definition(v3) == {"service": "b", "groups": [["system", "orders"]]}
    assert groups_of_definition({"attributes": {"schema": {"dd-service": "c", "tier": "1"}}}) is None  # a tier is no group
    groups = {"a": [["system", "orders"], ["platform", "gke"]], "b": [["system", "orders"]], "c": [["platform", "gke"]],
              "d": [["platform", "gke"]], "e": [["platform", "vm"]], "f": [["platform", "vm"]]}
    notes: list[str] = []
    assert sc.platform_members(["a"], groups, groups, notes.append) == ["b"]  # the system, not the platform
    assert sc.platform_members(["c"], groups, groups, notes.append) == ["a", "d"] and not notes
    assert sc.platform_members(["c"], groups, [*groups, "g"], notes.append) == ["a", "d"]  # 3 of 7
    assert sc.platform_members(["c"], groups, list(groups)[:4], notes.append) == [] and "too broad" in notes[0]
    # precedence: seeds, hops nearest first, monitor, team, platform, similar names; then the cap
    got = sc.assemble(["s"], [["h1"], ["h2"]], {"similar-name": ["n", "t"], "platform": ["p"], "team": ["t", "s"],
                                                "monitor": ["m", "h2"]}, max_services=6)
    assert got.services == ["s", "h1", "h2", "m", "t", "p"]
    assert got.reasons == {"s": ["seed"], "h1": ["depends:1"], "h2": ["depends:2", "monitor"], "m": ["monitor"],
                           "t": ["team", "similar-name"], "p": ["platform"]}
    assert got.cut == {"similar-name": 1}
    assert got.describe()["kept"] == {"seed": 1, "depends": 2, "monitor": 1, "team": 1, "platform": 1}


def test_a_manifest_from_before_the_widenings_asks_for_none() -> None:
    old = CaptureOptions(services=["a"], start=1, end=100).request()
    for k in ("same_monitor", "same_platform", "similar_names"):
        del old[k]
    got = CaptureOptions.from_request(old)
    assert (got.same_monitor, got.same_platform, got.similar_names, got.same_team) == (False, False, False, True)
    assert CaptureOptions.from_request(CaptureOptions(services=["a"], start=1, end=100).request()).similar_names


# ---------------------------------------------------------------------- redaction


SECRETS = ["sk_live_4eC39HqLyjWDarjtT1zdp7dc", "hunter2-correct-horse", "jane.doe@example.org",
           "AKIAIOSFODNN7EXAMPLE", "4111 1111 1111 1111", "ORDER-99172"]


def test_a_planted_secret_never_reaches_the_disk(smoke: dict[str, Any], tmp_path: Path) -> None:
    data = copy.deepcopy(smoke["data"])
    log = next(x for x in data["logs"] if x["service"] == "web-bff" and x["message"].endswith("got invalid value -1"))
    log["message"] += (f" Authorization: Bearer {SECRETS[0]} password={SECRETS[1]} user {SECRETS[2]} "
                       f"key {SECRETS[3]} card {SECRETS[4]} ref {SECRETS[5]}")
    log["attrs"]["http.request.headers.cookie"] = "session=abcdef"
    digest = write_snapshot(data, tmp_path / "source")
    data = load_snapshot_dict(digest, tmp_path / "source")
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps({"rules": [{"name": "order", "pattern": r"ORDER-\d+"}]}))
    with serve_world(data) as s:
        opts = full_options(data, services=["web-bff"], depth=0, **NARROW)
        r = run(s, opts, tmp_path, "redacted", redactor=Redactor.from_config(rules))
    raw = gzip.decompress(r.path.read_bytes()).decode()
    assert "got invalid value -1 Authorization: Bearer [REDACTED:bearer]" in raw  # the log was captured...
    on_disk = [raw] + [p.read_text() for p in (tmp_path / "redacted").rglob("*") if p.is_file()]
    for secret in [*SECRETS, "abcdef"]:
        assert not any(secret in text for text in on_disk), secret  # ...its secrets were not
    got = next(x for x in load_snapshot_dict(r.snapshot, tmp_path / "snapshots")["logs"]
               if x["message"].startswith(log["message"][:40]))
    for tag in ("bearer", "password", "email", "aws_access_key", "credit_card", "order"):
        assert f"[REDACTED:{tag}]" in got["message"], tag
    assert got["attrs"]["http.request.headers.cookie"] == "[REDACTED:key]"
    assert r.redactions["bearer"] >= 1 and r.redactions["order"] >= 1


def test_redaction_rules_leave_ids_alone() -> None:
    r = Redactor()
    for s in ("trace 2ded16c9fc17ba6b1d7236cf4058b676", "event 237651156921858797", "order 1234567890123",
              "pg-archiver@shop-prod.iam.gserviceaccount.com", "latency 0.4619 s at 1771952463.126",
              "@slack-team-catalog-alerts https://runbooks.shop.example.com/pricing"):
        assert r.text(s) == s
    assert r.apply({"password": "x1", "tags": ["token:abcdef12", "env:prod"]}) == \
        {"password": "[REDACTED:key]", "tags": ["token:[REDACTED:key]", "env:prod"]}
    assert Redactor.from_config(defaults=False).text("password=hunter2") == "password=hunter2"


# ---------------------------------------------------------------------- rate limits and retries


class Flaky:
    """ASGI wrapper: the first request of each endpoint family gets a 429 with Datadog's
    ``X-RateLimit-Reset: 1``, the second a 503; later ones pass through."""

    def __init__(self, app: Any):
        self.app = app
        self.seen: Counter[str] = Counter()
        self.refused: list[tuple[str, int]] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        family = "/".join(scope["path"].split("/")[:5])
        self.seen[family] += 1
        n = self.seen[family]
        if n <= 2:
            status = 429 if n == 1 else 503
            self.refused.append((family, status))
            body = json.dumps({"errors": ["Too many requests" if status == 429 else "Service Unavailable"]}).encode()
            headers = [(b"content-type", b"application/json")]
            if status == 429:
                headers += [(b"x-ratelimit-limit", b"100"), (b"x-ratelimit-period", b"10"),
                            (b"x-ratelimit-remaining", b"0"), (b"x-ratelimit-reset", b"1")]
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send)


def test_rate_limits_are_waited_out(smoke: dict[str, Any], served: Served, tmp_path: Path) -> None:
    data = smoke["data"]
    opts = full_options(data, services=["catalog"], depth=1, **NARROW)
    plain = run(served, opts, tmp_path, "plain")
    flaky: list[Flaky] = []

    def wrap(app: Any) -> Flaky:
        flaky.append(Flaky(app))
        return flaky[0]

    with serve_world(data, wrap) as s:
        t0 = time.perf_counter()
        r = run(s, opts, tmp_path, "flaky", backoff_s=0.05)
        seconds = time.perf_counter() - t0
    refused = flaky[0].refused
    assert {st for _, st in refused} == {429, 503} and len(refused) >= 10
    assert r.rate_limited == sum(1 for _, st in refused if st == 429)
    assert r.retries == len(refused)
    assert seconds >= 1.0 and r.waited_s >= r.rate_limited * 1.0  # waited X-RateLimit-Reset each time
    assert r.snapshot == plain.snapshot  # and nothing was lost


def test_bounded_attempts(smoke: dict[str, Any], tmp_path: Path) -> None:
    from evaluator_agent.capture import DatadogError

    class Down:
        def __init__(self, app: Any):
            self.app = app

        async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
            if scope["type"] != "http":
                return await self.app(scope, receive, send)
            await send({"type": "http.response.start", "status": 502, "headers": []})
            await send({"type": "http.response.body", "body": b"bad gateway"})

    with serve_world(smoke["data"], Down) as s:
        with pytest.raises(DatadogError, match="gave up after 3 attempts"):
            run(s, full_options(smoke["data"], depth=0), tmp_path, "down", max_attempts=3, backoff_s=0.01)


# ---------------------------------------------------------------------- resume


def test_an_interrupted_capture_resumes_to_the_same_snapshot(served: Served, tmp_path: Path) -> None:
    # every widening on, cut by the cap: the scope is decided from stored pieces as well
    opts = full_options(served.data, services=["catalog"], depth=1, max_services=12)
    whole = run(served, opts, tmp_path, "whole")
    assert whole.scope_cut == {"monitor": 2, "team": 3} and whole.scope_reasons == {"seed": 1, "depends": 8, "monitor": 3}
    with pytest.raises(CaptureInterrupted):
        run(served, opts, tmp_path, "cut", max_steps=25)
    stored = list((tmp_path / "cut" / "pieces").rglob("*.json"))
    assert len(stored) == 25
    with pytest.raises(CaptureInterrupted):  # a second interruption, further on
        resume(tmp_path / "cut", api_url=served.url, api_key=served.token, app_key=served.token,
               snapshots_dir=tmp_path / "snapshots", progress=None, max_steps=40)
    r = resume(tmp_path / "cut", api_url=served.url, api_key=served.token, app_key=served.token,
               snapshots_dir=tmp_path / "snapshots", progress=None, redactor=Redactor.from_config(defaults=False))
    assert r.resumed == 65 and r.fetched == whole.fetched - 65
    assert r.snapshot == whole.snapshot and r.label == whole.label
    assert (r.scope, r.reasons, r.scope_cut) == (whole.scope, whole.reasons, whole.scope_cut)
    again = resume(tmp_path / "cut", api_url=served.url, api_key=served.token, app_key=served.token,
                   snapshots_dir=tmp_path / "snapshots", progress=None)
    assert again.fetched == 0 and again.requests == 0 and again.snapshot == whole.snapshot
    with pytest.raises(Exception, match="another capture"):  # a directory holds one capture
        run(served, full_options(served.data, services=["pricing"]), tmp_path, "cut")


# ---------------------------------------------------------------------- the command


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="proctor capture")
    capture_cli.add_arguments(p)
    return p.parse_args(argv)


def test_cli_from_a_monitor(served: Served, smoke: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                            capsys: pytest.CaptureFixture[str]) -> None:
    lb = smoke["label"]
    monkeypatch.setenv("DD_API_KEY", served.token)
    monkeypatch.setenv("DD_APP_KEY", served.token)
    out = tmp_path / "label.json"
    argv = ["--monitor", str(lb.task.trigger.monitor_id), "--api-url", served.url, "--dir", str(tmp_path / "c"),
            "--snapshots", str(tmp_path / "snaps"), "--label-out", str(out), "--depth", "1", "--baseline", "1h",
            "--no-platform", "--no-similar-names"]
    assert capture_cli.cmd_capture(parse(argv)) == 0
    request = json.loads((tmp_path / "c" / "manifest.json").read_text())["request"]
    assert (request["same_monitor"], request["same_team"], request["same_platform"], request["similar_names"]) == \
        (True, True, False, False)
    a = parse(["--service", "x", "--no-monitor-scope", "--no-team"])
    assert (a.no_monitor_scope, a.no_team, a.no_platform, a.no_similar_names) == (True, True, False, False)
    err = capsys.readouterr().err
    assert "capture: [catalog]" in err and "snapshot" in err
    label = json.loads(out.read_text())
    trig = label["task"]["trigger"]
    assert trig["monitor_id"] == lb.task.trigger.monitor_id and trig["fired_at"] == "2026-02-24T19:55:00Z"
    assert trig["title"] == lb.task.trigger.title and str(lb.task.trigger.monitor_id) in label["task"]["prompt"]
    assert label["world"]["incident_window"] == {"start": "2026-02-24T19:25:00Z", "end": "2026-02-24T20:05:00Z"}
    assert label["world"]["baseline_window"]["start"] == "2026-02-24T18:25:00Z"
    assert (tmp_path / "snaps" / f"{label['world']['snapshot']}.json.gz").is_file()
    world = load_snapshot_dict(label["world"]["snapshot"], tmp_path / "snaps")
    assert "web-bff" in {s["name"] for s in world["topology"]["services"]}
    # usage and refusals
    assert capture_cli.cmd_capture(parse(["--service", "web-bff"])) == 2  # no window
    monkeypatch.delenv("DD_APP_KEY")
    assert capture_cli.cmd_capture(parse(["--service", "x", "--from", "now-1h", "--to", "now",
                                          "--dir", str(tmp_path / "nokey")])) == 1
    assert "DD_APP_KEY" in capsys.readouterr().err


class WithIncident:
    """ASGI wrapper: answers ``GET /datadog/api/v2/incidents/{id}`` (the facade has no incidents)."""

    def __init__(self, app: Any, incident: dict[str, Any]):
        self.app, self.incident = app, incident

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == f"/datadog/api/v2/incidents/{self.incident['data']['id']}":
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
            await send({"type": "http.response.body", "body": json.dumps(self.incident).encode()})
            return
        await self.app(scope, receive, send)


def test_capture_from_a_datadog_incident(smoke: dict[str, Any], tmp_path: Path) -> None:
    iid = "7e1a3c52-0d6b-4a51-9c1e-3f0e2b8c9d10"
    incident = {"data": {"id": iid, "type": "incidents", "attributes": {
        "title": "Catalog pages slow", "public_id": 42, "created": "2026-02-24T19:50:00Z",
        "customer_impact_start": "2026-02-24T19:40:00Z", "resolved": "2026-02-24T19:58:00Z",
        "fields": {"services": {"type": "autocomplete", "value": ["catalog", "web-bff"]},
                   "teams": {"type": "autocomplete", "value": ["catalog"]}}}}}
    with serve_world(smoke["data"], lambda app: WithIncident(app, incident)) as s:
        r = run(s, CaptureOptions(incident_id=iid, depth=0, baseline_s=3600, **NARROW), tmp_path, "incident")
    assert r.scope == ["catalog", "web-bff"]
    window = r.label["world"]["incident_window"]
    assert window == {"start": "2026-02-24T19:10:00Z", "end": "2026-02-24T20:08:00Z"}  # 30 min before, 10 after
    assert r.label["world"]["baseline_window"]["start"] == "2026-02-24T18:10:00Z"
    assert f"incident {iid}" in r.label["provenance"]["source"]
    assert r.label["task"]["trigger"]["monitor_id"] == smoke["label"].task.trigger.monitor_id  # web-bff paged


def test_options_are_checked() -> None:
    for bad in (CaptureOptions(), CaptureOptions(services=["a"]), CaptureOptions(services=["a"], start=10, end=5),
                CaptureOptions(monitor_id=1, incident_id="x"), CaptureOptions(services=["a"], start=1, end=5, baseline_s=0)):
        with pytest.raises(OptionsError):
            bad.validate()


def test_monitor_transitions_from_group_states() -> None:
    m = monitor_record({"id": 7, "name": "n", "overall_state": "OK", "tags": ["service:a", "team:b"],
                        "state": {"groups": {"*": {"status": "OK", "last_notified_ts": 100,
                                                   "last_resolved_ts": 160}}}})
    assert m["transitions"] == [{"ts": 100.0, "from": "OK", "to": "Warn", "value": None},
                                {"ts": 160.0, "from": "Warn", "to": "OK", "value": None}]
    assert m["tags"] == {"service": "a", "team": "b"}


# ---------------------------------------------------------------------- scale


def big_world() -> tuple[Any, dict[str, Any]]:
    """The core label whose world has the most services (over 60), and that world."""
    labels = load_labelset("core").labels
    lb = max(labels, key=lambda x: (x.difficulty.factors.services, x.id))
    return lb, load_snapshot_dict(lb.world.snapshot, snapshots_dir())


def big_options(lb: Any, data: dict[str, Any]) -> CaptureOptions:
    """The whole world of ``lb``, 60 services from its page: baseline 2 h, then to its end."""
    fired = int(lb.task.trigger.fired_at.timestamp())
    return CaptureOptions(monitor_id=lb.task.trigger.monitor_id, depth=6, max_services=60, baseline_s=7200,
                          before_s=max(0, fired - int(data["start"]) - 7200), after_s=int(data["end"]) - fired)


def test_a_sixty_service_incident_is_captured_whole(tmp_path: Path) -> None:
    # its time is measured by tests/benchmarks/bench_capture.py, not here
    lb, data = big_world()
    assert len(data["topology"]["services"]) >= 60
    with serve_world(data) as s:
        r = run(s, big_options(lb, data), tmp_path, "big")
    assert r.counts["scoped_services"] == 60
