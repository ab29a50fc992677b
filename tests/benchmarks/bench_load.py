"""Load: one `proctor serve` process holding many concurrent investigations against the ADK mock
agents, everything over A2A on loopback, each side in its own process as in production.

    .venv/bin/python tests/benchmarks/bench_load.py [--evaluations 4] [--concurrency 16] [--labels 40]
        [--agents greedy_anomaly,alert_blamer,methodical,greedy_anomaly] [--labelset core]

``--agents methodical_mcp,greedy_anomaly,methodical_mcp,alert_blamer`` puts half of the
investigations on the MCP surface.

Each evaluation runs ``--labels`` labels of the set with ``--concurrency`` investigations at a
time, so evaluations x concurrency investigations are in flight at once (64 by default).
Prints throughput, tool-call latency (proctor side: executing the tool on the world), the
proctor's turn overhead, the peak number of investigations in flight (from the stored start and
end times), errors, and the proctor's peak memory (VmHWM). Goal: no errors, peak under 1 GiB.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _vm(pid: int, key: str) -> float:
    """VmHWM / VmRSS of a process in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def _wait_http(url: str, proc: subprocess.Popen, timeout: float = 60) -> None:
    import httpx

    t0 = time.monotonic()
    async with httpx.AsyncClient() as c:
        while time.monotonic() - t0 < timeout:
            if proc.poll() is not None:
                raise SystemExit(f"{proc.args} exited with {proc.returncode}")
            try:
                if (await c.get(url, timeout=1)).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.2)
    raise SystemExit(f"{url} did not come up")


def pct(xs: list[float], p: float) -> float:
    """Nearest-rank percentile, as the traffic generator reports them (NaN when empty)."""
    from evaluator_agent.cli.traffic_report import percentile

    value = percentile(xs, p)
    return float("nan") if value is None else value


