"""The telemetry tools (and the index under them) on a small hand-built world."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest

from evaluator_agent.telemetry.catalog import TOOL_NAMES
from evaluator_agent.telemetry.index import RecordTable, WorldIndex
from evaluator_agent.telemetry.index_plan import search_table
from evaluator_agent.telemetry.query import compile_predicate, parse_search_query
from evaluator_agent.telemetry.tools import MAX_RESULT_BYTES, Toolbox, ToolOutcome
from evaluator_agent.telemetry.world import WorldSnapshot

from .worlds import DEPLOY, INCIDENT, NOW, START, small_world


@pytest.fixture(scope="module")
def world() -> dict[str, Any]:
    return small_world()


@pytest.fixture(scope="module")
def index(world: dict[str, Any]) -> WorldIndex:
    return WorldIndex.from_dict(world)


@pytest.fixture(scope="module")
def tb(index: WorldIndex) -> Toolbox:
    return Toolbox(index, NOW)


def ok(tb: Toolbox, name: str, **args: Any) -> dict[str, Any]:
    out = tb.call(name, args)
    assert out.ok, out.error
    assert out.error is None
    json.dumps(out.content)  # every answer is plain JSON
    return out.content


def err(tb: Toolbox, name: str, args: Any) -> str:
    out = tb.call(name, args)
    assert not out.ok and out.content is None
    assert out.error
    return out.error


def test_fixture_world_is_valid(world: dict[str, Any]) -> None:
    WorldSnapshot.model_validate(world)


def test_every_catalog_tool_is_implemented(tb: Toolbox) -> None:
    for name in TOOL_NAMES:
        out = tb.call(name, {"trace_id": "x", "service": "checkout", "query": "avg:m{*}"} if name in (
            "get_trace", "get_service_dependencies", "query_metrics") else {})
        assert isinstance(out, ToolOutcome)
        assert "unknown tool" not in (out.error or "")


# --------------------------------------------------------------------------- index vs brute force

LOG_QUERIES = [
    "", "*", "service:checkout", "service:CHECKOUT", "service:check*", "service:*way", "-service:checkout",
    "status:error", "status:(error OR warn)", "status:error OR status:warn", "NOT status:info",
    "host:k8s-node-1", "host:*", "-host:*", "@http.status_code:500", "@http.status_code:>=500",
    "@http.status_code:[200 TO 499]", "@http.method:post", "@duration_ms:>70", "@duration_ms:[10 TO 20}",
    "version:2.3.1", "@version:2.3.*", "env:prod", "@error.kind:*", "timed out", '"timed out"', "TIMED",
    "hikaripool-1", "30000ms", "30000", "x509", "orders", "/api/v1/orders", "get /api", "conn*failure",
    "upstream*error", "reset reason", "service:checkout timed", "service:web-gateway -upstream",
    "(service:checkout OR service:web-gateway) status:error", "service:checkout AND NOT @http.status_code:500",
    "trace_id:*", "-trace_id:*", "@nosuchfield:1", "nosuchword", "slow query", "1200ms", "stock_levels",
    "service:inventory (slow OR timed)", "@http.status_code:200 -service:payments -service:inventory",
]


def _brute(table: RecordTable, q: str, t0: float, t1: float, text_key: str) -> list[int]:
    pred = compile_predicate(parse_search_query(q), table.value, lambda r: str(r.get(text_key, "")).lower())
    tk = table.spec.time_key
    return sorted(id(r) for r in table.records if t0 <= r[tk] <= t1 and pred(r))


@pytest.mark.parametrize("q", LOG_QUERIES)
@pytest.mark.parametrize("window", [(START, NOW), (INCIDENT - 300, INCIDENT + 900)])
def test_log_index_agrees_with_brute_force(index: WorldIndex, q: str, window: tuple[float, float]) -> None:
    t = index.logs
    res = search_table(t, parse_search_query(q), *window)
    got = sorted(id(t.records[r]) for r in res.rows.rows())
    assert got == _brute(t, q, *window, "message")
    assert res.rows.count() == len(got)


@pytest.mark.parametrize(
    "q",
    ["service:checkout status:error", "status:ok", "@duration:>5", "@duration:<=0.02", "resource_name:\"POST /checkout\"",
     "operation_name:servlet.request", "@http.status_code:500", "version:2.3.1", "env:prod -service:checkout",
     "getconnection", "post", "trace_id:*"],
)
def test_span_index_agrees_with_brute_force(index: WorldIndex, q: str) -> None:
    t = index.spans
    res = search_table(t, parse_search_query(q), START, NOW)
    got = sorted(id(t.records[r]) for r in res.rows.rows())
    pred = compile_predicate(parse_search_query(q), t.value, lambda r: f"{r['resource']} {r['name']}".lower())
    assert got == sorted(id(r) for r in t.records if r["start"] <= NOW and pred(r))


def test_text_index_with_ids_and_numbers() -> None:
    """Templates mask digits and hex letters; the rows themselves decide the match."""
    msgs = [
        "request 4bf92f3577b34da6a3ce929d0e0e4736 failed: x509: certificate has expired",
        "request 00f067aa0ba902b7 ok in 12ms",
        "request deadbeefcafe0001 ok in 13ms",
        "Cache stampede on key cart:12345",
        "Cache stampede on key cart:99",
        "café crème brûlée résumé",
        "line with a\x00nul byte",
        "",
    ]
    logs = [{"ts": START + i, "service": "s", "message": m, "attrs": {}} for i, m in enumerate(msgs)]
    idx = WorldIndex.from_dict({"schema_version": 1, "world_id": "w", "start": START, "end": END_OF(logs),
                                "topology": {"services": [{"name": "s"}]}, "logs": logs})
    for q in ["4bf92f35", "deadbeef", "cafe0001", "x509", "expired", "12ms", "ok in", "cart:12345", "cart:1",
              "stampede", "crème", "CAFÉ", "nul byte", "request*ok", "ok in 1?ms", "#"]:
        res = search_table(idx.logs, parse_search_query(q), START, START + 100)
        got = [idx.logs.records[r]["message"] for r in res.rows.rows()]
        needle = parse_search_query(q)
        pred = compile_predicate(needle, idx.logs.value, lambda r: r["message"].lower())
        assert got == [m["message"] for m in logs if pred(m)], q


def END_OF(logs: list[dict[str, Any]]) -> int:  # noqa: N802 - reads like a constant
    return int(max(r["ts"] for r in logs)) + 1


# --------------------------------------------------------------------------- topology


def test_list_services(tb: Toolbox) -> None:
    out = ok(tb, "list_services")
    assert out["total"] == 7 and out["next_cursor"] is None
    assert [s["name"] for s in out["services"]][:2] == ["checkout", "inventory"]
    assert set(out["services"][0]) == {"name", "kind", "team", "platform", "cluster", "tier", "language", "description"}
    assert [s["name"] for s in ok(tb, "list_services", query="team:payments")["services"]] == ["checkout", "payments", "stripe-api"]
    assert [s["name"] for s in ok(tb, "list_services", query="kind:database")["services"]] == ["postgres-orders"]
    assert [s["name"] for s in ok(tb, "list_services", query="pay")["services"]] == ["payments"]
    assert ok(tb, "list_services", query="tier:0")["services"][0]["name"] == "web-gateway"


def test_list_services_pagination_round_trip(tb: Toolbox) -> None:
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        args: dict[str, Any] = {"limit": 3}
        if cursor:
            args["cursor"] = cursor
        out = ok(tb, "list_services", **args)
        seen += [s["name"] for s in out["services"]]
        pages += 1
        cursor = out["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert seen == sorted(s["name"] for s in small_world()["topology"]["services"])  # disjoint and complete


def test_get_service_dependencies(tb: Toolbox) -> None:
    out = ok(tb, "get_service_dependencies", service="checkout")
    assert out["service"] == "checkout"
    assert {d["service"] for d in out["downstream"]} == {"payments", "inventory", "redis-cache", "postgres-orders"}
    assert out["upstream"] == [{"service": "web-gateway", "protocol": "http", "depth": 1}]
    deep = ok(tb, "get_service_dependencies", service="web-gateway", direction="downstream", depth=3)
    assert {(d["service"], d["depth"]) for d in deep["downstream"]} >= {("checkout", 1), ("payments", 2), ("stripe-api", 3)}
    assert deep["upstream"] == []
    up = ok(tb, "get_service_dependencies", service="postgres-orders", direction="upstream", depth=2)
    assert {(d["service"], d["depth"]) for d in up["upstream"]} == {("checkout", 1), ("inventory", 1), ("web-gateway", 2)}
    assert ok(tb, "get_service_dependencies", service="Checkout")["service"] == "checkout"
    assert "did you mean checkout" in err(tb, "get_service_dependencies", {"service": "chekout"})
    assert "unknown service" in err(tb, "get_service_dependencies", {"service": "zzz"})


# --------------------------------------------------------------------------- metrics


def test_list_metrics(tb: Toolbox) -> None:
    out = ok(tb, "list_metrics")
    names = [m["metric"] for m in out["metrics"]]
    assert names == sorted(names) and out["total"] == len(names) == 5
    pg = ok(tb, "list_metrics", query="postgresql")["metrics"]
    assert pg == [{"metric": "postgresql.percent_usage_connections", "type": "gauge",
                   "tags": {"db": ["orders"], "host": ["orders-db-1"]}}]
    chk = ok(tb, "list_metrics", query="trace service:checkout")
    assert {m["metric"] for m in chk["metrics"]} == {"trace.http.request.hits", "trace.http.request.duration",
                                                    "trace.servlet.request.duration"}
    assert all(m["tags"]["service"] == ["checkout"] for m in chk["metrics"])
    page1 = ok(tb, "list_metrics", limit=2)
    page2 = ok(tb, "list_metrics", limit=2, cursor=page1["next_cursor"])
    assert not {m["metric"] for m in page1["metrics"]} & {m["metric"] for m in page2["metrics"]}


def test_query_metrics_group_by_version(tb: Toolbox) -> None:
    out = ok(tb, "query_metrics", query="avg:trace.servlet.request.duration{service:checkout} by {version}",
             **{"from": "now-2h"})
    assert [s["tags"] for s in out["series"]] == [{"version": "2.3.0"}, {"version": "2.3.1"}]
    s_old, s_new = out["series"]
    assert s_new["scope"] == "service:checkout,version:2.3.1"
    assert s_new["metric"] == "trace.servlet.request.duration" and s_new["aggregation"] == "avg"
    assert s_new["interval"] == 60 and s_new["length"] == len(s_new["pointlist"])
    pts = {ts: v for ts, v in s_new["pointlist"]}
    assert pts[START + 60 * ((DEPLOY - START) // 60 - 1)] is None  # before the deploy: no data
    assert pts[INCIDENT + 600] == 1.2
    assert all(ts <= NOW for ts, _ in s_new["pointlist"])
    assert max(ts for ts, _ in s_old["pointlist"]) <= NOW


def test_query_metrics_aggregation_and_rollup(tb: Toolbox) -> None:
    out = ok(tb, "query_metrics", query="sum:trace.http.request.hits{*}", **{"from": "now-10m"})
    (s,) = out["series"]
    assert s["scope"] == "*"
    # four services: 100 + 110 + 120 + 130 + 4 * (j % 5)
    assert all(v == 460 + 4 * (((ts - START) // 60) % 5) for ts, v in s["pointlist"])
    roll = ok(tb, "query_metrics", query="max:trace.http.request.hits{service:checkout}.rollup(max, 300)",
              **{"from": START, "to": START + 1800})["series"][0]
    assert roll["interval"] == 300 and [v for _, v in roll["pointlist"]][:2] == [114.0, 114.0]  # 110 + j % 5
    cnt = ok(tb, "query_metrics", query="count:system.cpu.user{*}", **{"from": "now-5m"})["series"][0]
    assert {v for _, v in cnt["pointlist"]} == {3.0}
    mn = ok(tb, "query_metrics", query="min:system.cpu.user{host:k8s-node-*} by {host}", **{"from": "now-5m"})
    assert [s["tags"]["host"] for s in mn["series"]] == ["k8s-node-1", "k8s-node-2", "k8s-node-3"]


def test_query_metrics_long_window_is_rolled_up(tb: Toolbox) -> None:
    out = ok(tb, "query_metrics", query="avg:postgresql.percent_usage_connections{db:orders}",
             **{"from": START - 86400 * 3, "to": "now"})
    (s,) = out["series"]
    assert s["length"] <= 301 and s["interval"] > 60
    explicit = ok(tb, "query_metrics", query="avg:postgresql.percent_usage_connections{db:orders}.rollup(avg, 60)",
                  **{"from": START - 86400 * 3})
    assert explicit["series"][0]["interval"] > 60 and "raised" in explicit["warning"]


def test_query_metrics_no_series(tb: Toolbox) -> None:
    out = ok(tb, "query_metrics", query="avg:trace.http.request.hits{service:nope}")
    assert out["series"] == [] and "service:nope" in out["warning"] and "checkout" in out["warning"]
    out = ok(tb, "query_metrics", query="avg:trace.http.request.hit{*}")
    assert out["series"] == [] and "did you mean trace.http.request.hits" in out["warning"]
    out = ok(tb, "query_metrics", query="avg:trace.http.request.hits{zone:a}")
    assert "no tag 'zone'" in out["warning"]
    assert "unknown aggregation" in err(tb, "query_metrics", {"query": "p99:trace.http.request.hits{*}"})


# --------------------------------------------------------------------------- logs


def test_search_logs_basics(tb: Toolbox, world: dict[str, Any]) -> None:
    out = ok(tb, "search_logs", query="service:checkout status:error", limit=5)
    logs = out["logs"]
    assert len(logs) == 5 and out["total_matched"] == 30
    assert [x["ts"] for x in logs] == sorted((x["ts"] for x in logs), reverse=True)  # newest first
    first = logs[0]
    assert set(first) == {"timestamp", "ts", "service", "host", "status", "message", "attributes", "trace_id"}
    assert first["timestamp"].endswith("Z") and first["service"] == "checkout" and first["status"] == "error"
    assert first["attributes"]["http"]["status_code"] == 500 and len(first["trace_id"]) == 32
    asc = ok(tb, "search_logs", query="service:checkout status:error", limit=5, sort="timestamp")["logs"]
    assert [x["ts"] for x in asc] == sorted(x["ts"] for x in asc) and asc[0]["ts"] >= NOW - 3600


def test_search_logs_default_window_and_now(tb: Toolbox) -> None:
    out = ok(tb, "search_logs", limit=200)
    assert all(NOW - 3600 <= x["ts"] <= NOW for x in out["logs"])
    assert out["total_matched"] == sum(1 for r in small_world()["logs"] if NOW - 3600 <= r["ts"] <= NOW)
    future = ok(tb, "search_logs", query="FUTURE", **{"from": START, "to": NOW + 86400})
    assert future["logs"] == [] and future["total_matched"] == 0
    crit = ok(tb, "search_logs", query="status:critical", **{"to": "now+1d"})
    assert crit["total_matched"] == 0  # the critical burst is after now
    assert "after now" in err(tb, "search_logs", {"from": "now+1m"})


def test_search_logs_pagination_is_disjoint_and_complete(tb: Toolbox) -> None:
    q = {"query": "status:error", "from": "now-2h"}
    total = ok(tb, "search_logs", **q, limit=1)["total_matched"]
    seen: list[tuple[float, str]] = []
    cursor = None
    while True:
        out = ok(tb, "search_logs", **q, limit=7, **({"cursor": cursor} if cursor else {}))
        seen += [(x["ts"], x["service"]) for x in out["logs"]]
        cursor = out["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == total == 60
    assert seen == sorted(seen, key=lambda x: x[0], reverse=True)


def test_cursor_is_tied_to_its_query(tb: Toolbox) -> None:
    cur = ok(tb, "search_logs", query="status:error", limit=2)["next_cursor"]
    assert cur
    assert "different query" in err(tb, "search_logs", {"query": "status:warn", "cursor": cur})
    assert "different query" in err(tb, "search_logs", {"query": "status:error", "cursor": cur, "from": "now-2h"})
    assert "different query" in err(tb, "search_spans", {"query": "status:error", "cursor": cur})
    assert "invalid cursor" in err(tb, "search_logs", {"query": "status:error", "cursor": "!!not-a-cursor"})
    assert "invalid cursor" in err(tb, "list_services", {"cursor": "eyJ4IjoxfQ"})
    # the same query with another limit continues fine
    assert ok(tb, "search_logs", query="status:error", limit=3, cursor=cur)["logs"]


def test_search_logs_limit_cap_and_warnings(tb: Toolbox) -> None:
    out = ok(tb, "search_logs", limit=500, **{"from": START})
    assert len(out["logs"]) <= 200 and "capped at 200" in out["warning"]
    out = ok(tb, "search_logs", query="servce:checkout")
    assert out["total_matched"] == 0 and "'servce'" in out["warning"]


def test_aggregate_logs(tb: Toolbox, world: dict[str, Any]) -> None:
    out = ok(tb, "aggregate_logs", query="status:error", group_by=["service"], **{"from": START})
    assert out["buckets"] == [{"by": {"service": "checkout"}, "count": 30},
                              {"by": {"service": "web-gateway"}, "count": 30}]
    assert out["total"] == 60
    allb = ok(tb, "aggregate_logs", group_by=["service", "status"], **{"from": START})
    expect = Counter((r["service"], r["status"]) for r in world["logs"] if START <= r["ts"] <= NOW)
    assert {(b["by"]["service"], b["by"]["status"]): b["count"] for b in allb["buckets"]} == dict(expect)
    assert allb["total"] == sum(expect.values())
    plain = ok(tb, "aggregate_logs", query="service:inventory")
    assert plain["buckets"] == [{"by": {}, "count": plain["total"]}]
    codes = ok(tb, "aggregate_logs", query="status:error", group_by=["@http.status_code"], **{"from": START})
    assert [(b["by"]["@http.status_code"], b["count"]) for b in codes["buckets"]] == [("500", 30), ("503", 30)]
    missing = ok(tb, "aggregate_logs", query="service:inventory", group_by=["@http.status_code"])
    assert {b["by"]["@http.status_code"] for b in missing["buckets"]} == {"200", "N/A"}
    by_trace = ok(tb, "aggregate_logs", group_by=["trace_id"], limit=500, **{"from": START})
    assert sum(b["count"] for b in by_trace["buckets"]) == by_trace["total"]
    assert by_trace["buckets"][0] == {"by": {"trace_id": "N/A"}, "count": by_trace["total"] - 60}
    top = ok(tb, "aggregate_logs", group_by=["service"], limit=2)
    assert len(top["buckets"]) == 2 and top["groups_total"] == 4


def test_aggregate_logs_timeseries(tb: Toolbox) -> None:
    out = ok(tb, "aggregate_logs", query="status:error", group_by=["service"], interval=600, **{"from": "now-1h"})
    assert out["interval"] == 600
    for b in out["buckets"]:
        assert sum(c for _, c in b["series"]) == b["count"]
        assert all(ts % 600 == START % 600 or ts % 600 == 0 for ts, _ in b["series"])
        assert b["series"][-1][0] <= NOW
    whole = ok(tb, "aggregate_logs", interval=60, **{"from": "now-10m"})
    assert sum(c for _, c in whole["buckets"][0]["series"]) == whole["total"]
    wide = ok(tb, "aggregate_logs", interval=60, **{"from": START - 86400})
    assert len(wide["buckets"][0]["series"]) <= 301 and "interval raised" in wide["warning"]
    assert "same facet twice" in err(tb, "aggregate_logs", {"group_by": ["service", "service"]})
    assert "maxItems" in err(tb, "aggregate_logs", {"group_by": ["a", "b", "c"]}) or "too long" in err(
        tb, "aggregate_logs", {"group_by": ["a", "b", "c"]})


# --------------------------------------------------------------------------- traces


def test_search_spans(tb: Toolbox) -> None:
    out = ok(tb, "search_spans", query="service:checkout status:error @duration:>5", limit=3)
    assert out["total_matched"] == 60 and len(out["spans"]) == 3
    sp = out["spans"][0]
    assert set(sp) == {"trace_id", "span_id", "parent_id", "service", "name", "resource", "timestamp", "ts",
                       "duration", "error", "tags"}
    assert sp["error"] is True and sp["duration"] >= 5
    assert ok(tb, "search_spans", query='resource_name:"POST /checkout"')["total_matched"] == 30
    assert ok(tb, "search_spans", query="operation_name:hikari.getConnection")["total_matched"] == 30
    assert ok(tb, "search_spans", query="status:ok service:payments", **{"from": START})["total_matched"] == 12
    assert ok(tb, "search_spans", query="@http.status_code:503")["total_matched"] == 30
    assert ok(tb, "search_spans", query="version:2.3.0 env:prod", **{"from": START})["total_matched"] > 0


def test_get_trace(tb: Toolbox) -> None:
    tid = ok(tb, "search_spans", query="service:web-gateway status:error", limit=1)["spans"][0]["trace_id"]
    out = ok(tb, "get_trace", trace_id=tid)
    assert out["trace_id"] == tid
    assert [(s["service"], s["depth"]) for s in out["spans"]] == [("web-gateway", 0), ("checkout", 1), ("checkout", 2)]
    assert out["services"] == ["web-gateway", "checkout"]
    assert out["spans"][1]["parent_id"] == out["spans"][0]["span_id"]
    assert ok(tb, "get_trace", trace_id=tid.upper())["trace_id"] == tid
    assert "unknown trace_id" in err(tb, "get_trace", {"trace_id": "0" * 32})


# --------------------------------------------------------------------------- events and monitors


def test_get_events(tb: Toolbox) -> None:
    out = ok(tb, "get_events", **{"from": START})
    ids = [e["id"] for e in out["events"]]
    assert ids == ["ev-4", "ev-3", "ev-2", "ev-1"]  # newest first, ev-5 is after now
    e3 = out["events"][1]
    assert set(e3) == {"id", "timestamp", "ts", "source", "title", "text", "tags"}
    assert "service:checkout" in e3["tags"] and e3["ts"] == DEPLOY
    assert [e["id"] for e in ok(tb, "get_events", query="source:deploy", **{"from": START})["events"]] == ["ev-3", "ev-1"]
    assert [e["id"] for e in ok(tb, "get_events", query="service:checkout", **{"from": START})["events"]] == ["ev-3"]
    assert [e["id"] for e in ok(tb, "get_events", query="maximumPoolSize", **{"from": START})["events"]] == ["ev-3"]
    assert ok(tb, "get_events", query="rollback", **{"from": START, "to": "now+1d"})["events"] == []


def test_get_monitors(tb: Toolbox) -> None:
    out = ok(tb, "get_monitors")
    assert out["total"] == 4
    first = out["monitors"][0]
    assert set(first) == {"id", "name", "type", "query", "message", "tags", "state", "transitions"}
    assert (first["id"], first["state"]) == (1001, "Alert")  # alerting first; its recovery is after now
    assert [t["to"] for t in first["transitions"]] == ["Alert"]
    assert [m["id"] for m in ok(tb, "get_monitors", query="status:alert")["monitors"]] == [1001]
    assert [m["id"] for m in ok(tb, "get_monitors", query="status:Warn")["monitors"]] == [1002]
    assert [m["id"] for m in ok(tb, "get_monitors", query="status:ok")["monitors"]] == [1003, 1004]
    assert [m["id"] for m in ok(tb, "get_monitors", query="team:payments")["monitors"]] == [1001, 1004]
    assert [m["id"] for m in ok(tb, "get_monitors", query="latency")["monitors"]] == [1003]
    assert ok(tb, "get_monitors", query="service:payments")["monitors"][0]["transitions"] == []


# --------------------------------------------------------------------------- bad calls


@pytest.mark.parametrize(
    ("name", "args", "fragment"),
    [
        ("no_such_tool", {}, "unknown tool 'no_such_tool'"),
        ("search_logs", ["query"], "must be a JSON object"),
        ("search_logs", {"bogus": 1}, "unknown argument 'bogus'"),
        ("search_logs", {"limit": "5"}, "limit: '5' is not of type 'integer'"),
        ("search_logs", {"limit": 0}, "limit"),
        ("search_logs", {"sort": "up"}, "sort"),
        ("search_logs", {"from": "now", "to": "now-1h"}, "is after 'to'"),
        ("search_logs", {"from": "yesterday"}, "invalid time 'yesterday'"),
        ("search_logs", {"query": "service:(a"}, "not closed"),
        ("search_logs", {"query": 'status:error "open'}, "unterminated quote"),
        ("query_metrics", {}, "'query' is a required property"),
        ("query_metrics", {"query": "avg:m{a:b"}, "not closed"),
        ("get_trace", {"trace_id": 5}, "not of type 'string'"),
        ("get_service_dependencies", {"service": "checkout", "depth": 9}, "depth"),
        ("get_service_dependencies", {"service": "checkout", "direction": "sideways"}, "direction"),
        ("aggregate_logs", {"interval": 10}, "interval"),
        ("aggregate_logs", {"group_by": [""]}, "non-empty"),
    ],
)
def test_bad_calls_fail_cleanly(tb: Toolbox, name: str, args: Any, fragment: str) -> None:
    assert fragment in err(tb, name, args)


def test_none_arguments_mean_empty(tb: Toolbox) -> None:
    assert tb.call("list_services", None).ok
    assert tb.call("search_logs", {"query": "status:error", "cursor": None, "limit": None}).ok
    assert "'service' is a required property" in err(tb, "get_service_dependencies", {"service": None})


def test_facet_values_keep_their_case(index: WorldIndex) -> None:
    logs = [{"ts": START + i, "service": "s", "message": "m", "attrs": {"path": p}}
            for i, p in enumerate(["/api/SKU-1", "/api/sku-1", "/api/SKU-2"])]
    w = {"schema_version": 1, "world_id": "w", "start": START, "end": START + 10,
         "topology": {"services": [{"name": "s"}]}, "logs": logs}
    t = Toolbox(WorldIndex.from_dict(w), START + 10)
    out = ok(t, "aggregate_logs", group_by=["@path"], **{"from": START})
    assert out["buckets"] == [{"by": {"@path": "/api/SKU-1"}, "count": 2}, {"by": {"@path": "/api/SKU-2"}, "count": 1}]
    ts = ok(t, "aggregate_logs", group_by=["@path"], interval=60, **{"from": START})
    assert [sum(c for _, c in b["series"]) for b in ts["buckets"]] == [2, 1]
    two = ok(t, "aggregate_logs", group_by=["service", "@path"], **{"from": START})
    assert two["buckets"][0] == {"by": {"service": "s", "@path": "/api/SKU-1"}, "count": 2}


def test_internal_errors_become_tool_errors(index: WorldIndex, monkeypatch: pytest.MonkeyPatch) -> None:
    tb = Toolbox(index, NOW)

    def boom(args: dict[str, Any]) -> dict[str, Any]:
        raise KeyError("oops")

    monkeypatch.setitem(tb._handlers, "list_services", boom)
    out = tb.call("list_services", {})
    assert not out.ok and out.error == "internal error: KeyError: 'oops'"


# --------------------------------------------------------------------------- size cap


def test_results_are_capped_and_paging_continues() -> None:
    logs = [{"ts": START + i, "service": "svc", "host": "h", "status": "error",
             "message": f"event {i:04d} " + "x" * 3000, "attrs": {}} for i in range(300)]
    w = {"schema_version": 1, "world_id": "w_big", "start": START, "end": START + 400,
         "topology": {"services": [{"name": "svc"}]}, "logs": logs}
    tb = Toolbox(WorldIndex.from_dict(w), START + 400)
    seen: list[int] = []
    cursor = None
    while True:
        out = ok(tb, "search_logs", limit=200, **({"cursor": cursor} if cursor else {}))
        assert len(json.dumps(out)) <= MAX_RESULT_BYTES
        if out["next_cursor"]:
            assert out["truncated"] is True and 0 < len(out["logs"]) < 200
        seen += [int(x["message"].split()[1]) for x in out["logs"]]
        cursor = out["next_cursor"]
        if cursor is None:
            break
    assert seen == list(range(299, -1, -1))  # nothing skipped, nothing repeated
    long = ok(tb, "search_logs", limit=1, **{"from": START})
    long_msg = [{"ts": START, "service": "svc", "message": "y" * 100_000}]
    tb2 = Toolbox(WorldIndex.from_dict({**w, "logs": long_msg}), START + 10)
    clipped = ok(tb2, "search_logs", **{"from": START})["logs"][0]["message"]
    assert len(clipped) < 5000 and clipped.endswith("more characters]")
    assert long["logs"]
    fat = [{"ts": START + i, "service": "svc", "message": "m", "attrs": {f"k{j}": "z" * 3900 for j in range(40)}}
           for i in range(3)]
    tb3 = Toolbox(WorldIndex.from_dict({**w, "logs": fat}), START + 10)
    first = ok(tb3, "search_logs", **{"from": START})
    assert first["logs"] == [] and "skipped" in first["warning"] and first["next_cursor"]
    second = ok(tb3, "search_logs", cursor=first["next_cursor"], **{"from": START})
    assert second["next_cursor"] and "skipped" in second["warning"]


def test_many_metric_groups_fit(tb: Toolbox) -> None:
    series = [{"metric": "m", "tags": {"host": f"h{i:03d}"}, "type": "gauge", "start": START, "interval": 60,
               "values": [float(i)] * 180} for i in range(400)]
    w = {"schema_version": 1, "world_id": "w_m", "start": START, "end": START + 10800,
         "topology": {"services": [{"name": "s"}]}, "metrics": series}
    t = Toolbox(WorldIndex.from_dict(w), NOW)
    out = ok(t, "query_metrics", query="avg:m{*} by {host}", **{"from": START})
    assert len(json.dumps(out)) <= MAX_RESULT_BYTES
    assert out["truncated"] is True and out["series_total"] == 400 and 0 < len(out["series"]) < 400
    assert all(s["length"] <= 30 for s in out["series"])
    few = ok(t, "query_metrics", query="avg:m{host:h00*} by {host}", **{"from": START})
    assert len(few["series"]) == 10 and "truncated" not in few
