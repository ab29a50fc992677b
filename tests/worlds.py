"""Small hand-built worlds (world.py format) for the query, index and tool tests.

``small_world()`` is a shop of seven components over three hours. At ``INCIDENT`` a
checkout deploy (2.3.1) starts exhausting its connection pool: checkout logs HikariCP
timeouts, its error spans and latency climb, and a monitor fires. ``NOW`` is two hours in;
records after it (a log burst, an event, a monitor recovery) must never be returned.
"""

from __future__ import annotations

import random
from typing import Any

START = 1_700_000_000  # 2023-11-14T22:13:20Z
END = START + 3 * 3600
NOW = START + 2 * 3600
DEPLOY = START + 5300
INCIDENT = START + 5400

SERVICES: list[dict[str, Any]] = [
    {"name": "web-gateway", "kind": "gateway", "team": "edge", "platform": "kubernetes", "language": "go",
     "cluster": "prod-eu-1", "namespace": "edge", "tier": 0, "hosts": ["gw-1", "gw-2"],
     "description": "Public API gateway (envoy)"},
    {"name": "checkout", "kind": "service", "team": "payments", "platform": "kubernetes", "language": "java",
     "cluster": "prod-eu-1", "namespace": "shop", "tier": 1, "hosts": ["k8s-node-1", "k8s-node-2"],
     "description": "Checkout API: carts, orders, payment orchestration"},
    {"name": "payments", "kind": "service", "team": "payments", "platform": "kubernetes", "language": "go",
     "cluster": "prod-eu-1", "namespace": "shop", "tier": 1, "hosts": ["k8s-node-2"],
     "description": "Payment intents and refunds"},
    {"name": "inventory", "kind": "service", "team": "catalog", "platform": "kubernetes", "language": "python",
     "cluster": "prod-eu-1", "namespace": "shop", "tier": 2, "hosts": ["k8s-node-3"],
     "description": "Stock levels"},
    {"name": "postgres-orders", "kind": "database", "team": "dba", "platform": "rds", "language": "",
     "cluster": "", "namespace": "", "tier": 1, "hosts": ["orders-db-1"], "description": "Orders database"},
    {"name": "redis-cache", "kind": "cache", "team": "platform", "platform": "elasticache", "language": "",
     "cluster": "", "namespace": "", "tier": 2, "hosts": ["redis-1"], "description": "Session and cart cache"},
    {"name": "stripe-api", "kind": "external", "team": "payments", "platform": "saas", "language": "",
     "cluster": "", "namespace": "", "tier": 1, "hosts": [], "description": "Card payments provider"},
]

DEPENDENCIES = [
    ("web-gateway", "checkout", "http"),
    ("checkout", "payments", "grpc"),
    ("checkout", "inventory", "http"),
    ("checkout", "redis-cache", "redis"),
    ("checkout", "postgres-orders", "postgresql"),
    ("inventory", "postgres-orders", "postgresql"),
    ("payments", "stripe-api", "https"),
]

APP_SERVICES = ["web-gateway", "checkout", "payments", "inventory"]


def _hex(rng: random.Random, k: int) -> str:
    return f"{rng.getrandbits(4 * k):0{k}x}"


def _metrics() -> list[dict[str, Any]]:
    n = (END - START) // 60
    out: list[dict[str, Any]] = []
    for i, svc in enumerate(APP_SERVICES):
        hits = [100.0 + i * 10 + (j % 5) for j in range(n)]
        out.append({"metric": "trace.http.request.hits", "tags": {"env": "prod", "service": svc}, "type": "count",
                    "start": START, "interval": 60, "values": hits})
        lat = [0.05 + 0.01 * i for _ in range(n)]
        if svc == "checkout":
            lat = [0.9 if START + 60 * j >= INCIDENT else x for j, x in enumerate(lat)]
        out.append({"metric": "trace.http.request.duration", "tags": {"env": "prod", "service": svc},
                    "type": "gauge", "start": START, "interval": 60, "values": lat})
    # checkout latency by version: 2.3.0 until the deploy, 2.3.1 after (nulls elsewhere)
    dep = (DEPLOY - START) // 60
    out.append({"metric": "trace.servlet.request.duration", "tags": {"service": "checkout", "version": "2.3.0"},
                "type": "gauge", "start": START, "interval": 60,
                "values": [0.06 if j < dep else None for j in range(n)]})
    out.append({"metric": "trace.servlet.request.duration", "tags": {"service": "checkout", "version": "2.3.1"},
                "type": "gauge", "start": START, "interval": 60,
                "values": [None if j < dep else (0.06 if START + 60 * j < INCIDENT else 1.2) for j in range(n)]})
    out.append({"metric": "postgresql.percent_usage_connections", "tags": {"db": "orders", "host": "orders-db-1"},
                "type": "gauge", "start": START, "interval": 60,
                "values": [40.0 if START + 60 * j < INCIDENT else 100.0 for j in range(n)]})
    for h in ("k8s-node-1", "k8s-node-2", "k8s-node-3"):
        out.append({"metric": "system.cpu.user", "tags": {"host": h}, "type": "gauge", "start": START,
                    "interval": 60, "values": [20.0 + (j % 7) for j in range(n)]})
    return out