def max_overlap(intervals: list[tuple[float, float]]) -> int:
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    cur = best = 0
    for _, d in events:
        cur += d
        best = max(best, cur)
    return best


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--evaluations", type=int, default=4)
    ap.add_argument("--concurrency", type=int, default=16, help="investigations in flight per evaluation")
    ap.add_argument("--labels", type=int, default=40, help="labels per evaluation")
    ap.add_argument("--labelset", default="core")
    ap.add_argument("--agents", default="greedy_anomaly,alert_blamer,methodical,greedy_anomaly",
                    help="target of each evaluation, round-robin")
    a = ap.parse_args()

    from evaluator_agent.core.labels import load_labelset
    from evaluator_agent.service.client import call_proctor

    agents = [x for x in a.agents.split(",") if x]
    label_ids = [lb.id for lb in load_labelset(a.labelset).labels][: a.labels]
    tmp = Path(tempfile.mkdtemp(prefix="bench-load-"))
    db = tmp / "proctor.db"
    mport, pport = _free_port(), _free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "ADK_SUPPRESS_A2A_EXPERIMENTAL_FEATURE_WARNINGS": "1",
           "PROCTOR_MAX_EVALUATIONS": str(max(4, a.evaluations)),
           "PROCTOR_MAX_INVESTIGATIONS": str(max(64, a.evaluations * a.concurrency)), "DD_TRACE_ENABLED": "false",
           # briefings name the MCP and REST surfaces at this address (methodical_mcp calls them)
           "PROCTOR_PUBLIC_URL": f"http://127.0.0.1:{pport}"}
    mocks = subprocess.Popen([sys.executable, "-m", "mock_agents", "serve", "--port", str(mport),
                              "--agents", ",".join(dict.fromkeys(agents))], env=env, cwd=tmp,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    proctor = subprocess.Popen([sys.executable, "-m", "evaluator_agent.cli.main", "serve", "--port", str(pport), "--db", str(db)],
                               env=env, cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        await _wait_http(f"http://127.0.0.1:{mport}/health", mocks)
        await _wait_http(f"http://127.0.0.1:{pport}/health", proctor)
        idle_rss = _vm(proctor.pid, "VmRSS")
        peak_sampled = idle_rss
        stop = asyncio.Event()

        async def sample() -> None:
            nonlocal peak_sampled
            while not stop.is_set():
                peak_sampled = max(peak_sampled, _vm(proctor.pid, "VmRSS"))
                await asyncio.sleep(0.25)

        async def one(i: int) -> dict[str, Any] | Exception:
            agent = agents[i % len(agents)]
            req = {"target": f"http://127.0.0.1:{mport}/{agent}/.well-known/agent-card.json", "labelset": a.labelset,
                   "labels": label_ids, "concurrency": a.concurrency, "run_id": f"run_load_{i}_{agent}"}
            try:
                return await call_proctor(f"http://127.0.0.1:{pport}", req)
            except Exception as e:  # noqa: BLE001 - counted and printed
                return e

        sampler = asyncio.create_task(sample())
        t0 = time.monotonic()
        results = await asyncio.gather(*(one(i) for i in range(a.evaluations)))
        wall = time.monotonic() - t0
        stop.set()
        await sampler
        peak = _vm(proctor.pid, "VmHWM")
    finally:
        for p in (proctor, mocks):
            p.terminate()
        for p in (proctor, mocks):
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()

    failed = [r for r in results if isinstance(r, Exception)]
    ok = [r for r in results if not isinstance(r, Exception)]
    with sqlite3.connect(db) as c:
        tool_ms = [r[0] for r in c.execute("SELECT duration_ms FROM tool_calls")]
        turn_s = [r[0] for r in c.execute("SELECT duration_s FROM turns")]
        spans = [(r[0], r[1]) for r in c.execute("SELECT started_at, finished_at FROM investigations")]
        n_inv = len(spans)
    errors = sum(r["summary"].get("errors", 0) for r in ok)
    by_reason: dict[str, int] = {}
    for r in ok:
        for k, v in (r["summary"].get("end_reasons") or {}).items():
            by_reason[k] = by_reason.get(k, 0) + v
    figures = {
        "evaluations": a.evaluations, "evaluations_failed": len(failed), "investigations": n_inv,
        "peak_in_flight": max_overlap(spans), "wall_s": round(wall, 1),
        "investigations_per_s": round(n_inv / wall, 2), "turns_per_s": round(len(turn_s) / wall, 1),
        "tool_calls": len(tool_ms), "tool_calls_per_s": round(len(tool_ms) / wall, 1),
        "tool_call_ms": {"p50": round(pct(tool_ms, 50), 2), "p95": round(pct(tool_ms, 95), 2), "max": round(max(tool_ms, default=0), 2)},
        "turn_s": {"p50": round(pct(turn_s, 50), 3), "p95": round(pct(turn_s, 95), 3)},
        "infra_errors": errors, "end_reasons": by_reason,
        "proctor_rss_idle_mib": round(idle_rss), "proctor_peak_rss_mib": round(max(peak, peak_sampled)),
    }
    print(f"load: {a.evaluations} evaluations x {a.concurrency} concurrent investigations, {len(label_ids)} labels each "
          f"({a.labelset}), targets {', '.join(agents)}")
    print(f"  investigations      {n_inv} in {wall:.1f} s = {figures['investigations_per_s']}/s; peak in flight {figures['peak_in_flight']}")
    print(f"  turns               {len(turn_s)} = {figures['turns_per_s']}/s; turn p50 {figures['turn_s']['p50']} s, p95 {figures['turn_s']['p95']} s (includes the agent's time)")
    print(f"  tool calls          {len(tool_ms)} = {figures['tool_calls_per_s']}/s; p50 {figures['tool_call_ms']['p50']} ms, "
          f"p95 {figures['tool_call_ms']['p95']} ms, max {figures['tool_call_ms']['max']} ms")
    print(f"  errors              {len(failed)} failed evaluations, {errors} infra errors; end reasons {by_reason}")
    print(f"  proctor memory      idle {figures['proctor_rss_idle_mib']} MiB, peak {figures['proctor_peak_rss_mib']} MiB (goal < 1024)")
    for f in failed:
        print(f"  FAILED: {type(f).__name__}: {f}")
    print(json.dumps(figures))
    if failed or errors:
        sys.exit(1)


if __name__ == "__main__":
    asyncio.run(main())
