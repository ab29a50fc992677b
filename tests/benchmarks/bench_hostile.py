"""Hostile battery beside an honest evaluation: does one client's hostile targets cost another
client's honest evaluation its scores, its latency, or the proctor its memory and liveness?

    .venv/bin/python tests/benchmarks/bench_hostile.py [--honest methodical] [--labelset smoke]
        [--labels 8] [--attempts 3] [--concurrency 4] [--hostile-labels 8] [--hostile-concurrency 16]

One `proctor serve` process (127.0.0.1, its own temporary database, two API keys A and B,
private targets allowed, PROCTOR_MAX_EVALUATIONS raised so that the whole battery runs at once),
one process of hostile targets (hand-written JSON-RPC A2A targets, each misbehaving in one way;
the cases of issue 11) and one `python -m mock_agents serve` process for the honest target.

1. Solo: key A evaluates the honest target (``--labels`` labels x ``--attempts``, concurrency
   ``--concurrency``).
2. Loaded: key A evaluates it again while key B keeps every hostile target under evaluation at
   once (one worker per hostile target re-submitting its evaluation, ``--hostile-labels`` labels
   at concurrency ``--hostile-concurrency``, until the honest run ends).

Figures (goals from issue 11): per-label scores solo vs loaded (same), the honest turn latency
p99 loaded vs solo (< 2x), the proctor's peak RSS (VmRSS sampled every 100 ms, and VmHWM; < 400
MB), /health latency sampled every 100 ms during the battery (p99 < 250 ms), and the largest
stored investigation (bytes of its rows in investigations + turns + tool_calls; < 1 MB).
Prints a table with PASS/FAIL for each goal and exits 0: a benchmark reports.

Internal: ``--serve-targets PORT`` runs the hostile targets process.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
import zlib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_load import _free_port, _vm, _wait_http, pct  # noqa: E402

MiB = 1024 * 1024
KEY_A, KEY_B = "bench-key-honest-aaaaaaaaaaaaaaaa", "bench-key-hostile-bbbbbbbbbbbbbbbb"
HOSTILE_BUDGET = {"max_turns": 30, "timeout_s": 60, "turn_timeout_s": 5}
# ~110 KB, deep and long: the tool-argument flood of issue 11 item 5 (as in tests/test_argument_caps.py)
HUGE_QUERY = "service:checkout " + "(" * 10 + "a OR " * 22_000 + ")" * 10
DEEP_QUERY = "(" * 1990 + "error" + ")" * 1990

# ----------------------------------------------------------------------------- hostile targets

HOSTILE = {
    "hang": "never answers a turn",
    "slowloris": "sends headers, then one byte of body a second",
    "endless": "streams a reply body that never ends",
    "gzip_bomb": "100 KB of gzip that inflates to 100 MiB",
    "huge": "a 3 MB plain reply",
    "flood": "8 x 110 KB tool-call arguments per reply, 30 turns",
    "drop": "one good reply, then drops the connection mid-reply",
    "nan": "NaN and 1e400 in tool-call arguments, then in a diagnosis with an onset in year 1",
    "bigint": "a 5,000-digit integer in its replies",
    "deep": "1,990-deep nested queries every turn, 10 turns",
    "stuck": "leaves every task `working` for ever",
}


def _gzip_bomb() -> bytes:
    c = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = b" " * MiB
    return b"".join([c.compress(block) for _ in range(100)] + [c.flush()])


def targets_app(base: str) -> Any:
    from google.protobuf.json_format import MessageToDict
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response, StreamingResponse
    from starlette.routing import Route

    from tests.targets import card_for

    bomb = _gzip_bomb()
    huge = b"x" * 3_000_000
    turns: dict[tuple[str, str], int] = {}
    tasks: dict[str, str] = {}

    def message(ctx: str, reply: dict[str, Any]) -> dict[str, Any]:
        return {"messageId": uuid.uuid4().hex, "contextId": ctx, "role": "ROLE_AGENT", "parts": [{"data": reply}]}

    def rpc(rid: Any, result: dict[str, Any]) -> bytes:
        return json.dumps({"jsonrpc": "2.0", "id": rid, "result": result}).encode()

    async def card(request: Request) -> Response:
        return JSONResponse(MessageToDict(card_for(request.path_params["name"], base)))

    async def health(_: Request) -> Response:
        return JSONResponse({"ok": True})

    async def endpoint(request: Request) -> Response:
        name = request.path_params["name"]
        if name == "gzip_bomb":
            return Response(bomb, media_type="application/json", headers={"Content-Encoding": "gzip"})
        if name == "huge":
            return Response(huge, media_type="application/json")
        body = json.loads(await request.body())
        rid, method, params = body.get("id"), body.get("method"), body.get("params") or {}
        if method == "GetTask":
            tid = params.get("id", "")
            task = {"id": tid, "contextId": tasks.get(tid, "ctx"), "status": {"state": "TASK_STATE_WORKING"}}
            return Response(rpc(rid, task), media_type="application/json")
        if method != "SendMessage":
            return JSONResponse({"jsonrpc": "2.0", "id": rid, "error": {"code": -32601, "message": f"no {method}"}})
        ctx = (params.get("message") or {}).get("contextId") or "ctx"
        turn = turns[(name, ctx)] = turns.get((name, ctx), 0) + 1
        if name == "hang":
            await asyncio.sleep(3600)
        if name == "slowloris":
            payload = rpc(rid, {"message": message(ctx, {"diagnosis": {"no_fault": True}})})

            async def dribble() -> Any:
                for b in payload:
                    yield bytes([b])
                    await asyncio.sleep(1.0)

            return StreamingResponse(dribble(), media_type="application/json", headers={"Content-Length": str(len(payload))})
        if name == "endless":
            async def forever() -> Any:
                yield b'{"jsonrpc": "2.0", "id": ' + json.dumps(rid).encode() + b', "result": {"message": {"parts": [{"text": "'
                chunk = b"a" * 65536
                while True:
                    yield chunk
                    await asyncio.sleep(0.01)

            return StreamingResponse(forever(), media_type="application/json")
        if name == "stuck":
            tid = f"task-{uuid.uuid4().hex}"
            tasks[tid] = ctx
            task = {"id": tid, "contextId": ctx, "status": {"state": "TASK_STATE_WORKING"}}
            return Response(rpc(rid, {"task": task}), media_type="application/json")
        if name == "drop":
            if turn == 1:
                reply = {"tool_calls": [{"id": "c1", "name": "list_services", "arguments": {}}]}
                return Response(rpc(rid, {"message": message(ctx, reply)}), media_type="application/json")
            payload = rpc(rid, {"message": message(ctx, {"diagnosis": {"no_fault": True}})})

            async def cut() -> Any:
                yield payload[: len(payload) // 2]
                raise ConnectionResetError("bench: dropping the connection mid-reply")

            return StreamingResponse(cut(), media_type="application/json", headers={"Content-Length": str(len(payload))})
        if name == "flood":
            if turn > 30:
                reply = {"diagnosis": {"no_fault": True, "summary": "nothing"}}
            else:
                calls = [{"id": f"c{turn}_ok", "name": "list_services", "arguments": {"limit": 3}}]
                calls += [{"id": f"c{turn}_{i}", "name": "search_logs", "arguments": {"query": HUGE_QUERY + str(i)}}
                          for i in range(7)]
                reply = {"tool_calls": calls}
            return Response(rpc(rid, {"message": message(ctx, reply)}), media_type="application/json")
        if name == "deep":
            if turn > 10:
                reply = {"diagnosis": {"no_fault": True}}
            else:
                reply = {"tool_calls": [{"id": f"d{turn}", "name": "search_logs", "arguments": {"query": DEEP_QUERY}},
                                        {"id": f"n{turn}", "name": "search_spans", "arguments": {"query": "NOT " * 990 + "x"}}]}
            return Response(rpc(rid, {"message": message(ctx, reply)}), media_type="application/json")
        if name in ("nan", "bigint"):
            # Not JSON (NaN), beyond a double (1e400), longer than Python's int limit (5,000 digits).
            if name == "bigint":
                text = '{"tool_calls": [{"id": "n3", "name": "get_monitors", "arguments": {"limit": ' + "9" * 5000 + '}}]}'
            elif turn == 1:
                text = ('{"tool_calls": [{"id": "n1", "name": "search_logs", "arguments": {"query": "error", "limit": NaN}},'
                        ' {"id": "n2", "name": "list_services", "arguments": {"limit": 1e400}}]}')
            else:
                text = ('{"diagnosis": {"root_causes": [{"entity": "checkout", "mechanism": "bad_release",'
                        ' "onset": "0001-01-01T00:00:00+01:00", "confidence": NaN, "rank": 1e400}], "summary": "x"}}')
            msg = message(ctx, {})
            msg_json = json.dumps(msg).replace('{"data": {}}', '{"data": ' + text + "}")
            out = b'{"jsonrpc": "2.0", "id": ' + json.dumps(rid).encode() + b', "result": {"message": ' + msg_json.encode() + b"}}"
            return Response(out, media_type="application/json")
        return JSONResponse({"jsonrpc": "2.0", "id": rid, "error": {"code": -32001, "message": "unknown target"}})

    return Starlette(routes=[
        Route("/health", health),
        Route("/{name}/.well-known/agent-card.json", card),
        Route("/{name}", endpoint, methods=["POST"]),
    ])


def serve_targets(port: int) -> None:
    import uvicorn

    uvicorn.run(targets_app(f"http://127.0.0.1:{port}"), host="127.0.0.1", port=port, log_level="critical")


# ----------------------------------------------------------------------------- samplers


def sample(pid: int, url: str, out: str) -> None:
    """Every 100 ms: the proctor's VmRSS and one GET /health (its latency; a failure counts as 5 s),
    one line each to ``out``. Runs in a process of its own, so that the benchmark's clients do not
    delay it."""
    import httpx

    with httpx.Client(timeout=5.0) as c, open(out, "a", buffering=1) as f:
        while True:
            t0 = time.monotonic()
            try:
                rss = _vm(pid, "VmRSS")
            except OSError:
                return
            try:
                ok = c.get(url).status_code == 200
            except httpx.HTTPError:
                ok = False
            dt = time.monotonic() - t0 if ok else 5.0
            f.write(f"{t0} {rss} {dt * 1000} {int(ok)}\n")
            time.sleep(max(0.0, 0.1 - (time.monotonic() - t0)))


class Sampler:
    """The sampling process and the phases (monotonic time is system-wide on Linux)."""

    def __init__(self, pid: int, health_url: str, out: Path, env: dict[str, str]):
        self.out = out
        self.proc = subprocess.Popen([sys.executable, __file__, "--sample", str(pid), health_url, str(out)], env=env)
        self.phases: list[tuple[str, float]] = []
        self.rss: dict[str, list[float]] = {}
        self.health: dict[str, list[float]] = {}
        self.health_failures: dict[str, int] = {}

    def mark(self, phase: str) -> None:
        self.phases.append((phase, time.monotonic()))

    def finish(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)
        for line in self.out.read_text().splitlines():
            t, rss, ms, ok = line.split()
            phase = "idle"
            for name, since in self.phases:
                if float(t) >= since:
                    phase = name
            self.rss.setdefault(phase, []).append(float(rss))
            self.health.setdefault(phase, []).append(float(ms))
            if ok == "0":
                self.health_failures[phase] = self.health_failures.get(phase, 0) + 1


# ----------------------------------------------------------------------------- the benchmark


def _largest_investigation(db: Path) -> tuple[int, str]:
    """Bytes of an investigation's rows (every column's text or blob length) in investigations,
    turns and tool_calls; the largest one."""
    def size(row: tuple[Any, ...]) -> int:
        return sum(len(v) if isinstance(v, bytes) else len(str(v).encode()) for v in row if v is not None)

    per: dict[str, int] = {}
    with sqlite3.connect(db) as c:
        for row in c.execute("SELECT id, * FROM investigations"):
            per[row[0]] = per.get(row[0], 0) + size(row[1:])
        for table in ("turns", "tool_calls"):
            for row in c.execute(f"SELECT investigation_id, * FROM {table}"):
                per[row[0]] = per.get(row[0], 0) + size(row[1:])
    if not per:
        return 0, ""
    iid = max(per, key=per.__getitem__)
    return per[iid], iid


def _cpu_s(pid: int, ticks: int) -> float:
    """CPU seconds (user + system) the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / ticks