def _logs_spans(rng: random.Random) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    logs: list[dict[str, Any]] = []
    spans: list[dict[str, Any]] = []
    hosts = {s["name"]: s["hosts"] for s in SERVICES}
    for k, t in enumerate(range(START, END, 30)):
        for svc in APP_SERVICES:
            version = ("2.3.1" if t >= DEPLOY else "2.3.0") if svc == "checkout" else "1.0.0"
            ms = rng.randint(5, 80)
            logs.append({"ts": t + 0.25, "service": svc, "host": hosts[svc][k % len(hosts[svc])], "status": "info",
                         "message": f"GET /api/v1/orders/{rng.randint(100000, 999999)} 200 {ms}ms",
                         "attrs": {"env": "prod", "version": version, "http": {"status_code": 200, "method": "GET"},
                                   "duration_ms": ms},
                         "trace_id": None})
        if (t - START) % 600 == 0:
            logs.append({"ts": t + 1, "service": "inventory", "host": "k8s-node-3", "status": "warn",
                         "message": "Slow query on stock_levels took 1200ms", "attrs": {"env": "prod"},
                         "trace_id": None})
        if t >= INCIDENT and k % 2 == 0:
            tid = _hex(rng, 32)
            logs.append({"ts": t + 0.5, "service": "checkout", "host": "k8s-node-1", "status": "error",
                         "message": "HikariPool-1 - Connection is not available, request timed out after 30000ms.",
                         "attrs": {"env": "prod", "version": "2.3.1", "error.kind": "SQLTransientConnectionException",
                                   "http": {"status_code": 500, "method": "POST"}},
                         "trace_id": tid})
            logs.append({"ts": t + 0.6, "service": "web-gateway", "host": "gw-1", "status": "error",
                         "message": "upstream connect error or disconnect/reset before headers. reset reason: connection failure",
                         "attrs": {"env": "prod", "version": "1.0.0", "http": {"status_code": 503, "method": "POST"}},
                         "trace_id": tid})
            root = _hex(rng, 16)
            child = _hex(rng, 16)
            spans.append({"trace_id": tid, "span_id": root, "parent_id": None, "service": "web-gateway",
                          "name": "http.request", "resource": "POST /api/v1/checkout", "start": t + 0.4,
                          "duration": 30.2, "error": True,
                          "tags": {"env": "prod", "http.status_code": "503", "version": "1.0.0"}})
            spans.append({"trace_id": tid, "span_id": child, "parent_id": root, "service": "checkout",
                          "name": "servlet.request", "resource": "POST /checkout", "start": t + 0.45,
                          "duration": 30.0, "error": True,
                          "tags": {"env": "prod", "http.status_code": "500", "version": "2.3.1"}})
            spans.append({"trace_id": tid, "span_id": _hex(rng, 16), "parent_id": child, "service": "checkout",
                          "name": "hikari.getConnection", "resource": "getConnection", "start": t + 0.46,
                          "duration": 30.0, "error": True, "tags": {"env": "prod"}})
        if k % 20 == 0:  # healthy traces all along
            tid = _hex(rng, 32)
            root = _hex(rng, 16)
            spans.append({"trace_id": tid, "span_id": root, "parent_id": None, "service": "checkout",
                          "name": "servlet.request", "resource": "GET /cart", "start": t + 2.0, "duration": 0.04,
                          "error": False, "tags": {"env": "prod", "http.status_code": "200", "version": "2.3.0"}})
            spans.append({"trace_id": tid, "span_id": _hex(rng, 16), "parent_id": root, "service": "payments",
                          "name": "grpc.server", "resource": "payments.v1.Payments/Get", "start": t + 2.01,
                          "duration": 0.02, "error": False, "tags": {"env": "prod"}})
    # a burst after NOW: must never be returned
    for j in range(5):
        logs.append({"ts": NOW + 60 + j, "service": "checkout", "host": "k8s-node-1", "status": "critical",
                     "message": "FUTURE event that has not happened yet", "attrs": {"env": "prod"}, "trace_id": None})
    return logs, spans


