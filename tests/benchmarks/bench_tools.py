"""Latency benchmark of the telemetry tools on a large synthetic world.

    .venv/bin/python tests/benchmarks/bench_tools.py [--logs 1000000] [--queries 300] [--seed 1]

Builds a world in memory (1M log lines over 6 hours, 100 services, 10,000 metric series,
~200k spans, 2,000 events, 300 monitors) with content shaped like real telemetry (access
logs with ids and durations, HikariCP / envoy / x509 / Kafka errors, attributes with
status codes, versions, pods), indexes it, then times a few hundred realistic calls per
tool and prints p50 / p95 / max. Target: p95 < 10 ms for every tool.

Not collected by pytest (the file name does not start with ``test_``).
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from evaluator_agent.telemetry.index import WorldIndex  # noqa: E402
from evaluator_agent.telemetry.tools import Toolbox  # noqa: E402

START = 1_767_225_600  # 2026-01-01T00:00:00Z
HOURS = 6
END = START + HOURS * 3600
NOW = END - 1800
INCIDENT = NOW - 2400

WORDS = ("checkout payments cart catalog search inventory orders shipping pricing users auth session "
         "recommendations reviews notifications email billing invoices ledger fraud loyalty coupons "
         "gateway frontend mobile-bff media thumbnails geo tax quotes").split()
SUFFIX = ("api", "svc", "worker", "consumer", "web", "grpc")
LANGS = ("java", "go", "python", "node")
TEAMS = ("payments", "catalog", "growth", "platform", "identity", "fulfilment", "edge", "data")
PATHS = ("/api/v1/orders/{id}", "/api/v1/carts/{id}/items", "/api/v2/products/{id}", "/healthz",
         "/api/v1/users/{id}/sessions", "/api/v1/checkout", "/api/v1/payments/{id}/capture", "/search")
ERRORS = (
    ("error", "HikariPool-1 - Connection is not available, request timed out after 30000ms.",
     {"error.kind": "SQLTransientConnectionException"}),
    ("error", "upstream connect error or disconnect/reset before headers. reset reason: connection failure", {}),
    ("error", "x509: certificate has expired or is not yet valid: current time {ts} is after 2026-01-01T00:00:00Z",
     {"error.kind": "x509.CertificateInvalidError"}),
    ("error", "java.net.SocketTimeoutException: Read timed out after {ms}ms calling {peer}",
     {"error.kind": "java.net.SocketTimeoutException"}),
    ("warn", "Attempt to heartbeat failed since group is rebalancing", {"logger.name": "o.a.k.c.c.i.AbstractCoordinator"}),
    ("warn", "Revoking previously assigned partitions [orders-{p}, orders-{q}] for group {svc}-group", {}),
    ("error", "OOMKilled: container {svc} exceeded memory limit 512Mi", {"error.kind": "OOMKilled"}),
    ("warn", "GC pause (G1 Evacuation Pause) young {ms}ms", {}),
    ("error", "dial tcp 10.4.{p}.{q}:5432: connect: connection refused", {}),
    ("info", "Processed {n} records from partition {p} in {ms} ms", {}),
    ("info", "cache miss for key cart:{id}", {}),
    ("debug", "request {hex} finished in {ms}ms", {}),
)


def build_world(n_logs: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    names: list[str] = []
    while len(names) < 100:
        n = f"{rng.choice(WORDS)}-{rng.choice(SUFFIX)}"
        if n not in names:
            names.append(n)
    services = []
    hosts: dict[str, list[str]] = {}
    versions: dict[str, list[str]] = {}
    for i, n in enumerate(names):
        hosts[n] = [f"ip-10-4-{i}-{k}" for k in range(3)]
        versions[n] = [f"{rng.randint(1, 4)}.{rng.randint(0, 30)}.{k}" for k in range(2)]
        services.append({"name": n, "kind": "service", "team": rng.choice(TEAMS), "platform": "kubernetes",
                         "language": rng.choice(LANGS), "cluster": f"prod-{i % 3}", "namespace": n.split("-")[0],
                         "tier": rng.randint(0, 3), "hosts": hosts[n], "description": f"The {n} service"})
    for k, db in enumerate(("orders-db", "users-db", "catalog-db", "redis-sessions", "kafka-main")):
        services.append({"name": db, "kind": "database" if "db" in db else "cache" if "redis" in db else "queue",
                         "team": "platform", "platform": "rds", "tier": 1, "hosts": [f"{db}-{k}"],
                         "description": db})
    deps = []
    for n in names:
        for t in rng.sample(names, 3):
            if t != n:
                deps.append({"source": n, "target": t, "protocol": rng.choice(("http", "grpc"))})
        deps.append({"source": n, "target": rng.choice(("orders-db", "users-db", "catalog-db")), "protocol": "postgresql"})

    # metrics: 100 services x 50 APM/runtime metrics + 300 hosts x 15 system metrics + 500 others
    n_pts = (END - START) // 60
    metrics: list[dict[str, Any]] = []
    apm = [f"trace.{k}.{m}" for k in ("http.request", "grpc.server", "postgres.query", "redis.command", "kafka.consume")
           for m in ("hits", "errors", "duration", "duration.by.service.99p", "apdex")]
    runtime = [f"{p}.{m}" for p in ("jvm", "go", "kubernetes") for m in
               ("heap_memory", "gc.major_collection_time", "cpu.usage.total", "memory.usage", "containers.restarts",
                "threads", "cpu.limits", "memory.limits", "cfs.throttled.seconds", "net.bytes_rcvd",
                "net.bytes_sent", "fs.usage", "cpu.system", "network.errors")]
    per_service = (apm + runtime)[:50]
    base = [math_wave(j) for j in range(n_pts)]
    for n in names:
        for m in per_service:
            scale = rng.uniform(0.5, 200)
            metrics.append({"metric": m, "tags": {"service": n, "env": "prod", "version": versions[n][1]},
                            "type": "count" if m.endswith(("hits", "errors")) else "gauge", "start": START,
                            "interval": 60, "values": [round(b * scale, 3) for b in base]})
    system = [f"system.{m}" for m in ("cpu.user", "cpu.system", "cpu.iowait", "load.1", "load.5", "mem.usable",
                                      "mem.used", "disk.in_use", "disk.free", "net.bytes_rcvd", "net.bytes_sent",
                                      "net.tcp.retrans_segs", "io.util", "swap.used", "uptime")]
    for n in names:
        for h in hosts[n]:
            for m in system:
                metrics.append({"metric": m, "tags": {"host": h, "service": n, "availability-zone": f"eu-west-1{h[-1]}"},
                                "type": "gauge", "start": START, "interval": 60,
                                "values": [round(b * 40, 2) for b in base]})
    k = 0
    while len(metrics) < 10_000:
        db = ("orders", "users", "catalog")[k % 3]
        metrics.append({"metric": f"postgresql.{('connections', 'percent_usage_connections', 'locks', 'deadlocks', 'replication_delay')[k % 5]}",
                        "tags": {"db": db, "table": f"t{k}"}, "type": "gauge", "start": START, "interval": 60,
                        "values": [round(b * 10, 2) for b in base]})
        k += 1

    # logs: 1M lines over 6h; 5% errors concentrated after INCIDENT on a few services
    culprits = names[:3]
    ts_list = sorted(rng.uniform(START, END) for _ in range(n_logs))
    logs = []
    append = logs.append
    choice, randint, rand = rng.choice, rng.randint, rng.random
    # realistic mix: 85% access logs (1% 5xx, 3% 4xx), 7% info/debug background, 5% warnings,
    # 3% error lines, the latter mostly on three culprit services once the incident starts
    status_codes = (200,) * 80 + (201, 204, 304) * 5 + (400, 404, 429) + (500,)
    background = [e for e in ERRORS if e[0] in ("info", "debug")]
    warnings = [e for e in ERRORS if e[0] == "warn"]
    errors = [e for e in ERRORS if e[0] == "error"]
    for t in ts_list:
        r = rand()
        incident = t > INCIDENT and 0.85 + 0.07 + 0.05 <= r and rand() < 0.7
        svc = culprits[randint(0, 2)] if incident else names[randint(0, 99)]
        host = hosts[svc][randint(0, 2)]
        attrs: dict[str, Any] = {"env": "prod", "version": versions[svc][1 if t > START + 3600 else 0],
                                 "pod_name": f"{svc}-7d9f8c6b5-{host[-1]}x{randint(10, 99)}"}
        trace = None
        if r < 0.85:
            code = choice(status_codes)
            ms = randint(2, 900)
            path = choice(PATHS).replace("{id}", str(randint(100000, 9999999)))
            status = "error" if code >= 500 else "warn" if code >= 400 else "info"
            msg = f"GET {path} {code} {ms}ms"
            attrs.update({"http.method": "GET", "http.status_code": code, "http.url_details.path": path,
                          "duration_ms": ms})
            if rand() < 0.3:
                trace = f"{rng.getrandbits(128):032x}"
        else:
            status, tmpl, extra = choice(background if r < 0.92 else warnings if r < 0.97 else errors)
            msg = tmpl.format(ts=int(t), ms=randint(10, 30000), peer=choice(names), p=randint(0, 11),
                              q=randint(0, 255), svc=svc, n=randint(10, 500), id=randint(1, 10**7),
                              hex=f"{rng.getrandbits(64):016x}")
            attrs.update(extra)
            if status == "error":
                attrs["http.status_code"] = choice((500, 502, 503, 504))
                trace = f"{rng.getrandbits(128):032x}"
        append({"ts": round(t, 3), "service": svc, "host": host, "status": status, "message": msg,
                "attrs": attrs, "trace_id": trace})

    # spans: 50k traces x 4 spans
    spans = []
    resources = ("GET /api/v1/orders/{id}", "POST /api/v1/checkout", "GET /search", "SELECT orders", "payments.v1.Pay")
    for _ in range(50_000):
        t = rng.uniform(START, END)
        tid = f"{rng.getrandbits(128):032x}"
        parent = None
        err = rng.random() < 0.05
        for d in range(4):
            sid = f"{rng.getrandbits(64):016x}"
            svc = names[rng.randint(0, 99)]
            spans.append({"trace_id": tid, "span_id": sid, "parent_id": parent, "service": svc,
                          "name": ("http.request", "grpc.server", "postgres.query", "redis.command")[d],
                          "resource": rng.choice(resources), "start": round(t + d * 0.003, 4),
                          "duration": round(rng.expovariate(20) + (2.0 if err else 0), 4), "error": err and d == 3,
                          "tags": {"env": "prod", "version": versions[svc][1],
                                   "http.status_code": "500" if err else "200", "peer.hostname": f"{svc}.svc"}})
            parent = sid
    events = []
    for i in range(2000):
        svc = rng.choice(names)
        src = rng.choice(("deploy", "config", "kubernetes", "autoscaling", "feature_flag", "cron"))
        events.append({"id": str(rng.getrandbits(62)), "ts": round(rng.uniform(START, END), 3), "source": src,
                       "title": f"{src} {svc} {versions[svc][1]}", "text": f"change #{i} by {rng.choice(TEAMS)}-bot",
                       "tags": {"service": svc, "env": "prod", "version": versions[svc][1]}})
    monitors = []
    for i in range(300):
        svc = names[i % 100]
        trans = []
        if i % 17 == 0:
            trans = [{"ts": INCIDENT + i, "from": "OK", "to": "Alert", "value": 99.0}]
        monitors.append({"id": 5000 + i, "name": f"{('Error rate', 'Latency p99', 'Restarts')[i % 3]} on {svc}",
                         "type": "metric alert", "query": f"avg(last_5m):avg:trace.http.request.errors{{service:{svc}}} > 5",
                         "message": "", "tags": {"service": svc, "team": rng.choice(TEAMS)}, "state": "OK",
                         "transitions": trans})
    return {"schema_version": 1, "world_id": "w_bench", "env": "prod", "start": START, "end": END,
            "topology": {"services": services, "dependencies": deps}, "metrics": metrics, "logs": logs,
            "spans": spans, "events": events, "monitors": monitors}


def _rss_mib() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def math_wave(j: int) -> float:
    import math

    return 1.0 + 0.3 * math.sin(j / 20.0) + 0.05 * ((j * 7919) % 13) / 13


def queries(world: dict[str, Any], idx: WorldIndex, n: int, seed: int) -> dict[str, list[dict[str, Any]]]:
    """Realistic calls per tool, the way an investigating agent would make them."""
    rng = random.Random(seed + 1)
    names = [s["name"] for s in world["topology"]["services"]][:100]
    hosts = [h for s in world["topology"]["services"] for h in s["hosts"]]
    culprits = names[:3]
    windows = [{}, {"from": "now-15m"}, {"from": "now-30m"}, {"from": "now-4h"},
               {"from": "now-2h", "to": "now-1h"}, {"from": INCIDENT - 900, "to": INCIDENT + 1800}]

    def win() -> dict[str, Any]:
        return dict(rng.choice(windows))

    def svc() -> str:
        return rng.choice(culprits) if rng.random() < 0.4 else rng.choice(names)

    log_q: list[Callable[[], str]] = [
        lambda: f"service:{svc()} status:error",
        lambda: f"service:{svc()}",
        lambda: "status:error",
        lambda: f'service:{svc()} "timed out"',
        lambda: '"connection refused"',
        lambda: "HikariPool",
        lambda: f"service:{svc()} @http.status_code:>=500",
        lambda: "@http.status_code:[500 TO 599]",
        lambda: f"(service:{svc()} OR service:{svc()}) status:error",
        lambda: f"service:{svc()} -status:info",
        lambda: f"host:{rng.choice(hosts)}",
        lambda: f"service:{rng.choice(names).split('-')[0]}* status:warn",
        lambda: f"service:{svc()} @duration_ms:>500",
        lambda: "x509 expired",
        lambda: f"service:{svc()} version:{rng.choice(['1.2.3', '2.10.1'])}",
        lambda: "status:error -service:" + svc(),
        lambda: "rebalancing",
        lambda: "*",
        lambda: f"service:{svc()} SocketTimeoutException",
        lambda: "@error.kind:OOMKilled",
    ]
    metric_q = [
        lambda: f"avg:trace.http.request.duration{{service:{svc()}}}",
        lambda: f"sum:trace.http.request.hits{{service:{svc()}}} by {{version}}",
        lambda: "avg:trace.http.request.duration{*} by {service}",
        lambda: f"max:system.cpu.user{{service:{svc()}}} by {{host}}",
        lambda: "avg:system.cpu.user{*}",
        lambda: "sum:trace.http.request.errors{env:prod} by {service}.rollup(sum, 300)",
        lambda: f"avg:kubernetes.memory.usage{{service:{svc()}}}.rollup(max, 600)",
        lambda: "avg:postgresql.percent_usage_connections{db:orders} by {table}",
        lambda: f"avg:system.load.1{{availability-zone:eu-west-1a,service:{svc()}}}",
    ]
    agg_args = [
        lambda: {"query": "status:error", "group_by": ["service"]},
        lambda: {"query": f"service:{svc()}", "group_by": ["status"], "interval": 60},
        lambda: {"query": "*", "group_by": ["service"]},
        lambda: {"query": "status:error", "group_by": ["service"], "interval": 300},
        lambda: {"query": f"service:{svc()} status:error", "group_by": ["@http.status_code"]},
        lambda: {"query": "HikariPool", "group_by": ["service", "host"]},
        lambda: {"query": "*", "group_by": ["status"]},
        lambda: {"query": f"service:{svc()}", "group_by": ["version", "status"]},
        lambda: {"query": "status:(error OR warn)", "group_by": ["service"], "limit": 10, "interval": 600},
    ]
    span_q = [
        lambda: f"service:{svc()} status:error",
        lambda: f"service:{svc()}",
        lambda: "status:error",
        lambda: "@duration:>1",
        lambda: f'service:{svc()} resource_name:"POST /api/v1/checkout"',
        lambda: f"service:{svc()} @duration:>0.1",
        lambda: "@http.status_code:500 operation_name:postgres.query",
    ]
    trace_ids = [s["trace_id"] for s in world["spans"][:: max(1, len(world["spans"]) // 500)] if s["start"] <= NOW]
    out: dict[str, list[dict[str, Any]]] = {k: [] for k in (
        "list_services", "get_service_dependencies", "list_metrics", "query_metrics", "search_logs",
        "aggregate_logs", "search_spans", "get_trace", "get_events", "get_monitors")}
    for _ in range(n):
        out["list_services"].append(rng.choice([{}, {"query": f"team:{rng.choice(TEAMS)}"}, {"query": "pay"},
                                                {"query": "kind:database"}, {"limit": 200}]))
        out["get_service_dependencies"].append({"service": svc(), "depth": rng.randint(1, 3),
                                                "direction": rng.choice(["both", "upstream", "downstream"])})
        out["list_metrics"].append(rng.choice([{}, {"query": "postgresql"}, {"query": f"service:{svc()}"},
                                               {"query": f"trace service:{svc()}"}, {"query": "system.cpu"}]))
        out["query_metrics"].append({"query": rng.choice(metric_q)(), **win()})
        out["search_logs"].append({"query": rng.choice(log_q)(), **win(),
                                   **({"limit": rng.choice([10, 50, 200])} if rng.random() < 0.5 else {})})
        out["aggregate_logs"].append({**rng.choice(agg_args)(), **win()})
        out["search_spans"].append({"query": rng.choice(span_q)(), **win()})
        out["get_trace"].append({"trace_id": rng.choice(trace_ids)})
        out["get_events"].append({"query": rng.choice(["source:deploy", f"service:{svc()}", "", "deploy",
                                                       f"source:config service:{svc()}"]), **win()})
        out["get_monitors"].append({"query": rng.choice(["status:alert", f"service:{svc()}", "", "latency"])})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--logs", type=int, default=1_000_000)
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--slow", type=int, default=0, help="print the N slowest calls per tool")
    args = ap.parse_args()

    t = time.perf_counter()
    world = build_world(args.logs, args.seed)
    t_gen = time.perf_counter() - t
    rss0 = _rss_mib()
    t = time.perf_counter()
    idx = WorldIndex.from_dict(world)
    t_idx = time.perf_counter() - t
    rss1 = _rss_mib()
    gc.collect()
    gc.freeze()  # the index is long-lived: keep the collector from walking it on every call
    print(f"world: {len(world['logs']):,} logs, {len(world['topology']['services'])} services, "
          f"{len(world['metrics']):,} metric series, {len(world['spans']):,} spans, {len(world['events']):,} events, "
          f"{len(world['monitors'])} monitors")
    print(f"generate {t_gen:.1f} s, index {t_idx:.1f} s (log templates: {len(idx.logs.text.templates or ()):,}); "
          f"RSS {rss0:,.0f} MiB with the world, +{rss1 - rss0:,.0f} MiB for the index")
    tb = Toolbox(idx, NOW)
    calls = queries(world, idx, args.queries, args.seed)
    print(f"\n{'tool':26} {'calls':>6} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} {'errors':>7} {'max KiB':>8}")
    worst_p95 = 0.0
    for name, arg_list in calls.items():
        times: list[float] = []
        errors = 0
        biggest = 0
        slow: list[tuple[float, dict[str, Any]]] = []
        for a in arg_list:
            t = time.perf_counter()
            out = tb.call(name, a)
            dt = (time.perf_counter() - t) * 1000
            times.append(dt)
            slow.append((dt, a))
            if not out.ok:
                errors += 1
                if errors <= 3:
                    print(f"  ! {name} {a}: {out.error}")
            else:
                biggest = max(biggest, len(json.dumps(out.content, default=str)))
        times.sort()
        p95 = times[int(0.95 * (len(times) - 1))]
        worst_p95 = max(worst_p95, p95)
        print(f"{name:26} {len(times):>6} {statistics.median(times):>8.2f} {p95:>8.2f} {times[-1]:>8.2f} "
              f"{errors:>7} {biggest / 1024:>8.1f}")
        for dt, a in sorted(slow, key=lambda x: -x[0])[: args.slow]:
            print(f"      {dt:7.2f} ms  {a}")
    print(f"\nworst p95: {worst_p95:.2f} ms ({'within' if worst_p95 < 10 else 'above'} the 10 ms target)")


if __name__ == "__main__":
    main()