def _turn_latencies(db: Path, run_id: str) -> list[float]:
    with sqlite3.connect(db) as c:
        return [r[0] for r in c.execute(
            "SELECT t.duration_s FROM turns t JOIN investigations i ON t.investigation_id = i.id "
            "WHERE i.run_id = ? AND t.duration_s IS NOT NULL", [run_id])]


def _scores(result: dict[str, Any]) -> dict[tuple[str, int], tuple[float | None, str]]:
    return {(inv["label_id"], inv["attempt"]): (inv.get("score"), inv.get("end_reason", ""))
            for inv in result.get("investigations", [])}


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--honest", default="methodical", help="mock agent evaluated with key A")
    ap.add_argument("--labelset", default="smoke")
    ap.add_argument("--labels", type=int, default=8, help="labels of the honest evaluation")
    ap.add_argument("--attempts", type=int, default=3)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--hostile-labels", type=int, default=8, help="labels of each hostile evaluation")
    ap.add_argument("--hostile-concurrency", type=int, default=16)
    ap.add_argument("--hostile", default=",".join(HOSTILE), help="hostile targets to run (comma-separated)")
    a = ap.parse_args()
    battery = [n for n in a.hostile.split(",") if n]
    unknown = sorted(set(battery) - set(HOSTILE))
    if unknown:
        ap.error(f"unknown hostile targets {unknown}; known: {', '.join(HOSTILE)}")

    from evaluator_agent.core.labels import load_labelset
    from evaluator_agent.service.client import call_proctor

    all_labels = [lb.id for lb in load_labelset(a.labelset).labels]
    label_ids = all_labels[: a.labels]
    hostile_labels = all_labels[: a.hostile_labels]
    tmp = Path(tempfile.mkdtemp(prefix="bench-hostile-"))
    db = tmp / "proctor.db"
    mport, tport, pport = _free_port(), _free_port(), _free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "ADK_SUPPRESS_A2A_EXPERIMENTAL_FEATURE_WARNINGS": "1",
           "DD_TRACE_ENABLED": "false", "PROCTOR_API_KEYS": f"{KEY_A},{KEY_B}",
           "PROCTOR_ALLOW_PRIVATE_TARGETS": "1", "PROCTOR_MAX_EVALUATIONS": str(len(HOSTILE) + 2)}
    cpu_ticks = os.sysconf("SC_CLK_TCK")
    procs = {
        "mocks": subprocess.Popen([sys.executable, "-m", "mock_agents", "serve", "--port", str(mport), "--agents", a.honest],
                                  env=env, cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
        "targets": subprocess.Popen([sys.executable, __file__, "--serve-targets", str(tport)],
                                    env=env, cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
        "proctor": subprocess.Popen([sys.executable, "-m", "evaluator_agent.cli.main", "serve", "--host", "127.0.0.1",
                                     "--port", str(pport), "--db", str(db)],
                                    env=env, cwd=tmp, stdout=subprocess.DEVNULL, stderr=open(tmp / "proctor.log", "wb")),
    }
    proctor_url = f"http://127.0.0.1:{pport}"
    honest_card = f"http://127.0.0.1:{mport}/{a.honest}/.well-known/agent-card.json"
    t_start = time.monotonic()
    hostile_results: dict[str, list[Any]] = {n: [] for n in battery}
    try:
        await _wait_http(f"http://127.0.0.1:{mport}/health", procs["mocks"])
        await _wait_http(f"http://127.0.0.1:{tport}/health", procs["targets"])
        await _wait_http(f"{proctor_url}/health", procs["proctor"])
        pid = procs["proctor"].pid
        idle_rss = _vm(pid, "VmRSS")
        sampler = Sampler(pid, f"{proctor_url}/health", tmp / "samples.txt", env)

        async def honest(tag: str) -> dict[str, Any]:
            req = {"target": honest_card, "labelset": a.labelset, "labels": label_ids, "attempts": a.attempts,
                   "concurrency": a.concurrency, "run_id": f"run_bench_honest_{tag}"}
            t0 = time.monotonic()
            r = await call_proctor(proctor_url, req, headers={"Authorization": f"Bearer {KEY_A}"})
            r["_wall_s"] = time.monotonic() - t0
            return r

        sampler.mark("solo")
        cpu0, w0 = _cpu_s(pid, cpu_ticks), time.monotonic()
        solo = await honest("solo")
        cpu_solo = (_cpu_s(pid, cpu_ticks) - cpu0) / (time.monotonic() - w0)

        done = asyncio.Event()

        async def hostile_worker(name: str) -> None:
            i = 0
            while not done.is_set():
                i += 1
                req = {"target": f"http://127.0.0.1:{tport}/{name}/.well-known/agent-card.json", "labelset": a.labelset,
                       "labels": hostile_labels, "concurrency": a.hostile_concurrency, "budget": HOSTILE_BUDGET}
                try:
                    hostile_results[name].append(await call_proctor(proctor_url, req, headers={"Authorization": f"Bearer {KEY_B}"}))
                except Exception as e:  # noqa: BLE001 - reported
                    hostile_results[name].append(e)
                    await asyncio.sleep(1.0)

        sampler.mark("battery")
        cpu0, w0 = _cpu_s(pid, cpu_ticks), time.monotonic()
        workers = [asyncio.create_task(hostile_worker(n)) for n in battery]
        await asyncio.sleep(3.0)  # the battery is running before the honest run starts
        loaded = await honest("loaded")
        cpu_battery = (_cpu_s(pid, cpu_ticks) - cpu0) / (time.monotonic() - w0)
        done.set()
        await asyncio.gather(*workers)  # let the evaluations in flight finish (their rows count for the store figure)
        sampler.mark("after")
        await asyncio.sleep(0.5)
        sampler.finish()
        hwm = _vm(pid, "VmHWM")
        alive = procs["proctor"].poll() is None
    finally:
        for p in procs.values():
            p.terminate()
        for p in procs.values():
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
    wall = time.monotonic() - t_start

    # ---- figures
    solo_s, loaded_s = _scores(solo), _scores(loaded)
    keys = sorted(set(solo_s) | set(loaded_s))
    differ = [k for k in keys if solo_s.get(k, (None,))[0] != loaded_s.get(k, (None,))[0]]
    by_label = {}
    for lid in label_ids:
        s = [solo_s[k][0] or 0.0 for k in solo_s if k[0] == lid]
        lo = [loaded_s[k][0] or 0.0 for k in loaded_s if k[0] == lid]
        by_label[lid] = (statistics.mean(s) if s else float("nan"), statistics.mean(lo) if lo else float("nan"))
    turn_solo, turn_loaded = _turn_latencies(db, solo["run_id"]), _turn_latencies(db, loaded["run_id"])
    p99_solo, p99_loaded = pct(turn_solo, 99), pct(turn_loaded, 99)
    ratio = p99_loaded / p99_solo if p99_solo else float("nan")
    rss_peak_sampled = max((x for xs in sampler.rss.values() for x in xs), default=float("nan"))
    rss_peak = max(rss_peak_sampled, hwm)
    hb = sampler.health.get("battery", [])
    hs = sampler.health.get("solo", [])
    largest, largest_id = _largest_investigation(db)

    print(f"hostile battery beside an honest evaluation ({wall:.0f} s wall, 2 API keys, proctor PROCTOR_MAX_EVALUATIONS={len(HOSTILE) + 2})")
    print(f"  honest (key A): {a.honest} on {len(label_ids)} {a.labelset} labels x {a.attempts} attempts, concurrency {a.concurrency}"
          + (f" (shrunk from {len(all_labels)} labels)" if len(label_ids) < len(all_labels) else ""))
    print(f"  hostile (key B): {len(battery)} targets, each re-evaluated while the loaded honest run lasted: "
          f"{len(hostile_labels)} labels at concurrency {a.hostile_concurrency}, budget {HOSTILE_BUDGET}")
    print()
    print(f"  {'hostile target':<12} {'evals':>5} {'failed':>6} {'infra err':>9}  end reasons")
    hostile_infra = 0
    hostile_failed = 0
    for name, rs in hostile_results.items():
        ok = [r for r in rs if not isinstance(r, Exception)]
        bad = [r for r in rs if isinstance(r, Exception)]
        reasons: dict[str, int] = {}
        infra = 0
        for r in ok:
            infra += r["summary"].get("errors", 0)
            for inv in r.get("investigations", []):
                reasons[inv["end_reason"]] = reasons.get(inv["end_reason"], 0) + 1
        hostile_infra += infra
        hostile_failed += len(bad)
        extra = f"; {type(bad[0]).__name__}: {str(bad[0])[:120]}" if bad else ""
        print(f"  {name:<12} {len(rs):>5} {len(bad):>6} {infra:>9}  {reasons}{extra}")
    print()
    print(f"  {'label':<40} {'solo':>6} {'loaded':>6}")
    for lid, (s, lo) in by_label.items():
        print(f"  {lid:<40} {s:>6.3f} {lo:>6.3f}")
    for k in differ:
        print(f"  differs: {k[0]} attempt {k[1]}: solo {solo_s.get(k)} loaded {loaded_s.get(k)}")
    print()
    sm, lm = solo["summary"], loaded["summary"]
    print(f"  honest solo    {sm.get('passed')}/{sm.get('n')} passed, mean {sm.get('mean_score')}, errors {sm.get('errors')}, "
          f"{solo['_wall_s']:.1f} s; turns {len(turn_solo)}: p50 {pct(turn_solo, 50):.3f} s, p99 {p99_solo:.3f} s")
    print(f"  honest loaded  {lm.get('passed')}/{lm.get('n')} passed, mean {lm.get('mean_score')}, errors {lm.get('errors')}, "
          f"{loaded['_wall_s']:.1f} s; turns {len(turn_loaded)}: p50 {pct(turn_loaded, 50):.3f} s, p99 {p99_loaded:.3f} s")
    print(f"  /health        solo p50 {pct(hs, 50):.1f} ms p99 {pct(hs, 99):.1f} ms; battery p50 {pct(hb, 50):.1f} ms "
          f"p99 {pct(hb, 99):.1f} ms max {max(hb, default=float('nan')):.1f} ms ({len(hb)} samples, "
          f"{sampler.health_failures.get('battery', 0)} failed)")
    print(f"  proctor CPU    {cpu_solo:.0%} of a core during the solo run, {cpu_battery:.0%} during the loaded run")
    print(f"  proctor memory idle {idle_rss:.0f} MiB, peak {rss_peak:.0f} MiB (VmRSS sampled {rss_peak_sampled:.0f}, VmHWM {hwm:.0f}); "
          f"alive at the end: {alive}")
    print(f"  largest stored investigation {largest:,} bytes ({largest_id})")
    print()
    goals = [
        ("same per-investigation scores solo vs loaded", f"{len(keys) - len(differ)}/{len(keys)} equal", not differ and len(keys) > 0),
        ("honest turn p99 loaded / solo < 2x", f"{p99_loaded:.3f} / {p99_solo:.3f} s = {ratio:.2f}x", ratio < 2),
        ("proctor peak RSS < 400 MB", f"{rss_peak * MiB / 1e6:.0f} MB ({rss_peak:.0f} MiB)", rss_peak * MiB / 1e6 < 400),
        ("/health p99 during the battery < 250 ms", f"{pct(hb, 99):.1f} ms", pct(hb, 99) < 250),
        ("largest stored investigation < 1 MB", f"{largest:,} bytes", largest < 1_000_000),
        ("hostile failures counted as infra errors = 0", f"{hostile_infra}", hostile_infra == 0),
        ("hostile evaluations that failed (not completed) = 0", f"{hostile_failed}", hostile_failed == 0),
    ]
    print(f"  {'goal':<52} {'measured':<32} result")
    for goal, measured, ok in goals:
        print(f"  {goal:<52} {measured:<32} {'PASS' if ok else 'FAIL'}")
    print(json.dumps({
        "wall_s": round(wall, 1), "scores_equal": not differ, "turn_p99_solo_s": round(p99_solo, 3),
        "turn_p99_loaded_s": round(p99_loaded, 3), "turn_p99_ratio": round(ratio, 2),
        "turn_p50_solo_s": round(pct(turn_solo, 50), 3), "turn_p50_loaded_s": round(pct(turn_loaded, 50), 3),
        "proctor_rss_idle_mib": round(idle_rss), "proctor_peak_rss_mib": round(rss_peak),
        "health_ms_battery": {"p50": round(pct(hb, 50), 1), "p99": round(pct(hb, 99), 1), "max": round(max(hb, default=0), 1)},
        "largest_investigation_bytes": largest,
        "proctor_cpu_solo": round(cpu_solo, 2), "proctor_cpu_loaded": round(cpu_battery, 2), "hostile_infra_errors": hostile_infra,
        "hostile_evaluations": sum(len(v) for v in hostile_results.values()), "hostile_failed": hostile_failed,
    }))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--serve-targets":
        serve_targets(int(sys.argv[2]))
    elif len(sys.argv) == 5 and sys.argv[1] == "--sample":
        sample(int(sys.argv[2]), sys.argv[3], sys.argv[4])
    else:
        asyncio.run(main())