def _events() -> list[dict[str, Any]]:
    return [
        {"id": "ev-1", "ts": START + 600, "source": "deploy", "title": "Deployed inventory 1.0.0",
         "text": "pipeline #812 by alice", "tags": {"service": "inventory", "version": "1.0.0", "env": "prod"}},
        {"id": "ev-2", "ts": START + 3000, "source": "feature_flag", "title": "Flag new-cart-ui set to 50%",
         "text": "changed by bob", "tags": {"service": "web-gateway", "env": "prod"}},
        {"id": "ev-3", "ts": DEPLOY, "source": "deploy", "title": "Deployed checkout 2.3.1",
         "text": "checkout 2.3.0 -> 2.3.1 (commit 9f3c2ab) reduces HikariCP maximumPoolSize to 5",
         "tags": {"service": "checkout", "version": "2.3.1", "env": "prod"}},
        {"id": "ev-4", "ts": START + 5350, "source": "kubernetes", "title": "Scaled payments to 4 replicas",
         "text": "HorizontalPodAutoscaler", "tags": {"service": "payments", "env": "prod"}},
        {"id": "ev-5", "ts": NOW + 600, "source": "deploy", "title": "Rolled back checkout to 2.3.0",
         "text": "FUTURE rollback", "tags": {"service": "checkout", "version": "2.3.0", "env": "prod"}},
    ]


def _monitors() -> list[dict[str, Any]]:
    return [
        {"id": 1001, "name": "High error rate on checkout", "type": "query alert",
         "query": "sum(last_5m):sum:trace.servlet.request.errors{service:checkout}.as_count() > 50",
         "message": "Checkout errors are high @slack-payments", "tags": {"service": "checkout", "team": "payments"},
         "state": "OK",
         "transitions": [{"ts": INCIDENT + 120, "from": "OK", "to": "Alert", "value": 240.0},
                         {"ts": NOW + 900, "from": "Alert", "to": "OK", "value": 2.0}]},
        {"id": 1002, "name": "Orders DB connections near limit", "type": "metric alert",
         "query": "avg(last_5m):avg:postgresql.percent_usage_connections{db:orders} > 90",
         "message": "", "tags": {"service": "postgres-orders", "team": "dba"}, "state": "Warn",
         "transitions": [{"ts": INCIDENT + 60, "from": "OK", "to": "Warn", "value": 91.0}]},
        {"id": 1003, "name": "Inventory latency p99", "type": "metric alert",
         "query": "avg(last_10m):avg:trace.http.request.duration{service:inventory} > 1",
         "message": "", "tags": {"service": "inventory", "team": "catalog"}, "state": "OK", "transitions": []},
        {"id": 1004, "name": "Payments provider errors", "type": "log alert",
         "query": 'logs("service:payments status:error").index("*").rollup("count").last("5m") > 10',
         "message": "", "tags": {"service": "payments", "team": "payments"}, "state": "OK",
         "transitions": [{"ts": NOW + 300, "from": "OK", "to": "Alert", "value": 12.0}]},
    ]


def small_world(seed: int = 7) -> dict[str, Any]:
    """The shop world as a raw snapshot dict (world.py format, schema_version 1)."""
    rng = random.Random(seed)
    logs, spans = _logs_spans(rng)
    rng.shuffle(logs)  # the index must not rely on input order
    return {
        "schema_version": 1,
        "world_id": "w_test_shop",
        "env": "prod",
        "start": START,
        "end": END,
        "topology": {
            "services": SERVICES,
            "dependencies": [{"source": s, "target": t, "protocol": p} for s, t, p in DEPENDENCIES],
            "teams": [{"name": "payments", "slack": "#payments", "oncall": "pay-oncall"}],
            "clusters": [{"name": "prod-eu-1", "platform": "kubernetes", "region": "eu-west-1",
                          "zones": ["eu-west-1a", "eu-west-1b"]}],
            "hosts": [{"name": "k8s-node-1", "cluster": "prod-eu-1", "zone": "eu-west-1a", "instance_type": "m6i.xlarge"}],
        },
        "metrics": _metrics(),
        "logs": logs,
        "spans": spans,
        "events": _events(),
        "monitors": _monitors(),
    }
